"""Feature extraction shared by the gateway and training: windows resampled onto the sample period, normalised.

The default channels describe behaviour, not level: each temperature is taken against the window's own mean
(`temp_dev`) and against the sensor's own recent past (`temp_drift`), never as an absolute value; absolute level
against the profile's band is what the gateway's hard rules judge (docs/models.md).

numpy only (1.x and 2.x): the edge agent imports this module in the gateway's environment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["DEFAULT_FEATURES", "FeatureSpec", "FloatArray", "default_spec", "raw_windows", "sample_steps", "score",
           "window_ends", "window_features", "windows_at", "windows_from_steps"]

FloatArray = NDArray[np.float32]
# One sensor's readings as columns: ts (ms), temperature, humidity, battery (the last two may be absent).

# Per-step channels, in this order inside each step of the flattened vector. Level-free: a model trained on them
# does not alarm because a sensor runs at another level than its training data did.
DEFAULT_FEATURES: Final = ("temp_dev", "temp_drift", "temp_rate", "cooling_duty", "rh_dev", "battery_trend",
                           "missing")
# Absolute levels: still computed for models trained before the level-free channels (manifests name them).
LEVEL_FEATURES: Final = ("temp_c", "rh_pct", "battery_mv")
OPTIONAL_FEATURES: Final = ("temp_drift_z",)  # computed when a spec names it (docs/decisions.md)
DRIFT_FLOOR_C: Final = 0.1
BASELINE_MIN_COVER: Final = 0.5  # temp_drift needs readings over at least this share of its baseline span
KNOWN_FEATURES: Final = frozenset(DEFAULT_FEATURES + OPTIONAL_FEATURES + LEVEL_FEATURES)
# Channels an agent before 0.2 cannot compute: a manifest naming one declares that minimum agent version.
LEVEL_FREE_FEATURES: Final = frozenset({"temp_dev", "temp_drift", "temp_drift_z", "rh_dev"})
DEFAULT_BASELINE_WINDOWS: Final = 8  # `temp_drift` compares with this many window spans before the window
MIN_FRESH_FRACTION: Final = 0.5  # a window needs fresh temperatures in at least half its steps
COOLING_EPS_C_PER_MIN: Final = 0.005
FRESH_PERIODS: Final = 1.5
INPUT_CLIP: Final = 8.0  # normalised inputs end here (standard deviations)
RATE_STEPS: Final = 5  # temp_rate compares with the value this many steps earlier (one step is mostly noise)


@dataclass(frozen=True)
class FeatureSpec:
    """How a model's input vector is built: `window` steps of `sample_period_s`, each with `features` channels.

    The vector is time-major (oldest step first, newest last): `[step0 ch0, step0 ch1, ..., stepW-1 chC-1]`,
    each channel normalised with its own `mean` / `std` (one per entry of `features`).
    """

    window: int
    sample_period_s: float
    features: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    baseline_windows: int = DEFAULT_BASELINE_WINDOWS

    def __post_init__(self) -> None:
        if self.window < 2:
            raise ValueError("window must be at least 2 steps")
        if self.baseline_windows < 1:
            raise ValueError("baseline_windows must be at least 1")
        if self.sample_period_s <= 0:
            raise ValueError("sample_period_s must be positive")
        unknown = set(self.features) - KNOWN_FEATURES
        if unknown:
            raise ValueError(f"unknown features {sorted(unknown)}; known: {', '.join(DEFAULT_FEATURES)}")
        if len(self.mean) != len(self.features) or len(self.std) != len(self.features):
            raise ValueError("mean and std need one value per feature")
        if any(s <= 0 for s in self.std):
            raise ValueError("std values must be positive")

    @property
    def channels(self) -> int:
        """Channels per step."""
        return len(self.features)

    @property
    def input_size(self) -> int:
        """Length of one input vector (window × channels)."""
        return self.window * len(self.features)

    @property
    def window_ms(self) -> int:
        """The time one window covers."""
        return round(self.window * self.sample_period_s * 1000)

    @property
    def span_ms(self) -> int:
        """How much history one input needs (the window, and the baseline before it when `temp_drift` is used);
        the agent keeps at least this much per sensor."""
        looks_back = {"temp_drift", "temp_drift_z"} & set(self.features)
        return self.window_ms * (1 + (self.baseline_windows if looks_back else 0))

    @property
    def reach_ms(self) -> int:
        """How far before its end a window's readings may lie (the window and the baseline before it, whether the
        spec uses the baseline or not): what a gateway's step ring keeps of a sensor (edge_agent/detect/history.py)."""
        return (1 + self.baseline_windows) * self.window * round(self.sample_period_s * 1000)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (as stored in the manifest)."""
        return {"window": self.window, "sample_period_s": self.sample_period_s, "features": list(self.features),
                "mean": list(self.mean), "std": list(self.std), "baseline_windows": self.baseline_windows}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        """Inverse of `to_dict` (ValueError / KeyError / TypeError on malformed input)."""
        return cls(window=int(data["window"]), sample_period_s=float(data["sample_period_s"]),
                   features=tuple(str(f) for f in data["features"]),
                   mean=tuple(float(m) for m in data["mean"]), std=tuple(float(s) for s in data["std"]),
                   baseline_windows=int(data.get("baseline_windows", DEFAULT_BASELINE_WINDOWS)))

    def with_normalisation(self, mean: ArrayLike, std: ArrayLike) -> FeatureSpec:
        """The same spec with new normalisation constants (a std below 1e-3 is raised to it)."""
        std_arr = np.maximum(np.asarray(std, dtype=np.float64), 1e-3)
        return FeatureSpec(self.window, self.sample_period_s, self.features,
                           tuple(float(m) for m in np.asarray(mean, dtype=np.float64)),
                           tuple(float(s) for s in std_arr), self.baseline_windows)


def default_spec(*, window: int = 30, sample_period_s: float = 60.0,
                 features: tuple[str, ...] = DEFAULT_FEATURES) -> FeatureSpec:
    """A spec with the level-free features (or `features`) and identity normalisation (training replaces
    mean / std)."""
    n = len(features)
    return FeatureSpec(window, sample_period_s, features, (0.0,) * n, (1.0,) * n)


def _baseline_stats(ts: NDArray[np.int64], values: NDArray[np.float64], lo_ms: NDArray[np.int64],
                    hi_ms: NDArray[np.int64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean and standard deviation of the valid values with lo < ts <= hi, for each (lo, hi); NaN where they span
    less than half of it (a history that starts just before the window: the mean of a few minutes of a cooling
    cycle is no baseline, and every agent start would look like drift). Cumulative sums are taken about the first
    value, so a level of 90 °C loses no precision."""
    ok = ~np.isnan(values)
    ts_ok = ts[ok]
    v = values[ok] - (values[ok][0] if ok.any() else 0.0)
    csum = np.concatenate([[0.0], np.cumsum(v)])
    csq = np.concatenate([[0.0], np.cumsum(v * v)])
    a = np.searchsorted(ts_ok, lo_ms, side="right")
    b = np.searchsorted(ts_ok, hi_ms, side="right")
    count = (b - a).astype(np.float64)
    if len(ts_ok):
        span = ts_ok[np.maximum(b - 1, 0)] - ts_ok[np.minimum(a, len(ts_ok) - 1)]
        enough = (count > 0) & (span >= (hi_ms - lo_ms) * BASELINE_MIN_COVER)
    else:
        enough = np.zeros(len(lo_ms), dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(enough, (csum[b] - csum[a]) / np.maximum(count, 1.0), np.nan)
        var = np.where(enough, (csq[b] - csq[a]) / np.maximum(count, 1.0) - mean * mean, np.nan)
    base = values[ok][0] if ok.any() else 0.0
    return mean + base, np.sqrt(np.maximum(var, 0.0))


def _as_float(values: ArrayLike | None, n: int) -> NDArray[np.float64]:
    if values is None:
        return np.full(n, np.nan)
    out = np.asarray(values, dtype=np.float64)
    if out.shape != (n,):
        raise ValueError(f"every column needs {n} values, got shape {out.shape}")
    return out


def sample_steps(ts_ms: NDArray[np.int64], values: NDArray[np.float64], step_end: NDArray[np.int64],
                 window_start: NDArray[np.int64], period_ms: int) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """At each step end: the latest valid value at or before it within the window, and whether it is fresh
    (younger than 1.5 periods, so timing jitter does not look like a lost reading). NaN where the window has no
    valid value yet (filled later)."""
    return _sample_columns(ts_ms, (values,), step_end, window_start, period_ms)[0]


def _sample_columns(ts_ms: NDArray[np.int64], columns: tuple[NDArray[np.float64], ...], step_end: NDArray[np.int64],
                    window_start: NDArray[np.int64], period_ms: int,
                    ) -> list[tuple[NDArray[np.float64], NDArray[np.bool_]]]:
    """`sample_steps` for several columns of the same readings; columns valid at the same readings (humidity and
    battery come in the same frame) share one search."""
    out: list[tuple[NDArray[np.float64], NDArray[np.bool_]]] = []
    searched: list[tuple[NDArray[np.bool_], NDArray[np.intp], NDArray[np.bool_], NDArray[np.bool_]]] = []
    for values in columns:
        ok = ~np.isnan(values)
        found = next((s for s in searched if np.array_equal(s[0], ok)), None)
        if found is None:
            ts_ok = ts_ms[ok]
            if len(ts_ok) == 0:
                out.append((np.full(step_end.shape, np.nan), np.zeros(step_end.shape, dtype=bool)))
                continue
            idx = np.searchsorted(ts_ok, step_end, side="right") - 1
            safe = np.maximum(idx, 0)
            taken = ts_ok[safe]
            have = (idx >= 0) & (taken > window_start)
            found = (ok, safe, have, have & (taken > step_end - period_ms * FRESH_PERIODS))
            searched.append(found)
        _, safe, have, fresh = found
        out.append((np.where(have, values[found[0]][safe], np.nan), fresh))
    return out


def _backfill_leading(grid: NDArray[np.float64]) -> NDArray[np.float64]:
    """Rows of a [N, W] grid: leading NaNs take the first value present (rows with none stay NaN)."""
    present = ~np.isnan(grid)
    if present.all():
        return grid
    first = np.argmax(present, axis=1)
    first_value = grid[np.arange(len(grid)), first]
    leading = np.arange(grid.shape[1])[None, :] < first[:, None]
    return np.where(leading, first_value[:, None], grid)


def _row_mean(grid: NDArray[np.float64]) -> NDArray[np.float64]:
    """Each row's mean as a column [N, 1] (NaN for a row without values, without a warning)."""
    present = ~np.isnan(grid)
    count = present.sum(axis=1, keepdims=True)
    total = np.where(present, grid, 0.0).sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def raw_windows(spec: FeatureSpec, ts_ms: ArrayLike, temp_c: ArrayLike, rh_pct: ArrayLike | None = None,
                battery_mv: ArrayLike | None = None, *, end_ms: ArrayLike) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Un-normalised windows ending at each of `end_ms`, shape [N, window, channels], and which are usable.

    One sensor's readings, sorted by time (NaN = invalid). A step covers (end - k·period, end - (k-1)·period];
    its value is the latest valid reading at or before the step's end (forward fill), only from inside the
    window; leading steps without one take the first value of the window. Only readings at or before a
    window's end are used, so a score is causal. A window is usable when at least half its steps have a
    fresh temperature.
    """
    ts = np.asarray(ts_ms, dtype=np.int64)
    n = len(ts)
    if n > 1 and np.any(np.diff(ts) < 0):
        raise ValueError("timestamps must be sorted")
    temp, rh, batt = _as_float(temp_c, n), _as_float(rh_pct, n), _as_float(battery_mv, n)
    ends = np.atleast_1d(np.asarray(end_ms, dtype=np.int64))
    period_ms = round(spec.sample_period_s * 1000)
    w = spec.window
    step_end = ends[:, None] + _step_offsets(w, period_ms)[None, :]
    window_start = (ends - w * period_ms)[:, None]

    (t, t_fresh), (h, _), (b, _) = _sample_columns(ts, (temp, rh, batt), step_end, window_start, period_ms)

    def baseline() -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        lo = window_start[:, 0] - spec.baseline_windows * w * period_ms
        return _baseline_stats(ts, temp, lo, window_start[:, 0])

    return _channels(spec, t, t_fresh, h, b, baseline)


def _step_offsets(window: int, period_ms: int) -> NDArray[np.int64]:
    """Each step's end relative to the window's end, oldest step first."""
    return (np.arange(window, dtype=np.int64) - (window - 1)) * period_ms


def _channels(spec: FeatureSpec, t: NDArray[np.float64], t_fresh: NDArray[np.bool_], h: NDArray[np.float64],
              b: NDArray[np.float64], baseline_stats: Callable[[], tuple[NDArray[np.float64], NDArray[np.float64]]],
              ) -> tuple[FloatArray, NDArray[np.bool_]]:
    """The spec's channels [N, window, channels] from the sampled steps (temperature, its freshness, humidity,
    battery: [N, window], NaN where the window has no value yet) and which windows are usable; `baseline_stats`
    gives temp_drift's mean and spread per window, called only when the spec names a channel that needs them."""
    w = spec.window
    t, h, b = _backfill_leading(t), _backfill_leading(h), _backfill_leading(b)
    usable = t_fresh.sum(axis=1) >= int(np.ceil(MIN_FRESH_FRACTION * w))

    minutes = spec.sample_period_s / 60.0

    def rate() -> NDArray[np.float64]:
        lag = np.maximum(np.arange(w) - RATE_STEPS, 0)
        span = np.maximum(np.arange(w) - lag, 1).astype(np.float64)
        return (t - t[:, lag]) / (span[None, :] * minutes)

    def duty() -> NDArray[np.float64]:
        step_rate = np.zeros_like(t)
        step_rate[:, 1:] = np.diff(t, axis=1) / minutes
        falling = (step_rate < -COOLING_EPS_C_PER_MIN).astype(np.float64)
        return np.cumsum(falling, axis=1) / np.maximum(np.arange(w, dtype=np.float64), 1.0)[None, :]

    cache: list[tuple[NDArray[np.float64], NDArray[np.float64]]] = []

    def baseline() -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        if not cache:
            cache.append(baseline_stats())
        return cache[0]

    channels: dict[str, Callable[[], NDArray[np.float64]]] = {  # computed only when the spec names them
        "temp_c": lambda: t, "temp_rate": rate, "cooling_duty": duty, "rh_pct": lambda: h,
        "battery_mv": lambda: b, "battery_trend": lambda: b - b[:, :1],
        "missing": lambda: (~t_fresh).astype(np.float64),
        "temp_dev": lambda: t - _row_mean(t), "rh_dev": lambda: h - _row_mean(h),
        # each step against the mean of the sensor's readings over `baseline_windows` window spans before the
        # window: hours at a 60 s period, minutes at 1 s; NaN (the training mean once normalised) without any
        "temp_drift": lambda: t - baseline()[0][:, None],
        # the same in units of the baseline's own spread (plus DRIFT_FLOOR_C): a rolling z-score per step
        "temp_drift_z": lambda: (t - baseline()[0][:, None]) / (baseline()[1][:, None] + DRIFT_FLOOR_C),
    }
    stacked = np.empty((len(t), w, spec.channels), dtype=np.float32)
    for i, name in enumerate(spec.features):
        stacked[:, :, i] = channels[name]()  # rounded to float32 here, as an astype would
    return stacked, usable


