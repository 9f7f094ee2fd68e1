"""`/api/v1/alerts`: list with filters and paging, counts by status, detail with history and the readings
around it, and the staff workflow (acknowledge, assign, comment, resolve with a reason code, reopen)."""

from __future__ import annotations

import logging
from typing import Annotated, Final, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from cloud.api.deps import InfluxDep, Offset, SessionDep, Staff, Viewer
from cloud.api.params import parse_time
from cloud.db.alerts import Alert, AlertHistoryPublic, AlertPublic
from cloud.services import alerts, users
from cloud.services.alerts import AlertFilter
from cloud.tsdb.influx import InfluxError
from cloud.tsdb.readings import StoredReading, sensor_readings

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

CONTEXT_MS: Final = 30 * 60 * 1000
Status = Literal["open", "acknowledged", "resolved"]
Severity = Literal["info", "warning", "critical"]
ReasonCode = Literal["false_alarm", "defrost", "loading", "real_excursion", "sensor_fault", "other"]


class AlertPage(BaseModel):
    """A page of alerts, newest first, and how many match in all."""

    total: int
    limit: int
    offset: int
    items: list[AlertPublic]


class AlertDetail(BaseModel):
    """An alert, its history, and the sensor's readings from 30 min before it to 30 min after it
    (`readings` is null when InfluxDB is unavailable)."""

    alert: AlertPublic
    history: list[AlertHistoryPublic]
    readings: list[StoredReading] | None


class CommentIn(BaseModel):
    """A comment (optional on acknowledge)."""

    comment: str | None = Field(default=None, min_length=1, max_length=2000)


class AssignIn(BaseModel):
    """User name to assign (null unassigns)."""

    assignee: str | None = Field(default=None, max_length=64)


class CommentRequired(BaseModel):
    """A comment's text."""

    text: str = Field(min_length=1, max_length=2000)


class ResolveIn(BaseModel):
    """Why the alert is closed; `other` needs a note. The code labels the data for retraining."""

    reason_code: ReasonCode
    note: str | None = Field(default=None, max_length=2000)


def _filters(status: Status | None, severity: Severity | None, profile: str | None, gateway: str | None,
             sensor: str | None, start: str | None, end: str | None, site: str | None = None) -> AlertFilter:
    return AlertFilter(status=status, severity=severity, profile=profile, gateway_id=gateway, sensor_id=sensor,
                       site=site, start=parse_time(start, "start") if start else None,
                       end=parse_time(end, "end") if end else None)


FilterQ = Annotated[str | None, Query(max_length=64)]
SiteQ = Annotated[str | None, Query(max_length=200, description="only alerts of the gateways at this site")]
SORT_PATTERN: Final = "^-?(" + "|".join(alerts.SORT_KEYS) + ")$"


