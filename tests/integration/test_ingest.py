"""`coldwatch ingest` as a real subprocess between a real mosquitto and a real influxd: every point
stored once, poison messages counted and acked, two workers, an InfluxDB outage, SIGTERM."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from sqlmodel import Session, select

from cloud.db.engine import make_engine
from cloud.db.ingest import IngestGap, SeqStream
from cloud.services import dead_letters, ingest_journal
from cloud.tsdb.influx import InfluxClient
from deploy.services import Influxd, free_port
from protocol import Reading, TelemetryBatch, encode, topic
from tests.conftest import CLOUD_BIN, INGEST_USER, Broker

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000
SENSORS = [f"aa:bb:cc:00:01:{i:02x}" for i in range(5)]


def make_batch(seq: int, gateway: str = "gw1", per_sensor: int = 4) -> TelemetryBatch:
    """A batch whose points are unique per seq: ts = T0 + seq·100 s + i·1 s."""
    readings = [
        Reading(sensor=s, ts=T0 + seq * 100_000 + i * 1000, profile="chilled", seq=(seq * per_sensor + i) % 65535,
                temp_c=2.0 + i / 10, rh_pct=50.0, battery_mv=3000, rssi_dbm=-60)
        for s in SENSORS for i in range(per_sensor)
    ]
    return TelemetryBatch(gateway=gateway, seq=seq, sent_at=T0 + seq * 100_000, readings=readings)


def expected_points(seqs: range, per_sensor: int = 4) -> set[tuple[str, int]]:
    return {(s, T0 + q * 100_000 + i * 1000) for q in seqs for s in SENSORS for i in range(per_sensor)}


class Gateway:
    """A gateway's MQTT connection (its own credentials, so the broker's ACL applies)."""

    def __init__(self, broker: Broker, gateway_id: str = "gw1") -> None:
        self.gateway_id = gateway_id
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{gateway_id}-{secrets.token_hex(3)}",
                                  protocol=MQTTProtocolVersion.MQTTv5)
        self.client.username_pw_set(gateway_id, broker.password(gateway_id))
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def publish(self, payload: bytes, kind: str = "telemetry") -> None:
        info = self.client.publish(topic(self.gateway_id, kind), payload, qos=1)  # type: ignore[arg-type]
        info.wait_for_publish(timeout=10)
        assert info.is_published()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Worker:
    """A `coldwatch ingest` subprocess with its metrics on a free port and its log in a file."""

    def __init__(self, broker: Broker, influx_url: str, db: str, worker_id: str, logdir: Path,
                 batch_age: str = "0.2", batch_size: str = "5000", database_url: str | None = None) -> None:
        self.metrics_port = free_port()
        self.log = logdir / f"{worker_id}-{secrets.token_hex(2)}.log"
        # ingest's own mechanics, from gateways the tests never provision (a test may set reject in the environment)
        env = {"COLDWATCH_INGEST_UNKNOWN_GATEWAY": "register"} | dict(os.environ) | {
            "COLDWATCH_MQTT_HOST": broker.host, "COLDWATCH_MQTT_PORT": str(broker.port),
            "COLDWATCH_MQTT_USERNAME": INGEST_USER, "COLDWATCH_MQTT_PASSWORD": broker.password(INGEST_USER),
            "COLDWATCH_INFLUX_URL": influx_url, "COLDWATCH_INFLUX_DB": db,
            "COLDWATCH_DATABASE_URL": database_url or f"sqlite:///{logdir / 'coldwatch.db'}",
        }
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(CLOUD_BIN / "coldwatch"), "ingest", "--worker-id", worker_id, "--batch-age", batch_age,
                 "--batch-size", batch_size, "--metrics-port", str(self.metrics_port)],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )
        wait_for(lambda: "mqtt subscribed" in self.log_text(), f"worker {worker_id} subscribed", self)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def metric(self, name: str, labels: str = "") -> float:
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
        return self.proc.returncode


def wait_for(condition: Callable[[], bool], what: str, worker: Worker | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if worker is not None and worker.proc.poll() is not None:
            pytest.fail(f"worker exited with {worker.proc.returncode} waiting for {what}:\n{worker.log_text()[-3000:]}")
        if time.monotonic() > deadline:
            log = worker.log_text()[-3000:] if worker else ""
            pytest.fail(f"timed out waiting for {what}\n{log}")
        time.sleep(0.1)


def stored(influx_url: str, db: str) -> list[tuple[str, int]]:
    with InfluxClient(url=influx_url, database=db) as client:
        if not client.database_exists():
            return []
        series = client.query('SELECT "sensor", "temp_c" FROM "reading" WHERE time >= 0')
    return [(row["sensor"], row["time"]) for s in series for row in s.rows()]


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for w in started:
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait(10)


@pytest.fixture
def mosquitto(mosquitto_factory: Callable[..., Broker]) -> Broker:
    """A broker of this test's own: a stopped worker's session stays in the shared group (and receives
    its share of messages) until it returns or the session expires, so tests must not share one."""
    return mosquitto_factory()


@pytest.fixture
def gw1(mosquitto: Broker) -> Iterator[Gateway]:
    gateway = Gateway(mosquitto)
    yield gateway
    gateway.close()


def test_every_point_lands_once_and_republishing_adds_none(
    mosquitto: Broker, influxd: Influxd, influx_db: str, gw1: Gateway, workers: list[Worker], tmp_path: Path
) -> None:
    worker = Worker(mosquitto, influxd.url, influx_db, f"ingest-{influx_db}", tmp_path)
    workers.append(worker)
    for seq in range(1, 21):
        gw1.publish(encode(make_batch(seq)))
    want = expected_points(range(1, 21))
    wait_for(lambda: len(stored(influxd.url, influx_db)) >= len(want), "all points stored", worker)
    first = stored(influxd.url, influx_db)
    assert sorted(first) == sorted(want)  # every point, none twice

    for seq in range(1, 6):  # the gateway re-sends (e.g. after losing a PUBACK)
        gw1.publish(encode(make_batch(seq)))
    wait_for(lambda: worker.metric("coldwatch_ingest_messages_acked_total") >= 25, "re-sent batches acked", worker)
    assert sorted(stored(influxd.url, influx_db)) == sorted(want)
    assert worker.metric("coldwatch_ingest_messages_received_total") == 25
    assert worker.metric("coldwatch_ingest_gateway_last_seq", '{gateway="gw1"}') == 20
    assert worker.stop() == 0


def test_poison_messages_are_counted_acked_and_ingest_goes_on(
    mosquitto: Broker, influxd: Influxd, influx_db: str, gw1: Gateway, workers: list[Worker], tmp_path: Path
) -> None:
    worker_id = f"ingest-{influx_db}"
    worker = Worker(mosquitto, influxd.url, influx_db, worker_id, tmp_path)
    workers.append(worker)
    good = encode(make_batch(1)).decode()
    poison = {
        "malformed": [b"\x00\xffgarbage", good.replace('"temp_c":2.0', '"temp_c":NaN').encode()],
        "schema_version": [good.replace('{"v":1', '{"v":2').encode()],
        "nan": [good.replace('"temp_c":2.0', '"temp_c":1e999').encode()],
        "out_of_range": [good.replace('"temp_c":2.0', '"temp_c":999.0').encode()],
        "topic_gateway_mismatch": [encode(make_batch(1, gateway="gw2"))],
    }
    assert '"temp_c":2.0' in good and good.startswith('{"v":1')
    for payloads in poison.values():
        for payload in payloads:
            gw1.publish(payload)
    gw1.publish(encode(make_batch(2)))
    want = expected_points(range(2, 3))
    wait_for(lambda: len(stored(influxd.url, influx_db)) >= len(want), "good batch stored after poison", worker)
    assert sorted(stored(influxd.url, influx_db)) == sorted(want)
    wait_for(lambda: worker.metric("coldwatch_ingest_messages_acked_total") >= 7, "everything acked", worker)
    for reason, payloads in poison.items():
        value = worker.metric("coldwatch_ingest_messages_rejected_total", f'{{reason="{reason}"}}')
        assert value == len(payloads), reason
    assert "message rejected reason=topic_gateway_mismatch gateway=gw1" in worker.log_text()
    assert worker.stop() == 0

    # Same worker id again: the poison was acked, so only the new batch arrives.
    again = Worker(mosquitto, influxd.url, influx_db, worker_id, tmp_path)
    workers.append(again)
    gw1.publish(encode(make_batch(3)))
    want |= expected_points(range(3, 4))
    wait_for(lambda: len(stored(influxd.url, influx_db)) >= len(want), "batch after restart stored", again)
    wait_for(lambda: again.metric("coldwatch_ingest_messages_acked_total") >= 1, "acked after restart", again)
    assert again.metric("coldwatch_ingest_messages_received_total") == 1
    assert again.stop() == 0


def test_refused_messages_are_kept_with_their_payload_and_a_future_batch_is_stored_on_replay(
    mosquitto: Broker, influxd: Influxd, influx_db: str, gw1: Gateway, workers: list[Worker], tmp_path: Path
) -> None:
    database_url = f"sqlite:///{tmp_path / 'fleet.db'}"
    worker = Worker(mosquitto, influxd.url, influx_db, f"ingest-{influx_db}", tmp_path, database_url=database_url)
    workers.append(worker)
    garbage = b"\x00\xffgarbage"
    ahead = int(time.time() * 1000) + 3_600_000  # a gateway whose clock runs an hour ahead
    future = TelemetryBatch(gateway="gw1", seq=1, sent_at=ahead, readings=[
        Reading(sensor=s, ts=ahead, profile="chilled", temp_c=4.0) for s in SENSORS])
    gw1.publish(garbage)
    gw1.publish(encode(future))
    gw1.publish(encode(make_batch(2)))
    wait_for(lambda: worker.metric("coldwatch_ingest_messages_acked_total") >= 3, "all three acked", worker)
    assert worker.metric("coldwatch_ingest_messages_rejected_total", '{reason="future_ts"}') == 1
    assert sorted(stored(influxd.url, influx_db)) == sorted(expected_points(range(2, 3)))  # not the future one
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            letters = {d.reason: d for d in dead_letters.listed(session)}
            assert set(letters) == {"malformed", "future_ts"}
            assert dead_letters.payload(letters["malformed"]) == garbage  # the exact bytes, not only a count
            assert dead_letters.payload(letters["future_ts"]) == encode(future)
            assert letters["future_ts"].gateway_id == "gw1" and letters["future_ts"].topic == "cw/v1/gw1/telemetry"
            dead_letters.request_replay(session, letter_id=letters["future_ts"].id)  # what the API does for ops
            dead_letters.request_replay(session, letter_id=letters["malformed"].id)
            session.commit()
        want = expected_points(range(2, 3)) | {(s, ahead) for s in SENSORS}
        wait_for(lambda: sorted(stored(influxd.url, influx_db)) == sorted(want), "the replayed batch stored", worker,
                 timeout=30)

        def states() -> dict[str, tuple[str, str]]:
            with Session(engine) as session:
                return {d.reason: (d.state, d.replay_note) for d in dead_letters.listed(session)}

        wait_for(lambda: {s for s, _ in states().values()} == {"replayed", "failed"}, "replay outcomes", worker)
        assert states()["future_ts"][0] == "replayed"
        assert states()["malformed"][0] == "failed" and states()["malformed"][1].startswith("malformed")
    finally:
        engine.dispose()
    assert worker.stop() == 0


def test_a_gap_in_a_gateways_telemetry_is_asked_for_again_on_its_replay_topic(
    mosquitto: Broker, influxd: Influxd, influx_db: str, gw1: Gateway, workers: list[Worker], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sweeps (run on the writer thread) declare the gap; the MQTT thread publishes the request."""
    from protocol import decode
    from protocol.messages import Replay

    monkeypatch.setenv("COLDWATCH_INGEST_GAP_GRACE_S", "0.5")
    monkeypatch.setenv("COLDWATCH_INGEST_REPLAY_AFTER_S", "1")
    requests: list[Replay] = []
    gw1.client.on_message = lambda _c, _u, m: requests.append(decode(m.payload, Replay))
    gw1.client.subscribe(topic("gw1", "replay"), qos=1)
    worker = Worker(mosquitto, influxd.url, influx_db, f"ingest-{influx_db}", tmp_path)
    workers.append(worker)
    gw1.publish(encode(make_batch(1)))
    gw1.publish(encode(make_batch(3)))  # seq 2 never comes
    wait_for(lambda: bool(requests), "a replay request", worker, timeout=45)
    assert (requests[0].stream, requests[0].first_seq, requests[0].last_seq) == ("telemetry", 2, 2)
    assert worker.metric("coldwatch_ingest_replays_requested_total") >= 1
    assert worker.stop() == 0


