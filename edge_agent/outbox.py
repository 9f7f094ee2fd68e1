"""The durable queue between detection and the broker: SQLite in WAL mode, one row per MQTT message.

A reading is accepted once its batch is committed here (synchronous=FULL: fsync on commit). Rows
leave only when the broker's PUBACK arrives, into `sent`, where they are kept a while (bounded by age and
bytes) so the cloud can ask for them again. Each kind has its own gap-free sequence, so the cloud can prove
completeness. Over the disk cap, telemetry is thinned, then dropped oldest-first; alerts go last.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from edge_agent.metrics import AgentMetrics
from protocol.codec import decode, encode
from protocol.messages import AlertEvent, Reading, TelemetryBatch

CACHE_KIB: Final = 512  # SQLite page cache of the outbox's connection

log = logging.getLogger(__name__)

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    seq INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    thinned INTEGER NOT NULL DEFAULT 0,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS sequences (kind TEXT PRIMARY KEY, last INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sent (
    kind TEXT NOT NULL,
    seq INTEGER NOT NULL,
    acked_ms INTEGER NOT NULL,
    payload BLOB NOT NULL,
    PRIMARY KEY (kind, seq)
);
CREATE INDEX IF NOT EXISTS sent_by_age ON sent(acked_ms);
"""
_PRUNE_EVERY: Final = 64  # acks between two prunings of `sent`
# What the disk cap sacrifices first: telemetry before alerts.
_DROP_ORDER: Final = ("telemetry", "alerts")
FREE_DISK_RESERVE: Final = 4 << 20  # the outbox stops growing this close to a full disk (SQLite needs room to commit)
STAGED_BATCHES_KEPT: Final = 20  # batches of readings held in memory while commits fail


@dataclass(frozen=True, slots=True)
class Entry:
    """One message waiting for its PUBACK."""

    id: int
    kind: str
    seq: int
    payload: bytes


