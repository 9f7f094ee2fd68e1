"""`udp` input: envelopes from the simulator or a BLE-to-UDP bridge, one advertisement per datagram; the datagrams
the kernel dropped because the socket's buffer was full are read from /proc/net/udp and reported as lost."""

from __future__ import annotations

import logging
import os
import select
import socket
import threading
from pathlib import Path
from typing import Final

from edge_agent.inputs.base import Deliver, Driver, InputSection
from protocol.datagram import MAX_DATAGRAM

log = logging.getLogger(__name__)

RCVBUF_BYTES: Final = 8 * 1024 * 1024  # asked for; the kernel caps it at net.core.rmem_max (deploy/gateway-install.sh)
PROC_UDP: Final = (Path("/proc/net/udp"), Path("/proc/net/udp6"))


def kernel_drops(inode: int, tables: tuple[Path, ...] = PROC_UDP) -> int | None:
    """Datagrams the kernel dropped for the socket with this inode (the `drops` column of /proc/net/udp), None where
    the table is not there (not Linux) or does not list it."""
    for table in tables:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) >= 13 and fields[9] == str(inode):
                return int(fields[12])
    return None


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
        self._inode = 0
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
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
        granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2  # Linux reports twice what it keeps
        sock.bind(self.address)
        sock.setblocking(False)  # drained without a poll per datagram; polled only once it is empty (_loop)
        self._sock = sock
        self._inode = os.fstat(sock.fileno()).st_ino
        self._thread = threading.Thread(target=self._loop, args=(deliver,), name="input-udp", daemon=True)
        self._thread.start()
        log.info("input=udp event=listening bind=%s:%d rcvbuf_bytes=%d", self.address[0], self.port, granted)
        if granted < RCVBUF_BYTES:
            log.warning("input=udp event=small_socket_buffer rcvbuf_bytes=%d wanted=%d reason=%r", granted,
                        RCVBUF_BYTES, "the kernel caps it at net.core.rmem_max; a burst of frames beyond it is "
                        "dropped (counted as frames_rejected reason=kernel_buffer_full); deploy/gateway-install.sh "
                        "raises the cap")

    def _loop(self, deliver: Deliver) -> None:
        """Take every datagram queued (one system call each: a socket with a timeout would poll before each), then
        wait for more, looking at `_stopping` every 0.2 s."""
        sock = self._sock
        assert sock is not None
        waiting = select.poll()
        waiting.register(sock, select.POLLIN)
        size = MAX_DATAGRAM + 1
        while not self._stopping.is_set():
            try:
                data = sock.recv(size)
            except BlockingIOError:
                waiting.poll(200)
                continue
            except OSError as exc:
                if self._stopping.is_set():
                    break
                log.warning("input=udp event=recv_error error=%r", exc)
                continue
            deliver(data)

    def lost(self) -> dict[str, int]:
        """Datagrams the kernel dropped on this socket since it opened (its buffer was full)."""
        drops = kernel_drops(self._inode) if self._inode else None
        return {"kernel_buffer_full": drops} if drops else {}

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
