"""Rollout and retraining figures on real processes (deploy.stack.LocalStack: mosquitto, influxd, two ingest workers,
the API with its rollout controller): a model rolled out active to 200 lightweight gateways (MQTT client, artifact
download with the gateway's token, sha256 + Ed25519 check, `reported`) against the broker's own fan-out of 200
messages to the same clients; and one profile retrained end to end by `coldwatch train-worker` against the training
step alone inside the same job."""

from __future__ import annotations

import base64
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from bench.results import Result
from cloud.api_client.client import OpsClient
from deploy.stack import API_USER, CLOUD_BIN, LocalStack, make_gateways
from edge_agent import __version__ as agent_version
from models.runtime.manifest import ModelRejected, generate_keypair, verify_desired, verify_manifest_bytes
from protocol import encode
from protocol.codec import ProtocolError, decode
from protocol.messages import Desired, Reported, Status
from protocol.topics import topic

ADMIN_PW = "bench-admin-password"
GATEWAYS = 200
T0 = 1_767_225_600_000


class LightGateway:
    """What a gateway does with a desired model, minus the interpreter: check the document's signature and gateway,
    download, verify, report."""

    def __init__(self, gateway_id: str, password: str, port: int, token: str, public_key: bytes) -> None:
        self.id, self.token, self.public_key = gateway_id, token, public_key
        self.applied_at: float | None = None
        self.ping_at: float | None = None
        self.http = httpx.Client(timeout=30)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"light-{gateway_id}",
                                  protocol=MQTTProtocolVersion.MQTTv5)
        self.client.username_pw_set(gateway_id, password)
        self.subscribed = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, *_args: object) -> None:
        client.subscribe(topic(self.id, "desired"), qos=1)
        # as an agent does: its version, so the rollout knows it can compute the model's inputs
        now = int(time.time() * 1000)
        status = Status(gateway=self.id, state="online", ts=now, session=now, agent_version=agent_version)
        client.publish(topic(self.id, "status"), encode(status), qos=1, retain=True)

    def _get(self, url: str) -> bytes:
        response = self.http.get(url, headers={"Authorization": f"Bearer {self.token}"})
        response.raise_for_status()
        return response.content

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        if message.payload == b"ping":
            self.ping_at = time.perf_counter()
            return
        try:
            desired = decode(bytes(message.payload), Desired)
        except ProtocolError:
            return
        try:
            verify_desired(desired, [self.public_key])
        except ModelRejected:
            return
        if desired.model is None or desired.gateway != self.id:
            return
        model = self._get(desired.model.url)
        manifest = verify_manifest_bytes(self._get(desired.model.url[: -len(".tflite")] + ".manifest.json"),
                                         desired.model.signature, [self.public_key])
        if hashlib.sha256(model).hexdigest() != manifest.sha256:
            return
        reported = Reported(gateway=self.id, ts=int(time.time() * 1000), desired_version=desired.version,
                            result="applied", model_version=desired.model.version)
        self.client.publish(topic(self.id, "reported"), encode(reported), qos=1, retain=True)
        self.applied_at = time.perf_counter()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self.http.close()


def _signed_model(folder: Path, private_pem: bytes) -> Path:
    from models.training.artifacts import export_model
    from models.training.train import TrainConfig, train_profile

    trained = train_profile(TrainConfig(profile="chilled", sensors=4, days=1.0, validation_sensors=2,
                                        validation_days=0.5, epochs=2))
    return export_model(trained, folder, name="cw_chilled", version="1", private_key_pem=private_pem).files.model


