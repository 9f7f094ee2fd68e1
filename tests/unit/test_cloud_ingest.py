"""Ingest worker pieces that need no broker: seq tracking, retry backoff, which refusals are final, one message
that SQL cannot hold refused alone (real SQLite)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlmodel import Session, select

from cloud.config import Settings
from cloud.db.engine import init_schema, make_engine
from cloud.db.fleet import Gateway
from cloud.ingest.batch_writer import Pending
from cloud.ingest.failures import BACKOFF_MAX_S, Backoff, caused_by_data, refused_for_good
from cloud.ingest.sql_sink import event_work, observed_in, telemetry_work
from cloud.ingest.worker import QUIET_GAP_S, IngestWorker, SeqTracker
from cloud.services.completeness import SENSOR_WRAP
from cloud.tsdb.influx import InfluxRejected
from protocol.messages import Reading, Status, TelemetryBatch


def test_seq_tracker_counts_skipped_seqs_and_ignores_redelivery() -> None:
    t = SeqTracker()
    assert t.observe("gw1", 5) == 0
    assert t.observe("gw1", 6) == 0
    assert t.observe("gw1", 9) == 2
    assert t.observe("gw1", 6) == 0  # re-delivered: no gap, highest unchanged
    assert t.observe("gw2", 1) == 0
    assert t.highest == {"gw1": 9, "gw2": 1}
    assert t.gaps == {"gw1": 2}


def test_backoff_doubles_to_the_cap_and_resets() -> None:
    now = [100.0]
    b = Backoff(lambda: now[0])
    assert b.ready()
    delays = [b.failed() for _ in range(8)]
    assert delays[:3] == [0.5, 1.0, 2.0] and delays[-1] == BACKOFF_MAX_S
    assert not b.ready()
    now[0] += BACKOFF_MAX_S
    assert b.ready()
    b.reset()
    assert b.failed() == 0.5


@pytest.mark.parametrize(("status", "message", "final"), [
    (400, "partial write: points beyond retention policy dropped=1", True),
    (400, "unable to parse 'x': invalid field format", True),
    (400, 'partial write: field type conflict: input field "seq" on measurement "reading" is type integer', False),
    (401, "authorization failed", False),
    (404, "database not found: coldwatch", False),
])
def test_which_refusals_drop_the_message(status: int, message: str, final: bool) -> None:
    assert refused_for_good(InfluxRejected(status, message)) is final


def test_receive_maximum_follows_batch_size_capped() -> None:
    small = IngestWorker(Settings(mqtt_password="pw", ingest_batch_size=300))
    big = IngestWorker(Settings(mqtt_password="pw", ingest_batch_size=200_000))
    assert (small.receive_maximum, big.receive_maximum) == (300, 65535)
    props = small.link.connect_properties()
    assert props.ReceiveMaximum == 300 and props.SessionExpiryInterval == 86_400


def test_a_partial_batch_is_written_early_only_when_no_message_comes_and_the_writer_is_idle() -> None:
    """Group commit: a batch waits the batch age while messages keep coming or a batch is being written; once no
    message has come for QUIET_GAP_S and the writer is idle, it goes after a tenth of the age."""
    now = [100.0]
    worker = IngestWorker(Settings(mqtt_password="pw", ingest_batch_age_s=1.0), clock=lambda: now[0])
    worker._pending = [Pending(mid=1, qos=1, lines=["x"], gateway="gw1")]
    worker._batch_started = worker.link.last_message_at = now[0]
    now[0] += 0.06
    assert not worker._batch_due()  # quiet, but younger than a tenth of the age
    now[0] += 0.09
    assert worker._batch_due()
    worker.link.last_message_at = now[0] - 0.01  # a message a moment ago: the batch grows on
    assert not worker._batch_due()
    worker.link.last_message_at = now[0] - QUIET_GAP_S
    worker._in_flight.append((Future(), [], 0))  # the writer is busy: the batch grows while it waits
    assert not worker._batch_due()
    now[0] += 0.9  # the age is reached whatever else
    assert worker._batch_due()


def test_the_link_stamps_each_message_it_hands_on() -> None:
    now = [5.0]
    seen: list[object] = []
    worker = IngestWorker(Settings(mqtt_password="pw"), clock=lambda: now[0])
    worker.link.client.on_message = worker.link._counted(lambda client, userdata, message: seen.append(message))
    now[0] = 7.5
    worker.link.client.on_message(worker.link.client, None, "m")
    assert (seen, worker.link.last_message_at, worker.link.messages_in) == (["m"], 7.5, 1)


class _Broker:
    """Stands in for the paho client: records which messages were acknowledged."""

    def __init__(self) -> None:
        self.acked: list[int] = []

    def ack(self, mid: int, qos: int) -> None:
        self.acked.append(mid)


class _Influx:
    def ensure_database(self, *, create: bool) -> None:
        pass

    def write(self, lines: list[str]) -> None:
        pass


def _worker(tmp_path: Path) -> tuple[IngestWorker, _Broker]:
    engine = make_engine(f"sqlite:///{tmp_path / 'ingest.db'}")
    init_schema(engine)
    worker = IngestWorker(Settings(database_url=f"sqlite:///{tmp_path / 'ingest.db'}", mqtt_password="pw"),
                          influx=_Influx(), engine=engine)  # type: ignore[arg-type]
    broker = _Broker()
    worker.client = broker  # type: ignore[assignment]
    return worker, broker


def _status(gateway: str, depth: int) -> Pending:
    # Built without the codec's bounds: what reaches SQL if a bound is ever missing from protocol/.
    status = Status(gateway=gateway, state="online", ts=1_700_000_000_000, outbox_depth=depth)
    return Pending(mid=len(gateway) + depth % 1000, qos=1, lines=[], gateway=gateway, sql=event_work(status))


def test_a_value_sql_cannot_hold_is_refused_alone_and_the_rest_of_the_batch_is_stored(tmp_path: Path) -> None:
    worker, broker = _worker(tmp_path)
    good, poison, other = _status("gw-a", 5), _status("gw-poison", 10**30), _status("gw-b", 7)
    good.mid, poison.mid, other.mid = 1, 2, 3
    worker._pending = [good, poison, other]
    worker.flush()
    assert broker.acked == [1, 2, 3]  # nothing is held: no redelivery loop
    assert poison.rejected == "sql_rejected"
    assert worker.metrics.rejected.labels(reason="sql_rejected")._value.get() == 1
    with Session(worker.engine) as session:
        depths = {g.id: g.outbox_depth for g in session.exec(select(Gateway)).all()}
    assert depths == {"gw-a": 5, "gw-b": 7}


def test_a_database_that_is_down_holds_the_batch_instead_of_refusing_it(tmp_path: Path) -> None:
    worker, broker = _worker(tmp_path)

    def down(works: object) -> object:
        raise OperationalError("INSERT", {}, Exception("unable to open database file"))

    worker.sql.apply = down  # type: ignore[method-assign]
    worker._pending = [_status("gw-a", 5)]
    worker.flush()
    assert broker.acked == [] and len(worker._pending) == 1 and worker._pending[0].rejected is None


@pytest.mark.parametrize(("exc", "data"), [
    (OverflowError("Python int too large to convert to SQLite INTEGER"), True),
    (DataError("INSERT", {}, Exception("numeric field overflow")), True),
    (TypeError("unsupported type"), True),
    (OperationalError("INSERT", {}, Exception("database is locked")), False),
    (IntegrityError("INSERT", {}, Exception("duplicate key")), False),
])
def test_which_sql_failures_are_the_datas_and_which_are_retried(exc: Exception, data: bool) -> None:
    assert caused_by_data(exc) is data


def test_a_dead_letter_the_database_refuses_does_not_stall_the_worker(tmp_path: Path) -> None:
    worker, broker = _worker(tmp_path)
    tries: list[str] = []

    def refuse(refused: list[object], **_kw: object) -> None:
        tries.append(str(refused[0].detail))  # type: ignore[attr-defined]
        raise DataError("INSERT", {}, Exception("invalid byte sequence: 0x00"))

    worker.sql.dead_letters = refuse  # type: ignore[method-assign]
    poison = Pending(mid=9, qos=1, lines=[], gateway="gw-a", rejected="malformed", topic="cw/v1/gw-a/telemetry",
                     payload=b"\x00", detail="bad\x00byte")
    worker._pending = [poison]
    worker.flush()
    assert broker.acked == [9]  # acknowledged all the same
    assert tries == ["bad\x00byte", "badbyte"]  # tried as it was, then with its texts cleaned
    assert worker.metrics.rejected.labels(reason="dead_letter_refused")._value.get() == 1


def test_a_database_that_is_down_holds_refused_messages_until_their_dead_letters_are_kept(tmp_path: Path) -> None:
    worker, broker = _worker(tmp_path)

    def down(refused: list[object], **_kw: object) -> None:
        raise OperationalError("INSERT", {}, Exception("unable to open database file"))

    worker.sql.dead_letters = down  # type: ignore[method-assign]
    worker._pending = [Pending(mid=3, qos=1, lines=[], rejected="malformed", topic="t", payload=b"x")]
    worker.flush()
    assert broker.acked == [] and len(worker._pending) == 1


def test_a_batch_in_flight_is_acked_before_the_messages_read_meanwhile(tmp_path: Path) -> None:
    worker, broker = _worker(tmp_path)
    first, second, later = _status("gw-a", 1), _status("gw-b", 2), _status("gw-c", 3)
    first.mid, second.mid, later.mid = 1, 2, 3
    worker._pending = [first, second]
    worker._start_batch()  # on the writer thread
    worker._pending.append(later)  # read while the first batch is written
    worker._finish_batch()
    worker.flush()
    assert broker.acked == [1, 2, 3]


def _locked(times: int | None, apply: Callable[[object], object]) -> Callable[[object], object]:
    """SQL that finds the database locked on its first `times` calls (None: every call), then applies."""
    calls = [0]

    def locked(works: object) -> object:
        calls[0] += 1
        if times is None or calls[0] <= times:
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        return apply(works)

    return locked


@pytest.mark.parametrize(("batches", "locked_for"), [(1, None), (2, None), (2, 1)], ids=[
    "a held batch goes back in front of the messages read meanwhile",
    "two held batches go back in arrival order",
    "a batch queued behind a held one is not written before it (the database is locked once)"])
def test_held_batches_go_back_in_arrival_order(tmp_path: Path, batches: int, locked_for: int | None) -> None:
    worker, broker = _worker(tmp_path)
    apply = worker.sql.apply
    worker.sql.apply = _locked(locked_for, apply)  # type: ignore[method-assign,arg-type]
    entries = [_status(f"gw-{i}", i) for i in range(batches + 1)]
    for mid, entry in enumerate(entries, 1):
        entry.mid = mid
    for entry in entries[:-1]:  # up to MAX_BATCHES_IN_FLIGHT on the writer's queue
        worker._pending = [entry]
        worker._start_batch()
    worker._pending.append(entries[-1])
    for _ in range(batches):
        worker._finish_batch()
    assert broker.acked == [] and worker._pending == entries  # nothing overtook the held batch
    worker.sql.apply = apply  # type: ignore[method-assign]
    worker.writer.backoff.reset()
    worker.flush()
    assert broker.acked == list(range(1, batches + 2)) and worker._pending == []


def test_a_batch_in_flight_when_the_link_drops_is_written_but_not_acked(tmp_path: Path) -> None:
    worker, broker = _worker(tmp_path)
    worker._pending = [_status("gw-a", 1)]
    worker._start_batch()
    worker._link_down("test")  # its packet ids belong to the old connection: the broker sends it again
    worker._finish_batch()
    assert broker.acked == [] and worker._pending == []
    with Session(worker.engine) as session:
        assert session.get(Gateway, "gw-a") is not None  # stored all the same (a second write is harmless)


def _gateways_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *provisioned: str) -> tuple[Engine, list[float]]:
    """A SQLite database holding `provisioned` gateways, and the clock ingest's gateway list reads (settable)."""
    from cloud.ingest import sql_sink

    engine = make_engine(f"sqlite:///{tmp_path / 'gateways.db'}")
    init_schema(engine)
    with Session(engine) as session:
        for gateway_id in provisioned:
            session.add(Gateway(id=gateway_id, created_at=0, provisioned=True))
        session.commit()
    now = [1000.0]
    monkeypatch.setattr(sql_sink.time, "monotonic", lambda: now[0])
    return engine, now


