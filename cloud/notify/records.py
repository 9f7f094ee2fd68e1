"""Queries over the notification records (for the API): deliveries by alert, channel, pending."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, select

from cloud.db.notify import Notification, NotificationAlert


def list_notifications(session: Session, *, alert_id: str | None = None, channel: str | None = None,
                       pending: bool | None = None, limit: int = 100, offset: int = 0) -> Sequence[Notification]:
    """Newest first; `alert_id`: those that covered the alert; `pending`: unsent only (True) or sent only (False)."""
    query = select(Notification)
    if alert_id is not None:
        query = query.where(col(Notification.id).in_(select(NotificationAlert.notification_id).where(
            NotificationAlert.alert_id == alert_id, col(NotificationAlert.notification_id).is_not(None))))
    if channel is not None:
        query = query.where(Notification.channel == channel)
    if pending is not None:
        sent = col(Notification.sent_at)
        query = query.where(sent.is_(None) if pending else sent.is_not(None))
    return session.exec(query.order_by(col(Notification.id).desc()).offset(offset).limit(limit)).all()


def marks(session: Session, *, alert_id: str) -> Sequence[NotificationAlert]:
    """What happened to the alert on each channel (opened, escalation rounds, suppressed), oldest first."""
    return session.exec(select(NotificationAlert).where(NotificationAlert.alert_id == alert_id)
                        .order_by(col(NotificationAlert.id))).all()
