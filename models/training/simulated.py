"""The simulator as training and evaluation data: the one module of `models.training` that imports `firmware_sim`.

Training, threshold calibration and the held-out suite reach the simulator through these typed calls only, so the
simulator's surface the models depend on is written down in one place.
"""

from __future__ import annotations

from firmware_sim.dataset import Dataset
from firmware_sim.scenarios import SCENARIOS, generate, normal
from firmware_sim.synth import Label

__all__ = ["Dataset", "Label", "normal_dataset", "scenario_dataset", "scenario_names", "scenario_profile"]


def scenario_names() -> list[str]:
    """Every labelled scenario the simulator can run, in catalogue order."""
    return list(SCENARIOS)


def scenario_profile(name: str) -> str:
    """The profile (product category) scenario `name` runs in; KeyError for an unknown scenario."""
    return SCENARIOS[name].profile


def scenario_dataset(name: str, seed: int, *, days: float, sample_period_s: float) -> Dataset:
    """Scenario `name` for `days`, deterministic by `seed`; its first sensor is the affected one."""
    return generate(name, seed, days=days, sample_period_s=sample_period_s)


def normal_dataset(profile: str, seed: int, *, sensors: int, days: float, sample_period_s: float) -> Dataset:
    """Normal-only data for `profile` (routine benign events, never an incident), deterministic by `seed`."""
    return normal(profile, seed, sensors=sensors, days=days, sample_period_s=sample_period_s)
