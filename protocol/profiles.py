"""Asset profiles: the temperature band each kind of goods must stay in (shared by sim, agent, cloud)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Profile:
    """An allowed temperature band in °C (None: unbounded on that side) and its usual setpoint."""

    name: str
    low_c: float | None
    high_c: float | None
    setpoint_c: float

    def contains(self, temp_c: float) -> bool:
        """Whether `temp_c` is inside the band."""
        return (self.low_c is None or temp_c >= self.low_c) and (self.high_c is None or temp_c <= self.high_c)


PROFILES: Final[dict[str, Profile]] = {
    p.name: p
    for p in (
        Profile("frozen", None, -18.0, -21.0),
        Profile("chilled", 0.0, 4.0, 2.0),
        Profile("pharma_2_8", 2.0, 8.0, 5.0),
        Profile("ambient", 15.0, 25.0, 20.0),
    )
}
