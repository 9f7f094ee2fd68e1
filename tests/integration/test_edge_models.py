"""A model pushed through `desired` is downloaded, verified, swapped and reported; a tampered one is refused.
Real agent (.venv-edge, tflite-runtime), real mosquitto, a real int8 model trained and signed in this run."""

from __future__ import annotations

import dataclasses
import functools
import http.server
import json
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from protocol.codec import decode, encode
from protocol.messages import Desired, Reported
from tests.conftest import API_USER, INGEST_USER, Broker
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
        # the API's account writes desired state (the ingest account above may only read the uplink)
        self.api = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ops-api", protocol=MQTTProtocolVersion.MQTTv5)
        self.api.username_pw_set(API_USER, broker.password(API_USER))
        self.api.connect(broker.host, broker.port)
        self.api.loop_start()

    def push(self, desired: Desired) -> None:
        self.api.publish("cw/v1/gw1/desired", encode(desired), qos=1, retain=True).wait_for_publish(10)

    def close(self) -> None:
        for client in (self.client, self.api):
            client.disconnect()
            client.loop_stop()


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
        # as in training, the first window ends a full window (30 steps) after the sensor's history begins: earlier
        # windows are mostly back-filled, and the models raised a false alert on them at every start
        assert scored and min(r.seq or 0 for r in scored) == 29
        assert len(scored) == 45 - 29  # every minute from then on, though all 45 arrived in one burst

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


