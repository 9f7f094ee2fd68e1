"""A model pushed through `desired` is downloaded, verified, swapped and reported; a tampered one is refused.
Real agent (.venv-edge, tflite-runtime), real mosquitto, a real int8 model trained and signed in this run."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from protocol.codec import decode, encode
from protocol.messages import Desired, Reported
from tests.conftest import INGEST_USER, Broker
from tests.integration.edge_harness import AgentProcess, Collector, frame, wait_for
from tests.integration.model_harness import SignedModel

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def signed_model(tmp_path_factory: pytest.TempPathFactory) -> SignedModel:
    return SignedModel(tmp_path_factory.mktemp("registry") / "artifacts")


@pytest.fixture
def artifact_server(signed_model: SignedModel) -> Iterator[str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(signed_model.directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class Cloud:
    """The ops side of the contract: publish retained desired state, read `reported`."""

    def __init__(self, broker: Broker) -> None:
        self.reported: list[Reported] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ops", protocol=MQTTProtocolVersion.MQTTv5)
        self.client.username_pw_set(INGEST_USER, broker.password(INGEST_USER))
        self.client.on_message = lambda _c, _u, m: self.reported.append(decode(m.payload, Reported))
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.client.subscribe("cw/v1/gw1/reported", qos=1)

    def push(self, desired: Desired) -> None:
        self.client.publish("cw/v1/gw1/desired", encode(desired), qos=1, retain=True).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_a_signed_model_is_applied_and_scores_and_a_tampered_one_is_refused(
    mosquitto_factory: Callable[..., Broker], edge_python: Path, tmp_path: Path, signed_model: SignedModel,
    artifact_server: str,
) -> None:
    broker = mosquitto_factory()
    cloud = Cloud(broker)
    collector = Collector(broker)
    extra = f'[updater]\npublic_keys = ["{signed_model.public_key}"]\n'
    agent = AgentProcess(tmp_path / "agent", broker.port, extra=extra).start()
    try:
        cloud.push(signed_model.desired(1, artifact_server))
        wait_for(lambda: [(r.desired_version, r.result) for r in cloud.reported] == [(1, "applied")],
                 "the model applied")
        assert cloud.reported[0].model_version == "1"

        agent.send([frame(s, temp_c=3.0 + 0.1 * (s % 3)) for s in range(45)])  # 45 minutes, one a minute
        wait_for(lambda: collector.reading_seqs() >= set(range(45)), "readings")
        scored = [r for b in collector.batches for r in b.readings if r.anomaly_score is not None]
        assert scored and all(r.seq is not None and r.seq >= 14 for r in scored)  # once half a window has data
        assert len(scored) >= 45 - 15  # every minute from then on, though all 45 arrived in one burst

        d = signed_model.directory  # same signed manifest, different bytes: a tampered artifact
        shutil.copy(d / "chilled_ae-1.manifest.json", d / "chilled_ae-2.manifest.json")
        (d / "chilled_ae-2.tflite").write_bytes(signed_model.files.model.read_bytes()[:-8] + b"\0" * 8)
        cloud.push(signed_model.desired(2, artifact_server, stem="chilled_ae-2"))
        wait_for(lambda: len(cloud.reported) == 2, "the tampered model reported")
        refused = cloud.reported[1]
        assert (refused.desired_version, refused.result) == (2, "rejected") and refused.error
        assert "hash_mismatch" in refused.error or "desired_mismatch" in refused.error
        assert agent.metric("coldwatch_agent_desired_total") == 2
    finally:
        cloud.close()
        collector.close()
        agent.terminate()
    restarted = AgentProcess(tmp_path / "agent", broker.port, extra=extra)
    restarted.config.write_text(agent.config.read_text())
    restarted.udp_port, restarted.metrics_port = agent.udp_port, agent.metrics_port
    restarted.start()
    try:
        assert "event=model_active gateway=gw1 profile=chilled model=chilled_ae-1" in restarted.log.read_text()
    finally:
        restarted.terminate()


def test_shadow_candidates_are_promoted_or_discarded_on_their_alert_rate(
    mosquitto_factory: Callable[..., Broker], edge_python: Path, tmp_path: Path, signed_model: SignedModel,
    artifact_server: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLDWATCH_AGENT_STATUS_INTERVAL_S", "1")  # report a running shadow every second
    signed_model.variant("7", threshold=1e-9)  # every window above threshold: an exploding alert rate
    signed_model.variant("8", threshold=signed_model.manifest.threshold)
    broker = mosquitto_factory()
    cloud = Cloud(broker)
    extra = f'[updater]\npublic_keys = ["{signed_model.public_key}"]\n'
    agent = AgentProcess(tmp_path / "agent", broker.port, extra=extra).start()
    shadow = {"mode": "shadow", "probation_s": 600.0, "max_alert_ratio": 3.0}
    seq = iter(range(10_000))

    def minutes(n: int) -> None:
        agent.send([frame(next(seq), temp_c=3.0 + 0.1 * (i % 3)) for i in range(n)])

    def last() -> Reported | None:
        return cloud.reported[-1] if cloud.reported else None

    try:
        cloud.push(signed_model.desired(1, artifact_server))
        wait_for(lambda: (r := last()) is not None and r.result == "applied", "model 1 active")
        minutes(35)  # fill the windows, and let the active model score them: the probation is measured in
        # reading time, so a backlog still pending when the shadow starts would finish it at once
        wait_for(lambda: agent.metric("coldwatch_agent_readings_accepted_total") >= 35, "the backlog scored")
        cloud.push(signed_model.desired(2, artifact_server, stem="chilled_ae-7", **shadow))
        wait_for(lambda: (r := last()) is not None and r.desired_version == 2, "shadow started")
        assert last().result == "shadow" and last().model_version == "1"  # type: ignore[union-attr]
        minutes(15)
        wait_for(lambda: (r := last()) is not None and r.shadow is not None and r.shadow.state == "discarded",
                 "the exploding candidate discarded")
        discarded = last()
        assert discarded is not None and discarded.shadow is not None
        assert discarded.result == "rejected" and discarded.model_version == "1"
        assert discarded.shadow.shadow_alerts > discarded.shadow.active_alerts and discarded.shadow.windows >= 10

        cloud.push(signed_model.desired(3, artifact_server, stem="chilled_ae-8", **shadow))
        wait_for(lambda: (r := last()) is not None and r.desired_version == 3, "second shadow started")
        minutes(15)
        wait_for(lambda: (r := last()) is not None and r.shadow is not None and r.shadow.state == "promoted",
                 "the sound candidate promoted")
        promoted = last()
        assert promoted is not None and promoted.result == "applied" and promoted.model_version == "8"
        assert any(r.shadow is not None and r.shadow.state == "running" for r in cloud.reported)
    finally:
        cloud.close()
        agent.terminate()
