"""The outbox: gap-free sequences, ack only removes, survives reopen and kill -9, disk cap drops telemetry first."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from edge_agent.metrics import AgentMetrics
from edge_agent.outbox import Outbox
from protocol.codec import decode
from protocol.messages import AlertEvent, Reading, TelemetryBatch, alert_id

T0 = 1_767_225_600_000


def reading(i: int, sensor: str = "c2:00:00:00:00:01") -> Reading:
    return Reading(sensor=sensor, ts=T0 + i * 1000, profile="chilled", seq=i % 65535, temp_c=3.0, rh_pct=80.0)


def alert(seq: int) -> AlertEvent:
    return AlertEvent(id=alert_id("gw1", "c2:00:00:00:00:01", "range", T0), gateway="gw1", seq=seq,
                      sensor="c2:00:00:00:00:01", kind="range", severity="critical", state="open", source="rule",
                      started_at=T0, updated_at=T0)


def test_batches_carry_gap_free_sequences_per_kind(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", "gw1", AgentMetrics(), batch_max_readings=10)
    for i in range(25):
        box.stage(reading(i))
    box.flush()
    box.put_alert(alert)
    entries = box.pending(100)
    assert [(e.kind, e.seq) for e in entries] == [("telemetry", 1), ("telemetry", 2), ("telemetry", 3), ("alerts", 1)]
    batches = [decode(e.payload, TelemetryBatch) for e in entries if e.kind == "telemetry"]
    assert [r.seq for b in batches for r in b.readings] == list(range(25))
    assert [b.seq for b in batches] == [1, 2, 3]


def test_a_ticks_readings_are_committed_in_one_transaction(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", "gw1", AgentMetrics(), batch_max_readings=1000)
    statements: list[str] = []
    box._db.set_trace_callback(statements.append)
    box.stage_many([reading(i) for i in range(2500)])  # two full batches: committed at once, with the rest
    box.flush()
    assert statements.count("COMMIT") == 1  # one fsync for the tick, not one per batch
    batches = [decode(e.payload, TelemetryBatch) for e in box.pending(100)]
    assert [b.seq for b in batches] == [1, 2, 3] and [len(b.readings) for b in batches] == [1000, 1000, 500]
    assert [r.seq for b in batches for r in b.readings] == list(range(2500)) and box.staged() == 0


def test_ack_removes_one_entry_and_sequences_continue_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    box = Outbox(path, "gw1", AgentMetrics())
    for i in range(3):
        box.stage(reading(i))
        box.flush()
    first = box.pending(1)[0]
    box.ack(first.id)
    box.ack(first.id)  # a duplicate PUBACK is harmless
    box.close()
    again = Outbox(path, "gw1", AgentMetrics())
    assert [e.seq for e in again.pending(10)] == [2, 3]
    again.stage(reading(9))
    again.flush()
    assert [e.seq for e in again.pending(10)] == [2, 3, 4]
    assert again.depth() == 3


def test_what_was_flushed_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    script = f"""
import os, signal
from edge_agent.metrics import AgentMetrics
from edge_agent.outbox import Outbox
from protocol.messages import Reading
box = Outbox({str(path)!r}, "gw1", AgentMetrics(), batch_max_readings=7)
for i in range(50):
    box.stage(Reading(sensor="c2:00:00:00:00:01", ts={T0} + i, profile="chilled", seq=i))
box.flush()
os.kill(os.getpid(), signal.SIGKILL)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert result.returncode == -9
    box = Outbox(path, "gw1", AgentMetrics())
    readings = [r.seq for e in box.pending(100) for r in decode(e.payload, TelemetryBatch).readings]
    assert readings == list(range(50))


def test_the_disk_cap_thins_then_drops_telemetry_before_any_alert(tmp_path: Path) -> None:
    metrics = AgentMetrics()
    box = Outbox(tmp_path / "o.sqlite", "gw1", metrics, max_bytes=64 * 1024, batch_max_readings=100)
    box.put_alert(alert)
    for i in range(3000):
        box.stage(reading(i, sensor=f"c2:00:00:00:00:{i % 4:02x}"))
    box.flush()
    assert box.bytes <= 64 * 1024
    kinds = [e.kind for e in box.pending(10_000)]
    assert kinds.count("alerts") == 1
    assert metrics.dropped.labels(kind="telemetry", action="thinned")._value.get() > 0
    assert metrics.dropped.labels(kind="telemetry", action="dropped")._value.get() > 0
    assert metrics.dropped.labels(kind="alerts", action="dropped")._value.get() == 0
    survivors = [decode(e.payload, TelemetryBatch) for e in box.pending(10_000) if e.kind == "telemetry"]
    assert survivors[-1].readings[-1].seq == 2999  # the newest data is what is kept


def _fill_the_disk(box: Outbox) -> None:
    """SQLite's own "database or disk is full" (SQLITE_FULL), as on a full filesystem: no more pages."""
    pages = box._db.execute("PRAGMA page_count").fetchone()[0]
    box._db.execute(f"PRAGMA max_page_count = {pages}")


