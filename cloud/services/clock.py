"""The wall clock in epoch milliseconds (one place, so tests and code agree on the unit)."""

from __future__ import annotations

import time


def now_ms() -> int:
    """Current UTC time in integer milliseconds since the epoch."""
    return int(time.time() * 1000)
