"""The audit log: every state change, with who, what, when, and the values before and after."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Column
from sqlmodel import Field, SQLModel


class AuditPublic(SQLModel):
    """One audit entry."""

    id: int
    at: int
    actor: str
    action: str
    target_type: str
    target_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class AuditEntry(SQLModel, table=True):
    """Append-only; written in the same transaction as the change it describes."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: int = Field(sa_type=BigInteger, index=True)
    actor: str = Field(max_length=100, index=True)
    action: str = Field(max_length=64)
    target_type: str = Field(max_length=32, index=True)
    target_id: str = Field(max_length=100, index=True)
    before: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    after: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
