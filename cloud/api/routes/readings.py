"""`GET /api/v1/sensors/{sensor_id}/readings`: one sensor's stored readings in a time range."""

from __future__ import annotations

import logging
import re
import time
from datetime import datetime
from typing import Final

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from cloud.api.deps import InfluxDep, ReadingsReader
from cloud.api.errors import BadParameterError
from cloud.readings import MAX_READINGS, sensor_readings

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", tags=["readings"])

DAY_MS: Final = 86_400_000
DEFAULT_RANGE_MS: Final = DAY_MS
MAX_RANGE_MS: Final = 31 * DAY_MS
MIN_TS_MS: Final = 0
MAX_TS_MS: Final = 4_102_444_800_000  # 2100-01-01
_MAC_RE: Final = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")  # fullmatch: `$` lets a trailing newline pass
_SPACE_OFFSET_RE: Final = re.compile(r" (\d{2}(:?\d{2})?)$")  # '+02:00' arrives as ' 02:00' when not URL-encoded


class ReadingOut(BaseModel):
    """One stored reading; fields the gateway did not send are null."""

    ts: int
    gateway: str
    profile: str
    temp_c: float | None
    rh_pct: float | None
    battery_mv: int | None
    rssi_dbm: int | None
    anomaly_score: float | None
    seq: int | None


class ReadingsOut(BaseModel):
    """A sensor's readings with start <= ts < end (epoch ms), oldest first."""

    sensor: str
    start: int
    end: int
    count: int
    readings: list[ReadingOut]


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


@router.get(
    "/sensors/{sensor_id}/readings",
    summary="Readings of one sensor in a time range",
    description=(
        "Readings with start <= ts < end, oldest first. `start` and `end` are epoch milliseconds or ISO-8601 "
        "with a timezone; `end` defaults to now and `start` to end − 24 h; the range may span at most 31 days. "
        f"At most {MAX_READINGS} readings are returned (the header X-Coldwatch-Truncated: true says when more "
        "exist). `sensor_id` is a MAC address; upper case and '-' separators are accepted."
    ),
    responses={422: {"description": "a parameter is invalid; the body names it"},
               503: {"description": "InfluxDB is unavailable"}},
)
def get_sensor_readings(
    sensor_id: str,
    user: ReadingsReader,
    influx: InfluxDep,
    response: Response,
    start: str | None = Query(None, description="epoch ms or ISO-8601 with timezone (inclusive)"),
    end: str | None = Query(None, description="epoch ms or ISO-8601 with timezone (exclusive)"),
) -> ReadingsOut:
    """Validate the parameters, read from InfluxDB with bound parameters, return oldest first."""
    sensor = normalise_sensor_id(sensor_id)
    start_ms, end_ms = resolve_range(start, end, int(time.time() * 1000))
    rows = sensor_readings(influx, sensor=sensor, start_ms=start_ms, end_ms=end_ms, limit=MAX_READINGS)
    if len(rows) >= MAX_READINGS:
        response.headers["X-Coldwatch-Truncated"] = "true"
        log.warning("readings truncated sensor=%s start=%d end=%d limit=%d", sensor, start_ms, end_ms, MAX_READINGS)
    return ReadingsOut(
        sensor=sensor, start=start_ms, end=end_ms, count=len(rows),
        readings=[ReadingOut(**row) for row in rows],
    )
