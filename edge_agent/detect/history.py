"""Sensors' recent readings on a grid of sample periods: one fixed-size float32 ring per sensor, updated on arrival,
from which the model's windows and the pull-down ratio are read; bounded memory per tag, whatever its rate.

Step `k` of a grid of period P holds the readings with k·P < ts <= (k+1)·P. Per step a ring keeps the last valid
temperature (and when it came), and with `stats` also the last humidity and battery, how many temperatures came,
their mean and sum of squared deviations, and when the first came: exactly what `models.runtime.features`'
windows and baselines read of the readings (windows end on the grid: docs/decisions.md "A sensor's history on a
grid of sample periods"). The step still receiving readings is kept in Python numbers and written to the ring
when the sensor moves past it.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from models.runtime.features import BASELINE_MIN_COVER, FRESH_PERIODS, FeatureSpec, windows_from_steps

_NAN: Final = float("nan")
_COUNT_MAX: Final = 65_535  # temperatures per step counted up to this (uint16); offsets in uint16 up to this step
TEMP_DECIMALS: Final = 4  # temperatures are read back from float32 rounded to this many decimals
PASS_ROWS: Final = 1024  # windows read in one pass: its arrays (at most rows × steps kept) stay under the agent's
# malloc mmap threshold (edge_agent/allocator.py), so the heap reuses them rather than mapping fresh pages every tick


class _OpenStep:
    """The step a sensor's readings go to now: running sums about its first temperature (no precision lost at any
    level), last values, offsets within the step."""

    __slots__ = ("base", "battery", "first_at", "last_at", "last_ts", "n", "pending", "rh", "slot", "sq", "sum",
                 "temp", "written")

    def __init__(self, slot: int, last_ts: int) -> None:
        self.slot = slot
        self.last_ts = last_ts
        self.n = 0
        self.base = self.sum = self.sq = 0.0
        self.temp = self.rh = self.battery = _NAN
        self.first_at = self.last_at = 0
        self.written = -1  # the readings it held when last written to the ring (-1: never)
        self.pending = -1  # where its first reading waits to be written (StepRing._pending), -1: it does not

    def reset(self, slot: int, last_ts: int) -> None:
        """Begin step `slot` (the object is reused: none is made per step)."""
        self.slot, self.last_ts, self.n = slot, last_ts, 0
        self.sum = self.sq = 0.0
        self.written = self.pending = -1
        self.temp = self.rh = self.battery = _NAN


@dataclass(frozen=True, slots=True)
class ModelSteps:
    """What a batch of windows reads, one row a window: the sampled steps [N, window] (forward-filled within the
    window, NaN before its first value), whether each temperature is fresh, and the baseline's mean and spread."""

    temp: NDArray[np.float64]
    fresh: NDArray[np.bool_]
    rh: NDArray[np.float64]
    battery: NDArray[np.float64]
    baseline_mean: NDArray[np.float64]
    baseline_std: NDArray[np.float64]


