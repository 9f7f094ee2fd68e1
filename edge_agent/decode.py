"""Decode one envelope into a protocol Reading; every refusal is counted by reason and logged (rate-limited)."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from edge_agent.metrics import AgentMetrics
from protocol.datagram import unpack_datagram
from protocol.messages import Reading
from protocol.ruuvi import RUUVI_COMPANY_ID, FrameError, decode_rawv2

log = logging.getLogger(__name__)

_MIN_TS_MS = 946_684_800_000
_MAX_TS_MS = 4_102_444_800_000


class Decoder:
    """Envelope bytes → Reading, with the sensor's asset profile; drops re-heard copies of a measurement."""

    def __init__(self, profile_of: Callable[[str], str], metrics: AgentMetrics,
                 clock: Callable[[], float] = time.time, log_every_s: float = 10.0) -> None:
        self.profile_of = profile_of
        self.metrics = metrics
        self.clock = clock
        self.log_every_s = log_every_s
        self._last_log: dict[str, float] = {}
        self._last_seq: OrderedDict[str, int] = OrderedDict()

    def decode(self, data: bytes) -> Reading | None:
        """The reading in `data`, or None (refused: counted and logged; or a duplicate: counted)."""
        self.metrics.frames_received.inc()
        try:
            reading = self._decode(data)
        except FrameError as exc:
            self._reject(exc.reason, exc.detail)
            return None
        if reading.seq is not None and self._is_duplicate(reading.sensor, reading.seq):
            self.metrics.duplicates.inc()
            return None
        return reading

    def _decode(self, data: bytes) -> Reading:
        envelope = unpack_datagram(data)
        if envelope.company_id != RUUVI_COMPANY_ID:
            raise FrameError("unknown_company", f"company id 0x{envelope.company_id:04x} is not Ruuvi")
        frame = decode_rawv2(envelope.payload)
        ts = envelope.ts_ms if envelope.ts_ms is not None else int(self.clock() * 1000)
        if not _MIN_TS_MS <= ts <= _MAX_TS_MS:
            raise FrameError("bad_timestamp", f"timestamp {ts} ms is outside 2000..2100")
        if frame.mac is not None and frame.mac != envelope.mac:
            raise FrameError("mac_mismatch", f"frame MAC {frame.mac} differs from sender {envelope.mac}")
        if not -127 <= envelope.rssi_dbm <= 20:
            raise FrameError("bad_rssi", f"RSSI {envelope.rssi_dbm} dBm out of range")
        return Reading(
            sensor=envelope.mac, ts=ts, profile=self.profile_of(envelope.mac), seq=frame.seq,
            temp_c=frame.temp_c, rh_pct=frame.rh_pct, battery_mv=frame.battery_mv, rssi_dbm=envelope.rssi_dbm,
        )

    def _is_duplicate(self, sensor: str, seq: int) -> bool:
        """A tag repeats each measurement in several advertisements; only the first counts."""
        if self._last_seq.get(sensor) == seq:
            return True
        self._last_seq[sensor] = seq
        self._last_seq.move_to_end(sensor)
        if len(self._last_seq) > 10_000:  # bounded: a gateway hears only so many tags
            self._last_seq.popitem(last=False)
        return False

    def _reject(self, reason: str, detail: str) -> None:
        self.metrics.frames_rejected.labels(reason=reason).inc()
        now = time.monotonic()
        if now - self._last_log.get(reason, -1e9) >= self.log_every_s:  # a flood of garbage must not flood the log
            self._last_log[reason] = now
            log.warning("event=frame_rejected reason=%s detail=%r", reason, detail)
