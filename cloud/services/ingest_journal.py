"""The ingest journal: what stored batches saw of gateways, sensors and seq streams, merged into their rows.

A batch's SQL transaction (before its messages are acknowledged) inserts one journal row instead of updating a
row per gateway, sensor and stream: at fleet shape that was most of a worker's SQL time, and two workers
interleaving a gateway's batches contended for the same rows. Any worker merges the journal on a timer
(`COLDWATCH_INGEST_MERGE_S`): it claims the oldest rows (SKIP LOCKED on PostgreSQL, so two workers merge different
rows), folds them into one `Observed`, applies it with the bulk statements of `fleet` and `completeness`, and
deletes them in the same transaction. Nothing acknowledged is lost to a crash (the rows wait for the next merge),
and a merge's result does not depend on which worker saw which batch: each stream's seqs are unwrapped against
its stored high-water mark and applied in seq order (`completeness.observe`).
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from typing import Final

import msgspec
from sqlalchemy import Table, delete, func
from sqlalchemy import select as core_select
from sqlmodel import Session

from cloud.db.ingest import IngestJournal
from cloud.services import completeness, fleet
from cloud.services.completeness import StreamObs
from cloud.services.fleet import SensorObs

SPAN_JOIN_MS: Final = 60_000  # time spans closer than this are one (rollups are recomputed by the minute)
MERGE_ROWS: Final = 500  # journal rows a merge claims at most (a worker's batches of ~1 minute at fleet shape)


class Observed(msgspec.Struct, array_like=True, gc=False):
    """What one batch, or the batches of one merge, saw: gateways by newest message time, sensors, seq streams, and
    when the cloud heard them (the silence watchdog's clock)."""

    heard_at: int
    gateways: dict[str, int] = msgspec.field(default_factory=dict)
    sensors: dict[str, SensorObs] = msgspec.field(default_factory=dict)
    streams: dict[str, StreamObs] = msgspec.field(default_factory=dict)
    # when each gateway was last heard, once batches heard at different times are folded (else: `heard_at`)
    heard: dict[str, int] = msgspec.field(default_factory=dict)
    # the stored readings' time spans [start, end] (ms): the rollups the merging worker redoes (one worker a span,
    # whichever worker stored it)
    spans: list[list[int]] = msgspec.field(default_factory=list)

    def add_spans(self, spans: list[list[int]]) -> None:
        """Time spans more, kept merged (spans less than a rollup minute apart become one)."""
        merged: list[list[int]] = []
        for start, end in sorted(self.spans + spans):
            if merged and start <= merged[-1][1] + SPAN_JOIN_MS:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        self.spans = merged

    def gateway(self, gateway_id: str, seen_at: int) -> None:
        """A message from `gateway_id` stamped `seen_at`."""
        self.gateways[gateway_id] = max(self.gateways.get(gateway_id, seen_at), seen_at)

    def stream(self, kind: str, gateway_id: str, sensor_id: str | None = None) -> StreamObs:
        """The seq stream `kind` of the gateway (telemetry, alerts) or of the sensor, to add seqs to."""
        key = completeness.stream_key(kind, sensor_id if sensor_id is not None else gateway_id)
        obs = self.streams.get(key)
        if obs is None:
            obs = self.streams[key] = StreamObs(kind, gateway_id, sensor_id)
        return obs

    def fold(self, other: Observed) -> None:
        """Add what `other` saw (taking its objects over): `gateway` spelled out, as a merge folds every batch's
        thousands of entries at fleet shape."""
        if not self.heard:
            self.heard = dict.fromkeys(self.gateways, self.heard_at)
        self.heard_at = max(self.heard_at, other.heard_at)
        gateways, heard, heard_at = self.gateways, self.heard, other.heard_at
        for gateway_id, seen_at in other.gateways.items():
            if seen_at > gateways.get(gateway_id, -1):
                gateways[gateway_id] = seen_at
            if heard_at > heard.get(gateway_id, -1):
                heard[gateway_id] = heard_at
        sensors = self.sensors
        for sensor_id, obs in other.sensors.items():
            prev = sensors.get(sensor_id)
            if prev is None:
                sensors[sensor_id] = obs
                continue
            prev.absorb(obs.gateway_id, obs.profile, obs.first_ts, obs.last_ts)
        if other.spans:
            self.add_spans(other.spans)
        streams = self.streams
        for key, theirs in other.streams.items():
            mine = streams.get(key)
            if mine is None:
                streams[key] = theirs
            else:
                mine.extend(theirs.runs)


_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(Observed)


@dataclass(slots=True)
class Merged:
    """What one merge did."""

    rows: int = 0
    gaps_opened: int = 0
    more: bool = False  # rows were left for the next merge (it may run at once)
    spans: list[list[int]] = field(default_factory=list)  # the merged batches' time spans: rollups to redo
    dropped: int = 0  # rows the database refused to merge, deleted (SqlSink.merge)


def drop(session: Session, row_id: int) -> None:
    """Delete one journal row unmerged (one the database refuses to merge, see SqlSink.merge)."""
    session.execute(delete(_table()).where(_table().c.id == row_id))


def record(session: Session, observed: Observed, *, worker: str, created_at: int) -> None:
    """Journal one batch (in the batch's transaction)."""
    body = _encoder.encode(observed)
    session.execute(_table().insert(), [{"worker": worker, "created_at": created_at, "body": body}])


def apply_fleet(session: Session, observed: Observed) -> None:
    """Gateways and sensors: registered on first sight, their last-seen times moved forward."""
    if observed.gateways:
        fleet.ensure_gateways(session, seen=observed.gateways, heard_at=observed.heard_at, heard=observed.heard)
    if observed.sensors:
        fleet.observe_sensors(session, observed.sensors)


def apply_streams(session: Session, observed: Observed, *, grace_ms: int) -> int:
    """The seq streams; returns gaps opened."""
    if not observed.streams:
        return 0
    return completeness.observe(session, streams=observed.streams, grace_ms=grace_ms)


def merge(session: Session, *, grace_ms: int, limit: int = MERGE_ROWS, only_id: int | None = None,
          written_before: int | None = None) -> Merged:
    """Merge the oldest journal rows no other merge holds (or row `only_id` alone) into gateways, sensors and
    streams, and delete them. With `written_before`, nothing is merged unless one of them was written before then:
    with several workers merging on their own timers, the first to find rows that old merges them all and the others
    find none (a merge costs a row per stream it touches, however many batches it folds). Any of them, not the
    first: a worker whose clock runs ahead must not hold back every merge with its rows at the head."""
    table = _table()
    query = core_select(table.c.id, table.c.body, table.c.created_at)
    if only_id is not None:
        query = query.where(table.c.id == only_id)
    rows = session.execute(query.order_by(table.c.id).limit(limit).with_for_update(skip_locked=True)).all()
    if not rows or (written_before is not None and all(r[2] >= written_before for r in rows)):
        return Merged()
    observed = _folded([body for _, body, _ in rows])
    result = Merged(rows=len(rows), more=len(rows) == limit, spans=observed.spans)
    apply_fleet(session, observed)
    result.gaps_opened = apply_streams(session, observed, grace_ms=grace_ms)
    ids = [r[0] for r in rows]
    for start in range(0, len(ids), completeness.IN_CHUNK):
        session.execute(delete(table).where(table.c.id.in_(ids[start:start + completeness.IN_CHUNK])))
    return result


def _folded(bodies: list[bytes]) -> Observed:
    """The journal rows' bodies decoded and folded into one, with Python's cyclic collector paused meanwhile: a
    merge at fleet shape builds ~10,000 containers a row, none of which can be part of a cycle, and the collections
    their allocation set off cost 2-3× the decoding itself (msgspec's Structs here are `gc=False` for the same
    reason)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        observed = _decoder.decode(bodies[0])
        for body in bodies[1:]:
            observed.fold(_decoder.decode(body))
        return observed
    finally:
        if enabled:
            gc.enable()


def waiting_ids(session: Session, *, limit: int = MERGE_ROWS) -> list[int]:
    """The ids of the oldest journal rows (a merge that failed for its data tries them one by one)."""
    table = _table()
    return list(session.execute(core_select(table.c.id).order_by(table.c.id).limit(limit)).scalars())


def waiting(session: Session) -> int:
    """Journal rows not merged yet."""
    return int(session.execute(core_select(func.count()).select_from(_table())).scalar_one())


def _table() -> Table:
    table = getattr(IngestJournal, "__table__")  # noqa: B009 (SQLModel does not type it)
    assert isinstance(table, Table)
    return table