def test_a_shadow_counts_alert_episodes_and_ends_only_when_the_cloud_says(
    mosquitto_factory: Callable[..., Broker], edge_python: Path, tmp_path: Path, signed_model: SignedModel,
    artifact_server: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLDWATCH_AGENT_STATUS_INTERVAL_S", "1")  # report a running shadow every second
    signed_model.variant("7", threshold=-1e9)  # every window above threshold (scores are logits): one alert
    signed_model.variant("8", threshold=signed_model.manifest.threshold)
    broker = mosquitto_factory()
    cloud = Cloud(broker)
    extra = f'[updater]\npublic_keys = ["{signed_model.public_key}"]\n'
    agent = AgentProcess(tmp_path / "agent", broker.port, extra=extra).start()
    shadow = {"mode": "shadow", "probation_s": 600.0}
    seq = iter(range(10_000))

    def minutes(n: int) -> None:
        agent.send([frame(next(seq), temp_c=3.0 + 0.1 * (i % 3)) for i in range(n)])

    def last() -> Reported | None:
        return cloud.reported[-1] if cloud.reported else None

    def running(windows: int) -> Reported:
        wait_for(lambda: (r := last()) is not None and r.shadow is not None and r.shadow.state == "running"
                 and r.shadow.windows >= windows, f"a running shadow over {windows} windows")
        report = last()
        assert report is not None and report.shadow is not None
        return report

    try:
        cloud.push(signed_model.desired(1, artifact_server))
        wait_for(lambda: (r := last()) is not None and r.result == "applied", "model 1 active")
        minutes(35)  # fill the windows, and let the active model score them
        wait_for(lambda: agent.metric("coldwatch_agent_readings_accepted_total") >= 35, "the backlog scored")
        cloud.push(signed_model.desired(2, artifact_server, stem="chilled_ae-7", **shadow))
        wait_for(lambda: (r := last()) is not None and r.desired_version == 2, "shadow started")
        assert last().result == "shadow" and last().model_version == "1"  # type: ignore[union-attr]
        minutes(20)  # twice the probation: the gateway still only reports, the cloud decides
        exploding = running(15)
        assert exploding.result == "shadow" and exploding.desired_version == 2
        s = exploding.shadow
        assert s is not None and s.shadow_episodes == 1 and s.active_episodes == 0  # one alert that stays open
        assert s.shadow_alerts == s.windows > s.active_alerts
        assert s.sensor_hours == pytest.approx(s.windows / 60, abs=1e-3)
        assert s.last_at is not None and s.last_at - s.started_at >= 14 * 60_000  # reading time, not wall time

        cloud.push(signed_model.desired(3, artifact_server))  # the cloud's verdict: back to model 1
        wait_for(lambda: (r := last()) is not None and r.desired_version == 3, "the candidate discarded")
        discarded = last()
        assert discarded is not None and discarded.result == "applied" and discarded.model_version == "1"
        assert discarded.shadow is not None and discarded.shadow.state == "discarded"
        assert discarded.shadow.model_version == "7" and discarded.shadow.shadow_episodes == 1

        cloud.push(signed_model.desired(4, artifact_server, stem="chilled_ae-8", **shadow))
        wait_for(lambda: (r := last()) is not None and r.desired_version == 4, "second shadow started")
        minutes(15)
        sound = running(10)
        assert sound.shadow is not None and sound.shadow.model_version == "8"
        assert sound.shadow.shadow_episodes == sound.shadow.active_episodes == 0  # the same network, threshold
        cloud.push(signed_model.desired(5, artifact_server, stem="chilled_ae-8"))  # the cloud's verdict: promote
        wait_for(lambda: (r := last()) is not None and r.desired_version == 5, "the candidate promoted")
        promoted = last()
        assert promoted is not None and promoted.result == "applied" and promoted.model_version == "8"
        assert promoted.shadow is not None and promoted.shadow.state == "promoted"
        assert "event=shadow_promoted gateway=gw1 profile=chilled model=chilled_ae-8" in agent.log.read_text()
    finally:
        cloud.close()
        agent.terminate()


def test_a_model_this_agent_cannot_feed_is_refused_with_its_reason(
    mosquitto_factory: Callable[..., Broker], edge_python: Path, tmp_path: Path, signed_model: SignedModel,
    artifact_server: str,
) -> None:
    """A signed model naming a newer agent, or a feature channel this agent does not compute (another engineer's
    next channel), is refused before it is loaded: reported, counted, logged; the agent keeps its model."""
    from models.runtime.manifest import write_signed

    spec = signed_model.manifest.feature_spec
    unknown = {**spec, "features": [*spec["features"][:-1], "door_open_sense"]}
    cases = {"20": ({"min_agent_version": "99.0"}, "agent_too_old", "needs coldwatch-agent 99.0 or newer"),
             "21": ({"feature_spec": unknown}, "unsupported_features", "cannot compute: door_open_sense")}
    for version, (changes, _, _) in cases.items():
        signed_model.variant(version, threshold=signed_model.manifest.threshold)
        write_signed(dataclasses.replace(signed_model.manifest, version=version, **changes), signed_model.directory,
                     signed_model.private_pem)
    broker = mosquitto_factory()
    cloud = Cloud(broker)
    extra = f'[updater]\npublic_keys = ["{signed_model.public_key}"]\n'
    agent = AgentProcess(tmp_path / "agent", broker.port, extra=extra).start()
    try:
        cloud.push(signed_model.desired(1, artifact_server))
        wait_for(lambda: [(r.desired_version, r.result) for r in cloud.reported] == [(1, "applied")], "model 1")
        for n, (version, (_, reason, words)) in enumerate(cases.items(), start=2):
            cloud.push(signed_model.desired(n, artifact_server, stem=f"chilled_ae-{version}"))
            wait_for(lambda n=n: cloud.reported[-1].desired_version == n, f"chilled_ae-{version} reported")
            refused = cloud.reported[-1]
            assert refused.result == "rejected" and refused.error is not None
            assert refused.error.startswith(f"{reason}: ") and words in refused.error
            assert agent.metric(f'coldwatch_agent_models_refused_total{{reason="{reason}"}}') == 1
            assert (f"event=model_rejected gateway=gw1 model=chilled_ae-{version} reason={reason}"
                    in agent.log.read_text())
        assert "event=model_active gateway=gw1 profile=chilled model=chilled_ae-1" in agent.log.read_text()
        assert agent.log.read_text().count("event=model_active") == 1  # never swapped
    finally:
        cloud.close()
        agent.terminate()


def test_the_agent_acts_only_on_documents_signed_for_it_and_goes_back_a_version_only_when_ops_roll_back(
    mosquitto_factory: Callable[..., Broker], edge_python: Path, tmp_path: Path, signed_model: SignedModel,
    artifact_server: str,
) -> None:
    """Unsigned, tampered (its sensor profiles changed) and other gateways' documents are refused: reported, counted,
    logged, never applied. A signed older model is refused as a downgrade until the document says `rollback`."""
    import msgspec

    from protocol.messages import DesiredConfig

    signed_model.variant("5", threshold=signed_model.manifest.threshold)
    broker = mosquitto_factory()
    cloud = Cloud(broker)
    extra = f'[updater]\npublic_keys = ["{signed_model.public_key}"]\n'
    agent = AgentProcess(tmp_path / "agent", broker.port, extra=extra).start()

    def pushed(desired: Desired, n: int) -> Reported:
        cloud.push(desired)
        wait_for(lambda: len(cloud.reported) == n, f"report {n}")
        return cloud.reported[-1]

    try:
        assert pushed(signed_model.desired(1, artifact_server), 1).result == "applied"
        newer = pushed(signed_model.desired(2, artifact_server, stem="chilled_ae-5"), 2)
        assert (newer.result, newer.model_version) == ("applied", "5")
        signed = signed_model.desired(3, artifact_server, stem="chilled_ae-5")
        tampered = msgspec.structs.replace(signed, config=DesiredConfig(sensor_profiles={
            "c2:00:00:00:00:01": "frozen"}))
        refusals = {"unsigned": signed_model.desired(3, artifact_server, sign=False),
                    "wrong_gateway": signed_model.desired(3, artifact_server, gateway="gw2"),
                    "bad_signature": tampered}
        for n, (reason, desired) in enumerate(refusals.items(), start=3):
            refused = pushed(desired, n)
            assert (refused.desired_version, refused.result) == (3, "rejected"), refused
            assert (refused.error or "").startswith(f"{reason}: ") and refused.model_version == "5"
            assert agent.metric(f'coldwatch_agent_desired_rejected_total{{reason="{reason}"}}') == 1
            assert f"event=desired_rejected gateway=gw1 version=3 reason={reason}" in agent.log.read_text()

        down = pushed(signed_model.desired(3, artifact_server), 6)  # model 1 again, signed: still a downgrade
        assert (down.desired_version, down.result, down.model_version) == (3, "rejected", "5")
        assert (down.error or "").startswith("downgrade: chilled_ae-1 is older than 5")
        back = pushed(signed_model.desired(4, artifact_server, rollback=True), 7)  # ops roll back explicitly
        assert (back.desired_version, back.result, back.model_version) == (4, "applied", "1")
        assert agent.metric("coldwatch_agent_desired_total") == 4  # the refused documents were never applied
    finally:
        cloud.close()
        agent.terminate()
    state = json.loads((tmp_path / "agent" / "desired-state.json").read_text())
    assert state["version"] == 4 and state["model_floor"] == {"chilled": "1"}


def test_the_gateway_scores_with_the_same_wrapper_and_threads_as_evaluation(signed_model: SignedModel) -> None:
    import numpy as np

    from edge_agent.detect.model import TfliteScorer
    from models.runtime.tflite import TfliteModel

    path = signed_model.files.model
    scorer, evaluation = TfliteScorer(path), TfliteModel(path)
    x = np.random.default_rng(0).normal(size=(64, evaluation.features)).astype(np.float32)
    assert isinstance(scorer.model, TfliteModel)
    assert np.array_equal(scorer.run(x), evaluation.outputs(x))  # bit for bit: one code path, one thread
    assert len(scorer.latencies_ms) == 1