def _free_the_disk(box: Outbox) -> None:
    box._db.execute("PRAGMA max_page_count = 1073741823")


def test_on_a_full_disk_readings_stay_staged_alerts_wait_and_nothing_is_lost(tmp_path: Path) -> None:
    metrics = AgentMetrics()
    box = Outbox(tmp_path / "o.sqlite", "gw1", metrics, batch_max_readings=50)
    box.stage(reading(0))
    box.flush()
    _fill_the_disk(box)
    for i in range(1, 121):
        box.stage(reading(i))  # two full batches try to commit on the way, and fail
    assert box.flush() == 0
    assert box.staged() == 120
    fitted = 0  # small alerts still fit in the last pages' free space, until they do not
    with pytest.raises(sqlite3.Error):
        for _ in range(1000):
            box.put_alert(alert)
            fitted += 1
    failures = metrics.outbox_write_failed.labels(kind="telemetry")._value.get()
    assert failures >= 1 and metrics.outbox_write_failed.labels(kind="alerts")._value.get() == 1
    _free_the_disk(box)
    assert box.flush() == 120 and box.staged() == 0
    box.put_alert(alert)
    entries = box.pending(10_000)
    batches = [decode(e.payload, TelemetryBatch) for e in entries if e.kind == "telemetry"]
    assert [r.seq for b in batches for r in b.readings] == list(range(121))  # every reading, in order, once
    assert [b.seq for b in batches] == list(range(1, len(batches) + 1))  # no sequence burnt by the failures
    assert [e.seq for e in entries if e.kind == "alerts"] == list(range(1, fitted + 2))


def test_while_the_disk_stays_full_staged_memory_is_bounded_and_the_drop_counted(tmp_path: Path) -> None:
    metrics = AgentMetrics()
    box = Outbox(tmp_path / "o.sqlite", "gw1", metrics, batch_max_readings=10)
    box.stage(reading(0))
    box.flush()
    _fill_the_disk(box)
    for i in range(1, 1001):
        box.stage(reading(i))
    box.flush()
    assert box.staged() == box.max_staged_readings
    dropped = metrics.dropped.labels(kind="telemetry", action="dropped")._value.get()
    _free_the_disk(box)
    box.flush()
    kept = [r.seq for e in box.pending(1000) if e.kind == "telemetry"
            for r in decode(e.payload, TelemetryBatch).readings]
    assert len(kept) + dropped == 1001 and dropped > 0  # every reading is stored or counted as dropped
    assert kept == sorted(kept) and kept[-box.max_staged_readings:] == list(range(1001 - box.max_staged_readings,
                                                                                    1001))  # the newest are kept


def test_the_agent_keeps_an_alert_it_could_not_commit_and_commits_it_first_on_the_next_tick(tmp_path: Path) -> None:
    from edge_agent.agent import Agent
    from edge_agent.config import parse_config

    config = parse_config({"gateway_id": "gw1", "mqtt": {"host": "127.0.0.1", "password": "x"},
                           "inputs": [{"type": "udp", "bind": "127.0.0.1:0"}],
                           "outbox": {"path": str(tmp_path / "o.sqlite")}})
    agent = Agent(config)
    _fill_the_disk(agent.outbox)
    first = alert(0)
    later = msgspec.structs.replace(first, state="clear", updated_at=T0 + 60_000)
    agent._raise([first])
    while not agent._unsent_alerts:  # fill the last free bytes: the alert waits, it is not lost
        agent._raise([first])
    waiting = len(agent._unsent_alerts)
    agent._raise([later])
    assert agent._unsent_alerts[-1] == later and len(agent._unsent_alerts) == waiting + 1  # order kept
    _free_the_disk(agent.outbox)
    agent.tick()
    assert agent._unsent_alerts == []
    stored = [decode(e.payload, AlertEvent) for e in agent.outbox.pending(10_000) if e.kind == "alerts"]
    assert [e.seq for e in stored] == list(range(1, len(stored) + 1)) and stored[-1].state == "clear"
    agent.outbox.close()


def test_the_cap_shrinks_to_what_the_disk_holds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil
    from collections import namedtuple

    from edge_agent import outbox as outbox_module

    metrics = AgentMetrics()
    box = Outbox(tmp_path / "o.sqlite", "gw1", metrics, batch_max_readings=100)
    for i in range(1000):
        box.stage(reading(i))
    box.flush()
    stored = box.bytes
    usage = namedtuple("usage", "total used free")
    # another process filled the disk: only the reserve minus 1 KiB is left
    left = outbox_module.FREE_DISK_RESERVE - 1024
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: usage(1 << 30, 1 << 30, left))
    box.stage(reading(1000))
    box.flush()
    assert box.bytes < stored  # old telemetry thinned to give the disk its reserve back, counted
    assert metrics.dropped.labels(kind="telemetry", action="thinned")._value.get() > 0