def test_two_workers_on_the_shared_subscription_lose_and_double_nothing(
    mosquitto: Broker, influxd: Influxd, influx_db: str, workers: list[Worker], tmp_path: Path
) -> None:
    a = Worker(mosquitto, influxd.url, influx_db, f"a-{influx_db}", tmp_path)
    b = Worker(mosquitto, influxd.url, influx_db, f"b-{influx_db}", tmp_path)
    workers += [a, b]
    gateways = [Gateway(mosquitto, "gw3"), Gateway(mosquitto, "gw4")]
    try:
        for seq in range(1, 61):
            for gw in gateways:
                gw.publish(encode(make_batch(seq, gateway=gw.gateway_id, per_sensor=1)))
    finally:
        for gw in gateways:
            gw.close()
    want = {(s, T0 + q * 100_000) for q in range(1, 61) for s in SENSORS}
    with InfluxClient(url=influxd.url, database=influx_db) as client:
        def by_gateway() -> dict[str, int]:
            series = client.query('SELECT count("temp_c") FROM "reading" WHERE time >= 0 GROUP BY "gateway"')
            return {s.tags["gateway"]: int(s.values[0][1]) for s in series}

        wait_for(lambda: client.database_exists() and by_gateway() == {"gw3": 300, "gw4": 300}, "all stored", a)

        def rolled_up(measurement: str) -> int:
            series = client.query(f'SELECT sum("n_t") FROM "{measurement}" WHERE time >= 0')
            return int(series[0].values[0][1]) if series else 0

        # each worker rolls up what it stored; the buckets count every reading once, from both workers
        wait_for(lambda: rolled_up("reading_1m") == 600 and rolled_up("reading_1h") == 600, "rolled up", a)
    assert {(s, t) for s, t in stored(influxd.url, influx_db)} == want
    received = [w.metric("coldwatch_ingest_messages_received_total") for w in (a, b)]
    assert sum(received) == 120  # each message went to exactly one worker
    assert all(r > 0 for r in received)  # and both did work
    assert a.stop() == 0 and b.stop() == 0


