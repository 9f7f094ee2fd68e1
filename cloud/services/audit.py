"""Audit log writes (same transaction as the change) and queries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel import Session, col, select

from cloud.db.audit import AuditEntry
from cloud.services.clock import now_ms


def record(session: Session, *, actor: str, action: str, target_type: str, target_id: str,
           before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> AuditEntry:
    """Add an audit entry to the session's transaction (it commits or rolls back with the change)."""
    entry = AuditEntry(at=now_ms(), actor=actor, action=action, target_type=target_type, target_id=target_id,
                       before=before, after=after)
    session.add(entry)
    return entry


def list_entries(session: Session, *, target_type: str | None = None, target_id: str | None = None,
                 actor: str | None = None, limit: int = 100, offset: int = 0) -> Sequence[AuditEntry]:
    """Newest first, optionally filtered."""
    query = select(AuditEntry)
    if target_type is not None:
        query = query.where(AuditEntry.target_type == target_type)
    if target_id is not None:
        query = query.where(AuditEntry.target_id == target_id)
    if actor is not None:
        query = query.where(AuditEntry.actor == actor)
    return session.exec(query.order_by(col(AuditEntry.id).desc()).offset(offset).limit(limit)).all()


def snapshot(obj: Any, fields: Sequence[str]) -> dict[str, Any]:
    """The named attributes of `obj`, for before/after (never secrets: callers name the fields)."""
    return {name: getattr(obj, name) for name in fields}