def test_a_revoked_gateway_is_refused_within_the_refresh_time_even_after_it_was_known(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cloud.ingest import sql_sink

    engine, now = _gateways_db(tmp_path, monkeypatch, "gw-a")
    sink = sql_sink.SqlSink(engine)
    assert sink.known_gateway("gw-a") and not sink.known_gateway("gw-b")
    with Session(engine) as session:
        gateway = session.get(Gateway, "gw-a")
        assert gateway is not None
        gateway.revoked = True
        session.add(gateway)
        session.commit()
    assert sink.known_gateway("gw-a")  # cached for up to KNOWN_REFRESH_S
    now[0] += sql_sink.KNOWN_REFRESH_S
    assert not sink.known_gateway("gw-a")


def test_a_gateway_provisioned_a_moment_ago_is_accepted_without_waiting_for_the_refresh(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cloud.ingest import sql_sink

    engine, now = _gateways_db(tmp_path, monkeypatch)
    sink = sql_sink.SqlSink(engine)
    assert not sink.known_gateway("gw-new")
    with Session(engine) as session:
        session.add(Gateway(id="gw-new", created_at=0, provisioned=True))
        session.commit()
    now[0] += sql_sink.MISS_REFRESH_S
    assert sink.known_gateway("gw-new")


def test_a_database_outage_while_checking_gateways_keeps_the_last_list_and_queries_once_per_refresh(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cloud.ingest import sql_sink

    engine, now = _gateways_db(tmp_path, monkeypatch, "gw-a")
    fresh = sql_sink.SqlSink(engine)
    queries = [0]

    class Down:
        def __init__(self, *_args: object) -> None:
            queries[0] += 1
            raise OperationalError("SELECT", {}, Exception("connection refused"))

    monkeypatch.setattr(sql_sink, "Session", Down)
    assert fresh.known_gateway("gw-new")  # nothing read yet: the broker let it in, its data is not refused
    sink = sql_sink.SqlSink(engine)
    monkeypatch.undo()
    monkeypatch.setattr(sql_sink.time, "monotonic", lambda: now[0])
    assert sink.known_gateway("gw-a")
    monkeypatch.setattr(sql_sink, "Session", Down)
    now[0] += sql_sink.KNOWN_REFRESH_S
    queries[0] = 0
    assert sink.known_gateway("gw-a") and not sink.known_gateway("gw-x")  # the last list stands
    assert queries[0] == 2  # the list, then gw-x alone
    assert sink.known_gateway("gw-a") and not sink.known_gateway("gw-x")
    assert queries[0] == 2  # one try per refresh and per unknown gateway, not one per message


def test_a_batch_seen_twice_gives_the_same_runs_and_its_works_are_unchanged() -> None:
    """A held batch is applied again, a refused one message by message: building what the batch saw must not
    extend the runs its works hold (a message alone would then claim the seqs of the others)."""
    def message(seq: int, first: int) -> TelemetryBatch:
        return TelemetryBatch(gateway="gw1", seq=seq, sent_at=1_000 * first, readings=[
            Reading(sensor="aa:bb:cc:dd:ee:01", ts=1_000 * (first + i), profile="chilled", seq=(first + i) % 65535,
                    temp_c=3.0) for i in range(3)])

    works = [telemetry_work(message(1, 65532)), telemetry_work(message(2, 65535))]  # consecutive across the wrap
    before = copy.deepcopy([w.sensors for w in works])
    first, again = observed_in(works), observed_in(works)
    runs = first.streams["sensor|aa:bb:cc:dd:ee:01"].runs
    assert runs == again.streams["sensor|aa:bb:cc:dd:ee:01"].runs == [[65532, 2, 65_532_000, 65_537_000]]
    assert first.streams["telemetry|gw1"].runs == [[1, 2, 65_532_000, 65_535_000]]
    assert [w.sensors for w in works] == before


def test_a_sensors_broken_seqs_give_runs_in_time_order_and_a_reading_without_seq_breaks_none() -> None:
    """A message's readings out of time order, a seq missing, one without a seq, one across the wrap: the runs are
    those of the seqs in time order, the same when the batch is seen again."""
    def reading(ts_s: int, seq: int | None, profile: str = "chilled") -> Reading:
        return Reading(sensor="aa:bb:cc:dd:ee:02", ts=1_000 * ts_s, profile=profile, seq=seq, temp_c=3.0)

    message = TelemetryBatch(gateway="gw1", seq=1, sent_at=9_000, readings=[
        reading(3, 3), reading(1, 1), reading(2, 2), reading(4, None), reading(5, 65534), reading(6, 0),
        reading(7, 9, "frozen")])
    work = telemetry_work(message)
    seen = work.sensors["aa:bb:cc:dd:ee:02"]
    assert (seen.profile, seen.first_ts, seen.last_ts) == ("frozen", 1_000, 7_000)
    for _ in range(2):
        observed = observed_in([work])
        assert observed.streams["sensor|aa:bb:cc:dd:ee:02"].runs == [
            [1, 3, 1_000, 3_000], [65534, 0, 5_000, 6_000], [9, 9, 7_000, 7_000]]
        assert observed.sensors["aa:bb:cc:dd:ee:02"].profile == "frozen"


def test_acks_go_out_as_one_write_of_mqtt5_pubacks() -> None:
    """ack_all queues every PUBACK (fixed header 0x40, remaining length 2, packet id; reason 0 implied) as one write
    through paho's own queue; QoS 0 messages need none; a client without that queue is acked message by message."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    from cloud.ingest.mqtt_link import ack_all

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="t", protocol=MQTTProtocolVersion.MQTTv5)
    queued: list[tuple[int, bytes]] = []

    def queue(command: int, packet: bytes, mid: int, qos: int, info: object = None) -> None:
        queued.append((command, bytes(packet)))

    client._packet_queue = queue  # type: ignore[method-assign,assignment]
    ack_all(client, [(5, 1), (7, 0), (256, 1)])
    assert queued == [(0x40, b"\x40\x02\x00\x05\x40\x02\x01\x00")]

    class StandIn:
        def __init__(self) -> None:
            self.acked: list[tuple[int, int]] = []

        def ack(self, mid: int, qos: int) -> None:
            self.acked.append((mid, qos))

    stand_in = StandIn()
    ack_all(stand_in, [(1, 1), (2, 1)])  # type: ignore[arg-type]
    assert stand_in.acked == [(1, 1), (2, 1)]


def test_a_batch_of_large_messages_is_full_at_its_byte_bound(tmp_path: Path) -> None:
    """Payloads are kept until the ack: 1 MiB messages fill a batch by bytes long before ReceiveMaximum (20,000)."""
    import paho.mqtt.client as mqtt

    from cloud.ingest.worker import MAX_BATCH_BYTES

    worker, _ = _worker(tmp_path)
    big = b"x" * (1024 * 1024)  # refused (malformed), and kept for its dead letter like any payload
    for mid in range(1, MAX_BATCH_BYTES // len(big) + 1):
        assert not worker._batch_full()
        message = mqtt.MQTTMessage(mid=mid, topic=b"cw/v1/gw1/telemetry")
        message.payload, message.qos = big, 1
        worker._on_message(worker.client, None, message)
    assert worker._batch_full() and not worker._room_for_more()
    assert len(worker._pending) == MAX_BATCH_BYTES // len(big) < worker.receive_maximum
    worker._take_batch()
    assert not worker._batch_full()


def test_ingest_gc_tuning_only_spaces_out_full_collections() -> None:
    import gc

    from cloud.ingest.worker import FULL_COLLECTION_EVERY, tune_gc_for_ingest

    before = gc.get_threshold()
    try:
        tune_gc_for_ingest()
        assert gc.get_threshold() == (before[0], before[1], FULL_COLLECTION_EVERY)
        assert gc.get_freeze_count() > 0  # start-up objects out of the collector's sight
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def _runs_as_before(messages: list[TelemetryBatch], sensor: str) -> list[list[int]]:
    """The runs the list-based code built (until 2026-12-07): a message's readings in time order, a run goes on
    while each seq follows the last, then each message's runs appended to the batch's, joined where one continues
    the last (shorter than the wrap)."""
    batch_runs: list[list[int]] = []
    for message in messages:
        runs: list[list[int]] = []
        for r in sorted(message.readings, key=lambda r: r.ts):
            if r.sensor != sensor or r.seq is None:
                continue
            if runs and r.seq == (runs[-1][1] + 1) % SENSOR_WRAP:
                runs[-1][1], runs[-1][3] = r.seq, r.ts
            else:
                runs.append([r.seq, r.seq, r.ts, r.ts])
        for run in runs:
            if batch_runs:
                last = batch_runs[-1]
                if (run[0] == (last[1] + 1) % SENSOR_WRAP and run[2] >= last[3]
                        and (last[1] - last[0]) % SENSOR_WRAP + 1 + (run[1] - run[0]) % SENSOR_WRAP + 1 < SENSOR_WRAP):
                    last[1], last[3] = run[1], run[3]
                    continue
            batch_runs.append(run)
    return batch_runs


_seqs = st.one_of(st.none(), st.integers(0, 4), st.integers(65530, 65534))


@given(st.lists(st.lists(st.tuples(st.integers(0, 8), _seqs, st.sampled_from(["aa:bb:cc:dd:ee:01",
                                                                                "aa:bb:cc:dd:ee:02"])),
                         min_size=1, max_size=12), min_size=1, max_size=3))
@settings(max_examples=300, deadline=None)
def test_a_batchs_runs_equal_the_list_based_codes_for_any_readings(
        messages: list[list[tuple[int, int | None, str]]]) -> None:
    batches = [TelemetryBatch(gateway="gw1", seq=i + 1, sent_at=1, readings=[
        Reading(sensor=sensor, ts=1_000 * (10 * i + ts_s), profile="chilled", seq=seq, temp_c=3.0)
        for ts_s, seq, sensor in readings]) for i, readings in enumerate(messages)]
    works = [telemetry_work(b) for b in batches]
    before = copy.deepcopy([w.sensors for w in works])
    for _ in range(2):  # a held batch is applied again: the same runs, the works unchanged
        observed = observed_in(works)
        for sensor in ("aa:bb:cc:dd:ee:01", "aa:bb:cc:dd:ee:02"):
            stream = observed.streams.get(f"sensor|{sensor}")
            assert (stream.runs if stream else []) == _runs_as_before(batches, sensor)
        assert [w.sensors for w in works] == before
