"""The tag's CR2477 lithium coin cell: flat plateau then a knee, sag in the cold, brown-out near empty."""

from __future__ import annotations

from typing import Final

import numpy as np

from firmware_sim.physics import FloatArray

PLATEAU_START_MV: Final = 3050.0
PLATEAU_END_MV: Final = 2920.0
KNEE_AT: Final = 0.85  # fraction of capacity used where the plateau ends
EMPTY_MV: Final = 2000.0
KNEE_MV: Final = 2500.0  # below this (loaded) the tag is "low battery" for an operator
GARBAGE_BELOW_MV: Final = 2350.0  # cheap tags start sending nonsense readings
DEAD_BELOW_MV: Final = 2050.0  # the radio no longer starts
# Internal resistance of lithium cells rises in the cold: mV lost per °C below 10 °C, at the TX pulse.
COLD_SAG_MV_PER_C: Final = 2.5
NORMAL_USE_PER_DAY: Final = 1.0 / (2.5 * 365)  # ~2.5 years on one cell


def open_circuit_mv(used: FloatArray) -> FloatArray:
    """Cell voltage for the fraction of capacity used (0 new, 1 empty); never rises as `used` grows."""
    used = np.clip(used, 0.0, 1.2)
    plateau = PLATEAU_START_MV + (PLATEAU_END_MV - PLATEAU_START_MV) * np.minimum(used, KNEE_AT) / KNEE_AT
    past_knee = np.maximum(used - KNEE_AT, 0.0) / (1.0 - KNEE_AT)
    return plateau - (PLATEAU_END_MV - EMPTY_MV) * past_knee**2.2


def loaded_mv(used: FloatArray, temp_c: FloatArray) -> FloatArray:
    """What the tag measures while transmitting: open-circuit voltage minus the sag, worse in the cold and
    when nearly empty."""
    cold = np.maximum(10.0 - temp_c, 0.0) * COLD_SAG_MV_PER_C
    depleted = 1.0 + 3.0 * np.clip((used - 0.7) / 0.3, 0.0, 1.0)
    return open_circuit_mv(used) - cold * depleted
