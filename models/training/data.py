"""Per-sensor series from simulator datasets (and CSV files), turned into windows with `models.runtime.features`.

Seed ranges are fixed here so that training, threshold calibration and the held-out suite never share a seed.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from models.runtime.features import FeatureSpec, FloatArray, raw_windows, window_ends
from models.training.simulated import Dataset, normal_dataset, scenario_dataset, scenario_names, scenario_profile
from protocol.profiles import PROFILES

TRAIN_SEEDS: Final = range(0, 1000)
VALIDATION_SEEDS: Final = range(5000, 6000)
HELD_OUT_SEEDS: Final = range(10_000, 11_000)
# Smallest scale per channel: the unit in which a deviation starts to matter. A channel that barely varies in
# training (a lost frame, a battery that sits still) must not dominate the score when it moves a little.
MIN_STD: Final = {"temp_c": 0.5, "temp_rate": 0.05, "cooling_duty": 0.25, "rh_pct": 5.0, "battery_mv": 20.0,
                  "battery_trend": 10.0, "missing": 1.0, "temp_dev": 0.1, "temp_drift": 0.25, "rh_dev": 2.0,
                  "temp_drift_z": 0.5}


@dataclass(frozen=True)
class Series:
    """One sensor's readings in time order (NaN = invalid)."""

    sensor: str
    profile: str
    ts_ms: NDArray[np.int64]
    temp_c: NDArray[np.float64]
    rh_pct: NDArray[np.float64]
    battery_mv: NDArray[np.float64]

    @property
    def days(self) -> float:
        """Time covered, in days."""
        return float(self.ts_ms[-1] - self.ts_ms[0]) / 86_400_000 if len(self.ts_ms) > 1 else 0.0


def series_of(dataset: Dataset) -> Iterator[Series]:
    """The per-sensor series of a `firmware_sim` Dataset (readings grouped by sensor, in time order)."""
    for mac in dataset.sensors:
        rows = dataset.for_sensor(mac)
        order = np.argsort(rows["ts_ms"], kind="stable")
        yield Series(sensor=str(mac), profile=str(rows["profile"][0]),
                     ts_ms=np.asarray(rows["ts_ms"], dtype=np.int64)[order],
                     temp_c=np.asarray(rows["temp_c"], dtype=np.float64)[order],
                     rh_pct=np.asarray(rows["rh_pct"], dtype=np.float64)[order],
                     battery_mv=np.asarray(rows["battery_mv"], dtype=np.float64)[order])


def series_raw_windows(spec: FeatureSpec, series: Series, *, stride: int = 1) -> tuple[NDArray[np.int64], FloatArray]:
    """Window ends (every `stride` sample periods) and the usable raw windows [N, window, channels] there."""
    ends = window_ends(spec, series.ts_ms)[::stride]
    raw, usable = raw_windows(spec, series.ts_ms, series.temp_c, series.rh_pct, series.battery_mv, end_ms=ends)
    return ends[usable], raw[usable]


def settled(series: Series, hours: float) -> Series:
    """`series` from `hours` after it first read inside its profile's band: a trip's pre-cool pull-down comes
    before that (it can take 9 h for a loaded freezer), and it is not the normal operation a model learns.
    Empty when the series never reaches its band."""
    band = PROFILES[series.profile]
    low = -np.inf if band.low_c is None else band.low_c
    high = np.inf if band.high_c is None else band.high_c
    inside = np.flatnonzero((series.temp_c >= low) & (series.temp_c <= high))
    start = series.ts_ms[inside[0]] + hours * 3_600_000 if len(inside) else np.iinfo(np.int64).max
    keep = series.ts_ms >= start
    return Series(series.sensor, series.profile, series.ts_ms[keep], series.temp_c[keep], series.rh_pct[keep],
                  series.battery_mv[keep])


def normal_series(profile: str, seeds: range, *, sensors: int, days: float, sample_period_s: float = 60.0,
                  settle_h: float = 1.0) -> list[Series]:
    """Normal-only simulator data (routine benign events included) for `profile`, one dataset per seed, each
    sensor from `settle_h` hours after its pull-down reached the band (see `settled`)."""
    out: list[Series] = []
    for seed in seeds:
        data = normal_dataset(profile, seed, sensors=sensors, days=days, sample_period_s=sample_period_s)
        out.extend(s for s in (settled(s, settle_h) for s in series_of(data)) if len(s.ts_ms))
    return out


def scenario_series(profile: str, seeds: range, *, days: float = 1.0, sample_period_s: float = 60.0) -> list[Series]:
    """The affected sensor of every simulator scenario of `profile` (incidents and benign events), per seed."""
    out: list[Series] = []
    for name in scenario_names():
        if scenario_profile(name) != profile:
            continue
        for seed in seeds:
            data = scenario_dataset(name, seed, days=days, sample_period_s=sample_period_s)
            out.append(next(iter(series_of(data))))
    return out


def fit_normalisation(spec: FeatureSpec, raw: FloatArray) -> FeatureSpec:
    """`spec` with per-channel mean / std measured over every step of the training windows."""
    flat = raw.reshape(-1, raw.shape[2]).astype(np.float64)
    with warnings.catch_warnings():  # a channel the data lacks (no humidity in a CSV) is all NaN: mean 0, std 1
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(flat, axis=0)
        spread = np.nanstd(flat, axis=0)
    floor = np.array([MIN_STD.get(name, 0.1) for name in spec.features])
    std = np.maximum(np.nan_to_num(spread, nan=1.0), floor)
    return spec.with_normalisation(np.nan_to_num(mean), std)


def chronological_split(series: list[Series], train_share: float = 0.8) -> tuple[list[Series], list[Series]]:
    """The first `train_share` of each sensor's readings for training, the rest for the threshold."""
    train_part: list[Series] = []
    validation: list[Series] = []
    for s in series:
        cut = int(len(s.ts_ms) * train_share)
        for part, lo, hi in ((train_part, 0, cut), (validation, cut, len(s.ts_ms))):
            part.append(Series(s.sensor, s.profile, s.ts_ms[lo:hi], s.temp_c[lo:hi], s.rh_pct[lo:hi],
                               s.battery_mv[lo:hi]))
    return train_part, validation
