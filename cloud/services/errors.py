"""Refusals of the domain services: one base class whose `kind` says how a request failed; the API turns each kind
into one HTTP status in one place (`cloud.api.errors`), so no route decides that by reading a message."""

from __future__ import annotations

from typing import Final, Literal

Kind = Literal["invalid", "conflict", "not_found"]
# invalid: the request itself cannot be used; conflict: it is fine, but the thing's current state refuses it;
# not_found: it names something that does not exist.
KINDS: Final[tuple[Kind, ...]] = ("invalid", "conflict", "not_found")


class DomainError(ValueError):
    """A request a service refuses: `kind` (how), `reason` (machine-readable; defaults to the kind), `message`."""

    def __init__(self, message: str, *, kind: Kind = "invalid", reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.kind: Kind = kind
        self.reason = reason or kind
