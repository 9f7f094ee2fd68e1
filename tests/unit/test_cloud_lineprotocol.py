"""Line protocol for `reading` points: escaping, field types, omitted None fields, refusals."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.tsdb.lineprotocol import (
    LineProtocolError,
    Point,
    batch_lines,
    escape_measurement,
    escape_tag,
    format_float,
    reading_point,
    readings_lines,
)
from protocol.messages import Reading, TelemetryBatch

MAC = "aa:bb:cc:dd:ee:01"


def test_tag_escaping_of_space_comma_equals_and_quotes() -> None:
    assert escape_tag("a b") == "a\\ b"
    assert escape_tag("a,b") == "a\\,b"
    assert escape_tag("a=b") == "a\\=b"
    assert escape_tag('say "hi" \'there\'') == 'say\\ "hi"\\ \'there\''
    assert escape_measurement("my meas,x=y") == "my\\ meas\\,x=y"


@pytest.mark.parametrize("bad", ["", "line\nbreak", "cr\rhere", "back\\slash", "end\\"])
def test_tag_values_that_cannot_be_written_are_refused(bad: str) -> None:
    with pytest.raises(LineProtocolError):
        escape_tag(bad)


@given(st.text(alphabet=st.characters(blacklist_characters="\\\n\r", blacklist_categories=("Cs",)), min_size=1))
def test_escaped_tag_has_no_unescaped_separator(value: str) -> None:
    escaped = escape_tag(value)
    i = 0
    while i < len(escaped):
        if escaped[i] == "\\":
            assert escaped[i + 1] in ", ="
            i += 2
            continue
        assert escaped[i] not in ", ="
        i += 1


def test_full_reading_line_has_three_tags_typed_fields_and_ms_timestamp() -> None:
    r = Reading(sensor=MAC, ts=1_700_000_000_123, profile="frozen", seq=7, temp_c=-21.5, rh_pct=40.0,
                battery_mv=2900, rssi_dbm=-70, anomaly_score=0.25)
    point = reading_point("gw1", r)
    assert point is not None
    assert point.to_line() == (
        "reading,gateway=gw1,sensor=aa:bb:cc:dd:ee:01,profile=frozen "
        "temp_c=-21.5,rh_pct=40.0,anomaly_score=0.25,seq=7i,battery_mv=2900i,rssi_dbm=-70i 1700000000123"
    )


def test_integral_float_fields_stay_floats() -> None:
    r = Reading(sensor=MAC, ts=1_700_000_000_000, profile="chilled", temp_c=3)
    point = reading_point("gw1", r)
    assert point is not None
    assert " temp_c=3.0 " in point.to_line()


def test_none_fields_are_omitted() -> None:
    r = Reading(sensor=MAC, ts=1_700_000_000_000, profile="chilled", rssi_dbm=-80)
    point = reading_point("gw1", r)
    assert point is not None
    line = point.to_line()
    assert line.split(" ")[1] == "rssi_dbm=-80i"
    assert "temp_c" not in line and "seq" not in line


def test_reading_without_fields_is_skipped_and_counted() -> None:
    batch = TelemetryBatch(gateway="gw1", seq=1, sent_at=1_700_000_000_000, readings=[
        Reading(sensor=MAC, ts=1_700_000_000_000, profile="frozen"),
        Reading(sensor=MAC, ts=1_700_000_001_000, profile="frozen", temp_c=-20.0),
    ])
    out = batch_lines(batch)
    assert out.skipped_empty == 1
    assert len(out.lines) == 1 and out.lines[0].endswith(" 1700000001000")


def test_only_gateway_sensor_profile_are_tags() -> None:
    r = Reading(sensor=MAC, ts=1_700_000_000_000, profile="pharma_2_8", seq=1, temp_c=5.0)
    point = reading_point("gw-x", r)
    assert point is not None
    assert [k for k, _ in point.tags] == ["gateway", "sensor", "profile"]
    tag_part = point.to_line().split(" ")[0]
    assert tag_part.count(",") == 3 and tag_part.count("=") == 3


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_are_refused(value: float) -> None:
    with pytest.raises(LineProtocolError):
        format_float(value)


def test_point_without_fields_is_refused() -> None:
    with pytest.raises(LineProtocolError):
        Point("reading", (("gateway", "gw1"),), (), (), 1).to_line()


_optional_float = st.none() | st.floats(-163.8, 163.8, allow_nan=False)
READINGS = st.builds(
    Reading, sensor=st.sampled_from(["aa:bb:cc:dd:ee:01", "aa:bb:cc:dd:ee:02", "c2:00:00:00:01:ff"]),
    ts=st.integers(946_684_800_000, 4_102_444_800_000), profile=st.sampled_from(["chilled", "frozen", "pharma_2_8"]),
    seq=st.none() | st.integers(0, 65534), temp_c=_optional_float, rh_pct=st.none() | st.floats(0.0, 100.0),
    battery_mv=st.none() | st.integers(1600, 3646), rssi_dbm=st.none() | st.integers(-127, 20),
    anomaly_score=st.none() | st.floats(-1e6, 1e6, allow_nan=False))


@given(gateway=st.from_regex(r"[a-z0-9][a-z0-9_-]{0,20}", fullmatch=True), readings=st.lists(READINGS, max_size=30))
def test_the_batch_fast_path_writes_exactly_the_lines_of_one_point_per_reading(gateway: str,
                                                                              readings: list[Reading]) -> None:
    points = [reading_point(gateway, r) for r in readings]
    formatted = readings_lines(gateway, readings)
    assert formatted.lines == [p.to_line() for p in points if p is not None]
    assert formatted.skipped_empty == sum(p is None for p in points)


def test_a_readings_fields_are_declared_once_in_the_wire_contract() -> None:
    """Stored fields come from `protocol.messages.Reading`; the stored row's type names exactly those."""
    from typing import get_type_hints

    import msgspec

    from cloud.tsdb.lineprotocol import FLOAT_FIELDS, INT_FIELDS
    from cloud.tsdb.readings import StoredReading
    from protocol.messages import Reading

    measured = {f.name for f in msgspec.structs.fields(Reading)} - {"sensor", "ts", "profile"}
    assert set(FLOAT_FIELDS) | set(INT_FIELDS) == measured and not set(FLOAT_FIELDS) & set(INT_FIELDS)
    assert {"temp_c", "rh_pct", "anomaly_score"} <= set(FLOAT_FIELDS) and {"battery_mv", "seq"} <= set(INT_FIELDS)
    assert set(get_type_hints(StoredReading)) == {"ts", "gateway", "profile", *measured}
    # the hot path spells the fields out: with every declared field set, it writes each of them, as a Point does
    full = Reading(sensor=MAC, ts=1_700_000_000_000, profile="chilled",
                   **{name: 1.5 for name in FLOAT_FIELDS}, **{name: 7 for name in INT_FIELDS})
    (line,) = readings_lines("gw1", [full]).lines
    point = reading_point("gw1", full)
    assert point is not None and line == point.to_line()
    assert all(f"{name}=" in line for name in measured)


def test_kept_float_texts_print_each_value_as_a_point_does() -> None:
    """The fast path keeps the text of each temperature and humidity it printed: ±0.0 (equal keys that print
    differently) and an int given where a float is declared must still come out as a Point writes them."""
    values = [0.0, -0.0, 0.0, 3, 3.0, -0.0, 1e-300, 3.005, 3.0050000000000003]
    readings = [Reading(sensor=MAC, ts=1_700_000_000_000 + i, profile="chilled", seq=i, temp_c=v, rh_pct=-v + 50,
                        battery_mv=3000, rssi_dbm=-70) for i, v in enumerate(values)]
    for _ in range(2):  # the second time from the kept texts
        lines = readings_lines("gw1", readings).lines
        assert lines == [p.to_line() for r in readings if (p := reading_point("gw1", r)) is not None]
    assert "temp_c=-0.0," in lines[1] and "temp_c=0.0," in lines[2] and "temp_c=3.0," in lines[3]
