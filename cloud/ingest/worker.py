"""`coldwatch ingest`: MQTT v5 shared subscription → InfluxDB + SQL, acknowledging each message only after
its points and SQL rows are written (at-least-once; point identity and alert ids make re-delivery idempotent).

The worker reads, decodes and batches on its MQTT thread and acknowledges there; its neighbours hold the rest:
`mqtt_link` the session, `decode` the messages, `batch_writer` the writes (on a writer thread, up to
MAX_BATCHES_IN_FLIGHT batches queued there while the next is read), `sql_sink` the SQL rows, `failures` what a
failed write means, `sweeps` the periodic gap and replay work, `roller` the rollups (on a thread of their own).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from prometheus_client import Counter, Gauge
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from cloud.config import Settings
from cloud.db.engine import make_engine
from cloud.ingest.batch_writer import BatchWriter, Pending
from cloud.ingest.decode import RejectedMessageError, decode_message
from cloud.ingest.failures import short_reason
from cloud.ingest.metrics import IngestMetrics
from cloud.ingest.mqtt_link import MAX_RECEIVE_MAXIMUM, MqttLink, ack_all
from cloud.ingest.replay import SWEEP_EVERY_S
from cloud.ingest.roller import Roller
from cloud.ingest.sql_sink import SqlSink
from cloud.ingest.sweeps import Sweeps
from cloud.services.clock import now_ms
from cloud.services.ingest_journal import MERGE_ROWS
from cloud.tsdb.influx import InfluxClient, influx_from_settings
from protocol.messages import AlertEvent

log = logging.getLogger(__name__)

LOOP_TIMEOUT_S: Final = 0.1
IN_FLIGHT_LOOP_TIMEOUT_S: Final = 0.002  # while a batch is being written: its acks go out soon after it is stored
ROLLUP_RESTART_MS: Final = 5 * 60_000  # at start, the last minutes are rolled up again (a crash may have cut them)
SHUTDOWN_FLUSH_S: Final = 10.0
# Batches handed to the writer thread and not yet settled. One left the writer idle while the next batch was decoded
# and the MQTT thread idle while the writer waited on InfluxDB (each ~a quarter of the time, py-spy); two queued keep
# the writer, and so influxd, busy while this thread reads on (docs/scaling.md).
MAX_BATCHES_IN_FLIGHT: Final = 2
# A batch is also full at this many bytes of payload (kept until the ack, for dead letters): a gateway sending
# 1 MiB messages of one reading each must not make a batch of ReceiveMaximum (20,000) messages, 20 GiB.
MAX_BATCH_BYTES: Final = 64 * 1024 * 1024
# A batch no message has joined for QUIET_GAP_S is written once this fraction of the batch age has passed, when the
# writer is idle (`_batch_due`, group commit): the last batch of a load waited the whole age (1 s), an eighth of a
# 1 M-reading bench run's time.
QUIET_FLUSH_FRACTION: Final = 0.1
QUIET_GAP_S: Final = 0.05
FULL_COLLECTION_EVERY: Final = 100  # middle-generation collections between full ones (Python's default: 10)


@dataclass
class SeqTracker:
    """Highest batch seq seen per gateway and how many seqs were skipped (in memory for now).

    With several workers on the shared subscription each sees only part of every gateway's seqs,
    so `gaps` is meaningful only with one worker; the fleet-wide check comes with SQL storage.
    """

    highest: dict[str, int] = field(default_factory=dict)
    gaps: dict[str, int] = field(default_factory=dict)

    def observe(self, gateway: str, seq: int) -> int:
        """Record `seq` from `gateway`; returns how many seqs it skipped past the highest so far."""
        previous = self.highest.get(gateway)
        if previous is None or seq > previous:
            self.highest[gateway] = seq
        if previous is None or seq <= previous + 1:
            return 0
        skipped = seq - previous - 1
        self.gaps[gateway] = self.gaps.get(gateway, 0) + skipped
        return skipped


def tune_gc_for_ingest() -> None:
    """For the `coldwatch ingest` process: move what start-up allocated (SQLAlchemy, paho, httpx: ~100,000 objects)
    out of the cyclic collector's sight. A decoded message is hundreds of new objects, so collections are frequent;
    each older-generation one walked every start-up object again: a quarter of a worker's CPU (decode 3.6 → 2.6 µs a
    reading). The young generations' thresholds stay Python's: raised, cyclic garbage (sessions, tracebacks) piled up
    between collections and the worker's RSS grew by 17 % over 1 M readings instead of 7 %. Full collections come
    10× less often (FULL_COLLECTION_EVERY): each walked the batches held for their acks (~70,000 objects at 20,000
    points a batch), and the worker spent ~10 % less CPU a reading without them (alternating runs; RSS over 1 M
    readings unchanged, docs/scaling.md)."""
    gc.collect()
    gc.freeze()
    young, middle, _full = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)


def _topic_text(message: mqtt.MQTTMessage) -> str:
    try:
        return message.topic
    except UnicodeDecodeError:
        return repr(message._topic)[:300]


class IngestWorker:
    """One worker: its thread runs the MQTT loop, decoding, batching and acknowledgements; a writer thread stores
    one batch at a time, up to MAX_BATCHES_IN_FLIGHT queued, while the next is read (InfluxDB's and SQL's time
    overlaps decoding; see run()), and runs the journal merges and the periodic sweeps between batches."""

    def __init__(
        self,
        settings: Settings,
        *,
        influx: InfluxClient | None = None,
        engine: Engine | None = None,
        metrics: IngestMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._password = settings.require_mqtt_password()
        self.influx = influx or influx_from_settings(settings)
        self.metrics = metrics or IngestMetrics()
        self.engine = engine or make_engine(settings.database_url)
        self.sql = SqlSink(self.engine, gap_grace_ms=int(settings.ingest_gap_grace_s * 1000),
                           journal=settings.ingest_merge_s > 0, worker=settings.ingest_worker_id)
        self._gateway_allowed = (self.sql.known_gateway if settings.ingest_unknown_gateway == "reject"
                                 else lambda gateway: True)
        self.seqs = SeqTracker()
        self._seq_metrics: dict[str, tuple[Gauge, Counter]] = {}  # per gateway: metrics.gateway_seq's, seq_gaps'
        self._clock = clock
        self._stop = threading.Event()
        self.receive_maximum = min(settings.ingest_batch_size, MAX_RECEIVE_MAXIMUM)
        self._pending: list[Pending] = []
        self._pending_points = 0
        self._pending_bytes = 0
        self._batch_started = 0.0
        self.roller = Roller(self.influx, self.metrics)
        self.writer = BatchWriter(settings, self.influx, self.engine, self.sql, self.metrics, clock,
                                  mark=self.roller.mark)
        self._writer_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-writer")
        # batches on the writer thread, oldest first: each its future, its entries, the link it came on
        self._in_flight: deque[tuple[Future[int], list[Pending], int]] = deque()
        self._requeued = 0  # entries at the head of _pending that failed batches put back (kept in arrival order)
        self._merge_job: Future[int] | None = None  # a journal merge queued on the writer thread
        self._sweep_job: Future[None] | None = None  # the periodic sweeps, queued on the writer thread
        self._outgoing: deque[tuple[str, bytes]] = deque()  # replay requests the sweeps ask this thread to publish
        self._link_generation = 0  # +1 each time the link goes down: older packet ids must not be acked
        self._next_replay_sweep = clock() + SWEEP_EVERY_S
        self._alert_pending = False
        self.link = MqttLink(settings, self._password, receive_maximum=self.receive_maximum, clock=clock,
                             on_message=self._on_message, on_down=self._link_down)
        self.sweeps = Sweeps(settings, self.engine, self.sql, self.metrics,
                             publish=lambda name, payload: self._outgoing.append((name, payload)),
                             replay_one=self._replay_one)

    @property
    def client(self) -> mqtt.Client:
        """The paho client of the MQTT session (a test may stand another in)."""
        return self.link.client

    @client.setter
    def client(self, value: mqtt.Client) -> None:
        self.link.client = value

    # -- lifecycle -------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask run() to flush, acknowledge and disconnect; safe from a signal handler or another thread."""
        self._stop.set()

    def run(self) -> None:
        """Loop until stop(): MQTT I/O in short slices, a write when the batch is full or old enough."""
        log.info("ingest starting worker=%s broker=%s:%d influx=%s db=%s batch_size=%d batch_age_s=%s",
                 self.settings.ingest_worker_id, self.settings.mqtt_host, self.settings.mqtt_port,
                 self.settings.influx_url, self.settings.influx_db, self.settings.ingest_batch_size,
                 self.settings.ingest_batch_age_s)
        self.writer.prepare_database()
        start = now_ms()
        self.roller.mark(start - ROLLUP_RESTART_MS, start)  # a crash may have left the last minutes' rollups short
        self.roller.start()
        self._warn_unprovisioned()
        while not self._stop.is_set():
            self._step()
        self._shutdown()

    def _step(self) -> None:
        if len(self._in_flight) >= MAX_BATCHES_IN_FLIGHT and self._batch_full():
            self._finish_batch()  # the writer's queue and the next batch are full: wait, do not read (and hold) more
        if self.link.connected or self.client.socket() is not None:
            rc = self.link.pump(IN_FLIGHT_LOOP_TIMEOUT_S if self._in_flight else LOOP_TIMEOUT_S,
                                more=self._room_for_more)
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self.link.down(f"loop returned {rc.name}")
        else:
            self.link.try_connect()
            if not self.link.connected:
                self._stop.wait(LOOP_TIMEOUT_S)
        while self._in_flight and self._in_flight[0][0].done():
            self._finish_batch()
        if len(self._in_flight) < MAX_BATCHES_IN_FLIGHT and self._batch_due():
            self._start_batch()
        if self._merge_job is not None and self._merge_job.done():
            self._merge_job = None
        if self._merge_job is None and self.writer.merge_due():
            # a job of its own on the writer thread: after the batches queued, before the next (whose acks would
            # otherwise wait for it); SQL's working memory stays in one thread's malloc arena
            self._merge_job = self._writer_thread.submit(self.writer.merge)
        if self._sweep_job is not None and self._sweep_job.done():
            if (error := self._sweep_job.exception()) is not None:  # a bug: the next sweep tries again
                log.error("ingest sweep failed unexpectedly error=%s", short_reason(error), exc_info=error)
            self._sweep_job = None
        if (self._sweep_job is None and self.link.connected and self.writer.sql_ready
                and self._clock() >= self._next_replay_sweep):
            # on the writer thread: each sweep is a write transaction, and on SQLite it waits for the write lock
            # (this worker's batches, the other workers'): on this thread that wait stopped reading, 12 % of its
            # time at fleet shape (py-spy)
            self._next_replay_sweep = self._clock() + SWEEP_EVERY_S
            self._sweep_job = self._writer_thread.submit(self.sweeps.run)
        if self.link.connected:
            self._publish_outgoing()

    def _publish_outgoing(self) -> None:
        """Publish the replay requests the sweeps made on the writer thread (their gaps are claimed already)."""
        while self._outgoing:
            name, payload = self._outgoing.popleft()
            self.client.publish(name, payload, qos=1)

    def _warn_unprovisioned(self) -> None:
        """Under `reject`, say at start how many gateways ingest registered earlier (under `register`, the default
        before 2026-12) are now refused: an upgrade must provision them (docs/deploy.md)."""
        if self.settings.ingest_unknown_gateway != "reject" or not self.writer.sql_ready:
            return
        try:
            count = self.sql.unprovisioned_gateways()
        except SQLAlchemyError:
            return
        if count:
            log.warning("ingest refuses %d gateway(s) that were registered but never provisioned "
                        "(COLDWATCH_INGEST_UNKNOWN_GATEWAY=reject): provision them, or set register", count)

    def _replay_one(self, topic_name: str, payload: bytes) -> tuple[bool, str]:
        """One dead letter through the normal path again (for the sweep): stored, or why not."""
        try:
            decoded = decode_message(topic_name, payload, gateway_allowed=self._gateway_allowed)
        except RejectedMessageError as exc:
            return False, f"{exc.reason}: {exc.detail}"
        try:
            self.writer.write_points(decoded.lines)
            result = self.sql.apply([decoded.sql])
        except Exception as exc:  # transient or not, ops see why and may ask again
            return False, short_reason(exc)
        for start, end in result.spans:  # journalled instead: rolled up by the merge
            self.roller.mark(start, end)
        return True, f"{len(decoded.lines)} points stored"

    def _shutdown(self) -> None:
        deadline = self._clock() + SHUTDOWN_FLUSH_S
        if self._sweep_job is not None:
            self._sweep_job.cancel()  # not started yet: it need not delay the stop (a running one finishes)
        while self._in_flight:
            self._finish_batch()
        while self._pending and self.link.connected and self._clock() < deadline:
            if self.writer.backoff.ready():
                self.flush()
            self.link.pump(LOOP_TIMEOUT_S)
        self._writer_thread.shutdown(wait=True)
        for _ in range(100):  # what this run journalled, merged before it goes (else the next merge does it)
            if not self.writer.sql_ready or self.writer.merge(all_rows=True) < MERGE_ROWS:
                break
        if self._pending:
            log.warning("ingest stopping with unacknowledged messages count=%d; the broker keeps them "
                        "for this worker id", len(self._pending))
        self.roller.stop()  # what this run stored is rolled up before it goes (the settling pass: next start)
        if self.link.connected:
            self._publish_outgoing()  # what a last sweep asked for
            self.client.disconnect()
            for _ in range(50):
                if self.link.pump(LOOP_TIMEOUT_S) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break
        self.influx.close()
        self.engine.dispose()
        log.info("ingest stopped worker=%s", self.settings.ingest_worker_id)

    # -- MQTT ------------------------------------------------------------------------------------

    def _link_down(self, why: str) -> None:
        dropped = len(self._pending) + sum(len(entries) for _, entries, _ in self._in_flight)
        # Packet ids belong to the connection; the broker re-sends unacknowledged messages with the
        # session, so forget them here rather than ack a reused id later (a batch in flight is still written,
        # then forgotten: its messages come again and are written again, which point identity makes harmless).
        self._link_generation += 1
        self._pending.clear()
        self._pending_points = 0
        self._pending_bytes = 0
        self._requeued = 0
        self._alert_pending = False
        self.metrics.pending_messages.set(0)
        if not self._stop.is_set():
            log.warning("mqtt disconnected %s unacked_dropped=%d (the broker redelivers them)", why, dropped)

    # -- messages --------------------------------------------------------------------------------

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.metrics.received.inc()
        try:
            entry = self._decode(message)
        except Exception as exc:  # a bug must not kill the worker nor block the slot forever
            log.exception("message rejected reason=internal_error mid=%d", message.mid)
            self.metrics.rejected.labels(reason="internal_error").inc()
            entry = Pending(message.mid, message.qos, [], rejected="internal_error", topic=_topic_text(message),
                            payload=bytes(message.payload), detail=f"{type(exc).__name__}: {exc}"[:500])
        if not self._pending:
            self._batch_started = self._clock()
        if entry.sql is not None and isinstance(entry.sql.event, AlertEvent):
            self._alert_pending = True  # staff wait for alerts: write this batch now, not at its age limit
        self._pending.append(entry)
        self._pending_points += len(entry.lines)
        self._pending_bytes += len(entry.payload)
        self.metrics.pending_messages.set(len(self._pending))

    def _decode(self, message: mqtt.MQTTMessage) -> Pending:
        try:
            topic = message.topic
        except UnicodeDecodeError as exc:
            return self._rejected(message, RejectedMessageError("bad_topic", None, f"{message._topic!r}: {exc}"),
                                  _topic_text(message))
        payload = bytes(message.payload)
        try:
            decoded = decode_message(topic, payload, gateway_allowed=self._gateway_allowed,
                                     latest_ms=now_ms() + int(self.settings.ingest_future_s * 1000))
        except RejectedMessageError as exc:
            return self._rejected(message, exc, topic)
        if decoded.skipped_empty:
            self.metrics.readings_skipped.inc(decoded.skipped_empty)
        if decoded.seq is not None:
            skipped = self.seqs.observe(decoded.gateway, decoded.seq)
            children = self._seq_metrics.get(decoded.gateway)
            if children is None:  # `labels()` per message was 3 % of a worker at fleet shape
                children = self._seq_metrics[decoded.gateway] = (
                    self.metrics.gateway_seq.labels(gateway=decoded.gateway),
                    self.metrics.seq_gaps.labels(gateway=decoded.gateway))
            children[0].set(self.seqs.highest[decoded.gateway])
            if skipped:
                children[1].inc(skipped)
        return Pending(message.mid, message.qos, decoded.lines, gateway=decoded.gateway, sql=decoded.sql, topic=topic,
                       payload=payload)

    def _rejected(self, message: mqtt.MQTTMessage, exc: RejectedMessageError, topic: str) -> Pending:
        log.warning("message rejected reason=%s gateway=%s topic=%s detail=%s", exc.reason, exc.gateway, topic,
                    exc.detail)
        self.metrics.rejected.labels(reason=exc.reason).inc()
        return Pending(message.mid, message.qos, [], gateway=exc.gateway, rejected=exc.reason, topic=topic,
                       payload=bytes(message.payload), detail=exc.detail)

    # -- writing ---------------------------------------------------------------------------------

    def _batch_due(self) -> bool:
        """Whether to hand the pending batch to the writer: it holds an alert event, it is full, it is
        `ingest_batch_age_s` old, or (group commit) no message has come for QUIET_GAP_S, the writer has nothing to
        do, and the batch is QUIET_FLUSH_FRACTION of that age: a worker under load still writes full batches (its
        writer is busy while they fill, and messages keep coming), a lull (a load's end, a quiet hour) does not leave
        readings waiting the whole age, and a light fleet costs at most 1 / (QUIET_FLUSH_FRACTION × age)
        transactions a second per worker (10 at the default age)."""
        if not self._pending or not self.writer.backoff.ready():
            return False
        now = self._clock()
        age = now - self._batch_started
        return (self._alert_pending or self._batch_full() or age >= self.settings.ingest_batch_age_s
                or (not self._in_flight and now - self.link.last_message_at >= QUIET_GAP_S
                    and age >= self.settings.ingest_batch_age_s * QUIET_FLUSH_FRACTION))

    def _room_for_more(self) -> bool:
        """Whether to read on: the pending batch is not full (a full one waits for the writer, so a worker holds at
        most MAX_BATCHES_IN_FLIGHT + 1 batches whatever the broker has queued)."""
        return not self._batch_full()

    def _batch_full(self) -> bool:
        return (self._pending_points >= self.settings.ingest_batch_size or len(self._pending) >= self.receive_maximum
                or self._pending_bytes >= MAX_BATCH_BYTES)

    def flush(self) -> None:
        """Write the pending batch now and wait for it (shutdown, tests); acknowledge what was stored or refused
        for good, keep the rest."""
        while self._in_flight:
            self._finish_batch()
        if not self._pending:
            return
        entries = self._take_batch()
        self._settle(entries, self._store(entries), self._link_generation)

    def _take_batch(self) -> list[Pending]:
        entries, self._pending = self._pending, []
        self._pending_points = 0
        self._pending_bytes = 0
        self._requeued = 0
        self._alert_pending = False
        return entries

    def _start_batch(self) -> None:
        """Hand the pending batch to the writer thread; messages keep arriving into the next one meanwhile."""
        entries = self._take_batch()
        self._in_flight.append((self._writer_thread.submit(self._store, entries), entries, self._link_generation))

    def _finish_batch(self) -> None:
        """Wait for the oldest batch in flight and acknowledge what it stored."""
        future, entries, generation = self._in_flight.popleft()
        self._settle(entries, future.result(), generation)

    def _store(self, entries: list[Pending]) -> int:
        if not self.writer.backoff.ready():
            # an older batch queued before this one was just held: this one is not written before it (its acks and
            # its points would overtake the held messages); it goes back behind them, in arrival order
            return 0
        try:
            return self.writer.store(entries)
        except Exception:  # a bug must not kill the writer thread nor lose the batch: it is held and retried
            log.exception("batch write failed unexpectedly messages=%d gateways=%s", len(entries),
                          ",".join(sorted({e.gateway or "?" for e in entries}))[:300])
            self.writer.backoff.failed()
            return 0

    def _settle(self, entries: list[Pending], done: int, generation: int) -> None:
        """Acknowledge the first `done` entries in the order they arrived (their rollups marked), and put the rest
        back in front of the messages that arrived since (behind what an older batch put back); entries from a link
        that went down meanwhile are only forgotten (the broker sends them again)."""
        if generation != self._link_generation:
            return
        ack_all(self.client, [(entry.mid, entry.qos) for entry in entries[:done]])
        self.metrics.acked.inc(done)
        if generation != self._link_generation:
            return  # the link went down while the acks were written: the rest belongs to the old link
        rest = entries[done:]
        self._pending[self._requeued:self._requeued] = rest
        self._requeued += len(rest)
        self._alert_pending = any(e.sql is not None and isinstance(e.sql.event, AlertEvent) for e in self._pending)
        self._pending_points = sum(len(e.lines) for e in self._pending)
        self._pending_bytes = sum(len(e.payload) for e in self._pending)
        self.metrics.pending_messages.set(len(self._pending))
        if done < len(entries):
            self._batch_started = self._clock()
