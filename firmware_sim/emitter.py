"""Send simulated advertisements as UDP datagrams to gateways, in real or accelerated time.

Uses the same Synthesizer (physics → tag → radio → RAWv2) as the datasets, stepped in small chunks.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from firmware_sim import frames
from firmware_sim.fleet import SimSensor
from firmware_sim.scenarios import build_plan, routine_plan
from firmware_sim.synth import Block, Label, Synthesizer, concat_blocks, first_samples
from protocol.datagram import Datagram, pack_datagram
from protocol.ruuvi import RUUVI_COMPANY_ID

log = logging.getLogger("coldwatch.sim")

UNBOUNDED_HORIZON_S = 30 * 86400.0  # routine events are planned this far ahead when the run has no end
CHUNK_SAMPLES = 64


@dataclass
class GatewayTarget:
    """One gateway's UDP input and the tags it hears."""

    host: str
    port: int
    sensors: list[SimSensor]


@dataclass
class EmitStats:
    """What was sent, per target port, for the run summary; labels when a scenario ran."""

    sent: int = 0
    per_gateway: dict[str, int] = field(default_factory=dict)
    first_ts_ms: int | None = None
    last_ts_ms: int | None = None
    labels: list[Label] = field(default_factory=list)


@dataclass
class _Feed:
    target: GatewayTarget
    synth: Synthesizer
    macs: np.ndarray
    history: list[Block] = field(default_factory=list)


def _feed(target: GatewayTarget, index: int, *, seed: int, interval_s: float, start_ms: int, horizon_s: float,
          scenario: str | None, radio_realism: bool, utc_offset_h: float) -> _Feed:
    macs = [s.mac for s in target.sensors]
    if scenario is None:
        rng = np.random.default_rng([seed, index, 0x11E])
        plan = routine_plan([s.profile for s in target.sensors], macs, horizon_s, rng)
    else:
        plan = build_plan(scenario, seed + index, duration_s=horizon_s, macs=macs,
                          profiles=[s.profile for s in target.sensors])
    # The synthesizer's first sample is one period after its start; the first frame goes out at start_ms.
    synth = Synthesizer(plan, seed=seed * 1000 + index, period_s=interval_s,
                        start_ms=start_ms - round(interval_s * 1000), lossy=radio_realism, jitter=radio_realism,
                        first_seq=0, utc_offset_h=utc_offset_h)
    return _Feed(target, synth, frames.mac_bytes(macs))


def run(
    targets: list[GatewayTarget], *, interval_s: float, speed: float, start_ms: int, seed: int,
    stop: threading.Event, max_ticks: int | None = None, horizon_s: float | None = None,
    scenario: str | None = None, radio_realism: bool = False, want_labels: bool = False,
    utc_offset_h: float = 0.0,
) -> EmitStats:
    """Emit one frame per sensor every `interval_s` of simulated time until `stop` or `max_ticks`.

    Simulated time runs `speed` times faster than the wall clock. Without `radio_realism` every
    frame is delivered exactly once and stamped at its exact simulated time, so a sensor's readings
    are exactly `interval_s` apart whatever the pacing; with it, frames are lost near the edge of
    range, sometimes duplicated, and stamped with receive jitter and the tag's clock error. The air
    around the spaces follows the sites' local time, `utc_offset_h` hours ahead of UTC.
    """
    horizon = horizon_s or (max_ticks * interval_s if max_ticks else UNBOUNDED_HORIZON_S)
    feeds = [_feed(t, i, seed=seed, interval_s=interval_s, start_ms=start_ms, horizon_s=horizon, scenario=scenario,
                   radio_realism=radio_realism, utc_offset_h=utc_offset_h) for i, t in enumerate(targets)]
    stats = EmitStats()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    wall_start = time.monotonic()
    tick = 0
    try:
        while not stop.is_set() and (max_ticks is None or tick < max_ticks):
            chunk = CHUNK_SAMPLES if max_ticks is None else min(CHUNK_SAMPLES, max_ticks - tick)
            blocks = [f.synth.advance(chunk) for f in feeds]
            for feed, block in zip(feeds, blocks, strict=True):
                if want_labels:
                    feed.history.append(block)
            packed = [_pack(f, b) for f, b in zip(feeds, blocks, strict=True)]
            for row in range(chunk):
                due = wall_start + tick * interval_s / speed
                delay = due - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    break
                for feed, block, frame_grid in zip(feeds, blocks, packed, strict=True):
                    _send_row(sock, feed, block, frame_grid, row, stats)
                tick += 1
                if stop.is_set():
                    break
    finally:
        sock.close()
    if want_labels:  # labels for what was sent, not for the rest of the last chunk
        for feed in feeds:
            if feed.history and tick > 0:
                stats.labels += feed.synth.labels(first_samples(concat_blocks(feed.history), tick))
    return stats


def _pack(feed: _Feed, block: Block) -> np.ndarray:
    steps = block.temp_code.shape[0]
    pressure = 101325 + np.rint(np.random.default_rng(int(block.t_s[0])).normal(0.0, 30.0, block.seq.shape))
    return frames.pack_frames(temp=block.temp_code, humidity=block.humidity_code, battery=block.battery_code,
                              seq=block.seq, mac=np.broadcast_to(feed.macs, (steps, *feed.macs.shape)),
                              pressure_pa=pressure.astype(np.int64))


def _send_row(sock: socket.socket, feed: _Feed, block: Block, frame_grid: np.ndarray, row: int,
              stats: EmitStats) -> None:
    target = feed.target
    key = f"{target.host}:{target.port}"
    for s in np.flatnonzero(block.heard[row]):
        ts_ms = int(block.ts_ms[row, s])
        datagram = Datagram(mac=target.sensors[s].mac, rssi_dbm=int(block.rssi_dbm[row, s]),
                            company_id=RUUVI_COMPANY_ID, payload=frame_grid[row, s].tobytes(), ts_ms=ts_ms)
        copies = 2 if block.duplicated[row, s] else 1
        for _ in range(copies):
            sock.sendto(pack_datagram(datagram), (target.host, target.port))
        stats.per_gateway[key] = stats.per_gateway.get(key, 0) + copies
        stats.sent += copies
        stats.first_ts_ms = ts_ms if stats.first_ts_ms is None else min(stats.first_ts_ms, ts_ms)
        stats.last_ts_ms = ts_ms if stats.last_ts_ms is None else max(stats.last_ts_ms, ts_ms)
