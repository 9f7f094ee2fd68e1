"""What ingest writes to SQL: gateways/sensors seen, alert events, status, reported, and completeness.

The worker builds one `SqlWork` per message while decoding and applies a whole batch in one transaction
(after the InfluxDB write, before the PUBACKs), so SQL costs one commit per batch, not per message.
"""

from __future__ import annotations

import logging
import operator
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import msgspec
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from cloud.db.engine import session_scope
from cloud.db.fleet import Gateway
from cloud.ingest.failures import caused_by_data, short_reason
from cloud.services import alerts, completeness, dead_letters, fleet, ingest_journal
from cloud.services.clock import now_ms
from cloud.services.completeness import SENSOR_WRAP, StreamObs, stream_key
from cloud.services.dead_letters import Refused
from cloud.services.ingest_journal import Observed
from protocol.messages import AlertEvent, Reported, Status, TelemetryBatch

log = logging.getLogger(__name__)

KNOWN_REFRESH_S: Final = 5.0
MERGE_ALONE_BUDGET_S: Final = 10.0  # the longest a merge spends on rows one by one (see SqlSink.merge)
_by_ts: Final = operator.attrgetter("ts")
MISS_REFRESH_S: Final = 0.5


class SensorSeen(msgspec.Struct, gc=False):
    """One sensor's readings in one message: the newest one's profile, their time span, and their seqs as runs
    (completeness.StreamObs.runs): the last run in scalars (`seq_first`..`seq_last` from `run_first_ts` to
    `run_last_ts`; `seq_last` -1 while no reading had a seq), the runs before it in `earlier` (None in the common
    case of one run). Scalars, and not tracked by the cyclic collector: a message's hundreds of sensors allocate
    nothing it walks (with lists, the collections they triggered were a fifth of a worker's CPU per reading)."""

    profile: str
    first_ts: int
    last_ts: int
    seq_first: int = -1
    seq_last: int = -1
    run_first_ts: int = 0
    run_last_ts: int = 0
    earlier: list[list[int]] | None = None

    def add(self, profile: str, ts: int, seq: int | None) -> None:
        """A later reading of the sensor (in time order)."""
        self.profile, self.last_ts = profile, ts
        if seq is None:
            return
        last = self.seq_last
        if last >= 0 and seq == (last + 1) % SENSOR_WRAP:  # the run goes on
            self.seq_last, self.run_last_ts = seq, ts
            return
        if last >= 0:
            if self.earlier is None:
                self.earlier = []
            self.earlier.append([self.seq_first, last, self.run_first_ts, self.run_last_ts])
        self.seq_first = self.seq_last = seq
        self.run_first_ts = self.run_last_ts = ts

    def add_runs_to(self, stream: StreamObs) -> None:
        """Its runs into `stream` (copied: the work is applied again when its batch is held)."""
        for run in self.earlier or ():
            stream.add_run(*run)
        if self.seq_last >= 0:
            stream.add_run(self.seq_first, self.seq_last, self.run_first_ts, self.run_last_ts)


@dataclass(slots=True)
class SqlWork:
    """One message's SQL effects."""

    gateway: str
    seen_at: int
    stream: tuple[str, int, int] | None = None  # (kind, seq, ts) of the gateway's telemetry/alerts stream
    sensors: dict[str, SensorSeen] = field(default_factory=dict)
    event: AlertEvent | Status | Reported | None = None
    spans: tuple[tuple[int, int], ...] = ()  # its readings' time spans (ms): the rollups to redo once stored


def telemetry_work(batch: TelemetryBatch) -> SqlWork:
    """The SQL side of a telemetry batch: its seq, and each sensor's readings (seq, ts) in time order."""
    work = SqlWork(gateway=batch.gateway, seen_at=batch.sent_at, stream=("telemetry", batch.seq, batch.sent_at))
    sensors = work.sensors
    for reading in sorted(batch.readings, key=_by_ts):
        ts = reading.ts
        seen = sensors.get(reading.sensor)
        if seen is not None:
            seq = reading.seq
            if seq is not None and seen.seq_last >= 0 and seq == (seen.seq_last + 1) % SENSOR_WRAP:
                seen.profile, seen.last_ts, seen.seq_last, seen.run_last_ts = reading.profile, ts, seq, ts  # as add()
            else:
                seen.add(reading.profile, ts, seq)
        elif reading.seq is None:
            sensors[reading.sensor] = SensorSeen(reading.profile, ts, ts)
        else:
            sensors[reading.sensor] = SensorSeen(reading.profile, ts, ts, reading.seq, reading.seq, ts, ts)
    return work


