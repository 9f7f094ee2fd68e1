"""The agent as a real process (.venv-edge) against a real mosquitto: outages, kill -9, bad input."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from deploy.tls import make_dev_pki
from protocol.codec import decode, encode
from protocol.messages import AlertEvent, Desired, DesiredConfig, Reported
from tests.conftest import API_USER, EDGE_VENV, INGEST_USER, Broker
from tests.integration.edge_harness import MAC, T0_MS, AgentProcess, Collector, frame, wait_for

pytestmark = pytest.mark.integration


def test_broker_outage_loses_nothing_and_batches_stay_gap_free(
    mosquitto_factory: Callable[..., Broker], edge_python: Path, tmp_path: Path
) -> None:
    broker = mosquitto_factory()
    collector = Collector(broker)
    agent = AgentProcess(tmp_path / "agent", broker.port).start()
    try:
        agent.send([frame(s) for s in range(30)])
        wait_for(lambda: collector.reading_seqs() >= set(range(30)), "readings before the outage")

        broker.server.stop()
        agent.send([frame(s) for s in range(30, 60)])  # accepted into the outbox while the broker is away
        wait_for(lambda: agent.metric("coldwatch_agent_outbox_depth") > 0, "readings queued in the outbox")
        broker.server.start()

        wait_for(lambda: collector.reading_seqs() >= set(range(60)), "readings after the outage")
        seqs = collector.batch_seqs()
        assert seqs == set(range(1, max(seqs) + 1)), "batch sequence has a gap"
        wait_for(lambda: agent.metric("coldwatch_agent_outbox_depth") == 0, "outbox drained")
        assert agent.terminate() == 0
        wait_for(lambda: [s.state for s in collector.statuses][-1:] == ["offline"], "offline status on SIGTERM")
        online = [s for s in collector.statuses if s.state == "online"]
        assert online and online[-1].agent_version and online[-1].rss_mb and online[-1].rss_mb > 5
    finally:
        collector.close()
        if agent.proc and agent.proc.poll() is None:
            agent.kill9()


def test_kill_9_with_the_broker_down_then_restart_replays_everything(
    mosquitto_factory: Callable[..., Broker], edge_python: Path, tmp_path: Path
) -> None:
    broker = mosquitto_factory()
    collector = Collector(broker)
    broker.server.stop()
    agent = AgentProcess(tmp_path / "agent", broker.port).start()
    agent.send([frame(s) for s in range(50)])
    wait_for(lambda: agent.metric("coldwatch_agent_readings_accepted_total") == 50, "readings accepted")
    agent.kill9()  # power cut: nothing graceful happens

    broker.server.start()
    agent.start()
    try:
        wait_for(lambda: collector.reading_seqs() >= set(range(50)), "replayed readings")
        seqs = collector.batch_seqs()
        assert seqs == set(range(1, max(seqs) + 1))
    finally:
        collector.close()
        agent.terminate()


def test_garbage_is_counted_by_reason_and_the_agent_keeps_going(
    mosquitto_factory: Callable[..., Broker], edge_python: Path, tmp_path: Path
) -> None:
    broker = mosquitto_factory()
    collector = Collector(broker)
    agent = AgentProcess(tmp_path / "agent", broker.port).start()
    try:
        agent.send([b"", b"CW", b"nonsense" * 3, b"\xff" * 200, frame(0)[:-3], frame(1)])
        wait_for(lambda: collector.reading_seqs() == {1}, "the one good frame")
        assert agent.metric("coldwatch_agent_frames_rejected_total") == 5
        assert "event=frame_rejected" in agent.log.read_text()
        assert agent.proc is not None and agent.proc.poll() is None
    finally:
        collector.close()
        agent.terminate()


def test_an_excursion_raises_one_alert_that_opens_and_clears(
    mosquitto_factory: Callable[..., Broker], edge_python: Path, tmp_path: Path
) -> None:
    broker = mosquitto_factory()
    collector = Collector(broker)
    extra = "[detect]\nrange_min_duration_s = 120\nclear_after_s = 60\n"
    agent = AgentProcess(tmp_path / "agent", broker.port, extra=extra).start()
    try:  # default profile chilled (0..4 °C); one reading a minute: 10 min at 9 °C, then back to 3 °C
        agent.send([frame(s, temp_c=9.0 if 5 <= s < 15 else 3.0) for s in range(25)])
        def excursion() -> list[AlertEvent]:
            with collector.lock:
                return [a for a in collector.alerts if a.kind == "temp_out_of_range"]

        wait_for(lambda: [a.state for a in excursion()][-1:] == ["clear"], "the alert to clear")
        events = excursion()
        assert events[0].state == "open" and len({e.id for e in events}) == 1
        assert events[0].started_at == frame_ts(5)
        assert sorted(e.seq for e in collector.alerts) == list(range(1, len(collector.alerts) + 1))
    finally:
        collector.close()
        agent.terminate()


def test_tls_with_client_certificates(
    mosquitto_factory: Callable[..., Broker], edge_python: Path, tmp_path: Path
) -> None:
    broker_files, clients = make_dev_pki(tmp_path / "pki", clients=("gw1", "ingest"))
    broker = mosquitto_factory(tls=broker_files)
    collector = Collector(broker, tls=clients["ingest"])
    gw = clients["gw1"]
    extra = f'[mqtt.tls]\nca = "{gw.ca}"\ncert = "{gw.cert}"\nkey = "{gw.key}"\n'
    agent = AgentProcess(tmp_path / "agent", broker.port, extra=extra).start()
    try:
        agent.send([frame(s) for s in range(10)])
        wait_for(lambda: collector.reading_seqs() == set(range(10)), "readings over TLS")
    finally:
        collector.close()
        agent.terminate()


def test_plain_connections_to_a_tls_broker_are_refused(
    mosquitto_factory: Callable[..., Broker], edge_python: Path, tmp_path: Path
) -> None:
    broker_files, _ = make_dev_pki(tmp_path / "pki")
    broker = mosquitto_factory(tls=broker_files)
    agent = AgentProcess(tmp_path / "agent", broker.port).start()
    try:
        agent.send([frame(0)])
        wait_for(lambda: agent.metric("coldwatch_agent_outbox_depth") == 1, "the reading in the outbox")
        time.sleep(2)  # connection attempts go on meanwhile; none may succeed
        assert agent.metric("coldwatch_agent_mqtt_connected") == 0
        assert agent.metric("coldwatch_agent_outbox_depth") == 1  # kept, not lost
    finally:
        agent.terminate()


def test_retained_desired_config_is_applied_and_reported(
    mosquitto_factory: Callable[..., Broker], edge_python: Path, tmp_path: Path
) -> None:
    broker = mosquitto_factory()
    cloud = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="cloud", protocol=MQTTProtocolVersion.MQTTv5)
    cloud.username_pw_set(INGEST_USER, broker.password(INGEST_USER))
    reported: list[Reported] = []
    cloud.on_message = lambda _c, _u, m: reported.append(decode(m.payload, Reported))
    cloud.connect(broker.host, broker.port)
    cloud.loop_start()
    cloud.subscribe("cw/v1/gw1/reported", qos=1)
    desired = Desired(version=1, issued_at=T0_MS, config=DesiredConfig(sensor_profiles={MAC: "frozen"}))
    api = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="api", protocol=MQTTProtocolVersion.MQTTv5)
    api.username_pw_set(API_USER, broker.password(API_USER))  # the account that writes desired state
    api.connect(broker.host, broker.port)
    api.loop_start()
    api.publish("cw/v1/gw1/desired", encode(desired), qos=1, retain=True).wait_for_publish(10)  # while offline
    api.disconnect()
    api.loop_stop()
    collector = Collector(broker)
    agent = AgentProcess(tmp_path / "agent", broker.port).start()
    try:
        wait_for(lambda: [r.result for r in reported] == ["applied"], "reported applied")
        agent.send([frame(0)])
        wait_for(lambda: collector.reading_seqs() == {0}, "a reading")
        assert collector.batches[0].readings[0].profile == "frozen"  # the cloud's assignment, not the default
    finally:
        cloud.disconnect()
        cloud.loop_stop()
        collector.close()
        agent.terminate()


def frame_ts(seq: int) -> int:
    return T0_MS + seq * 60_000


def test_a_bad_config_exits_2_and_names_the_key(edge_python: Path, tmp_path: Path) -> None:
    agent = AgentProcess(tmp_path / "agent", 1883)
    agent.config.write_text(agent.config.read_text().replace("port = 1883", 'port = "mqtt"'))
    result = subprocess.run([str(EDGE_VENV / "bin" / "coldwatch-agent"), "run", "--config", str(agent.config)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "mqtt.port" in result.stderr
