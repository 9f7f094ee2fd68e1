"""Retraining jobs: one per profile and time range, claimed by a training worker, with progress and a log."""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import JSON, BigInteger, Column, Text
from sqlmodel import Field, SQLModel

JOB_STATES: Final = ("queued", "running", "succeeded", "failed")
MAX_LOG_CHARS: Final = 64_000


class TrainingJobCreate(SQLModel):
    """A retrain request: the profile, the period of stored readings, and the training knobs."""

    profile: str = Field(max_length=32, schema_extra={"pattern": r"^[a-z][a-z0-9_]{0,31}$"})
    start: int = Field(ge=0, le=4_102_444_800_000, description="epoch ms, inclusive")
    end: int = Field(ge=0, le=4_102_444_800_000, description="epoch ms, exclusive")
    epochs: int = Field(default=8, ge=1, le=200)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)  # numpy and torch seeds
    version: str | None = Field(default=None, max_length=64, schema_extra={"pattern": r"^[A-Za-z0-9_.]+$"})


class TrainingJobBase(SQLModel):
    """A job's request and state."""

    profile: str = Field(max_length=32, index=True)
    start: int = Field(sa_type=BigInteger)
    end: int = Field(sa_type=BigInteger)
    epochs: int
    seed: int = 0
    version: str | None = Field(default=None, max_length=64)
    state: str = Field(default="queued", max_length=16, index=True)
    stage: str | None = Field(default=None, max_length=32)  # query, train, export, evaluate, sign, register
    progress: float = 0.0  # 0..1
    worker: str | None = Field(default=None, max_length=100)
    model_stem: str | None = Field(default=None, max_length=129)
    error: str | None = Field(default=None, max_length=2000)
    created_by: str = Field(max_length=100)
    created_at: int = Field(sa_type=BigInteger)
    started_at: int | None = Field(default=None, sa_type=BigInteger)
    finished_at: int | None = Field(default=None, sa_type=BigInteger)


class TrainingJobPublic(TrainingJobBase):
    """A job as the API shows it."""

    id: int
    result: dict[str, Any] | None
    log: str


class TrainingJobUpdate(SQLModel):
    """What a worker reports: stage, progress, log lines, and at the end its state and result."""

    stage: str | None = Field(default=None, max_length=32)
    progress: float | None = Field(default=None, ge=0.0, le=1.0)
    log: list[str] = Field(default_factory=list, max_length=500)
    state: str | None = Field(default=None, schema_extra={"pattern": "^(running|succeeded|failed)$"})
    model_stem: str | None = Field(default=None, max_length=129)
    error: str | None = Field(default=None, max_length=2000)
    result: dict[str, Any] | None = None


class TrainingJob(TrainingJobBase, table=True):
    """One retraining job."""

    __tablename__ = "training_job"

    id: int | None = Field(default=None, primary_key=True)
    result: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    log: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
