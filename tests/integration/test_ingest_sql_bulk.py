"""Ingest's bulk SQL path (SqlSink.apply → fleet.ensure_gateways / observe_sensors, completeness.observe) on SQLite
and PostgreSQL: two workers' interleaved and racing batches leave every gateway's and sensor's last-seen at the newest,
rows inserted once, and a fleet-shaped batch costs a bounded number of statements, not one per row."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import event, func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from cloud.db.alerts import Alert
from cloud.db.engine import make_engine, session_scope
from cloud.db.fleet import Gateway, Sensor
from cloud.db.ingest import IngestGap, SeqStream
from cloud.ingest.failures import caused_by_data
from cloud.ingest.sql_sink import SqlSink, SqlWork, event_work, telemetry_work
from cloud.services.clock import now_ms
from protocol.messages import AlertEvent, Reading, Status, TelemetryBatch

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000
GATEWAYS = 40
SENSORS = 3
MESSAGES = 12


def gw(g: int) -> str:
    return f"gw{g:04d}"


def mac(g: int, s: int) -> str:
    return f"aa:bb:{g // 256:02x}:{g % 256:02x}:00:{s:02x}"


def message(g: int, seq: int) -> TelemetryBatch:
    """Gateway g's batch `seq` (from 1): a reading of each of its sensors, whose own seqs count up without gaps."""
    readings = [Reading(sensor=mac(g, s), ts=T0 + seq * 1000 + s, profile="chilled", seq=seq, temp_c=3.0)
                for s in range(SENSORS)]
    return TelemetryBatch(gateway=gw(g), seq=seq, sent_at=T0 + seq * 1000, readings=readings)


def apply_retrying(sink: SqlSink, works: list[SqlWork]) -> None:
    """As the worker does: a transient failure (a lock, the other worker's insert of the same row) is retried."""
    for _ in range(50):
        try:
            sink.apply(works)
            return
        except Exception as exc:
            if caused_by_data(exc):
                raise
    raise AssertionError("batch never applied")


def assert_newest(engine: Engine, *, heard_after: int) -> None:
    with Session(engine) as session:
        gateways = {g.id: g for g in session.exec(select(Gateway)).all()}
        sensors = {s.id: s for s in session.exec(select(Sensor)).all()}
        streams = session.exec(select(SeqStream)).all()
        assert session.exec(select(IngestGap)).all() == []
    assert sorted(gateways) == [gw(g) for g in range(GATEWAYS)]  # each inserted once (primary key), none missing
    assert len(sensors) == GATEWAYS * SENSORS
    for g in range(GATEWAYS):
        row = gateways[gw(g)]
        assert row.last_seen_at == T0 + MESSAGES * 1000, row.id
        assert row.last_heard_at is not None and row.last_heard_at >= heard_after
        assert (row.registered_by, row.provisioned, row.revoked) == ("ingest", False, False)
        for s in range(SENSORS):
            sensor = sensors[mac(g, s)]
            assert (sensor.first_seen_at, sensor.last_seen_at) == (T0 + 1000 + s, T0 + MESSAGES * 1000 + s)
            assert (sensor.gateway_id, sensor.profile) == (gw(g), "chilled")
    # every seq arrived (in whatever order): the holes the interleaving opened are all filled
    assert len(streams) == GATEWAYS * (1 + SENSORS)
    assert all((s.missing, s.holes or None, s.holes_since) == (0, None, None) for s in streams)


def test_interleaved_workers_leave_the_newest(database_url: str, engine: Engine) -> None:
    """Two workers take every other message of each gateway (a shared subscription), each applying its batches in
    turn, one of them late (older messages after newer ones): gateways and sensors end at the newest."""
    other = make_engine(database_url)
    try:
        sinks = [SqlSink(engine, gap_grace_ms=3_600_000), SqlSink(other, gap_grace_ms=3_600_000)]
        heard_after = now_ms()
        # batches of 4 seqs; worker 1 is one batch behind, and applies its batches newest first
        for start in range(1, MESSAGES + 1, 4):
            for worker, sink in enumerate(sinks):
                seqs = [seq for seq in range(start, start + 4) if seq % 2 == worker]
                if worker == 1:
                    seqs.reverse()
                works = [telemetry_work(message(g, seq)) for seq in seqs for g in range(GATEWAYS)]
                sink.apply(works)
        assert_newest(engine, heard_after=heard_after)
    finally:
        other.dispose()


