"""Input drivers, registered by name: each delivers raw advertisement envelopes to the agent.

A driver only moves bytes; decoding, counting and rejecting happen once, in edge_agent.decode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from edge_agent.config import InputConfig

Deliver = Callable[[bytes], None]
"""Called with one UDP-envelope datagram (protocol.datagram) per received advertisement."""


class Input(Protocol):
    """A running source of advertisements."""

    name: str

    def start(self, deliver: Deliver) -> None:
        """Begin delivering envelopes (from a thread of the driver's own)."""

    def stop(self) -> None:
        """Stop delivering and release sockets/files; returns once no more calls to deliver happen."""


@dataclass(frozen=True)
class Driver:
    """A registry entry: how to check a config section and build the input from it."""

    check: Callable[[InputConfig], str | None]
    create: Callable[[InputConfig], Input]


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
