"""Fleet tables: gateways (provisioning, last status/reported) and sensors (profile, assignment)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Column
from sqlmodel import Field, SQLModel


class GatewayBase(SQLModel):
    """What an operator says about a gateway."""

    name: str | None = Field(default=None, max_length=200)
    site: str | None = Field(default=None, max_length=200)


class GatewayCreate(GatewayBase):
    """Provisioning request: the gateway id becomes its broker user name."""

    id: str = Field(min_length=1, max_length=64, schema_extra={"pattern": r"^[a-z0-9][a-z0-9_-]{0,63}$"})


class GatewayUpdate(SQLModel):
    """Editable gateway fields."""

    name: str | None = Field(default=None, max_length=200)
    site: str | None = Field(default=None, max_length=200)


class GatewayPublic(GatewayBase):
    """A gateway as the API shows it (never its credential hash)."""

    id: str
    provisioned: bool
    revoked: bool
    registered_by: str
    created_at: int
    last_seen_at: int | None
    status: str | None
    status_ts: int | None
    agent_version: str | None
    model_version: str | None
    outbox_depth: int | None
    health: dict[str, Any] | None
    reported_desired_version: int | None
    reported_result: str | None
    reported_model_version: str | None
    reported_error: str | None
    reported_ts: int | None


class Gateway(GatewayBase, table=True):
    """A gateway; `mqtt_password_hash` is in mosquitto's own `$7$` (PBKDF2-SHA512) format."""

    id: str = Field(primary_key=True, max_length=64)
    provisioned: bool = False  # False: registered by ingest on first sight (policy `register`)
    revoked: bool = False
    registered_by: str = Field(default="ingest", max_length=100)
    mqtt_password_hash: str | None = Field(default=None, max_length=300)
    created_at: int = Field(sa_type=BigInteger)
    last_seen_at: int | None = Field(default=None, sa_type=BigInteger)
    status: str | None = Field(default=None, max_length=16)
    status_ts: int | None = Field(default=None, sa_type=BigInteger)
    status_session: int | None = Field(default=None, sa_type=BigInteger)  # protocol.messages.Status.session
    last_heard_at: int | None = Field(default=None, sa_type=BigInteger)  # the cloud's clock (silence watchdog)
    agent_version: str | None = Field(default=None, max_length=64)
    model_version: str | None = Field(default=None, max_length=64)
    outbox_depth: int | None = Field(default=None, sa_type=BigInteger)
    health: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    reported_desired_version: int | None = Field(default=None, sa_type=BigInteger)
    reported_result: str | None = Field(default=None, max_length=16)
    reported_model_version: str | None = Field(default=None, max_length=64)
    reported_error: str | None = Field(default=None, max_length=500)
    reported_ts: int | None = Field(default=None, sa_type=BigInteger)


class SensorBase(SQLModel):
    """What staff say about a sensor: its asset profile and what it watches."""

    profile: str | None = Field(default=None, max_length=32, schema_extra={"pattern": r"^[a-z][a-z0-9_]{0,31}$"})
    asset: str | None = Field(default=None, max_length=200)
    shipment: str | None = Field(default=None, max_length=200)
    label: str | None = Field(default=None, max_length=200)


class SensorUpdate(SensorBase):
    """Assignment of a sensor (only the fields sent change)."""


class SensorPublic(SensorBase):
    """A sensor as the API shows it."""

    id: str
    gateway_id: str | None
    first_seen_at: int | None
    last_seen_at: int | None


class Sensor(SensorBase, table=True):
    """A sensor (MAC); registered by ingest on first reading; profile from readings until staff set one."""

    id: str = Field(primary_key=True, max_length=17)
    gateway_id: str | None = Field(default=None, max_length=64, index=True)
    profile_pinned: bool = False  # staff chose the profile: readings no longer change it
    first_seen_at: int | None = Field(default=None, sa_type=BigInteger)
    last_seen_at: int | None = Field(default=None, sa_type=BigInteger)
