"""Pull-down speed against the sensor's own recent past: the cooling-capacity signal behind the gateway's
`cooling_fading` rule (a refrigerant leak shows here hours before any temperature limit). numpy only.

The ratio is the median of the falls steeper than `FALL_C_PER_MIN` over the last `RECENT_S`, divided by the
same median over the `REFERENCE_S` before: 1 is "pulls down as fast as before", 0.8 is "20 % slower". Only
falls inside the sensor's usual range count (`LEVEL_PERCENTILES` of the whole lookback): the recovery after a
defrost or an open door starts far above it and runs at its own pace. Both spans come from the same unit in
the same place, so a unit that is simply weaker than others, or a hot afternoon, does not move it much; a
compressor losing capacity does (docs/decisions.md). No verdict while the lookback holds more than `STILL_S` without
a single fall (power off, a heater stuck on, a unit switched off): the warm goods slow the pull-downs after it for
hours, and the spans before and after are not the same unit's normal any more.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from models.runtime.features import sample_steps

FALL_C_PER_MIN: Final = 0.1  # steeper than this is the compressor pulling the air down
RECENT_S: Final = 90 * 60.0
REFERENCE_S: Final = 240 * 60.0
MIN_FALLS: Final = 3  # fewer falling steps in either span: no verdict (a heater holding the space, a dead unit)
FADING_BELOW: Final = 0.88  # chosen on the validation seeds (docs/experiments.md#degraded-cooling-variants)
FADING_FOR_S: Final = 3600.0
HISTORY_MS: Final = round((RECENT_S + REFERENCE_S) * 1000)
LEVEL_PERCENTILES: Final = (10.0, 80.0)
STILL_S: Final = 60 * 60.0  # chosen on the selection seeds (docs/experiments.md#a-unit-that-stood-still-2026-12-07)
COVER_STEPS: Final = 10  # no verdict until the history reaches back to within this many steps of HISTORY_MS
_CHUNK: Final = 2048


def _sorted_present(rows: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Each row sorted (NaN last; sorted by hand: np.nanmedian / nanpercentile go through masked arrays and were
    most of the gateway rule's time) and how many values it has."""
    return np.sort(rows, axis=1), np.sum(~np.isnan(rows), axis=1)


def _at(ordered: NDArray[np.float64], index: NDArray[np.int64]) -> NDArray[np.float64]:
    return np.take_along_axis(ordered, index[:, None], axis=1)[:, 0]


def _median_fall(rates: NDArray[np.float64]) -> NDArray[np.float64]:
    """Rows of step rates (°C/min): the median of those below −FALL_C_PER_MIN; NaN with fewer than MIN_FALLS."""
    ordered, count = _sorted_present(np.where(rates < -FALL_C_PER_MIN, rates, np.nan))
    median = (_at(ordered, np.maximum(count - 1, 0) // 2) + _at(ordered, count // 2)) / 2.0
    return np.where(count >= MIN_FALLS, median, np.nan)


def _row_percentiles(grid: NDArray[np.float64], percentiles: tuple[float, ...]) -> list[NDArray[np.float64]]:
    """Per row, the nearest-rank percentiles of the values present (NaN for a row without any)."""
    ordered, count = _sorted_present(grid)
    top = np.maximum(count - 1, 0)
    return [_at(ordered, np.round(top * p / 100.0).astype(np.int64)) for p in percentiles]


def pulldown_ratio(ts_ms: ArrayLike, temp_c: ArrayLike, end_ms: ArrayLike,
                   sample_period_s: float = 60.0) -> NDArray[np.float64]:
    """The ratio at each of `end_ms` (see the module docstring), clipped to [0, 2]; NaN where there is no
    verdict. One sensor's readings sorted by time (NaN = invalid), resampled onto `sample_period_s` steps like
    the model's windows; only readings at or before each end count, so it is causal."""
    ts = np.asarray(ts_ms, dtype=np.int64)
    temp = np.asarray(temp_c, dtype=np.float64)
    ends = np.atleast_1d(np.asarray(end_ms, dtype=np.int64))
    if len(ts) > 1 and np.any(np.diff(ts) < 0):
        raise ValueError("timestamps must be sorted")
    period_ms = round(sample_period_s * 1000)
    steps = pulldown_steps(sample_period_s)
    offsets = (np.arange(steps, dtype=np.int64) - (steps - 1)) * period_ms
    out = np.full(len(ends), np.nan)
    for lo in range(0, len(ends), _CHUNK):  # bounded memory: a week of ends is 10^4 rows of `steps`
        chunk = ends[lo:lo + _CHUNK]
        grid, _ = sample_steps(ts, temp, chunk[:, None] + offsets[None, :], (chunk - steps * period_ms)[:, None],
                               period_ms)
        out[lo:lo + _CHUNK] = pulldown_ratio_of_steps(grid, sample_period_s)
    return out


def pulldown_steps(sample_period_s: float = 60.0) -> int:
    """How many steps of `sample_period_s` one ratio reads (the recent span and the reference before it)."""
    return max(2, round(RECENT_S / sample_period_s)) + max(2, round(REFERENCE_S / sample_period_s))


def pulldown_ratio_of_steps(grid: NDArray[np.float64], sample_period_s: float = 60.0) -> NDArray[np.float64]:
    """The ratio for each row of sampled steps [N, `pulldown_steps`] (oldest first, NaN where the span has no value
    yet), as `pulldown_ratio` samples them from readings; the gateway keeps such steps per sensor."""
    recent = max(2, round(RECENT_S / sample_period_s))
    rates = np.diff(grid, axis=1) / (sample_period_s / 60.0)
    moving = _longest_still(rates) * sample_period_s <= STILL_S
    low, high = _row_percentiles(grid, LEVEL_PERCENTILES)
    usual = (grid[:, 1:] >= low[:, None]) & (grid[:, 1:] <= high[:, None])
    rates = np.where(usual, rates, np.nan)
    now, before = _median_fall(rates[:, -recent:]), _median_fall(rates[:, :-recent])
    covered = np.any(~np.isnan(grid[:, :COVER_STEPS]), axis=1) & moving
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.where(covered, np.clip(now / before, 0.0, 2.0), np.nan), dtype=np.float64)


def _longest_still(rates: NDArray[np.float64]) -> NDArray[np.int64]:
    """Per row of step rates, the most consecutive steps without a fall steeper than FALL_C_PER_MIN (a step
    without a reading counts as still): how long the unit did not pull down at all."""
    index = np.arange(rates.shape[1], dtype=np.int64)
    last_fall = np.maximum.accumulate(np.where(rates < -FALL_C_PER_MIN, index, -1), axis=1)
    return np.asarray(np.max(index - last_fall, axis=1), dtype=np.int64)


def fading_reason(ratio: float) -> str:
    """What staff read on a `cooling_fading` alert."""
    return (f"pull-downs {100 * (1 - ratio):.0f} % slower than in the {REFERENCE_S / 3600:g} h before "
            f"(ratio {ratio:.2f} < {FADING_BELOW:g}): cooling capacity fading")
