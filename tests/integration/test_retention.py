"""SQL retention on real SQLite and PostgreSQL: old notifications, audit entries, gaps of expired readings,
orphaned replay requests and long-expired tokens go; what is younger, and alerts, stay."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from cloud.db.audit import AuditEntry
from cloud.db.engine import init_schema, make_engine
from cloud.db.ingest import IngestGap, ReplayRequest
from cloud.db.notify import Notification
from cloud.db.users import AuthToken, UserCreate
from cloud.services import users
from cloud.services.retention import DAY_MS, RetentionPolicy, prune

pytestmark = pytest.mark.integration
NOW = 1_800_000_000_000


def test_each_growing_table_is_pruned_by_its_own_age_and_the_young_rows_stay(database_url: str) -> None:
    engine = make_engine(database_url)
    init_schema(engine)
    with Session(engine) as session:
        user = users.create_user(session, data=UserCreate(username="ops1", role="ops", password="ops-password-1"),
                                 actor="test")
        session.flush()
        assert user.id is not None
        for age_days, name in ((100, "old"), (10, "young")):
            at = NOW - age_days * DAY_MS
            session.add(Notification(channel="webhook", kind="opened", subject=name, created_at=at,
                                     next_attempt_at=at, sent_at=at))
            session.add(AuditEntry(at=NOW - age_days * 10 * DAY_MS, actor="test", action=name, target_type="user",
                                   target_id="ops1"))
            session.add(IngestGap(stream="sensor|aa:bb:cc:dd:ee:ff", kind="sensor", sensor_id="aa:bb:cc:dd:ee:ff",
                                  first_seq=1, last_seq=1, missing=1, after_ts=NOW - age_days * 5 * DAY_MS,
                                  before_ts=NOW - age_days * 5 * DAY_MS, detected_at=at))
            session.add(AuthToken(token_hash=f"{name:0<64}", user_id=user.id, kind="api", name=name,
                                  created_at=at, expires_at=NOW - (age_days - 5) * DAY_MS))
        session.add(ReplayRequest(gap_id=999_999, requested_at=NOW))  # its gap is gone
        session.commit()
    deleted = prune(engine, RetentionPolicy(notifications_days=90, audit_days=730, gaps_days=400), now=NOW)
    assert deleted == {"notification": 1, "audit_log": 1, "ingest_gap": 1, "replay_request": 1, "auth_token": 1}
    with Session(engine) as session:
        assert [n.subject for n in session.exec(select(Notification)).all()] == ["young"]
        assert "young" in [a.action for a in session.exec(select(AuditEntry)).all()]
        assert "old" not in [a.action for a in session.exec(select(AuditEntry)).all()]
        assert len(session.exec(select(IngestGap)).all()) == 1
        assert [t.name for t in session.exec(select(AuthToken)).all()] == ["young"]
    later = prune(engine, RetentionPolicy(0, 0, 0), now=NOW + 100 * 365 * DAY_MS)  # 0 keeps those tables forever
    assert later == {"replay_request": 0, "auth_token": 1}  # an expired token still goes
    engine.dispose()
