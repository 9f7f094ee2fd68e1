"""The outbox: gap-free sequences, ack only removes, survives reopen and kill -9, disk cap drops telemetry first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
