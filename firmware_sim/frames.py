"""Ruuvi RAWv2 for whole arrays: quantise like the tag, decode like the agent, pack frames with numpy.

Byte-exact with protocol.ruuvi (same rounding, clamping and invalid markers); tests compare both.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

from firmware_sim.physics import FloatArray
from protocol.ruuvi import (
    BATTERY_OFFSET_MV,
    FORMAT_RAWV2,
    FRAME_LENGTH,
    INVALID_BATTERY,
    INVALID_I16,
    INVALID_U16,
    RH_STEP_PCT,
    TEMP_STEP_C,
)

IntArray = NDArray[np.int64]

FRAME_DTYPE: Final = np.dtype([
    ("format", "u1"), ("temp", ">i2"), ("humidity", ">u2"), ("pressure", ">u2"), ("acc_x", ">i2"),
    ("acc_y", ">i2"), ("acc_z", ">i2"), ("power", ">u2"), ("movement", "u1"), ("seq", ">u2"), ("mac", "u1", (6,)),
])
assert FRAME_DTYPE.itemsize == FRAME_LENGTH


def temp_codes(temp_c: FloatArray) -> IntArray:
    """int16 temperature codes (0.005 °C steps, clamped); NaN → the invalid marker."""
    codes = np.clip(np.rint(np.nan_to_num(temp_c) / TEMP_STEP_C), -32767, 32767).astype(np.int64)
    return np.where(np.isnan(temp_c), INVALID_I16, codes)


def humidity_codes(rh_pct: FloatArray) -> IntArray:
    """uint16 humidity codes (0.0025 % steps, clamped); NaN → the invalid marker."""
    codes = np.clip(np.rint(np.nan_to_num(rh_pct) / RH_STEP_PCT), 0, 65534).astype(np.int64)
    return np.where(np.isnan(rh_pct), INVALID_U16, codes)


def battery_codes(battery_mv: FloatArray) -> IntArray:
    """11-bit battery codes (mV − 1600, clamped); NaN → the invalid marker."""
    codes = np.clip(np.rint(np.nan_to_num(battery_mv)) - BATTERY_OFFSET_MV, 0, 2046).astype(np.int64)
    return np.where(np.isnan(battery_mv), INVALID_BATTERY, codes)


def _decode_via_table(codes: IntArray, invalid: int, to_value: object) -> FloatArray:
    """Map codes through the scalar decoder once per distinct code (identical floats to protocol.ruuvi)."""
    distinct, inverse = np.unique(codes, return_inverse=True)
    table = np.array([np.nan if c == invalid else to_value(int(c)) for c in distinct],  # type: ignore[operator]
                     dtype=np.float64)
    return table[inverse.reshape(codes.shape)]


def decoded_temp(codes: IntArray) -> FloatArray:
    """°C as protocol.ruuvi.decode_rawv2 returns it; NaN for the invalid marker."""
    return _decode_via_table(codes, INVALID_I16, lambda c: round(c * TEMP_STEP_C, 3))


def decoded_humidity(codes: IntArray) -> FloatArray:
    """% RH as protocol.ruuvi.decode_rawv2 returns it; NaN for the invalid marker."""
    return _decode_via_table(codes, INVALID_U16, lambda c: round(c * RH_STEP_PCT, 4))


def decoded_battery(codes: IntArray) -> FloatArray:
    """mV as protocol.ruuvi.decode_rawv2 returns it; NaN for the invalid marker."""
    return np.where(codes == INVALID_BATTERY, np.nan, codes + float(BATTERY_OFFSET_MV))


def mac_bytes(macs: list[str]) -> NDArray[np.uint8]:
    """'aa:bb:..' strings → (N, 6) uint8."""
    return np.array([[int(p, 16) for p in m.split(":")] for m in macs], dtype=np.uint8).reshape(len(macs), 6)


def pack_frames(*, temp: IntArray, humidity: IntArray, battery: IntArray, seq: IntArray, mac: NDArray[np.uint8],
                pressure_pa: IntArray | None = None, acc_mg: tuple[int, int, int] = (0, 0, 1000),
                tx_power_dbm: int = 4, movement: int = 0) -> NDArray[np.void]:
    """RAWv2 frames as a structured array (FRAME_DTYPE); `.tobytes()` gives the 24-byte frames back to back.

    All code arrays share one shape; `mac` has that shape plus a trailing 6.
    """
    out = np.zeros(temp.shape, dtype=FRAME_DTYPE)
    out["format"] = FORMAT_RAWV2
    out["temp"] = temp
    out["humidity"] = humidity
    out["pressure"] = INVALID_U16 if pressure_pa is None else np.clip(pressure_pa - 50000, 0, 65534)
    out["acc_x"], out["acc_y"], out["acc_z"] = (max(-32767, min(32767, a)) for a in acc_mg)
    out["power"] = (battery << 5) | max(0, min(30, (tx_power_dbm + 40) // 2))
    out["movement"] = max(0, min(254, movement))
    out["seq"] = seq % 65535
    out["mac"] = mac
    return out