def event_work(message: AlertEvent | Status | Reported) -> SqlWork:
    """The SQL side of an alert event, a status or a reported message."""
    if isinstance(message, AlertEvent):
        return SqlWork(gateway=message.gateway, seen_at=message.updated_at,
                       stream=("alerts", message.seq, message.updated_at), event=message)
    return SqlWork(gateway=message.gateway, seen_at=message.ts, event=message)


@dataclass(slots=True)
class ApplyResult:
    """What one batch changed."""

    gaps_opened: int = 0
    alert_events: int = 0
    alert_duplicates: int = 0
    alert_refused: int = 0  # events for another gateway's alert (alerts.foreign_alert): a security event
    merged: ingest_journal.Merged | None = None  # the journal merge a batch with an alert event ran first
    spans: list[list[int]] = field(default_factory=list)  # rollups to redo now (a batch applied without the journal)


class SqlSink:
    """Applies batches of SqlWork; knows which gateways are provisioned (for the `reject` policy)."""

    def __init__(self, engine: Engine, *, gap_grace_ms: int = 0, journal: bool = False, worker: str = "") -> None:
        self.engine = engine
        self.gap_grace_ms = gap_grace_ms  # skipped seqs become gap rows only after this long (completeness.py)
        self.journal = journal  # batches journal what they saw for `merge` (cloud/services/ingest_journal.py)
        self.worker = worker
        self._known: set[str] = set()
        self._known_at = float("-inf")
        self._known_loaded = False
        self._missed: dict[str, float] = {}  # gateway → when it was last looked up and not found

    def known_gateway(self, gateway_id: str) -> bool:
        """Whether the gateway is provisioned and not revoked, from a set read again every KNOWN_REFRESH_S (a
        revoked gateway is refused within that time); a gateway not in it is looked up alone, at most every
        MISS_REFRESH_S per gateway (one provisioned a moment ago is accepted at once, a flood from an unknown one
        costs a query per MISS_REFRESH_S)."""
        now = time.monotonic()
        age = now - self._known_at
        miss = gateway_id not in self._known and now - self._missed.get(gateway_id, float("-inf")) >= MISS_REFRESH_S
        if age >= KNOWN_REFRESH_S or miss:
            try:
                with Session(self.engine) as session:
                    if age < KNOWN_REFRESH_S:  # a miss: this gateway alone (one provisioned a moment ago)
                        one = session.get(Gateway, gateway_id)
                        if one is not None and one.provisioned and not one.revoked:
                            self._known.add(gateway_id)
                        else:
                            self._missed[gateway_id] = now
                        return gateway_id in self._known
                    rows = session.exec(select(Gateway.id).where(col(Gateway.provisioned),
                                                                 col(Gateway.revoked).is_(False))).all()
                self._known, self._known_loaded = set(rows), True
                self._missed.clear()
            except SQLAlchemyError as exc:
                # SQL down: the last list stands (the next try after KNOWN_REFRESH_S, not per message); before any
                # list was read, accept: the broker authenticated the gateway, and refusing would turn a database
                # outage into dead letters of good data
                log.warning("provisioned gateways not read (SQL unavailable; %s) error=%s", "using the last list"
                            if self._known_loaded else "accepting every gateway the broker let in", exc)
                if age < KNOWN_REFRESH_S:
                    self._missed[gateway_id] = now
                else:
                    self._known_at = now
                return self._known_loaded is False or gateway_id in self._known
            self._known_at = time.monotonic()
        return gateway_id in self._known

    def unprovisioned_gateways(self) -> int:
        """How many gateways were registered by ingest but never provisioned (and are not revoked)."""
        with Session(self.engine) as session:
            return len(session.exec(select(Gateway.id).where(col(Gateway.provisioned).is_(False),
                                                             col(Gateway.revoked).is_(False))).all())

    def declare_gaps(self) -> int:
        """Holes of quiet streams older than the grace period become gap rows; returns how many."""
        with session_scope(self.engine) as session:
            return completeness.declare_due(session, grace_ms=self.gap_grace_ms)

    def dead_letters(self, refused: Sequence[Refused], *, worker: str, keep: int) -> None:
        """Keep refused messages with their payload (bounded to `keep` rows; docs/cloud.md)."""
        with session_scope(self.engine) as session:
            dead_letters.record(session, refused, worker=worker, keep=keep)

    def apply(self, works: Sequence[SqlWork]) -> ApplyResult:
        """Write every work item in one transaction (all or nothing): alert events, status and reported at once;
        what the batch saw of gateways, sensors and seq streams as one journal row (merged later by `merge`), or
        applied in the same transaction (without a journal, or for a batch with alert events)."""
        result = ApplyResult()
        if not works:
            return result
        observed = observed_in(works)
        # An alert event reads its sensor's row (the alert takes the sensor's profile): a batch with one applies
        # what earlier batches journalled and its own sightings at once (alert events are rare beside readings).
        inline = not self.journal or any(isinstance(w.event, AlertEvent) for w in works)
        if self.journal and inline:
            result.merged = self.merge()  # its own transaction: a refused row is dropped alone
        with session_scope(self.engine) as session:
            if inline:
                # Before any ORM row is loaded: the events below then read the gateway rows as updated.
                ingest_journal.apply_fleet(session, observed)
            for w in works:
                if isinstance(w.event, AlertEvent):
                    outcome = alerts.apply_event(session, event=w.event)
                    if outcome == "applied":
                        result.alert_events += 1
                    elif outcome == "duplicate":
                        result.alert_duplicates += 1
                    else:
                        result.alert_refused += 1
                elif isinstance(w.event, Status):
                    fleet.apply_status(session, status=w.event)
                elif isinstance(w.event, Reported):
                    fleet.apply_reported(session, reported=w.event)
            if inline:
                result.gaps_opened += ingest_journal.apply_streams(session, observed, grace_ms=self.gap_grace_ms)
                result.spans = observed.spans
            else:
                ingest_journal.record(session, observed, worker=self.worker, created_at=observed.heard_at)
        return result

    def merge(self, *, written_before: int | None = None, budget_s: float = MERGE_ALONE_BUDGET_S
              ) -> ingest_journal.Merged:
        """Merge the oldest journal rows (any worker's) into gateways, sensors and seq streams (only when one of them
        was written before `written_before`, if given: ingest_journal.merge).

        When the database refuses the merge for its data (`caused_by_data`: a value a column cannot hold, a bug met
        by one shape of batch), the rows are merged one by one, each claimed by its id, and a row refused on its own
        is dropped, counted by the caller (`Merged.dropped`) and logged with its id: one batch's last-seen times and
        seqs must not stop every later merge (its readings are stored; its seqs then show as a gap). That pass stops
        after `budget_s` (the rest waits for the next merge), so it cannot hold a worker's writer for long."""
        try:
            with session_scope(self.engine) as session:
                return ingest_journal.merge(session, grace_ms=self.gap_grace_ms, written_before=written_before)
        except Exception as exc:
            if not caused_by_data(exc):
                raise
            log.warning("journal merge refused for its data, merging row by row error=%s", short_reason(exc))
        total = ingest_journal.Merged()
        deadline = time.monotonic() + budget_s
        with session_scope(self.engine) as session:
            ids = ingest_journal.waiting_ids(session)
        for row_id in ids:
            if time.monotonic() > deadline:
                total.more = True
                break
            try:
                with session_scope(self.engine) as session:
                    one = ingest_journal.merge(session, grace_ms=self.gap_grace_ms, only_id=row_id)
            except Exception as exc:
                if not caused_by_data(exc):
                    raise
                with session_scope(self.engine) as session:
                    ingest_journal.drop(session, row_id)  # this row, by its id (another merge may hold the next)
                total.dropped += 1
                log.error("journal row dropped (the database refuses to merge it) id=%d error=%s", row_id,
                          short_reason(exc))
                continue
            total.rows += one.rows
            total.gaps_opened += one.gaps_opened
            total.spans += one.spans
        return total


