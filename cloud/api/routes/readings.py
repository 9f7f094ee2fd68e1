"""`GET /api/v1/sensors/{sensor_id}/readings`: one sensor's stored readings in a time range."""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from cloud.api.deps import InfluxDep, ReadingsReader
from cloud.api.params import normalise_sensor_id, resolve_range
from cloud.tsdb.readings import MAX_READINGS, StoredReading, sensor_readings

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", tags=["readings"])



class ReadingsOut(BaseModel):
    """A sensor's readings with start <= ts < end (epoch ms), oldest first."""

    sensor: str
    start: int
    end: int
    count: int
    readings: list[StoredReading]  # one reading as stored; fields the gateway did not send are null




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
        readings=rows,
    )
