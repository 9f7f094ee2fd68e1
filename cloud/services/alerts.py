"""Alerts: apply gateway events idempotently, and the staff workflow (acknowledge, assign, comment, resolve)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from sqlalchemy import case, func
from sqlmodel import Session, col, select

from cloud.db.alerts import RESOLUTION_CODES, Alert, AlertHistory
from cloud.db.fleet import Gateway, Sensor
from cloud.services import audit
from cloud.services.clock import now_ms
from cloud.services.errors import DomainError
from protocol.messages import AlertEvent

_WORKFLOW_FIELDS: Final = ("status", "assignee", "resolution", "resolution_note")
MAX_PAGE: Final = 500
log = logging.getLogger(__name__)


class AlertError(DomainError):
    """A workflow step that does not apply to the alert in its current state."""


EventOutcome = Literal["applied", "duplicate", "refused"]


def foreign_alert(alert: Alert, event: AlertEvent) -> str | None:
    """Why `event` may not touch `alert` (None: it may): an event speaks only for its own gateway's alert of the
    same sensor and kind. Alert ids are visible to every viewer; without this, one gateway could downgrade or
    end another's alert (and with it, its notifications)."""
    for field_name, mine, theirs in (("gateway", alert.gateway_id, event.gateway), ("sensor", alert.sensor_id,
                                     event.sensor), ("kind", alert.kind, event.kind)):
        if mine != theirs:
            return f"{field_name} {theirs!r} is not the alert's {mine!r}"
    return None


def apply_event(session: Session, *, event: AlertEvent) -> EventOutcome:
    """Open, update or clear the alert `event.id`: "applied"; "duplicate" when this event was already applied;
    "refused" (nothing changes) when the alert belongs to another gateway, sensor or kind (`foreign_alert`).

    Events may arrive twice or out of order (two workers, redelivery): each event seq is recorded once,
    and the alert's fields come from the newest event (by `updated_at`); a `clear` is never undone.
    """
    alert = session.get(Alert, event.id, with_for_update=True)
    if alert is not None and (why := foreign_alert(alert, event)) is not None:
        log.warning("security: alert event refused gateway=%s alert=%s seq=%d reason=%s", event.gateway, event.id,
                    event.seq, why)
        return "refused"
    seen = session.exec(select(AlertHistory.id).where(AlertHistory.alert_id == event.id,
                                                      AlertHistory.event_seq == event.seq)).first()
    if seen is not None:
        return "duplicate"
    now = now_ms()
    if alert is None:
        sensor = session.get(Sensor, event.sensor)
        alert = Alert(id=event.id, gateway_id=event.gateway, sensor_id=event.sensor, kind=event.kind,
                      severity=event.severity, source=event.source, device_state=event.state,
                      started_at=event.started_at, updated_at=event.updated_at, received_at=now,
                      last_event_at=-1, profile=sensor.profile if sensor else None)
    if event.value is not None:
        alert.peak = event.value if alert.peak is None else _further(alert.peak, event.value, event.threshold)
    if event.updated_at >= alert.last_event_at and alert.device_state != "clear":
        alert.severity, alert.device_state = event.severity, event.state
        alert.updated_at, alert.last_event_at = event.updated_at, event.updated_at
        alert.value, alert.threshold, alert.reason = event.value, event.threshold, event.reason
        alert.model_version = event.model_version
    if event.state == "clear":
        alert.device_state, alert.ended_at = "clear", event.ended_at or event.updated_at
    session.add(alert)
    session.flush()
    session.add(AlertHistory(alert_id=event.id, at=event.updated_at, actor=f"gateway:{event.gateway}",
                             action=event.state, event_seq=event.seq,
                             detail={"value": event.value, "severity": event.severity, "reason": event.reason}))
    return "applied"


def _further(peak: float, value: float, threshold: float | None) -> float:
    """The value further from the threshold (an excursion's peak is its worst point)."""
    if threshold is None:
        return max(peak, value)
    return value if abs(value - threshold) > abs(peak - threshold) else peak


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertFilter:
    """List filters; None means any."""

    status: str | None = None
    severity: str | None = None
    profile: str | None = None
    gateway_id: str | None = None
    sensor_id: str | None = None
    site: str | None = None  # alerts of the gateways at this site
    start: int | None = None  # started_at >= start
    end: int | None = None  # started_at < end


def _filtered(query: Any, f: AlertFilter) -> Any:
    for column, value in ((Alert.status, f.status), (Alert.severity, f.severity), (Alert.profile, f.profile),
                          (Alert.gateway_id, f.gateway_id), (Alert.sensor_id, f.sensor_id)):
        if value is not None:
            query = query.where(column == value)
    if f.site is not None:
        query = query.where(col(Alert.gateway_id).in_(select(Gateway.id).where(Gateway.site == f.site)))
    if f.start is not None:
        query = query.where(Alert.started_at >= f.start)
    if f.end is not None:
        query = query.where(Alert.started_at < f.end)
    return query


_SEVERITY_RANK: Final = case({"info": 0, "warning": 1, "critical": 2}, value=col(Alert.severity), else_=-1)
_STATUS_RANK: Final = case({"open": 0, "acknowledged": 1, "resolved": 2}, value=col(Alert.status), else_=3)
SORT_KEYS: Final = ("started_at", "updated_at", "severity", "status", "sensor_id", "gateway_id", "kind")


