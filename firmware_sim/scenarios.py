"""The scenario library: seeded, labelled runs of incidents and benign events, and normal-only training data.

In every scenario the first sensor is the affected one; the others are healthy references of the
same profile living through their normal routine (defrosts, short door openings).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np

from firmware_sim.ambient import SITES_FOR_PROFILE
from firmware_sim.dataset import Dataset, synthesize
from firmware_sim.events import BENIGN_KINDS, INCIDENT_KINDS, Event, benign_events, without_overlaps
from firmware_sim.fleet import sensor_mac
from firmware_sim.synth import DEFAULT_START_MS, Label, Plan
from protocol.profiles import PROFILES

__all__ = ["BENIGN_KINDS", "INCIDENT_KINDS", "SCENARIOS", "Dataset", "Label", "Scenario", "build_plan",
           "generate", "normal", "routine_plan"]

HOUR: Final = 3600.0
Injector = Callable[[Plan, float, np.random.Generator], None]


@dataclass(frozen=True)
class Scenario:
    """A named, seeded situation: `kind` happens to the first of `sensors` tags of `profile`."""

    name: str
    kind: str
    profile: str
    description: str
    inject: Injector
    sensors: int = 4
    site: str | None = None  # None: drawn per sensor from the profile's usual sites


def _incident_start(duration_s: float, rng: np.random.Generator, low: float = 0.25, high: float = 0.45) -> float:
    return float(rng.uniform(low, high) * duration_s)


def _add(plan: Plan, event: Event, *, clear: tuple[str, ...] = (), until_end: bool = False) -> None:
    plan.events = without_overlaps(plan.events, event, kinds=clear, until_end=until_end)
    plan.events.append(event)


def _compressor_failure(plan: Plan, duration_s: float, rng: np.random.Generator) -> None:
    t0 = _incident_start(duration_s, rng)
    _add(plan, Event(0, "compressor_failure", t0, duration_s), clear=("defrost", "door_short"), until_end=True)


def _refrigerant_leak(plan: Plan, duration_s: float, rng: np.random.Generator) -> None:
    t0 = _incident_start(duration_s, rng, 0.1, 0.2)
    _add(plan, Event(0, "refrigerant_leak", t0, duration_s, value=float(rng.uniform(0.2, 0.35))))


def _door_left_open(plan: Plan, duration_s: float, rng: np.random.Generator) -> None:
    t0 = _incident_start(duration_s, rng)
    _add(plan, Event(0, "door_left_open", t0, t0 + rng.uniform(0.75, 2.5) * HOUR), clear=("door_short", "defrost"))


def _power_loss(plan: Plan, duration_s: float, rng: np.random.Generator) -> None:
    t0 = _incident_start(duration_s, rng)
    _add(plan, Event(0, "power_loss", t0, t0 + rng.uniform(2.0, 5.0) * HOUR), clear=("defrost", "door_short"))


def _defrost_stuck(plan: Plan, duration_s: float, rng: np.random.Generator) -> None:
    t0 = _incident_start(duration_s, rng)
    _add(plan, Event(0, "defrost_stuck", t0, t0 + rng.uniform(2.0, 4.0) * HOUR), clear=("defrost", "door_short"))


def _sensor_fault(kind: str, hours: tuple[float, float] | None, value: tuple[float, float] = (0.0, 0.0)) -> Injector:
    def inject(plan: Plan, duration_s: float, rng: np.random.Generator) -> None:
        t0 = _incident_start(duration_s, rng)
        end = duration_s if hours is None else min(duration_s, t0 + rng.uniform(*hours) * HOUR)
        _add(plan, Event(0, kind, t0, end, value=float(rng.uniform(*value))))
    return inject


def _battery_depletion(plan: Plan, duration_s: float, rng: np.random.Generator) -> None:
    # Accelerated: the cell goes from just past its knee (battery.KNEE_AT) to empty within the run.
    start = float(rng.uniform(0.87, 0.9))
    plan.battery_used[0] = start
    plan.battery_use_per_day[0] = (1.02 - start) * 86400.0 / duration_s
    plan.watch_battery[0] = True


def _wrong_profile(plan: Plan, duration_s: float, rng: np.random.Generator) -> None:
    # A pharma 2–8 °C logger put into a freezer: vaccines freezing is a classic cold-chain loss.
    plan.physical_profiles[0] = "frozen"
    plan.events = [e for e in plan.events if e.sensor != 0]
    plan.events += [e for e in benign_events(["frozen"], duration_s, rng) if e.kind == "defrost"]
    plan.events.append(Event(0, "wrong_profile", 0.0, duration_s))


def _benign_only(plan: Plan, duration_s: float, rng: np.random.Generator) -> None:
    """Nothing beyond the routine events every space has."""


def _busy_doors(plan: Plan, duration_s: float, rng: np.random.Generator) -> None:
    count = rng.poisson(12 * duration_s / 86400.0)
    for start in np.sort(rng.uniform(0.0, duration_s - 600.0, count)):
        _add(plan, Event(0, "door_short", float(start), float(start) + rng.uniform(60.0, 300.0)))


def _setpoint_change(plan: Plan, duration_s: float, rng: np.random.Generator) -> None:
    profile = PROFILES[plan.physical_profiles[0]]
    target = profile.setpoint_c + float(rng.choice([-1.0, 1.0])) * float(rng.uniform(1.0, 3.0))
    if profile.high_c is not None:
        target = min(target, profile.high_c - 2.0)
    if profile.low_c is not None:
        target = max(target, profile.low_c + 2.0)
    t0 = _incident_start(duration_s, rng)
    _add(plan, Event(0, "setpoint_change", t0, t0, value=round(target, 1)))


def _precool(plan: Plan, duration_s: float, rng: np.random.Generator) -> None:
    plan.precool[0] = True
    plan.events = [e for e in plan.events if not (e.sensor == 0 and e.start_s < 4 * HOUR)]
    plan.events.append(Event(0, "precool", 0.0, 0.0))


def _catalogue() -> dict[str, Scenario]:
    items = [
        Scenario("compressor_failure", "compressor_failure", "frozen",
                 "Reefer compressor dies mid-trip in summer: slow warming toward ambient, no recovery.",
                 _compressor_failure, site="truck_summer"),
        Scenario("refrigerant_leak", "refrigerant_leak", "frozen",
                 "Cooling capacity fades to 20-35 %: the duty cycle creeps up for hours before any limit.",
                 _refrigerant_leak, site="truck_summer"),
        Scenario("door_left_open", "door_left_open", "chilled",
                 "Cold-room door left open 45-150 min: fast rise toward ambient, humid air, recovery on close.",
                 _door_left_open, site="warehouse"),
        Scenario("power_loss", "power_loss", "pharma_2_8",
                 "Genset / mains loss for 2-5 h: nothing runs, the shipper warms, then pulls back down.",
                 _power_loss, site="truck_summer"),
        Scenario("defrost_stuck", "defrost_stuck", "frozen",
                 "Defrost termination fails: the evaporator heater stays on 2-4 h, air warms and saturates.",
                 _defrost_stuck),
        Scenario("sensor_stuck", "sensor_stuck", "chilled",
                 "Tag's sensor hangs for 3-8 h: exactly repeated temperature and humidity.", _sensor_fault(
                     "sensor_stuck", (3.0, 8.0))),
        Scenario("sensor_spikes", "sensor_spikes", "chilled",
                 "Loose contact for 2-6 h: single readings jump 4-25 °C (15 % of samples).",
                 _sensor_fault("sensor_spikes", (2.0, 6.0), (0.12, 0.18))),
        Scenario("sensor_drift", "sensor_drift", "pharma_2_8",
                 "Sensor drifts +0.2-0.5 °C per hour until the end while the space is fine.",
                 _sensor_fault("sensor_drift", None, (0.2, 0.5))),
        Scenario("sensor_dropout", "sensor_dropout", "frozen",
                 "Tag goes silent for 1-4 h (fell behind a pallet); frames are simply missing.",
                 _sensor_fault("sensor_dropout", (1.0, 4.0))),
        Scenario("battery_depletion", "battery_depletion", "frozen",
                 "Coin cell past its knee (accelerated): voltage falls, garbage readings, reboots, then silence.",
                 _battery_depletion),
        Scenario("wrong_profile", "wrong_profile", "pharma_2_8",
                 "A 2-8 °C pharma logger placed in a freezer: configured pharma_2_8, reads about -21 °C.",
                 _wrong_profile),
        Scenario("defrost", "defrost", "frozen",
                 "Normal freezer with defrost every 8 h (30 min, air briefly above -18 °C): benign.", _benign_only),
        Scenario("door_short", "door_short", "chilled",
                 "Busy loading bay: a dozen 1-5 min door openings a day, each recovers: benign.", _busy_doors,
                 site="warehouse"),
        Scenario("setpoint_change", "setpoint_change", "frozen",
                 "Ops move the setpoint 1-3 °C within the band; the air settles at the new value: benign.",
                 _setpoint_change),
        Scenario("precool", "precool", "chilled",
                 "Trip start: the reefer is switched on at ambient and pulls down to its setpoint: benign.",
                 _precool, site="truck_summer"),
    ]
    items += [Scenario(f"normal_{p}", "normal", p, f"Normal operation of {p} spaces, routine events only.",
                       _benign_only) for p in PROFILES]
    return {s.name: s for s in items}


SCENARIOS: Final[dict[str, Scenario]] = _catalogue()


def routine_plan(profiles: list[str], macs: list[str], duration_s: float, rng: np.random.Generator,
                 site: str | None = None) -> Plan:
    """Spaces of `profiles` (one per MAC) living through their routine: defrosts and short door openings."""
    drawn = rng.integers(0, 1 << 30, len(profiles))
    sites = [site or SITES_FOR_PROFILE[p][d % len(SITES_FOR_PROFILE[p])] for p, d in zip(profiles, drawn, strict=True)]
    plan = Plan(macs=macs, profiles=list(profiles), physical_profiles=list(profiles), sites=sites,
                battery_used=[float(u) for u in rng.uniform(0.0, 0.6, len(macs))])
    plan.events = benign_events(plan.physical_profiles, duration_s, rng)
    return plan


def build_plan(name: str, seed: int, *, duration_s: float, macs: list[str] | None = None,
               profiles: list[str] | None = None) -> Plan:
    """The plan of scenario `name` (KeyError if unknown) for `macs` (default: its own sensors on gateway 0),
    all of the scenario's profile unless `profiles` (one per MAC) says otherwise."""
    scenario = SCENARIOS[name]
    macs = macs or [sensor_mac(0, i) for i in range(scenario.sensors)]
    rng = np.random.default_rng([seed, 0x5CE])
    plan = routine_plan(profiles or [scenario.profile] * len(macs), macs, duration_s, rng, scenario.site)
    scenario.inject(plan, duration_s, rng)
    return plan