def test_a_rolling_restart_of_both_workers_mid_stream_loses_and_doubles_nothing(
    mosquitto: Broker, influxd: Influxd, influx_db: str, workers: list[Worker], tmp_path: Path
) -> None:
    """An upgrade restarts the workers one at a time while gateways keep publishing: each stopped worker flushes
    and acks what it holds (SIGTERM), the broker keeps its session's share for it, and the same id picks it up."""
    database_url = f"sqlite:///{tmp_path / 'fleet.db'}"
    ids = (f"a-{influx_db}", f"b-{influx_db}")
    live = {i: Worker(mosquitto, influxd.url, influx_db, i, tmp_path, database_url=database_url) for i in ids}
    workers.extend(live.values())
    published = threading.Event()
    errors: list[BaseException] = []

    def publish() -> None:
        gateways = [Gateway(mosquitto, "gw3"), Gateway(mosquitto, "gw4")]
        try:
            for seq in range(1, 151):
                for gw in gateways:
                    gw.publish(encode(make_batch(seq, gateway=gw.gateway_id, per_sensor=1)))
                time.sleep(0.02)
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)
        finally:
            for gw in gateways:
                gw.close()
            published.set()

    sender = threading.Thread(target=publish, daemon=True)
    sender.start()
    for worker_id in ids:  # one at a time, as an upgrade does
        time.sleep(1.0)
        assert live[worker_id].stop() == 0
        live[worker_id] = Worker(mosquitto, influxd.url, influx_db, worker_id, tmp_path, database_url=database_url)
        workers.append(live[worker_id])
    assert published.wait(120) and not errors, errors
    with InfluxClient(url=influxd.url, database=influx_db) as client:
        def by_gateway() -> dict[str, int]:
            series = client.query('SELECT count("temp_c") FROM "reading" WHERE time >= 0 GROUP BY "gateway"')
            return {s.tags["gateway"]: int(s.values[0][1]) for s in series}

        wait_for(lambda: client.database_exists() and by_gateway() == {"gw3": 750, "gw4": 750}, "all stored",
                 live[ids[0]])
    assert sorted(stored(influxd.url, influx_db)) == sorted(
        (s, T0 + q * 100_000) for q in range(1, 151) for s in SENSORS for _ in ("gw3", "gw4"))
    engine = make_engine(database_url)
    with Session(engine) as session:  # completeness: no gap was recorded for either gateway's stream
        assert session.exec(select(IngestGap)).all() == []
    engine.dispose()
    assert all(w.stop() == 0 for w in live.values())