def _order(sort: str) -> list[Any]:
    """`sort` is a key of SORT_KEYS, `-` in front for descending; ties newest first, then by id."""
    key = sort.removeprefix("-")
    if key not in SORT_KEYS:
        raise AlertError(f"sort {sort!r} is not one of {', '.join(SORT_KEYS)} (prefix - for descending)")
    column = {"severity": _SEVERITY_RANK, "status": _STATUS_RANK}.get(key, getattr(Alert, key))
    first = column.desc() if sort.startswith("-") else column.asc()
    return [first, col(Alert.started_at).desc(), col(Alert.id)]


def list_alerts(session: Session, *, filters: AlertFilter, limit: int = 100, offset: int = 0,
                sort: str = "-started_at") -> tuple[Sequence[Alert], int]:
    """(a page of alerts, newest first unless `sort` says otherwise, total matching)."""
    total = session.exec(_filtered(select(func.count()).select_from(Alert), filters)).one()
    rows = session.exec(_filtered(select(Alert), filters).order_by(*_order(sort))
                        .offset(offset).limit(min(limit, MAX_PAGE))).all()
    return rows, int(total)


def counts_by_status(session: Session, *, filters: AlertFilter) -> dict[str, int]:
    """{"open": n, "acknowledged": n, "resolved": n} for the filter (status filter ignored)."""
    f = dataclasses.replace(filters, status=None)
    rows = session.exec(_filtered(select(Alert.status, func.count()).group_by(Alert.status), f)).all()
    counts = {"open": 0, "acknowledged": 0, "resolved": 0}
    counts.update({status: int(n) for status, n in rows})
    return counts


def history(session: Session, *, alert_id: str) -> Sequence[AlertHistory]:
    """An alert's events, actions and comments, oldest first."""
    return session.exec(select(AlertHistory).where(AlertHistory.alert_id == alert_id)
                        .order_by(col(AlertHistory.at), col(AlertHistory.id))).all()


def _step(session: Session, alert: Alert, *, actor: str, action: str, comment: str | None = None,
          detail: dict[str, Any] | None = None, before: dict[str, Any]) -> Alert:
    now = now_ms()
    session.add(alert)
    session.add(AlertHistory(alert_id=alert.id, at=now, actor=actor, action=action, comment=comment, detail=detail))
    audit.record(session, actor=actor, action=f"alert.{action}", target_type="alert", target_id=alert.id,
                 before=before, after=audit.snapshot(alert, _WORKFLOW_FIELDS) | ({"comment": comment} if comment
                                                                                else {}))
    return alert


def acknowledge(session: Session, *, alert: Alert, actor: str, comment: str | None = None) -> Alert:
    """open → acknowledged; AlertError when resolved."""
    before = audit.snapshot(alert, _WORKFLOW_FIELDS)
    if alert.status == "resolved":
        raise AlertError("a resolved alert cannot be acknowledged", kind="conflict")
    if alert.status == "open":
        alert.status, alert.acknowledged_by, alert.acknowledged_at = "acknowledged", actor, now_ms()
    return _step(session, alert, actor=actor, action="acknowledge", comment=comment, before=before)


def assign(session: Session, *, alert: Alert, actor: str, assignee: str | None) -> Alert:
    """Give the alert to a user (None: unassign)."""
    before = audit.snapshot(alert, _WORKFLOW_FIELDS)
    alert.assignee = assignee
    return _step(session, alert, actor=actor, action="assign", detail={"assignee": assignee}, before=before)


def comment(session: Session, *, alert: Alert, actor: str, text: str) -> Alert:
    """Add a comment."""
    return _step(session, alert, actor=actor, action="comment", comment=text,
                 before=audit.snapshot(alert, _WORKFLOW_FIELDS))


def resolve(session: Session, *, alert: Alert, actor: str, code: str, note: str | None = None) -> Alert:
    """Close the alert with a reason code (these label data for retraining)."""
    if code not in RESOLUTION_CODES:
        raise AlertError(f"reason code {code!r} is not one of {', '.join(RESOLUTION_CODES)}")
    if code == "other" and not note:
        raise AlertError("reason code 'other' needs a note")
    before = audit.snapshot(alert, _WORKFLOW_FIELDS)
    if alert.status == "resolved":
        raise AlertError("the alert is already resolved; reopen it first", kind="conflict")
    now = now_ms()
    alert.status, alert.resolution, alert.resolution_note = "resolved", code, note
    alert.resolved_by, alert.resolved_at = actor, now
    if alert.acknowledged_at is None:
        alert.acknowledged_by, alert.acknowledged_at = actor, now
    return _step(session, alert, actor=actor, action="resolve", comment=note, detail={"code": code}, before=before)


def reopen(session: Session, *, alert: Alert, actor: str, comment: str | None = None) -> Alert:
    """resolved → acknowledged (a wrong resolution is corrected, not deleted: the history keeps both)."""
    before = audit.snapshot(alert, _WORKFLOW_FIELDS)
    if alert.status != "resolved":
        raise AlertError("only a resolved alert can be reopened", kind="conflict")
    alert.status, alert.resolution, alert.resolution_note = "acknowledged", None, None
    alert.resolved_by, alert.resolved_at = None, None
    return _step(session, alert, actor=actor, action="reopen", comment=comment, before=before)