def test_racing_workers_insert_once_and_keep_the_newest(database_url: str, engine: Engine) -> None:
    """Two workers in threads apply their halves at the same time, from first sight (both insert the same new
    gateways, sensors and streams): every row once, at the newest values."""
    other = make_engine(database_url)
    errors: list[BaseException] = []

    def run(sink: SqlSink, worker: int) -> None:
        try:
            for start in range(1, MESSAGES + 1, 2):
                seqs = [seq for seq in range(start, start + 2) if seq % 2 == worker]
                apply_retrying(sink, [telemetry_work(message(g, seq)) for seq in seqs for g in range(GATEWAYS)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=run, args=(SqlSink(e, gap_grace_ms=3_600_000), w))
                   for w, e in enumerate((engine, other))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors, errors
        assert_newest(engine, heard_after=0)
    finally:
        other.dispose()


def test_pinned_profile_older_readings_and_events(engine: Engine) -> None:
    sink = SqlSink(engine)
    sensor = mac(1, 0)
    sink.apply([telemetry_work(TelemetryBatch(gateway="gw-a", seq=1, sent_at=T0 + 5000, readings=[
        Reading(sensor=sensor, ts=T0 + 5000, profile="chilled", seq=5, temp_c=3.0)]))])
    with session_scope(engine) as session:
        row = session.get(Sensor, sensor)
        assert row is not None
        row.profile, row.profile_pinned = "frozen", True
        session.add(row)
    # the sensor moves to gw-b (newer reading; profile stays pinned); an older reading through gw-a moves
    # first_seen back only; a status for a new gateway in the same batch registers it once and applies
    sink.apply([
        telemetry_work(TelemetryBatch(gateway="gw-b", seq=1, sent_at=T0 + 9000, readings=[
            Reading(sensor=sensor, ts=T0 + 9000, profile="chilled", seq=9, temp_c=3.0)])),
        telemetry_work(TelemetryBatch(gateway="gw-a", seq=2, sent_at=T0 + 2000, readings=[
            Reading(sensor=sensor, ts=T0 + 2000, profile="ambient", seq=2, temp_c=3.0)])),
        event_work(Status(gateway="gw-c", state="online", ts=T0 + 7000, agent_version="1.2.3")),
    ])
    with Session(engine) as session:
        row = session.get(Sensor, sensor)
        assert row is not None
        assert (row.gateway_id, row.profile, row.profile_pinned) == ("gw-b", "frozen", True)
        assert (row.first_seen_at, row.last_seen_at) == (T0 + 2000, T0 + 9000)
        gateways = {g.id: g for g in session.exec(select(Gateway)).all()}
        assert sorted(gateways) == ["gw-a", "gw-b", "gw-c"]
        assert gateways["gw-a"].last_seen_at == T0 + 5000  # the older batch does not move it back
        c = gateways["gw-c"]
        assert (c.status, c.agent_version, c.last_seen_at) == ("online", "1.2.3", T0 + 7000)
        assert c.last_heard_at is not None


def test_an_alert_stored_before_its_sensor_gets_the_sensors_profile(engine: Engine) -> None:
    """Another worker may still be merging the journal rows with a sensor's first sighting when a batch holding
    its alert is stored: the alert has no profile then, and gets it when the sensor is registered."""
    sink = SqlSink(engine)
    sensor = mac(2, 0)
    sink.apply([event_work(AlertEvent(id="a" * 32, gateway="gw-a", seq=1, sensor=sensor, kind="temp_high",
                                      severity="critical", state="open", source="rule", started_at=T0,
                                      updated_at=T0))])
    with Session(engine) as session:
        alert = session.get(Alert, "a" * 32)
        assert alert is not None and alert.profile is None
    sink.apply([telemetry_work(TelemetryBatch(gateway="gw-a", seq=1, sent_at=T0, readings=[
        Reading(sensor=sensor, ts=T0, profile="frozen", seq=1, temp_c=-18.0)]))])
    with Session(engine) as session:
        alert = session.get(Alert, "a" * 32)
        assert alert is not None and alert.profile == "frozen"


def test_fleet_batch_costs_statements_not_rows(engine: Engine) -> None:
    """A batch of 200 gateways × 3 sensors costs a handful of statements (executemany counts once), and a batch
    that changes no sensor writes none."""
    sink = SqlSink(engine, gap_grace_ms=3_600_000)
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(" ".join(statement.split()[:3]).lower())  # e.g. "update sensor set"

    fleet = [message(g, 1) for g in range(200)]
    sink.apply([telemetry_work(b) for b in fleet])  # first sight: inserts
    event.listen(engine, "before_cursor_execute", count)
    try:
        sink.apply([telemetry_work(message(g, 2)) for g in range(200)])
        assert len(statements) <= 12, statements
        statements.clear()
        sink.apply([telemetry_work(message(g, 2)) for g in range(200)])  # redelivered: nothing new
        writes = [s for s in statements if s.startswith(("update", "insert"))]
        assert not [s for s in writes if "sensor" in s.split() or "seq_stream" in s.split()], writes
    finally:
        event.remove(engine, "before_cursor_execute", count)
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(Sensor)).one() == 200 * SENSORS
