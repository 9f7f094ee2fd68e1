"""A fleet for rollout tests: the real cloud (API with its rollout controller, ingest), real mosquitto and real
agents (.venv-edge) that trust a fleet key and hold an artifact token, and a real int8 model signed in the run.
Shared by tests/integration/test_rollouts.py and the ops dashboard's browser test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from cloud.api_client.responses import ModelDetail, Rollout
from deploy.services import Influxd, Mosquitto, free_port
from models.runtime.manifest import generate_keypair
from tests.conftest import API_USER, INGEST_USER, Broker
from tests.integration.cloud_harness import CloudStack, wait_until
from tests.integration.edge_harness import AgentProcess, frame
from tests.integration.model_harness import SignedModel


class Fleet:
    """The cloud, the agents and the models; `seq` per agent so every frame is a new simulated minute."""

    def __init__(self, cloud: CloudStack, agents: dict[str, AgentProcess], model: SignedModel,
                 second_key: bytes, root: Path, broker_port: int) -> None:
        self.cloud = cloud
        self.agents = agents
        self.gateways = list(agents)  # in provisioning order: gateway n's own sensor is c2:00:00:00:02:<n>
        self.model = model
        self.second_key = second_key  # a second signing key (rotation)
        self.second_public = root / "models" / "second.pub"
        self.root = root
        self.broker_port = broker_port
        self.seq = dict.fromkeys(agents, 0)

    def minutes(self, gateways: list[str], n: int) -> None:
        """`n` minutes of calm readings (3.0-3.2 °C) for each of `gateways`' own sensor."""
        for gw in gateways:
            mac = f"c2:00:00:00:02:{self.gateways.index(gw) + 1:02x}"
            start = self.seq[gw]
            self.agents[gw].send([frame(s, mac=mac, temp_c=3.0 + 0.1 * (s % 3)) for s in range(start, start + n)])
            self.seq[gw] = start + n
        for gw in gateways:  # the probation runs in reading time: let every agent score its backlog first
            wait_until(lambda gw=gw: self.agents[gw].metric("coldwatch_agent_readings_accepted_total")
                       >= self.seq[gw], f"{gw} to take its readings")

    def push(self, stem: str) -> ModelDetail:
        return self.cloud.ops.push_model(self.model.directory / f"{stem}.tflite")

    def rollout(self, rollout_id: int) -> Rollout:
        return self.cloud.ops.rollout(rollout_id)

    def wait_state(self, rollout_id: int, state: str, timeout: float = 120.0) -> Rollout:
        last: list[Rollout] = []

        def reached() -> Rollout | None:
            last[:] = [self.rollout(rollout_id)]
            return last[0] if last[0].state == state else None

        try:
            return wait_until(reached, f"rollout {rollout_id} {state}", timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last seen: {last}") from None

    def reported_model(self, gw: str) -> str | None:
        return self.cloud.ops.gateway(gw).reported_model_version


def states(rollout: Rollout, role: str | None = None) -> dict[str, str]:
    """Each target's state (of one role, or all), by gateway."""
    return {t.gateway_id: t.state for t in rollout.targets if role is None or t.role == role}


@contextmanager
def running_fleet(root: Path, influxd: Influxd, gateways: list[str], influx_db: str = "rollouts",
                  **cloud_extra: Any) -> Iterator[Fleet]:
    """mosquitto, the cloud and one agent per gateway (provisioned through the API, trusting the fleet key and a
    second key), stopped on exit. Agents report a running shadow every second."""
    model = SignedModel(root / "models" / "artifacts")
    second_private, second_public = generate_keypair()
    (root / "models" / "second.pub").write_bytes(second_public)
    server = Mosquitto(workdir=root / "mosquitto", port=free_port(),
                       users={INGEST_USER: "pw-ingest", API_USER: "pw-api"}, service_users=(INGEST_USER,),
                       api_users=(API_USER,)).start()
    broker = Broker(server)
    fleet_key = root / "models" / "fleet.key"  # the agents trust its public key: desired documents are signed
    fleet_key.write_bytes(model.private_pem)
    cloud = CloudStack(root / "cloud", broker, influxd.url, influx_db, [model.public_key,
                                                                        root / "models" / "second.pub"],
                       **({"desired_signing_key": str(fleet_key)} | cloud_extra)).start()
    agents: dict[str, AgentProcess] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COLDWATCH_AGENT_STATUS_INTERVAL_S", "1")  # a running shadow reports every second
        try:
            for gw in gateways:
                password, token_file = cloud.provision(gw, root / gw)
                keys = f'"{model.public_key}", "{root / "models" / "second.pub"}"'
                extra = f'[updater]\npublic_keys = [{keys}]\ntoken_file = "{token_file}"\napi_url = "{cloud.url}"\n'
                agents[gw] = AgentProcess(root / gw, broker.port, gateway=gw, password=password, extra=extra).start()
            yield Fleet(cloud, agents, model, second_private, root, broker.port)
        finally:
            for agent in agents.values():
                if agent.proc is not None and agent.proc.poll() is None:
                    agent.terminate()
            cloud.stop()
            server.stop()
