"""A gateway that loses power shows offline: real agent, mosquitto, ingest and SQL (SQLite and PostgreSQL)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlmodel import Session

from cloud.db.engine import make_engine
from cloud.db.fleet import Gateway
from deploy.services import Influxd
from tests.conftest import Broker
from tests.integration.edge_harness import AgentProcess
from tests.integration.test_ingest import Worker, wait_for

pytestmark = pytest.mark.integration
KEEPALIVE_S = 5


def test_a_frozen_agent_shows_offline_after_its_keepalive_although_its_will_was_composed_before_every_online(
    mosquitto_factory: Callable[..., Broker], influxd: Influxd, influx_db: str, database_url: str, tmp_path: Path
) -> None:
    broker = mosquitto_factory()
    worker = Worker(broker, influxd.url, influx_db, "ingest-liveness", tmp_path, database_url=database_url)
    agent = AgentProcess(tmp_path / "agent", broker.port, mqtt_extra=f"keepalive_s = {KEEPALIVE_S}")
    engine = make_engine(database_url)

    def state() -> tuple[str | None, int | None, int | None]:
        with Session(engine) as session:
            gw = session.get(Gateway, "gw1")
            return (gw.status, gw.status_ts, gw.status_session) if gw is not None else (None, None, None)

    try:
        agent.start()
        wait_for(lambda: state()[0] == "online", "gateway online", worker)
        time.sleep(1.5)  # statuses sent after the connection opened carry later timestamps than its will
        online_session = state()[2]
        assert agent.proc is not None
        # frozen, not killed: its socket stays open, as with a gateway whose power or network is gone (a killed
        # process's socket is closed by the kernel and the broker notices at once); only keepalive can tell
        agent.proc.send_signal(signal.SIGSTOP)
        killed = time.monotonic()
        wait_for(lambda: state()[0] == "offline", "gateway offline", worker, timeout=KEEPALIVE_S * 1.5 + 20)
        noticed_after_s = time.monotonic() - killed
        assert state()[2] == online_session  # the will ended that very session
        assert noticed_after_s >= KEEPALIVE_S  # it was the keepalive that told (not a closed socket)
        agent.proc.send_signal(signal.SIGKILL)
        agent.proc.send_signal(signal.SIGCONT)
        agent.proc.wait(10)
        agent.start()  # power back: a new session supersedes the offline one
        wait_for(lambda: state()[0] == "online", "gateway online again", worker)
        assert (state()[2] or 0) > (online_session or 0)
    finally:
        if agent.proc is not None and agent.proc.poll() is None:
            agent.proc.send_signal(signal.SIGKILL)
            agent.proc.send_signal(signal.SIGCONT)
            agent.proc.wait(10)
        engine.dispose()
    print(f"offline noticed {noticed_after_s:.1f} s after the agent froze (keepalive {KEEPALIVE_S} s)")
    assert worker.stop() == 0
