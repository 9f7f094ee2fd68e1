"""The foundation slice end to end, every part a real process: coldwatch-sim → UDP → coldwatch-agent
(.venv-edge) → mosquitto → two `coldwatch ingest` workers → influxd → `coldwatch serve` API."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deploy.stack import LocalStack
from tests.integration.cloud_harness import ADMIN_PW, local_stack

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(tmp_path: Path, edge_python: Path) -> Iterator[LocalStack]:
    with local_stack(tmp_path / "stack", [("gw-a", 4, ["frozen", "chilled"]), ("gw-b", 3, ["pharma_2_8"])]) as s:
        yield s


def test_every_reading_sent_is_stored_and_served(stack: LocalStack) -> None:
    garbage = [b"", b"CW", b"CW\x01\x00" + bytes(30), bytes(range(40)), b"\xff" * 128]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for gw in stack.gateways:  # bad frames first: they must not disturb what follows
            for junk in garbage:
                sock.sendto(junk, ("127.0.0.1", gw.udp_port))
    sims = [stack.start_sim_for(gw, ticks=40, speed=20) for gw in stack.gateways]
    summaries = [stack.sim_summary(p, timeout=60) for p in sims]
    sent = sum(int(str(s["sent"])) for s in summaries)
    assert sent == 40 * 7
    start = min(int(str(s["first_ts_ms"])) for s in summaries)
    end = max(int(str(s["last_ts_ms"])) for s in summaries)

    stored = stack.wait_stored(sent, start, end, timeout=60)
    assert stored == {"gw-a": 160, "gw-b": 120}

    sensor = stack.gateways[0].sensors[0]  # a frozen reefer tag
    body = httpx.get(f"{stack.api_url}/api/v1/sensors/{sensor.mac}/readings",
                     params={"start": start, "end": end + 1}, headers=stack.bearer("admin", ADMIN_PW)).json()
    assert body["count"] == 40
    ts = [r["ts"] for r in body["readings"]]
    assert ts == sorted(ts) and len(set(ts)) == 40
    assert all(r["gateway"] == "gw-a" and r["profile"] == "frozen" for r in body["readings"])
    assert all(-30 < r["temp_c"] < -10 and r["battery_mv"] > 2000 for r in body["readings"])
    assert [r["seq"] for r in body["readings"]] == list(range(40))

    for gw in stack.gateways:  # the garbage was counted by reason, and the agents kept running
        metrics = httpx.get(f"http://127.0.0.1:{gw.metrics_port}/metrics").text
        assert "coldwatch_agent_frames_rejected_total" in metrics
        assert stack.procs[f"agent-{gw.gateway_id}"].poll() is None
