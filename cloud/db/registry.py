"""Model registry tables: registered artifacts (files on disk under COLDWATCH_MODELS_DIR) and gateway
download tokens (only their SHA-256 is stored)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Column
from sqlmodel import Field, SQLModel


class ModelArtifactBase(SQLModel):
    """What the signed manifest says about a model, copied out for listing and filtering."""

    name: str = Field(max_length=64, index=True)
    version: str = Field(max_length=64)
    profile: str = Field(max_length=32, index=True)
    sha256: str = Field(max_length=64)
    threshold: float
    size_bytes: int = Field(sa_type=BigInteger)
    created_at: str = Field(max_length=64)  # the manifest's ISO-8601 created_at
    source: str = Field(default="upload", max_length=100)  # upload | training-job:<id>


class ModelArtifactPublic(ModelArtifactBase):
    """A registered model as the API lists it."""

    stem: str
    registered_at: int
    registered_by: str
    metrics: dict[str, Any] | None


class ModelArtifactDetail(ModelArtifactPublic):
    """One model with its whole manifest and signature."""

    manifest: dict[str, Any]
    signature: str


class ModelArtifact(ModelArtifactBase, table=True):
    """A registered, verified model; `stem` is `<name>-<version>`, unique."""

    __tablename__ = "model_artifact"

    stem: str = Field(primary_key=True, max_length=129)
    signature: str = Field(max_length=200)
    manifest: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    metrics: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    registered_at: int = Field(sa_type=BigInteger)
    registered_by: str = Field(max_length=100)


class GatewayToken(SQLModel, table=True):
    """A gateway's bearer token for artifact downloads (one per gateway; issuing a new one replaces it)."""

    __tablename__ = "gateway_token"

    gateway_id: str = Field(primary_key=True, max_length=64)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    created_at: int = Field(sa_type=BigInteger)
    created_by: str = Field(max_length=100)
