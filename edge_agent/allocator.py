"""glibc's allocator set for a long-running agent: its thresholds at start, freed pages handed back after each tick."""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from typing import Final

MMAP_THRESHOLD_BYTES: Final = 2 * 1024 * 1024
ARENAS: Final = 2
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8  # <malloc.h>

_trim: Callable[[int], int] | None = None  # malloc_trim, once `configure` found glibc


def configure() -> bool:
    """Serve blocks under 2 MiB from the heap and larger ones from fresh mappings, with two arenas for the agent's
    threads; returns whether glibc took every setting (musl, macOS: nothing to set). By default glibc raises its mmap
    threshold after the first large free, so a tick's big arrays came from the heap and stayed resident once freed
    (46 MiB of 160 for 5,000 tags at 1 Hz, `agent_rss_5000_tags_1hz`). A low threshold (128 KiB, tried) made every
    array of a tick a fresh mapping, paid for in page faults: the windows of 5,000 tags took twice the CPU. So the
    threshold sits above what a pass over 1,024 sensors' rings allocates (`history.PASS_ROWS`) and `trim` hands the
    heap's free pages back after each tick (docs/decisions.md)."""
    global _trim
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        mallopt, malloc_trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError, TypeError):
        return False
    taken = [mallopt(option, value) == 1 for option, value in ((_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
                                                               (_M_TRIM_THRESHOLD, MMAP_THRESHOLD_BYTES),
                                                               (_M_ARENA_MAX, ARENAS))]  # mallopt: 1 if taken
    malloc_trim.argtypes = [ctypes.c_size_t]
    _trim = malloc_trim
    return all(taken)


def trim() -> None:
    """Hand the free pages of every arena back to the kernel (glibc's `malloc_trim(0)`, ~1 ms): the next tick
    faults in what it needs, and the resident size between ticks is what the agent keeps, not its last tick's
    arrays. Nothing before `configure` or without glibc."""
    if _trim is not None:
        _trim(0)
