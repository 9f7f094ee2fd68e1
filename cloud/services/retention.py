"""SQL retention: the tables that grow with time are pruned by age, each by its own setting, once an hour in the
API process (alerts and their history are records and are kept; dead letters are bounded by count at insert)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

from sqlalchemy import delete, or_
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from cloud.db.audit import AuditEntry
from cloud.db.engine import session_scope
from cloud.db.ingest import IngestGap, ReplayRequest
from cloud.db.notify import Notification
from cloud.db.users import AuthToken
from cloud.periodic import PeriodicThread
from cloud.services.clock import now_ms

log = logging.getLogger(__name__)
DAY_MS: Final = 86_400_000
EXPIRED_TOKEN_DAYS: Final = 30  # expired and revoked tokens stay listed this long, then go


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Days each kind of row is kept (0: forever)."""

    notifications_days: int = 90
    audit_days: int = 730
    gaps_days: int = 400  # as InfluxDB's retention: a gap in readings that are gone says nothing


def prune(engine: Engine, policy: RetentionPolicy, *, now: int | None = None) -> dict[str, int]:
    """Delete what is older than the policy keeps; returns rows deleted per table."""
    now = now_ms() if now is None else now
    deleted: dict[str, int] = {}
    with session_scope(engine) as session:
        if policy.notifications_days:
            cutoff = now - policy.notifications_days * DAY_MS
            # A row folded into a summary points at the summary, made after it: both are older than the cutoff or
            # the summary is kept; one statement (foreign keys are checked at its end).
            result = session.exec(delete(Notification).where(col(Notification.created_at) < cutoff))
            deleted["notification"] = result.rowcount
        if policy.audit_days:
            result = session.exec(delete(AuditEntry).where(col(AuditEntry.at) < now - policy.audit_days * DAY_MS))
            deleted["audit_log"] = result.rowcount
        if policy.gaps_days:
            result = session.exec(delete(IngestGap).where(col(IngestGap.before_ts) < now - policy.gaps_days * DAY_MS))
            deleted["ingest_gap"] = result.rowcount
        orphans = session.exec(delete(ReplayRequest).where(
            col(ReplayRequest.gap_id).not_in(select(IngestGap.id))))
        deleted["replay_request"] = orphans.rowcount
        stale = now - EXPIRED_TOKEN_DAYS * DAY_MS
        tokens = session.exec(delete(AuthToken).where(or_(
            col(AuthToken.expires_at) < stale, col(AuthToken.revoked) & (col(AuthToken.created_at) < stale))))
        deleted["auth_token"] = tokens.rowcount
    if any(deleted.values()):
        log.info("sql retention pruned %s", " ".join(f"{k}={v}" for k, v in deleted.items() if v))
    return deleted


def start_retention(engine: Engine, policy: RetentionPolicy, *, interval_s: float = 3600.0) -> PeriodicThread:
    """Prune once an hour in a daemon thread (several API processes may each run it: deletes are idempotent)."""
    thread = PeriodicThread("sql-retention", interval_s, lambda: prune(engine, policy))
    thread.start()
    return thread
