"""Helpers for edge tests: a real coldwatch-agent process from .venv-edge, a frame sender, a collector."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from deploy.services import free_port
from deploy.tls import TlsFiles
from protocol.codec import decode
from protocol.datagram import Datagram, pack_datagram
from protocol.messages import AlertEvent, Status, TelemetryBatch
from protocol.ruuvi import RUUVI_COMPANY_ID, RuuviFrame, encode_rawv2
from tests.conftest import EDGE_VENV, INGEST_USER, Broker

T0_MS = 1_767_225_600_000
MAC = "c2:00:00:00:01:00"


def frame(seq: int, mac: str = MAC, temp_c: float = 3.0) -> bytes:
    """A valid envelope carrying measurement `seq`, one minute apart."""
    payload = encode_rawv2(RuuviFrame(mac=mac, temp_c=temp_c, rh_pct=80.0, battery_mv=3000, seq=seq))
    return pack_datagram(Datagram(mac=mac, rssi_dbm=-60, company_id=RUUVI_COMPANY_ID, payload=payload,
                                  ts_ms=T0_MS + seq * 60_000))


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class AgentProcess:
    """`coldwatch-agent run` in the edge venv, with its own UDP and metrics ports."""

    def __init__(self, workdir: Path, broker_port: int, gateway: str = "gw1", password: str = "pw-gw1",
                 extra: str = "", mqtt_extra: str = "") -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.udp_port = free_port()
        self.metrics_port = free_port()
        self.config = workdir / "agent.toml"
        self.config.write_text(f"""gateway_id = "{gateway}"
metrics_port = {self.metrics_port}
drain_timeout_s = 5

[mqtt]
host = "127.0.0.1"
port = {broker_port}
password = "{password}"
reconnect_min_s = 0.5
reconnect_max_s = 2
{mqtt_extra}

[[inputs]]
type = "udp"
bind = "127.0.0.1:{self.udp_port}"

[outbox]
path = "{workdir / 'outbox.sqlite'}"
flush_interval_s = 0.2
{extra}
""")
        self.log = workdir / "agent.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> AgentProcess:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([str(EDGE_VENV / "bin" / "coldwatch-agent"), "run", "--config",
                                          str(self.config)], stdout=out, stderr=subprocess.STDOUT,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
        wait_for(lambda: "event=agent_started" in self.log.read_text().split("event=agent_stopped")[-1]
                 or self.proc is None or self.proc.poll() is not None, "agent start", 30)
        assert self.proc.poll() is None, self.log.read_text()
        return self

    def send(self, frames: list[bytes]) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for data in frames:
                sock.sendto(data, ("127.0.0.1", self.udp_port))
                time.sleep(0.001)

    def metric(self, name: str) -> float:
        import httpx

        total = 0.0
        for line in httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics").text.splitlines():
            if line.startswith(name) and not line.startswith("#"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


class Collector:
    """What the cloud would receive: a persistent MQTT 5 session reading one gateway's telemetry."""

    def __init__(self, broker: Broker, gateway: str = "gw1", tls: TlsFiles | None = None) -> None:
        self.batches: list[TelemetryBatch] = []
        self.alerts: list[AlertEvent] = []
        self.statuses: list[Status] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"collector-{secrets.token_hex(3)}",
                                  protocol=MQTTProtocolVersion.MQTTv5)
        self.client.username_pw_set(INGEST_USER, broker.password(INGEST_USER))
        if tls is not None:
            self.client.tls_set(ca_certs=str(tls.ca), certfile=str(tls.cert), keyfile=str(tls.key))
        self.client.on_message = self._on_message
        self.subscribed = threading.Event()
        self.client.on_connect = lambda c, *_: c.subscribe([(f"cw/v1/{gateway}/telemetry", 1),
                                                            (f"cw/v1/{gateway}/alerts", 1),
                                                            (f"cw/v1/{gateway}/status", 1)])
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.reconnect_delay_set(1, 2)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        self.client.connect(broker.host, broker.port, clean_start=False, properties=props)
        self.client.loop_start()
        assert self.subscribed.wait(10), "collector could not subscribe"

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            if message.topic.endswith("/status"):
                self.statuses.append(decode(message.payload, Status))
            elif message.topic.endswith("/alerts"):
                self.alerts.append(decode(message.payload, AlertEvent))
            else:
                self.batches.append(decode(message.payload, TelemetryBatch))

    def reading_seqs(self) -> set[int]:
        with self.lock:
            return {r.seq for b in self.batches for r in b.readings if r.seq is not None}

    def batch_seqs(self) -> set[int]:
        with self.lock:
            return {b.seq for b in self.batches}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
