"""The gateway's hard-rule defaults, declared once: the agent's config and the training side's replay of its rules
(`models.training.evaluate`) both read them, so the bench judges the rules a gateway really runs."""

from __future__ import annotations

from typing import Final

RANGE_HOLD_S: Final = 1800.0  # out of band this long before `temperature_out_of_range` opens
# Freezers defrost every few hours and the air rises above -18 °C for up to ~40 min: that is normal.
RANGE_HOLD_BY_PROFILE_S: Final[dict[str, float]] = {"frozen": 2700.0}
CLEAR_AFTER_S: Final = 300.0  # a rule's condition gone this long clears its alert
CLEAR_MARGIN_C: Final = 0.3  # a range alert clears only this far inside the band (hysteresis)
SILENT_AFTER_S: Final = 900.0  # no reading from a tag this long opens `sensor_silent`
