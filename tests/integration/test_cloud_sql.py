"""SQL services against real SQLite and real PostgreSQL: schema, completeness gaps, alert idempotency, users."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from cloud.db.alerts import Alert, AlertHistory
from cloud.db.engine import init_schema, make_engine, session_scope
from cloud.db.fleet import Gateway
from cloud.db.ingest import IngestGap, SeqStream
from cloud.db.users import UserCreate
from cloud.ingest.sql_sink import SqlSink, event_work, telemetry_work
from cloud.services import alerts, completeness, users
from cloud.services.clock import now_ms
from protocol.messages import AlertEvent, Reading, Status, TelemetryBatch, alert_id

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000
MAC = "aa:bb:cc:00:03:01"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    init_schema(engine)
    init_schema(engine)  # idempotent
    yield engine
    engine.dispose()


def batch(seq: int, sensor_seqs: list[int], gateway: str = "gw1") -> TelemetryBatch:
    return TelemetryBatch(gateway=gateway, seq=seq, sent_at=T0 + seq * 1000, readings=[
        Reading(sensor=MAC, ts=T0 + s * 1000, profile="chilled", seq=s % 65535, temp_c=3.0) for s in sensor_seqs])


def gaps(engine: Engine, kind: str) -> list[tuple[int, int, int]]:
    with Session(engine) as session:
        rows = completeness.list_gaps(session, kind=kind)
    return sorted((g.first_seq, g.last_seq, g.missing) for g in rows)


def test_gaps_open_shrink_split_and_close(engine: Engine) -> None:
    sink = SqlSink(engine)
    sink.apply([telemetry_work(batch(1, [10, 11])), telemetry_work(batch(4, [12, 20]))])
    assert gaps(engine, "telemetry") == [(2, 3, 2)]
    assert gaps(engine, "sensor") == [(13, 19, 7)]
    sink.apply([telemetry_work(batch(3, [15]))])  # late: splits the sensor gap, shrinks the batch gap
    assert gaps(engine, "telemetry") == [(2, 2, 1)]
    assert gaps(engine, "sensor") == [(13, 14, 2), (16, 19, 4)]
    sink.apply([telemetry_work(batch(2, [13, 14, 16, 17, 18, 19])), telemetry_work(batch(2, [13]))])  # + a resend
    assert gaps(engine, "telemetry") == []
    assert gaps(engine, "sensor") == []
    with Session(engine) as session:
        assert session.get(Gateway, "gw1") is not None  # registered on first sight
        assert session.exec(select(IngestGap)).all() == []  # a filled gap is deleted, not kept (docs/decisions.md)


def test_gateway_gaps_are_claimed_for_replay_once_per_retry(engine: Engine) -> None:
    sink = SqlSink(engine)
    sink.apply([telemetry_work(batch(1, [10])), telemetry_work(batch(5, [11]))])  # batches 2..4 missing
    with Session(engine) as session:
        detected = completeness.list_gaps(session, kind="telemetry")[0].detected_at

    def claim(now: int) -> list[tuple[str | None, int, int]]:
        with session_scope(engine) as session:
            due = completeness.claim_replays(session, now=now, open_for_ms=30_000, retry_ms=600_000, max_attempts=2)
            return [(g.gateway_id, g.first_seq, g.last_seq) for g in due]

    assert claim(detected + 10_000) == []  # the other worker may still hold them
    assert claim(detected + 30_000) == [("gw1", 2, 4)]  # sensor gaps are never asked for: the batch carries them
    assert claim(detected + 60_000) == []  # asked already
    assert claim(detected + 630_000) == [("gw1", 2, 4)]  # asked again after the retry interval ...
    assert claim(detected + 9_999_999) == []  # ... at most max_attempts times
    sink.apply([telemetry_work(batch(s, [11])) for s in (2, 3, 4)])
    assert gaps(engine, "telemetry") == []


def test_sensor_seq_wraps_without_a_gap(engine: Engine) -> None:
    sink = SqlSink(engine)
    sink.apply([telemetry_work(batch(1, [65533, 65534]))])
    sink.apply([telemetry_work(batch(2, [65535, 65536, 65538]))])  # seqs 0, 1, 3 after the wrap
    assert gaps(engine, "sensor") == [(65537, 65537, 1)]


def test_missing_in_range_prorates(engine: Engine) -> None:
    SqlSink(engine).apply([telemetry_work(batch(1, [0, 11]))])  # 10 missing between ts T0 and T0+11 s
    with Session(engine) as session:
        assert completeness.missing_in_range(session, sensor_id=MAC, start=T0, end=T0 + 11_000) == pytest.approx(10)
        assert completeness.missing_in_range(session, sensor_id=MAC, start=T0 + 100_000,
                                             end=T0 + 200_000) == 0


def event(seq: int, state: str, updated: int, value: float) -> AlertEvent:
    return AlertEvent(id=alert_id("gw1", MAC, "temp_high", T0), gateway="gw1", seq=seq, sensor=MAC,
                      kind="temp_high", severity="critical", state=state, source="rule", started_at=T0,
                      updated_at=updated, value=value, threshold=4.0,
                      ended_at=updated if state == "clear" else None)  # type: ignore[arg-type]


def test_alert_events_are_idempotent_and_order_tolerant(engine: Engine) -> None:
    sink = SqlSink(engine)
    opened, update, cleared = event(1, "open", T0, 5.0), event(2, "update", T0 + 60_000, 7.5), \
        event(3, "clear", T0 + 120_000, 3.0)
    result = sink.apply([event_work(opened), event_work(cleared)])
    assert (result.alert_events, result.alert_duplicates) == (2, 0)
    result = sink.apply([event_work(update), event_work(opened), event_work(cleared)])  # late + redelivered
    assert (result.alert_events, result.alert_duplicates) == (1, 2)
    with Session(engine) as session:
        alert = session.exec(select(Alert)).one()
        assert (alert.device_state, alert.ended_at, alert.peak, alert.status) == ("clear", T0 + 120_000, 7.5, "open")
        assert [h.action for h in alerts.history(session, alert_id=alert.id)] == ["open", "update", "clear"]
    assert gaps(engine, "alerts") == []


def test_status_keeps_the_newest(engine: Engine) -> None:
    sink = SqlSink(engine)
    sink.apply([event_work(Status(gateway="gw2", state="online", ts=T0 + 10, agent_version="1.0",
                                  model_version="m1", outbox_depth=42, rss_mb=30.0))])
    sink.apply([event_work(Status(gateway="gw2", state="offline", ts=T0))])  # an older LWT arriving late
    with Session(engine) as session:
        gw = session.get(Gateway, "gw2")
        assert gw is not None
        assert (gw.status, gw.outbox_depth, gw.model_version, gw.health) == ("online", 42, "m1", {"rss_mb": 30.0})


def test_workflow_and_audit(engine: Engine) -> None:
    SqlSink(engine).apply([event_work(event(1, "open", T0, 5.0))])
    with session_scope(engine) as session:
        users.create_user(session, data=UserCreate(username="sam", role="staff", password="staff-password"),
                          actor="test")
        alert = session.exec(select(Alert)).one()
        alerts.acknowledge(session, alert=alert, actor="sam")
        alerts.comment(session, alert=alert, actor="sam", text="door open during loading")
        alerts.resolve(session, alert=alert, actor="sam", code="loading")
        with pytest.raises(alerts.AlertError):
            alerts.resolve(session, alert=alert, actor="sam", code="loading")
    with Session(engine) as session:
        alert = session.exec(select(Alert)).one()
        assert (alert.status, alert.resolution, alert.resolved_by) == ("resolved", "loading", "sam")
        actions = [h.action for h in session.exec(select(AlertHistory).order_by(AlertHistory.id)).all()]
        assert actions == ["open", "acknowledge", "comment", "resolve"]
        assert users.authenticate(session, username="sam", password="staff-password") is not None
        assert users.authenticate(session, username="sam", password="wrong-password") is None
        from cloud.services import audit
        assert [e.action for e in audit.list_entries(session)][:2] == ["alert.resolve", "alert.comment"]


def test_holes_the_other_worker_fills_within_the_grace_never_become_gap_rows(engine: Engine) -> None:
    sink = SqlSink(engine, gap_grace_ms=60_000)
    sink.apply([telemetry_work(batch(1, [10, 11])), telemetry_work(batch(3, [14, 15]))])  # worker A: 1 and 3
    with Session(engine) as session:
        stream = session.get(SeqStream, "telemetry|gw1")
        assert stream is not None and stream.holes is not None and [h[:2] for h in stream.holes] == [[2, 2]]
    assert gaps(engine, "telemetry") == [] and gaps(engine, "sensor") == []  # holes, not gaps yet
    sink.apply([telemetry_work(batch(2, [12, 13]))])  # worker B: 2, within the grace
    with Session(engine) as session:
        assert session.exec(select(IngestGap)).all() == []
        assert all(not s.holes and s.holes_since is None and s.missing == 0
                   for s in session.exec(select(SeqStream)).all())


def test_a_hole_still_open_after_the_grace_is_declared_by_the_sweep(engine: Engine) -> None:
    sink = SqlSink(engine, gap_grace_ms=60_000)
    sink.apply([telemetry_work(batch(1, [10])), telemetry_work(batch(5, [11]))])  # 2..4 never come
    with session_scope(engine) as session:
        assert completeness.declare_due(session, grace_ms=60_000) == 0  # too young
    with session_scope(engine) as session:
        assert completeness.declare_due(session, grace_ms=60_000, now=now_ms() + 61_000) == 1
    assert gaps(engine, "telemetry") == [(2, 4, 3)]
    sink.apply([telemetry_work(batch(3, [11]))])  # a late batch still shrinks the declared gap
    assert gaps(engine, "telemetry") == [(2, 2, 1), (4, 4, 1)]
