"""What an input driver is: the running input, its delivery callback, its config section and its registry entry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

Deliver = Callable[[bytes], None]
"""Called with one UDP-envelope datagram (protocol.datagram) per received advertisement."""


class Input(Protocol):
    """A running source of advertisements."""

    name: str

    def start(self, deliver: Deliver) -> None:
        """Begin delivering envelopes (from a thread of the driver's own)."""

    def stop(self) -> None:
        """Stop delivering and release sockets/files; returns once no more calls to deliver happen."""

    def lost(self) -> dict[str, int]:
        """Advertisements this input lost before delivering them, by reason, counted since it started (a socket
        buffer that overflowed); {} when none or when it cannot tell."""


class InputSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, tag_field="type"):
    """One `[[inputs]]` section. Each driver subclasses it with its own fields and its registry name as the tag
    (`class UdpSection(InputSection, tag="udp")`), so a section holds exactly what its driver needs."""

    @property
    def driver(self) -> str:
        """The registry name of this section's driver (its `type`)."""
        return str(self.__struct_config__.tag)


@dataclass(frozen=True)
class Driver:
    """A registry entry: the driver's config section, a check of what a schema cannot say (None: fine, else
    "key: reason"), and how to build the input from a checked section."""

    section: type[InputSection]
    check: Callable[[Any], str | None]
    create: Callable[[Any], Input]
