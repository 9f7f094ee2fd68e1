"""Who is simulated: deterministic sensor MACs and profiles per gateway, so configs can name them."""

from __future__ import annotations

from dataclasses import dataclass

from protocol.profiles import PROFILES


@dataclass(frozen=True, slots=True)
class SimSensor:
    """One simulated tag: its MAC and the profile of the space it sits in."""

    mac: str
    profile: str


def sensor_mac(gateway_index: int, sensor_index: int) -> str:
    """A stable, locally administered MAC for sensor `sensor_index` of gateway `gateway_index`."""
    if not (0 <= gateway_index < 256 and 0 <= sensor_index < 256):
        raise ValueError("gateway and sensor indexes must be in 0..255")
    return f"c2:00:00:00:{gateway_index:02x}:{sensor_index:02x}"


def gateway_sensors(gateway_index: int, count: int, profiles: list[str]) -> list[SimSensor]:
    """`count` sensors for one gateway, profiles assigned round-robin from `profiles`."""
    unknown = [p for p in profiles if p not in PROFILES]
    if unknown or not profiles:
        raise ValueError(f"unknown profile(s) {unknown}; choose from {', '.join(PROFILES)}")
    return [SimSensor(sensor_mac(gateway_index, i), profiles[i % len(profiles)]) for i in range(count)]
