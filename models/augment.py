"""Synthetic faults injected into normal training series ("outlier exposure"): generic physical shapes, not the
simulator's incident code, so the autoencoder learns not to reconstruct them. No held-out data is involved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Final

import numpy as np

from models.data import Series, series_raw_windows
from models.features import FeatureSpec, FloatArray

NDArrayBool = np.ndarray
Fault = Callable[[Series, NDArrayBool, np.random.Generator], Series]


def _minutes_since(series: Series, start: NDArrayBool) -> np.ndarray:
    t0 = series.ts_ms[np.argmax(start)]
    return np.where(start, (series.ts_ms - t0) / 60_000.0, 0.0)


def warming(series: Series, after: NDArrayBool, rng: np.random.Generator) -> Series:
    """Cooling stops: a steady rise (0.02–0.15 °C/min) from the level at onset, no more cycles."""
    minutes = _minutes_since(series, after)
    level = series.temp_c[np.argmax(after)]
    rate = rng.uniform(0.02, 0.15)
    noise = rng.normal(0.0, 0.02, len(minutes))
    temp = np.where(after, level + rate * minutes + noise, series.temp_c)
    return replace(series, temp_c=temp)


def drift(series: Series, after: NDArrayBool, rng: np.random.Generator) -> Series:
    """The sensor drifts (±0.003–0.01 °C/min) while the space is fine: cycles stay, the level walks."""
    sign = rng.choice([-1.0, 1.0])
    return replace(series, temp_c=series.temp_c + sign * rng.uniform(0.003, 0.01) * _minutes_since(series, after))


def stuck(series: Series, after: NDArrayBool, rng: np.random.Generator) -> Series:
    """The sensor hangs: temperature and humidity repeat their value at onset."""
    i = int(np.argmax(after))
    return replace(series, temp_c=np.where(after, series.temp_c[i], series.temp_c),
                   rh_pct=np.where(after, series.rh_pct[i], series.rh_pct))


def spikes(series: Series, after: NDArrayBool, rng: np.random.Generator) -> Series:
    """A loose contact: 10–20 % of readings jump by 3–20 °C."""
    hit = after & (rng.random(len(after)) < rng.uniform(0.1, 0.2))
    jump = rng.uniform(3.0, 20.0, len(after)) * rng.choice([-1.0, 1.0], len(after))
    return replace(series, temp_c=np.where(hit, series.temp_c + jump, series.temp_c))


def shift(series: Series, after: NDArrayBool, rng: np.random.Generator) -> Series:
    """The space sits 3–12 °C away from where it belongs (wrong setpoint, wrong place)."""
    offset = rng.uniform(3.0, 12.0) * rng.choice([-1.0, 1.0])
    return replace(series, temp_c=np.where(after, series.temp_c + offset, series.temp_c))


# Each fault, and how old it must be at a window's end before that window counts as anomalous (younger ones are
# not yet distinguishable from normal and would only teach the network noise).
FAULTS: Final[tuple[tuple[Fault, float], ...]] = (
    (warming, 20.0), (drift, 120.0), (stuck, 30.0), (spikes, 3.0), (shift, 3.0),
)


def fault_windows(spec: FeatureSpec, series: list[Series], *, seed: int, stride: int) -> FloatArray:
    """Raw windows [N, window, channels] of every fault injected once into every series (random onset)."""
    rng = np.random.default_rng([seed, 0xFA])
    out = []
    for s in series:
        if len(s.ts_ms) < 2 * spec.window:
            continue
        for fault, min_age_min in FAULTS:
            onset = int(rng.integers(spec.window, len(s.ts_ms) - spec.window))
            after = np.arange(len(s.ts_ms)) >= onset
            ends, raw = series_raw_windows(spec, fault(s, after, rng), stride=stride)
            keep = ends >= s.ts_ms[onset] + min_age_min * 60_000
            out.append(raw[keep])
    if not out:
        return np.zeros((0, spec.window, spec.channels), dtype=np.float32)
    return np.concatenate(out)
