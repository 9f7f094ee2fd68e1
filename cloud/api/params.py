"""Request parameters every route reads the same way: a sensor id, a time, a time range; a bad one is a 422 that
names the parameter (BadParameterError)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Final

from cloud.api.errors import BadParameterError

DAY_MS: Final = 86_400_000
DEFAULT_RANGE_MS: Final = DAY_MS
MAX_RANGE_MS: Final = 31 * DAY_MS
MIN_TS_MS: Final = 0
MAX_TS_MS: Final = 4_102_444_800_000  # 2100-01-01
_MAC_RE: Final = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")  # fullmatch: `$` lets a trailing newline pass
_SPACE_OFFSET_RE: Final = re.compile(r" (\d{2}(:?\d{2})?)$")  # '+02:00' arrives as ' 02:00' when not URL-encoded


def normalise_sensor_id(raw: str) -> str:
    """'AA-BB-CC-DD-EE-FF' → 'aa:bb:cc:dd:ee:ff'; BadParameterError if it is not a MAC address."""
    mac = raw.strip().lower().replace("-", ":")
    if not _MAC_RE.fullmatch(mac):
        raise BadParameterError("sensor_id", "bad_sensor_id",
                           f"{raw[:64]!r} is not a MAC address like aa:bb:cc:dd:ee:ff")
    return mac


def parse_time(raw: str, parameter: str) -> int:
    """Epoch milliseconds, or ISO-8601 with a timezone (Z or ±HH:MM), → epoch ms."""
    text = raw.strip()
    if re.fullmatch(r"-?[0-9]{1,16}", text):  # ASCII digits only, and few enough for an epoch in ms
        value = int(text)
    elif re.fullmatch(r"-?\d+", text):
        raise BadParameterError(parameter, "bad_time", f"{raw[:64]!r} is not epoch milliseconds (at most 16 ASCII "
                           "digits)")
    else:
        if "T" in text:
            text = _SPACE_OFFSET_RE.sub(r"+\1", text)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise BadParameterError(parameter, "bad_time", f"{raw[:64]!r} is neither epoch milliseconds nor an "
                               "ISO-8601 time such as 2025-01-31T12:00:00Z") from None
        if parsed.tzinfo is None:
            raise BadParameterError(parameter, "bad_time", f"{raw[:64]!r} has no timezone; add Z or an offset "
                               "such as +02:00")
        value = int(parsed.timestamp() * 1000)
    if not MIN_TS_MS <= value <= MAX_TS_MS:
        raise BadParameterError(parameter, "bad_time", f"{value} is outside 1970-01-01 .. 2100-01-01 (epoch ms)")
    return value


def resolve_range(start: str | None, end: str | None, now_ms: int) -> tuple[int, int]:
    """[start, end) in epoch ms: end defaults to now, start to end − 24 h; at most 31 days."""
    end_ms = parse_time(end, "end") if end is not None else now_ms
    start_ms = parse_time(start, "start") if start is not None else end_ms - DEFAULT_RANGE_MS
    if start_ms >= end_ms:
        raise BadParameterError("start", "range_inverted", f"start ({start_ms}) must be before end ({end_ms})")
    if end_ms - start_ms > MAX_RANGE_MS:
        days = (end_ms - start_ms) / DAY_MS
        raise BadParameterError("start", "range_too_long",
                           f"the range start..end is {days:.1f} days; at most 31 days per request")
    return start_ms, end_ms