def test_influx_outage_loses_nothing(
    mosquitto: Broker, influxd_factory: Callable[..., Influxd], influx_db: str, gw1: Gateway,
    workers: list[Worker], tmp_path: Path
) -> None:
    server = influxd_factory()
    worker = Worker(mosquitto, server.url, influx_db, f"ingest-{influx_db}", tmp_path)
    workers.append(worker)
    for seq in range(1, 11):
        gw1.publish(encode(make_batch(seq)))
    wait_for(lambda: len(stored(server.url, influx_db)) >= 200, "points before the outage", worker)

    server.stop()
    for seq in range(11, 51):
        gw1.publish(encode(make_batch(seq)))
    wait_for(lambda: worker.metric("coldwatch_ingest_write_failures_total", '{kind="unavailable"}') >= 3,
             "write retries during the outage", worker)
    time.sleep(10)  # an outage of some length, with the retry backoff at its cap
    assert worker.proc.poll() is None
    assert worker.metric("coldwatch_ingest_influx_up") == 0
    assert worker.metric("coldwatch_ingest_messages_acked_total") == 10  # nothing acked while influx was down

    server.start()
    want = expected_points(range(1, 51))
    wait_for(lambda: len(stored(server.url, influx_db)) >= len(want), "every point after the outage", worker)
    assert sorted(stored(server.url, influx_db)) == sorted(want)
    wait_for(lambda: worker.metric("coldwatch_ingest_messages_acked_total") >= 50, "all acked", worker)
    log = worker.log_text()
    assert log.count("influx write failed, holding messages unacknowledged") == 1
    assert log.count("influx available again") == 1
    assert worker.stop() == 0


