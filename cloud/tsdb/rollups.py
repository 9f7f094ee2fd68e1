"""1-minute and 1-hour rollups of the readings (count, sum, min and max of each field per sensor), written by
coldwatch itself: ingest marks the time spans it stored and recomputes their buckets from the stored points, so a
replay that fills a gap hours later recomputes those buckets too. Charts and reports read the coarsest rollup that
still gives the points they need; min and max are kept, so an excursion shorter than a bucket stays visible.

Works on InfluxDB 1.x, 2.x (v1 API) and 3.x alike: no continuous queries, no `SELECT … INTO`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from cloud.tsdb.influx import InfluxClient, InfluxRejected, Series, quote_ident
from cloud.tsdb.lineprotocol import MEASUREMENT, TAGS, escape_measurement, escape_tag, format_float

log = logging.getLogger(__name__)

MINUTE_MS: Final = 60_000
HOUR_MS: Final = 3_600_000
# (measurement, bucket width), finest first; each level is computed from the one before it (raw readings first).
LEVELS: Final = (("reading_1m", MINUTE_MS), ("reading_1h", HOUR_MS))
# rollup field → (aggregate over the raw field, aggregate over the finer rollup's field, is a count)
_FIELDS: Final = {
    "n_t": ("count(temp_c)", "sum(n_t)", True), "t_sum": ("sum(temp_c)", "sum(t_sum)", False),
    "t_min": ("min(temp_c)", "min(t_min)", False), "t_max": ("max(temp_c)", "max(t_max)", False),
    "n_rh": ("count(rh_pct)", "sum(n_rh)", True), "rh_sum": ("sum(rh_pct)", "sum(rh_sum)", False),
    "n_bat": ("count(battery_mv)", "sum(n_bat)", True), "bat_sum": ("sum(battery_mv)", "sum(bat_sum)", False),
    "score_max": ("max(anomaly_score)", "max(score_max)", False),
}
SETTLE_MS: Final = 30_000  # a span is computed again this long after it was last marked (see DirtySpans)
MAX_PER_PASS: Final = 48  # spans (of at most a day) a pass computes; the rest wait for the next
_NS_PER_MS: Final = 1_000_000


def _select(level: int) -> str:
    source = MEASUREMENT if level == 0 else LEVELS[level - 1][0]
    exprs = ", ".join(f"{raw if level == 0 else rolled} AS {quote_ident(name)}"
                      for name, (raw, rolled, _count) in _FIELDS.items())
    tags = ", ".join(quote_ident(t) for t in TAGS)
    return (f"SELECT {exprs} FROM {quote_ident(source)} WHERE time >= $start AND time < $end "  # noqa: S608
            f"GROUP BY time({LEVELS[level][1]}ms), {tags} fill(none)")


def _lines(measurement: str, series: Iterable[Series]) -> list[str]:
    head = escape_measurement(measurement)
    out = []
    for s in series:
        tags = "".join(f",{t}={escape_tag(s.tags[t], f'tag {t}')}" for t in TAGS if s.tags.get(t))
        for row in s.rows():
            fields = []
            for name, (_raw, _rolled, is_count) in _FIELDS.items():
                value = row.get(name)
                if value is None or (is_count and not value):
                    continue
                fields.append(f"{name}={int(value)}i" if is_count else f"{name}={format_float(float(value))}")
            if any(f.startswith(("n_t=", "n_rh=", "n_bat=")) for f in fields):
                out.append(f"{head}{tags} {','.join(fields)} {int(row['time'])}")
    return out


def rebuild(influx: InfluxClient, start_ms: int, end_ms: int) -> int:
    """Recompute every rollup bucket that [start_ms, end_ms) touches, finest level first; returns points written.
    Idempotent: a bucket's point has the same tags and time each time, so it replaces the last one."""
    written = 0
    for level, (measurement, width) in enumerate(LEVELS):
        lo, hi = start_ms // width * width, math.ceil(end_ms / width) * width
        try:
            series = influx.query(_select(level), {"start": lo * _NS_PER_MS, "end": hi * _NS_PER_MS})
        except InfluxRejected as exc:
            if "database not found" in exc.message:
                return written
            raise
        lines = _lines(measurement, series)
        for i in range(0, len(lines), 5000):
            influx.write(lines[i:i + 5000])
        written += len(lines)
    return written


def rebuild_days(influx: InfluxClient, start_ms: int, end_ms: int) -> int:
    """`rebuild` a day at a time over a long range (readings stored before rollups existed, a restore)."""
    day = 24 * HOUR_MS
    written = 0
    for lo in range(start_ms // day * day, end_ms, day):
        written += rebuild(influx, max(lo, start_ms), min(lo + day, end_ms))
    return written


@dataclass
class DirtySpans:
    """Time spans whose rollups must be recomputed. A span is due at once, then once more SETTLE_MS later: with
    two workers, one may read a bucket before the other's points for it are written; the second pass (and the
    other worker's own) sees them. Spans are cut into days, so one clock jump or long backlog is many small
    queries, at most MAX_PER_PASS per pass, and a failing one is retried alone."""

    pending: list[tuple[int, int]] = field(default_factory=list)  # (start, end) ms, for the next sweep
    settling: dict[tuple[int, int], int] = field(default_factory=dict)  # span → when to compute it again (ms)

    def mark(self, start_ms: int, end_ms: int) -> None:
        """Readings stamped from `start_ms` to `end_ms` (inclusive) were stored."""
        self.pending.append((start_ms, end_ms + 1))

    def due(self, now_ms: int) -> list[tuple[tuple[int, int], bool]]:
        """The spans to compute now, each with whether it is fresh (then it settles once more): merged, on minute
        boundaries, cut into days, at most MAX_PER_PASS (the rest stay for the next pass)."""
        fresh = [(chunk, True) for lo, hi in _merge((lo // MINUTE_MS * MINUTE_MS, math.ceil(hi / MINUTE_MS) * MINUTE_MS)
                                                    for lo, hi in self.pending) for chunk in _days(lo, hi)]
        self.pending.clear()
        settled = [(span, False) for span, at in self.settling.items() if at <= now_ms]
        for span, _fresh in settled:
            del self.settling[span]
        work = fresh + settled
        for (lo, hi), is_fresh in work[MAX_PER_PASS:]:
            if is_fresh:
                self.pending.append((lo, hi - 1))
            else:
                self.settling[(lo, hi)] = now_ms
        return work[:MAX_PER_PASS]

    def done(self, span: tuple[int, int], fresh: bool, now_ms: int, *, ok: bool) -> None:
        """After computing `span`: a fresh one settles once more; a failed one waits for the next pass."""
        if not ok:
            self.pending.append((span[0], span[1] - 1))
        elif fresh:
            self.settling[span] = now_ms + SETTLE_MS


def _days(lo: int, hi: int) -> list[tuple[int, int]]:
    day = 24 * HOUR_MS
    return [(max(lo, start), min(hi, start + day)) for start in range(lo // day * day, hi, day)]


def _merge(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out
