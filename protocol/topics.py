"""MQTT topic scheme v1: `cw/v1/{gateway_id}/{kind}`; the broker user name is the gateway id."""

from __future__ import annotations

import re
from typing import Final, Literal, get_args

ROOT: Final = "cw/v1"
Kind = Literal["telemetry", "alerts", "status", "reported", "desired", "replay"]
KINDS: Final[tuple[str, ...]] = get_args(Kind)
# Lower-case letters, digits, '-' and '_': safe as an MQTT topic level, a broker user name,
# an InfluxDB tag value and a file name. No '+', '#', '/' or '$' can ever appear.
GATEWAY_ID_RE: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")  # fullmatch: `$` would let "gw1\n" pass
SHARED_GROUP: Final = "ingest"


class TopicError(ValueError):
    """A topic or gateway id that does not follow the v1 scheme."""


def check_gateway_id(gateway_id: str) -> str:
    """Return `gateway_id` unchanged, or raise TopicError saying why it is not valid."""
    if not GATEWAY_ID_RE.fullmatch(gateway_id):
        raise TopicError(
            f"gateway id {gateway_id!r} is not valid: use 1-64 of a-z, 0-9, '-', '_', "
            "starting with a letter or digit"
        )
    return gateway_id


def topic(gateway_id: str, kind: Kind) -> str:
    """The topic on which `gateway_id` publishes (or receives, for `desired` and `replay`) messages of `kind`."""
    if kind not in KINDS:
        raise TopicError(f"unknown topic kind {kind!r}; expected one of {', '.join(KINDS)}")
    return f"{ROOT}/{check_gateway_id(gateway_id)}/{kind}"


def parse_topic(name: str) -> tuple[str, Kind]:
    """Split a v1 topic into (gateway_id, kind), raising TopicError on anything else."""
    parts = name.split("/")
    if len(parts) != 4 or f"{parts[0]}/{parts[1]}" != ROOT:
        raise TopicError(f"topic {name!r} is not of the form {ROOT}/<gateway>/<kind>")
    gateway_id, kind = parts[2], parts[3]
    check_gateway_id(gateway_id)
    if kind not in KINDS:
        raise TopicError(f"topic {name!r} has unknown kind {kind!r}")
    return gateway_id, kind  # type: ignore[return-value]


def subscription(kind: Kind, shared_group: str | None = SHARED_GROUP) -> str:
    """Wildcard subscription for every gateway's `kind`, as a shared subscription by default."""
    pattern = f"{ROOT}/+/{kind}"
    return f"$share/{shared_group}/{pattern}" if shared_group else pattern