class Outbox:
    """Thread-safe; readings are staged in memory for at most one flush interval, then committed as a batch."""

    def __init__(self, path: str | Path, gateway_id: str, metrics: AgentMetrics, *, max_bytes: int = 256 << 20,
                 batch_max_readings: int = 1000, keep_sent_s: float = 6 * 3600.0, keep_sent_bytes: int = 32 << 20,
                 clock: Callable[[], float] = time.time) -> None:
        self.gateway_id = gateway_id
        self.metrics = metrics
        self.max_bytes = max_bytes
        self.keep_sent_ms = int(keep_sent_s * 1000)
        self.keep_sent_bytes = keep_sent_bytes
        self._acks_since_prune = 0
        self.batch_max_readings = batch_max_readings
        self.clock = clock
        self.on_insert: Callable[[], None] = lambda: None  # the publisher's wake-up call
        self._lock = threading.Lock()
        self._staged: list[Reading] = []
        self._flush_lock = threading.Lock()  # one flush at a time: the input thread's and the timer's
        self._dir = Path(path).parent
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        # the rows written and read are the newest: SQLite's default 2 MiB page cache was 2 % of a warehouse
        # gateway's memory for no gain (the OS caches the file as well)
        self._db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        self._db.executescript(_SCHEMA)
        self._bytes, self._depth = (int(v) for v in self._db.execute(
            "SELECT COALESCE(SUM(length(payload)), 0), COUNT(*) FROM outbox").fetchone())
        self._sent_bytes = int(self._db.execute("SELECT COALESCE(SUM(length(payload)), 0) FROM sent").fetchone()[0])
        self._update_gauges()

    # --- accepting -------------------------------------------------------------------------------
    def stage(self, reading: Reading) -> None:
        """Hold a reading for the next batch; a full batch is committed at once."""
        with self._lock:
            self._staged.append(reading)
            full = len(self._staged) >= self.batch_max_readings
        if full:
            self.flush()

    def stage_many(self, readings: list[Reading]) -> None:
        """`stage` for a tick's readings: full batches are committed at once."""
        with self._lock:
            self._staged.extend(readings)
            full = len(self._staged) >= self.batch_max_readings
        if full:
            self.flush()

    def flush(self) -> int:
        """Commit the staged readings as telemetry batches (at most `batch_max_readings` each), all in one
        transaction (one fsync for a tick's readings); returns how many were committed. When that fails (a full
        disk), batch by batch as far as the disk takes them, and the rest stay staged for the next flush; past
        `max_staged_readings` the oldest staged are dropped, counted and logged (memory is a gateway's last
        buffer)."""
        with self._flush_lock:
            with self._lock:
                staged = self._staged[:]  # readings staged meanwhile wait for the next flush, in order
            if not staged:
                return 0
            now = int(self.clock() * 1000)
            size = self.batch_max_readings
            batches = [staged[i:i + size] for i in range(0, len(staged), size)]
            try:
                self._insert_many("telemetry", [self._telemetry(batch, now) for batch in batches])
            except sqlite3.Error:
                pass  # more than the disk takes at once: batch by batch below, as far as it goes
            else:
                self._committed(len(staged))
                return len(staged)
            committed = 0
            for batch in batches:
                try:
                    self._insert_many("telemetry", [self._telemetry(batch, now)])
                except sqlite3.Error as exc:
                    self._write_failed("telemetry", exc)
                    self._bound_staged()
                    return committed
                self._committed(len(batch))
                committed += len(batch)
            return committed

    def _telemetry(self, readings: list[Reading], now_ms: int) -> Callable[[int], bytes]:
        """The batch of `readings` as the outbox stores it, once its sequence number is known."""
        return lambda seq: encode(TelemetryBatch(gateway=self.gateway_id, seq=seq, sent_at=now_ms, readings=readings))

    def _committed(self, count: int) -> None:
        """The oldest `count` staged readings are in the outbox now."""
        with self._lock:
            del self._staged[:count]
        self.metrics.readings_accepted.inc(count)

    @property
    def max_staged_readings(self) -> int:
        return STAGED_BATCHES_KEPT * self.batch_max_readings

    def staged(self) -> int:
        """Readings accepted and not yet committed."""
        with self._lock:
            return len(self._staged)

    def _bound_staged(self) -> None:
        with self._lock:
            excess = len(self._staged) - self.max_staged_readings
            if excess > 0:
                del self._staged[:excess]
        if excess > 0:
            self.metrics.dropped.labels(kind="telemetry", action="dropped").inc(excess)
            log.warning("event=outbox_drop gateway=%s kind=telemetry readings=%d reason=staged_while_disk_full",
                        self.gateway_id, excess)

    def _write_failed(self, kind: str, exc: sqlite3.Error) -> None:
        self.metrics.outbox_write_failed.labels(kind=kind).inc()
        log.warning("event=outbox_write_failed gateway=%s kind=%s staged=%d error=%r", self.gateway_id, kind,
                    self.staged(), str(exc))

    def put_alert(self, build: Callable[[int], AlertEvent]) -> int:
        """Commit an alert event; `build(seq)` makes it with the next alert sequence number. sqlite3.Error when it
        cannot be committed (nothing is written; the caller keeps the event and tries again)."""
        try:
            return self._insert("alerts", lambda seq: encode(build(seq)))
        except sqlite3.Error as exc:
            self._write_failed("alerts", exc)
            raise

    def _insert(self, kind: str, make: Callable[[int], bytes]) -> int:
        return self._insert_many(kind, [make])[0]

    def _insert_many(self, kind: str, makes: list[Callable[[int], bytes]]) -> list[int]:
        """Commit one message per `make(seq)`, numbered with the next sequences of `kind`, in one transaction;
        returns their seqs (sqlite3.Error: nothing was written)."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT last FROM sequences WHERE kind = ?", (kind,)).fetchone()
                seqs = [(row[0] if row else 0) + i for i in range(1, len(makes) + 1)]
                payloads = [make(seq) for make, seq in zip(makes, seqs, strict=True)]
                db.execute("INSERT OR REPLACE INTO sequences(kind, last) VALUES (?, ?)", (kind, seqs[-1]))
                created = int(self.clock() * 1000)
                db.executemany("INSERT INTO outbox(kind, seq, created_ms, payload) VALUES (?, ?, ?, ?)",
                               [(kind, seq, created, payload) for seq, payload in zip(seqs, payloads, strict=True)])
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # SQLITE_FULL has rolled it back already
                    db.execute("ROLLBACK")
                raise
            self._bytes += sum(len(p) for p in payloads)
            self._depth += len(payloads)
            if self._bytes > self._cap():
                self._enforce_cap()
            self._update_gauges()
        self.on_insert()
        return seqs

    # --- delivering ------------------------------------------------------------------------------
    def pending(self, limit: int, exclude: set[int] | frozenset[int] = frozenset()) -> list[Entry]:
        """The oldest `limit` entries not in `exclude` (those already in flight), in order."""
        with self._lock:
            rows = self._db.execute("SELECT id, kind, seq, payload FROM outbox ORDER BY id LIMIT ?",
                                    (limit + len(exclude),)).fetchall()
        return [Entry(*r) for r in rows if r[0] not in exclude][:limit]

    def ack(self, entry_id: int) -> None:
        """The broker has the message: move it to `sent` (a no-op if the cap already dropped it)."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("DELETE FROM outbox WHERE id = ? RETURNING kind, seq, payload",
                                 (entry_id,)).fetchone()
                if row and self.keep_sent_ms > 0:
                    db.execute("INSERT OR REPLACE INTO sent(kind, seq, acked_ms, payload) VALUES (?, ?, ?, ?)",
                               (row[0], row[1], int(self.clock() * 1000), row[2]))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            if row:
                self._bytes -= len(row[2])
                self._depth -= 1
                if self.keep_sent_ms > 0:
                    self._sent_bytes += len(row[2])
            self._acks_since_prune += 1
            if self._acks_since_prune >= _PRUNE_EVERY or self._sent_bytes > self.keep_sent_bytes:
                self._prune_sent()
            self._update_gauges()

    def replay(self, kind: str, first_seq: int, last_seq: int) -> int:
        """Queue the kept `sent` messages of `kind` with seqs first..last again (the cloud lost them);
        returns how many were found. Their seqs are unchanged: storage stays idempotent."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                rows = db.execute("DELETE FROM sent WHERE kind = ? AND seq BETWEEN ? AND ? "
                                  "RETURNING kind, seq, payload", (kind, first_seq, last_seq)).fetchall()
                rows.sort(key=lambda r: int(r[1]))
                now = int(self.clock() * 1000)
                db.executemany("INSERT INTO outbox(kind, seq, created_ms, payload) VALUES (?, ?, ?, ?)",
                               [(k, seq, now, payload) for k, seq, payload in rows])
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            size = sum(len(r[2]) for r in rows)
            self._sent_bytes -= size
            self._bytes += size
            self._depth += len(rows)
            if self._bytes > self.max_bytes:
                self._enforce_cap()
            self._update_gauges()
        if rows:
            self.on_insert()
        return len(rows)

    def _prune_sent(self) -> None:
        """Forget kept messages older than keep_sent_s, then the oldest beyond keep_sent_bytes (lock held)."""
        self._acks_since_prune = 0
        db = self._db
        cutoff = int(self.clock() * 1000) - self.keep_sent_ms
        freed = db.execute("DELETE FROM sent WHERE acked_ms < ? RETURNING length(payload)", (cutoff,)).fetchall()
        self._sent_bytes -= sum(r[0] for r in freed)
        while self._sent_bytes > self.keep_sent_bytes:
            batch = db.execute("DELETE FROM sent WHERE rowid IN (SELECT rowid FROM sent ORDER BY acked_ms LIMIT 64) "
                               "RETURNING length(payload)").fetchall()
            if not batch:
                self._sent_bytes = 0
                break
            self._sent_bytes -= sum(r[0] for r in batch)

    def depth(self) -> int:
        """Messages waiting for a PUBACK (staged readings not included)."""
        return self._depth

    @property
    def bytes(self) -> int:
        """Payload bytes held (waiting for a PUBACK; the kept `sent` messages not included)."""
        return self._bytes

    @property
    def sent_bytes(self) -> int:
        """Payload bytes of PUBACKed messages kept for a replay."""
        return self._sent_bytes

    def close(self) -> None:
        """Commit what is staged and close the database."""
        self.flush()
        with self._lock:
            self._db.close()

    # --- the disk cap ----------------------------------------------------------------------------
    def _cap(self) -> int:
        """`max_bytes`, or less when the disk holds less: what is stored plus the free space above a reserve
        (a full disk fails every commit, alerts included; thinning old telemetry first keeps them going)."""
        try:
            free = shutil.disk_usage(self._dir).free
        except OSError:
            return self.max_bytes
        return min(self.max_bytes, max(self._bytes + free - FREE_DISK_RESERVE, 0))

    def _enforce_cap(self) -> None:
        """Thin the oldest telemetry (every other reading per sensor), then drop oldest-first; alerts last."""
        db = self._db
        cap = self._cap()
        while self._bytes > cap:
            row = db.execute("SELECT id, payload FROM outbox WHERE kind = 'telemetry' AND thinned = 0 "
                             "ORDER BY id LIMIT 1").fetchone()
            if row is None:
                break
            entry_id, payload = row
            batch = decode(payload, TelemetryBatch)
            kept = _thin(batch.readings)
            if len(kept) == len(batch.readings):
                db.execute("UPDATE outbox SET thinned = 1 WHERE id = ?", (entry_id,))
                continue
            smaller = encode(TelemetryBatch(gateway=batch.gateway, seq=batch.seq, sent_at=batch.sent_at,
                                            readings=kept))
            db.execute("UPDATE outbox SET payload = ?, thinned = 1 WHERE id = ?", (smaller, entry_id))
            self._bytes -= len(payload) - len(smaller)
            self.metrics.dropped.labels(kind="telemetry", action="thinned").inc(len(batch.readings) - len(kept))
        for kind in _DROP_ORDER:
            while self._bytes > cap:
                row = db.execute("DELETE FROM outbox WHERE id = (SELECT MIN(id) FROM outbox WHERE kind = ?) "
                                 "RETURNING seq, length(payload)", (kind,)).fetchone()
                if row is None:
                    break
                self._bytes -= row[1]
                self._depth -= 1
                self.metrics.dropped.labels(kind=kind, action="dropped").inc()
                log.warning("event=outbox_drop gateway=%s kind=%s seq=%d reason=disk_cap cap_bytes=%d",
                            self.gateway_id, kind, row[0], cap)

    def _update_gauges(self) -> None:
        self.metrics.outbox_bytes.set(self._bytes)
        self.metrics.outbox_depth.set(self._depth)


def _thin(readings: list[Reading]) -> list[Reading]:
    """Keep every other reading of each sensor (the first one always survives)."""
    seen: dict[str, int] = {}
    kept: list[Reading] = []
    for r in readings:
        n = seen.get(r.sensor, 0)
        seen[r.sensor] = n + 1
        if n % 2 == 0:
            kept.append(r)
    return kept
