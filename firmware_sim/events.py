"""Events that happen to spaces and tags (defrosts, doors, failures, sensor faults), and how they act on physics."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

import numpy as np

from firmware_sim.physics import PHYSICS, Drivers, FloatArray

BENIGN_KINDS: Final = ("defrost", "door_short", "setpoint_change", "precool")
INCIDENT_KINDS: Final = (
    "compressor_failure", "refrigerant_leak", "door_left_open", "power_loss", "defrost_stuck",
    "sensor_stuck", "sensor_spikes", "sensor_drift", "sensor_dropout", "battery_depletion", "wrong_profile",
)
SENSOR_FAULT_KINDS: Final = frozenset({"sensor_stuck", "sensor_spikes", "sensor_drift", "sensor_dropout"})
# Kinds whose label lasts until the air is back in the thermostat band after the cause ended.
RECOVERING_KINDS: Final = frozenset({"defrost", "door_short", "door_left_open", "power_loss", "defrost_stuck"})
RECOVERY_MARGIN_C: Final = 0.3
SHORT_DOOR_S: Final = (30.0, 180.0)


@dataclass(frozen=True)
class Event:
    """Something that happens to sensor `sensor` (index) from `start_s` to `end_s` (simulated seconds).

    `value` is kind-specific: the new setpoint (setpoint_change), the remaining cooling capacity at the
    end (refrigerant_leak), drift in °C per hour (sensor_drift), spike probability (sensor_spikes).
    """

    sensor: int
    kind: str
    start_s: float
    end_s: float
    value: float = 0.0

    @property
    def benign(self) -> bool:
        """Benign events are expected operations that must not raise alerts."""
        return self.kind in BENIGN_KINDS


def benign_events(profiles: list[str], duration_s: float, rng: np.random.Generator, *,
                  first_sensor: int = 0) -> list[Event]:
    """The routine of every space: periodic defrosts and short door openings (seeded)."""
    events: list[Event] = []
    for offset, profile in enumerate(profiles):
        sensor = first_sensor + offset
        phys = PHYSICS[profile]
        if phys.defrost_every_s > 0:
            start = rng.uniform(0.1, 1.0) * phys.defrost_every_s
            while start < duration_s:
                events.append(Event(sensor, "defrost", start, start + phys.defrost_duration_s))
                start += phys.defrost_every_s
        count = rng.poisson(phys.door_rate_per_day * duration_s / 86400.0)
        for start in np.sort(rng.uniform(0.0, duration_s, count)):
            events.append(Event(sensor, "door_short", float(start), float(start) + rng.uniform(*SHORT_DOOR_S)))
    return events


def without_overlaps(events: list[Event], incident: Event, *, kinds: tuple[str, ...],
                     until_end: bool = False) -> list[Event]:
    """Drop routine events of `kinds` on the incident's sensor that overlap it (or follow it, if `until_end`)."""
    kept = []
    for e in events:
        clash = e.sensor == incident.sensor and e.kind in kinds and e.end_s > incident.start_s - 600
        if clash and (until_end or e.start_s < incident.end_s + 600):
            continue
        kept.append(e)
    return kept


def render(events: list[Event], drivers: Drivers, t_s: FloatArray) -> None:
    """Write the physical events into the per-step driver arrays (shape (T, S), steps at times `t_s`)."""
    for e in events:
        i0, i1 = np.searchsorted(t_s, [e.start_s, e.end_s])
        s = e.sensor
        if e.kind in ("door_short", "door_left_open"):
            drivers.door_open[i0:i1, s] = True
        elif e.kind in ("defrost", "defrost_stuck"):
            drivers.defrost[i0:i1, s] = True
        elif e.kind == "power_loss":
            drivers.powered[i0:i1, s] = False
        elif e.kind == "compressor_failure":
            drivers.capacity[i0:, s] = 0.0
        elif e.kind == "refrigerant_leak":
            ramp = np.clip((t_s[i0:] - e.start_s) / max(e.end_s - e.start_s, 1.0), 0.0, 1.0)
            drivers.capacity[i0:, s] = 1.0 - (1.0 - e.value) * ramp
        elif e.kind == "setpoint_change":
            drivers.setpoint_c[i0:, s] = e.value


def label_end_s(event: Event, air_c: FloatArray, setpoint_c: FloatArray, hysteresis_c: float,
                t_s: FloatArray, run_end_s: float) -> float:
    """When the label for `event` ends, from the true air temperature of its sensor (arrays over time).

    Thermal upsets last until the air is back inside the thermostat band after the cause ended;
    pre-cooling until the air first reaches the band; a setpoint change until the air settles in the
    new band; everything else at the end of its cause.
    """
    if event.kind in RECOVERING_KINDS:
        after = np.flatnonzero((t_s >= event.end_s) & (air_c <= setpoint_c + hysteresis_c + RECOVERY_MARGIN_C))
    elif event.kind == "precool":
        after = np.flatnonzero((t_s >= event.start_s) & (air_c <= setpoint_c + hysteresis_c))
    elif event.kind == "setpoint_change":
        after = np.flatnonzero((t_s >= event.start_s) & (np.abs(air_c - setpoint_c) <= hysteresis_c))
    else:
        return min(event.end_s, run_end_s)
    return float(t_s[after[0]]) if len(after) else run_end_s


def shifted(events: list[Event], first_sensor: int) -> list[Event]:
    """The same events renumbered onto sensors starting at `first_sensor`."""
    return [replace(e, sensor=e.sensor + first_sensor) for e in events]