def test_sigterm_flushes_the_partial_batch_and_acks_it(
    mosquitto: Broker, influxd: Influxd, influx_db: str, gw1: Gateway, workers: list[Worker], tmp_path: Path
) -> None:
    worker_id = f"ingest-{influx_db}"
    worker = Worker(mosquitto, influxd.url, influx_db, worker_id, tmp_path, batch_age="60")
    workers.append(worker)
    for seq in range(1, 4):
        gw1.publish(encode(make_batch(seq)))
    wait_for(lambda: worker.metric("coldwatch_ingest_messages_received_total") >= 3, "batches received", worker)
    assert worker.metric("coldwatch_ingest_points_written_total") == 0  # still batching (a tenth of age 60 s)
    assert worker.stop() == 0
    assert sorted(stored(influxd.url, influx_db)) == sorted(expected_points(range(1, 4)))

    again = Worker(mosquitto, influxd.url, influx_db, worker_id, tmp_path)
    workers.append(again)
    gw1.publish(encode(make_batch(4)))
    wait_for(lambda: again.metric("coldwatch_ingest_messages_acked_total") >= 1, "new batch acked", again)
    assert again.metric("coldwatch_ingest_messages_received_total") == 1  # the 3 were acked before exit
    assert again.stop() == 0


def test_broker_restart_reconnects_resubscribes_and_loses_nothing(
    mosquitto: Broker, influxd: Influxd, influx_db: str, workers: list[Worker], tmp_path: Path
) -> None:
    worker = Worker(mosquitto, influxd.url, influx_db, f"ingest-{influx_db}", tmp_path)
    workers.append(worker)
    gw = Gateway(mosquitto)
    for seq in range(1, 6):
        gw.publish(encode(make_batch(seq)))
    gw.close()
    wait_for(lambda: len(stored(influxd.url, influx_db)) >= 100, "points before the restart", worker)

    mosquitto.server.stop()  # clean shutdown: the broker saves the worker's session
    mosquitto.server.start()
    wait_for(lambda: worker.log_text().count("mqtt subscribed") >= 2, "re-subscribed after reconnect", worker)
    gw = Gateway(mosquitto)
    try:
        for seq in range(6, 11):
            gw.publish(encode(make_batch(seq)))
    finally:
        gw.close()
    want = expected_points(range(1, 11))
    wait_for(lambda: len(stored(influxd.url, influx_db)) >= len(want), "points after the restart", worker)
    assert sorted(stored(influxd.url, influx_db)) == sorted(want)
    assert worker.log_text().count("mqtt connected") == 2
    assert worker.stop() == 0


