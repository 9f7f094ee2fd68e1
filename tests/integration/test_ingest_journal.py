"""The ingest journal (cloud/services/ingest_journal.py) on SQLite and PostgreSQL: batches journalled by two workers,
in any order and merged in any grouping, leave the same completeness as one worker reading them in order (received
counts, holes and gaps over exactly the seqs never sent, across a sensor's 16-bit wrap); concurrent merges take
each row once; nothing journalled is lost when a merge fails."""

from __future__ import annotations

import random
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, delete, select

from cloud.db.engine import session_scope
from cloud.db.fleet import Gateway, Sensor
from cloud.db.ingest import IngestGap, IngestJournal, SeqStream
from cloud.ingest.sql_sink import SqlSink, telemetry_work
from cloud.services import ingest_journal
from cloud.services.completeness import SENSOR_WRAP
from protocol import encode
from protocol.messages import Reading, TelemetryBatch

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000
SENSOR = "aa:bb:cc:00:00:01"
HOUR_MS = 3_600_000


def batches(first_seq: int, sizes: list[int], lost: set[int]) -> list[TelemetryBatch]:
    """Gateway gw1's batches 1.. carrying one sensor's readings (`sizes` of them each) whose 16-bit seqs count up
    from `first_seq`, the readings at positions in `lost` left out (lost before the gateway sent them)."""
    out, position = [], 0
    for k, size in enumerate(sizes, start=1):
        readings = [Reading(sensor=SENSOR, ts=T0 + (position + i) * 1000, profile="chilled",
                            seq=(first_seq + position + i) % SENSOR_WRAP, temp_c=3.0)
                    for i in range(size) if position + i not in lost]
        position += size
        out.append(TelemetryBatch(gateway="gw1", seq=k, sent_at=T0 + position * 1000, readings=readings))
    return out


def clear(engine: Engine) -> None:
    with session_scope(engine) as session:
        for table in (IngestJournal, IngestGap, SeqStream, Sensor, Gateway):
            session.exec(delete(table))  # type: ignore[call-overload]


