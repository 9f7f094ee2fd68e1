"""`coldwatch backup` and `coldwatch restore` against real stores: a filled SQL database (SQLite and PostgreSQL,
each restored into the other), a real influxd and a registry folder come back identical; stores that already hold
data are refused."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, select
from sqlmodel import Session

from cloud.db.engine import init_schema, make_engine
from cloud.db.notify import Notification
from cloud.db.users import UserCreate
from cloud.ingest.sql_sink import SqlSink, event_work, telemetry_work
from cloud.services import users
from cloud.services.shipment_record import RecordKey
from cloud.tsdb.influx import InfluxClient
from cloud.tsdb.lineprotocol import batch_lines
from deploy.services import Influxd, Postgres
from protocol.messages import AlertEvent, Reading, Status, TelemetryBatch, alert_id
from tests.conftest import CLOUD_BIN

T0 = 1_767_225_600_000  # 2026-01-01
SENSORS = [f"c2:00:00:00:00:{i:02x}" for i in range(6)]


def _fill(database_url: str, influx: InfluxClient, registry: Path) -> None:
    engine = make_engine(database_url)
    init_schema(engine)
    with Session(engine) as session:
        admin = users.create_user(session, data=UserCreate(username="admin", role="admin",
                                                           password="admin-password-1"), actor="test")
        users.issue_token(session, user=admin, kind="api", name="trainer", ttl_ms=86_400_000)
        session.commit()
    sink = SqlSink(engine)
    influx.ensure_database()
    for day in range(3):  # three days of readings: the export goes a day at a time
        for seq in range(1, 21):
            ts = T0 + day * 86_400_000 + seq * 60_000
            batch = TelemetryBatch(gateway="gw-1", seq=day * 100 + seq, sent_at=ts, readings=[
                Reading(sensor=s, ts=ts, profile="chilled", seq=(day * 100 + seq) % 65535, temp_c=3.5 + i * 0.25,
                        rh_pct=80.0 if i % 2 else None, battery_mv=3000 - seq, rssi_dbm=-70,
                        anomaly_score=0.5 if day == 1 else None)  # only some points carry every field
                for i, s in enumerate(SENSORS)])
            influx.write(batch_lines(batch).lines)
            sink.apply([telemetry_work(batch)])
    opened = AlertEvent(id=alert_id("gw-1", SENSORS[0], "temp_high", T0), gateway="gw-1", seq=1, sensor=SENSORS[0],
                        kind="temp_high", severity="critical", state="open", source="rule", started_at=T0,
                        updated_at=T0, value=9.5, threshold=8.0, reason="above 8 °C for 30 min")
    sink.apply([event_work(opened), event_work(Status(gateway="gw-1", state="online", ts=T0, session=T0,
                                                        agent_version="0.2.0", outbox_depth=3))])
    with Session(engine) as session:  # a notification folded into a summary made after it (a later id)
        held = Notification(channel="webhook", kind="opened", subject="held", created_at=T0, next_attempt_at=T0)
        session.add(held)
        session.flush()
        summary = Notification(channel="webhook", kind="summary", subject="summary", created_at=T0,
                               next_attempt_at=T0)
        session.add(summary)
        session.flush()
        held.summary_id = summary.id
        session.add(held)
        session.commit()
    engine.dispose()
    (registry / "cw_chilled-1").mkdir(parents=True)
    for suffix, data in ((".tflite", os.urandom(2048)), (".manifest.json", b'{"name": "cw_chilled"}'),
                         (".sig", b"c2ln\n")):
        (registry / "cw_chilled-1" / f"cw_chilled-1{suffix}").write_bytes(data)
    records, key = _records(registry)  # a delivered shipment's signed record, and the key that signed it
    RecordKey(key).sign(b"")  # made on first use
    records.mkdir()
    (records / "shipment-SH-1.pdf").write_bytes(b"%PDF-" + os.urandom(512))
    (records / "shipment-SH-1.pdf.sig").write_bytes(b"c2ln\n")


def _records(registry: Path) -> tuple[Path, Path]:
    """The records folder and records key of the stack whose registry is `registry`."""
    return registry.with_name(registry.name + "-records"), registry.with_name(registry.name + "-records.pem")


def _sql(database_url: str) -> dict[str, list[dict[str, Any]]]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            metadata = MetaData()
            metadata.reflect(bind=connection)
            return {t.name: sorted((dict(r) for r in connection.execute(select(t)).mappings()),
                                   key=lambda r: json.dumps(r, sort_keys=True, default=str))
                    for t in metadata.sorted_tables if t.name != "alembic_version"}
    finally:
        engine.dispose()


def _points(influx: InfluxClient) -> list[dict[str, Any]]:
    rows = [row for s in influx.query("SELECT * FROM reading GROUP BY *") for row in s.rows()]
    return sorted(rows, key=lambda r: (r["time"], r["sensor"]))


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _coldwatch(command: str, folder: Path, database_url: str, influx: InfluxClient,
               registry: Path) -> subprocess.CompletedProcess[str]:
    records, key = _records(registry)
    env = os.environ | {"COLDWATCH_DATABASE_URL": database_url, "COLDWATCH_INFLUX_URL": influx.url,
                        "COLDWATCH_INFLUX_DB": influx.database, "COLDWATCH_MODELS_DIR": str(registry),
                        "COLDWATCH_RECORDS_DIR": str(records), "COLDWATCH_RECORD_SIGNING_KEY": str(key)}
    return subprocess.run([str(CLOUD_BIN / "coldwatch"), command, str(folder)], env=env, capture_output=True,
                          text=True, timeout=300)


def test_a_filled_stack_is_backed_up_wiped_and_restored_identical_even_into_the_other_sql_database(
        database_url: str, postgres: Postgres, influxd: Influxd, tmp_path: Path) -> None:
    source = InfluxClient(url=influxd.url, database="t_" + secrets.token_hex(6))
    registry = tmp_path / "registry"
    _fill(database_url, source, registry)
    before_sql, before_points, before_files = _sql(database_url), _points(source), _files(registry)
    before_records, before_key = _files(_records(registry)[0]), _records(registry)[1].read_bytes()
    assert len(before_points) == 3 * 20 * len(SENSORS) and before_sql["alert"] and before_sql["auth_token"]

    saved = _coldwatch("backup", tmp_path / "backup", database_url, source, registry)
    assert saved.returncode == 0, saved.stderr
    summary = json.loads(saved.stdout)  # stdout is the JSON summary alone
    assert summary["measurements"] == {"reading": len(before_points)} and summary["registry_files"] == 3
    assert summary["record_files"] == 2 and summary["record_key"] is True
    assert _coldwatch("backup", tmp_path / "backup", database_url, source, registry).returncode == 2  # not empty

    # The whole stack is lost: a new SQL database of the other kind, a new InfluxDB database, an empty registry.
    other = (postgres.create_database("t_" + secrets.token_hex(6)) if database_url.startswith("sqlite")
             else f"sqlite:///{tmp_path / 'restored.db'}")
    target = InfluxClient(url=influxd.url, database="t_" + secrets.token_hex(6))
    new_registry = tmp_path / "registry-new"
    loaded = _coldwatch("restore", tmp_path / "backup", other, target, new_registry)
    assert loaded.returncode == 0, loaded.stderr
    assert _sql(other) == before_sql
    assert _points(target) == before_points
    assert _files(new_registry) == before_files
    new_records, new_key = _records(new_registry)
    assert _files(new_records) == before_records and new_key.read_bytes() == before_key
    assert new_key.stat().st_mode & 0o777 == 0o600

    again = _coldwatch("restore", tmp_path / "backup", other, target, tmp_path / "registry-3")
    assert again.returncode == 2 and "is not empty" in again.stderr and "Traceback" not in again.stderr
    # The restored database takes new rows (PostgreSQL's sequences were moved past the restored ids).
    engine = make_engine(other)
    with Session(engine) as session:
        users.create_user(session, data=UserCreate(username="staff1", role="staff", password="staff-password-1"),
                          actor="test")
        session.commit()
    engine.dispose()


@pytest.mark.parametrize("what", ["no_backup", "wrong_format"])
def test_restoring_something_that_is_not_a_backup_says_so(what: str, tmp_path: Path, influxd: Influxd) -> None:
    folder = tmp_path / "b"
    folder.mkdir()
    if what == "wrong_format":
        (folder / "backup.json").write_text('{"format": 99}')
    target = InfluxClient(url=influxd.url, database="t_" + secrets.token_hex(6))
    done = _coldwatch("restore", folder, f"sqlite:///{tmp_path / 'x.db'}", target, tmp_path / "r")
    assert done.returncode == 2 and "coldwatch: error:" in done.stderr and "Traceback" not in done.stderr
