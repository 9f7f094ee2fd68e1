"""An agent that cannot reach its broker says so at once: broker address, reason, attempt; and keeps trying."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

import pytest

from edge_agent.config import parse_config
from edge_agent.metrics import AgentMetrics
from edge_agent.outbox import Outbox
from edge_agent.publish import Publisher
from protocol.messages import Status


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: connections are refused


def test_a_refused_connection_is_logged_with_the_broker_and_the_reason_and_retried(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    port = _closed_port()
    config = parse_config({
        "gateway_id": "gw1", "mqtt": {"host": "127.0.0.1", "port": port, "password": "pw", "reconnect_min_s": 1,
                                      "reconnect_max_s": 1},
        "inputs": [{"type": "udp", "bind": "127.0.0.1:0"}], "outbox": {"path": str(tmp_path / "outbox.sqlite")},
    })
    metrics = AgentMetrics()
    outbox = Outbox(tmp_path / "outbox.sqlite", "gw1", metrics)
    publisher = Publisher(config, outbox, metrics,
                          lambda state: Status(gateway="gw1", state=state, ts=int(time.time() * 1000)))  # type: ignore[arg-type]
    caplog.set_level(logging.WARNING, logger="edge_agent.publish")
    publisher.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and metrics.connect_failures._value.get() < 2:
            time.sleep(0.05)
    finally:
        publisher.stop()
        outbox.close()
    failures = [r.getMessage() for r in caplog.records if "event=mqtt_connect_failed" in r.getMessage()]
    assert len(failures) >= 2  # the first attempt is reported, and the agent goes on trying
    assert f"broker=127.0.0.1:{port}" in failures[0] and "reason=Connection refused" in failures[0]
    assert "attempt=1" in failures[0] and "attempt=2" in failures[1]
