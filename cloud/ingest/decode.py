"""Turn one MQTT message into what must be stored (InfluxDB lines, SQL work) or a rejection with a reason."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from cloud.ingest.sql_sink import SqlWork, event_work, telemetry_work
from cloud.tsdb.lineprotocol import LineProtocolError, batch_lines
from protocol.codec import ProtocolError, decode_for_topic
from protocol.messages import AlertEvent, Reported, Status, TelemetryBatch
from protocol.topics import TopicError, parse_topic

INGEST_KINDS: Final = ("telemetry", "alerts", "status", "reported")
REJECT_REASONS: Final = ("oversized", "malformed", "schema_version", "invalid", "out_of_range", "nan", "bad_topic",
                         "topic_gateway_mismatch", "unknown_gateway", "influx_rejected", "sql_rejected", "future_ts",
                         "internal_error", "dead_letter_refused")
_OUT_OF_RANGE_RE: Final = re.compile(r"^Expected `(float|int)` (>=|<=|>|<) ")


class RejectedMessageError(Exception):
    """A message refused for good: counted by `reason`, logged, and acknowledged."""

    def __init__(self, reason: str, gateway: str | None, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.gateway = gateway
        self.detail = detail


@dataclass(slots=True)
class Decoded:
    """A valid message: the lines for InfluxDB (telemetry only) and its SQL effects."""

    gateway: str
    kind: str
    lines: list[str]
    sql: SqlWork
    seq: int | None = None
    skipped_empty: int = 0


def time_spans(stamps: list[int], hole_ms: int = 3_600_000) -> tuple[tuple[int, int], ...]:
    """(first, last) of each run of timestamps without a hole longer than `hole_ms`: a gateway whose clock jumped
    (a board booting in 2000 until NTP) gives two short spans, not one of 26 years."""
    ordered = sorted(stamps)
    if ordered[-1] - ordered[0] <= hole_ms:
        return ((ordered[0], ordered[-1]),)  # the common case, without a look at every stamp
    spans: list[tuple[int, int]] = []
    start = previous = ordered[0]
    for ts in ordered[1:]:
        if ts - previous > hole_ms:
            spans.append((start, previous))
            start = ts
        previous = ts
    spans.append((start, previous))
    return tuple(spans)


def protocol_reason(exc: ProtocolError) -> str:
    """Refine the codec's `invalid` into `nan` (non-finite number) and `out_of_range` (a bound broken)."""
    if exc.reason != "invalid":
        return exc.reason
    if exc.detail.startswith("Number out of range"):
        return "nan"  # 1e999 and the like decode to inf; JSON itself has no NaN (that is `malformed`)
    if _OUT_OF_RANGE_RE.match(exc.detail):
        return "out_of_range"
    return "invalid"


def decode_message(topic: str, payload: bytes, *, gateway_allowed: Callable[[str], bool],
                   latest_ms: int | None = None) -> Decoded:
    """Validate a message against protocol/ (topic, schema, topic/payload gateway, policy), and refuse a telemetry
    batch holding a reading stamped after `latest_ms` (a gateway clock ahead: `future_ts`; None skips the check,
    as a replay by ops does).

    Raises RejectedMessageError naming the reason.
    """
    try:
        gateway, kind = parse_topic(topic)
    except TopicError as exc:
        raise RejectedMessageError("bad_topic", None, str(exc)) from None
    if kind not in INGEST_KINDS:
        raise RejectedMessageError("bad_topic", gateway, f"kind {kind!r} is not ingested")
    try:
        message = decode_for_topic(payload, kind)
    except ProtocolError as exc:
        raise RejectedMessageError(protocol_reason(exc), gateway, exc.detail) from None
    assert isinstance(message, TelemetryBatch | AlertEvent | Status | Reported)
    if message.gateway != gateway:
        raise RejectedMessageError("topic_gateway_mismatch", gateway,
                                   f"payload gateway {message.gateway!r} differs from the topic's")
    if not gateway_allowed(gateway):
        raise RejectedMessageError("unknown_gateway", gateway, "gateway is not provisioned (policy reject)")
    if isinstance(message, TelemetryBatch):
        stamps = [r.ts for r in message.readings]
        ahead = max(stamps)
        if latest_ms is not None and ahead > latest_ms:
            raise RejectedMessageError("future_ts", gateway, f"a reading is stamped {ahead}, {ahead - latest_ms} ms "
                                       "past the accepted limit (the gateway's clock is ahead?); kept for replay")
        try:
            formatted = batch_lines(message)
        except LineProtocolError as exc:
            raise RejectedMessageError("invalid", gateway, str(exc)) from None
        work = telemetry_work(message)
        work.spans = time_spans(stamps)
        return Decoded(gateway, kind, formatted.lines, work, seq=message.seq, skipped_empty=formatted.skipped_empty)
    return Decoded(gateway, kind, [], event_work(message))
