"""The API's users, roles, alerts workflow, provisioning (real mosquitto) and reports, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from sqlmodel import Session

from cloud.api.app import create_app
from cloud.config import Settings
from cloud.db.engine import init_schema, make_engine
from cloud.ingest.sql_sink import SqlSink, event_work, telemetry_work
from cloud.services import dead_letters
from cloud.services.dead_letters import Refused
from cloud.tsdb.influx import InfluxClient
from cloud.tsdb.lineprotocol import readings_lines
from deploy.services import Influxd
from protocol.messages import AlertEvent, Reading, TelemetryBatch, alert_id
from tests.conftest import CLOUD_BIN, Broker

pytestmark = pytest.mark.integration

ADMIN_PW = "admin-password-1"
T0 = 1_700_000_000_000
MAC = "aa:bb:cc:00:04:01"


@pytest.fixture
def broker(mosquitto_factory: Callable[..., Broker], tmp_path: Path) -> Broker:
    return mosquitto_factory()


@pytest.fixture
def app_settings(database_url: str, influxd: Influxd, influx_db: str, broker: Broker, tmp_path: Path) -> Settings:
    pid_file = tmp_path / "mosquitto.pid"
    assert broker.server.proc is not None
    pid_file.write_text(str(broker.server.proc.pid))
    return Settings(database_url=database_url, influx_url=influxd.url, influx_db=influx_db,
                    admin_password=ADMIN_PW, mosquitto_passwd_file=str(broker.server.workdir / "passwd"),
                    mosquitto_pid_file=str(pid_file), login_max_failures=3)


@pytest.fixture
def api(app_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings)) as client:
        yield client


def login(api: TestClient, username: str, password: str) -> dict[str, str]:
    r = api.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    api.cookies.clear()  # the tests use bearer tokens, one per role
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture
def tokens(api: TestClient) -> dict[str, dict[str, str]]:
    admin = login(api, "admin", ADMIN_PW)
    out = {"admin": admin}
    for role in ("viewer", "staff", "ops"):
        r = api.post("/api/v1/users", headers=admin, json={"username": role, "role": role,
                                                            "password": f"{role}-password"})
        assert r.status_code == 201, r.text
        out[role] = login(api, role, f"{role}-password")
    return out


def seed_alert(settings: Settings) -> str:
    engine = make_engine(settings.database_url)
    aid = alert_id("gw1", MAC, "temp_high", T0)
    SqlSink(engine).apply([
        telemetry_work(TelemetryBatch(gateway="gw1", seq=1, sent_at=T0, readings=[
            Reading(sensor=MAC, ts=T0, profile="chilled", seq=1, temp_c=3.0)])),
        event_work(AlertEvent(id=aid, gateway="gw1", seq=1, sensor=MAC, kind="temp_high", severity="critical",
                              state="open", source="rule", started_at=T0, updated_at=T0, value=6.0, threshold=4.0)),
    ])
    engine.dispose()
    return aid


ENDPOINTS = [  # (method, path, body, lowest role allowed)
    ("GET", "/api/v1/alerts", None, "viewer"),
    ("GET", "/api/v1/alerts/counts", None, "viewer"),
    ("GET", "/api/v1/gateways", None, "viewer"),
    ("GET", "/api/v1/sensors", None, "viewer"),
    ("GET", "/api/v1/gaps", None, "viewer"),
    ("GET", "/api/v1/dead-letters", None, "ops"),
    ("POST", "/api/v1/alerts/{aid}/comments", {"text": "checked"}, "staff"),
    ("PATCH", f"/api/v1/sensors/{MAC}", {"shipment": "SHP-1"}, "staff"),
    ("PATCH", "/api/v1/gateways/gw1", {"site": "depot"}, "ops"),
    ("GET", "/api/v1/users", None, "admin"),
    ("GET", "/api/v1/audit", None, "admin"),
]
ORDER = ["viewer", "staff", "ops", "admin"]


def test_every_endpoint_refuses_the_wrong_role(api: TestClient, tokens: dict[str, dict[str, str]],
                                                app_settings: Settings) -> None:
    aid = seed_alert(app_settings)
    for method, path, body, lowest in ENDPOINTS:
        url = path.format(aid=aid)
        assert api.request(method, url, json=body).status_code == 401, url
        for role in ORDER:
            status = api.request(method, url, json=body, headers=tokens[role]).status_code
            allowed = ORDER.index(role) >= ORDER.index(lowest)
            assert (status < 400) if allowed else (status == 403), (method, url, role, status)


def test_alert_workflow(api: TestClient, tokens: dict[str, dict[str, str]], app_settings: Settings) -> None:
    aid = seed_alert(app_settings)
    staff = tokens["staff"]
    page = api.get("/api/v1/alerts", headers=staff, params={"severity": "critical", "status": "open",
                                                             "profile": "chilled", "gateway": "gw1"}).json()
    assert page["total"] == 1 and page["items"][0]["id"] == aid
    assert api.get("/api/v1/alerts", headers=staff, params={"start": T0 + 1}).json()["total"] == 0
    assert api.patch("/api/v1/gateways/gw1", headers=tokens["ops"], json={"site": "Depot North"}).status_code == 200
    assert api.get("/api/v1/alerts", headers=staff, params={"site": "Depot North"}).json()["total"] == 1
    assert api.get("/api/v1/alerts", headers=staff, params={"site": "Depot South"}).json()["total"] == 0
    assert api.get("/api/v1/alerts/counts", headers=staff, params={"site": "Depot South"}).json()["open"] == 0
    inbox = api.get("/ui/alerts", headers=staff, params={"site": "Depot North"})
    assert inbox.status_code == 200 and f'data-alert="{aid}"' in inbox.text
    assert "<option selected>Depot North" in inbox.text
    assert f'data-alert="{aid}"' not in api.get("/ui/alerts", headers=staff, params={"site": "Depot South"}).text
    assert api.post(f"/api/v1/alerts/{aid}/acknowledge", headers=staff, json={}).json()["status"] == "acknowledged"
    assert api.post(f"/api/v1/alerts/{aid}/assign", headers=staff, json={"assignee": "ops"}).json()["assignee"] == "ops"
    assert api.post(f"/api/v1/alerts/{aid}/assign", headers=staff, json={"assignee": "nobody"}).status_code == 422
    assert api.post(f"/api/v1/alerts/{aid}/resolve", headers=staff, json={"reason_code": "nope"}).status_code == 422
    assert api.post(f"/api/v1/alerts/{aid}/resolve", headers=staff, json={"reason_code": "other"}).status_code == 422
    r = api.post(f"/api/v1/alerts/{aid}/resolve", headers=staff, json={"reason_code": "defrost", "note": "cycle"})
    assert r.status_code == 200 and r.json()["resolution"] == "defrost"
    assert api.post(f"/api/v1/alerts/{aid}/resolve", headers=staff, json={"reason_code": "defrost"}).status_code == 409
    assert api.get("/api/v1/alerts/counts", headers=staff).json() == {"open": 0, "acknowledged": 0, "resolved": 1}
    detail = api.get(f"/api/v1/alerts/{aid}", headers=staff).json()
    assert [h["action"] for h in detail["history"]] == ["open", "acknowledge", "assign", "resolve"]
    assert detail["readings"] == []  # nothing in InfluxDB for this sensor
    audit = api.get("/api/v1/audit", headers=tokens["admin"], params={"target_type": "alert"}).json()
    assert audit[0]["actor"] == "staff" and audit[0]["before"]["status"] == "acknowledged"
    assert audit[0]["after"]["status"] == "resolved"
    assert api.get("/api/v1/alerts/nope", headers=staff).status_code == 404


def test_login_rate_limit_and_logout(api: TestClient) -> None:
    for _ in range(3):
        assert api.post("/api/v1/auth/login", json={"username": "admin", "password": "wrong"}).status_code == 401
    r = api.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PW})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0


def test_session_cookie_and_api_token(api: TestClient) -> None:
    r = api.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PW})
    assert "httponly" in r.headers["set-cookie"].lower() and "samesite=strict" in r.headers["set-cookie"].lower()
    assert api.get("/api/v1/auth/me").json()["role"] == "admin"  # via the cookie
    token = api.post("/api/v1/auth/tokens", json={"name": "script"}).json()["token"]
    assert api.post("/api/v1/auth/logout").status_code == 204
    assert api.get("/api/v1/auth/me").status_code == 401
    assert api.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def mqtt_connect(broker: Broker, user: str, password: str) -> bool:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{user}-{secrets.token_hex(3)}",
                         protocol=MQTTProtocolVersion.MQTTv5)
    client.username_pw_set(user, password)
    result: list[bool] = []
    client.on_connect = lambda c, u, f, rc, p: result.append(not rc.is_failure)
    client.connect(broker.host, broker.port)
    for _ in range(50):
        client.loop(timeout=0.1)
        if result:
            break
    client.disconnect()
    return bool(result and result[0])


def test_provision_gateway_updates_the_real_broker(api: TestClient, tokens: dict[str, dict[str, str]],
                                                   broker: Broker) -> None:
    ops = tokens["ops"]
    r = api.post("/api/v1/gateways", headers=ops, json={"id": "truck-7", "name": "Truck 7"})
    assert r.status_code == 201, r.text
    creds = r.json()
    assert creds["broker_reloaded"] and creds["mqtt_username"] == "truck-7"
    assert "mqtt_password_hash" not in creds["gateway"]
    assert mqtt_connect(broker, "truck-7", creds["mqtt_password"])
    assert mqtt_connect(broker, "gw1", broker.password("gw1"))  # accounts not managed here are kept
    assert not mqtt_connect(broker, "truck-7", "wrong-password")
    assert api.post("/api/v1/gateways", headers=ops, json={"id": "truck-7"}).status_code == 409
    assert api.post("/api/v1/gateways", headers=ops, json={"id": "Bad/Id"}).status_code == 422
    assert api.delete("/api/v1/gateways/truck-7/credentials", headers=ops).json()["revoked"] is True
    assert not mqtt_connect(broker, "truck-7", creds["mqtt_password"])
    listed = {g["id"]: g for g in api.get("/api/v1/gateways", headers=tokens["viewer"]).json()}
    assert listed["truck-7"]["revoked"] and listed["truck-7"]["name"] == "Truck 7"


def test_sensor_report_csv(api: TestClient, tokens: dict[str, dict[str, str]], app_settings: Settings) -> None:
    T1 = 1_700_000_040_000  # on a minute boundary, as GROUP BY time(1m) buckets are  # noqa: N806
    # 60 minutes at one reading a minute, minutes 10..14 above the chilled band (0..4 °C), seq 30..39 lost
    readings = [Reading(sensor=MAC, ts=T1 + i * 60_000, profile="chilled", seq=i, temp_c=6.0 if 10 <= i < 15 else 2.0)
                for i in range(60) if not 30 <= i < 40]
    with InfluxClient(url=app_settings.influx_url, database=app_settings.influx_db) as client:
        client.ensure_database()
        client.write(readings_lines("gw1", readings).lines)
    engine = make_engine(app_settings.database_url)
    SqlSink(engine).apply([telemetry_work(TelemetryBatch(gateway="gw1", seq=1, sent_at=T1, readings=readings))])
    engine.dispose()
    params = {"start": T1, "end": T1 + 3_600_000}
    body = api.get(f"/api/v1/reports/sensors/{MAC}", headers=tokens["viewer"], params=params).json()
    assert (body["readings"], body["missing"], body["time_out_of_band_s"]) == (50, 10, 300)
    assert body["completeness_pct"] == pytest.approx(100 * 50 / 60, abs=0.01)
    assert (body["min_c"], body["max_c"]) == (2.0, 6.0)
    assert body["excursions"] == [{"start": T1 + 600_000, "end": T1 + 900_000, "peak_c": 6.0, "duration_s": 300}]
    r = api.get(f"/api/v1/reports/sensors/{MAC}", headers=tokens["viewer"], params=params | {"format": "csv"})
    assert r.headers["content-type"].startswith("text/csv")
    assert "completeness_pct,83.333" in r.text and f"{T1 + 600_000},{T1 + 900_000},6.0,300" in r.text


def test_login_sends_a_logged_in_user_only_to_the_dashboards_own_pages(api: TestClient,
                                                                       tokens: dict[str, dict[str, str]]) -> None:
    staff = tokens["staff"]
    for evil in ("/\\evil.example", "/\t/evil.example", "//evil.example", "https://evil.example/ui/alerts",
                 "/ui/../\\evil.example", "/ui/alerts\n"):
        r = api.get("/login", headers=staff, params={"next": evil}, follow_redirects=False)
        assert (r.status_code, r.headers["location"]) == (303, "/ui/alerts"), evil
    r = api.get("/login", headers=staff, params={"next": "/ui/fleet?site=Depot%20North"}, follow_redirects=False)
    assert r.headers["location"] == "/ui/fleet?site=Depot%20North"


def test_odd_digits_and_trailing_newlines_in_parameters_are_refused_with_a_message_not_a_500(
        api: TestClient, tokens: dict[str, dict[str, str]]) -> None:
    staff = tokens["staff"]
    r = api.get(f"/api/v1/sensors/{MAC}/readings", headers=staff, params={"start": "9" * 4301})
    assert r.status_code == 422 and "epoch milliseconds" in r.text
    for odd in ("²", "٣"):  # str.isdigit() says yes to both; int() refuses the first
        r = api.get(f"/api/v1/sensors/{MAC}/readings", headers=staff, params={"start": odd})
        assert r.status_code == 422, odd
    assert api.get(f"/api/v1/sensors/{MAC}%0A/readings", headers=staff).status_code == 200  # stripped, as typed
    assert api.get("/ui/alerts", headers=staff, params={"offset": "²"}).status_code == 200


def test_behind_a_trusted_proxy_one_guessing_client_does_not_lock_admin_out_for_the_others(
        app_settings: Settings) -> None:
    settings = dataclasses.replace(app_settings, api_trusted_proxies="testclient")  # TestClient's peer name
    with TestClient(create_app(settings)) as api:
        attacker, admin = {"X-Forwarded-For": "203.0.113.9"}, {"X-Forwarded-For": "198.51.100.7"}
        for _ in range(5):
            api.post("/api/v1/auth/login", headers=attacker, json={"username": "admin", "password": "guess"})
        assert api.post("/api/v1/auth/login", headers=attacker,
                        json={"username": "admin", "password": ADMIN_PW}).status_code == 429
        assert api.post("/api/v1/auth/login", headers=admin,
                        json={"username": "admin", "password": ADMIN_PW}).status_code == 200
    with TestClient(create_app(app_settings)) as api:  # no trusted proxy: a forged header changes nothing
        for _ in range(3):
            api.post("/api/v1/auth/login", headers={"X-Forwarded-For": "203.0.113.9"},
                     json={"username": "ops", "password": "guess"})
        assert api.post("/api/v1/auth/login", headers={"X-Forwarded-For": "198.51.100.8"},
                        json={"username": "ops", "password": "guess"}).status_code == 429


def test_browsers_get_security_headers_and_cross_site_state_changes_are_refused(
        api: TestClient, tokens: dict[str, dict[str, str]]) -> None:
    page = api.get("/login")
    assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    r = api.post("/api/v1/auth/login", json={"username": "staff", "password": "staff-password"})
    assert r.status_code == 200  # the session cookie is now in the client, as in a browser
    evil = {"Origin": "https://evil.example"}
    r = api.post("/api/v1/auth/logout", headers=evil)
    assert r.status_code == 403 and r.json()["error"] == "cross_site"
    assert api.post("/api/v1/auth/logout", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert api.get("/api/v1/auth/me").status_code == 200  # still logged in: the forged logout did nothing
    assert api.post("/api/v1/auth/logout", headers={"Origin": "http://testserver"}).status_code == 204
    api.cookies.clear()
    assert api.get("/metrics").status_code == 401
    assert api.get("/metrics", headers=tokens["staff"]).status_code == 403
    assert "coldwatch_api" in api.get("/metrics", headers=tokens["admin"]).text


def test_api_tokens_expire_within_a_year(api: TestClient, tokens: dict[str, dict[str, str]]) -> None:
    admin = tokens["admin"]
    assert api.post("/api/v1/auth/tokens", headers=admin, json={"name": "forever", "ttl_days": None}).status_code == 422
    assert api.post("/api/v1/auth/tokens", headers=admin, json={"name": "long", "ttl_days": 3650}).status_code == 422
    assert api.post("/api/v1/auth/tokens", headers=admin, json={"name": "year", "ttl_days": 365}).status_code == 201


def test_api_tokens_are_listed_and_revoked_by_their_owner_an_admin_or_the_cli(
        api: TestClient, tokens: dict[str, dict[str, str]], app_settings: Settings) -> None:
    staff, admin = tokens["staff"], tokens["admin"]
    made = api.post("/api/v1/auth/tokens", headers=staff, json={"name": "grafana", "ttl_days": 30}).json()
    script = {"Authorization": f"Bearer {made['token']}"}
    assert api.get("/api/v1/auth/me", headers=script).status_code == 200
    mine = api.get("/api/v1/auth/tokens", headers=staff).json()
    assert [(t["user"], t["name"], t["revoked"]) for t in mine] == [("staff", "grafana", False)]
    assert made["token"] not in str(mine)  # listed, never shown again
    assert api.get("/api/v1/auth/tokens", headers=staff, params={"everyone": True}).status_code == 403
    assert api.delete(f"/api/v1/auth/tokens/{mine[0]['id']}", headers=tokens["viewer"]).status_code == 404
    assert api.delete(f"/api/v1/auth/tokens/{mine[0]['id']}", headers=staff).status_code == 204
    assert api.get("/api/v1/auth/me", headers=script).status_code == 401
    again = api.post("/api/v1/auth/tokens", headers=staff, json={"name": "cron"}).json()
    every = api.get("/api/v1/auth/tokens", headers=admin, params={"everyone": True}).json()
    cron = next(t for t in every if t["name"] == "cron")
    env = os.environ | {"COLDWATCH_DATABASE_URL": app_settings.database_url}
    made = subprocess.run([str(CLOUD_BIN / "coldwatch"), "tokens", "create", "staff", "--name", "from-cli",
                           "--days", "7"], env=env, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)  # stdout is the JSON alone; the note that it is shown once is on stderr
    me = api.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {created['token']}"})
    assert me.status_code == 200 and me.json()["username"] == "staff"
    listed = subprocess.run([str(CLOUD_BIN / "coldwatch"), "tokens", "list"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert "\tstaff\tfrom-cli\t" in listed.stdout
    assert listed.returncode == 0 and f"{cron['id']}\tstaff\tcron\t" in listed.stdout
    done = subprocess.run([str(CLOUD_BIN / "coldwatch"), "tokens", "revoke", str(cron["id"])], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert api.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {again['token']}"}).status_code == 401
    missing = subprocess.run([str(CLOUD_BIN / "coldwatch"), "users", "revoke-token", "999999"], env=env,
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no API token with id 999999" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_ops_read_dead_letters_with_their_payload_and_ask_for_a_replay(
        api: TestClient, tokens: dict[str, dict[str, str]], app_settings: Settings) -> None:
    engine = make_engine(app_settings.database_url)
    with Session(engine) as session:
        dead_letters.record(session, [Refused("cw/v1/gw1/telemetry", "gw1", "malformed", "not JSON", b"\x00\xff"),
                                      Refused("cw/v1/gw1/telemetry", "gw1", "future_ts", "an hour ahead",
                                              b'{"v":1}')], worker="ingest-1", keep=10)
        session.commit()
    engine.dispose()
    ops = tokens["ops"]
    assert api.get("/api/v1/dead-letters", headers=tokens["staff"]).status_code == 403
    listed = api.get("/api/v1/dead-letters", headers=ops).json()
    assert [d["reason"] for d in listed] == ["future_ts", "malformed"] and "payload_b64" not in listed[0]
    future, malformed = listed
    detail = api.get(f"/api/v1/dead-letters/{malformed['id']}", headers=ops).json()
    assert base64.b64decode(detail["payload_b64"]) == b"\x00\xff" and detail["payload_text"] is None
    assert api.get(f"/api/v1/dead-letters/{future['id']}", headers=ops).json()["payload_text"] == '{"v":1}'
    asked = api.post(f"/api/v1/dead-letters/{future['id']}/replay", headers=ops)
    assert asked.status_code == 202 and asked.json()["state"] == "replay"
    assert api.get("/api/v1/dead-letters", headers=ops, params={"state": "replay"}).json()[0]["id"] == future["id"]
    assert api.post("/api/v1/dead-letters/999999/replay", headers=ops).status_code == 404
    audit_rows = api.get("/api/v1/audit", headers=tokens["admin"], params={"target_type": "dead_letter"}).json()
    assert audit_rows[0]["action"] == "dead_letter.replay" and audit_rows[0]["actor"] == "ops"


def test_dead_letters_are_bounded_to_the_newest(app_settings: Settings) -> None:
    engine = make_engine(app_settings.database_url)
    init_schema(engine)
    with Session(engine) as session:
        for i in range(12):
            dead_letters.record(session, [Refused("cw/v1/gw1/telemetry", "gw1", "malformed", str(i), b"x")],
                                worker="ingest-1", keep=5)
        session.commit()
        kept = dead_letters.listed(session)
    engine.dispose()
    assert [d.detail for d in kept] == ["11", "10", "9", "8", "7"]
