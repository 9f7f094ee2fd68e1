"""Issue 5's reliability test: the broker is down for two minutes while the simulator streams in real time;
afterwards every reading is in InfluxDB, once, in order per sensor. Whole pipeline, real processes."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deploy.stack import LocalStack
from tests.integration.cloud_harness import ADMIN_PW, local_stack

pytestmark = pytest.mark.integration
OUTAGE_S = float(os.environ.get("COLDWATCH_TEST_OUTAGE_S", "120"))


@pytest.fixture
def stack(tmp_path: Path, edge_python: Path) -> Iterator[LocalStack]:
    with local_stack(tmp_path / "stack", [("gw-outage", 4, ["chilled", "frozen"])]) as s:
        yield s


def test_a_two_minute_broker_outage_loses_nothing(stack: LocalStack) -> None:
    assert stack.mosquitto is not None
    gw = stack.gateways[0]
    sim = stack.start_sim_for(gw, interval=1.0, speed=1.0, duration=OUTAGE_S + 20)
    time.sleep(10)
    stack.mosquitto.stop()
    time.sleep(OUTAGE_S)
    stack.mosquitto.start()
    summary = stack.sim_summary(sim, timeout=OUTAGE_S + 60)
    sent, start, end = int(str(summary["sent"])), int(str(summary["first_ts_ms"])), int(str(summary["last_ts_ms"]))
    assert sent >= 4 * (OUTAGE_S + 10)

    stored = stack.wait_stored(sent, start, end, timeout=90)
    assert stored == {"gw-outage": sent}
    viewer = stack.bearer("admin", ADMIN_PW)
    for sensor in gw.sensors:
        body = httpx.get(f"{stack.api_url}/api/v1/sensors/{sensor.mac}/readings",
                         params={"start": start, "end": end + 1}, headers=viewer, timeout=30).json()
        seqs = [r["seq"] for r in body["readings"]]  # ordered by time: the tag's own sequence must be too
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"{sensor.mac}: gap or disorder"