def open_seqs(session: Session, key: str) -> set[int]:
    """Seqs (unwrapped) the stream says are missing: its holes and its open gaps."""
    stream = session.get(SeqStream, key)
    assert stream is not None
    spans = [(h[0], h[1]) for h in stream.holes or []]
    spans += [(g.first_seq, g.last_seq) for g in session.exec(
        select(IngestGap).where(IngestGap.stream == key).where(col(IngestGap.missing) > 0)).all()]
    return {s for first, last in spans for s in range(first, last + 1)}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_order_and_grouping_gives_the_completeness_of_one_ordered_reader(engine: Engine,
                                                                            data: st.DataObject) -> None:
    sizes = data.draw(st.lists(st.integers(1, 5), min_size=3, max_size=25), label="readings per batch")
    total = sum(sizes)
    first_seq = data.draw(st.sampled_from([0, 100, SENSOR_WRAP - 7, SENSOR_WRAP - 1]), label="first seq")
    lost = data.draw(st.sets(st.integers(1, total - 2), max_size=total // 3), label="lost at the gateway")
    grace_ms = data.draw(st.sampled_from([0, HOUR_MS]), label="gap grace")
    rng = random.Random(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    clear(engine)
    messages = batches(first_seq, sizes, lost)
    # Each batch to one of two workers (some twice: a re-delivery), journalled in a shuffled order; the first
    # batch first (a sensor's stream starts at the lowest seq of its first merge, as it must: its past is unknown).
    sinks = [SqlSink(engine, gap_grace_ms=grace_ms, journal=True, worker=w) for w in ("a", "b")]
    deliveries = messages[1:] + rng.sample(messages[1:], k=min(3, len(messages) - 1))
    rng.shuffle(deliveries)
    for message in [messages[0], *deliveries]:
        rng.choice(sinks).apply([telemetry_work(message)])
    with Session(engine) as session:
        waiting = ingest_journal.waiting(session)
    assert waiting == len(deliveries) + 1
    while waiting:  # merged in random groups
        with session_scope(engine) as session:
            waiting -= ingest_journal.merge(session, grace_ms=grace_ms, limit=rng.randint(1, 6)).rows
    received = total - len(lost)
    with Session(engine) as session:
        sensor = session.get(SeqStream, f"sensor|{SENSOR}")
        assert sensor is not None
        assert sensor.received == received
        assert sensor.highest - first_seq == total - 1  # unwrapped across 65534 → 0: it only grows
        assert sensor.missing == len(lost)
        assert open_seqs(session, f"sensor|{SENSOR}") == {first_seq + p for p in lost}
        telemetry = session.get(SeqStream, "telemetry|gw1")
        assert telemetry is not None
        assert (telemetry.highest, telemetry.received, telemetry.missing) == (len(sizes), len(sizes), 0)
        row = session.get(Sensor, SENSOR)
        assert row is not None and row.last_seen_at == max(r.ts for m in messages for r in m.readings)
        gateway = session.get(Gateway, "gw1")
        assert gateway is not None and gateway.last_seen_at == messages[-1].sent_at
        assert session.exec(select(IngestJournal)).all() == []


def test_concurrent_merges_take_each_row_once(engine: Engine) -> None:
    """Two workers merging at once (PostgreSQL: SKIP LOCKED; SQLite: one after the other) merge every journalled
    batch once: the received counts are exact."""
    messages = batches(10, [3] * 60, set())
    sinks = [SqlSink(engine, journal=True, worker=w) for w in ("a", "b")]
    for i, message in enumerate(messages):
        sinks[i % 2].apply([telemetry_work(message)])
    merged: list[int] = []

    def merge_all(sink: SqlSink) -> None:
        while True:
            for _ in range(20):
                try:
                    done = sink.merge()
                    break
                except Exception:  # a lock, the other merge's insert of the same row: retried, as the worker does
                    continue
            else:
                raise AssertionError("merge never succeeded")
            if not done.rows:
                return
            merged.append(done.rows)

    threads = [threading.Thread(target=merge_all, args=(sink,)) for sink in sinks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(merged) == len(messages)
    with Session(engine) as session:
        sensor = session.get(SeqStream, f"sensor|{SENSOR}")
        assert sensor is not None and (sensor.received, sensor.missing) == (180, 0)
        telemetry = session.get(SeqStream, "telemetry|gw1")
        assert telemetry is not None and (telemetry.received, telemetry.missing) == (60, 0)


def test_a_failed_merge_keeps_the_rows_for_the_next(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = SqlSink(engine, journal=True, worker="a")
    for message in batches(0, [2, 2, 2], set()):
        sink.apply([telemetry_work(message)])

    def locked(*args: object, **kwargs: object) -> int:  # transient: the database's, not the data's
        raise OperationalError("UPDATE seq_stream", {}, Exception("database is locked"))

    monkeypatch.setattr(ingest_journal, "apply_streams", locked)
    with pytest.raises(OperationalError):
        sink.merge()
    with Session(engine) as session:
        assert ingest_journal.waiting(session) == 3
        assert session.get(Sensor, SENSOR) is None  # the gateways and sensors it had applied rolled back too
    monkeypatch.undo()
    assert sink.merge().rows == 3
    with Session(engine) as session:
        stream = session.get(SeqStream, f"sensor|{SENSOR}")
        assert stream is not None and stream.received == 6


def test_a_row_the_database_refuses_is_dropped_alone_and_the_rest_merge(engine: Engine,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch whose merge the database refuses for its data (here: a bug met by one shape of batch) costs only
    its own row: the others merge, the row is dropped and counted, and later merges are not stopped by it."""
    sink = SqlSink(engine, journal=True, worker="a")
    for message in batches(0, [2, 2, 2, 2], set()):
        sink.apply([telemetry_work(message)])
    real = ingest_journal.apply_fleet

    def refuses_the_third(session: Session, observed: ingest_journal.Observed) -> None:
        if any(run[0] <= 3 <= run[1] for run in observed.streams["telemetry|gw1"].runs):  # batch 3 is in it
            raise ValueError("a value this column cannot hold")  # not a SQLAlchemyError: the data's (failures.py)
        real(session, observed)

    monkeypatch.setattr(ingest_journal, "apply_fleet", refuses_the_third)
    merged = sink.merge()
    assert (merged.rows, merged.dropped) == (3, 1)
    with Session(engine) as session:
        assert ingest_journal.waiting(session) == 0
        stream = session.get(SeqStream, f"sensor|{SENSOR}")
        assert stream is not None and (stream.received, stream.missing) == (6, 2)  # the dropped row's seqs: a gap
    sink.apply([telemetry_work(batches(8, [2], set())[0])])
    assert sink.merge().rows == 1


@pytest.mark.parametrize("order", ["interleaved", "in order"])
def test_a_backlog_longer_than_the_wrap_in_one_merge_is_counted_whole(engine: Engine, order: str) -> None:
    """A gateway uploading a long backlog (70,000 readings of a sensor, more than the 16-bit wrap) through two
    workers, all of it in one merge: runs are unwrapped one after the other in time, not each against the stored
    mark (a run more than half the wrap ahead would look behind), and joined runs stay shorter than the wrap."""
    sink = SqlSink(engine, journal=True, worker="a")
    chunk = 5000
    messages = [TelemetryBatch(gateway="gw1", seq=k + 1, sent_at=T0 + k, readings=[
        Reading(sensor=SENSOR, ts=T0 + (k * chunk + i) * 1000, profile="chilled",
                seq=(k * chunk + i) % SENSOR_WRAP, temp_c=3.0) for i in range(chunk)]) for k in range(14)]
    sink.apply([telemetry_work(messages[0])])
    sink.merge()  # the stream exists, its mark at 4,999
    rest = messages[1:]
    if order == "interleaved":
        rest = rest[1::2] + rest[0::2]
    for message in rest:
        sink.apply([telemetry_work(message)])
    assert sink.merge().rows == len(rest)
    with Session(engine) as session:
        stream = session.get(SeqStream, f"sensor|{SENSOR}")
        assert stream is not None
        assert (stream.highest, stream.received, stream.missing, stream.holes) == (14 * chunk - 1, 14 * chunk, 0, None)


def test_each_gateway_keeps_the_time_it_was_heard_and_a_clock_ahead_holds_no_merge_back(engine: Engine) -> None:
    """Folded batches heard at different times: each gateway is marked heard when its own newest batch was, not at
    the merge's newest (the silence watchdog measures from it). And a row stamped by a worker whose clock runs an
    hour ahead, at the head of the journal, does not hold back the merge of rows that are due."""
    early, late = T0 + 1_000, T0 + 2_000
    with session_scope(engine) as session:
        ingest_journal.record(session, ingest_journal.Observed(heard_at=T0 + HOUR_MS, gateways={"gw3": T0}),
                              worker="ahead", created_at=T0 + HOUR_MS)
        ingest_journal.record(session, ingest_journal.Observed(heard_at=early, gateways={"gw1": T0, "gw2": T0}),
                              worker="a", created_at=early)
        ingest_journal.record(session, ingest_journal.Observed(heard_at=late, gateways={"gw2": T0 + 5}),
                              worker="b", created_at=late)
    with session_scope(engine) as session:
        assert ingest_journal.merge(session, grace_ms=0, written_before=T0 + 3_000).rows == 3
    with Session(engine) as session:
        heard = {g.id: g.last_heard_at for g in session.exec(select(Gateway)).all()}
    assert heard == {"gw1": early, "gw2": late, "gw3": T0 + HOUR_MS}


def test_the_merge_hands_on_every_batchs_time_spans_once(engine: Engine) -> None:
    """Rollups are redone by the worker that merges, for whichever worker stored the readings: a span reaches one
    merge (each row is merged once), kept merged (the batches of one minute are one span), an hour apart two."""
    from cloud.ingest.decode import decode_message

    sinks = [SqlSink(engine, journal=True, worker=w) for w in ("a", "b")]
    stamps = [T0, T0 + 20_000, T0 + 50_000, T0 + HOUR_MS * 2]
    for i, ts in enumerate(stamps):
        batch = TelemetryBatch(gateway="gw1", seq=i + 1, sent_at=ts, readings=[
            Reading(sensor=SENSOR, ts=ts, profile="chilled", seq=i, temp_c=3.0),
            Reading(sensor=SENSOR, ts=ts + 5_000, profile="chilled", seq=i + 100, temp_c=3.0)])
        decoded = decode_message("cw/v1/gw1/telemetry", encode(batch), gateway_allowed=lambda g: True)
        assert decoded.sql.spans == ((ts, ts + 5_000),)
        assert sinks[i % 2].apply([decoded.sql]).spans == []  # journalled: nothing for this worker to roll up yet
    merged = sinks[1].merge()
    assert merged.rows == 4
    assert merged.spans == [[T0, T0 + 55_000], [T0 + HOUR_MS * 2, T0 + HOUR_MS * 2 + 5_000]]
    assert sinks[0].merge().spans == []
