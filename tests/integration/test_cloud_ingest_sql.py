"""`coldwatch ingest` into SQL over real mosquitto: alerts, status, gaps, reject policy (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
from sqlmodel import Session, select

from cloud.db.alerts import Alert
from cloud.db.engine import make_engine
from cloud.db.fleet import Gateway, Sensor
from cloud.services import completeness
from deploy.services import Influxd
from protocol import encode
from protocol.messages import AlertEvent, Status, alert_id
from tests.conftest import Broker
from tests.integration.test_ingest import SENSORS, T0, Worker, make_batch, wait_for
from tests.integration.test_ingest import Gateway as GatewayClient

pytestmark = pytest.mark.integration


def alert_event(seq: int, state: str, updated: int) -> AlertEvent:
    return AlertEvent(id=alert_id("gw1", SENSORS[0], "temp_high", T0), gateway="gw1", seq=seq, sensor=SENSORS[0],
                      kind="temp_high", severity="warning", state=state, source="rule", started_at=T0,  # type: ignore[arg-type]
                      updated_at=updated, value=9.0, threshold=8.0)


def test_alerts_status_and_gaps_reach_sql(
    mosquitto_factory: Callable[..., Broker], influxd: Influxd, influx_db: str, database_url: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = mosquitto_factory()
    # Skipped seqs are holes for the grace period (the other worker's batch may fill them), then gaps: declared by
    # the workers' sweep (every 5 s) when nothing else arrives.
    monkeypatch.setenv("COLDWATCH_INGEST_GAP_GRACE_S", "1")
    worker = Worker(broker, influxd.url, influx_db, "ingest-sql", tmp_path, database_url=database_url)
    gw = GatewayClient(broker)
    try:
        for seq in (1, 2, 4):  # batch 3 lost at the gateway
            gw.publish(encode(make_batch(seq)))
        for payload in (alert_event(1, "open", T0), alert_event(2, "clear", T0 + 60_000), alert_event(1, "open", T0)):
            gw.publish(encode(payload), kind="alerts")
        gw.publish(encode(Status(gateway="gw1", state="online", ts=T0, agent_version="0.1.0", outbox_depth=7)),
                   kind="status")
        wait_for(lambda: worker.metric("coldwatch_ingest_messages_acked_total") >= 7, "all acked", worker)
    finally:
        gw.close()
    assert worker.metric("coldwatch_ingest_alert_events_total") == 2
    assert worker.metric("coldwatch_ingest_alert_events_duplicate_total") == 1
    engine = make_engine(database_url)

    def declared() -> int:
        with Session(engine) as session:
            return len(completeness.list_gaps(session))

    wait_for(lambda: declared() == 1 + len(SENSORS), "the holes declared as gaps after the grace", worker, timeout=30)
    with Session(engine) as session:
        alert = session.exec(select(Alert)).one()
        assert (alert.device_state, alert.status, alert.profile) == ("clear", "open", "chilled")
        gateway = session.get(Gateway, "gw1")
        assert gateway is not None and (gateway.status, gateway.outbox_depth) == ("online", 7)
        assert not gateway.provisioned  # registered on first sight (policy `register`)
        # heard by the cloud's clock (the messages carry 2023 timestamps): what the silence watchdog measures from
        assert gateway.last_heard_at is not None and gateway.last_heard_at > T0 + 86_400_000
        assert len(session.exec(select(Sensor)).all()) == len(SENSORS)
        gaps = completeness.list_gaps(session, kind="telemetry")
        assert [(g.gateway_id, g.first_seq, g.last_seq) for g in gaps] == [("gw1", 3, 3)]
        # make_batch's sensor seqs skip from batch 2's to batch 4's: one gap per sensor
        assert len(completeness.list_gaps(session, kind="sensor")) == len(SENSORS)
    engine.dispose()
    assert "ingest gaps recorded" in worker.log_text()
    assert worker.stop() == 0


def test_unknown_gateway_rejected_when_policy_says_so(
    mosquitto_factory: Callable[..., Broker], influxd: Influxd, influx_db: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = mosquitto_factory()
    monkeypatch.setenv("COLDWATCH_INGEST_UNKNOWN_GATEWAY", "reject")  # the worker inherits the environment
    worker = Worker(broker, influxd.url, influx_db, "ingest-strict", tmp_path)
    gw = GatewayClient(broker)
    try:
        gw.publish(encode(make_batch(1)))
        wait_for(lambda: worker.metric("coldwatch_ingest_messages_acked_total") >= 1, "acked", worker)
    finally:
        gw.close()
    assert worker.metric("coldwatch_ingest_messages_rejected_total", '{reason="unknown_gateway"}') == 1
    assert "message rejected reason=unknown_gateway gateway=gw1" in worker.log_text()
    assert worker.stop() == 0


def test_a_gateway_cannot_update_or_clear_another_gateways_alert(
    mosquitto_factory: Callable[..., Broker], influxd: Influxd, influx_db: str, database_url: str, tmp_path: Path
) -> None:
    broker = mosquitto_factory()
    worker = Worker(broker, influxd.url, influx_db, "ingest-trust", tmp_path, database_url=database_url)
    victim, attacker = GatewayClient(broker, "gw1"), GatewayClient(broker, "gw2")
    try:
        victim.publish(encode(alert_event(1, "open", T0)), kind="alerts")
        wait_for(lambda: worker.metric("coldwatch_ingest_alert_events_total") >= 1, "victim's alert stored", worker)
        forged = alert_event(7, "update", T0 + 60_000)
        # the attacker names gw1's alert id from its own topic, as itself (the broker's ACL and the topic check
        # keep it from posing as gw1), then tries again with gw1's kind but its own sensor id
        for event in (msgspec.structs.replace(forged, gateway="gw2", severity="info"),
                      msgspec.structs.replace(forged, gateway="gw2", seq=8, state="clear", sensor="c2:00:00:00:09:99")):
            attacker.publish(encode(event), kind="alerts")
        wait_for(lambda: worker.metric("coldwatch_ingest_alert_events_refused_total") >= 2, "refused", worker)
    finally:
        victim.close()
        attacker.close()
    engine = make_engine(database_url)
    with Session(engine) as session:
        alert = session.exec(select(Alert)).one()
        assert (alert.gateway_id, alert.severity, alert.device_state, alert.ended_at) == ("gw1", "warning", "open",
                                                                                           None)
    engine.dispose()
    assert worker.metric("coldwatch_ingest_alert_events_total") == 1
    assert "security: alert event refused gateway=gw2" in worker.log_text()
    assert worker.stop() == 0
