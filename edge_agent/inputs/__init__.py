"""Input drivers, registered by name: each delivers raw advertisement envelopes to the agent.

A driver only moves bytes; decoding, counting and rejecting happen once, in edge_agent.decode.
"""

from __future__ import annotations

from edge_agent.inputs.base import Deliver, Driver, Input, InputSection

__all__ = ["DRIVERS", "Deliver", "Driver", "Input", "InputSection"]


def _registry() -> dict[str, Driver]:
    from edge_agent.inputs import replay, udp

    drivers = {"udp": udp.DRIVER, "replay": replay.DRIVER}
    try:
        from edge_agent.inputs import ble
    except ImportError:  # pragma: no cover - the module itself imports nothing optional at load time
        return drivers
    drivers["ble"] = ble.DRIVER
    return drivers


DRIVERS: dict[str, Driver] = _registry()
