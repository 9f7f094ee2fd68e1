"""The rollout controller: a thread in the API process that advances every active rollout from the `reported`
state ingest stored in SQL, one transaction (with the rollout row locked) per rollout per tick."""

from __future__ import annotations

import logging

from sqlalchemy.engine import Engine
from sqlmodel import Session

from cloud.db.engine import session_scope
from cloud.db.rollouts import Rollout
from cloud.periodic import PeriodicThread
from cloud.services import rollouts
from cloud.services.desired import DesiredPublisher

log = logging.getLogger(__name__)


class RolloutController:
    """`step()` once, or `start()` a daemon thread that steps every `interval_s` until `stop()`."""

    def __init__(self, engine: Engine, publisher: DesiredPublisher, *, base_url: str, interval_s: float) -> None:
        self.engine = engine
        self.publisher = publisher
        self.base_url = base_url
        self.interval_s = interval_s
        self._thread = PeriodicThread("rollout-controller", interval_s, self.step)

    def step(self) -> int:
        """Advance each active rollout in its own transaction; returns how many changed."""
        with Session(self.engine) as session:
            ids = rollouts.active_ids(session)
        changed = 0
        for rollout_id in ids:
            try:
                with session_scope(self.engine) as session:
                    rollout = session.get(Rollout, rollout_id, with_for_update=True)
                    if rollout is not None and rollouts.advance(session, rollout=rollout, publisher=self.publisher,
                                                                base_url=self.base_url):
                        changed += 1
            except Exception:  # one rollout's failure (broker away, DB busy) must not stop the others
                log.exception("rollout step failed rollout=%d; retrying next tick", rollout_id)
        return changed

    def start(self) -> RolloutController:
        """Run in a daemon thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread (waits for the current step)."""
        self._thread.stop()
