"""Alert tables: an alert (device lifecycle + staff workflow) and its history (events, actions, comments)."""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import JSON, BigInteger, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

RESOLUTION_CODES: Final = ("false_alarm", "defrost", "loading", "real_excursion", "sensor_fault", "other")
WORKFLOW_STATUSES: Final = ("open", "acknowledged", "resolved")


class AlertBase(SQLModel):
    """An alert as the gateway described it (latest event wins)."""

    gateway_id: str = Field(max_length=64, index=True)
    sensor_id: str = Field(max_length=17, index=True)
    kind: str = Field(max_length=48)
    severity: str = Field(max_length=16, index=True)
    source: str = Field(max_length=16)
    device_state: str = Field(max_length=16)  # open | update | clear (the last event's state)
    started_at: int = Field(sa_type=BigInteger, index=True)
    updated_at: int = Field(sa_type=BigInteger)
    ended_at: int | None = Field(default=None, sa_type=BigInteger)
    value: float | None = None
    peak: float | None = None
    threshold: float | None = None
    reason: str = Field(default="", max_length=500)
    model_version: str | None = Field(default=None, max_length=64)
    profile: str | None = Field(default=None, max_length=32, index=True)


class AlertPublic(AlertBase):
    """An alert with its workflow state."""

    id: str
    status: str
    assignee: str | None
    acknowledged_by: str | None
    acknowledged_at: int | None
    resolved_by: str | None
    resolved_at: int | None
    resolution: str | None
    resolution_note: str | None
    received_at: int


class Alert(AlertBase, table=True):
    """One alert; `id` is the protocol's deterministic id, so re-delivery is idempotent."""

    id: str = Field(primary_key=True, max_length=32)
    status: str = Field(default="open", max_length=16, index=True)  # open | acknowledged | resolved
    assignee: str | None = Field(default=None, max_length=100)
    acknowledged_by: str | None = Field(default=None, max_length=100)
    acknowledged_at: int | None = Field(default=None, sa_type=BigInteger)
    resolved_by: str | None = Field(default=None, max_length=100)
    resolved_at: int | None = Field(default=None, sa_type=BigInteger)
    resolution: str | None = Field(default=None, max_length=32)
    resolution_note: str | None = Field(default=None, max_length=2000)
    received_at: int = Field(sa_type=BigInteger)
    last_event_at: int = Field(sa_type=BigInteger)  # updated_at of the newest event applied


class AlertHistoryPublic(SQLModel):
    """One step of an alert's story."""

    id: int
    at: int
    actor: str
    action: str
    comment: str | None
    detail: dict[str, Any] | None


class AlertHistory(SQLModel, table=True):
    """Gateway events (actor `gateway:<id>`, unique per event seq) and staff actions/comments."""

    __tablename__ = "alert_history"
    __table_args__ = (UniqueConstraint("alert_id", "event_seq", name="uq_alert_history_event"),)

    id: int | None = Field(default=None, primary_key=True)
    alert_id: str = Field(foreign_key="alert.id", max_length=32, index=True)
    at: int = Field(sa_type=BigInteger)
    actor: str = Field(max_length=100)
    action: str = Field(max_length=32)  # open/update/clear, acknowledge, assign, comment, resolve, reopen
    event_seq: int | None = Field(default=None, sa_type=BigInteger)
    comment: str | None = Field(default=None, max_length=2000)
    detail: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
