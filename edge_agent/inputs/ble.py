"""`ble` input: Ruuvi advertisements from the gateway's own radio via bleak (optional extra `ble`).

The radio sits behind `Scanner`, so tests drive the same path with a scanner double.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from edge_agent.inputs.base import Deliver, Driver, InputSection
from protocol.datagram import Datagram, pack_datagram
from protocol.ruuvi import RUUVI_COMPANY_ID

log = logging.getLogger(__name__)

Advertisement = Callable[[str, int, dict[int, bytes]], None]
"""(MAC, RSSI dBm, manufacturer data by company id) for each advertisement heard."""


class Scanner(Protocol):
    """A BLE scanner: calls back once per advertisement until stopped."""

    def start(self, on_advertisement: Advertisement) -> None:
        """Start scanning."""

    def stop(self) -> None:
        """Stop scanning."""


class BleakScanner:
    """The real radio: bleak's scanner on its own asyncio loop in a thread."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None

    def start(self, on_advertisement: Advertisement) -> None:
        import bleak  # the optional extra; checked at config time

        def callback(device: Any, adv: Any) -> None:
            on_advertisement(str(device.address).lower(), int(adv.rssi), dict(adv.manufacturer_data))

        async def scan() -> None:
            self._stop = asyncio.Event()
            async with bleak.BleakScanner(detection_callback=callback):
                await self._stop.wait()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(scan())

        self._thread = threading.Thread(target=run, name="input-ble", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=5)


class BleInput:
    """Turns each Ruuvi advertisement into the same envelope the udp input receives."""

    name = "ble"

    def __init__(self, scanner: Scanner, clock: Callable[[], float] = time.time) -> None:
        self.scanner = scanner
        self.clock = clock

    def start(self, deliver: Deliver) -> None:
        def on_advertisement(mac: str, rssi: int, manufacturer: dict[int, bytes]) -> None:
            payload = manufacturer.get(RUUVI_COMPANY_ID)
            if payload is None:
                return  # not a Ruuvi tag: other devices around the gateway are normal, not errors
            try:
                envelope = pack_datagram(Datagram(mac=mac, rssi_dbm=rssi, company_id=RUUVI_COMPANY_ID,
                                                  payload=bytes(payload), ts_ms=int(self.clock() * 1000)))
            except ValueError as exc:
                log.warning("input=ble event=bad_advertisement mac=%s reason=%s", mac, exc)
                return
            deliver(envelope)

        self.scanner.start(on_advertisement)

    def stop(self) -> None:
        self.scanner.stop()

    def lost(self) -> dict[str, int]:
        return {}  # the scanner's own queue is bleak's; it does not say what it dropped


def _check(spec: BleSection) -> str | None:
    if importlib.util.find_spec("bleak") is None:
        return "type: the ble input needs bleak (pip install 'coldwatch[ble]')"
    return None


def _create(spec: BleSection) -> BleInput:
    return BleInput(BleakScanner())


class BleSection(InputSection, tag="ble"):
    """`[[inputs]]` with `type = "ble"`."""

    pass


DRIVER = Driver(section=BleSection, check=_check, create=_create)