def test_message_refused_by_influx_is_acked_and_counted_the_rest_stored(
    mosquitto: Broker, influxd: Influxd, influx_db: str, gw1: Gateway, workers: list[Worker], tmp_path: Path
) -> None:
    with InfluxClient(url=influxd.url, database=influx_db) as client:  # keeps one hour: older points are refused
        client.execute(f'CREATE DATABASE "{influx_db}" WITH DURATION 1h')
    worker = Worker(mosquitto, influxd.url, influx_db, f"ingest-{influx_db}", tmp_path, batch_age="1")
    workers.append(worker)
    now = int(time.time() * 1000)
    fresh = [TelemetryBatch(gateway="gw1", seq=seq, sent_at=now, readings=[
        Reading(sensor=s, ts=now - seq * 1000, profile="chilled", temp_c=1.0) for s in SENSORS]) for seq in (1, 3)]
    too_old = TelemetryBatch(gateway="gw1", seq=2, sent_at=now, readings=[
        Reading(sensor=SENSORS[0], ts=T0, profile="chilled", temp_c=1.0)])
    for batch in (fresh[0], too_old, fresh[1]):
        gw1.publish(encode(batch))
    wait_for(lambda: worker.metric("coldwatch_ingest_messages_acked_total") >= 3, "all three acked", worker)
    assert worker.metric("coldwatch_ingest_messages_rejected_total", '{reason="influx_rejected"}') == 1
    assert sorted(stored(influxd.url, influx_db)) == sorted((s, now - q * 1000) for q in (1, 3) for s in SENSORS)
    assert worker.stop() == 0


