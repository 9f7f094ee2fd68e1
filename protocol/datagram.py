"""The UDP envelope that carries one BLE advertisement from a scanner (or the simulator) to the agent.

  0-1 magic b"CW" | 2 version=1 | 3 flags (bit 0: timestamp present) | 4-9 MAC | 10 RSSI int8
  11-12 company id uint16 LE (as on air) | [13-20 timestamp ms uint64 BE] | manufacturer payload
The timestamp is the scanner's UTC receive time; without it the agent stamps arrival time.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from protocol.ruuvi import FrameError, mac_from_str, mac_to_str

MAGIC: Final = b"CW"
VERSION: Final = 1
MAX_DATAGRAM: Final = 128
_FLAG_TS: Final = 0x01
_HEAD: Final = struct.Struct(">2sBB6sb")
_COMPANY: Final = struct.Struct("<H")
_TS: Final = struct.Struct(">Q")


class DatagramError(FrameError):
    """A UDP datagram that is not a valid v1 envelope."""


@dataclass(frozen=True, slots=True)
class Datagram:
    """One received advertisement: who sent it, how loud, when, and its manufacturer data."""

    mac: str
    rssi_dbm: int
    company_id: int
    payload: bytes
    ts_ms: int | None = None


def pack_datagram(d: Datagram) -> bytes:
    """Serialise an envelope."""
    flags = _FLAG_TS if d.ts_ms is not None else 0
    out = _HEAD.pack(MAGIC, VERSION, flags, mac_from_str(d.mac), max(-128, min(127, d.rssi_dbm)))
    out += _COMPANY.pack(d.company_id)
    if d.ts_ms is not None:
        out += _TS.pack(d.ts_ms)
    return out + d.payload


def unpack_datagram(data: bytes) -> Datagram:
    """Parse an envelope or raise DatagramError with the reason."""
    if len(data) > MAX_DATAGRAM:
        raise DatagramError("oversized", f"{len(data)} bytes exceeds {MAX_DATAGRAM}")
    if len(data) < _HEAD.size + _COMPANY.size:
        raise DatagramError("truncated", f"{len(data)} bytes is shorter than the envelope header")
    magic, version, flags, mac, rssi = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise DatagramError("bad_magic", f"starts with {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise DatagramError("bad_version", f"envelope version {version}, expected {VERSION}")
    if flags & ~_FLAG_TS:
        raise DatagramError("bad_flags", f"unknown flag bits 0x{flags:02x}")
    (company_id,) = _COMPANY.unpack_from(data, _HEAD.size)
    offset = _HEAD.size + _COMPANY.size
    ts_ms: int | None = None
    if flags & _FLAG_TS:
        if len(data) < offset + _TS.size:
            raise DatagramError("truncated", "timestamp flag set but timestamp missing")
        (ts_ms,) = _TS.unpack_from(data, offset)
        offset += _TS.size
    return Datagram(mac=mac_to_str(mac), rssi_dbm=rssi, company_id=company_id, payload=data[offset:], ts_ms=ts_ms)
