"""The cloud's silence watchdog on real SQLite and PostgreSQL: a quiet gateway raises `gateway_silent`, data
clears it, the gateway's own `sensor_silent` alerts are not doubled, and the alert reaches the inbox API."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from cloud.api.app import create_app
from cloud.config import Settings
from cloud.db.alerts import Alert, AlertHistory
from cloud.db.engine import make_engine, session_scope
from cloud.db.fleet import Gateway, Sensor
from cloud.db.ingest import IngestGap
from cloud.services import completeness
from cloud.services.clock import now_ms
from cloud.services.silence import SilencePolicy, SilenceWatchdog, watch
from deploy.services import Influxd
from protocol.messages import alert_id

pytestmark = pytest.mark.integration

T0 = 1_767_225_600_000
MIN = 60_000
POLICY = SilencePolicy(15.0, {"pharma_2_8": 5.0})


def fleet(engine: Engine, gateway: str, profiles: list[str], last_seen: int) -> None:
    with session_scope(engine) as session:
        session.add(Gateway(id=gateway, created_at=T0, last_seen_at=last_seen, last_heard_at=last_seen))
        for i, profile in enumerate(profiles):
            session.add(Sensor(id=f"c2:00:00:00:{int(gateway[-1]):02x}:{i:02x}", gateway_id=gateway, profile=profile,
                               created_at=T0, last_seen_at=last_seen))


def silent_alerts(engine: Engine) -> list[Alert]:
    with Session(engine) as session:
        return list(session.exec(select(Alert).where(Alert.kind == "gateway_silent")).all())


def test_a_quiet_gateway_raises_one_alert_after_its_profiles_limit_and_data_clears_it(engine: Engine) -> None:
    fleet(engine, "gw1", ["chilled", "chilled"], last_seen=T0)
    fleet(engine, "gw2", ["chilled", "pharma_2_8"], last_seen=T0)  # judged by its strictest cargo: 5 min
    dog = SilenceWatchdog(engine, POLICY, interval_s=30, clock=lambda: T0 + 6 * MIN)
    assert dog.step().opened == ["gw2"]
    dog.clock = lambda: T0 + 16 * MIN
    assert dog.step().opened == ["gw1"]
    assert dog.step().opened == []  # one alert per silence, however often the watchdog looks
    by_gateway = {a.gateway_id: a for a in silent_alerts(engine)}
    assert set(by_gateway) == {"gw1", "gw2"}
    gw2 = by_gateway["gw2"]
    assert (gw2.severity, gw2.source, gw2.device_state, gw2.started_at, gw2.profile, gw2.sensor_id) == (
        "critical", "cloud", "open", T0, "pharma_2_8", "")
    assert gw2.id == alert_id("gw2", "", "gateway_silent", T0)
    assert "nothing received from gateway gw2" in gw2.reason and "limit 5 min for pharma_2_8" in gw2.reason

    with session_scope(engine) as session:  # gw1 is heard again (ingest moves last_seen_at)
        gateway = session.get(Gateway, "gw1")
        assert gateway is not None
        gateway.last_heard_at = T0 + 20 * MIN
        session.add(gateway)
    dog.clock = lambda: T0 + 21 * MIN
    assert dog.step().cleared == ["gw1"]
    with Session(engine) as session:
        alert = session.get(Alert, by_gateway["gw1"].id)
        assert alert is not None and (alert.device_state, alert.ended_at) == ("clear", T0 + 20 * MIN)
        actions = [h.action for h in session.exec(select(AlertHistory).where(AlertHistory.alert_id == alert.id))]
        assert actions == ["open", "clear"]
    dog.clock = lambda: T0 + 40 * MIN  # quiet again: a new silence, a new alert
    assert dog.step().opened == ["gw1"]
    assert len(silent_alerts(engine)) == 3


def test_no_second_alert_when_the_gateway_already_said_every_tag_is_silent(engine: Engine) -> None:
    fleet(engine, "gw3", ["frozen", "frozen"], last_seen=T0)
    with session_scope(engine) as session:
        for sensor in session.exec(select(Sensor).where(Sensor.gateway_id == "gw3")).all():
            session.add(Alert(id=alert_id("gw3", sensor.id, "sensor_silent", T0), gateway_id="gw3",
                              sensor_id=sensor.id, kind="sensor_silent", severity="warning", source="rule",
                              device_state="open", started_at=T0, updated_at=T0, received_at=T0, last_event_at=T0))
    with session_scope(engine) as session:
        assert watch(session, policy=POLICY, now=T0 + 60 * MIN).opened == []


def test_revoked_gateways_and_gateways_never_heard_raise_nothing(engine: Engine) -> None:
    with session_scope(engine) as session:
        session.add(Gateway(id="gw4", created_at=T0, last_heard_at=T0, revoked=True))
        session.add(Gateway(id="gw5", created_at=T0))
    with session_scope(engine) as session:
        assert watch(session, policy=POLICY, now=T0 + 60 * MIN).opened == []


def test_the_api_process_runs_the_watchdog_and_the_alert_reaches_the_inbox_and_its_page(
    database_url: str, influxd: Influxd, influx_db: str
) -> None:
    settings = Settings(database_url=database_url, influx_url=influxd.url, influx_db=influx_db,
                        admin_password="admin-password-1", gateway_silence_min=1, silence_interval_s=0.2)
    with TestClient(create_app(settings)) as api:
        fleet(make_engine(database_url), "gw6", ["chilled"], last_seen=now_ms() - 2 * MIN)
        r = api.post("/api/v1/auth/login", json={"username": "admin", "password": "admin-password-1"})
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        api.cookies.clear()
        deadline = time.monotonic() + 30
        found: list[dict[str, object]] = []
        while not found and time.monotonic() < deadline:
            time.sleep(0.2)
            rows = api.get("/api/v1/alerts", headers=headers, params={"gateway_id": "gw6"}).json()
            found = [a for a in rows["items"] if a["kind"] == "gateway_silent"]
        assert found, "no gateway_silent alert in the inbox"
        page = api.get(f"/ui/alerts/{found[0]['id']}", headers=headers)
        assert page.status_code == 200
        assert "Gateway stopped sending" in page.text and "every sensor of the gateway" in page.text
        assert "watchdog: the gateway itself cannot say it has gone quiet" in page.text


def test_a_silent_gateways_hours_count_as_missing_in_its_sensors_completeness(engine: Engine) -> None:
    hour = 3_600_000
    fleet(engine, "gw1", ["chilled"], last_seen=T0)
    sensor = "c2:00:00:00:01:00"
    with session_scope(engine) as session:
        session.add(Alert(id=alert_id("gw1", "", "gateway_silent", T0 + hour), gateway_id="gw1", sensor_id="",
                          kind="gateway_silent", severity="critical", source="cloud", device_state="clear",
                          started_at=T0 + hour, updated_at=T0 + 2 * hour, ended_at=T0 + 2 * hour, received_at=T0,
                          last_event_at=T0))
    with Session(engine) as session:
        assert completeness.silent_intervals(session, sensor_id=sensor, start=T0, end=T0 + 4 * hour) == [
            (T0 + hour, T0 + 2 * hour)]
        # 180 readings in the 3 heard hours (1 a minute): the silent hour should have held 60
        assert completeness.missing_with_silence(session, sensor_id=sensor, start=T0, end=T0 + 4 * hour,
                                                 received=180) == pytest.approx(60)
    with session_scope(engine) as session:  # the tag kept counting: the gap shows 70 of them when it returns
        session.add(IngestGap(stream=f"sensor|{sensor}", kind="sensor", gateway_id="gw1", sensor_id=sensor,
                              first_seq=100, last_seq=169, missing=70, after_ts=T0 + hour, before_ts=T0 + 2 * hour,
                              detected_at=T0 + 2 * hour))
    with Session(engine) as session:  # counted once, not 130
        assert completeness.missing_with_silence(session, sensor_id=sensor, start=T0, end=T0 + 4 * hour,
                                                 received=180) == pytest.approx(70)