def test_field_type_conflict_holds_the_data_until_resolved(
    mosquitto: Broker, influxd: Influxd, influx_db: str, gw1: Gateway, workers: list[Worker], tmp_path: Path
) -> None:
    with InfluxClient(url=influxd.url, database=influx_db) as client:
        client.ensure_database()  # another writer stored `seq` as a float: every integer seq now conflicts
        client.write([f"reading,gateway=other,sensor=aa:bb:cc:00:09:09,profile=chilled seq=1.5 {T0}"])
        worker = Worker(mosquitto, influxd.url, influx_db, f"ingest-{influx_db}", tmp_path)
        workers.append(worker)
        for seq in (1, 2):
            gw1.publish(encode(make_batch(seq)))
        wait_for(lambda: worker.metric("coldwatch_ingest_write_failures_total", '{kind="rejected"}') >= 2,
                 "refused writes", worker)
        assert worker.metric("coldwatch_ingest_messages_acked_total") == 0
        assert worker.metric("coldwatch_ingest_messages_rejected_total", '{reason="influx_rejected"}') == 0
        client.execute('DROP MEASUREMENT "reading"')  # the operator's fix
    want = expected_points(range(1, 3))
    wait_for(lambda: len(stored(influxd.url, influx_db)) >= len(want), "stored after the fix", worker)
    assert sorted(stored(influxd.url, influx_db)) == sorted(want)
    assert worker.stop() == 0


def test_two_workers_on_postgresql_interleaving_every_gateways_batches_lose_double_and_invent_nothing(
    mosquitto: Broker, influxd: Influxd, influx_db: str, workers: list[Worker], tmp_path: Path,
    postgres: Any,
) -> None:
    """The interleaving that made two workers slower than one: every gateway's consecutive batches split between
    the workers, so both update the same gateway's and sensors' completeness rows at once. Nothing is lost or
    doubled and no gap is invented."""
    database_url = postgres.create_database("t_" + secrets.token_hex(6))
    a = Worker(mosquitto, influxd.url, influx_db, f"pa-{influx_db}", tmp_path, database_url=database_url)
    b = Worker(mosquitto, influxd.url, influx_db, f"pb-{influx_db}", tmp_path, database_url=database_url)
    workers += [a, b]
    gateways = [Gateway(mosquitto, f"gw{i}") for i in (5, 6, 7)]
    try:
        for seq in range(1, 41):
            for gw in gateways:
                gw.publish(encode(make_batch(seq, gateway=gw.gateway_id, per_sensor=2)))
    finally:
        for gw in gateways:
            gw.close()
    want = {(s, T0 + q * 100_000 + i * 1000) for q in range(1, 41) for s in SENSORS for i in range(2)}
    wait_for(lambda: a.metric("coldwatch_ingest_messages_acked_total")
             + b.metric("coldwatch_ingest_messages_acked_total") >= 120, "every batch acked", a, timeout=90)
    # once per gateway each (the gateways share their tags' MACs; a point is keyed by its gateway, sensor and time)
    assert sorted(stored(influxd.url, influx_db)) == sorted([p for p in want for _ in range(3)])
    received = [w.metric("coldwatch_ingest_messages_received_total") for w in (a, b)]
    assert sum(received) == 120 and all(r > 0 for r in received)
    engine = make_engine(database_url)
    try:
        def merged() -> bool:  # the workers' journal (cloud/services/ingest_journal.py), merged within a second
            with Session(engine) as session:
                return ingest_journal.waiting(session) == 0
        wait_for(merged, "the journal merged", a)
        with Session(engine) as session:
            assert session.exec(select(IngestGap)).all() == []  # no gap invented by the split
            streams = session.exec(select(SeqStream)).all()
            # every gateway's batch seqs counted once; every sensor's (the three gateways share the tags) up to
            # its last, seq 81, with nothing missing
            assert sorted((s.kind, s.highest, s.missing, s.holes) for s in streams) == sorted(
                [("telemetry", 40, 0, None)] * 3 + [("sensor", 81, 0, None)] * len(SENSORS))
            assert [s.received for s in streams if s.kind == "telemetry"] == [40] * 3
    finally:
        engine.dispose()
    assert a.stop() == 0 and b.stop() == 0
