"""The cloud side for integration tests: the real API (uvicorn, rollout controller in its lifespan) and a real
ingest worker, both in threads of the test process, against real mosquitto and influxd; plus ops helpers."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from cloud.api.app import create_app
from cloud.api_client.client import OpsClient
from cloud.config import Settings
from cloud.ingest.worker import IngestWorker
from deploy.services import free_port
from deploy.stack import LocalStack, make_gateways
from tests.conftest import API_USER, INGEST_USER, Broker, require_binary

ADMIN_PW = "admin-password-1"


@contextmanager
def local_stack(workdir: Path, layout: list[tuple[str, int, list[str]]]) -> Iterator[LocalStack]:
    """deploy's LocalStack as the demo runs it, every part its own process: mosquitto, influxd, two ingest
    workers, the API (user admin with ADMIN_PW) and an agent per gateway of `layout`; stopped afterwards."""
    require_binary("mosquitto")
    require_binary("influxd")
    stack = LocalStack(workdir=workdir, gateways=make_gateways(layout), say=lambda _line: None)
    try:
        stack.start_infra()
        stack.provision()
        stack.start_ingest(workers=2)
        stack.start_api(env={"COLDWATCH_ADMIN_PASSWORD": ADMIN_PW})
        stack.start_agents()
        yield stack
    finally:
        stack.stop()


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 90.0) -> Any:
    """Poll until `condition()` is truthy; returns that value (AssertionError naming `what` on timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class CloudStack:
    """API + ingest for one test module; `ops` is an OpsClient logged in as admin (an API token)."""

    def __init__(self, workdir: Path, broker: Broker, influx_url: str, influx_db: str, public_keys: list[Path],
                 **extra: Any) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        pid_file = workdir / "mosquitto.pid"
        assert broker.server.proc is not None
        pid_file.write_text(str(broker.server.proc.pid))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings = Settings(
            database_url=f"sqlite:///{workdir / 'coldwatch.db'}", influx_url=influx_url, influx_db=influx_db,
            mqtt_host=broker.host, mqtt_port=broker.port, mqtt_username=API_USER,
            mqtt_password=broker.password(API_USER), admin_password=ADMIN_PW, api_port=self.port,
            mosquitto_passwd_file=str(broker.server.workdir / "passwd"), mosquitto_pid_file=str(pid_file),
            models_dir=str(workdir / "registry"), model_public_keys=",".join(str(p) for p in public_keys),
            rollout_interval_s=0.5, ingest_batch_age_s=0.2, **extra)
        self.server = uvicorn.Server(uvicorn.Config(create_app(self.settings), host="127.0.0.1", port=self.port,
                                                    log_config=None, access_log=False, lifespan="on"))
        self.api_thread = threading.Thread(target=self.server.run, name="api", daemon=True)
        self.ingest = IngestWorker(dataclasses.replace(self.settings, mqtt_username=INGEST_USER,
                                                       mqtt_password=broker.password(INGEST_USER)))
        self.ingest_thread = threading.Thread(target=self.ingest.run, name="ingest", daemon=True)

    def start(self) -> CloudStack:
        self.api_thread.start()
        wait_until(lambda: self.server.started, "the API to start", 30)
        self.ingest_thread.start()
        login = httpx.post(f"{self.url}/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PW})
        login.raise_for_status()
        self.token = login.json()["access_token"]
        self.ops = OpsClient(url=self.url, token=self.token)
        return self

    def provision(self, gateway_id: str, workdir: Path) -> tuple[str, Path]:
        """Provision through the API: (MQTT password, file holding the gateway's artifact token)."""
        creds = self.ops.provision_gateway(gateway_id)
        token = self.ops.artifact_token(gateway_id).token
        workdir.mkdir(parents=True, exist_ok=True)
        token_file = workdir / "artifact.token"
        token_file.write_text(token + "\n")
        return creds.mqtt_password, token_file

    def stop(self) -> None:
        self.ops.close()
        self.ingest.stop()
        self.ingest_thread.join(30)
        self.server.should_exit = True
        self.api_thread.join(30)