class StepRing:
    """Per sensor, the last `slots` steps of `period_ms` in one row of fixed-size arrays (rows are added for new
    sensors; a row's memory does not grow with its tag's rate or age). Without `stats` only the temperatures are
    kept (what the pull-down ratio reads). With `stats`, the last values (temperature, humidity, battery) are kept
    for the last `recent` steps only (a window's), the counts, means and offsets for all `slots` (its baseline), and
    each step's sum of squared deviations when `spread` (what `temp_drift_z` reads)."""

    def __init__(self, period_ms: int, slots: int, *, stats: bool = False, recent: int | None = None,
                 spread: bool = True) -> None:
        if period_ms <= 0 or slots < 1:
            raise ValueError("a ring needs a positive period and at least one slot")
        self.period_ms = period_ms
        self.slots = slots
        self.stats = stats
        self.spread = stats and spread
        self.recent = min(slots, recent or slots)
        at = np.uint16 if period_ms <= _COUNT_MAX else np.uint32  # offsets within a step, in ms
        self._rows: dict[str, int] = {}
        self._open: list[_OpenStep] = []
        self._free: list[int] = []  # rows given up by sensors long silent
        # steps opened since the arrays were last read, as their first reading left them: row (-1: since written
        # otherwise), step, temperature, humidity, battery, offset in the step; written together before a read
        self._pending = _pending_buffers()
        self._recycled_ms = -(1 << 62)
        self.first_ms: list[int] = []  # per row: the sensor's first reading (windows begin a full window after)
        values = self.recent if stats else slots
        columns: dict[str, tuple[type[np.generic], int, float]] = {"temp": (np.float32, values, np.nan)}
        if stats:
            columns |= {"rh": (np.float32, values, np.nan), "battery": (np.float32, values, np.nan),
                        "count": (np.uint16, slots, 0), "mean": (np.float32, slots, 0.0),
                        "temp_at": (at, slots, 0), "first_at": (at, slots, 0)}
        if self.spread:
            columns["m2"] = (np.float32, slots, 0.0)
        self._columns = columns  # name → (dtype, steps kept, value of an empty step)
        self._arrays: dict[str, NDArray[np.generic]] = {
            name: np.zeros((0, length), dtype=dtype) for name, (dtype, length, _) in columns.items()}

    def __len__(self) -> int:
        return len(self._rows)

    def row(self, sensor: str) -> int:
        """The sensor's row (KeyError for a sensor never added)."""
        return self._rows[sensor]

    def slot_of(self, ts_ms: int) -> int:
        """The step `ts_ms` belongs to."""
        return (ts_ms - 1) // self.period_ms

    def advances(self, sensor: str, ts_ms: int) -> bool:
        """Whether a reading at `ts_ms` would close the sensor's open step (the ring then no longer holds what a
        window ending with that step reads: take such windows first)."""
        row = self._rows.get(sensor)
        return row is not None and self.slot_of(ts_ms) > self._open[row].slot

    def add(self, sensor: str, ts_ms: int, temp_c: float, rh_pct: float | None = None,
            battery_mv: float | None = None) -> int | None:
        """Add a reading with a temperature; returns the step it opened (the sensor's first, or one after the
        last), else None. The opened step goes to the ring with this reading in it (queued, and written with the
        others before the arrays are next read), so a window ending where that step will end can be read now, from
        what has come (`features.windows_at` on the readings so far), until the sensor moves past it. A reading
        older than the sensor's newest is ignored (a late frame: windows read a history in time order)."""
        if temp_c != temp_c:  # NaN: no temperature (as `features` treats it)
            return None
        slot = (ts_ms - 1) // self.period_ms
        row = self._rows.get(sensor)
        opened = False
        if row is None:
            row = self._new_row(sensor, slot, ts_ms)
            step = self._open[row]
            opened = True
        else:
            step = self._open[row]
            if ts_ms < step.last_ts:
                return None
            if slot > step.slot:
                self._close(row, step, slot)
                step.reset(slot, ts_ms)
                opened = True
        step.last_ts = ts_ms
        at = ts_ms - slot * self.period_ms
        step.temp, step.last_at = temp_c, at
        if self.stats:
            if step.n == 0:
                step.base, step.first_at = temp_c, at
            d = temp_c - step.base
            step.sum += d
            step.sq += d * d
            if rh_pct is not None:
                step.rh = rh_pct
            if battery_mv is not None:
                step.battery = battery_mv
        step.n += 1
        if not opened:
            return None
        # the step as this reading leaves it, written with the others before the arrays are next read (later
        # readings of the step do not change what a window ending with it reads now, as when written at once)
        rows, slots, temps, rhs, batteries, ats = self._pending
        step.pending, step.written = len(rows), 1
        rows.append(row)
        slots.append(slot)
        temps.append(temp_c)
        rhs.append(step.rh)
        batteries.append(step.battery)
        ats.append(at)
        if len(rows) > len(self._open) + 16:  # a ring nobody reads for a while stays bounded too
            self.write_open_steps()
        return slot

    def _new_row(self, sensor: str, slot: int, ts_ms: int) -> int:
        capacity = self._arrays["temp"].shape[0]
        if self._free:
            row = self._free.pop()
            if self._open[row].pending >= 0:  # the last sensor's first reading of a step must not land here
                self._pending[0][self._open[row].pending] = -1
            self._open[row] = _OpenStep(slot, ts_ms)
            self.first_ms[row] = ts_ms
        else:
            row = len(self._open)
            if row == capacity:  # grown by a quarter: untouched rows of a fresh allocation cost no resident memory
                for name, old in self._arrays.items():
                    new = np.zeros((capacity + max(16, capacity // 4), old.shape[1]), dtype=old.dtype)
                    new[:capacity] = old
                    self._arrays[name] = new
            self._open.append(_OpenStep(slot, ts_ms))
            self.first_ms.append(ts_ms)
        for name, (_, _, empty) in self._columns.items():
            self._arrays[name][row] = empty
        self._rows[sensor] = row
        return row

    def recycle(self, now_ms: int) -> None:
        """Give the rows of sensors not heard for longer than the ring spans before `now_ms` to sensors heard later
        (a warehouse's tags come and go: the rows follow the tags heard lately, not every tag ever heard). Such a
        sensor's next reading would clear its whole ring anyway; heard again, it starts afresh, as a new tag. Call
        it between ticks with the tick's earliest reading time, never while a window read from the ring waits; it
        looks at most once every 10 steps."""
        if now_ms < self._recycled_ms + 10 * self.period_ms:
            return
        self._recycled_ms = now_ms
        span_ms = self.slots * self.period_ms
        for sensor, row in list(self._rows.items()):
            if now_ms - self._open[row].last_ts > span_ms:
                del self._rows[sensor]
                self._free.append(row)

    def _close(self, row: int, step: _OpenStep, new_slot: int) -> None:
        """Write the open step into the ring, then mark the steps skipped up to `new_slot` empty (after: a gap as
        long as the ring wraps onto the step just written, which is then older than anything the ring holds)."""
        if step.pending >= 0:  # its first reading is still waiting: the step is written whole instead
            self._pending[0][step.pending] = -1
            self._write(row, step)
        elif step.written != step.n:  # not as it was when last written (a step of one reading already is)
            self._write(row, step)
        skipped = new_slot - step.slot - 1
        if skipped <= 0:
            return
        for name, (_, length, empty) in self._columns.items():
            array = self._arrays[name]
            positions = (step.slot + 1 + np.arange(min(skipped, length))) % length
            array[row, positions] = empty

    def write_open_steps(self) -> None:
        """Write the steps opened since the arrays were last read, as their first reading left them (one assignment
        per column for all of them, not one per value; every read does it first)."""
        rows, slots, temps, rhs, batteries, ats = self._pending
        if not rows:
            return
        self._pending = _pending_buffers()
        opens = self._open
        for row in rows:
            if row >= 0:
                opens[row].pending = -1
        at = np.frombuffer(rows, dtype=np.int64)
        keep = at >= 0
        at = at[keep]
        slot = np.frombuffer(slots, dtype=np.int64)[keep]
        temp = np.frombuffer(temps, dtype=np.float64)[keep]
        arrays = self._arrays
        v = slot % (self.recent if self.stats else self.slots)
        arrays["temp"][at, v] = temp
        if self.stats:
            arrays["rh"][at, v] = np.frombuffer(rhs, dtype=np.float64)[keep]
            arrays["battery"][at, v] = np.frombuffer(batteries, dtype=np.float64)[keep]
            p = slot % self.slots
            arrays["count"][at, p] = 1
            arrays["mean"][at, p] = temp
            if self.spread:
                arrays["m2"][at, p] = 0.0
            offsets = np.frombuffer(ats, dtype=np.int64)[keep]
            arrays["temp_at"][at, p] = offsets
            arrays["first_at"][at, p] = offsets

    def _write(self, row: int, step: _OpenStep) -> None:
        step.written = step.n
        arrays = self._arrays
        values = self.recent if self.stats else self.slots
        v = step.slot % values
        arrays["temp"][row, v] = step.temp
        if self.stats:
            arrays["rh"][row, v] = step.rh
            arrays["battery"][row, v] = step.battery
            p = step.slot % self.slots
            arrays["count"][row, p] = min(step.n, _COUNT_MAX)
            mean = step.sum / step.n
            arrays["mean"][row, p] = step.base + mean
            if self.spread:
                arrays["m2"][row, p] = max(step.sq - step.sum * mean, 0.0)
            arrays["temp_at"][row, p] = step.last_at
            arrays["first_at"][row, p] = step.first_at

    def _index(self, rows: NDArray[np.int64], cols: NDArray[np.int64], length: int) -> NDArray[np.int64]:
        """Flat positions of the steps `cols` [N, k] (consecutive steps, k <= `length`, one row of them per entry
        of `rows`) in arrays keeping `length` steps."""
        position: NDArray[np.int64] = (rows * length + cols[:, 0] % length)[:, None] + np.arange(cols.shape[1])[None, :]
        position[position >= (rows * length + length)[:, None]] -= length  # steps past the row's end wrap round
        return position

    def _take(self, name: str, index: NDArray[np.int64]) -> NDArray[np.generic]:
        taken: NDArray[np.generic] = self._arrays[name].reshape(-1).take(index)  # a view: rows are contiguous
        return taken

    def temperatures(self, rows: NDArray[np.int64], ends: NDArray[np.int64], steps: int) -> NDArray[np.float64]:
        """For each (row, last step), the temperature at the end of each of the `steps` steps up to it: the latest
        at or before that end inside the span (as `features.sample_steps` gives), NaN before its first."""
        self.write_open_steps()
        kept = self._arrays["temp"].shape[1]
        if steps > kept:
            raise ValueError(f"this ring keeps the temperatures of {kept} steps, not {steps}")
        cols = ends[:, None] + np.arange(1 - steps, 1, dtype=np.int64)[None, :]
        index = self._index(rows, cols, kept)
        values, _ = _forward_fill(_as_read(self._take("temp", index)))
        return values

    def model_steps(self, spec: FeatureSpec, rows: NDArray[np.int64], ends: NDArray[np.int64]) -> ModelSteps:
        """What the windows of `spec` ending at the end of step `ends[i]` of row `rows[i]` read (a ring with
        `stats`, of the spec's period and at least its reach in slots). `ends[i]` is the row's open step (the step
        a reading just opened, as `AnomalyDetector` asks): the ring holds no step older than the open one's span."""
        w, p = spec.window, self.period_ms
        if w > self.recent or slots_for(spec) > self.slots or not self.stats or (needs_spread(spec)
                                                                                 and not self.spread):
            raise ValueError(f"a ring of {self.slots} steps ({self.recent} with values) cannot feed windows of "
                             f"{w} steps reaching {slots_for(spec)}")
        self.write_open_steps()
        cols = ends[:, None] + np.arange(1 - w, 1, dtype=np.int64)[None, :]
        recent, every = self._index(rows, cols, self.recent), self._index(rows, cols, self.slots)
        temp, source = _forward_fill(_as_read(self._take("temp", recent)))
        rh, _ = _forward_fill(self._take("rh", recent).astype(np.float64))
        battery, _ = _forward_fill(self._take("battery", recent).astype(np.float64))
        # a step's value is fresh when it came within FRESH_PERIODS of the step's end
        src = np.maximum(source, 0)
        src_slot = np.take_along_axis(cols, src, axis=1)
        at = self._take("temp_at", every).astype(np.int64)
        taken = src_slot * p + np.take_along_axis(at, src, axis=1)
        fresh = (source >= 0) & (taken > (cols + 1) * p - FRESH_PERIODS * p)
        span = spec.baseline_windows * w
        mean, std = self._baseline(rows, ends - w, span)
        return ModelSteps(temp, fresh, rh, battery, mean, std)

    def _baseline(self, rows: NDArray[np.int64], last: NDArray[np.int64], span: int,
                  ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Mean and spread of every temperature in the `span` steps up to step `last[i]` of row `rows[i]`, NaN where
        the temperatures span less than BASELINE_MIN_COVER of those steps (as `features` judges a baseline). Whole
        rows are read (a row holds the steps up to its open one, at positions step % slots) and the steps outside
        the span masked: no index per step is built."""
        n, slots, p = len(rows), self.slots, self.period_ms
        opened = np.fromiter((self._open[r].slot for r in rows.tolist()), dtype=np.int64, count=n)
        # age[i, q]: how many steps before row i's open step the step at position q is
        age = (opened % slots).astype(np.int32)[:, None] - np.arange(slots, dtype=np.int32)[None, :]
        age += np.where(age < 0, np.int32(slots), np.int32(0))
        newest_age = (opened - last).astype(np.int32)[:, None]
        inside = (age >= newest_age) & (age < newest_age + span)
        # an empty step holds count, mean and m2 zero
        count = np.where(inside, np.asarray(self._arrays["count"][rows], dtype=np.uint16), np.uint16(0))
        means = np.asarray(self._arrays["mean"][rows], dtype=np.float32)
        total = count.sum(axis=1, dtype=np.float64)
        weighted = np.einsum("ij,ij->i", count, means, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = weighted / total
            # the steps' own spreads and their means' spread about the whole mean (float64: no cancellation to fear)
            spread = ((np.where(inside, self._arrays["m2"][rows], 0).sum(axis=1, dtype=np.float64)
                       + np.einsum("ij,ij,ij->i", count, means, means, dtype=np.float64)) / total - mean * mean
                      ) if self.spread else np.full(n, np.nan)
        present = count > 0
        oldest = np.where(present, age, -1).argmax(axis=1)  # positions of the first and last steps with a reading
        newest = np.where(present, age, slots).argmin(axis=1)
        at = np.arange(n)
        first_ts = (opened - age[at, oldest]) * p + self._arrays["first_at"][rows, oldest].astype(np.int64)
        last_ts = (opened - age[at, newest]) * p + self._arrays["temp_at"][rows, newest].astype(np.int64)
        enough = (total > 0) & (last_ts - first_ts >= span * p * BASELINE_MIN_COVER)
        return np.where(enough, mean, np.nan), np.where(enough, np.sqrt(np.maximum(spread, 0.0)), np.nan)

    def windows(self, spec: FeatureSpec, rows: NDArray[np.int64], ends: NDArray[np.int64],
                ) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
        """The model inputs for windows ending at the end of step `ends[i]` of row `rows[i]`, and which are usable:
        what `features.windows_at` gives on the same readings, ending at those times (the agent asks for
        `PASS_ROWS` at a time)."""
        s = self.model_steps(spec, rows, ends)
        return windows_from_steps(spec, s.temp, s.fresh, s.rh, s.battery, (s.baseline_mean, s.baseline_std))

    def bytes_per_row(self) -> int:
        """The ring's memory per sensor (its arrays' slots, without the open step)."""
        return sum(np.dtype(dtype).itemsize * length for dtype, length, _ in self._columns.values())


def _pending_buffers() -> tuple[array[int], array[int], array[float], array[float], array[float], array[int]]:
    """Empty buffers for the first readings of steps waiting to be written (`StepRing._pending`)."""
    return array("q"), array("q"), array("d"), array("d"), array("d"), array("q")


def _as_read(temps: NDArray[np.generic]) -> NDArray[np.float64]:
    """Kept float32 temperatures as the float64 they were read as, to 0.1 m°C (a tag's 0.005 °C steps exactly: 3.005
    read back as 3.0050001 would make a one-step fall of 0.005 °C/min a cooling step for `cooling_duty`, where
    training's float64 3.005 does not)."""
    values: NDArray[np.float64] = temps.astype(np.float64).round(TEMP_DECIMALS)
    return values


def _forward_fill(grid: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Each row's NaNs take the last value before them in the row (leading NaNs stay), and for each cell the
    column its value came from (-1 for none)."""
    present = ~np.isnan(grid)
    index = np.where(present, np.arange(grid.shape[1])[None, :], -1)
    source = np.maximum.accumulate(index, axis=1)
    filled = np.take_along_axis(grid, np.maximum(source, 0), axis=1)
    return np.where(source >= 0, filled, np.nan), source


def needs_spread(spec: FeatureSpec) -> bool:
    """Whether `spec`'s windows read the baseline's spread (a ring keeps it only then)."""
    return "temp_drift_z" in spec.features


def slots_for(spec: FeatureSpec) -> int:
    """Steps of a ring that `spec`'s windows read (the window and its baseline); a ring keeps the last values for
    the last `spec.window` of them."""
    return math.ceil(spec.reach_ms / round(spec.sample_period_s * 1000))