def _wait(condition: Any, what: str, timeout: float = 300.0, poll_s: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(poll_s)


class AlertsProbe:
    """Times `GET /api/v1/alerts` back to back in a thread (what a member of staff's inbox asks) until stopped."""

    def __init__(self, api_url: str, token: str) -> None:
        self.latencies_s: list[float] = []
        self.error: str | None = None
        self._stop = threading.Event()
        self._http = httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        self._thread = threading.Thread(target=self._run, name="alerts-probe", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.perf_counter()
            response = self._http.get("/api/v1/alerts", params={"limit": 50})
            if response.status_code != 200:
                self.error = f"GET /api/v1/alerts answered {response.status_code}: {response.text[:200]}"
                return
            self.latencies_s.append(time.perf_counter() - t0)
            time.sleep(0.01)

    def __enter__(self) -> AlertsProbe:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=120)
        self._http.close()

    def p99_ms(self) -> float:
        if self.error is not None or len(self.latencies_s) < 2:
            raise RuntimeError(self.error or f"the alerts probe answered {len(self.latencies_s)} times")
        return statistics.quantiles(self.latencies_s, n=100, method="inclusive")[98] * 1000


def fanout(stack: LocalStack, ops: OpsClient, token: str, public_key: bytes, model_dir: Path) -> list[Result]:
    """Seconds from POST /rollouts (no canary: what a promotion sends) to the API showing it completed; the p99 of
    the alert inbox's request while the gateways download, against the same request on the idle API."""
    assert stack.mosquitto is not None
    ops.push_model(model_dir)
    light = []
    for gw in stack.gateways:
        ops.provision_gateway(gw.gateway_id)
        artifact_token = ops.artifact_token(gw.gateway_id).token
        light.append(LightGateway(gw.gateway_id, gw.password, stack.mosquitto.port, artifact_token, public_key))
    try:
        _wait(lambda: all(g.subscribed.is_set() for g in light), "the gateways to subscribe")
        _wait(lambda: all(ops.gateway(g.id).agent_version for g in light), "every gateway's status stored")
        pinger = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-ping", protocol=MQTTProtocolVersion.MQTTv5)
        pinger.username_pw_set(API_USER, stack.api_password)  # the account that writes desired state
        pinger.connect("127.0.0.1", stack.mosquitto.port)
        pinger.loop_start()
        t0 = time.perf_counter()
        for g in light:
            pinger.publish(topic(g.id, "desired"), b"ping", qos=1)  # not retained: the rollout's message stays
        _wait(lambda: all(g.ping_at is not None for g in light), "the broker fan-out")
        broker_s = max(g.ping_at or 0.0 for g in light) - t0
        pinger.disconnect()
        pinger.loop_stop()

        with AlertsProbe(stack.api_url, token) as idle:
            time.sleep(3.0)
        t0 = time.perf_counter()
        # No canary, on purpose: this figure is the fan-out a promotion sends (what the canary verdict triggers), and
        # light gateways score nothing, so they could give a canary no evidence (its verdict is tested, not timed).
        with AlertsProbe(stack.api_url, token) as busy:
            rollout = ops.start_rollout(model="cw_chilled-1", canary_fraction=0.0)
            _wait(lambda: all(g.applied_at is not None for g in light), "every gateway to apply")
        applied_s = max(g.applied_at or 0.0 for g in light) - t0
        _wait(lambda: ops.rollout(rollout.id).state == "completed", "the rollout to complete", poll_s=0.25)
        completed_s = time.perf_counter() - t0
    finally:
        for g in light:
            g.close()
    ref = f"broker fan-out of {GATEWAYS} messages, same clients"
    print(f"    alerts probe: {len(idle.latencies_s)} requests idle, {len(busy.latencies_s)} during the rollout",
          file=sys.stderr)
    return [Result(f"rollout_active_{GATEWAYS}_gw", applied_s, "s", ref, broker_s, higher_is_better=False),
            Result(f"rollout_completed_{GATEWAYS}_gw", completed_s, "s", ref, broker_s, higher_is_better=False),
            Result("api_p99_during_rollout", busy.p99_ms(), "ms", "GET /api/v1/alerts p99 on the idle API, same run",
                   idle.p99_ms(), higher_is_better=False)]


def retrain(stack: LocalStack, ops: OpsClient, token: str, key_file: Path, work: Path) -> list[Result]:
    """One profile (20 rooms × 7 days, staff labels) through `coldwatch train-worker`: query, train, export,
    evaluate against the current model, sign, register; the training step alone as the reference."""
    from tests.integration.site_data import site_data, store_site

    t0_ms = T0 + 60 * 86_400_000
    series, windows = site_data(t0_ms, rooms=20, days=7.0)
    assert stack.influxd is not None
    ids = store_site(series, windows, influx_url=stack.influxd.url, influx_db=stack.influx_db,
                     database_url=f"sqlite:///{stack.workdir / 'coldwatch.db'}")
    for aid, (_, _, _, code) in zip(ids, windows, strict=True):
        ops.request("POST", f"/api/v1/alerts/{aid}/resolve", json={"reason_code": code})
    job = ops.queue_training(profile="chilled", start=t0_ms, end=t0_ms + 7 * 86_400_000, epochs=8, version="2")
    env = {**os.environ, "COLDWATCH_API_TOKEN": token, "COLDWATCH_SIGNING_KEY_FILE": str(key_file)}
    subprocess.run([str(CLOUD_BIN / "coldwatch"), "train-worker", "--once", "--api-url", stack.api_url,
                    "--work-dir", str(work)], env=env, capture_output=True, timeout=1800)
    done = ops.training_job(job.id)
    if not done.result:
        raise RuntimeError(f"retraining failed: {done.error}\n{done.log}")
    timings = done.result.timings_s
    device = done.result.device
    verdict = "registered" if done.state == "succeeded" else f"refused by the gate: {done.error}"
    print(f"    retraining: {verdict}; {timings}", file=sys.stderr)
    for role, ev in msgspec.to_builtins(done.result.evaluation).items():
        if isinstance(ev, dict):
            print(f"    {role}: " + ", ".join(f"{k}={ev.get(k)}" for k in (
                "recall", "median_delay_min", "false_alerts_per_sensor_day", "benign_windows",
                "benign_windows_alerted")), file=sys.stderr)
    return [Result(f"retrain_profile_e2e_{device}", timings["total_s"], "s", "its training step alone",
                   timings["train_s"], higher_is_better=False)]


def run() -> list[Result]:
    """Both figures on one stack."""
    with tempfile.TemporaryDirectory(prefix="coldwatch-bench-") as tmp:
        root = Path(tmp)
        private_pem, public_raw = generate_keypair()
        (root / "fleet.pub").write_bytes(base64.b64encode(public_raw) + b"\n")
        (root / "fleet.key").write_bytes(private_pem)
        model = _signed_model(root / "model", private_pem)
        saved = dict(os.environ)
        os.environ.update({"COLDWATCH_ADMIN_PASSWORD": ADMIN_PW, "COLDWATCH_MODELS_DIR": str(root / "registry"),
                           "COLDWATCH_MODEL_PUBLIC_KEYS": str(root / "fleet.pub"),
                           "COLDWATCH_DESIRED_SIGNING_KEY": str(root / "fleet.key"),
                           "COLDWATCH_ROLLOUT_INTERVAL_S": "0.5"})
        stack = LocalStack(workdir=root / "stack", say=lambda _line: None,
                           gateways=make_gateways([(f"lgw{i:03d}", 0, ["chilled"]) for i in range(GATEWAYS)]))
        try:
            stack.start_infra()
            stack.start_ingest(workers=2)
            stack.start_api()
            login = httpx.post(f"{stack.api_url}/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PW})
            login.raise_for_status()
            token = login.json()["access_token"]
            with OpsClient(url=stack.api_url, token=token) as ops:
                results = fanout(stack, ops, token, public_raw, model.parent)
                results += retrain(stack, ops, token, root / "fleet.key", root / "work")
        finally:
            stack.stop()
            os.environ.clear()
            os.environ.update(saved)
    return results
