"""Notification tables: deliveries per channel, which alerts each covered, channel locks, suppression windows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Column, UniqueConstraint
from sqlmodel import Field, SQLModel


class NotifyChannel(SQLModel, table=True):
    """One row per channel: locked (FOR UPDATE) while a process plans or claims, so two never both send."""

    __tablename__ = "notify_channel"

    name: str = Field(primary_key=True, max_length=32)
    created_at: int = Field(sa_type=BigInteger)  # alerts received long before this are never notified


class NotificationPublic(SQLModel):
    """A delivery record as the API shows it."""

    id: int
    channel: str
    kind: str
    gateway_id: str | None
    alert_ids: list[str]
    subject: str
    created_at: int
    next_attempt_at: int
    attempts: int
    last_error: str | None
    sent_at: int | None
    summary_id: int | None


class Notification(SQLModel, table=True):
    """One message on one channel: `alert` (one alert), `incident` (a gateway's roll-up), `escalation`
    (critical alerts still unacknowledged) or `summary` (what the rate limit held back).

    Unsent while `sent_at` is null; a row folded into a summary (`summary_id`) is sent when that summary is.
    `payload` is the content, fixed when planned.
    """

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=32, index=True)
    kind: str = Field(max_length=16)
    gateway_id: str | None = Field(default=None, max_length=64)
    alert_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    subject: str = Field(max_length=300)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    created_at: int = Field(sa_type=BigInteger)
    next_attempt_at: int = Field(sa_type=BigInteger, index=True)
    claimed_until: int | None = Field(default=None, sa_type=BigInteger)
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=500)
    sent_at: int | None = Field(default=None, sa_type=BigInteger, index=True)
    summary_id: int | None = Field(default=None, foreign_key="notification.id")


class NotificationAlert(SQLModel, table=True):
    """What happened to an alert on a channel: `opened` (first notification), `escalation` (round n ≥ 1),
    `suppressed` (inside a suppression window: kept, shown, not notified)."""

    __tablename__ = "notification_alert"
    __table_args__ = (UniqueConstraint("alert_id", "channel", "kind", "round", name="uq_notification_alert"),)

    id: int | None = Field(default=None, primary_key=True)
    alert_id: str = Field(foreign_key="alert.id", max_length=32, index=True)
    channel: str = Field(max_length=32)
    kind: str = Field(max_length=16)
    round: int = 0
    notification_id: int | None = Field(default=None, foreign_key="notification.id")
    suppression_id: int | None = Field(default=None, foreign_key="suppression.id")
    at: int = Field(sa_type=BigInteger)


class SuppressionBase(SQLModel):
    """A planned window (loading, defrost) in which matching alerts are stored and shown but not notified.

    An alert matches when it started in [start_at, end_at), every scope given (profile, gateway, sensor)
    equals the alert's, and its kind is in `kinds` (null or empty: every kind).
    """

    reason: str = Field(max_length=500)
    start_at: int = Field(sa_type=BigInteger)
    end_at: int = Field(sa_type=BigInteger, index=True)
    profile: str | None = Field(default=None, max_length=32)
    gateway_id: str | None = Field(default=None, max_length=64)
    sensor_id: str | None = Field(default=None, max_length=17)
    kinds: list[str] | None = Field(default=None, sa_column=Column(JSON))


class SuppressionPublic(SuppressionBase):
    """A suppression window as the API shows it."""

    id: int
    created_by: str
    created_at: int
    deleted_by: str | None
    deleted_at: int | None


class Suppression(SuppressionBase, table=True):
    """A suppression window; deleting one sets `deleted_at` (alerts it suppressed keep pointing at it)."""

    id: int | None = Field(default=None, primary_key=True)
    created_by: str = Field(max_length=100)
    created_at: int = Field(sa_type=BigInteger)
    deleted_by: str | None = Field(default=None, max_length=100)
    deleted_at: int | None = Field(default=None, sa_type=BigInteger)