def normalise(spec: FeatureSpec, raw: FloatArray) -> FloatArray:
    """[N, window, channels] raw windows → [N, input_size] model inputs (a channel with no data → 0), each
    clipped to ±`INPUT_CLIP` standard deviations: further out is simply "far off" for every model, and an
    unbounded input (a tag at ambient in a freezer is 30 σ out) would spend the int8 input scale on it."""
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    out = np.asarray(raw - mean, dtype=np.float32)
    np.divide(out, std, out=out)
    np.clip(out, -INPUT_CLIP, INPUT_CLIP, out=out)
    out[np.isnan(out)] = 0.0
    return np.ascontiguousarray(out.reshape(len(raw), spec.input_size), dtype=np.float32)


def windows_at(spec: FeatureSpec, ts_ms: ArrayLike, temp_c: ArrayLike, rh_pct: ArrayLike | None = None,
               battery_mv: ArrayLike | None = None, *, end_ms: ArrayLike) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Normalised model inputs [N, input_size] for windows ending at each of `end_ms`, and which are usable.

    The one code path behind training, evaluation, CSV backtests and `window_features` on the gateway.
    """
    raw, usable = raw_windows(spec, ts_ms, temp_c, rh_pct, battery_mv, end_ms=end_ms)
    return normalise(spec, raw), usable


def windows_from_steps(spec: FeatureSpec, temp: NDArray[np.float64], fresh: NDArray[np.bool_],
                       rh: NDArray[np.float64], battery: NDArray[np.float64],
                       baseline: tuple[NDArray[np.float64], NDArray[np.float64]],
                       ) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Normalised model inputs from steps already sampled (as a gateway keeps them, edge_agent/detect/history.py):
    [N, window] temperature, its freshness, humidity and battery (NaN before a window's first value) and the
    baseline's mean and spread per window; the same channels `windows_at` builds from raw readings."""
    raw, usable = _channels(spec, temp, fresh, rh, battery, lambda: baseline)
    return normalise(spec, raw), usable


