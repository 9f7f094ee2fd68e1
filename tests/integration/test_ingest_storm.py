"""No message can stop ingest: hypothesis throws storms of hostile messages of every kind (huge integers, NaN,
deep nesting, 1 MiB strings, wrong types, far-future times, garbage bytes) at one running worker, with real
mosquitto and influxd, on SQLite and PostgreSQL; after each storm a normal batch is stored within seconds, every
message was acknowledged, and the worker is the same process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deploy.services import Influxd
from protocol import encode
from tests.conftest import Broker
from tests.integration.test_ingest import Gateway, Worker, expected_points, make_batch, stored, wait_for

pytestmark = pytest.mark.integration

KINDS = ("telemetry", "alerts", "status", "reported")
HUGE = st.sampled_from([10**30, -(10**30), 2**63, 2**64 + 1, 10**400, 1e308, -1e308])
ODD_NUMBER = HUGE | st.sampled_from(["NaN", "Infinity", "1e999", "-0", "²", ""]) | st.floats(allow_nan=True)
ODD_TEXT = st.sampled_from(["", "\x00", "\ud800", "a" * (1 << 20), "../../etc", "gw1\n", "😀" * 1000])
ODD = ODD_NUMBER | ODD_TEXT | st.none() | st.booleans() | st.lists(st.integers(), max_size=3)


def _deep(depth: int) -> bytes:
    return ('{"a":[' * depth + "0" + "]}" * depth).encode()  # built as text: json.dumps would recurse


def _mutated(base: dict[str, Any], path: tuple[str, ...], value: Any) -> bytes:
    doc = json.loads(json.dumps(base))
    target = doc
    for key in path[:-1]:
        target = target[key] if not isinstance(target, list) else target[0]
    if isinstance(target, list):
        target = target[0]
    target[path[-1]] = value
    return json.dumps(doc, allow_nan=True).encode()


_GOOD = json.loads(encode(make_batch(1, per_sensor=1)))
_FIELDS = [("seq",), ("sent_at",), ("gateway",), ("v",), ("readings", "ts"), ("readings", "temp_c"),
           ("readings", "seq"), ("readings", "battery_mv"), ("readings", "sensor"), ("readings", "profile"),
           ("readings", "anomaly_score"), ("readings", "rssi_dbm")]

MESSAGES = st.one_of(
    st.binary(max_size=300),  # garbage bytes
    st.builds(_deep, st.integers(50, 5000)),  # deep nesting
    st.builds(_mutated, st.just(_GOOD), st.sampled_from(_FIELDS), ODD),  # a telemetry batch with one odd value
    st.builds(lambda ts: _mutated(_GOOD, ("readings", "ts"), ts), st.integers(4_102_444_800_000, 10**15)),  # future
    st.builds(lambda d: json.dumps(d).encode(),
              st.dictionaries(st.sampled_from(["v", "gateway", "ts", "id", "state", "seq", "kind"]), ODD,
                              max_size=6)),  # anything shaped like an event
)


@pytest.fixture
def storm_target(mosquitto_factory: Any, influxd: Influxd, influx_db: str, database_url: str,
                 tmp_path: Path) -> Iterator[tuple[Worker, Gateway, Influxd, str]]:
    broker: Broker = mosquitto_factory()
    worker = Worker(broker, influxd.url, influx_db, f"storm-{influx_db}", tmp_path, database_url=database_url)
    gateway = Gateway(broker)
    try:
        yield worker, gateway, influxd, influx_db
    finally:
        gateway.close()
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait(10)


def test_a_storm_of_hostile_messages_never_stops_the_worker(
        storm_target: tuple[Worker, Gateway, Influxd, str]) -> None:
    worker, gateway, influxd, db = storm_target
    pid = worker.proc.pid
    sent = {"count": 0, "seq": 100}

    @settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
    @given(storm=st.lists(st.tuples(st.sampled_from(KINDS), MESSAGES), min_size=5, max_size=25))
    def storm_then_a_normal_batch(storm: list[tuple[str, bytes]]) -> None:
        for kind, payload in storm:
            gateway.publish(payload[:1_040_000], kind)
        sent["seq"] += 1
        gateway.publish(encode(make_batch(sent["seq"], per_sensor=1)))
        sent["count"] += len(storm) + 1
        want = expected_points(range(sent["seq"], sent["seq"] + 1), per_sensor=1)
        wait_for(lambda: want <= set(stored(influxd.url, db)), "the normal batch after the storm", worker, timeout=30)
        wait_for(lambda: worker.metric("coldwatch_ingest_messages_acked_total") >= sent["count"],
                 "every message acknowledged", worker, timeout=30)
        assert worker.proc.poll() is None and worker.proc.pid == pid  # the same process, still running

    storm_then_a_normal_batch()
    assert worker.metric("coldwatch_ingest_messages_received_total") == sent["count"]
    assert worker.stop() == 0
