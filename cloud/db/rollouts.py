"""Rollout tables: a rollout of one model to a group of gateways, its per-gateway targets, the desired state
last published to each gateway, and the latest shadow comparison each gateway reported."""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import JSON, BigInteger, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from cloud.services.canary import DEFAULT_ALERT_BUDGET, DEFAULT_MIN_SENSOR_HOURS

ROLLOUT_STATES: Final = ("canary", "promoting", "completed", "halted", "rolled_back")
ACTIVE_STATES: Final = ("canary", "promoting")
# waiting: not sent yet (the rest during the canary phase); sent: desired published, no answer yet;
# shadow: the candidate is on probation; applied: the model is active; failed: rejected / rolled back /
# shadow discarded; reverted: the previous model was sent back.
TARGET_STATES: Final = ("waiting", "sent", "shadow", "applied", "failed", "reverted")


class RolloutCreate(SQLModel):
    """Start a rollout: a model to a group (explicit ids, a site, or every gateway), with a canary share."""

    model: str = Field(max_length=129, description="registered model stem, <name>-<version>")
    gateways: list[str] | None = Field(default=None, description="target gateways (default: all, or `site`)")
    site: str | None = Field(default=None, max_length=200)
    canary_fraction: float = Field(default=0.2, ge=0.0, le=1.0,
                                   description="0: no canary, every target gets the model active at once")
    canaries: list[str] | None = Field(default=None, description="choose the canaries (default: by hash)")
    probation_s: float = Field(default=3600.0, gt=0, le=30 * 86400,
                               description="reading time every canary scores the candidate before a verdict")
    max_alert_ratio: float = Field(default=1.0, gt=0, le=1000,
                                   description="the candidate may raise this many times the current model's alert "
                                               "episodes per sensor-day (never less than the alert budget)")
    min_sensor_hours: float = Field(default=DEFAULT_MIN_SENSOR_HOURS, gt=0, le=1e6,
                                    description="evidence: sensor-hours of shadow scoring, summed over the canaries, "
                                                "before a verdict")
    alert_budget: float | None = Field(default=None, gt=0, le=1000,
                                       description="alert episodes per sensor-day a first model may raise (default: "
                                                   "the model manifest's, else the training default)")


class RolloutBase(SQLModel):
    """A rollout's plan and state."""

    model_stem: str = Field(max_length=129, index=True)
    profile: str = Field(max_length=32)
    state: str = Field(max_length=16, index=True)
    canary_fraction: float
    probation_s: float
    max_alert_ratio: float
    created_by: str = Field(max_length=100)
    created_at: int = Field(sa_type=BigInteger)
    updated_at: int = Field(sa_type=BigInteger)
    reason: str | None = Field(default=None, max_length=500)  # why it halted / was rolled back
    min_sensor_hours: float = DEFAULT_MIN_SENSOR_HOURS
    alert_budget: float = DEFAULT_ALERT_BUDGET  # at start: the rollout's, the manifest's or the training default
    verdict: str | None = Field(default=None, max_length=500)  # the canary verdict so far (or final)
    evidence: dict[str, Any] | None = Field(default=None, sa_type=JSON)  # what the verdict was taken on


class RolloutTargetPublic(SQLModel):
    """One gateway's part in a rollout, with what it last reported."""

    gateway_id: str
    role: str
    state: str
    desired_version: int | None
    previous_model: str | None
    detail: str | None
    updated_at: int
    reported_result: str | None = None
    reported_model_version: str | None = None
    gateway_status: str | None = None
    shadow: dict[str, Any] | None = None


class RolloutPublic(RolloutBase):
    """A rollout with its targets and a count per target state."""

    id: int
    counts: dict[str, int]
    targets: list[RolloutTargetPublic]


class Rollout(RolloutBase, table=True):
    """One rollout."""

    id: int | None = Field(default=None, primary_key=True)


class RolloutTarget(SQLModel, table=True):
    """A gateway in a rollout: canary or rest, and where it is."""

    __tablename__ = "rollout_target"
    __table_args__ = (UniqueConstraint("rollout_id", "gateway_id", name="uq_rollout_target"),)

    id: int | None = Field(default=None, primary_key=True)
    rollout_id: int = Field(foreign_key="rollout.id", index=True)
    gateway_id: str = Field(max_length=64, index=True)
    role: str = Field(max_length=8)  # canary | rest
    state: str = Field(default="waiting", max_length=16)
    desired_version: int | None = Field(default=None, sa_type=BigInteger)
    previous_model: str | None = Field(default=None, max_length=129)  # stem the gateway ran before
    detail: str | None = Field(default=None, max_length=500)
    updated_at: int = Field(sa_type=BigInteger)


class GatewayDesired(SQLModel, table=True):
    """The desired state last published (retained) to a gateway; versions only grow."""

    __tablename__ = "gateway_desired"

    gateway_id: str = Field(primary_key=True, max_length=64)
    version: int = Field(sa_type=BigInteger)
    model_stem: str | None = Field(default=None, max_length=129)
    mode: str | None = Field(default=None, max_length=8)
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    published_at: int = Field(sa_type=BigInteger)


class GatewayShadow(SQLModel, table=True):
    """The latest shadow comparison a gateway reported (stored by ingest with the reported message)."""

    __tablename__ = "gateway_shadow"

    gateway_id: str = Field(primary_key=True, max_length=64)
    desired_version: int = Field(sa_type=BigInteger)
    ts: int = Field(sa_type=BigInteger)
    report: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
