"""A daemon thread that calls a step every interval until stopped, and outlives the step's failures: the loop the
API process's background workers share (rollout controller, notification dispatcher, silence watchdog)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class PeriodicThread:
    """`start()` runs `step` every `interval_s` in a daemon thread named `name`; `stop()` waits for the current
    step (at most `join_s`). An exception in a step is logged and the next one runs on time: a database away or
    locked must not end the worker."""

    def __init__(self, name: str, interval_s: float, step: Callable[[], object], *, join_s: float = 30.0) -> None:
        self.name = name
        self.interval_s = interval_s
        self.step = step
        self.join_s = join_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        log.info("%s started interval_s=%g", self.name, self.interval_s)
        while not self._stop.wait(self.interval_s):
            try:
                self.step()
            except Exception:
                log.exception("%s step failed; retrying next tick", self.name)
        log.info("%s stopped", self.name)

    def start(self) -> None:
        """Run in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (waits for the current step)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.join_s)