def generate(name: str, seed: int, *, days: float = 1.0, sample_period_s: float = 60.0,
             start_ms: int = DEFAULT_START_MS) -> Dataset:
    """Scenario `name` (see SCENARIOS) run for `days`, deterministic by `seed`."""
    if name not in SCENARIOS:
        raise KeyError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
    duration_s = days * 86400.0
    plan = build_plan(name, seed, duration_s=duration_s)
    return synthesize(plan, seed=seed, duration_s=duration_s, sample_period_s=sample_period_s, start_ms=start_ms)


def normal(profile: str, seed: int, *, sensors: int = 4, days: float = 2.0, sample_period_s: float = 60.0,
           start_ms: int = DEFAULT_START_MS) -> Dataset:
    """Normal-only training data: routine defrosts and doors, sometimes a setpoint change or a pre-cool
    (all labelled benign), never an incident."""
    if profile not in PROFILES:
        raise KeyError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")
    duration_s = days * 86400.0
    rng = np.random.default_rng([seed, 0x40A])
    plan = routine_plan([profile] * sensors, [sensor_mac(0, i) for i in range(sensors)], duration_s, rng)
    for s in range(sensors):
        roll = rng.random()
        if roll < 0.1:
            plan.precool[s] = True
            plan.events = [e for e in plan.events if not (e.sensor == s and e.start_s < 4 * HOUR)]
            plan.events.append(Event(s, "precool", 0.0, 0.0))
        elif roll < 0.25:
            sp = PROFILES[profile].setpoint_c + float(rng.choice([-1.5, -1.0, 1.0]))
            t0 = float(rng.uniform(0.2, 0.8) * duration_s)
            plan.events.append(Event(s, "setpoint_change", t0, t0, value=sp))
    return synthesize(plan, seed=seed, duration_s=duration_s, sample_period_s=sample_period_s, start_ms=start_ms)
