"""Synthetic faults injected into normal training series ("outlier exposure"): generic physical shapes, not the
simulator's incident code: the classifier learns to tell them from normal windows, the autoencoder not to
reconstruct them. No held-out data is involved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final

import numpy as np

from models.runtime.features import FeatureSpec, FloatArray, raw_windows, window_ends
from models.training.data import MIN_STD, Series

NDArrayBool = np.ndarray
Fault = Callable[[Series, NDArrayBool, np.random.Generator], Series]


def _minutes_since(series: Series, start: NDArrayBool) -> np.ndarray:
    t0 = series.ts_ms[np.argmax(start)]
    return np.where(start, (series.ts_ms - t0) / 60_000.0, 0.0)


def warming(series: Series, after: NDArrayBool, rng: np.random.Generator) -> Series:
    """Cooling stops: a steady rise (0.005–0.15 °C/min, log-uniform: a loaded freezer warms slowly) from the level
    at onset, no more cycles."""
    minutes = _minutes_since(series, after)
    level = series.temp_c[np.argmax(after)]
    rate = float(np.exp(rng.uniform(np.log(0.005), np.log(0.15))))
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


def battery_sag(series: Series, after: NDArrayBool, rng: np.random.Generator) -> Series:
    """The cell sags: 150–900 mV lower from onset, then falling up to 0.5 mV/min further."""
    drop = rng.uniform(150.0, 900.0) + rng.uniform(0.0, 0.5) * _minutes_since(series, after)
    return replace(series, battery_mv=np.where(after, series.battery_mv - drop, series.battery_mv))


@dataclass(frozen=True)
class FaultKind:
    """A fault and which of its windows count as anomalous: none younger than `min_age_min` at the window's end
    (not yet distinguishable from normal; they would only teach noise), and with `above_normal_top` only those
    whose newest temperature is above the series' normal top (`NORMAL_TOP_PERCENTILE` + `NORMAL_TOP_MARGIN_C`)
    and at most `MAX_AGE_H` after onset: until then a space that stopped cooling looks exactly like a normal
    off-cycle, and a classifier taught otherwise alerts on every off-cycle."""

    inject: Fault
    min_age_min: float
    above_normal_top: bool = False


NORMAL_TOP_PERCENTILE: Final = 90.0
NORMAL_TOP_MARGIN_C: Final = 0.5
MAX_AGE_H: Final = 6.0
FAULTS: Final[tuple[FaultKind, ...]] = (
    FaultKind(warming, 20.0, above_normal_top=True), FaultKind(drift, 120.0), FaultKind(stuck, 30.0),
    FaultKind(spikes, 3.0), FaultKind(battery_sag, 3.0),
)
# No level shift among them: a space that sits at another level is the hard rules' to judge against the profile's
# band, and a model taught that a step is a fault alarms at every setpoint change (docs/decisions.md).


@dataclass(frozen=True)
class Injected:
    """One fault injected into one normal series from `onset` (an index into its readings)."""

    kind: FaultKind
    series: Series
    onset: int
    normal_top: float  # the original series' normal top (see `FaultKind`)
    original: Series  # the same readings without the fault


def inject_faults(series: list[Series], *, seed: int, min_steps: int) -> list[Injected]:
    """Every fault injected once into every series of at least `2 * min_steps` readings, at a random onset."""
    rng = np.random.default_rng([seed, 0xFA])
    out = []
    for s in series:
        if len(s.ts_ms) < 2 * min_steps:
            continue
        top = float(np.nanpercentile(s.temp_c, NORMAL_TOP_PERCENTILE)) + NORMAL_TOP_MARGIN_C
        for kind in FAULTS:
            onset = int(rng.integers(min_steps, len(s.ts_ms) - min_steps))
            after = np.arange(len(s.ts_ms)) >= onset
            out.append(Injected(kind, kind.inject(s, after, rng), onset, top, s))
    return out


def fault_windows(spec: FeatureSpec, series: list[Series], *, seed: int, stride: int) -> FloatArray:
    """Raw windows [N, window, channels] of every fault injected once into every series (random onset).

    Only windows in which the fault shows count: some channel differs from the same window without the fault by at
    least that channel's smallest scale (`models.training.data.MIN_STD`). A fault on a channel the data lacks (a battery
    sag in a CSV without batteries) or one too slow to see yet at this cadence (a 0.005 °C/min rise in a 30 s
    window) would otherwise be a "fault" identical to normal, and the classifier would learn noise from it."""
    unit = np.array([MIN_STD.get(name, 0.1) for name in spec.features], dtype=np.float32)
    out = []
    for item in inject_faults(series, seed=seed, min_steps=spec.window):
        faulty, kind = item.series, item.kind
        ends = window_ends(spec, faulty.ts_ms)[::stride]
        raw, usable = raw_windows(spec, faulty.ts_ms, faulty.temp_c, faulty.rh_pct, faulty.battery_mv, end_ms=ends)
        clean, _ = raw_windows(spec, item.original.ts_ms, item.original.temp_c, item.original.rh_pct,
                               item.original.battery_mv, end_ms=ends)
        with np.errstate(invalid="ignore"):
            shows = np.nanmax(np.where(np.isnan(raw - clean), 0.0, np.abs(raw - clean)) / unit, axis=(1, 2)) >= 1.0
        age_ms = ends - faulty.ts_ms[item.onset]
        keep = usable & shows & (age_ms >= kind.min_age_min * 60_000)
        if kind.above_normal_top:
            newest = faulty.temp_c[np.searchsorted(faulty.ts_ms, ends, side="right") - 1]
            keep &= (newest > item.normal_top) & (age_ms <= MAX_AGE_H * 3_600_000)
        out.append(raw[keep])
    if not out:
        return np.zeros((0, spec.window, spec.channels), dtype=np.float32)
    return np.concatenate(out)


RECOVERY_SETTLE_MIN: Final = 60.0  # the excursion's tail has decayed (4 time constants of 15 min)


def recovered_excursion_windows(spec: FeatureSpec, series: list[Series], *, seed: int, stride: int) -> FloatArray:
    """Normal windows after a warm excursion that has ended (a door closed, power back): the space is back in its
    own cycle while `temp_drift`'s baseline still holds the warm hours, so the recovered space reads degrees below
    that baseline. Trained as *normal*: the recovery is not a fault (the excursion itself was the rules' and the
    model's to alert on), and without these windows the classifier had only the synthetic `drift` fault to liken
    them to (docs/decisions.md)."""
    empty = np.zeros((0, spec.window, spec.channels), dtype=np.float32)
    if not {"temp_drift", "temp_drift_z"} & set(spec.features):
        return empty
    rng = np.random.default_rng([seed, 0xEC])
    looks_back_ms = spec.window_ms * spec.baseline_windows
    out = []
    for s in series:
        if len(s.ts_ms) < 4 * spec.window:
            continue
        onset = int(rng.integers(spec.window, len(s.ts_ms) - 2 * spec.window))
        duration_min, rise = float(rng.uniform(30.0, 240.0)), float(np.exp(rng.uniform(np.log(3.0), np.log(40.0))))
        minutes = (s.ts_ms - s.ts_ms[onset]) / 60_000.0
        peak = rise * (1.0 - np.exp(-duration_min / 20.0))
        since, after = np.maximum(minutes, 0.0), np.maximum(minutes - duration_min, 0.0)  # no overflow in exp
        bump = np.where(minutes < 0, 0.0, np.where(minutes < duration_min, rise * (1.0 - np.exp(-since / 20.0)),
                                                   peak * np.exp(-after / 15.0)))
        bumped = replace(s, temp_c=s.temp_c + bump)
        end_ms = s.ts_ms[onset] + duration_min * 60_000
        ends = window_ends(spec, s.ts_ms)[::stride]
        keep = (ends >= end_ms + RECOVERY_SETTLE_MIN * 60_000 + spec.window_ms) & (ends <= end_ms + looks_back_ms)
        if not keep.any():
            continue
        raw, usable = raw_windows(spec, bumped.ts_ms, bumped.temp_c, bumped.rh_pct, bumped.battery_mv,
                                  end_ms=ends[keep])
        out.append(raw[usable])
    return np.concatenate(out) if out else empty
