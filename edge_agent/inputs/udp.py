"""`udp` input: envelopes from the simulator or a BLE-to-UDP bridge, one advertisement per datagram."""

from __future__ import annotations

import logging
import socket
import threading

from edge_agent.inputs.base import Deliver, Driver, InputSection
from protocol.datagram import MAX_DATAGRAM

log = logging.getLogger(__name__)


def parse_bind(text: str) -> tuple[str, int]:
    """'127.0.0.1:9999' → ('127.0.0.1', 9999); ValueError with the reason otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"bind {text!r} is not HOST:PORT")
    return host, int(port)


class UdpInput:
    """Receives datagrams on one socket in a thread; oversized datagrams arrive truncated and are refused later."""

    name = "udp"

    def __init__(self, bind: str) -> None:
        self.address = parse_bind(bind)
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def port(self) -> int:
        """The bound port (useful when the config asked for port 0)."""
        assert self._sock is not None
        return int(self._sock.getsockname()[1])

    def start(self, deliver: Deliver) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        sock.bind(self.address)
        sock.settimeout(0.2)
        self._sock = sock
        self._thread = threading.Thread(target=self._loop, args=(deliver,), name="input-udp", daemon=True)
        self._thread.start()
        log.info("input=udp event=listening bind=%s:%d", self.address[0], self.port)

    def _loop(self, deliver: Deliver) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                data = self._sock.recv(MAX_DATAGRAM + 1)
            except TimeoutError:
                continue
            except OSError as exc:
                if self._stopping.is_set():
                    break
                log.warning("input=udp event=recv_error error=%r", exc)
                continue
            deliver(data)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._sock is not None:
            self._sock.close()


def _check(spec: UdpSection) -> str | None:
    try:
        parse_bind(spec.bind)
    except ValueError as exc:
        return f"bind: {exc}"
    return None


def _create(spec: UdpSection) -> UdpInput:
    return UdpInput(spec.bind)


class UdpSection(InputSection, tag="udp"):
    """`[[inputs]]` with `type = "udp"`."""

    bind: str  # HOST:PORT the envelopes arrive on


DRIVER = Driver(section=UdpSection, check=_check, create=_create)
