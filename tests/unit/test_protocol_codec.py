"""Payload schemas and codec: round trips, precise refusals, fuzzed payloads, topic scheme."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import (
    AlertEvent,
    Desired,
    DesiredModel,
    ProtocolError,
    Reading,
    Reported,
    Status,
    TelemetryBatch,
    TopicError,
    decode,
    encode,
    parse_topic,
    topic,
)
from protocol.codec import MAX_PAYLOAD_BYTES, decode_for_topic
from protocol.messages import Replay, alert_id
from protocol.topics import subscription

TS = 1_700_000_000_000


def batch(**overrides: object) -> TelemetryBatch:
    fields: dict[str, object] = {
        "gateway": "gw1", "seq": 7, "sent_at": TS,
        "readings": [Reading(sensor="aa:bb:cc:dd:ee:ff", ts=TS, profile="frozen", seq=3, temp_c=-19.5)],
    }
    fields.update(overrides)
    return TelemetryBatch(**fields)  # type: ignore[arg-type]


MESSAGES = [
    batch(),
    AlertEvent(
        id=alert_id("gw1", "aa:bb:cc:dd:ee:ff", "range_high", TS), gateway="gw1", seq=8,
        sensor="aa:bb:cc:dd:ee:ff", kind="range_high", severity="critical", state="open", source="rule",
        started_at=TS, updated_at=TS, value=-12.0, threshold=-18.0, reason="above -18 °C for 30 min",
    ),
    Status(gateway="gw1", state="online", ts=TS, agent_version="0.1.0", outbox_depth=0),
    Reported(gateway="gw1", ts=TS, desired_version=3, result="applied", model_version="frozen-3"),
    Desired(
        version=3, issued_at=TS,
        model=DesiredModel(name="frozen-ae", version="3", profile="frozen", url="https://x/m.tflite",
                           sha256="0" * 64, signature="c2ln"),
    ),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips_and_carries_the_schema_version(message: object) -> None:
    data = encode(message)  # type: ignore[arg-type]
    assert b'"v":1' in data
    assert decode(data, type(message)) == message  # type: ignore[type-var]


def test_decode_for_topic_picks_the_schema_from_the_kind() -> None:
    assert decode_for_topic(encode(batch()), "telemetry") == batch()


@pytest.mark.parametrize(
    ("data", "reason", "where"),
    [
        (b"{not json", "malformed", "malformed"),
        (encode(batch()).replace(b'"v":1', b'"v":2'), "schema_version", "$.v"),
        (encode(batch()).replace(b'"v":1,', b""), "schema_version", "`v`"),
        (encode(batch()).replace(b'"v":1', b'"v":0'), "schema_version", "$.v"),
        (encode(batch()).replace(b'"temp_c":-19.5', b'"temp_c":1e999'), "invalid", "$.readings[0].temp_c"),
        (encode(batch()).replace(b'"temp_c":-19.5', b'"temp_c":NaN'), "malformed", "malformed"),
        (encode(batch()).replace(b'"gateway":"gw1"', b'"gateway":"GW/1"'), "invalid", "$.gateway"),
        (encode(batch()).replace(b'"seq":7', b'"seq":7,"extra":1'), "invalid", "extra"),
        (encode(batch(readings=[])), "invalid", "$.readings"),
        (b" " * (MAX_PAYLOAD_BYTES + 1), "oversized", "limit"),
    ],
)
def test_refusals_name_the_reason_and_the_field(data: bytes, reason: str, where: str) -> None:
    with pytest.raises(ProtocolError) as err:
        decode(data, TelemetryBatch)
    assert err.value.reason == reason
    assert where in str(err.value)


@given(st.binary(max_size=512))
def test_arbitrary_payloads_only_raise_protocol_error(data: bytes) -> None:
    for kind in ("telemetry", "alerts", "status", "reported", "desired"):
        try:
            decode_for_topic(data, kind)  # type: ignore[arg-type]
        except ProtocolError:
            pass


def test_alert_id_is_deterministic_and_distinguishes_starts() -> None:
    a = alert_id("gw1", "aa:bb:cc:dd:ee:ff", "range_high", TS)
    assert a == alert_id("gw1", "aa:bb:cc:dd:ee:ff", "range_high", TS)
    assert a != alert_id("gw1", "aa:bb:cc:dd:ee:ff", "range_high", TS + 1)


def test_topics_round_trip_and_refuse_wildcards() -> None:
    assert topic("gw-7", "telemetry") == "cw/v1/gw-7/telemetry"
    assert parse_topic("cw/v1/gw-7/alerts") == ("gw-7", "alerts")
    assert subscription("telemetry") == "$share/ingest/cw/v1/+/telemetry"
    bad_topics = ("cw/v1/+/telemetry", "cw/v2/gw1/telemetry", "cw/v1/gw1/other", "cw/v1/gw1", "cw/v1/GW1/status")
    for bad in bad_topics:
        with pytest.raises(TopicError):
            parse_topic(bad)
    with pytest.raises(TopicError, match="not valid"):
        topic("gw#1", "status")


@pytest.mark.parametrize(("old", "new", "where"), [
    (b'"gateway":"gw1"', b'"gateway":"gw1\\n"', "$.gateway"),
    (b'"sensor":"aa:bb:cc:dd:ee:ff"', b'"sensor":"aa:bb:cc:dd:ee:ff\\n"', "$.readings[0].sensor"),
    (b'"profile":"frozen"', b'"profile":"frozen\\n"', "$.readings[0].profile"),
])
def test_an_identifier_with_a_trailing_newline_is_refused(old: bytes, new: bytes, where: str) -> None:
    with pytest.raises(ProtocolError) as err:
        decode(encode(batch()).replace(old, new), TelemetryBatch)
    assert where in str(err.value)


def test_a_topic_with_a_trailing_newline_in_the_gateway_id_is_refused() -> None:
    with pytest.raises(TopicError):
        topic("gw1\n", "telemetry")


def _unbounded_fields(t: msgspec.inspect.Type, path: str, out: list[str]) -> None:
    """Every int, float and str reachable from `t` whose schema lets a value overflow a column or a field."""
    if isinstance(t, msgspec.inspect.IntType):
        if t.le is None or t.le > 2**63 - 1 or t.ge is None or t.ge < -(2**63):
            out.append(path)
    elif isinstance(t, msgspec.inspect.FloatType):
        if (t.le is None and t.lt is None) or (t.ge is None and t.gt is None):
            out.append(path)
    elif isinstance(t, msgspec.inspect.StrType):
        if t.max_length is None and t.pattern is None:
            out.append(path)
    elif isinstance(t, msgspec.inspect.UnionType):
        for member in t.types:
            _unbounded_fields(member, path, out)
    elif isinstance(t, (msgspec.inspect.ListType, msgspec.inspect.DictType)):
        if isinstance(t, msgspec.inspect.ListType):
            _unbounded_fields(t.item_type, path + "[]", out)
        else:
            _unbounded_fields(t.key_type, path + "{key}", out)
            _unbounded_fields(t.value_type, path + "{}", out)
    elif isinstance(t, msgspec.inspect.StructType):
        for f in t.fields:
            _unbounded_fields(f.type, f"{path}.{f.name}", out)


@pytest.mark.parametrize("kind", [TelemetryBatch, AlertEvent, Status, Reported, Desired, Replay],
                         ids=lambda k: k.__name__)
def test_every_number_and_string_a_gateway_can_send_is_bounded_to_what_storage_holds(kind: type) -> None:
    found: list[str] = []
    _unbounded_fields(msgspec.inspect.type_info(kind), kind.__name__, found)
    assert not found


@given(value=st.integers(min_value=2**63, max_value=10**40))
def test_a_counter_too_large_for_a_bigint_column_is_refused_with_its_field(value: int) -> None:
    status = encode(Status(gateway="gw1", state="online", ts=TS, outbox_depth=0))
    with pytest.raises(ProtocolError) as err:
        decode(status.replace(b'"outbox_depth":0', b'"outbox_depth":' + str(value).encode()), Status)
    assert err.value.reason == "invalid" and "$.outbox_depth" in str(err.value)
    reported = encode(Reported(gateway="gw1", ts=TS, desired_version=1, result="applied"))
    with pytest.raises(ProtocolError) as err:
        decode(reported.replace(b'"desired_version":1', b'"desired_version":' + str(value).encode()), Reported)
    assert "$.desired_version" in str(err.value)


_ID_TEXT = st.one_of(st.text(max_size=40), st.from_regex(r"[0-9a-fA-F:]{17}", fullmatch=True),
                     st.from_regex(r"[a-z][a-z0-9_]{0,33}", fullmatch=True), st.sampled_from(["frozen", "chilled"]))


@given(first=_ID_TEXT, second=_ID_TEXT, field_first=st.sampled_from(["sensor", "profile"]))
def test_a_reading_id_is_refused_exactly_when_its_pattern_refuses_it_whatever_was_seen_before(
        first: str, second: str, field_first: str) -> None:
    """The codec matches a reading's sensor id and profile once per distinct value (a cache): the verdict must still
    be the pattern's, also for a value seen before in the other field."""
    import re

    from protocol.messages import PROFILE_PATTERN, SENSOR_ID_PATTERN

    patterns = {"sensor": SENSOR_ID_PATTERN, "profile": PROFILE_PATTERN}
    field_second = "profile" if field_first == "sensor" else "sensor"
    for field, value in ((field_first, first), (field_second, second), (field_second, first), (field_first, second)):
        payload = encode(batch(readings=[msgspec.structs.replace(batch().readings[0], **{field: value})]))
        expected = re.match(patterns[field], value) is not None
        try:
            decode(payload, TelemetryBatch)
            accepted = True
        except ProtocolError as exc:
            assert exc.reason == "invalid" and f"$.readings[0].{field}" in exc.detail
            accepted = False
        assert accepted == expected, (field, value)
