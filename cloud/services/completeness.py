"""Completeness: per-stream sequence high-water marks and missing ranges, updated in batches by ingest.

Streams: a gateway's telemetry batch seq and alert seq (each gap-free from 1 at the gateway, see
docs/decisions.md), and each sensor's 16-bit measurement seq (0..65534, wrapping), unwrapped to an
ever-growing integer. A seq above the high-water mark opens a gap for the seqs it skipped; a seq below
it (a late or re-ordered message, e.g. from the other worker) shrinks or splits the gap it falls in.

A skipped range is first a *hole*, kept in the stream's row (JSON), and becomes a gap row only once it has stayed
open for the grace period (`COLDWATCH_INGEST_GAP_GRACE_S`): two workers interleaving a gateway's batches open a
hole in every sensor's stream at every flush and fill it at the other's next one, which as rows cost an insert and
a delete each. Holes older than the grace are declared as gaps by the next flush of that stream or by the
workers' sweep (`declare_due`), whichever comes first.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
from sqlalchemy import Select, String, Table, Update, bindparam, insert, update
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from cloud.db.alerts import Alert
from cloud.db.bulk import execute_many
from cloud.db.fleet import Sensor
from cloud.db.ingest import IngestGap, ReplayRequest, SeqStream
from cloud.services.clock import now_ms

IN_CHUNK: Final = 5000  # keys per `IN (...)` (SQLite's default limit is 32,766 bound parameters)
SENSOR_WRAP: Final = 65535  # sensor seqs run 0..65534
# A sensor seq jumping further ahead than this is taken as a restart or re-pairing, not a loss.
MAX_SENSOR_JUMP: Final = SENSOR_WRAP // 2
SILENT_KIND: Final = "gateway_silent"  # the watchdog's alert (cloud/services/silence.py)


class StreamObs(msgspec.Struct, array_like=True, gc=False):
    """The seqs of one stream seen in one merge, as runs `[first_seq, last_seq, first_ts, last_ts]` of consecutive
    seqs as sent (a sensor's wrap from 65534 to 0 inside a run); in any order, which `observe` does not depend on."""

    kind: str
    gateway_id: str | None
    sensor_id: str | None
    runs: list[list[int]] = msgspec.field(default_factory=list)

    def add(self, seq: int, ts: int) -> None:
        """One seq more: extends the last run when it follows it, else starts a run."""
        self.add_run(seq, seq, ts, ts)

    def add_run(self, first: int, last: int, first_ts: int, last_ts: int) -> None:
        """A run more, from its values: joins the last run when it continues it (no list allocated then)."""
        mine = self.runs
        if mine and self._continues(mine[-1], first, last, first_ts):
            mine[-1][1], mine[-1][3] = last, last_ts
        else:
            mine.append([first, last, first_ts, last_ts])

    def extend(self, runs: list[list[int]]) -> None:
        """Runs more (taken over, not copied): each one that continues the last run joins it, so a merge of many
        batches of a sensor holds a run, not a run a batch."""
        mine = self.runs
        for run in runs:
            if mine and self._continues(mine[-1], run[0], run[1], run[2]):
                mine[-1][1], mine[-1][3] = run[1], run[3]
            else:
                mine.append(run)

    def _continues(self, previous: list[int], first: int, last: int, first_ts: int) -> bool:
        """Whether the run `first..last` from `first_ts` on continues `previous`; joined, a sensor's run must stay
        shorter than the wrap (its length is taken modulo it)."""
        if self.kind != "sensor":
            return first == previous[1] + 1 and first_ts >= previous[3]
        return (first == (previous[1] + 1) % SENSOR_WRAP and first_ts >= previous[3]
                and run_length("sensor", previous[0], previous[1]) + run_length("sensor", first, last) < SENSOR_WRAP)


def run_length(kind: str, first: int, last: int) -> int:
    """How many seqs a run `first..last` holds (a sensor's run may wrap)."""
    return (last - first) % SENSOR_WRAP + 1 if kind == "sensor" else last - first + 1


def stream_key(kind: str, ident: str) -> str:
    """`telemetry|gw1`, `alerts|gw1`, `sensor|aa:bb:cc:dd:ee:ff`."""
    return f"{kind}|{ident}"


_COLUMNS: Final = ("key", "kind", "gateway_id", "sensor_id", "highest", "highest_ts", "received", "missing", "holes",
                   "holes_since")
_STATE: Final = ("highest", "highest_ts", "received", "missing", "holes", "holes_since")


@dataclass(slots=True)
class _Row:
    """A `seq_stream` row as plain values: read and written with Core statements (an ORM row costs ~100 µs to load
    and flush, and a fleet-shaped batch touches 8,000 streams: 2,000 gateways' and 6,000 sensors')."""

    key: str
    kind: str
    gateway_id: str | None
    sensor_id: str | None
    highest: int
    highest_ts: int
    received: int = 0
    missing: int = 0
    holes: list[list[int]] | None = None
    holes_since: int | None = None

    def state(self) -> tuple[int, int, int, int, list[list[int]] | None, int | None]:
        return self.highest, self.highest_ts, self.received, self.missing, self.holes, self.holes_since


def _table() -> Table:
    table = getattr(SeqStream, "__table__")  # noqa: B009 (SQLModel does not type it)
    assert isinstance(table, Table)
    return table


def _select_rows(session: Session, query: Select[Any]) -> list[_Row]:
    return [_Row(key=r[0], kind=r[1], gateway_id=r[2], sensor_id=r[3], highest=r[4], highest_ts=r[5],
                 received=r[6], missing=r[7], holes=[list(h) for h in r[8]] if r[8] else None, holes_since=r[9])
            for r in session.execute(query).all()]  # fetchall: a fetchone per row cost more


def _write_rows(session: Session, new: list[_Row], changed: list[_Row]) -> None:
    """INSERT the new rows (one statement; a row another worker inserted meanwhile fails the batch, which is retried
    and then reads it), executemany UPDATE the changed ones (locked since they were read)."""
    if new:
        session.execute(insert(_table()), [{name: getattr(r, name) for name in _COLUMNS} for r in new])
    if changed:
        execute_many(session, _update_rows(), [{"b_key": r.key, "b_highest": r.highest, "b_highest_ts": r.highest_ts,
                                          "b_received": r.received, "b_missing": r.missing, "b_holes": r.holes,
                                          "b_holes_since": r.holes_since} for r in changed])


@functools.cache
def _update_rows() -> Update:
    """The executemany UPDATE of changed rows, built once (a statement built per flush cost SQLAlchemy a cache key
    each time: 6 % of a worker's CPU with 500-reading messages) and run through cloud/db/bulk.py."""
    table = _table()
    return update(table).where(table.c.key == bindparam("b_key", type_=String)).values(
        {name: bindparam(f"b_{name}", type_=table.c[name].type) for name in _STATE})


@dataclass(slots=True)
class _Tracker:
    """One stream's seqs of one flush, applied to its row's plain values (`_Row`); `save` sets the row's holes."""

    stream: _Row
    session: Session
    gaps: list[IngestGap] | None = None
    opened: int = 0
    highest: int = 0
    highest_ts: int = 0
    received: int = 0
    missing: int = 0
    holes: list[list[int]] = field(default_factory=list)  # [first, last, after_ts, before_ts, detected_at]

    def __post_init__(self) -> None:
        s = self.stream
        self.highest, self.highest_ts, self.received, self.missing = s.highest, s.highest_ts, s.received, s.missing
        self.holes = [list(h) for h in s.holes or []]

    def declare(self, *, now: int, grace_ms: int) -> None:
        """Holes open for `grace_ms` become gap rows."""
        s = self.stream
        keep = []
        for first, last, after_ts, before_ts, detected_at in self.holes:
            if detected_at > now - grace_ms:
                keep.append([first, last, after_ts, before_ts, detected_at])
                continue
            gap = IngestGap(stream=s.key, kind=s.kind, gateway_id=s.gateway_id, sensor_id=s.sensor_id,
                            first_seq=first, last_seq=last, missing=last - first + 1, after_ts=after_ts,
                            before_ts=before_ts, detected_at=detected_at)
            self.session.add(gap)
            self._load_gaps().append(gap)
            self.opened += 1
        self.holes = keep

    def save(self) -> None:
        """Write the counters and holes back to the stream's row values."""
        s = self.stream
        s.highest, s.highest_ts, s.received, s.missing = self.highest, self.highest_ts, self.received, self.missing
        holes = self.holes or None
        if holes != s.holes:
            s.holes = holes
            s.holes_since = min(h[4] for h in holes) if holes else None

    def _load_gaps(self) -> list[IngestGap]:
        if self.gaps is None:
            self.gaps = list(self.session.exec(select(IngestGap).where(IngestGap.stream == self.stream.key)
                                               .where(col(IngestGap.missing) > 0)).all())
        return self.gaps

    def observe_run(self, first: int, last: int, first_ts: int, last_ts: int) -> None:
        """Unwrapped seqs `first..last`: what lies above the high-water mark advances it at once (opening a hole
        for what it skipped), what lies below fills holes and gaps seq by seq (their edges take the seqs' times,
        interpolated inside the run: only a run's ends are ever an edge that stays)."""
        n = last - first
        if last > self.highest:
            start = max(first, self.highest + 1)
            below = start - first
            for i in range(below):
                self.observe(first + i, first_ts + (last_ts - first_ts) * i // n if n else first_ts)
            start_ts = first_ts + (last_ts - first_ts) * below // n if n else first_ts
            self.observe(start, start_ts)
            if last > start:
                self.received += last - start
                self.highest, self.highest_ts = last, max(last_ts, self.highest_ts)
            return
        for i in range(n + 1):
            self.observe(first + i, first_ts + (last_ts - first_ts) * i // n if n else first_ts)

    def observe(self, u: int, ts: int) -> None:
        """One unwrapped seq."""
        if u == self.highest:
            return
        if u > self.highest:
            if u > self.highest + 1:
                self.holes.append([self.highest + 1, u - 1, self.highest_ts, ts, now_ms()])
                self.missing += u - 1 - self.highest
            self.highest, self.highest_ts = u, max(ts, self.highest_ts)
            self.received += 1
            return
        for i, hole in enumerate(self.holes):
            if hole[0] <= u <= hole[1]:
                self._fill_hole(i, u, ts)
                self.received += 1
                self.missing -= 1
                return
        for gap in self._load_gaps():
            if gap.missing > 0 and gap.first_seq <= u <= gap.last_seq:
                self._fill(gap, u, ts)
                self.received += 1
                self.missing -= 1
                return

    def _fill_hole(self, i: int, u: int, ts: int) -> None:
        first, last, after_ts, before_ts, detected_at = self.holes[i]
        if first == last:
            del self.holes[i]
        elif u == first:
            self.holes[i] = [u + 1, last, ts, before_ts, detected_at]
        elif u == last:
            self.holes[i] = [first, u - 1, after_ts, ts, detected_at]
        else:
            self.holes[i] = [first, u - 1, after_ts, ts, detected_at]
            self.holes.insert(i + 1, [u + 1, last, ts, before_ts, detected_at])

    def _fill(self, gap: IngestGap, u: int, ts: int) -> None:
        if gap.first_seq == gap.last_seq:
            # Filled: the row goes (two workers interleaving open and fill hundreds a flush; kept, they would pile
            # up and every lookup would read them again).
            gap.missing = 0
            self._load_gaps().remove(gap)
            if gap.id is None:
                self.session.expunge(gap)
            else:
                self.session.delete(gap)
            return
        if u == gap.first_seq:
            gap.first_seq, gap.after_ts, gap.missing = u + 1, ts, gap.missing - 1
        elif u == gap.last_seq:
            gap.last_seq, gap.before_ts, gap.missing = u - 1, ts, gap.missing - 1
        else:
            tail = IngestGap(stream=gap.stream, kind=gap.kind, gateway_id=gap.gateway_id, sensor_id=gap.sensor_id,
                             first_seq=u + 1, last_seq=gap.last_seq, missing=gap.last_seq - u, after_ts=ts,
                             before_ts=gap.before_ts, detected_at=gap.detected_at)
            gap.last_seq, gap.before_ts, gap.missing = u - 1, ts, u - gap.first_seq
            self.session.add(tail)
            self._load_gaps().append(tail)
        self.session.add(gap)


def unwrap(kind: str, seq: int, reference: int) -> int:
    """A seq as the stream counts it: a sensor's 16-bit seq becomes the unwrapped value nearest `reference` (ahead
    by up to MAX_SENSOR_JUMP, else behind); a gateway's seq is itself. Every worker and every merge unwraps against
    the stream's stored high-water mark, so the order batches arrive in cannot change the result."""
    if kind != "sensor":
        return seq
    delta = (seq - reference) % SENSOR_WRAP
    return reference + delta if delta <= MAX_SENSOR_JUMP else reference - (SENSOR_WRAP - delta)


def _unwrapped_runs(kind: str, runs: list[list[int]], reference: int) -> list[tuple[int, int, int, int]]:
    """The runs unwrapped, in seq order: (first, last, first_ts, last_ts). A sensor's runs are unwrapped in time
    order, each against the furthest seq unwrapped so far (from `reference`, the stored high-water mark): a merge may
    hold more than half the 16-bit wrap of one sensor (a long backlog uploaded through two workers), and each run
    is then near the one before it, not near the stored mark. Time order does not depend on which worker saw what."""
    if kind != "sensor":
        return sorted((first, last, first_ts, last_ts) for first, last, first_ts, last_ts in runs)
    out = []
    furthest = reference
    for first, last, first_ts, last_ts in sorted(runs, key=_by_first_ts):
        u = unwrap(kind, first, furthest)
        end = u + run_length(kind, first, last) - 1
        out.append((u, end, first_ts, last_ts))
        furthest = max(furthest, end)
    out.sort()
    return out


def _by_first_ts(run: list[int]) -> int:
    return run[2]


def _fast_forward(stream: _Row, runs: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Consume the leading runs that continue the high-water mark (the common case: no loss); returns the runs left
    for the general path."""
    highest, highest_ts, received = stream.highest, stream.highest_ts, stream.received
    done = 0
    for first, last, _, last_ts in runs:
        if first != highest + 1:
            break
        highest, highest_ts, received = last, max(last_ts, highest_ts), received + last - first + 1
        done += 1
    if done:
        stream.highest, stream.highest_ts, stream.received = highest, highest_ts, received
    return runs[done:]


def observe(session: Session, *, streams: dict[str, StreamObs], grace_ms: int = 0) -> int:
    """Apply the seqs of one merge to their streams (rows locked in key order); returns gaps opened (holes older than
    `grace_ms` declared). Each stream's runs are unwrapped against its stored high-water mark and applied in seq
    order, so what two workers saw of a gateway in the same merge opens no hole whatever its order."""
    keys = sorted(streams)
    c = _table().c
    rows: dict[str, _Row] = {}
    for start in range(0, len(keys), IN_CHUNK):
        chunk = keys[start:start + IN_CHUNK]
        for row in _select_rows(session, core_select(*(c[name] for name in _COLUMNS)).where(c.key.in_(chunk))
                                .order_by(c.key).with_for_update()):
            rows[row.key] = row
    # Every open gap of these streams in one query: a late seq (the other worker's batch, a replay) looks its gap
    # up in memory instead of costing a query per stream. Only streams missing something can have one open.
    open_gaps: dict[str, list[IngestGap]] = {key: [] for key in keys}
    missing = [key for key in keys if key in rows and rows[key].missing > 0]
    for start in range(0, len(missing), IN_CHUNK):
        for gap in session.exec(select(IngestGap).where(col(IngestGap.stream).in_(missing[start:start + IN_CHUNK]))
                                .where(col(IngestGap.missing) > 0)).all():
            open_gaps[gap.stream].append(gap)
    opened = 0
    new: list[_Row] = []
    changed: list[_Row] = []
    for key in keys:
        obs = streams[key]
        if not obs.runs:
            continue
        stream = rows.get(key)
        before = None
        if stream is None:
            # Gateway seqs start at 1, so a stream first seen at seq k lost 1..k-1; a sensor's may start anywhere:
            # at the lowest seq of its first merge (unwrapped from the earliest reading's). Seqs below that, merged
            # later (another worker's batch still in flight), are not counted: the stream's past is unknown.
            runs = _unwrapped_runs(obs.kind, obs.runs, min(obs.runs, key=_by_first_ts)[0])
            if obs.kind == "sensor" and runs[0][0] < 0:  # behind the first seq seen, across the wrap
                runs = [(a + SENSOR_WRAP, b + SENSOR_WRAP, ta, tb) for a, b, ta, tb in runs]
            stream = _Row(key=key, kind=obs.kind, gateway_id=obs.gateway_id, sensor_id=obs.sensor_id,
                          highest=runs[0][0] - 1 if obs.kind == "sensor" else 0, highest_ts=runs[0][2])
            new.append(stream)
        else:
            before = stream.state()
            runs = _unwrapped_runs(obs.kind, obs.runs, stream.highest)
        runs = _fast_forward(stream, runs)
        if runs or stream.holes:
            tracker = _Tracker(stream=stream, session=session, gaps=open_gaps[key])
            for first, last, first_ts, last_ts in runs:
                tracker.observe_run(first, last, first_ts, last_ts)
            tracker.declare(now=now_ms(), grace_ms=grace_ms)  # after observing: a hole just opened is not newer
            tracker.save()
            opened += tracker.opened
        if before is not None and stream.state() != before:
            changed.append(stream)
    _write_rows(session, new, changed)
    return opened


def declare_due(session: Session, *, grace_ms: int, now: int | None = None, limit: int = 1000) -> int:
    """Declare the holes of streams that went quiet once they are older than `grace_ms` (the workers' sweep);
    returns gaps opened."""
    now = now_ms() if now is None else now
    c = _table().c
    rows = _select_rows(session, core_select(*(c[name] for name in _COLUMNS)).where(c.holes_since.is_not(None))
                        .where(c.holes_since <= now - grace_ms).order_by(c.key).limit(limit)
                        .with_for_update(skip_locked=True))
    opened = 0
    changed: list[_Row] = []
    for stream in rows:
        before = stream.state()
        tracker = _Tracker(stream=stream, session=session)
        tracker.declare(now=now, grace_ms=grace_ms)
        tracker.save()
        if stream.state() != before:
            changed.append(stream)
        opened += tracker.opened
    _write_rows(session, [], changed)
    return opened


def list_gaps(session: Session, *, gateway_id: str | None = None, sensor_id: str | None = None,
              kind: str | None = None, start: int | None = None, end: int | None = None, open_only: bool = True,
              limit: int = 500) -> Sequence[IngestGap]:
    """Missing ranges, newest first; `start`/`end` select gaps whose time span overlaps [start, end)."""
    query = select(IngestGap)
    if open_only:
        query = query.where(col(IngestGap.missing) > 0)
    if gateway_id is not None:
        query = query.where(IngestGap.gateway_id == gateway_id)
    if sensor_id is not None:
        query = query.where(IngestGap.sensor_id == sensor_id)
    if kind is not None:
        query = query.where(IngestGap.kind == kind)
    if start is not None:
        query = query.where(IngestGap.before_ts > start)
    if end is not None:
        query = query.where(IngestGap.after_ts < end)
    return session.exec(query.order_by(col(IngestGap.id).desc()).limit(limit)).all()


def claim_replays(session: Session, *, now: int, open_for_ms: int, retry_ms: int, max_attempts: int,
                  limit: int = 100) -> list[IngestGap]:
    """Open gaps in gateway streams (telemetry, alerts) that have waited `open_for_ms` and are due for a
    request (never asked, or asked `retry_ms` ago fewer than `max_attempts` times); each one returned is
    recorded as asked, so two workers never both ask (rows locked; a race loses on the primary key)."""
    gaps = session.exec(select(IngestGap).where(col(IngestGap.kind).in_(("telemetry", "alerts")))
                        .where(col(IngestGap.missing) > 0).where(IngestGap.detected_at <= now - open_for_ms)
                        .order_by(col(IngestGap.id)).limit(limit * 4).with_for_update(skip_locked=True)).all()
    asked = {r.gap_id: r for r in session.exec(select(ReplayRequest).where(
        col(ReplayRequest.gap_id).in_([g.id for g in gaps]))).all()} if gaps else {}
    due: list[IngestGap] = []
    for gap in gaps:
        assert gap.id is not None
        request = asked.get(gap.id)
        if request is None:
            session.add(ReplayRequest(gap_id=gap.id, requested_at=now))
        elif request.attempts < max_attempts and request.requested_at <= now - retry_ms:
            request.requested_at, request.attempts = now, request.attempts + 1
            session.add(request)
        else:
            continue
        due.append(gap)
        if len(due) >= limit:
            break
    return due


def silent_intervals(session: Session, *, sensor_id: str, start: int, end: int,
                     now: int | None = None) -> list[tuple[int, int]]:
    """When the sensor's gateway was silent (`gateway_silent` alerts, from the last time it was heard until heard
    again, or until now while open), clipped to [start, end) and merged."""
    sensor = session.get(Sensor, sensor_id)
    if sensor is None or not sensor.gateway_id:
        return []
    now = now_ms() if now is None else now
    alerts = session.exec(select(Alert).where(Alert.gateway_id == sensor.gateway_id, Alert.kind == SILENT_KIND,
                                              Alert.started_at < end)).all()
    spans = sorted((max(start, a.started_at), min(end, a.ended_at if a.ended_at is not None else now))
                   for a in alerts)
    merged: list[tuple[int, int]] = []
    for a, b in spans:
        if b <= a:
            continue
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def missing_with_silence(session: Session, *, sensor_id: str, start: int, end: int, received: int,
                         now: int | None = None) -> float:
    """Readings missing in [start, end): the gaps (seqs never received), and for the time the sensor's gateway was
    silent, the readings the sensor's own rate outside that time says it would have sent. A silence whose readings
    came back as a gap (the tag kept counting) is counted once, as the larger of the two."""
    gaps = missing_in_range(session, sensor_id=sensor_id, start=start, end=end)
    silent = silent_intervals(session, sensor_id=sensor_id, start=start, end=end, now=now)
    silent_ms = sum(b - a for a, b in silent)
    heard_ms = (end - start) - silent_ms
    if not silent or heard_ms <= 0 or received <= 0:
        return gaps
    expected_in_silence = received / heard_ms * silent_ms
    gaps_in_silence = sum(missing_in_range(session, sensor_id=sensor_id, start=a, end=b) for a, b in silent)
    return gaps - gaps_in_silence + max(gaps_in_silence, expected_in_silence)


def missing_in_range(session: Session, *, sensor_id: str, start: int, end: int) -> float:
    """Readings of `sensor_id` missing in [start, end): each gap's count pro-rated to its overlap."""
    total = 0.0
    for gap in list_gaps(session, sensor_id=sensor_id, kind="sensor", start=start, end=end, limit=100_000):
        span = max(1, gap.before_ts - gap.after_ts)
        overlap = max(0, min(end, gap.before_ts) - max(start, gap.after_ts))
        total += gap.missing * min(1.0, overlap / span)
    return total
