"""The gateway's own health for the `status` message: CPU and memory of this process, uptime."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path


def rss_mb() -> float | None:
    """Resident memory of this process in MiB (Linux /proc; None elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@dataclass
class CpuMeter:
    """CPU used by this process since the previous call, as % of one core."""

    _wall: float = field(default_factory=time.monotonic)
    _cpu: float = field(default_factory=time.process_time)
    started: float = field(default_factory=time.monotonic)

    def percent(self) -> float:
        wall, cpu = time.monotonic(), time.process_time()
        elapsed = wall - self._wall
        used = (cpu - self._cpu) / elapsed * 100 if elapsed > 0 else 0.0
        self._wall, self._cpu = wall, cpu
        return round(min(used, 100.0 * (os.cpu_count() or 1)), 2)

    def uptime_s(self) -> float:
        return round(time.monotonic() - self.started, 1)
