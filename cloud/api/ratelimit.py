"""Login rate limiting: failed attempts per user name and per client address in a sliding window.

In memory, per API process (docs/cloud.md): enough to stop password guessing against one process; a fleet
of API processes behind a balancer multiplies the allowance by their number.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class LoginLimiter:
    """`blocked(keys)` → seconds to wait (0: go ahead); `failed(keys)` records a failure; `succeeded` clears."""

    def __init__(self, *, max_failures: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times

    def blocked(self, keys: list[str]) -> float:
        """Seconds until the oldest counted failure of the worst key leaves the window (0 when not blocked)."""
        now = self._clock()
        with self._lock:
            wait = 0.0
            for key in keys:
                times = self._recent(key, now)
                if len(times) >= self.max_failures:
                    wait = max(wait, times[0] + self.window_s - now)
            return wait

    def failed(self, keys: list[str]) -> None:
        """Count a failed login for each key."""
        now = self._clock()
        with self._lock:
            for key in keys:
                self._recent(key, now).append(now)
            if len(self._failures) > 100_000:  # bound memory under a spray of names
                self._failures = {k: v for k, v in self._failures.items() if v and v[-1] > now - self.window_s}

    def succeeded(self, username_key: str) -> None:
        """A successful login clears the user name's failures (not the address's)."""
        with self._lock:
            self._failures.pop(username_key, None)
