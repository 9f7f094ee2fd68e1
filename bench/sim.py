"""Simulator benchmarks: fleet frame generation (200 gateways × 25 tags) against same-run numpy/struct references."""

from __future__ import annotations

import struct
import time

import numpy as np

from bench.results import Result
from firmware_sim.loadgen import fleet_chunks

GATEWAYS, SENSORS, TICKS = 200, 25, 240


def _fleet_rate() -> float:
    """Readings per second, physics to datagram bytes, plan set-up included (best of 2)."""
    best = 0.0
    for _ in range(2):
        t0 = time.perf_counter()
        readings = sum(chunk.readings for chunk in fleet_chunks(GATEWAYS, SENSORS, ticks=TICKS, chunk_ticks=120))
        best = max(best, readings / (time.perf_counter() - t0))
    return best


def _bare_numpy_rate() -> float:
    """The floor of any vectorised generator: draw and quantise arrays of the same size, nothing else."""
    rng = np.random.default_rng(1)
    t0 = time.perf_counter()
    for _ in range(TICKS // 120):
        temp = rng.normal(-20.0, 1.0, (120, GATEWAYS * SENSORS))
        rh = rng.normal(70.0, 2.0, (120, GATEWAYS * SENSORS))
        codes = np.rint(temp / 0.005).astype(np.int16), np.rint(rh / 0.0025).astype(np.uint16)
        del codes
    return TICKS * GATEWAYS * SENSORS / (time.perf_counter() - t0)


def _struct_rate(n: int = 50_000) -> float:
    """Per-frame Python: struct.pack of a RAWv2 frame from precomputed values (how a naive loop would do it)."""
    layout = struct.Struct(">BhHHhhhHBH6s")
    mac = bytes.fromhex("c20000000001")
    t0 = time.perf_counter()
    for i in range(n):
        layout.pack(5, -4000 + (i & 63), 28000, 51325, 0, 0, 1000, 0xA036, 0, i % 65535, mac)
    return n / (time.perf_counter() - t0)


def run() -> list[Result]:
    fleet = _fleet_rate()
    bare = _bare_numpy_rate()
    packed = _struct_rate()
    return [
        Result("sim_fleet_generation", fleet, "readings/s", "bare numpy draw+quantise of the same arrays",
               bare, higher_is_better=True),
        Result("sim_fleet_vs_struct", fleet, "readings/s", "per-frame struct.pack only (no physics)",
               packed, higher_is_better=True),
    ]
