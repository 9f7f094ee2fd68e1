"""Frames the kernel drops because the UDP socket's buffer is full (a burst while the agent is busy) are not lost
silently: the udp input reads them from /proc/net/udp, and the agent counts them as frames rejected, by reason, in
its metrics and its status."""

from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from edge_agent.agent import Agent
from edge_agent.config import parse_config
from edge_agent.inputs.udp import UdpInput, kernel_drops

HEADER = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref "
          "pointer drops\n")


def test_kernel_drops_reads_the_drops_column_of_the_sockets_row(tmp_path: Path) -> None:
    table = tmp_path / "udp"
    table.write_text(HEADER
                     + "  1: 0100007F:270F 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 "
                       "4242 2 0000000000000000 17\n"
                     + "  2: 0100007F:2710 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 "
                       "4343 2 0000000000000000 0\n")
    assert kernel_drops(4242, (tmp_path / "none", table)) == 17
    assert kernel_drops(4343, (table,)) == 0
    assert kernel_drops(99, (table,)) is None  # not listed: nothing to report


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/net/udp is Linux's")
def test_a_burst_beyond_the_socket_buffer_is_reported_lost_and_the_agent_counts_it(tmp_path: Path) -> None:
    config = parse_config({"gateway_id": "gw1", "mqtt": {"host": "127.0.0.1", "password": "x"},
                           "inputs": [{"type": "udp", "bind": "127.0.0.1:0"}],
                           "outbox": {"path": str(tmp_path / "o.sqlite")}})
    agent = Agent(config)
    udp = agent.inputs[0]
    assert isinstance(udp, UdpInput)
    busy = threading.Event()
    delivered = 0

    def deliver(_data: bytes) -> None:  # an agent busy with the first frame: the socket's buffer fills
        nonlocal delivered
        delivered += 1
        busy.wait(30)

    udp.start(deliver)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent = 20_000  # ~20 MB of kernel buffer at ~1 KB per small datagram: beyond any socket buffer the test gets
    try:
        for i in range(sent):
            sender.sendto(i.to_bytes(4, "big") * 8, ("127.0.0.1", udp.port))
        deadline = time.monotonic() + 10
        while not udp.lost() and time.monotonic() < deadline:
            time.sleep(0.05)
        lost = udp.lost().get("kernel_buffer_full", 0)
        assert 0 < lost < sent
        agent.count_input_losses()
        agent.count_input_losses()  # counted once, however often it is asked
        counted = agent.metrics.frames_rejected.labels(reason="kernel_buffer_full")._value.get()
        assert counted == lost
        assert agent.status("online").frames_rejected == lost
    finally:
        busy.set()
        udp.stop()
        sender.close()
        agent.outbox.close()
