"""Every table, imported in one place so that `init_schema` registers them all."""

from __future__ import annotations

from sqlmodel import Field, SQLModel

from cloud.db.alerts import Alert, AlertHistory
from cloud.db.audit import AuditEntry
from cloud.db.fleet import Gateway, Sensor
from cloud.db.ingest import DeadLetter, IngestGap, IngestJournal, ReplayRequest, SeqStream
from cloud.db.notify import Notification, NotificationAlert, NotifyChannel, Suppression
from cloud.db.registry import GatewayToken, ModelArtifact
from cloud.db.rollouts import GatewayDesired, GatewayShadow, Rollout, RolloutTarget
from cloud.db.shipments import Shipment, ShipmentAssignment, ShipmentShare
from cloud.db.training import TrainingJob
from cloud.db.users import AuthToken, User


class SchemaInfo(SQLModel, table=True):
    """One row: the schema version this database was created with."""

    __tablename__ = "schema_info"

    id: int = Field(default=1, primary_key=True)
    version: int


__all__ = [
    "Alert",
    "AlertHistory",
    "AuditEntry",
    "AuthToken",
    "DeadLetter",
    "Gateway",
    "GatewayDesired",
    "GatewayShadow",
    "GatewayToken",
    "IngestGap",
    "IngestJournal",
    "ModelArtifact",
    "Notification",
    "NotificationAlert",
    "NotifyChannel",
    "ReplayRequest",
    "Rollout",
    "RolloutTarget",
    "SchemaInfo",
    "Sensor",
    "SeqStream",
    "Shipment",
    "ShipmentAssignment",
    "ShipmentShare",
    "Suppression",
    "TrainingJob",
    "User",
]
