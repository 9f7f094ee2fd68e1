"""`/api/v1/reports/sensors/{sensor_id}`: a sensor's report over a range, as JSON, CSV or PDF."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response

from cloud import i18n
from cloud.api.deps import InfluxDep, SessionDep, Viewer
from cloud.api.params import normalise_sensor_id, resolve_range
from cloud.db.fleet import Sensor
from cloud.report_pdf import report_pdf
from cloud.services import completeness
from cloud.tsdb.reports import minute_rows, report_csv, sensor_report

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])


@router.get("/sensors/{sensor_id}", summary="Sensor report: completeness, time out of band, min/max/mean, MKT",
            responses={200: {"content": {"text/csv": {}, "application/pdf": {}}}})
def get_sensor_report(
    sensor_id: str, user: Viewer, session: SessionDep, influx: InfluxDep, request: Request,
    start: Annotated[str | None, Query(description="epoch ms or ISO-8601 (default end − 24 h)")] = None,
    end: Annotated[str | None, Query(description="epoch ms or ISO-8601 (default now)")] = None,
    format: Annotated[Literal["json", "csv", "pdf"], Query()] = "json",
) -> Any:
    """At most 31 days; the band is the sensor's profile. CSV: `metric,value` rows, then the excursions.
    PDF: the same numbers, a chart of the per-minute means with the band and the gaps, the excursions; in the
    user's language (else the Accept-Language header's, else English)."""
    sensor = normalise_sensor_id(sensor_id)
    start_ms, end_ms = resolve_range(start, end, int(time.time() * 1000))
    row = session.get(Sensor, sensor)
    report = sensor_report(influx, session, sensor=sensor, profile=row.profile if row else None, start=start_ms,
                           end=end_ms)
    name = f"coldwatch-{sensor.replace(':', '')}-{start_ms}-{end_ms}"
    if format == "csv":
        return Response(report_csv(report), media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    if format == "pdf":
        points = [(ts, mean) for ts, _, _, _, mean in minute_rows(influx, sensor=sensor, start=start_ms, end=end_ms)]
        gaps = [(g.after_ts, g.before_ts) for g in completeness.list_gaps(session, sensor_id=sensor, kind="sensor",
                                                                          start=start_ms, end=end_ms)]
        language = i18n.choose(user.language, request.headers.get("accept-language"))
        body = report_pdf(report, points=points, gaps=gaps, label=(row.label or row.asset) if row else None,
                          language=language)
        return Response(body, media_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="{name}.pdf"'})
    return asdict(report)
