"""The one codec for MQTT payloads: JSON via msgspec, strict, with reasons for every refusal."""

from __future__ import annotations

import re
from typing import Final, Literal, TypeVar

import msgspec

from protocol.messages import (
    PROFILE_PATTERN,
    SENSOR_ID_PATTERN,
    AlertEvent,
    Desired,
    Message,
    Replay,
    Reported,
    Status,
    TelemetryBatch,
)
from protocol.topics import Kind

MAX_PAYLOAD_BYTES: Final = 1024 * 1024
RejectReason = Literal["oversized", "malformed", "schema_version", "invalid"]

T = TypeVar("T", TelemetryBatch, AlertEvent, Status, Reported, Desired, Replay)

MESSAGE_TYPES: Final[dict[Kind, type[Message]]] = {
    "telemetry": TelemetryBatch,
    "alerts": AlertEvent,
    "status": Status,
    "reported": Reported,
    "desired": Desired,
    "replay": Replay,
}

class _OtherVersion(msgspec.Struct, tag_field="v", tag=0):
    """Decoding into `Message | _OtherVersion` makes msgspec require the `v` field (a lone tagged
    Struct would treat it as optional); v=0 lands here and is refused like any other version."""


_encoder = msgspec.json.Encoder()
_decoders: dict[type[Message], msgspec.json.Decoder[Message | _OtherVersion]] = {
    t: msgspec.json.Decoder(t | _OtherVersion) for t in MESSAGE_TYPES.values()
}


# Sensor ids and profiles of readings already matched against their patterns: a valid one stays valid, and a
# gateway's batches repeat the same few hundred. Bounded; emptied when full.
_SENSOR_ID_RE: Final = re.compile(SENSOR_ID_PATTERN)
_PROFILE_RE: Final = re.compile(PROFILE_PATTERN)
_valid_sensors: set[str] = set()
_valid_profiles: set[str] = set()
MAX_KEPT_IDS: Final = 200_000


class ProtocolError(ValueError):
    """A payload that is not a valid v1 message; `reason` is a short label for counters."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: RejectReason = reason
        self.detail = detail


def encode(message: Message) -> bytes:
    """Serialise a message to its wire form."""
    return _encoder.encode(message)


def desired_signing_bytes(message: Desired) -> bytes:
    """The bytes a desired document's `signature` covers: its wire form with `signature` left out. Both sides compute
    them from a decoded (or decode-normalised) struct, so the cloud and the gateway encode the same values the same
    way; the fleet key signs them (models/runtime/manifest.py `sign_desired` / `verify_desired`)."""
    return _encoder.encode(msgspec.structs.replace(message, signature=None))


def decode(data: bytes, kind: type[T]) -> T:
    """Parse and validate `data` as a `kind` message, or raise ProtocolError saying why not."""
    if len(data) > MAX_PAYLOAD_BYTES:
        raise ProtocolError("oversized", f"{len(data)} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit")
    try:
        message = _decoders[kind].decode(data)
    except msgspec.ValidationError as exc:
        text = str(exc)
        reason: RejectReason = "schema_version" if text.endswith(("at `$.v`", "field `v`")) else "invalid"
        raise ProtocolError(reason, text) from None
    except msgspec.DecodeError as exc:
        raise ProtocolError("malformed", str(exc)) from None
    if isinstance(message, _OtherVersion):
        raise ProtocolError("schema_version", "Invalid value 0 - at `$.v`")
    if isinstance(message, TelemetryBatch):
        _check_reading_ids(message)
    return message  # type: ignore[return-value]


def _check_reading_ids(batch: TelemetryBatch) -> None:
    """Each reading's sensor id and profile against their patterns (protocol.messages.ReadingSensorId), refused as
    msgspec words a pattern it refuses."""
    sensors, profiles = _valid_sensors, _valid_profiles
    if len(sensors) > MAX_KEPT_IDS or len(profiles) > MAX_KEPT_IDS:
        sensors.clear()
        profiles.clear()
    for i, reading in enumerate(batch.readings):
        sensor, profile = reading.sensor, reading.profile
        if sensor not in sensors:
            if not _SENSOR_ID_RE.match(sensor):
                raise ProtocolError("invalid", f"Expected `str` matching regex {SENSOR_ID_PATTERN!r} - at "
                                    f"`$.readings[{i}].sensor`")
            sensors.add(sensor)
        if profile not in profiles:
            if not _PROFILE_RE.match(profile):
                raise ProtocolError("invalid", f"Expected `str` matching regex {PROFILE_PATTERN!r} - at "
                                    f"`$.readings[{i}].profile`")
            profiles.add(profile)


def decode_for_topic(data: bytes, kind: Kind) -> Message:
    """Decode a payload by the kind its topic names."""
    return decode(data, MESSAGE_TYPES[kind])  # type: ignore[type-var]
