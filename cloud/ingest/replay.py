"""Asks gateways to re-send what a gap says is missing: a broker restart can lose messages it had already
PUBACKed (mosquitto 2.0 does not restore shared subscriptions), and the gateway keeps them a while."""

from __future__ import annotations

import logging
from typing import Final

from sqlalchemy.engine import Engine

from cloud.db.engine import session_scope
from cloud.services import completeness
from cloud.services.clock import now_ms
from protocol.messages import MAX_REPLAY_SPAN, Replay

log = logging.getLogger(__name__)

SWEEP_EVERY_S: Final = 5.0
RETRY_AFTER_S: Final = 600.0  # a request the gateway could not answer (offline, not kept) is asked again
MAX_ATTEMPTS: Final = 3


def due_requests(engine: Engine, *, open_for_s: float) -> list[Replay]:
    """Replay requests for the gateway-stream gaps open at least `open_for_s`, each claimed in SQL."""
    now = now_ms()
    with session_scope(engine) as session:
        gaps = completeness.claim_replays(session, now=now, open_for_ms=int(open_for_s * 1000),
                                          retry_ms=int(RETRY_AFTER_S * 1000), max_attempts=MAX_ATTEMPTS)
        requests = []
        for gap in gaps:
            if gap.gateway_id is None or gap.kind not in ("telemetry", "alerts"):
                continue
            last = min(gap.last_seq, gap.first_seq + MAX_REPLAY_SPAN - 1)
            requests.append(Replay(gateway=gap.gateway_id, stream="telemetry" if gap.kind == "telemetry" else "alerts",
                                   first_seq=gap.first_seq, last_seq=last, requested_at=now))
    return requests
