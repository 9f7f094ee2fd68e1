"""The ingest worker's batch writer: points to InfluxDB, then SQL rows, then dead letters; says what may be acked."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from cloud.config import Settings
from cloud.db.engine import init_schema
from cloud.ingest.failures import Backoff, caused_by_data, cleaned, refused_for_good, short_reason
from cloud.ingest.metrics import IngestMetrics
from cloud.ingest.sql_sink import ApplyResult, SqlSink, SqlWork
from cloud.services.clock import now_ms
from cloud.services.dead_letters import Refused
from cloud.services.ingest_journal import Merged
from cloud.tsdb.influx import InfluxClient, InfluxRejected, InfluxUnavailable

log = logging.getLogger(__name__)

DRAIN_EVERY_S: Final = 5.0  # without a journal, how often rows a journalling run left are looked for


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


class BatchWriter:
    """Stores batches for one worker. `store` may run on the worker's writer thread: it touches only the batch it
    is given, the stores' clients and its own outage state (the worker reads the backoff between batches: a stale
    read only delays the next batch, and a queued batch checks it again before it writes)."""

    def __init__(self, settings: Settings, influx: InfluxClient, engine: Engine, sql: SqlSink,
                 metrics: IngestMetrics, clock: Callable[[], float],
                 mark: Callable[[int, int], None] = lambda start, end: None) -> None:
        self.settings = settings
        self.influx = influx
        self.engine = engine
        self.sql = sql
        self.metrics = metrics
        self._clock = clock
        self.backoff = Backoff(clock)
        self.sql_ready = False
        self._database_ready = False
        self._outage_since: float | None = None
        self._outage_store = "influx"
        self._next_merge = float("-inf")
        self._mark = mark  # readings stored from start to end (ms): their rollups are redone (the worker's Roller)

    def store(self, entries: list[Pending]) -> int:
        """Write `entries` and keep the refused ones as dead letters; returns how many of them, from the first, are
        done (stored, or refused for good and kept) and may be acknowledged. The rest are held: a store is down, the
        backoff says when to try again."""
        if not entries or not self.prepare_database():
            return 0
        lines = [line for entry in entries for line in entry.lines]
        try:
            self.write_points(lines)
        except InfluxUnavailable as exc:
            self._failed(exc, entries)
            return 0
        except InfluxRejected as exc:
            if not refused_for_good(exc):  # auth, missing database, type conflict: an operator can fix it
                self._failed(exc, entries)
                return 0
            self.metrics.write_failures.labels(kind="rejected").inc()
            log.warning("influx refused a batch, writing message by message status=%d error=%s",
                        exc.status, exc.message)
            done = self._store_one_by_one(entries)
        else:
            if not self._write_sql(entries):
                return 0
            self._written(len(lines))
            done = len(entries)
        refused = [Refused(e.topic, e.gateway, e.rejected, e.detail, e.payload)
                   for e in entries[:done] if e.rejected is not None]
        if refused and not self._keep_dead_letters(refused, entries):
            return 0
        return done

    def merge_due(self) -> bool:
        """Whether to merge the journal now: the merge interval has passed since the last merge (or it left rows
        behind). Without a journal (`ingest_merge_s` 0) every DRAIN_EVERY_S, for rows a journalling run left."""
        return self.sql_ready and self._clock() >= self._next_merge

    def merge(self, *, all_rows: bool = False) -> int:
        """Merge journal rows into gateways, sensors and seq streams once one has waited the merge interval
        (`all_rows`: whatever their age, at shutdown); returns rows merged. Runs as a job of its own on the writer
        thread (never inside a batch's store, whose acks would wait for it). A failed merge leaves the rows for the
        next one (counted, logged): what was acknowledged stays journalled, never lost."""
        interval = self.settings.ingest_merge_s
        every = interval if interval > 0 else DRAIN_EVERY_S
        try:
            merged = self.sql.merge(
                written_before=None if all_rows or interval == 0 else now_ms() - int(interval * 1000))
        except Exception as exc:
            self._next_merge = self._clock() + every
            self.metrics.merge_failures.inc()
            log.warning("journal merge failed, the rows wait for the next merge in %.1f s error=%s", every,
                        short_reason(exc))
            return 0
        self._next_merge = self._clock() + (0.0 if merged.more else every)
        self._merged(merged)
        return merged.rows

    def _merged(self, merged: Merged) -> None:
        for start, end in merged.spans:  # whichever worker stored them: each span is rolled up by one worker
            self._mark(start, end)
        self.metrics.journal_merged.inc(merged.rows)
        if merged.dropped:
            self.metrics.journal_dropped.inc(merged.dropped)
        if merged.gaps_opened:
            self.metrics.gaps_recorded.inc(merged.gaps_opened)
            log.info("ingest gaps recorded count=%d (journal merge of %d batches)", merged.gaps_opened, merged.rows)

    def prepare_database(self) -> bool:
        """The SQL schema and the InfluxDB database, once; False (and a backoff) while either is unreachable."""
        if not self.sql_ready:
            try:
                init_schema(self.engine)
            except SQLAlchemyError as exc:
                self._failed(exc, [])
                return False
            self.sql_ready = True
        if self._database_ready:
            return True
        try:
            self.influx.ensure_database(create=True)
        except InfluxUnavailable as exc:
            self._failed(exc, [])
            return False
        except InfluxRejected as exc:
            # InfluxDB 2.x/3.x refuse CREATE DATABASE on the v1 API: the bucket and DBRP mapping
            # are made by the operator. Writes will tell whether the database is really there.
            log.warning("could not create database db=%s error=%s (on InfluxDB 2.x map a DBRP)",
                        self.settings.influx_db, exc)
        self._database_ready = True
        return True

    def write_points(self, lines: list[str]) -> None:
        """Lines to InfluxDB in requests of at most a batch."""
        size = self.settings.ingest_batch_size
        for start in range(0, len(lines), size):
            self.influx.write(lines[start:start + size])

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
                self._sql_failed(exc, entries)
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
                    self._sql_failed(exc, entries)
                    return False
                entry.rejected, entry.detail = "sql_rejected", short_reason(exc)
                self.metrics.rejected.labels(reason="sql_rejected").inc()
                kind = "TelemetryBatch" if entry.sql.event is None else type(entry.sql.event).__name__
                log.warning("message rejected reason=sql_rejected gateway=%s mid=%d message=%s error=%s",
                            entry.gateway, entry.mid, kind, short_reason(exc))
                continue
            self._sql_applied(result, [entry.sql])
        return True

    def _sql_failed(self, exc: Exception, entries: list[Pending]) -> None:
        self.metrics.sql_up.set(0)
        self._failed(exc if isinstance(exc, SQLAlchemyError) else SQLAlchemyError(str(exc)), entries)

    def _sql_applied(self, result: ApplyResult, works: list[SqlWork]) -> None:
        self.metrics.sql_up.set(1)
        if result.merged is not None:  # a batch with an alert event merged the journal first
            self._merged(result.merged)
        for start, end in result.spans:  # applied without the journal: its rollups are this worker's
            self._mark(start, end)
        self.metrics.alert_events.inc(result.alert_events)
        self.metrics.alert_duplicates.inc(result.alert_duplicates)
        self.metrics.alert_refused.inc(result.alert_refused)
        if result.gaps_opened:
            self.metrics.gaps_recorded.inc(result.gaps_opened)
            log.info("ingest gaps recorded count=%d gateways=%s", result.gaps_opened,
                     ",".join(sorted({w.gateway for w in works})))

    def _store_one_by_one(self, entries: list[Pending]) -> int:
        done = 0
        for entry in entries:
            try:
                self.write_points(entry.lines)
            except InfluxUnavailable as exc:
                self._failed(exc, entries)
                break
            except InfluxRejected as exc:
                if not refused_for_good(exc):
                    self._failed(exc, entries)
                    break
                entry.rejected, entry.detail = "influx_rejected", exc.message
                log.warning("message rejected reason=influx_rejected gateway=%s mid=%d detail=%s",
                            entry.gateway, entry.mid, exc.message)
                self.metrics.rejected.labels(reason="influx_rejected").inc()
            else:
                if not self._write_sql([entry]):
                    break
                self._written(len(entry.lines))
            done += 1
        return done

    def _written(self, points: int) -> None:
        self.metrics.points_written.inc(points)
        self.metrics.influx_up.set(1)
        self.backoff.reset()
        if self._outage_since is not None:
            log.warning("%s available again outage_s=%.1f", self._outage_store, self._clock() - self._outage_since)
            self._outage_since = None

    def _failed(self, exc: Exception, entries: list[Pending]) -> None:
        kind = ("sql" if isinstance(exc, SQLAlchemyError)
                else "unavailable" if isinstance(exc, InfluxUnavailable) else "rejected")
        self.metrics.write_failures.labels(kind=kind).inc()
        if kind != "sql":
            self.metrics.influx_up.set(0)
        delay = self.backoff.failed()
        if self._outage_since is None:
            self._outage_since = self._clock()
            self._outage_store = "sql" if kind == "sql" else "influx"
            log.warning(f"{self._outage_store} write failed, holding messages unacknowledged pending=%d points=%d "
                        "retry_in_s=%.1f error=%s", len(entries), sum(len(e.lines) for e in entries), delay, exc)
        else:
            log.debug("write still failing retry_in_s=%.1f error=%s", delay, exc)

    def _keep_dead_letters(self, refused: list[Refused], entries: list[Pending]) -> bool:
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
                    self._sql_failed(exc, entries)
                    return False
                error = exc
        self.metrics.rejected.labels(reason="dead_letter_refused").inc(len(refused))
        log.error("dead letters not kept count=%d gateways=%s error=%s", len(refused),
                  ",".join(sorted({r.gateway_id or "?" for r in refused})), short_reason(error))
        return True
