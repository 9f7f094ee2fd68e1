"""Shipment tables: a shipment (route, customer, product, own limits, state), the sensors and gateways assigned to
it for a period, and the expiring share links a receiver opens without an account."""

from __future__ import annotations

from typing import Final

from pydantic import model_validator
from sqlalchemy import BigInteger, UniqueConstraint
from sqlmodel import Field, SQLModel

SHIPMENT_STATES: Final = ("planned", "in_transit", "delivered", "cancelled")
DEVICE_KINDS: Final = ("sensor", "gateway")
REFERENCE_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"  # it is a path segment
PROFILE_PATTERN: Final = r"^[a-z][a-z0-9_]{0,31}$"
LANGUAGE_PATTERN: Final = r"^(en|zh_CN)$"  # cloud.db.users.LANGUAGES
MAX_MS: Final = 2**62  # epoch ms that reach SQL are bounded (SQLite refuses past 2**63 - 1 with OverflowError)


class ShipmentBase(SQLModel):
    """What logistics staff say about a shipment."""

    reference: str = Field(min_length=1, max_length=64, schema_extra={"pattern": REFERENCE_PATTERN})
    origin: str | None = Field(default=None, max_length=200)
    destination: str | None = Field(default=None, max_length=200)  # a site's name: arrival there delivers it
    customer: str | None = Field(default=None, max_length=200)
    product: str | None = Field(default=None, max_length=200)  # the product category, in words
    profile: str | None = Field(default=None, max_length=32, schema_extra={"pattern": PROFILE_PATTERN})
    planned_start: int | None = Field(default=None, ge=0, le=MAX_MS, sa_type=BigInteger)
    planned_end: int | None = Field(default=None, ge=0, le=MAX_MS, sa_type=BigInteger)
    temp_low_c: float | None = Field(default=None, ge=-100, le=100)  # the shipment's own limits, where given,
    temp_high_c: float | None = Field(default=None, ge=-100, le=100)  # override the profile's band
    language: str | None = Field(default=None, max_length=16, schema_extra={"pattern": LANGUAGE_PATTERN})
    # the record's language (a LANGUAGES code, `en` or `zh_CN`; None: English)


def _limits_in_order(low: float | None, high: float | None) -> None:
    if low is not None and high is not None and low >= high:
        raise ValueError(f"temp_low_c ({low}) must be below temp_high_c ({high})")


class ShipmentCreate(ShipmentBase):
    """A new shipment (state `planned`)."""

    @model_validator(mode="after")
    def _check(self) -> ShipmentCreate:
        _limits_in_order(self.temp_low_c, self.temp_high_c)
        if self.planned_start is not None and self.planned_end is not None and self.planned_end <= self.planned_start:
            raise ValueError("planned_end must be after planned_start")
        return self


class ShipmentUpdate(SQLModel):
    """Editable fields (only those sent change); the state changes through its own endpoint."""

    origin: str | None = Field(default=None, max_length=200)
    destination: str | None = Field(default=None, max_length=200)
    customer: str | None = Field(default=None, max_length=200)
    product: str | None = Field(default=None, max_length=200)
    profile: str | None = Field(default=None, max_length=32, schema_extra={"pattern": PROFILE_PATTERN})
    planned_start: int | None = Field(default=None, ge=0, le=MAX_MS)
    planned_end: int | None = Field(default=None, ge=0, le=MAX_MS)
    temp_low_c: float | None = Field(default=None, ge=-100, le=100)
    temp_high_c: float | None = Field(default=None, ge=-100, le=100)
    language: str | None = Field(default=None, max_length=16, schema_extra={"pattern": LANGUAGE_PATTERN})

    @model_validator(mode="after")
    def _check(self) -> ShipmentUpdate:
        _limits_in_order(self.temp_low_c, self.temp_high_c)
        return self


class ShipmentPublic(ShipmentBase):
    """A shipment as the API shows it."""

    id: int
    state: str
    started_at: int | None
    delivered_at: int | None
    created_at: int
    created_by: str
    record_sha256: str | None


class Shipment(ShipmentBase, table=True):
    """One shipment; readings belong to it by time, through its assignments (never by re-tagging series)."""

    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(max_length=64, unique=True, index=True)
    state: str = Field(default="planned", max_length=16, index=True)
    started_at: int | None = Field(default=None, sa_type=BigInteger)
    delivered_at: int | None = Field(default=None, sa_type=BigInteger)
    created_at: int = Field(sa_type=BigInteger)
    created_by: str = Field(max_length=100)
    record_sha256: str | None = Field(default=None, max_length=64)  # of the record PDF made at delivery


class AssignmentCreate(SQLModel):
    """Put a sensor or gateway on a shipment from `start` (default: now, or the shipment's start)."""

    kind: str = Field(default="sensor", max_length=16)
    device_id: str = Field(min_length=1, max_length=64)
    start: int | None = Field(default=None, ge=0, le=MAX_MS)


class AssignmentPublic(SQLModel):
    """A device on a shipment for [start, end) (end None: until delivery)."""

    id: int
    shipment_id: int
    kind: str
    device_id: str
    start: int
    end: int | None
    assigned_by: str


class ShipmentAssignment(SQLModel, table=True):
    """A sensor or gateway travelling with a shipment for [start, end)."""

    __tablename__ = "shipment_assignment"

    id: int | None = Field(default=None, primary_key=True)
    shipment_id: int = Field(foreign_key="shipment.id", index=True)
    kind: str = Field(max_length=16)  # sensor | gateway
    device_id: str = Field(max_length=64, index=True)
    start: int = Field(sa_type=BigInteger)
    end: int | None = Field(default=None, sa_type=BigInteger)
    assigned_by: str = Field(max_length=100)


class ShareCreate(SQLModel):
    """A read-only link to the shipment's record for someone without an account."""

    days: float = Field(default=14.0, gt=0, le=365)


class ShareLink(SQLModel):
    """The link, shown once (only the token's SHA-256 is stored)."""

    url: str
    token: str
    expires_at: int


class ShipmentShare(SQLModel, table=True):
    """A share token of a shipment; only its SHA-256 is stored."""

    __tablename__ = "shipment_share"
    __table_args__ = (UniqueConstraint("token_hash", name="uq_shipment_share_token"),)

    id: int | None = Field(default=None, primary_key=True)
    shipment_id: int = Field(foreign_key="shipment.id", index=True)
    token_hash: str = Field(max_length=64)
    created_by: str = Field(max_length=100)
    created_at: int = Field(sa_type=BigInteger)
    expires_at: int = Field(sa_type=BigInteger)
    revoked: bool = False
