"""Ruuvi RAWv2 (data format 5) manufacturer data: byte-exact encode and decode.

Layout (24 bytes, big-endian), after the company id 0x0499:
  0 format=5 | 1-2 temp int16 ×0.005 °C | 3-4 humidity uint16 ×0.0025 % | 5-6 pressure uint16 +50000 Pa
  7-12 acceleration x,y,z int16 mG | 13-14 power: 11 bits battery mV−1600, 5 bits (tx dBm+40)/2
  15 movement counter uint8 | 16-17 measurement sequence uint16 | 18-23 MAC
Each field has an invalid marker (all ones for unsigned, 0x8000 for signed), decoded as None.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

RUUVI_COMPANY_ID: Final = 0x0499
FORMAT_RAWV2: Final = 5
FRAME_LENGTH: Final = 24
_LAYOUT: Final = struct.Struct(">BhHHhhhHBH6s")

# The RAWv2 scales and "not available" markers (Ruuvi's specification); the simulator's vectorised encoder uses them.
TEMP_STEP_C: Final = 0.005
RH_STEP_PCT: Final = 0.0025
BATTERY_OFFSET_MV: Final = 1600
INVALID_I16: Final = -32768
INVALID_U16: Final = 0xFFFF
INVALID_BATTERY: Final = 0x7FF
_INVALID_TX: Final = 0x1F
_INVALID_U8: Final = 0xFF
_INVALID_MAC: Final = b"\xff" * 6


class FrameError(ValueError):
    """Bytes that are not a RAWv2 frame; `reason` is a short label for counters."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class RuuviFrame:
    """The values of one RAWv2 advertisement; None where the tag sent the invalid marker."""

    mac: str | None
    temp_c: float | None = None
    rh_pct: float | None = None
    pressure_pa: int | None = None
    acc_mg: tuple[int, int, int] | None = None
    battery_mv: int | None = None
    tx_power_dbm: int | None = None
    movement: int | None = None
    seq: int | None = None


def mac_to_str(raw: bytes) -> str:
    """b'\\xcb\\xb8...' → 'cb:b8:...'."""
    return raw.hex(":")


def mac_from_str(mac: str) -> bytes:
    """'cb:b8:33:4c:88:4f' (any case, ':' or '-') → 6 bytes; ValueError if it is not a MAC."""
    parts = mac.replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise ValueError(f"{mac!r} is not a MAC address (six hex pairs)")
    return bytes(int(p, 16) for p in parts)


def decode_rawv2(payload: bytes) -> RuuviFrame:
    """Decode the 24 bytes that follow the company id, or raise FrameError."""
    if len(payload) < 1:
        raise FrameError("empty", "no bytes after the company id")
    if payload[0] != FORMAT_RAWV2:
        raise FrameError("unsupported_format", f"data format {payload[0]} is not RAWv2 (5)")
    if len(payload) != FRAME_LENGTH:
        raise FrameError("bad_length", f"RAWv2 frame is {len(payload)} bytes, expected {FRAME_LENGTH}")
    _, t, h, p, ax, ay, az, power, move, seq, mac = _LAYOUT.unpack(payload)
    battery = power >> 5
    tx = power & 0x1F
    return RuuviFrame(
        mac=None if mac == _INVALID_MAC else mac_to_str(mac),
        temp_c=None if t == INVALID_I16 else round(t * TEMP_STEP_C, 3),
        rh_pct=None if h == INVALID_U16 else round(h * RH_STEP_PCT, 4),
        pressure_pa=None if p == INVALID_U16 else p + 50000,
        acc_mg=None if INVALID_I16 in (ax, ay, az) else (ax, ay, az),
        battery_mv=None if battery == INVALID_BATTERY else battery + BATTERY_OFFSET_MV,
        tx_power_dbm=None if tx == _INVALID_TX else tx * 2 - 40,
        movement=None if move == _INVALID_U8 else move,
        seq=None if seq == INVALID_U16 else seq,
    )


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def encode_rawv2(frame: RuuviFrame) -> bytes:
    """Encode a frame as the tag would: quantised to the format's resolution, clamped to its range."""
    t = INVALID_I16 if frame.temp_c is None else _clamp(round(frame.temp_c / TEMP_STEP_C), -32767, 32767)
    h = INVALID_U16 if frame.rh_pct is None else _clamp(round(frame.rh_pct / RH_STEP_PCT), 0, 65534)
    p = INVALID_U16 if frame.pressure_pa is None else _clamp(frame.pressure_pa - 50000, 0, 65534)
    ax, ay, az = (
        (INVALID_I16,) * 3 if frame.acc_mg is None else (_clamp(a, -32767, 32767) for a in frame.acc_mg)
    )
    battery = INVALID_BATTERY if frame.battery_mv is None else _clamp(frame.battery_mv - BATTERY_OFFSET_MV, 0, 2046)
    tx = _INVALID_TX if frame.tx_power_dbm is None else _clamp((frame.tx_power_dbm + 40) // 2, 0, 30)
    move = _INVALID_U8 if frame.movement is None else _clamp(frame.movement, 0, 254)
    seq = INVALID_U16 if frame.seq is None else frame.seq % 65535
    mac = _INVALID_MAC if frame.mac is None else mac_from_str(frame.mac)
    return _LAYOUT.pack(FORMAT_RAWV2, t, h, p, ax, ay, az, (battery << 5) | tx, move, seq, mac)
