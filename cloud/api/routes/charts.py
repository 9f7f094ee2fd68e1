"""`GET /api/v1/sensors/{sensor_id}/series`: a sensor's readings in time buckets for charts (any range up to
31 days in at most a few thousand points), with the profile's band and the data gaps in that range."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from cloud.api.deps import InfluxDep, SessionDep, Viewer
from cloud.api.params import normalise_sensor_id, resolve_range
from cloud.db.fleet import Sensor
from cloud.db.ingest import IngestGapPublic
from cloud.services import completeness
from cloud.tsdb.series import DEFAULT_POINTS, MAX_POINTS, Bucket, sensor_series
from protocol.profiles import PROFILES

router = APIRouter(prefix="/api/v1", tags=["readings"])


class SeriesOut(BaseModel):
    """Buckets that hold readings (an empty bucket is left out: a hole, not a line), the band, the gaps."""

    sensor: str
    start: int
    end: int
    bucket_ms: int
    profile: str | None
    band_low_c: float | None
    band_high_c: float | None
    buckets: list[Bucket]  # empty buckets left out: a hole, not a line
    gaps: list[IngestGapPublic]


@router.get("/sensors/{sensor_id}/series", response_model=SeriesOut,
            summary="Chart data: readings in time buckets, the profile's band, completeness gaps",
            responses={422: {"description": "a parameter is invalid; the body names it"},
                       503: {"description": "InfluxDB is unavailable"}})
def get_series(
    sensor_id: str, user: Viewer, session: SessionDep, influx: InfluxDep,
    start: Annotated[str | None, Query(description="epoch ms or ISO-8601 (default end − 24 h)")] = None,
    end: Annotated[str | None, Query(description="epoch ms or ISO-8601 (default now)")] = None,
    points: Annotated[int, Query(ge=10, le=MAX_POINTS, description="at most this many buckets")] = DEFAULT_POINTS,
) -> SeriesOut:
    """Bucket width: the smallest readable width (1 s, 2 s, 5 s … 1 d) giving at most `points` buckets."""
    sensor = normalise_sensor_id(sensor_id)
    start_ms, end_ms = resolve_range(start, end, int(time.time() * 1000))
    row = session.get(Sensor, sensor)
    profile = row.profile if row else None
    band = PROFILES.get(profile) if profile else None
    width, buckets = sensor_series(influx, sensor=sensor, start_ms=start_ms, end_ms=end_ms, points=points)
    gaps = completeness.list_gaps(session, sensor_id=sensor, kind="sensor", start=start_ms, end=end_ms)
    return SeriesOut(sensor=sensor, start=start_ms, end=end_ms, bucket_ms=width, profile=profile,
                     band_low_c=band.low_c if band else None, band_high_c=band.high_c if band else None,
                     buckets=buckets,
                     gaps=[IngestGapPublic.model_validate(g) for g in gaps])
