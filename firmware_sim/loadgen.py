"""Fleet mode for load tests: N gateways × M tags generated as whole arrays, down to the UDP datagram bytes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from firmware_sim import frames
from firmware_sim.fleet import sensor_mac
from firmware_sim.scenarios import routine_plan
from firmware_sim.synth import DEFAULT_START_MS, Synthesizer
from protocol.datagram import MAGIC, VERSION
from protocol.ruuvi import RUUVI_COMPANY_ID

DATAGRAM_DTYPE: Final = np.dtype([
    ("magic", "S2"), ("version", "u1"), ("flags", "u1"), ("mac", "u1", (6,)), ("rssi", "i1"), ("company", "<u2"),
    ("ts_ms", ">u8"), ("payload", frames.FRAME_DTYPE),
])
DEFAULT_PROFILES: Final = ("frozen", "chilled", "pharma_2_8", "ambient")


@dataclass
class FleetChunk:
    """Consecutive ticks of the whole fleet: one datagram per heard (tick, tag); grids are (T, S)."""

    datagrams: NDArray[np.void]  # DATAGRAM_DTYPE, (T, S)
    heard: NDArray[np.bool_]
    gateway_of_sensor: NDArray[np.int64]  # (S,)

    @property
    def readings(self) -> int:
        """Frames heard in this chunk."""
        return int(self.heard.sum())

    def payloads(self) -> list[bytes]:
        """The heard datagrams' bytes, tick by tick."""
        return [row.tobytes() for row in self.datagrams[self.heard]]


def fleet_synthesizer(gateways: int, sensors: int, *, interval_s: float, duration_s: float, seed: int,
                      profiles: tuple[str, ...] = DEFAULT_PROFILES, start_ms: int = DEFAULT_START_MS,
                      radio_realism: bool = True) -> tuple[Synthesizer, NDArray[np.int64]]:
    """One Synthesizer for every tag of the fleet (profiles round-robin per gateway) and each tag's gateway."""
    if not (1 <= gateways <= 256 and 1 <= sensors <= 256):
        raise ValueError("fleet mode supports 1..256 gateways × 1..256 sensors (MACs carry both indexes)")
    macs = [sensor_mac(g, i) for g in range(gateways) for i in range(sensors)]
    prof = [profiles[i % len(profiles)] for _ in range(gateways) for i in range(sensors)]
    plan = routine_plan(prof, macs, duration_s, np.random.default_rng([seed, 0xF1EE7]))
    synth = Synthesizer(plan, seed=seed, period_s=interval_s, start_ms=start_ms, lossy=radio_realism,
                        jitter=radio_realism)
    return synth, np.repeat(np.arange(gateways, dtype=np.int64), sensors)


def fleet_chunks(gateways: int, sensors: int, *, ticks: int, interval_s: float = 60.0, seed: int = 1,
                 chunk_ticks: int = 240, profiles: tuple[str, ...] = DEFAULT_PROFILES,
                 start_ms: int = DEFAULT_START_MS) -> Iterator[FleetChunk]:
    """Generate `ticks` readings of every tag, `chunk_ticks` at a time, as ready-to-send datagrams."""
    synth, gateway_of = fleet_synthesizer(gateways, sensors, interval_s=interval_s, duration_s=ticks * interval_s,
                                          seed=seed, profiles=profiles, start_ms=start_ms)
    macs = frames.mac_bytes(synth.plan.macs)
    done = 0
    while done < ticks:
        n = min(chunk_ticks, ticks - done)
        block = synth.advance(n)
        out = np.zeros(block.seq.shape, dtype=DATAGRAM_DTYPE)
        out["magic"] = MAGIC
        out["version"] = VERSION
        out["flags"] = 1
        out["mac"] = macs
        out["rssi"] = block.rssi_dbm
        out["company"] = RUUVI_COMPANY_ID
        out["ts_ms"] = block.ts_ms
        out["payload"] = frames.pack_frames(temp=block.temp_code, humidity=block.humidity_code,
                                            battery=block.battery_code, seq=block.seq,
                                            mac=np.broadcast_to(macs, (n, *macs.shape)))
        done += n
        yield FleetChunk(out, block.heard, gateway_of)
