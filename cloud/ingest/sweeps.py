"""The ingest worker's periodic SQL sweeps: holes become gaps, old gaps become replay requests to their gateways,
and dead letters ops asked to replay run through the normal path again."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from cloud.config import Settings
from cloud.db.engine import session_scope
from cloud.ingest.failures import short_reason
from cloud.ingest.metrics import IngestMetrics
from cloud.ingest.replay import due_requests
from cloud.ingest.sql_sink import SqlSink
from cloud.services import dead_letters
from protocol.codec import encode
from protocol.topics import topic

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], object]  # (topic, payload) at QoS 1
ReplayOne = Callable[[str, bytes], tuple[bool, str]]  # (topic, payload) → (stored, what happened)


@dataclass
class Sweeps:
    """One worker's sweeps; each is skipped while SQL is not ready, and a failing sweep is retried next time."""

    settings: Settings
    engine: Engine
    sql: SqlSink
    metrics: IngestMetrics
    publish: Publish
    replay_one: ReplayOne

    def run(self) -> None:
        """Every sweep once, in order."""
        self.declare_gaps()
        self.request_replays()
        self.replay_dead_letters()

    def declare_gaps(self) -> int:
        """Holes of streams that went quiet become gaps once older than the grace period."""
        try:
            opened = self.sql.declare_gaps()
        except SQLAlchemyError as exc:
            log.warning("gap sweep failed error=%s (next sweep retries)", short_reason(exc))
            return 0
        if opened:
            self.metrics.gaps_recorded.inc(opened)
            log.info("ingest gaps recorded count=%d (holes older than %.0f s)", opened,
                     self.settings.ingest_gap_grace_s)
        return opened

    def request_replays(self) -> int:
        """Ask gateways to re-send the telemetry/alert seqs of gaps open longer than the replay delay."""
        if self.settings.ingest_replay_after_s <= 0:
            return 0
        try:
            requests = due_requests(self.engine, open_for_s=self.settings.ingest_replay_after_s)
        except SQLAlchemyError as exc:
            log.warning("replay sweep failed error=%s (next sweep retries)", exc)
            return 0
        for request in requests:
            self.publish(topic(request.gateway, "replay"), encode(request))
            self.metrics.replays_requested.inc()
            log.info("replay requested gateway=%s stream=%s first_seq=%d last_seq=%d", request.gateway,
                     request.stream, request.first_seq, request.last_seq)
        return len(requests)

    def replay_dead_letters(self) -> int:
        """Run the dead letters ops asked to replay (`POST /api/v1/dead-letters/{id}/replay`) through the normal
        path: decode (without the future-timestamp check: ops decided), InfluxDB, SQL. Each row is claimed by one
        worker; its outcome (`replayed`, or `failed` with why) is written back."""
        try:
            with session_scope(self.engine) as session:
                claimed = [(d.id, d.topic, dead_letters.payload(d)) for d in dead_letters.claim_replays(session)]
        except SQLAlchemyError as exc:
            log.warning("dead-letter replay sweep failed error=%s (next sweep retries)", short_reason(exc))
            return 0
        for letter_id, topic_name, payload in claimed:
            assert letter_id is not None
            ok, note = self.replay_one(topic_name, payload)
            log.info("dead letter replayed id=%d topic=%s ok=%s note=%s", letter_id, topic_name, ok, note)
            try:
                with session_scope(self.engine) as session:
                    dead_letters.finish_replay(session, letter_id=letter_id, ok=ok, note=note)
            except SQLAlchemyError as exc:
                log.warning("dead-letter replay outcome not saved id=%d error=%s", letter_id, short_reason(exc))
        return len(claimed)
