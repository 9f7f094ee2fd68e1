"""Codec benchmarks: msgspec decode+validate vs stdlib json, RAWv2 decode vs a bare struct.unpack."""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable

import msgspec

from bench.results import Result
from protocol import Datagram, Reading, TelemetryBatch, decode, encode, encode_rawv2, pack_datagram, unpack_datagram
from protocol.ruuvi import RUUVI_COMPANY_ID, RuuviFrame, decode_rawv2

TS = 1_700_000_000_000


def _rate(fn: Callable[[], object], items_per_call: int, min_seconds: float = 0.5) -> float:
    """Items per second over repeated calls (best of 3 rounds, so a noisy neighbour costs less)."""
    best = 0.0
    for _ in range(3):
        calls = 0
        t0 = time.perf_counter()
        while (elapsed := time.perf_counter() - t0) < min_seconds / 3:
            fn()
            calls += 1
        best = max(best, calls * items_per_call / elapsed)
    return best


def sample_batch(n: int = 500) -> TelemetryBatch:
    readings = [
        Reading(sensor=f"c2:00:00:00:00:{i % 256:02x}", ts=TS + i * 1000, profile="frozen", seq=i % 65535,
                temp_c=-20.125 + (i % 7) * 0.005, rh_pct=71.5, battery_mv=2977, rssi_dbm=-70)
        for i in range(n)
    ]
    return TelemetryBatch(gateway="gw1", seq=1, sent_at=TS, readings=readings)


def run() -> list[Result]:
    batch = sample_batch()
    data = encode(batch)
    as_dict = msgspec.to_builtins(batch)
    n = len(batch.readings)
    decode_ours = _rate(lambda: decode(data, TelemetryBatch), n)
    decode_ref = _rate(lambda: json.loads(data), n)
    encode_ours = _rate(lambda: encode(batch), n)
    encode_ref = _rate(lambda: json.dumps(as_dict, separators=(",", ":")).encode(), n)

    frame = encode_rawv2(RuuviFrame(mac="c2:00:00:00:00:01", temp_c=-20.1, rh_pct=70.0, battery_mv=2977, seq=5))
    envelope = pack_datagram(Datagram("c2:00:00:00:00:01", -70, RUUVI_COMPANY_ID, frame, TS))
    layout = struct.Struct(">BhHHhhhHBH6s")
    frames_ours = _rate(lambda: decode_rawv2(unpack_datagram(envelope).payload), 1)
    frames_ref = _rate(lambda: layout.unpack(frame), 1)
    return [
        Result("codec_decode_telemetry", decode_ours, "readings/s", "stdlib json.loads (no validation)",
               decode_ref, higher_is_better=True),
        Result("codec_encode_telemetry", encode_ours, "readings/s", "stdlib json.dumps of the same dict",
               encode_ref, higher_is_better=True),
        Result("ruuvi_decode_datagram", frames_ours, "frames/s", "bare struct.unpack of the 24 bytes",
               frames_ref, higher_is_better=True),
    ]
