"""Ruuvi RAWv2 and the UDP envelope: the public test vectors, round trips, and fuzzed bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import (
    Datagram,
    DatagramError,
    FrameError,
    RuuviFrame,
    decode_rawv2,
    encode_rawv2,
    pack_datagram,
    unpack_datagram,
)

VALID = "0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F"
MAXIMUM = "057FFFFFFEFFFE7FFF7FFF7FFFFFDEFEFFFECBB8334C884F"
MINIMUM = "058001000000008001800180010000000000CBB8334C884F"
INVALID = "058000FFFFFFFF800080008000FFFFFFFFFFFFFFFFFFFFFF"


def test_valid_vector_decodes_to_the_specification_values() -> None:
    f = decode_rawv2(bytes.fromhex(VALID))
    assert f == RuuviFrame(
        mac="cb:b8:33:4c:88:4f", temp_c=24.3, rh_pct=53.49, pressure_pa=100044, acc_mg=(4, -4, 1036),
        battery_mv=2977, tx_power_dbm=4, movement=66, seq=205,
    )


@pytest.mark.parametrize("vector", [VALID, MAXIMUM, MINIMUM, INVALID])
def test_vectors_encode_back_byte_exact(vector: str) -> None:
    assert encode_rawv2(decode_rawv2(bytes.fromhex(vector))).hex().upper() == vector


def test_extremes_and_invalid_markers() -> None:
    hi = decode_rawv2(bytes.fromhex(MAXIMUM))
    lo = decode_rawv2(bytes.fromhex(MINIMUM))
    assert (hi.temp_c, hi.battery_mv, hi.tx_power_dbm, hi.seq) == (163.835, 3646, 20, 65534)
    assert (lo.temp_c, lo.battery_mv, lo.tx_power_dbm, lo.rh_pct) == (-163.835, 1600, -40, 0.0)
    assert decode_rawv2(bytes.fromhex(INVALID)) == RuuviFrame(mac=None)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [(b"", "empty"), (b"\x03" + bytes(13), "unsupported_format"), (bytes.fromhex(VALID)[:-1], "bad_length")],
)
def test_bad_frames_say_why(payload: bytes, reason: str) -> None:
    with pytest.raises(FrameError) as err:
        decode_rawv2(payload)
    assert err.value.reason == reason


@given(st.binary(max_size=64))
def test_arbitrary_bytes_never_raise_anything_but_frame_error(data: bytes) -> None:
    try:
        decode_rawv2(data)
    except FrameError:
        pass


@given(
    temp=st.floats(-163.8, 163.8),
    rh=st.floats(0, 100),
    battery=st.integers(1600, 3646),
    seq=st.integers(0, 65534),
)
def test_round_trip_within_resolution(temp: float, rh: float, battery: int, seq: int) -> None:
    frame = RuuviFrame(mac="aa:bb:cc:dd:ee:01", temp_c=temp, rh_pct=rh, battery_mv=battery, seq=seq)
    back = decode_rawv2(encode_rawv2(frame))
    assert back.temp_c is not None and abs(back.temp_c - temp) <= 0.0025 + 1e-9
    assert back.rh_pct is not None and abs(back.rh_pct - rh) <= 0.00125 + 1e-9
    assert (back.battery_mv, back.seq, back.mac) == (battery, seq, "aa:bb:cc:dd:ee:01")


def test_datagram_round_trip_with_and_without_timestamp() -> None:
    payload = bytes.fromhex(VALID)
    for ts in (None, 1_700_000_000_123):
        d = Datagram(mac="cb:b8:33:4c:88:4f", rssi_dbm=-71, company_id=0x0499, payload=payload, ts_ms=ts)
        assert unpack_datagram(pack_datagram(d)) == d


def test_datagram_company_id_is_little_endian_as_on_air() -> None:
    d = Datagram(mac="cb:b8:33:4c:88:4f", rssi_dbm=-71, company_id=0x0499, payload=b"")
    assert pack_datagram(d)[11:13] == b"\x99\x04"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"CW", "truncated"),
        (b"XX\x01\x00" + bytes(9), "bad_magic"),
        (b"CW\x02\x00" + bytes(9), "bad_version"),
        (b"CW\x01\x80" + bytes(9), "bad_flags"),
        (b"CW\x01\x01" + bytes(9) + b"\x00", "truncated"),
        (b"CW\x01\x00" + bytes(200), "oversized"),
    ],
)
def test_bad_datagrams_say_why(data: bytes, reason: str) -> None:
    with pytest.raises(DatagramError) as err:
        unpack_datagram(data)
    assert err.value.reason == reason


@given(st.binary(max_size=160))
def test_arbitrary_datagrams_never_raise_anything_but_datagram_error(data: bytes) -> None:
    try:
        unpack_datagram(data)
    except DatagramError:
        pass
