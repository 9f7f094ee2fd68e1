"""From a plan (who, where, what happens) to tag frames: physics → tag → radio → RAWv2, in time chunks.

The same Synthesizer feeds datasets (one big chunk) and the live UDP emitter (small chunks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from firmware_sim import battery, frames
from firmware_sim.ambient import ambient_series
from firmware_sim.events import SENSOR_FAULT_KINDS, Event, label_end_s, render
from firmware_sim.physics import (
    MAX_STEP_S,
    BoolArray,
    Drivers,
    FloatArray,
    SpaceParams,
    SpaceState,
    setpoints,
    simulate,
)
from firmware_sim.sensor import IntGrid, Radio, receive, tag_readings

DEFAULT_START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


@dataclass(frozen=True)
class Label:
    """Ground truth: `kind` happened to `sensor` (MAC) from `start_ms` to `end_ms`; benign = must not alert."""

    sensor: str
    kind: str
    start_ms: int
    end_ms: int
    benign: bool


@dataclass
class Plan:
    """Who is simulated and what happens to them. Lists are per sensor."""

    macs: list[str]
    profiles: list[str]  # as configured (what the agent is told, the `profile` column)
    physical_profiles: list[str]  # the space the tag really sits in (differs for wrong_profile)
    sites: list[str]
    events: list[Event] = field(default_factory=list)
    precool: list[bool] = field(default_factory=list)  # space starts at ambient
    battery_used: list[float] = field(default_factory=list)  # fraction of capacity used at the start
    battery_use_per_day: list[float] = field(default_factory=list)
    watch_battery: list[bool] = field(default_factory=list)  # label battery_depletion from the knee on

    def __post_init__(self) -> None:
        n = len(self.macs)
        self.precool = self.precool or [False] * n
        self.battery_used = self.battery_used or [0.3] * n
        self.battery_use_per_day = self.battery_use_per_day or [battery.NORMAL_USE_PER_DAY] * n
        self.watch_battery = self.watch_battery or [False] * n


@dataclass
class Block:
    """Consecutive samples of every sensor, (T, S) grids: RAWv2 codes, reception, and the true state."""

    t_s: FloatArray
    temp_code: IntGrid
    humidity_code: IntGrid
    battery_code: IntGrid
    seq: IntGrid
    heard: BoolArray
    duplicated: BoolArray
    rssi_dbm: IntGrid
    ts_ms: IntGrid
    true_air_c: FloatArray
    cooling: BoolArray
    setpoint_c: FloatArray
    battery_loaded_mv: FloatArray


class Synthesizer:
    """Runs a plan forward in chunks of samples; state (physics, sequence numbers, random streams) carries over."""

    def __init__(self, plan: Plan, *, seed: int, period_s: float, start_ms: int = DEFAULT_START_MS,
                 lossy: bool = True, jitter: bool = True, first_seq: int | None = None,
                 utc_offset_h: float = 0.0) -> None:
        if period_s <= 0:
            raise ValueError("sample period must be positive")
        self.plan = plan
        self.period_s = period_s
        self.start_ms = start_ms
        self.utc_offset_h = utc_offset_h  # the sites' local time: the air's day/night cycle follows it
        self.lossy = lossy
        self.jitter = jitter
        n = len(plan.macs)
        root = np.random.SeedSequence(seed)
        self._rng_setup, self._rng_ambient, self._rng_tag, self._rng_radio = (
            np.random.default_rng(s) for s in root.spawn(4))
        self._rng_health = np.random.default_rng(root.spawn(1)[0])  # a fifth stream: the first four are unchanged
        self.params = SpaceParams.for_profiles(plan.physical_profiles, self._rng_setup)
        self.base_setpoint = setpoints(plan.physical_profiles)
        self.radio = Radio.draw(n, period_s, self._rng_setup)
        seq0 = self._rng_setup.integers(0, 65535, n) if first_seq is None else np.full(n, first_seq)
        self._next_seq: IntGrid = seq0.astype(np.int64)
        self._ambient_seed = int(self._rng_setup.integers(0, 2**63))
        self.substeps = max(1, math.ceil(period_s / MAX_STEP_S))
        self.dt_s = period_s / self.substeps
        self.samples_done = 0
        self._faults = [e for e in plan.events if e.kind in SENSOR_FAULT_KINDS]
        self._physical = [e for e in plan.events if e.kind not in SENSOR_FAULT_KINDS]
        self._stuck_at: dict[Event, tuple[float, float]] = {}
        self.state = self._initial_state()

    def _ambient(self, t_s: FloatArray) -> tuple[FloatArray, FloatArray]:
        # Seeded once, evaluated at any times: chunking does not change the weather.
        return ambient_series(self.plan.sites, t_s, self.start_ms, np.random.default_rng(self._ambient_seed),
                              self.utc_offset_h)

    def _initial_state(self) -> SpaceState:
        state = SpaceState.settled(self.base_setpoint, self.params, self._rng_setup)
        if any(self.plan.precool):
            amb_c, amb_rh = self._ambient(np.zeros(1))
            cold = SpaceState.at_ambient(amb_c[0], amb_rh[0])
            pick = np.array(self.plan.precool)
            state.air_c = np.where(pick, cold.air_c, state.air_c)
            state.load_c = np.where(pick, cold.load_c, state.load_c)
            state.vapour_pa = np.where(pick, cold.vapour_pa, state.vapour_pa)
        return state

    def advance(self, samples: int) -> Block:
        """Simulate the next `samples` sample periods of every sensor."""
        n = len(self.plan.macs)
        k = self.substeps
        first_step = self.samples_done * k
        t_steps: FloatArray = self.dt_s * (first_step + np.arange(samples * k, dtype=np.float64) + 1)
        t_samples: FloatArray = t_steps[k - 1::k]
        amb_c, amb_rh = self._ambient(t_steps)
        shape = (samples * k, n)
        drivers = Drivers(amb_c, amb_rh, np.broadcast_to(self.base_setpoint, shape).copy(), np.ones(shape),
                          np.ones(shape, dtype=bool), np.zeros(shape, dtype=bool), np.zeros(shape, dtype=bool))
        render(self._physical, drivers, t_steps)
        traj = simulate(self.params, drivers, self.state, dt_s=self.dt_s, record_every=k)
        used = np.array(self.plan.battery_used) + np.array(self.plan.battery_use_per_day) * t_samples[:, None] / 86400
        tag = tag_readings(traj.air_c, traj.rh_pct, used, self._faults, t_samples, self._rng_tag,
                           first_seq=self._next_seq, stuck_at=self._stuck_at, health_rng=self._rng_health)
        self._next_seq = tag.seq[-1] + 1
        rx = receive(self.radio, tag.audible, t_samples, self.start_ms, self._rng_radio, lossy=self.lossy)
        if not self.jitter:
            rx.ts_ms = np.broadcast_to(self.start_ms + np.rint(t_samples * 1000).astype(np.int64)[:, None],
                                       (samples, n)).copy()
        self.samples_done += samples
        return Block(
            t_s=t_samples, temp_code=frames.temp_codes(tag.temp_c), humidity_code=frames.humidity_codes(tag.rh_pct),
            battery_code=frames.battery_codes(tag.battery_mv), seq=tag.seq, heard=rx.heard,
            duplicated=rx.duplicated, rssi_dbm=rx.rssi_dbm, ts_ms=rx.ts_ms, true_air_c=traj.air_c,
            cooling=traj.cooling, setpoint_c=drivers.setpoint_c[k - 1::k], battery_loaded_mv=tag.battery_mv,
        )

    def labels(self, truth: Block) -> list[Label]:
        """Ground-truth labels for the whole run so far; `truth` holds every sample since the start."""
        end_s = float(truth.t_s[-1]) if len(truth.t_s) else 0.0
        out: list[Label] = []
        for e in self.plan.events:
            if e.start_s > end_s:
                continue
            s = e.sensor
            stop = label_end_s(e, truth.true_air_c[:, s], truth.setpoint_c[:, s], float(self.params.hysteresis_c[s]),
                               truth.t_s, end_s)
            out.append(Label(self.plan.macs[s], e.kind, self._ms(e.start_s), self._ms(stop), e.benign))
        for s, watched in enumerate(self.plan.watch_battery):
            # the incident is the cell past its knee (the plateau's end), whatever the tag reports yet: the
            # operator's "low battery" voltage (battery.KNEE_MV) is the rule's trigger, not the fault's start
            used, per_day = self.plan.battery_used[s], self.plan.battery_use_per_day[s]
            if not watched or (used < battery.KNEE_AT and per_day <= 0):
                continue
            start = max(0.0, (battery.KNEE_AT - used) / per_day * 86400.0) if used < battery.KNEE_AT else 0.0
            if start <= end_s:
                out.append(Label(self.plan.macs[s], "battery_depletion", self._ms(start), self._ms(end_s), False))
        return sorted(out, key=lambda lab: (lab.start_ms, lab.sensor, lab.kind))

    def _ms(self, t_s: float) -> int:
        return self.start_ms + round(t_s * 1000)


def concat_blocks(blocks: list[Block]) -> Block:
    """Join consecutive blocks along time."""
    return Block(**{name: np.concatenate([getattr(b, name) for b in blocks])
                    for name in Block.__dataclass_fields__})


def first_samples(block: Block, samples: int) -> Block:
    """The first `samples` samples of a block."""
    return Block(**{name: getattr(block, name)[:samples] for name in Block.__dataclass_fields__})


def sensor_major(grid: NDArray[Any]) -> NDArray[Any]:
    """(T, S) → flat, all of sensor 0's samples first (time order), then sensor 1's, …"""
    flat: NDArray[Any] = np.ascontiguousarray(grid.T).ravel()
    return flat
