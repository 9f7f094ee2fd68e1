"""Ambient air around each space: day/night cycle, the route a truck drives, weather (vectorised)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from firmware_sim.physics import FloatArray


@dataclass(frozen=True)
class Site:
    """Where a space stands: mean and day/night swing of outside air (°C), route variability, humidity."""

    name: str
    mean_c: float
    day_swing_c: float
    route_sd_c: float  # a moving truck passes warmer and cooler regions, stops in the sun
    mean_rh_pct: float


SITES: Final[dict[str, Site]] = {
    s.name: s
    for s in (
        Site("truck_summer", 27.0, 6.0, 2.5, 55.0),
        Site("truck_winter", -4.0, 4.0, 2.0, 80.0),
        Site("warehouse", 18.0, 2.0, 0.0, 50.0),
    )
}
# Where each profile's spaces usually stand (drawn per space, seeded).
SITES_FOR_PROFILE: Final[dict[str, tuple[str, ...]]] = {
    "frozen": ("truck_summer", "truck_winter", "warehouse"),
    "chilled": ("truck_summer", "truck_winter", "warehouse"),
    "pharma_2_8": ("truck_summer", "truck_winter", "warehouse"),
    "ambient": ("truck_summer", "truck_winter", "warehouse"),
}
PEAK_HOUR_LOCAL: Final = 15.0
ROUTE_SEGMENT_S: Final = 2 * 3600.0


def ambient_series(sites: list[str], t_s: FloatArray, start_ms: int,
                   rng: np.random.Generator, utc_offset_h: float = 0.0) -> tuple[FloatArray, FloatArray]:
    """Ambient temperature and RH, shape (len(t_s), len(sites)), at simulated seconds `t_s` after `start_ms`.

    The day/night cycle follows the sites' local time, `utc_offset_h` hours ahead of UTC."""
    table = [SITES[s] for s in sites]
    mean = np.array([s.mean_c for s in table]) + rng.normal(0.0, 2.0, len(table))
    swing = np.array([s.day_swing_c for s in table])
    route_sd = np.array([s.route_sd_c for s in table])
    hours = ((start_ms / 1000.0 + t_s) / 3600.0 + utc_offset_h) % 24.0
    day = np.cos(2 * np.pi * (hours - PEAK_HOUR_LOCAL) / 24.0)[:, None] * swing
    # Route: a new region every ~2 h, blended linearly so the air never jumps.
    knots = np.arange(0.0, float(t_s[-1]) + 2 * ROUTE_SEGMENT_S, ROUTE_SEGMENT_S) if len(t_s) else np.zeros(1)
    offsets = rng.normal(0.0, 1.0, (len(knots), len(table))) * route_sd
    position = np.clip(t_s / ROUTE_SEGMENT_S, 0.0, len(knots) - 1.000001)
    left = position.astype(np.int64)
    blend = (position - left)[:, None]
    route = offsets[left] * (1.0 - blend) + offsets[left + 1] * blend
    temp = mean + day + route
    rh = np.array([s.mean_rh_pct for s in table]) - 1.5 * (day + route)
    return temp, np.clip(rh, 15.0, 98.0)
