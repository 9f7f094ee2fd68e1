"""Alert episodes from per-step verdicts, exactly as the agent's alert tracker opens and clears them, and the
score threshold that keeps false alerts rare on normal data.

An alert opens once the condition has held for `min_duration_ms` and clears after `clear_after_ms` without it;
a blip shorter than `min_duration_ms` never opens. The agent uses 2 and 3 sample periods for `anomaly`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

MODEL_MIN_DURATION_PERIODS = 2.0
MODEL_CLEAR_AFTER_PERIODS = 3.0


@dataclass(frozen=True)
class Episode:
    """One alert: the condition began at `since_ms`, the alert was raised at `opened_ms`, cleared at `end_ms`."""

    since_ms: int
    opened_ms: int
    end_ms: int


def episodes(active: NDArray[np.bool_], ts_ms: NDArray[np.int64], *, min_duration_ms: int, clear_after_ms: int,
             hold: NDArray[np.bool_] | None = None) -> list[Episode]:
    """Replay verdicts (time-ordered) through the alert lifecycle; an alert still open at the end ends there.

    `hold`: not active but not clearly normal either (hysteresis): an open alert stays open, nothing opens.
    """
    out: list[Episode] = []
    idx = np.flatnonzero(active if hold is None else (active | hold))
    if len(idx) == 0:
        return out
    act = np.asarray(active, dtype=bool).tolist()
    held = [False] * len(act) if hold is None else np.asarray(hold, dtype=bool).tolist()
    times = np.asarray(ts_ms, dtype=np.int64).tolist()
    since: int | None = None
    opened: int | None = None
    ok_since: int | None = None
    i = int(idx[0])
    while i < len(act):
        t = times[i]
        if held[i] and opened is not None:
            ok_since = None
        elif act[i]:
            ok_since = None
            since = t if since is None else since
            if opened is None and t - since >= min_duration_ms:
                opened = t
        elif opened is not None:
            ok_since = t if ok_since is None else ok_since
            if t - ok_since >= clear_after_ms:
                out.append(Episode(since if since is not None else opened, opened, t))
                since, opened, ok_since = None, None, None
        else:
            since = None
            nxt = np.searchsorted(idx, i, side="right")  # skip the quiet stretch
            if nxt >= len(idx):
                break
            i = int(idx[nxt])
            continue
        i += 1
    if opened is not None:
        out.append(Episode(since if since is not None else opened, opened, times[-1]))
    return out


def model_lifecycle_ms(sample_period_s: float) -> tuple[int, int]:
    """(min_duration_ms, clear_after_ms) the agent uses for model alerts at this sample period."""
    period_ms = sample_period_s * 1000
    return round(MODEL_MIN_DURATION_PERIODS * period_ms), round(MODEL_CLEAR_AFTER_PERIODS * period_ms)


def count_episodes(scores: Sequence[NDArray[np.float32]], ends: Sequence[NDArray[np.int64]], threshold: float, *,
                   sample_period_s: float) -> int:
    """Model alerts over several sensors' score series at `threshold`."""
    min_ms, clear_ms = model_lifecycle_ms(sample_period_s)
    return sum(len(episodes(s > threshold, e, min_duration_ms=min_ms, clear_after_ms=clear_ms))
               for s, e in zip(scores, ends, strict=True))


class NotEnoughNormalData(ValueError):  # noqa: N818 (reads as the verdict it is)
    """Too little normal data to place a threshold at the alert budget, even by extrapolating its tail."""


MIN_TAIL_POINTS = 3  # thresholds with at least `MIN_TAIL_EPISODES` episodes each, to fit the tail through
MIN_TAIL_EPISODES = 2
MIN_CALIBRATION_WINDOWS = 120


def calibrate_threshold(scores: Sequence[NDArray[np.float32]], ends: Sequence[NDArray[np.int64]], *,
                        sensor_days: float, max_alerts_per_sensor_day: float, sample_period_s: float,
                        margin: float = 1.0) -> float:
    """The lowest threshold whose alert rate on normal data is at most the budget, times a safety margin.

    Where the data holds at least one alert's worth of the budget, the rate is counted (alert episodes through the
    agent's lifecycle). Where it holds less (31 minutes of validation allow 0.002 alerts, and the highest score seen
    is then no estimate at all), the tail is extrapolated: the episode rate falls about exponentially as the
    threshold rises, so a line through log(rate) at the thresholds that still open a few episodes is followed down
    to the budget, never below the lowest threshold that opened none here. NotEnoughNormalData when even that
    cannot be fitted.
    """
    arrays = [np.asarray(s, dtype=np.float64) for s in scores]
    pooled = np.concatenate(arrays) if arrays else np.zeros(0)
    if len(pooled) == 0:
        raise ValueError("no scores to calibrate on")
    allowed = max_alerts_per_sensor_day * sensor_days
    if allowed < 1.0:
        return _extrapolated(scores, ends, pooled, sensor_days=sensor_days, sample_period_s=sample_period_s,
                             max_alerts_per_sensor_day=max_alerts_per_sensor_day) * margin
    # every score in the top decile is a candidate: alerts come from the tail's last few windows, and a grid of
    # quantiles has nothing between its 99.9th percentile and the maximum (it once shipped 8.1 where 5.0 met the
    # budget)
    candidates = np.unique(pooled[pooled >= np.quantile(pooled, 0.9)])
    lo, hi = 0, len(candidates) - 1  # alert counts fall as the threshold rises: bisect
    if count_episodes(scores, ends, float(candidates[hi]), sample_period_s=sample_period_s) > allowed:
        return float(pooled.max()) * margin
    while lo < hi:
        mid = (lo + hi) // 2
        if count_episodes(scores, ends, float(candidates[mid]), sample_period_s=sample_period_s) <= allowed:
            hi = mid
        else:
            lo = mid + 1
    return float(candidates[lo]) * margin


def _extrapolated(scores: Sequence[NDArray[np.float32]], ends: Sequence[NDArray[np.int64]],
                  pooled: NDArray[np.float64], *, sensor_days: float, sample_period_s: float,
                  max_alerts_per_sensor_day: float) -> float:
    hours = sensor_days * 24.0
    need_h = 24.0 / max_alerts_per_sensor_day
    short = NotEnoughNormalData(
        f"not enough normal data: {hours:.1f} h ({len(pooled)} windows), need {need_h:.0f} h to count the model's "
        f"budget of {max_alerts_per_sensor_day} alerts per sensor-day (its share of the alert budget), or a normal "
        "stretch with enough ordinary ups and downs to extrapolate it from")
    if len(pooled) < MIN_CALIBRATION_WINDOWS:
        raise short
    candidates = np.unique(np.quantile(pooled, np.linspace(0.5, 1.0, 201)))
    counts = np.array([count_episodes(scores, ends, float(c), sample_period_s=sample_period_s) for c in candidates])
    zero = candidates[np.argmax(counts == 0)] if (counts == 0).any() else float(pooled.max())
    fit = counts >= MIN_TAIL_EPISODES
    if fit.sum() < MIN_TAIL_POINTS:
        raise short
    x, y = candidates[fit], np.log(counts[fit] / sensor_days)
    x = x[len(x) // 2:] if fit.sum() >= 2 * MIN_TAIL_POINTS else x  # the upper half of the tail
    y = y[len(y) - len(x):]
    slope, intercept = np.polyfit(x, y, 1)
    if not np.isfinite(slope) or slope >= 0:
        raise short
    target = (np.log(max_alerts_per_sensor_day) - intercept) / slope
    return float(max(target, zero))
