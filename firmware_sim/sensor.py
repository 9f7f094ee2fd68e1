"""What a tag reports of the true air: noise, calibration offset, faults, battery brown-out, then the radio.

Everything works on (T, S) grids (samples × sensors) at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from firmware_sim import battery
from firmware_sim.events import Event
from firmware_sim.physics import BoolArray, FloatArray

IntGrid = NDArray[np.int64]

TEMP_NOISE_C: Final = 0.02
TEMP_OFFSET_SD_C: Final = 0.08  # calibration spread between tags
RH_NOISE_PCT: Final = 0.25
RH_OFFSET_SD_PCT: Final = 1.0
SPIKE_C: Final = (4.0, 25.0)
BROWNOUT_RESET_P: Final = 0.02  # chance per garbage reading that the tag reboots (its sequence restarts at 0)
# Radio: per-tag mean RSSI, fading, loss rising steeply near the sensitivity limit, duplicates.
RSSI_MEAN_DBM: Final = (-86.0, -58.0)
RSSI_FADING_SD_DB: Final = 3.0
LOSS_FLOOR: Final = 0.003
LOSS_EDGE_DBM: Final = -92.0
DUPLICATE_P: Final = 0.003
CLOCK_PPM_SD: Final = 30.0  # the tag's RC clock: its sample period is off by this many ppm
RECEIVE_JITTER_MS: Final = (20.0, 400.0)


@dataclass
class TagReadings:
    """The values each tag sends (before RAWv2 quantisation), (T, S); NaN = invalid marker."""

    temp_c: FloatArray
    rh_pct: FloatArray
    battery_mv: FloatArray
    measured: BoolArray  # False: the tag did not measure (dead battery); its sequence does not advance
    audible: BoolArray  # measured and sent where a gateway could hear it (False during a dropout)
    seq: IntGrid


def tag_readings(air_c: FloatArray, rh_pct: FloatArray, battery_used: FloatArray, faults: list[Event],
                 t_s: FloatArray, rng: np.random.Generator, *, first_seq: IntGrid,
                 stuck_at: dict[Event, tuple[float, float]] | None = None,
                 health_rng: np.random.Generator | None = None) -> TagReadings:
    """Turn the true air (T, S) into tag readings: calibration offset and noise, injected sensor faults,
    battery voltage with cold sag, and the garbage a nearly empty cheap tag sends.

    `stuck_at` remembers the value a stuck sensor froze at, across chunks of the same run. `health_rng` decides
    which readings of a weak tag are garbage and when it reboots: a stream of its own, drawn a fixed number of
    values per step, so that a run cut into chunks reboots its tags at the same steps as one run (the sequence
    numbers depend on it). Without it, `rng` is used.
    """
    stuck_at = {} if stuck_at is None else stuck_at
    steps, n = air_c.shape
    temp = air_c + rng.normal(0.0, TEMP_OFFSET_SD_C, n) + rng.normal(0.0, TEMP_NOISE_C, (steps, n))
    rh = rh_pct + rng.normal(0.0, RH_OFFSET_SD_PCT, n) + rng.normal(0.0, RH_NOISE_PCT, (steps, n))
    measured = np.ones((steps, n), dtype=bool)
    silenced = np.zeros((steps, n), dtype=bool)
    for e in faults:
        i0, i1 = (int(i) for i in np.searchsorted(t_s, [e.start_s, e.end_s]))
        s = e.sensor
        if i0 >= steps:
            continue
        if e.kind == "sensor_stuck":
            frozen_temp, frozen_rh = stuck_at.setdefault(e, (float(temp[i0, s]), float(rh[i0, s])))
            temp[i0:i1, s] = frozen_temp
            rh[i0:i1, s] = frozen_rh
        elif e.kind == "sensor_spikes":
            hit = rng.random(i1 - i0) < e.value
            size = rng.uniform(*SPIKE_C, i1 - i0) * rng.choice([-1.0, 1.0], i1 - i0)
            temp[i0:i1, s] += np.where(hit, size, 0.0)
        elif e.kind == "sensor_drift":
            hours = (t_s[i0:i1] - e.start_s) / 3600.0
            temp[i0:i1, s] += e.value * hours
            rh[i0:i1, s] -= 2.0 * e.value * hours
        elif e.kind == "sensor_dropout":
            silenced[i0:i1, s] = True
    volts = battery.loaded_mv(battery_used, air_c)
    garbage_p = np.clip((battery.GARBAGE_BELOW_MV - volts) / 300.0, 0.0, 0.9)
    health = (health_rng or rng).random((steps, n, 2))
    garbage = health[..., 0] < garbage_p
    temp = np.where(garbage, np.where(rng.random((steps, n)) < 0.5, rng.uniform(-40.0, 85.0, (steps, n)), np.nan),
                    temp)
    rh = np.where(garbage, rng.choice(np.array([0.0, 100.0, np.nan]), (steps, n)), rh)
    measured &= volts >= battery.DEAD_BELOW_MV
    reboot = garbage & (health[..., 1] < BROWNOUT_RESET_P)
    return TagReadings(temp, np.clip(rh, 0.0, 100.0), volts, measured, measured & ~silenced,
                       _sequence(measured, reboot, first_seq))


def _sequence(measured: BoolArray, reboot: BoolArray, first_seq: IntGrid) -> IntGrid:
    """The RAWv2 measurement counter: +1 per measurement, back to 0 after a brown-out reboot, wraps at 65535."""
    counted = np.cumsum(measured, axis=0) - 1 + first_seq
    steps = measured.shape[0]
    index = np.arange(steps)[:, None]
    last_reboot = np.maximum.accumulate(np.where(reboot, index, -1), axis=0)
    base = np.take_along_axis(counted, np.maximum(last_reboot, 0), axis=0)
    since_reboot = np.where(last_reboot >= 0, counted - base, counted)
    return since_reboot % 65535


@dataclass
class Radio:
    """Each tag's link to its gateway: mean RSSI and clock."""

    rssi_mean_dbm: FloatArray
    clock_ppm: FloatArray
    phase_s: FloatArray

    @classmethod
    def draw(cls, sensors: int, period_s: float, rng: np.random.Generator) -> Radio:
        """Seeded link qualities and clocks for `sensors` tags."""
        return cls(rng.uniform(*RSSI_MEAN_DBM, sensors), rng.normal(0.0, CLOCK_PPM_SD, sensors),
                   rng.uniform(0.0, period_s * 0.5, sensors))