@router.get("", response_model=AlertPage, summary="List alerts with filters and paging")
def list_alerts(
    user: Viewer, session: SessionDep, status: Status | None = None, severity: Severity | None = None,
    profile: FilterQ = None, gateway: FilterQ = None, sensor: FilterQ = None, site: SiteQ = None,
    start: Annotated[str | None, Query(description="started at or after (epoch ms or ISO-8601)")] = None,
    end: Annotated[str | None, Query(description="started before (epoch ms or ISO-8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=alerts.MAX_PAGE)] = 100, offset: Offset = 0,
    sort: Annotated[str, Query(pattern=SORT_PATTERN, description="started_at, updated_at, severity, status, "
                                                                  "sensor_id, gateway_id or kind; - for descending")]
    = "-started_at",
) -> AlertPage:
    """Newest first (by start time) unless `sort` says otherwise."""
    rows, total = alerts.list_alerts(session, filters=_filters(status, severity, profile, gateway, sensor, start,
                                                               end, site), limit=limit, offset=offset, sort=sort)
    return AlertPage(total=total, limit=limit, offset=offset, items=[AlertPublic.model_validate(a) for a in rows])


@router.get("/counts", response_model=dict[str, int], summary="Alert counts by workflow status")
def counts(
    user: Viewer, session: SessionDep, severity: Severity | None = None, profile: FilterQ = None,
    gateway: FilterQ = None, sensor: FilterQ = None, start: str | None = None, end: str | None = None,
    site: SiteQ = None,
) -> dict[str, int]:
    """{"open": n, "acknowledged": n, "resolved": n} under the same filters as the list."""
    return alerts.counts_by_status(session, filters=_filters(None, severity, profile, gateway, sensor, start, end,
                                                             site))


def _get(session: SessionDep, alert_id: str) -> Alert:
    alert = session.get(Alert, alert_id) if len(alert_id) <= 32 else None
    if alert is None:
        raise HTTPException(status_code=404, detail="no such alert")
    return alert


@router.get("/{alert_id}", response_model=AlertDetail, summary="An alert with its history and nearby readings")
def detail(alert_id: str, user: Viewer, session: SessionDep, influx: InfluxDep) -> AlertDetail:
    """The alert, every event/action/comment, and readings ±30 min around it."""
    alert = _get(session, alert_id)
    readings: list[StoredReading] | None
    try:
        readings = sensor_readings(influx, sensor=alert.sensor_id, start_ms=alert.started_at - CONTEXT_MS,
                                   end_ms=(alert.ended_at or alert.updated_at) + CONTEXT_MS, limit=20_000)
    except InfluxError as exc:
        log.warning("alert detail without readings alert=%s sensor=%s error=%s", alert.id, alert.sensor_id, exc)
        readings = None
    return AlertDetail(alert=AlertPublic.model_validate(alert),
                       history=[AlertHistoryPublic.model_validate(h) for h in alerts.history(session,
                                                                                             alert_id=alert.id)],
                       readings=readings)


def _done(session: SessionDep, alert: Alert) -> AlertPublic:
    session.commit()
    return AlertPublic.model_validate(alert)


@router.post("/{alert_id}/acknowledge", response_model=AlertPublic, summary="Acknowledge (staff)")
def acknowledge(alert_id: str, body: CommentIn, user: Staff, session: SessionDep) -> AlertPublic:
    """open → acknowledged, with an optional comment."""
    alert = _get(session, alert_id)
    alerts.acknowledge(session, alert=alert, actor=user.username, comment=body.comment)
    return _done(session, alert)


@router.post("/{alert_id}/assign", response_model=AlertPublic, summary="Assign to a user (staff)")
def assign(alert_id: str, body: AssignIn, user: Staff, session: SessionDep) -> AlertPublic:
    """The assignee must be an existing user."""
    alert = _get(session, alert_id)
    if body.assignee is not None and users.get_user(session, username=body.assignee) is None:
        raise HTTPException(status_code=422, detail=f"no user {body.assignee!r}")
    alerts.assign(session, alert=alert, actor=user.username, assignee=body.assignee)
    return _done(session, alert)


@router.post("/{alert_id}/comments", response_model=AlertPublic, status_code=201, summary="Comment (staff)")
def comment(alert_id: str, body: CommentRequired, user: Staff, session: SessionDep) -> AlertPublic:
    """Add a comment to the history."""
    alert = _get(session, alert_id)
    alerts.comment(session, alert=alert, actor=user.username, text=body.text)
    return _done(session, alert)


@router.post("/{alert_id}/resolve", response_model=AlertPublic, summary="Resolve with a reason code (staff)")
def resolve(alert_id: str, body: ResolveIn, user: Staff, session: SessionDep) -> AlertPublic:
    """Close the alert: false_alarm, defrost, loading, real_excursion, sensor_fault or other (+ note)."""
    alert = _get(session, alert_id)
    alerts.resolve(session, alert=alert, actor=user.username, code=body.reason_code, note=body.note)
    return _done(session, alert)


@router.post("/{alert_id}/reopen", response_model=AlertPublic, summary="Reopen a resolved alert (staff)")
def reopen(alert_id: str, body: CommentIn, user: Staff, session: SessionDep) -> AlertPublic:
    """resolved → acknowledged; the history keeps the earlier resolution."""
    alert = _get(session, alert_id)
    alerts.reopen(session, alert=alert, actor=user.username, comment=body.comment)
    return _done(session, alert)
