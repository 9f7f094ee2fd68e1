"""One sensor's recent readings for the model's windows: four numpy columns in a sliding buffer, not Python
objects (32 bytes a reading instead of about 130), read by the feature code as array views without copying."""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

from protocol.messages import Reading

INITIAL_CAPACITY: Final = 64


class SensorHistory:
    """Readings of one sensor in arrival order, the oldest dropped once they are `keep_ms` older than the newest.

    The columns live in arrays of a capacity that doubles when the kept span needs it; readings that fell out of
    the span are dropped by moving the start, and the live part is moved to the front only when the end of the
    arrays is reached (amortised O(1) per reading).
    """

    __slots__ = ("_battery", "_hi", "_lo", "_rh", "_temp", "_ts", "first_ms", "last_scored_ms")

    def __init__(self, capacity: int = INITIAL_CAPACITY) -> None:
        self._ts: NDArray[np.int64] = np.zeros(capacity, dtype=np.int64)
        self._temp: NDArray[np.float64] = np.zeros(capacity)
        self._rh: NDArray[np.float64] = np.zeros(capacity)
        self._battery: NDArray[np.float64] = np.zeros(capacity)
        self._lo = 0
        self._hi = 0
        self.last_scored_ms = 0
        self.first_ms: int | None = None  # the first reading kept for this sensor (its history begins there)

    def __len__(self) -> int:
        return self._hi - self._lo

    @property
    def last_ms(self) -> int | None:
        """The newest reading's time (None while empty)."""
        return int(self._ts[self._hi - 1]) if self._hi > self._lo else None

    @property
    def capacity(self) -> int:
        """Readings the arrays hold before they grow."""
        return len(self._ts)

    def add(self, r: Reading, keep_ms: int | None = None) -> None:
        """Append `r` (missing values as NaN) and drop what is more than `keep_ms` older than it (None: keep all,
        until `trim`)."""
        self.first_ms = r.ts if self.first_ms is None else self.first_ms
        if self._hi == len(self._ts):
            self._make_room()
        i = self._hi
        self._ts[i] = r.ts
        self._temp[i] = np.nan if r.temp_c is None else r.temp_c
        self._rh[i] = np.nan if r.rh_pct is None else r.rh_pct
        self._battery[i] = np.nan if r.battery_mv is None else float(r.battery_mv)
        self._hi += 1
        if keep_ms is not None:
            self.trim(keep_ms)

    def trim(self, keep_ms: int) -> None:
        """Drop from the front what is more than `keep_ms` older than the newest reading (the same rule as a deque
        popped from the left)."""
        if self._hi == self._lo:
            return
        newest = int(self._ts[self._hi - 1])
        lo = self._lo
        while lo < self._hi and newest - int(self._ts[lo]) > keep_ms:
            lo += 1
        self._lo = lo

    def _make_room(self) -> None:
        live = self._hi - self._lo
        capacity = len(self._ts)
        target = capacity * 2 if live > capacity // 2 else capacity  # grow only when the live part needs it
        for name in ("_ts", "_temp", "_rh", "_battery"):
            old = getattr(self, name)
            new = np.zeros(target, dtype=old.dtype) if target != capacity else old
            new[:live] = old[self._lo:self._hi]
            setattr(self, name, new)
        self._lo, self._hi = 0, live

    def columns(self) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """Views of the kept readings (oldest first): ts, temp, rh, battery. Valid until the next `add`."""
        lo, hi = self._lo, self._hi
        return self._ts[lo:hi], self._temp[lo:hi], self._rh[lo:hi], self._battery[lo:hi]