@dataclass
class Reception:
    """Which frames the gateway hears and when: (T, S) grids."""

    heard: BoolArray
    rssi_dbm: IntGrid
    ts_ms: IntGrid
    duplicated: BoolArray


def receive(radio: Radio, audible: BoolArray, t_s: FloatArray, start_ms: int, rng: np.random.Generator, *,
            lossy: bool = True) -> Reception:
    """BLE reception of every measurement: fading RSSI, loss near the edge, receive-time jitter, duplicates."""
    shape = audible.shape
    rssi = np.rint(radio.rssi_mean_dbm + rng.normal(0.0, RSSI_FADING_SD_DB, shape)).astype(np.int64)
    rssi = np.clip(rssi, -127, -20)
    if lossy:
        loss_p = LOSS_FLOOR + 0.5 / (1.0 + np.exp((rssi - LOSS_EDGE_DBM) / 2.0))
        heard = audible & (rng.random(shape) >= loss_p)
        duplicated = heard & (rng.random(shape) < DUPLICATE_P)
    else:
        heard, duplicated = audible.copy(), np.zeros(shape, dtype=bool)
    sample_s = radio.phase_s + t_s[:, None] * (1.0 + radio.clock_ppm * 1e-6)
    jitter_ms = rng.uniform(*RECEIVE_JITTER_MS, shape)
    ts = start_ms + np.rint(sample_s * 1000.0 + jitter_ms).astype(np.int64)
    return Reception(heard, rssi, ts, duplicated)
