"""Vectorised RAWv2 in the simulator is byte-exact with protocol.ruuvi; exported values survive a round trip."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_sim import frames
from firmware_sim.loadgen import fleet_chunks
from firmware_sim.scenarios import generate
from protocol.datagram import unpack_datagram
from protocol.ruuvi import RuuviFrame, decode_rawv2, encode_rawv2

MAC = "c2:00:00:00:01:02"
maybe_nan = st.one_of(st.just(float("nan")), st.floats(-200.0, 200.0, allow_nan=False))


def _none(value: float) -> float | None:
    return None if math.isnan(value) else value


@given(temp=maybe_nan, rh=st.one_of(st.just(float("nan")), st.floats(-10.0, 200.0, allow_nan=False)),
       batt=st.one_of(st.just(float("nan")), st.floats(1000.0, 4000.0, allow_nan=False)),
       seq=st.integers(0, 200_000))
def test_packed_frames_equal_the_protocol_encoder(temp: float, rh: float, batt: float, seq: int) -> None:
    packed = frames.pack_frames(
        temp=frames.temp_codes(np.array([temp])), humidity=frames.humidity_codes(np.array([rh])),
        battery=frames.battery_codes(np.array([batt])), seq=np.array([seq]), mac=frames.mac_bytes([MAC]),
        pressure_pa=np.array([101325]),
    )
    reference = encode_rawv2(RuuviFrame(
        mac=MAC, temp_c=_none(temp), rh_pct=_none(rh), pressure_pa=101325, acc_mg=(0, 0, 1000),
        battery_mv=None if math.isnan(batt) else round(batt), tx_power_dbm=4, movement=0, seq=seq,
    ))
    assert packed.tobytes() == reference


@given(st.lists(st.integers(-32768, 32767), min_size=1, max_size=40))
def test_decoded_temperatures_are_the_agents_floats(codes: list[int]) -> None:
    values = frames.decoded_temp(np.array(codes, dtype=np.int64))
    for code, value in zip(codes, values, strict=True):
        expected = None if code == -32768 else round(code * 0.005, 3)
        assert (math.isnan(value) and expected is None) or value == expected


def test_exported_values_round_trip_through_rawv2() -> None:
    d = generate("battery_depletion", 3)  # has invalid markers and garbage as well as normal values
    r = d.readings
    assert np.isnan(r["temp_c"]).any() and np.isnan(r["rh_pct"]).any()
    for i in range(0, len(d), 7):
        frame = RuuviFrame(mac=str(r["sensor"][i]), temp_c=_none(float(r["temp_c"][i])),
                           rh_pct=_none(float(r["rh_pct"][i])),
                           battery_mv=None if np.isnan(r["battery_mv"][i]) else int(r["battery_mv"][i]),
                           seq=int(r["seq"][i]))
        back = decode_rawv2(encode_rawv2(frame))
        assert back.temp_c == frame.temp_c and back.rh_pct == frame.rh_pct
        assert back.battery_mv == frame.battery_mv and back.seq == frame.seq and back.mac == frame.mac


def test_fleet_datagrams_decode_with_the_agents_parser() -> None:
    chunk = next(fleet_chunks(3, 5, ticks=10, chunk_ticks=10, seed=4))
    payloads = chunk.payloads()
    assert len(payloads) == chunk.readings > 0.9 * 150
    macs = set()
    for raw in payloads:
        datagram = unpack_datagram(raw)
        frame = decode_rawv2(datagram.payload)
        assert frame.mac == datagram.mac and frame.temp_c is not None and -130 < datagram.rssi_dbm < -20
        assert datagram.ts_ms is not None and datagram.ts_ms > 1_767_225_600_000
        macs.add(frame.mac)
    assert len(macs) == 15 and "c2:00:00:00:02:04" in macs


@pytest.mark.parametrize("vector", [
    "0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F",  # the specification's valid vector
    "057FFFFFFEFFFE7FFF7FFF7FFFFFDEFEFFFECBB8334C884F",  # maximum values
    "058001000000008001800180010000000000CBB8334C884F",  # minimum values
])
def test_packer_reproduces_the_specification_vectors(vector: str) -> None:
    f = decode_rawv2(bytes.fromhex(vector))
    assert f.mac and f.temp_c is not None and f.rh_pct is not None and f.battery_mv is not None
    assert f.pressure_pa is not None and f.acc_mg is not None and f.seq is not None
    assert f.tx_power_dbm is not None and f.movement is not None
    packed = frames.pack_frames(
        temp=frames.temp_codes(np.array([f.temp_c])), humidity=frames.humidity_codes(np.array([f.rh_pct])),
        battery=frames.battery_codes(np.array([float(f.battery_mv)])), seq=np.array([f.seq]),
        mac=frames.mac_bytes([f.mac]), pressure_pa=np.array([f.pressure_pa]), acc_mg=f.acc_mg,
        tx_power_dbm=f.tx_power_dbm, movement=f.movement,
    )
    assert packed.tobytes().hex().upper() == vector
