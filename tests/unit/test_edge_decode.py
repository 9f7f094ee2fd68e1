"""Decoding envelopes at the edge: any bytes are either a reading or a counted refusal, never a crash."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.decode import Decoder
from edge_agent.inputs.ble import BleInput
from edge_agent.metrics import AgentMetrics
from protocol.datagram import Datagram, pack_datagram
from protocol.messages import Reading
from protocol.ruuvi import RUUVI_COMPANY_ID, RuuviFrame, encode_rawv2

MAC = "c2:00:00:00:00:07"


def envelope(seq: int = 5, temp_c: float | None = -19.5, company: int = RUUVI_COMPANY_ID) -> bytes:
    payload = encode_rawv2(RuuviFrame(mac=MAC, temp_c=temp_c, rh_pct=71.25, battery_mv=2950, seq=seq))
    return pack_datagram(Datagram(mac=MAC, rssi_dbm=-70, company_id=company, payload=payload,
                                  ts_ms=1_767_225_600_000))


def rejected(metrics: AgentMetrics) -> float:
    return sum(s.value for m in metrics.frames_rejected.collect() for s in m.samples if s.name.endswith("_total"))


def make() -> tuple[Decoder, AgentMetrics]:
    metrics = AgentMetrics()
    return Decoder(lambda mac: "frozen", metrics, clock=lambda: 1_767_225_600.0), metrics


def test_a_frame_becomes_a_reading_with_profile_and_quantised_values() -> None:
    decoder, metrics = make()
    reading = decoder.decode(envelope())
    assert reading == Reading(sensor=MAC, ts=1_767_225_600_000, profile="frozen", seq=5, temp_c=-19.5,
                              rh_pct=71.25, battery_mv=2950, rssi_dbm=-70)
    assert rejected(metrics) == 0


def test_invalid_markers_become_missing_values() -> None:
    decoder, _ = make()
    reading = decoder.decode(envelope(temp_c=None))
    assert reading is not None and reading.temp_c is None and reading.rh_pct == 71.25


def test_a_re_heard_measurement_counts_once() -> None:
    decoder, metrics = make()
    assert decoder.decode(envelope(seq=9)) is not None
    assert decoder.decode(envelope(seq=9)) is None
    assert decoder.decode(envelope(seq=10)) is not None
    assert metrics.duplicates._value.get() == 1


def test_other_manufacturers_are_refused_with_a_reason() -> None:
    decoder, metrics = make()
    assert decoder.decode(envelope(company=0x004C)) is None
    assert metrics.frames_rejected.labels(reason="unknown_company")._value.get() == 1


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=160))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    decoder, metrics = make()
    reading = decoder.decode(data)
    assert reading is not None or rejected(metrics) == 1 or metrics.duplicates._value.get() == 1


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 23), st.integers(0, 255))
def test_a_corrupted_valid_frame_is_a_reading_or_a_counted_refusal(position: int, value: int) -> None:
    data = bytearray(envelope())
    data[-24 + position] = value
    decoder, metrics = make()
    reading = decoder.decode(bytes(data))
    assert (reading is None) == (rejected(metrics) == 1)


def test_the_ble_driver_feeds_the_same_decode_path() -> None:
    class FakeRadio:
        """Scanner double: what bleak would report for two advertisements."""

        def start(self, on_advertisement):  # type: ignore[no-untyped-def]
            payload = encode_rawv2(RuuviFrame(mac=MAC, temp_c=4.5, rh_pct=80.0, battery_mv=3000, seq=1))
            on_advertisement("AA:BB:CC:DD:EE:FF", -80, {0x004C: b"\x02\x15"})  # an iBeacon: ignored
            on_advertisement(MAC, -66, {RUUVI_COMPANY_ID: payload})

        def stop(self) -> None:
            pass

    decoder, metrics = make()
    readings: list[Reading] = []
    ble = BleInput(FakeRadio(), clock=lambda: 1_767_225_660.0)
    ble.start(lambda data: readings.extend(r for r in [decoder.decode(data)] if r is not None))
    assert [(r.sensor, r.temp_c, r.rssi_dbm, r.ts) for r in readings] == [(MAC, 4.5, -66, 1_767_225_660_000)]
    assert rejected(metrics) == 0
