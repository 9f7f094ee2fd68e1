"""Suppression windows (planned loading, defrost): create, list, delete (audited), and which alerts they cover."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from sqlmodel import Session, col, select

from cloud.db.alerts import Alert
from cloud.db.notify import NotificationAlert, Suppression, SuppressionBase
from cloud.services import audit
from cloud.services.clock import now_ms
from cloud.services.errors import DomainError

MAX_WINDOW_MS: Final = 31 * 86_400_000
_KIND_RE: Final = re.compile(r"^[a-z][a-z0-9_]{0,47}$")  # protocol AlertEvent.kind
_FIELDS: Final = ("reason", "start_at", "end_at", "profile", "gateway_id", "sensor_id", "kinds", "deleted_at")


class SuppressionError(DomainError):
    """A suppression window that cannot be stored as asked."""


def create(session: Session, *, data: SuppressionBase, actor: str) -> Suppression:
    """Store a window; at least one scope (profile, gateway, sensor), end after start, at most 31 days."""
    if data.profile is None and data.gateway_id is None and data.sensor_id is None:
        raise SuppressionError("give at least one of profile, gateway_id, sensor_id (a fleet-wide window would "
                               "silence every alert)")
    if data.end_at <= data.start_at:
        raise SuppressionError("end_at must be after start_at")
    if data.end_at - data.start_at > MAX_WINDOW_MS:
        raise SuppressionError("a window is at most 31 days")
    for kind in data.kinds or ():
        if not _KIND_RE.match(kind):
            raise SuppressionError(f"kind {kind[:60]!r} is not an alert kind (a-z, 0-9, _)")
    row = Suppression(**data.model_dump(exclude={"kinds"}), kinds=sorted(set(data.kinds)) if data.kinds else None,
                      created_by=actor, created_at=now_ms())
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action="suppression.create", target_type="suppression",
                 target_id=str(row.id), after=audit.snapshot(row, _FIELDS))
    return row


def list_windows(session: Session, *, active_at: int | None = None, include_deleted: bool = False,
                 limit: int = 100, offset: int = 0) -> Sequence[Suppression]:
    """Windows newest first; `active_at`: only those covering that instant."""
    query = select(Suppression)
    if not include_deleted:
        query = query.where(col(Suppression.deleted_at).is_(None))
    if active_at is not None:
        query = query.where(Suppression.start_at <= active_at, Suppression.end_at > active_at)
    return session.exec(query.order_by(col(Suppression.id).desc()).offset(offset).limit(limit)).all()


def delete(session: Session, *, window: Suppression, actor: str) -> Suppression:
    """Mark deleted (alerts it already suppressed stay marked; new ones are notified again)."""
    if window.deleted_at is not None:
        raise SuppressionError("the window is already deleted", kind="conflict")
    before = audit.snapshot(window, _FIELDS)
    window.deleted_at, window.deleted_by = now_ms(), actor
    session.add(window)
    audit.record(session, actor=actor, action="suppression.delete", target_type="suppression",
                 target_id=str(window.id), before=before, after=audit.snapshot(window, _FIELDS))
    return window


def matches(window: Suppression, alert: Alert) -> bool:
    """Whether `window` covers `alert` (started inside it, every given scope equal, kind listed or any)."""
    return (window.deleted_at is None and window.start_at <= alert.started_at < window.end_at
            and window.profile in (None, alert.profile) and window.gateway_id in (None, alert.gateway_id)
            and window.sensor_id in (None, alert.sensor_id) and (not window.kinds or alert.kind in window.kinds))


def covering(session: Session, *, alerts: Sequence[Alert]) -> dict[str, Suppression]:
    """alert id → the first live window covering it, for the alerts any window covers."""
    if not alerts:
        return {}
    first, last = min(a.started_at for a in alerts), max(a.started_at for a in alerts)
    windows = session.exec(select(Suppression).where(col(Suppression.deleted_at).is_(None),
                                                     Suppression.start_at <= last, Suppression.end_at > first)
                           .order_by(col(Suppression.id))).all()
    found: dict[str, Suppression] = {}
    for alert in alerts:
        for window in windows:
            if matches(window, alert):
                found[alert.id] = window
                break
    return found


def suppressed_alert_ids(session: Session, *, window_id: int) -> list[str]:
    """Alerts this window kept from being notified (on any channel)."""
    rows = session.exec(select(NotificationAlert.alert_id).where(NotificationAlert.suppression_id == window_id)
                        .distinct().order_by(col(NotificationAlert.alert_id))).all()
    return list(rows)