def observed_in(works: Sequence[SqlWork]) -> Observed:
    """What a batch saw of gateways (by their messages' time), sensors and seq streams. The works are left as they
    were (a held batch is applied again; a batch the database refuses is applied message by message)."""
    observed = Observed(heard_at=now_ms())
    sensors = observed.sensors
    streams = observed.streams
    sensor_streams: dict[str, StreamObs] = {}  # the sensors' streams by sensor id (no key built per message)
    spans: list[tuple[int, int]] = []
    for w in works:
        gateway = w.gateway
        observed.gateway(gateway, w.seen_at)
        spans += w.spans
        if w.stream is not None:
            kind, seq, ts = w.stream
            observed.stream(kind, gateway).add(seq, ts)
        for sensor_id, s in w.sensors.items():
            obs = sensors.get(sensor_id)
            if obs is None:  # the common case at fleet shape: a sensor once a batch
                sensors[sensor_id] = fleet.SensorObs(gateway, s.profile, s.first_ts, s.last_ts)
                stream = sensor_streams[sensor_id] = StreamObs("sensor", gateway, sensor_id)
                streams[stream_key("sensor", sensor_id)] = stream
            else:
                obs.absorb(gateway, s.profile, s.first_ts, s.last_ts)
                stream = sensor_streams[sensor_id]
            s.add_runs_to(stream)
    observed.add_spans([list(span) for span in spans])
    return observed
