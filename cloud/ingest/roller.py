"""The ingest worker's rollup thread: recomputes the rollups of what the worker stored, off its MQTT loop."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Final

from cloud.ingest.failures import short_reason
from cloud.ingest.metrics import IngestMetrics
from cloud.services.clock import now_ms
from cloud.tsdb import rollups
from cloud.tsdb.influx import InfluxClient, InfluxRejected, InfluxUnavailable
from cloud.tsdb.rollups import DirtySpans

log = logging.getLogger(__name__)

ROLLUP_EVERY_S: Final = 10.0  # how often the rollups of what was stored are recomputed
STOP_JOIN_S: Final = 30.0


class Roller:
    """Spans the worker marked after storing their readings, rolled up every `every_s` by a thread of its own.

    A pass waits on influxd (a GROUP BY over the spans, then a write) for hundreds of ms with a fleet's data: on the
    worker's own loop it held MQTT reading and the next batch's writes for that long. `mark` is all the worker does
    now; the thread takes the marked spans under a lock and queries without it. `stop` ends the thread and runs one
    last pass on the caller's thread, so what a run stored is rolled up before the worker goes.
    """

    def __init__(self, influx: InfluxClient, metrics: IngestMetrics, *, every_s: float = ROLLUP_EVERY_S,
                 clock_ms: Callable[[], int] = now_ms) -> None:
        self.influx = influx
        self.metrics = metrics
        self.every_s = every_s
        self._clock_ms = clock_ms
        self._spans = DirtySpans()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def mark(self, start_ms: int, end_ms: int) -> None:
        """Readings stamped from `start_ms` to `end_ms` (inclusive) were stored: roll them up at the next pass."""
        with self._lock:
            self._spans.mark(start_ms, end_ms)

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ingest-rollups", daemon=True)
            self._thread.start()

    def stop(self) -> int:
        """End the thread, then roll up what is still marked; returns the rollup points that last pass wrote."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(STOP_JOIN_S)
            self._thread = None
        return self.run_pass()

    def _run(self) -> None:
        while not self._stopping.wait(self.every_s):
            try:
                self.run_pass()
            except Exception:  # a bug in one pass must not end rollups for the rest of the run
                log.exception("rollup pass failed (retried at the next pass)")

    def run_pass(self) -> int:
        """Recompute the rollup buckets of the spans due now (cloud/tsdb/rollups.py); an InfluxDB failure keeps
        its span for the next pass. Returns the rollup points written."""
        with self._lock:
            due = self._spans.due(self._clock_ms())
        written = failed = 0
        error: Exception | None = None
        for span, fresh in due:
            try:
                written += rollups.rebuild(self.influx, *span)
                ok = True
            except (InfluxUnavailable, InfluxRejected) as exc:
                failed += 1
                error = exc
                ok = False
            with self._lock:
                self._spans.done(span, fresh, self._clock_ms(), ok=ok)
        if failed:
            self.metrics.write_failures.labels(kind="rollup").inc(failed)
            log.warning("rollups not updated spans=%d error=%s (retried at the next pass)", failed,
                        short_reason(error) if error else "")
        return written
