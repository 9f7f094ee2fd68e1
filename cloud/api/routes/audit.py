"""`/api/v1/audit` (admin): the audit log, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from cloud.api.deps import Admin, Offset, SessionDep
from cloud.db.audit import AuditPublic
from cloud.services import audit

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get("", response_model=list[AuditPublic], summary="Audit log (admin)")
def list_audit(admin: Admin, session: SessionDep, target_type: Annotated[str | None, Query(max_length=32)] = None,
               target_id: Annotated[str | None, Query(max_length=100)] = None,
               actor: Annotated[str | None, Query(max_length=100)] = None,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100,
               offset: Offset = 0) -> list[AuditPublic]:
    """Who changed what, when, with the values before and after."""
    rows = audit.list_entries(session, target_type=target_type, target_id=target_id, actor=actor, limit=limit,
                              offset=offset)
    return [AuditPublic.model_validate(r) for r in rows]
