"""`replay` input: a file of captured envelopes (one hex datagram per line), for backtests and support cases."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Annotated

from msgspec import Meta

from edge_agent.inputs.base import Deliver, Driver, InputSection
from protocol.datagram import unpack_datagram
from protocol.ruuvi import FrameError

log = logging.getLogger(__name__)


class ReplayInput:
    """Plays a capture file once; with `speed` > 0 paces by the envelopes' timestamps (×speed)."""

    name = "replay"

    def __init__(self, path: str, speed: float = 1.0) -> None:
        self.path = Path(path)
        self.speed = speed
        self.done = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, deliver: Deliver) -> None:
        self._thread = threading.Thread(target=self._play, args=(deliver,), name="input-replay", daemon=True)
        self._thread.start()

    def _play(self, deliver: Deliver) -> None:
        previous_ts: int | None = None
        lines = 0
        with self.path.open() as capture:
            for number, line in enumerate(capture, 1):
                if self._stopping.is_set():
                    break
                text = line.split("#", 1)[0].strip()
                if not text:
                    continue
                try:
                    data = bytes.fromhex(text)
                except ValueError:
                    log.warning("input=replay event=bad_line file=%s line=%d reason=not_hex", self.path, number)
                    data = text.encode()  # still delivered: the decoder counts it as a refused frame
                ts = _timestamp(data)
                if previous_ts is not None and ts is not None and ts > previous_ts:
                    self._stopping.wait(min((ts - previous_ts) / 1000 / self.speed, 60.0))
                previous_ts = ts if ts is not None else previous_ts
                deliver(data)
                lines += 1
        log.info("input=replay event=finished file=%s frames=%d", self.path, lines)
        self.done.set()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def lost(self) -> dict[str, int]:
        return {}  # a file waits for its reader: nothing is lost


def _timestamp(data: bytes) -> int | None:
    try:
        return unpack_datagram(data).ts_ms
    except FrameError:
        return None


def _check(spec: ReplaySection) -> str | None:
    if not Path(spec.path).is_file():
        return f"path: {spec.path} is not a readable file"
    return None


def _create(spec: ReplaySection) -> ReplayInput:
    return ReplayInput(spec.path, spec.speed)


class ReplaySection(InputSection, tag="replay"):
    """`[[inputs]]` with `type = "replay"`."""

    path: str  # a file of envelopes, one per line (hex)
    speed: Annotated[float, Meta(gt=0)] = 1.0  # × the recorded pace


DRIVER = Driver(section=ReplaySection, check=_check, create=_create)
