"""The whole slice on loopback as real processes: broker, influxd, ingest workers, API, agents, simulator.

One implementation serves `make demo`, `make bench` and the end-to-end test.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from cloud.tsdb.influx import InfluxClient, InfluxRejected
from deploy.services import Influxd, Mosquitto, free_port
from firmware_sim.fleet import SimSensor, gateway_sensors

ROOT = Path(__file__).resolve().parent.parent
EDGE_BIN = ROOT / ".venv-edge" / "bin"
CLOUD_BIN = Path(sys.executable).parent
INGEST_USER = "coldwatch.ingest"
API_USER = "coldwatch.api"  # the API's own broker account: it writes desired state and reads nothing


@dataclass
class Gateway:
    """A simulated site: one agent and the tags it hears."""

    gateway_id: str
    index: int
    sensors: list[SimSensor]
    udp_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    agent_extra: str = ""  # TOML appended to the agent's config, e.g. an [updater] section (keys, token file)
    status_interval_s: float | None = None  # the agent's status (and running shadow report) interval; None: default
    keepalive_s: int | None = None  # MQTT keepalive: the broker sends the last will after 1.5 × this; None: default


def make_gateways(layout: Iterable[tuple[str, int, list[str]]]) -> list[Gateway]:
    """Gateways from (id, sensor count, profiles) triples."""
    return [Gateway(gid, i, gateway_sensors(i, n, profiles)) for i, (gid, n, profiles) in enumerate(layout)]


@dataclass
class LocalStack:
    """Starts and stops the processes; every log goes to `workdir/logs/<name>.log`."""

    workdir: Path
    gateways: list[Gateway]
    influx_db: str = "coldwatch"
    say: Callable[[str], None] = print
    mosquitto: Mosquitto | None = None
    influxd: Influxd | None = None
    api_url: str = ""
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ingest_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    api_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    database_url: str = ""  # the fleet database; "" = a SQLite file in workdir

    def __post_init__(self) -> None:
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)

    def _step(self, what: str, action: Callable[[], object]) -> None:
        t0 = time.monotonic()
        self.say(f"==> {what} ...")
        action()
        self.say(f"    done in {time.monotonic() - t0:.1f} s")

    def start_infra(self) -> None:
        """mosquitto (per-gateway accounts + ACL) and influxd, each in its own directory."""
        users = {g.gateway_id: g.password for g in self.gateways} | {INGEST_USER: self.ingest_password,
                                                                     API_USER: self.api_password}
        self.mosquitto = Mosquitto(workdir=self.workdir / "mosquitto", port=free_port(), users=users,
                                   service_users=(INGEST_USER,), api_users=(API_USER,))
        self.influxd = Influxd(workdir=self.workdir / "influxd", port=free_port())
        self._step(f"starting mosquitto on 127.0.0.1:{self.mosquitto.port}", self.mosquitto.start)
        self._step(f"starting influxd on {self.influxd.url}", self.influxd.start)

    def cloud_env(self, **extra: str) -> dict[str, str]:
        """Environment for `coldwatch` processes (secrets travel in the environment, never argv)."""
        assert self.mosquitto is not None and self.influxd is not None
        return os.environ | {
            "COLDWATCH_MQTT_HOST": "127.0.0.1",
            "COLDWATCH_MQTT_PORT": str(self.mosquitto.port),
            "COLDWATCH_MQTT_USERNAME": INGEST_USER,
            "COLDWATCH_MQTT_PASSWORD": self.ingest_password,
            "COLDWATCH_INFLUX_URL": self.influxd.url,
            "COLDWATCH_INFLUX_DB": self.influx_db,
            "COLDWATCH_DATABASE_URL": self.database_url or f"sqlite:///{self.workdir / 'coldwatch.db'}",
            "COLDWATCH_RECORDS_DIR": str(self.workdir / "records"),
            "COLDWATCH_RECORD_SIGNING_KEY": str(self.workdir / "record-signing.pem"),
        } | extra

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = (self.workdir / "logs" / f"{name}.log").open("ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.procs[name] = proc
        return proc

    def provision(self) -> None:
        """Provision every gateway of the stack in SQL through the service the API's `POST /api/v1/gateways`
        uses, with the passwords the broker was started with: ingest refuses gateways that are not provisioned
        (`COLDWATCH_INGEST_UNKNOWN_GATEWAY=reject`, the default). The demo provisions through the API instead."""
        from sqlmodel import Session

        from cloud.db.engine import init_schema, make_engine
        from cloud.db.fleet import GatewayCreate
        from cloud.services import fleet

        engine = make_engine(self.cloud_env()["COLDWATCH_DATABASE_URL"])
        try:
            init_schema(engine)
            with Session(engine) as session:
                for gw in self.gateways:
                    fleet.provision_gateway(session, data=GatewayCreate(id=gw.gateway_id, site=gw.gateway_id),
                                            actor="local-stack", password=gw.password)
                session.commit()
        finally:
            engine.dispose()

    def start_ingest(self, workers: int = 2) -> None:
        """N ingest workers on the shared subscription, each with a stable client id."""
        for i in range(1, workers + 1):
            env = self.cloud_env(COLDWATCH_INGEST_WORKER_ID=f"ingest-{i}")
            self._step(f"starting ingest worker ingest-{i}",
                       functools.partial(self._spawn, f"ingest-{i}", [str(CLOUD_BIN / "coldwatch"), "ingest"], env))

    def start_api(self, port: int | None = None, env: dict[str, str] | None = None) -> None:
        """`coldwatch serve` (with `env` added to its environment) and wait for /healthz."""
        port = port or free_port()
        self.api_url = f"http://127.0.0.1:{port}"

        def start() -> None:
            self._spawn("api", [str(CLOUD_BIN / "coldwatch"), "serve"],
                        self.cloud_env(COLDWATCH_API_PORT=str(port), COLDWATCH_MQTT_USERNAME=API_USER,
                                       COLDWATCH_MQTT_PASSWORD=self.api_password, **(env or {})))
            self._wait_http(f"{self.api_url}/healthz", "api")

        self._step(f"starting the API on {self.api_url}", start)

    def bearer(self, username: str, password: str) -> dict[str, str]:
        """Log in to the API as `username`; the Authorization header its token goes in."""
        login = httpx.post(f"{self.api_url}/api/v1/auth/login", json={"username": username, "password": password},
                           timeout=30)
        login.raise_for_status()
        return {"Authorization": f"Bearer {login.json()['access_token']}"}

    def _wait_http(self, url: str, name: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {self.workdir}/logs/{name}.log")
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{name} did not answer {url} within {timeout:.0f} s")

    def agent_config(self, gw: Gateway) -> Path:
        """Write the agent's TOML config (what an installer puts in /etc/coldwatch/agent.toml)."""
        assert self.mosquitto is not None
        path = self.workdir / "agents" / gw.gateway_id / "agent.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        profiles = "\n".join(f'"{s.mac}" = "{s.profile}"' for s in gw.sensors)
        status = f"status_interval_s = {gw.status_interval_s}\n" if gw.status_interval_s is not None else ""
        path.write_text(f"""gateway_id = "{gw.gateway_id}"
metrics_port = {gw.metrics_port}
{status}
[mqtt]
host = "127.0.0.1"
port = {self.mosquitto.port}
password = "{gw.password}"
{f"keepalive_s = {gw.keepalive_s}" if gw.keepalive_s is not None else ""}

[[inputs]]
type = "udp"
bind = "127.0.0.1:{gw.udp_port}"

[outbox]
path = "{path.parent / 'outbox.sqlite'}"

[sensors]
default_profile = "chilled"

[sensors.profiles]
{profiles}
{gw.agent_extra}""")
        path.chmod(0o600)
        return path

    def start_agents(self) -> None:
        """One `coldwatch-agent` per gateway, from the edge venv, as on a real gateway."""
        for gw in self.gateways:
            what = f"starting agent {gw.gateway_id} (UDP 127.0.0.1:{gw.udp_port}, {len(gw.sensors)} sensors)"
            self._step(what, functools.partial(self.start_agent, gw))

    def start_agent(self, gw: Gateway) -> None:
        """Start (or start again) one gateway's agent and wait for its metrics endpoint."""
        conf = self.agent_config(gw)
        self._spawn(f"agent-{gw.gateway_id}", [str(EDGE_BIN / "coldwatch-agent"), "run", "--config", str(conf)])
        self._wait_http(f"http://127.0.0.1:{gw.metrics_port}/metrics", f"agent-{gw.gateway_id}")

    def cut_power(self, gw: Gateway) -> None:
        """Freeze one gateway's agent (SIGSTOP), as a power cut looks from the broker: nothing more is sent and no
        connection is closed (a killed process's socket would be closed by the kernel, which a dead board cannot
        do), so the broker notices only by the keepalive. `restore_power` reboots it."""
        self.procs[f"agent-{gw.gateway_id}"].send_signal(signal.SIGSTOP)

    def restore_power(self, gw: Gateway) -> None:
        """The frozen agent is gone for good (SIGKILL); a fresh one starts from the same config and outbox."""
        proc = self.procs[f"agent-{gw.gateway_id}"]
        proc.kill()
        proc.wait(10)
        self.start_agent(gw)

    def start_sim_for(self, gw: Gateway, *, interval: float = 1.0, speed: float = 1.0,
                      duration: float | None = None, ticks: int | None = None, seed: int = 1,
                      scenario: str | None = None, labels: Path | None = None,
                      local_start_hour: float | None = None) -> subprocess.Popen[bytes]:
        """A simulator process for one gateway's tags (optionally playing a scenario, its ground truth
        written to `labels`, its sites' local time starting at `local_start_hour`); its JSON summary is its last
        stdout line."""
        argv = [str(CLOUD_BIN / "coldwatch-sim"), "--target", f"127.0.0.1:{gw.udp_port}",
                "--first-gateway-index", str(gw.index), "--sensors", str(len(gw.sensors)),
                "--profiles", ",".join(s.profile for s in gw.sensors),
                "--interval", str(interval), "--speed", str(speed), "--seed", str(seed + gw.index)]
        if duration is not None:
            argv += ["--duration", str(duration)]
        if ticks is not None:
            argv += ["--ticks", str(ticks)]
        if scenario is not None:
            argv += ["--scenario", scenario]
        if labels is not None:
            argv += ["--labels", str(labels)]
        if local_start_hour is not None:
            argv += ["--local-start-hour", str(local_start_hour)]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        self.procs[f"sim-{gw.gateway_id}"] = proc
        return proc

    @staticmethod
    def sim_summary(proc: subprocess.Popen[bytes], timeout: float | None = None) -> dict[str, object]:
        """Wait for the simulator and return its summary (frames sent, time range)."""
        out, _ = proc.communicate(timeout=timeout)
        summary: dict[str, object] = json.loads(out.decode().strip().splitlines()[-1])
        return summary

    def agent_alerts_opened(self, gw: Gateway) -> dict[str, int]:
        """Alerts the gateway's agent opened, by kind (from its metrics endpoint)."""
        opened: dict[str, int] = {}
        text = httpx.get(f"http://127.0.0.1:{gw.metrics_port}/metrics", timeout=10).text
        for line in text.splitlines():
            if line.startswith("coldwatch_agent_alert_events_total{") and 'state="open"' in line:
                kind = line.split('kind="', 1)[1].split('"', 1)[0]
                opened[kind] = opened.get(kind, 0) + int(float(line.rsplit(" ", 1)[1]))
        return opened

    def stored_count(self, start_ms: int, end_ms: int) -> dict[str, int]:
        """Readings stored per gateway in [start_ms, end_ms], counted in InfluxDB itself."""
        assert self.influxd is not None
        counts = {gw.gateway_id: 0 for gw in self.gateways}
        with InfluxClient(url=self.influxd.url, database=self.influx_db) as influx:
            try:
                series = influx.query(
                    "SELECT count(rssi_dbm) FROM reading WHERE time >= $start AND time <= $end GROUP BY gateway",
                    {"start": start_ms * 1_000_000, "end": end_ms * 1_000_000})
            except InfluxRejected:
                return counts  # the database does not exist yet: nothing stored
        for one in series:
            for row in one.rows():
                counts[one.tags.get("gateway", "")] = int(row["count"])
        return counts

    def wait_stored(self, expected: int, start_ms: int, end_ms: int, timeout: float = 60.0) -> dict[str, int]:
        """Poll until `expected` readings are stored or `timeout` passes; returns the last counts."""
        deadline = time.monotonic() + timeout
        counts = self.stored_count(start_ms, end_ms)
        while sum(counts.values()) < expected and time.monotonic() < deadline:
            time.sleep(0.5)
            counts = self.stored_count(start_ms, end_ms)
        return counts

    def stop(self) -> None:
        """SIGTERM every process (newest first), then the broker and influxd."""
        for name, proc in reversed(list(self.procs.items())):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    self.say(f"    {name} did not stop in 15 s; killing it")
                    proc.kill()
                    proc.wait(5)
        for server in (self.mosquitto, self.influxd):
            if server is not None:
                server.stop()
