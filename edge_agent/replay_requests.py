"""The gateway's side of `replay`: the cloud found a gap in a stream and asks for those seqs again.

Requests are validated like every other message; bad ones are counted and logged, never raised.
"""

from __future__ import annotations

import logging

from edge_agent.metrics import AgentMetrics
from edge_agent.outbox import Outbox
from protocol.codec import ProtocolError, decode
from protocol.messages import Replay

log = logging.getLogger(__name__)


class ReplayHandler:
    """Decodes a replay request and re-queues the kept messages it names."""

    def __init__(self, gateway_id: str, outbox: Outbox, metrics: AgentMetrics) -> None:
        self.gateway_id = gateway_id
        self.outbox = outbox
        self.metrics = metrics

    def handle(self, payload: bytes) -> int:
        """Re-queue what the request names and the outbox still keeps; returns how many messages."""
        try:
            request = decode(payload, Replay)
        except ProtocolError as exc:
            self._refuse(exc.reason, exc.detail)
            return 0
        if request.gateway != self.gateway_id:
            self._refuse("gateway_mismatch", f"request names gateway {request.gateway!r}")
            return 0
        found = self.outbox.replay(request.stream, request.first_seq, request.last_seq)
        self.metrics.replayed.labels(kind=request.stream).inc(found)
        wanted = request.last_seq - request.first_seq + 1
        log.info("event=replay gateway=%s stream=%s first_seq=%d last_seq=%d requeued=%d not_kept=%d",
                 self.gateway_id, request.stream, request.first_seq, request.last_seq, found, wanted - found)
        return found

    def _refuse(self, reason: str, detail: str) -> None:
        self.metrics.replay_rejected.labels(reason=reason).inc()
        log.warning("event=replay_rejected gateway=%s reason=%s detail=%r", self.gateway_id, reason, detail[:200])
