"""Replay: PUBACKed messages are kept (bounded by age and bytes) and re-queued, seqs unchanged, when the
cloud asks; a bad request is counted and changes nothing."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.metrics import AgentMetrics
from edge_agent.outbox import Outbox
from edge_agent.replay_requests import ReplayHandler
from protocol.codec import decode, encode
from protocol.messages import Replay, TelemetryBatch
from tests.unit.test_edge_outbox import T0, reading


class Clock:
    def __init__(self) -> None:
        self.now = T0 / 1000

    def __call__(self) -> float:
        return self.now


def delivered(box: Outbox, batches: int) -> None:
    """Commit `batches` telemetry batches and PUBACK all of them."""
    for i in range(batches):
        box.stage(reading(i))
        box.flush()
    for entry in box.pending(batches):
        box.ack(entry.id)


def request(first: int, last: int, gateway: str = "gw1", stream: str = "telemetry") -> bytes:
    return encode(Replay(gateway=gateway, stream=stream, first_seq=first, last_seq=last,  # type: ignore[arg-type]
                         requested_at=T0))


def test_acked_batches_are_kept_and_replayed_with_their_seqs(tmp_path: Path) -> None:
    metrics = AgentMetrics()
    box = Outbox(tmp_path / "o.sqlite", "gw1", metrics)
    delivered(box, 5)
    assert box.depth() == 0 and box.sent_bytes > 0
    handler = ReplayHandler("gw1", box, metrics)
    assert handler.handle(request(2, 4)) == 3
    again = box.pending(10)
    assert [(e.kind, e.seq) for e in again] == [("telemetry", 2), ("telemetry", 3), ("telemetry", 4)]
    assert [decode(e.payload, TelemetryBatch).readings[0].seq for e in again] == [1, 2, 3]
    assert metrics.replayed.labels(kind="telemetry")._value.get() == 3
    for entry in again:
        box.ack(entry.id)
    assert handler.handle(request(2, 4)) == 3  # kept again after the second PUBACK
    assert handler.handle(request(50, 60)) == 0  # never existed: nothing to send


def test_kept_messages_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    box = Outbox(path, "gw1", AgentMetrics())
    delivered(box, 3)
    box.close()
    reopened = Outbox(path, "gw1", AgentMetrics())
    assert reopened.sent_bytes > 0
    assert reopened.replay("telemetry", 1, 3) == 3


def test_kept_messages_are_bounded_by_age_and_by_bytes(tmp_path: Path) -> None:
    clock = Clock()
    box = Outbox(tmp_path / "o.sqlite", "gw1", AgentMetrics(), keep_sent_s=60, clock=clock)
    delivered(box, 3)
    clock.now += 120
    delivered(box, 70)  # 64 acks trigger a pruning: the first three are now too old
    assert box.replay("telemetry", 1, 3) == 0
    assert box.replay("telemetry", 4, 4) == 1

    small = Outbox(tmp_path / "s.sqlite", "gw1", AgentMetrics(), keep_sent_bytes=2000)
    delivered(small, 40)
    assert 0 < small.sent_bytes <= 2000
    assert small.replay("telemetry", 40, 40) == 1  # the newest are kept, the oldest went first
    assert small.replay("telemetry", 1, 1) == 0


def test_keeping_can_be_switched_off(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", "gw1", AgentMetrics(), keep_sent_s=0)
    delivered(box, 3)
    assert box.sent_bytes == 0 and box.replay("telemetry", 1, 3) == 0


def test_bad_requests_are_counted_and_change_nothing(tmp_path: Path) -> None:
    metrics = AgentMetrics()
    box = Outbox(tmp_path / "o.sqlite", "gw1", metrics)
    delivered(box, 3)
    handler = ReplayHandler("gw1", box, metrics)
    assert handler.handle(request(1, 3, gateway="gw2")) == 0
    assert handler.handle(b'{"v":1,"gateway":"gw1","stream":"telemetry","first_seq":3,"last_seq":1,'
                          b'"requested_at":1767225600000}') == 0
    assert handler.handle(b"\xff not json") == 0
    assert handler.handle(b'{"v":2}') == 0
    rejected = {s.labels["reason"]: s.value for m in metrics.replay_rejected.collect() for s in m.samples
                if s.name.endswith("_total")}
    assert rejected == {"gateway_mismatch": 1, "invalid": 1, "malformed": 1, "schema_version": 1}
    assert box.depth() == 0 and box.replay("telemetry", 1, 3) == 3  # still kept


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(max_size=300) | st.builds(
    lambda a, b, s: request(min(a, b), max(a, b), stream=s), st.integers(1, 10), st.integers(1, 10),
    st.sampled_from(["telemetry", "alerts"])))
def test_any_bytes_are_handled_without_raising(tmp_path: Path, payload: bytes) -> None:
    box = Outbox(tmp_path / "fuzz.sqlite", "gw1", AgentMetrics())
    handler = ReplayHandler("gw1", box, AgentMetrics())
    assert handler.handle(payload) >= 0
    box.close()
