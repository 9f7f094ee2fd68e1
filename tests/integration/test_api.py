"""The readings API (create_app) against a real influxd, with points written through the adapter."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cloud.api.app import create_app
from cloud.config import Settings
from cloud.tsdb.influx import InfluxClient
from cloud.tsdb.lineprotocol import readings_lines
from deploy.services import Influxd
from protocol.messages import Reading

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000
MAC = "aa:bb:cc:00:02:01"
DAY = {"start": T0, "end": T0 + 86_400_000}


def _write(url: str, db: str) -> None:
    with InfluxClient(url=url, database=db) as client:
        client.ensure_database()
        client.write(readings_lines("gw1", [
            Reading(sensor=MAC, ts=T0 + i * 60_000, profile="pharma_2_8", seq=i, temp_c=5.0 + i / 100,
                    rh_pct=45.5, battery_mv=2950, rssi_dbm=-71, anomaly_score=0.1)
            for i in range(30)
        ]).lines)
        client.write(readings_lines("gw1", [Reading(sensor="aa:bb:cc:00:02:02", ts=T0, profile="frozen",
                                                    temp_c=-20.0)]).lines)


@pytest.fixture
def api(influxd: Influxd, influx_db: str, tmp_path: Path) -> Iterator[TestClient]:
    _write(influxd.url, influx_db)
    settings = Settings(influx_url=influxd.url, influx_db=influx_db, database_url=f"sqlite:///{tmp_path / 'api.db'}",
                        admin_password="admin-password-1", api_public_readings=False)
    with TestClient(create_app(settings)) as client:
        r = client.post("/api/v1/auth/login", json={"username": "admin", "password": "admin-password-1"})
        assert r.status_code == 200, r.text
        yield client


def test_readings_need_a_login(api: TestClient) -> None:
    api.cookies.clear()
    assert api.get(f"/api/v1/sensors/{MAC}/readings", params=DAY).status_code == 401


def test_readings_in_range_oldest_first(api: TestClient) -> None:
    r = api.get(f"/api/v1/sensors/{MAC}/readings", params={"start": T0 + 60_000, "end": T0 + 5 * 60_000})
    assert r.status_code == 200
    body = r.json()
    assert (body["sensor"], body["start"], body["end"], body["count"]) == (MAC, T0 + 60_000, T0 + 300_000, 4)
    assert [x["ts"] for x in body["readings"]] == [T0 + i * 60_000 for i in range(1, 5)]
    assert body["readings"][0] == {"ts": T0 + 60_000, "gateway": "gw1", "profile": "pharma_2_8", "temp_c": 5.01,
                                   "rh_pct": 45.5, "battery_mv": 2950, "rssi_dbm": -71, "anomaly_score": 0.1,
                                   "seq": 1}


def test_iso_times_and_upper_case_dashed_mac(api: TestClient) -> None:
    r = api.get("/api/v1/sensors/AA-BB-CC-00-02-01/readings",
                params={"start": "2023-11-14T22:13:20Z", "end": "2023-11-15T00:43:20+02:00"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["sensor"] == MAC and body["count"] == 30


def test_default_range_is_the_last_day(api: TestClient) -> None:
    body = api.get(f"/api/v1/sensors/{MAC}/readings").json()
    assert body["end"] - body["start"] == 86_400_000 and body["count"] == 0  # the test data is from 2023


@pytest.mark.parametrize(("path", "params", "parameter", "reason"), [
    ("/api/v1/sensors/not-a-mac/readings", {}, "sensor_id", "bad_sensor_id"),
    ("/api/v1/sensors/aa:bb:cc:00:02:01' OR 1=1/readings", {}, "sensor_id", "bad_sensor_id"),
    (f"/api/v1/sensors/{MAC}/readings", {"start": T0 + 10, "end": T0}, "start", "range_inverted"),
    (f"/api/v1/sensors/{MAC}/readings", {"start": T0, "end": T0 + 32 * 86_400_000}, "start", "range_too_long"),
    (f"/api/v1/sensors/{MAC}/readings", {"start": "last tuesday"}, "start", "bad_time"),
    (f"/api/v1/sensors/{MAC}/readings", {"end": "2023-11-14T22:13:20"}, "end", "bad_time"),
])
def test_bad_parameters_are_422_naming_the_parameter(
    api: TestClient, path: str, params: dict[str, object], parameter: str, reason: str
) -> None:
    r = api.get(path, params=params)
    assert r.status_code == 422
    body = r.json()
    assert body["parameter"] == parameter and body["error"] == reason
    assert body["message"].startswith(f"{parameter}: ")
    metrics = api.get("/metrics").text
    assert f'coldwatch_api_requests_rejected_total{{reason="{reason}"}} 1.0' in metrics


def test_healthz_metrics_and_openapi(api: TestClient) -> None:
    assert api.get("/healthz").json() == {"status": "ok", "influx": "ok"}
    assert "coldwatch_api_requests_rejected" in api.get("/metrics").text
    schema = api.get("/openapi.json").json()
    assert "/api/v1/sensors/{sensor_id}/readings" in schema["paths"]
    assert api.get("/docs").status_code == 200


def _logged_in(settings: Settings) -> TestClient:
    client = TestClient(create_app(settings))
    client.post("/api/v1/auth/login", json={"username": "admin", "password": "admin-password-1"}).raise_for_status()
    return client


def test_influx_down_is_503(influxd_factory: Callable[..., Influxd], influx_db: str, tmp_path: Path) -> None:
    server = influxd_factory()
    _write(server.url, influx_db)
    with _logged_in(Settings(influx_url=server.url, influx_db=influx_db, admin_password="admin-password-1",
                             database_url=f"sqlite:///{tmp_path / 'api.db'}")) as client:
        assert client.get(f"/api/v1/sensors/{MAC}/readings", params=DAY).json()["count"] == 30
        server.stop()
        r = client.get(f"/api/v1/sensors/{MAC}/readings", params=DAY)
        assert r.status_code == 503
        assert "InfluxDB" in r.json()["message"]
        assert client.get("/healthz").status_code == 503
        server.start()
        assert client.get("/healthz").status_code == 200
        assert client.get(f"/api/v1/sensors/{MAC}/readings", params=DAY).json()["count"] == 30


def test_the_same_app_starts_again_after_a_shutdown(influxd: Influxd, influx_db: str, tmp_path: Path) -> None:
    _write(influxd.url, influx_db)
    client = _logged_in(Settings(influx_url=influxd.url, influx_db=influx_db, admin_password="admin-password-1",
                                 database_url=f"sqlite:///{tmp_path / 'api.db'}"))
    for _ in range(2):  # each `with` runs the lifespan: startup, then shutdown (which closes its InfluxDB client)
        with client:
            assert client.get(f"/api/v1/sensors/{MAC}/readings", params=DAY).json()["count"] == 30
            assert client.get("/healthz").status_code == 200


def test_missing_database_means_no_readings(influxd: Influxd, tmp_path: Path) -> None:
    with _logged_in(Settings(influx_url=influxd.url, influx_db="never_created", admin_password="admin-password-1",
                             database_url=f"sqlite:///{tmp_path / 'api.db'}")) as client:
        r = client.get(f"/api/v1/sensors/{MAC}/readings", params=DAY)
    assert r.status_code == 200 and r.json()["count"] == 0


def test_public_readings_setting_allows_anonymous_reads_only(influxd: Influxd, tmp_path: Path) -> None:
    settings = Settings(influx_url=influxd.url, influx_db="never_created", api_public_readings=True,
                        database_url=f"sqlite:///{tmp_path / 'api.db'}")
    with TestClient(create_app(settings)) as client:
        assert client.get(f"/api/v1/sensors/{MAC}/readings", params=DAY).status_code == 200
        assert client.get(f"/api/v1/sensors/{MAC}/readings", params=DAY,
                          headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/api/v1/alerts").status_code == 401
