"""`coldwatch ingest`: MQTT v5 shared subscription → InfluxDB + SQL, acknowledging each message only after
its points and SQL rows are written (at-least-once; point identity and alert ids make re-delivery idempotent).

The worker batches and writes; its neighbours hold the rest: `mqtt_link` the session, `decode` the messages,
`sql_sink` the SQL rows, `failures` what a failed write means, `sweeps` the periodic gap and replay work, `roller`
the rollups (on a thread of their own).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from cloud.config import Settings
from cloud.db.engine import init_schema, make_engine
from cloud.ingest.decode import RejectedMessageError, decode_message
from cloud.ingest.failures import Backoff, caused_by_data, cleaned, refused_for_good, short_reason
from cloud.ingest.metrics import IngestMetrics
from cloud.ingest.mqtt_link import MAX_RECEIVE_MAXIMUM, MqttLink
from cloud.ingest.replay import SWEEP_EVERY_S
from cloud.ingest.roller import Roller
from cloud.ingest.sql_sink import ApplyResult, SqlSink, SqlWork
from cloud.ingest.sweeps import Sweeps
from cloud.services.clock import now_ms
from cloud.services.dead_letters import Refused
from cloud.tsdb.influx import InfluxClient, InfluxRejected, InfluxUnavailable, influx_from_settings
from protocol.messages import AlertEvent

log = logging.getLogger(__name__)

LOOP_TIMEOUT_S: Final = 0.1
ROLLUP_RESTART_MS: Final = 5 * 60_000  # at start, the last minutes are rolled up again (a crash may have cut them)
SHUTDOWN_FLUSH_S: Final = 10.0


@dataclass(slots=True)
class Pending:
    """A received message waiting for its points to be written before it is acknowledged."""

    mid: int
    qos: int
    lines: list[str]
    gateway: str | None = None
    rejected: str | None = None  # reason: already counted; dead-lettered and acked with the next batch
    sql: SqlWork | None = None
    topic: str = ""
    payload: bytes = b""  # kept until the ack: a refused message goes to the dead letters with it
    detail: str = ""  # why it was refused
    spans: tuple[tuple[int, int], ...] = ()  # its readings' time spans: the rollups to redo once it is stored


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


def _topic_text(message: mqtt.MQTTMessage) -> str:
    try:
        return message.topic
    except UnicodeDecodeError:
        return repr(message._topic)[:300]


class IngestWorker:
    """One worker: a single thread runs the MQTT loop, the batching and the writes (see run())."""

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
        self.sql = SqlSink(self.engine, gap_grace_ms=int(settings.ingest_gap_grace_s * 1000))
        self._sql_ready = False
        self._gateway_allowed = (self.sql.known_gateway if settings.ingest_unknown_gateway == "reject"
                                 else lambda gateway: True)
        self.seqs = SeqTracker()
        self._clock = clock
        self._stop = threading.Event()
        self.receive_maximum = min(settings.ingest_batch_size, MAX_RECEIVE_MAXIMUM)
        self._pending: list[Pending] = []
        self._pending_points = 0
        self._batch_started = 0.0
        self._write_backoff = Backoff(clock)
        self._outage_since: float | None = None
        self._outage_store = "influx"
        self._database_ready = False
        self._next_replay_sweep = clock() + SWEEP_EVERY_S
        self.roller = Roller(self.influx, self.metrics)
        self._alert_pending = False
        self.link = MqttLink(settings, self._password, receive_maximum=self.receive_maximum, clock=clock,
                             on_message=self._on_message, on_down=self._link_down)
        self.sweeps = Sweeps(settings, self.engine, self.sql, self.metrics,
                             publish=lambda name, payload: self.client.publish(name, payload, qos=1),
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
        self._prepare_database()
        start = now_ms()
        self.roller.mark(start - ROLLUP_RESTART_MS, start)  # a crash may have left the last minutes' rollups short
        self.roller.start()
        self._warn_unprovisioned()
        while not self._stop.is_set():
            self._step()
        self._shutdown()

    def _step(self) -> None:
        if self.link.connected or self.client.socket() is not None:
            rc = self.client.loop(timeout=LOOP_TIMEOUT_S)
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self.link.down(f"loop returned {rc.name}")
        else:
            self.link.try_connect()
            if not self.link.connected:
                self._stop.wait(LOOP_TIMEOUT_S)
        if self._batch_due():
            self.flush()
        if self.link.connected and self._sql_ready and self._clock() >= self._next_replay_sweep:
            self._next_replay_sweep = self._clock() + SWEEP_EVERY_S
            self.sweeps.run()

    def _warn_unprovisioned(self) -> None:
        """Under `reject`, say at start how many gateways ingest registered earlier (under `register`, the default
        before 2026-12) are now refused: an upgrade must provision them (docs/deploy.md)."""
        if self.settings.ingest_unknown_gateway != "reject" or not self._sql_ready:
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
            self._write(decoded.lines)
            self.sql.apply([decoded.sql])
        except Exception as exc:  # transient or not, ops see why and may ask again
            return False, short_reason(exc)
        for span in decoded.spans:
            self.roller.mark(*span)
        return True, f"{len(decoded.lines)} points stored"

    def _shutdown(self) -> None:
        deadline = self._clock() + SHUTDOWN_FLUSH_S
        while self._pending and self.link.connected and self._clock() < deadline:
            if self._write_backoff.ready():
                self.flush()
            self.client.loop(timeout=LOOP_TIMEOUT_S)
        if self._pending:
            log.warning("ingest stopping with unacknowledged messages count=%d; the broker keeps them "
                        "for this worker id", len(self._pending))
        self.roller.stop()  # what this run stored is rolled up before it goes (the settling pass: next start)
        if self.link.connected:
            self.client.disconnect()
            for _ in range(50):
                if self.client.loop(timeout=LOOP_TIMEOUT_S) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break
        self.influx.close()
        self.engine.dispose()
        log.info("ingest stopped worker=%s", self.settings.ingest_worker_id)

    # -- MQTT ------------------------------------------------------------------------------------

    def _link_down(self, why: str) -> None:
        dropped = len(self._pending)
        # Packet ids belong to the connection; the broker re-sends unacknowledged messages with the
        # session, so forget them here rather than ack a reused id later.
        self._pending.clear()
        self._pending_points = 0
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
            self.metrics.gateway_seq.labels(gateway=decoded.gateway).set(self.seqs.highest[decoded.gateway])
            if skipped:
                self.metrics.seq_gaps.labels(gateway=decoded.gateway).inc(skipped)
        return Pending(message.mid, message.qos, decoded.lines, gateway=decoded.gateway, sql=decoded.sql, topic=topic,
                       payload=payload, spans=decoded.spans)

    def _rejected(self, message: mqtt.MQTTMessage, exc: RejectedMessageError, topic: str) -> Pending:
        log.warning("message rejected reason=%s gateway=%s topic=%s detail=%s", exc.reason, exc.gateway, topic,
                    exc.detail)
        self.metrics.rejected.labels(reason=exc.reason).inc()
        return Pending(message.mid, message.qos, [], gateway=exc.gateway, rejected=exc.reason, topic=topic,
                       payload=bytes(message.payload), detail=exc.detail)

    # -- writing ---------------------------------------------------------------------------------

    def _batch_due(self) -> bool:
        if not self._pending or not self._write_backoff.ready():
            return False
        return (
            self._alert_pending
            or self._pending_points >= self.settings.ingest_batch_size
            or len(self._pending) >= self.receive_maximum
            or self._clock() - self._batch_started >= self.settings.ingest_batch_age_s
        )

    def _prepare_database(self) -> bool:
        if not self._sql_ready:
            try:
                init_schema(self.engine)
            except SQLAlchemyError as exc:
                self._write_failed(exc)
                return False
            self._sql_ready = True
        if self._database_ready:
            return True
        try:
            self.influx.ensure_database(create=True)
        except InfluxUnavailable as exc:
            self._write_failed(exc)
            return False
        except InfluxRejected as exc:
            # InfluxDB 2.x/3.x refuse CREATE DATABASE on the v1 API: the bucket and DBRP mapping
            # are made by the operator. Writes will tell whether the database is really there.
            log.warning("could not create database db=%s error=%s (on InfluxDB 2.x map a DBRP)",
                        self.settings.influx_db, exc)
        self._database_ready = True
        return True

    def flush(self) -> None:
        """Write the pending batch; acknowledge what was stored (or refused for good), keep the rest."""
        if not self._pending or not self._prepare_database():
            return
        lines = [line for entry in self._pending for line in entry.lines]
        try:
            self._write(lines)
        except InfluxUnavailable as exc:
            self._write_failed(exc)
            return
        except InfluxRejected as exc:
            if not refused_for_good(exc):  # auth, missing database, type conflict: an operator can fix it
                self._write_failed(exc)
                return
            self.metrics.write_failures.labels(kind="rejected").inc()
            log.warning("influx refused a batch, writing message by message status=%d error=%s",
                        exc.status, exc.message)
            self._flush_one_by_one()
            return
        if not self._write_sql(self._pending):
            return
        self._write_ok(len(lines))
        self._ack(len(self._pending))

    def _write_sql(self, entries: list[Pending]) -> bool:
        """Apply the entries' SQL work in one transaction; on failure hold them (unacked) and back off.

        A failure that the data of one message causes (a value the database cannot hold, a bug on one shape of
        message) is not held: the entries are then applied one by one, and the ones that fail on their own are
        refused (`sql_rejected`, counted and logged with their gateway), so one message cannot stall the worker.
        """
        works = [e.sql for e in entries if e.sql is not None and e.rejected is None]
        if not works:
            return True
        try:
            result = self.sql.apply(works)
        except Exception as exc:
            if not caused_by_data(exc):
                # Connection loss, lock timeout, a concurrent insert of the same row by the other worker:
                # all resolve on retry (every SQL effect is idempotent), so nothing is dropped.
                self._sql_failed(exc)
                return False
            log.warning("sql refused a batch, applying message by message error=%s", short_reason(exc))
            return self._write_sql_one_by_one(entries)
        self._sql_applied(result, works)
        return True

    def _write_sql_one_by_one(self, entries: list[Pending]) -> bool:
        for entry in entries:
            if entry.sql is None or entry.rejected is not None:
                continue
            try:
                result = self.sql.apply([entry.sql])
            except Exception as exc:
                if not caused_by_data(exc):
                    self._sql_failed(exc)
                    return False
                entry.rejected, entry.detail = "sql_rejected", short_reason(exc)
                self.metrics.rejected.labels(reason="sql_rejected").inc()
                kind = "TelemetryBatch" if entry.sql.event is None else type(entry.sql.event).__name__
                log.warning("message rejected reason=sql_rejected gateway=%s mid=%d message=%s error=%s",
                            entry.gateway, entry.mid, kind, short_reason(exc))
                continue
            self._sql_applied(result, [entry.sql])
        return True

    def _sql_failed(self, exc: Exception) -> None:
        self.metrics.sql_up.set(0)
        self._write_failed(exc if isinstance(exc, SQLAlchemyError) else SQLAlchemyError(str(exc)))

    def _sql_applied(self, result: ApplyResult, works: list[SqlWork]) -> None:
        self.metrics.sql_up.set(1)
        self.metrics.alert_events.inc(result.alert_events)
        self.metrics.alert_duplicates.inc(result.alert_duplicates)
        self.metrics.alert_refused.inc(result.alert_refused)
        if result.gaps_opened:
            self.metrics.gaps_recorded.inc(result.gaps_opened)
            log.info("ingest gaps recorded count=%d gateways=%s", result.gaps_opened,
                     ",".join(sorted({w.gateway for w in works})))

    def _write(self, lines: list[str]) -> None:
        size = self.settings.ingest_batch_size
        for start in range(0, len(lines), size):
            self.influx.write(lines[start:start + size])

    def _flush_one_by_one(self) -> None:
        done = 0
        for entry in self._pending:
            try:
                self._write(entry.lines)
            except InfluxUnavailable as exc:
                self._write_failed(exc)
                break
            except InfluxRejected as exc:
                if not refused_for_good(exc):
                    self._write_failed(exc)
                    break
                entry.rejected, entry.detail = "influx_rejected", exc.message
                log.warning("message rejected reason=influx_rejected gateway=%s mid=%d detail=%s",
                            entry.gateway, entry.mid, exc.message)
                self.metrics.rejected.labels(reason="influx_rejected").inc()
            else:
                if not self._write_sql([entry]):
                    break
                self._write_ok(len(entry.lines))
            done += 1
        self._ack(done)

    def _write_ok(self, points: int) -> None:
        self.metrics.points_written.inc(points)
        self.metrics.influx_up.set(1)
        self._write_backoff.reset()
        if self._outage_since is not None:
            log.warning("%s available again outage_s=%.1f", self._outage_store, self._clock() - self._outage_since)
            self._outage_since = None

    def _write_failed(self, exc: Exception) -> None:
        kind = ("sql" if isinstance(exc, SQLAlchemyError)
                else "unavailable" if isinstance(exc, InfluxUnavailable) else "rejected")
        self.metrics.write_failures.labels(kind=kind).inc()
        if kind != "sql":
            self.metrics.influx_up.set(0)
        delay = self._write_backoff.failed()
        if self._outage_since is None:
            self._outage_since = self._clock()
            self._outage_store = "sql" if kind == "sql" else "influx"
            log.warning(f"{self._outage_store} write failed, holding messages unacknowledged pending=%d points=%d "
                        "retry_in_s=%.1f error=%s", len(self._pending), self._pending_points, delay, exc)
        else:
            log.debug("write still failing retry_in_s=%.1f error=%s", delay, exc)

    def _keep_dead_letters(self, refused: list[Refused]) -> bool:
        """Store refused messages; False (hold everything) only when SQL itself is down or locked. A dead letter
        the database refuses for its own data (a NUL in a detail text on PostgreSQL) is stored again with its
        texts cleaned, and if even that fails, the messages are acknowledged without it (counted, logged): a dead
        letter must never stall the worker it is meant to protect."""
        keep = self.settings.ingest_dead_letter_max
        for attempt in (refused, [cleaned(r) for r in refused]):
            try:
                self.sql.dead_letters(attempt, worker=self.settings.ingest_worker_id, keep=keep)
                return True
            except Exception as exc:
                if not caused_by_data(exc):
                    self._sql_failed(exc)
                    return False
                error = exc
        self.metrics.rejected.labels(reason="dead_letter_refused").inc(len(refused))
        log.error("dead letters not kept count=%d gateways=%s error=%s", len(refused),
                  ",".join(sorted({r.gateway_id or "?" for r in refused})), short_reason(error))
        return True

    def _ack(self, count: int) -> None:
        """Acknowledge the first `count` pending messages, in the order they arrived, after keeping the refused
        ones as dead letters (if SQL cannot take them now, nothing is acknowledged: the batch is tried again)."""
        refused = [Refused(e.topic, e.gateway, e.rejected, e.detail, e.payload)
                   for e in self._pending[:count] if e.rejected is not None]
        if refused and not self._keep_dead_letters(refused):
            return
        for entry in self._pending[:count]:
            if entry.rejected is None:
                for span in entry.spans:
                    self.roller.mark(*span)
            self.client.ack(entry.mid, entry.qos)
            self.metrics.acked.inc()
        del self._pending[:count]
        self._alert_pending = any(e.sql is not None and isinstance(e.sql.event, AlertEvent) for e in self._pending)
        self._pending_points = sum(len(e.lines) for e in self._pending)
        self.metrics.pending_messages.set(len(self._pending))
        if self._pending:
            self._batch_started = self._clock()
