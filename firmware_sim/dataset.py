"""A simulated dataset: readings as the agent decodes them (after RAWv2) plus ground-truth labels."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
from numpy.typing import NDArray

from firmware_sim import frames
from firmware_sim.synth import Block, Label, Plan, Synthesizer, sensor_major

COLUMNS: Final = ("sensor", "profile", "ts_ms", "seq", "temp_c", "rh_pct", "battery_mv", "rssi_dbm")
DUPLICATE_DELAY_MS: Final = (150, 1500)


@dataclass
class Dataset:
    """Readings (one row per received frame, duplicates included, lost frames absent) and labels.

    Columns: sensor (MAC), profile (as configured), ts_ms (gateway receive time), seq (RAWv2
    measurement sequence), temp_c / rh_pct / battery_mv (decoded RAWv2 values, NaN = invalid marker),
    rssi_dbm. Rows are grouped by sensor, in time order. `truth` holds the sample grid behind them.
    """

    readings: dict[str, NDArray[np.generic]]
    labels: list[Label]
    truth: Block | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.readings["ts_ms"])

    def for_sensor(self, mac: str) -> dict[str, NDArray[np.generic]]:
        """The rows of one sensor."""
        pick = self.readings["sensor"] == mac
        return {name: column[pick] for name, column in self.readings.items()}

    @property
    def sensors(self) -> list[str]:
        """MACs in row order."""
        return list(dict.fromkeys(self.readings["sensor"].tolist()))


def synthesize(plan: Plan, *, seed: int, duration_s: float, sample_period_s: float, start_ms: int) -> Dataset:
    """Run `plan` for `duration_s` and collect what a gateway would have decoded, with labels."""
    synth = Synthesizer(plan, seed=seed, period_s=sample_period_s, start_ms=start_ms)
    samples = max(1, int(duration_s // sample_period_s))
    block = synth.advance(samples)
    return Dataset(readings=block_rows(block, plan, seed=seed), labels=synth.labels(block), truth=block)


def block_rows(block: Block, plan: Plan, *, seed: int) -> dict[str, NDArray[np.generic]]:
    """Flatten a block to rows (sensor-major), keeping heard frames and repeating duplicated ones."""
    steps, n = block.heard.shape
    counts = sensor_major(block.heard.astype(np.int64) + (block.heard & block.duplicated))
    origin = np.repeat(np.arange(steps * n), counts)
    copy_no = np.arange(len(origin)) - np.repeat(np.cumsum(counts) - counts, counts)

    def take(grid: NDArray[np.generic]) -> NDArray[np.generic]:
        picked: NDArray[np.generic] = sensor_major(grid)[origin]
        return picked

    rng = np.random.default_rng([seed, 0xD0B])
    delay = np.where(copy_no > 0, rng.integers(*DUPLICATE_DELAY_MS, len(origin)), 0)
    rssi_shift = np.where(copy_no > 0, rng.integers(-4, 5, len(origin)), 0)
    sensor_index = origin // steps
    return {
        "sensor": np.array(plan.macs, dtype=object)[sensor_index],
        "profile": np.array(plan.profiles, dtype=object)[sensor_index],
        "ts_ms": take(block.ts_ms).astype(np.int64) + delay,
        "seq": take(block.seq).astype(np.int64),
        "temp_c": frames.decoded_temp(take(block.temp_code).astype(np.int64)),
        "rh_pct": frames.decoded_humidity(take(block.humidity_code).astype(np.int64)),
        "battery_mv": frames.decoded_battery(take(block.battery_code).astype(np.int64)),
        "rssi_dbm": np.clip(take(block.rssi_dbm).astype(np.int64) + rssi_shift, -127, -20),
    }