def window_ends(spec: FeatureSpec, ts_ms: ArrayLike) -> NDArray[np.int64]:
    """Window end times for a whole history: every sample period from one window after the first reading."""
    ts = np.asarray(ts_ms, dtype=np.int64)
    if len(ts) == 0:
        return np.zeros(0, dtype=np.int64)
    period_ms = round(spec.sample_period_s * 1000)
    first = int(ts[0]) + (spec.window - 1) * period_ms
    return np.arange(first, int(ts[-1]) + 1, period_ms, dtype=np.int64)


def window_features(spec: FeatureSpec, ts_ms: ArrayLike, temp_c: ArrayLike, rh_pct: ArrayLike | None = None,
                    battery_mv: ArrayLike | None = None, *, now_ms: int | None = None) -> FloatArray | None:
    """The model input (float32, length `spec.input_size`) for the window of one sensor's history ending at
    `now_ms` (default: its latest reading), or None when there is too little fresh data in that window.

    Pass at least `spec.span_ms` of history, sorted by time; NaN marks an invalid value.
    """
    ts = np.asarray(ts_ms, dtype=np.int64)
    if len(ts) == 0:
        return None
    end = int(ts[-1]) if now_ms is None else int(now_ms)
    inputs, usable = windows_at(spec, ts, temp_c, rh_pct, battery_mv, end_ms=[end])
    return inputs[0] if bool(usable[0]) else None


def score(inputs: ArrayLike, outputs: ArrayLike) -> NDArray[np.float32]:
    """Anomaly score per row, from what the model gave back for what it saw.

    One output column is the score itself (a fault classifier's logit). Otherwise the score is a mean squared
    error: an output as wide as the input is a reconstruction (autoencoder) and is compared with the whole
    input; a narrower output of k ≥ 2 columns is a forecast of the last k input columns (the newest step's
    channels). An alert is due when the score is above the manifest's threshold.
    """
    x = np.asarray(inputs, dtype=np.float32)
    y = np.asarray(outputs, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    if y.ndim == 1:
        y = y[None, :]
    if y.shape[1] > x.shape[1] or y.shape[0] != x.shape[0]:
        raise ValueError(f"outputs {y.shape} do not fit inputs {x.shape}")
    if y.shape[1] == 1:
        return np.ascontiguousarray(y[:, 0], dtype=np.float32)
    target = x[:, x.shape[1] - y.shape[1]:]
    return np.asarray(np.mean((target - y) ** 2, axis=1), dtype=np.float32)
