"""The agent's allocator settings (edge_agent/allocator.py): on glibc, blocks a tick frees in the middle of the heap
stay resident until `trim`, which hands them back; without `configure`, `trim` does nothing."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

_PROBE = r"""
import json, sys
from edge_agent import allocator

def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

configured = allocator.configure() if sys.argv[1] == "configure" else False
blocks = [bytearray(1024 * 1024) for _ in range(64)]  # a tick's arrays: under the mmap threshold, from the heap
pin = bytearray(64 * 1024)  # something the tick keeps, above them: the heap's top cannot shrink past it
blocks.clear()
before = rss_mib()
allocator.trim()
print(json.dumps({"configured": configured, "freed_but_resident": before, "after_trim": rss_mib()}))
"""


def _probe(mode: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True, timeout=60)
    result: dict[str, float] = json.loads(out.stdout)
    return result


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc and /proc are Linux's")
def test_a_ticks_freed_arrays_go_back_to_the_kernel_after_trim() -> None:
    got = _probe("configure")
    assert got["configured"]
    assert got["freed_but_resident"] - got["after_trim"] > 32, got  # of the 64 MiB freed under the pinned block


def test_trim_does_nothing_before_configure() -> None:
    got = _probe("plain")
    assert not got["configured"]
    assert abs(got["freed_but_resident"] - got["after_trim"]) < 8, got
