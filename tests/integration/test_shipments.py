"""Shipments through the API against a real influxd and SQL: create, assign, travel, an excursion against the
shipment's own limits raised by the watcher, the record (numbers, CSV, a signed PDF a receiver verifies offline with
openssl), delivery on arrival, the share link, and the refusals."""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from cloud.api.app import create_app
from cloud.config import Settings
from cloud.db.fleet import Gateway, Sensor
from cloud.services.clock import now_ms
from cloud.services.shipment_watch import KIND, ShipmentWatch
from cloud.tsdb.influx import InfluxClient
from cloud.tsdb.lineprotocol import readings_lines
from deploy.services import Influxd
from models.runtime.manifest import verify_bytes
from protocol.messages import Reading

pytestmark = pytest.mark.integration

S1, S2, S3 = "aa:bb:cc:00:05:01", "aa:bb:cc:00:05:02", "aa:bb:cc:00:05:03"
MIN = 60_000


@pytest.fixture
def api(influxd: Influxd, influx_db: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(influx_url=influxd.url, influx_db=influx_db, database_url=f"sqlite:///{tmp_path / 'api.db'}",
                        admin_password="admin-password-1", records_dir=str(tmp_path / "records"),
                        record_signing_key=str(tmp_path / "keys" / "records.pem"), shipment_interval_s=0)
    app = create_app(settings)
    with Session(app.state.engine) as session:
        session.add(Gateway(id="truck-7", site=None, created_at=0))
        session.add(Gateway(id="depot-cd", site="Chengdu DC", created_at=0))
        for sensor in (S1, S2, S3):
            session.add(Sensor(id=sensor, gateway_id="truck-7", profile="chilled", label=f"pallet {sensor[-1]}"))
        session.commit()
    with InfluxClient(url=influxd.url, database=influx_db) as client:
        client.ensure_database()
    with TestClient(app) as client:
        r = client.post("/api/v1/auth/login", json={"username": "admin", "password": "admin-password-1"})
        assert r.status_code == 200, r.text
        yield client


def _write(api: TestClient, sensor: str, points: list[tuple[int, float]]) -> None:
    influx: InfluxClient = api.app.state.influx  # type: ignore[attr-defined]
    influx.write(readings_lines("truck-7", [Reading(sensor=sensor, ts=ts, profile="chilled", temp_c=v)
                                            for ts, v in points]).lines)


def _watch(api: TestClient) -> Any:
    app: Any = api.app
    return ShipmentWatch(app.state.engine, lambda: app.state.influx, app.state.record_desk, interval_s=1).step()


def _shipment(api: TestClient, reference: str = "SH-2291", **extra: Any) -> dict[str, Any]:
    body = {"reference": reference, "origin": "Shanghai", "destination": "Chengdu DC", "customer": "成都鲜品有限公司",
            "product": "chilled dairy", "profile": "chilled", **extra}
    r = api.post("/api/v1/shipments", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_a_shipment_travels_raises_an_excursion_on_its_own_limits_and_is_delivered_on_arrival(
        api: TestClient, tmp_path: Path) -> None:
    # chilled's band is 0..4 °C; this customer's limits are 1..3 °C
    _shipment(api, temp_low_c=1.0, temp_high_c=3.0)
    for sensor in (S1, S2):  # as a label prints it
        r = api.post("/api/v1/shipments/SH-2291/devices", json={"device_id": sensor.upper().replace(":", "-")})
        assert r.status_code == 201, r.text
    assert api.post("/api/v1/shipments/SH-2291/devices", json={"kind": "gateway", "device_id": "truck-7"}
                    ).status_code == 201
    left = now_ms() - 10 * MIN  # the truck left ten minutes ago
    r = api.post("/api/v1/shipments/SH-2291/state", json={"state": "in_transit", "at": left})
    assert r.status_code == 200 and r.json()["state"] == "in_transit" and r.json()["started_at"] == left
    _write(api, S1, [(left - 5 * MIN + i * 1000, 9.0) for i in range(5)])  # before it left: not the shipment's
    t1 = left + MIN
    _write(api, S1, [(t1 + i * 1000, 2.0) for i in range(5)])
    _write(api, S2, [(t1 + i * 1000, 2.5) for i in range(5)])
    assert _watch(api).opened == []
    # 3.6 °C: inside chilled's band (the gateway's rule says nothing), outside the shipment's own limit
    _write(api, S1, [(t1 + 10_000 + i * 1000, 3.6) for i in range(3)])
    opened = _watch(api).opened
    assert len(opened) == 1
    alert = api.get(f"/api/v1/alerts/{opened[0]}").json()["alert"]
    assert (alert["kind"], alert["sensor_id"], alert["gateway_id"], alert["source"]) == (KIND, S1, "truck-7", "cloud")
    assert "SH-2291" in alert["reason"] and "3 °C" in alert["reason"] and alert["started_at"] == t1 + 10_000
    assert _watch(api).opened == []  # one alert per excursion
    _write(api, S1, [(t1 + 20_000 + i * 1000, 2.2) for i in range(3)])
    assert _watch(api).cleared == opened
    detail = api.get("/api/v1/shipments/SH-2291").json()
    assert [a["id"] for a in detail["alerts"]] == opened
    assert {d["device_id"] for d in detail["devices"]} == {S1, S2, "truck-7"}

    record = api.get("/api/v1/shipments/SH-2291/record").json()
    assert (record["band_low_c"], record["band_high_c"], record["readings"]) == (1.0, 3.0, 16)
    assert record["alerts"] == opened and len(record["sensors"]) == 2
    csv_text = api.get("/api/v1/shipments/SH-2291/record", params={"format": "csv"}).text
    assert "reference,SH-2291" in csv_text and S1 in csv_text and "customer,成都鲜品有限公司" in csv_text

    # arrival: the truck's tag is heard by a gateway of the destination site
    app: Any = api.app
    with Session(app.state.engine) as session:
        row = session.get(Sensor, S1)
        assert row is not None
        row.gateway_id = "depot-cd"
        session.add(row)
        session.commit()
    assert _watch(api).delivered == ["SH-2291"]
    shipment = api.get("/api/v1/shipments/SH-2291").json()["shipment"]
    assert shipment["state"] == "delivered" and shipment["record_sha256"]
    kept = tmp_path / "records" / "shipment-SH-2291.pdf"
    assert kept.is_file() and (tmp_path / "records" / "shipment-SH-2291.pdf.sig").is_file()

    pdf = api.get("/api/v1/shipments/SH-2291/record", params={"format": "pdf"})
    assert pdf.status_code == 200 and pdf.content == kept.read_bytes()
    signature = pdf.headers["x-coldwatch-signature"]
    key = api.get("/api/v1/shipments/record-key")
    assert key.status_code == 200 and key.text.startswith("-----BEGIN PUBLIC KEY-----")
    verify_bytes(pdf.content, signature, [key.content])  # raises when it does not verify
    # a receiver without coldwatch: openssl, offline
    openssl = shutil.which("openssl")
    assert openssl is not None
    (tmp_path / "key.pem").write_bytes(key.content)
    (tmp_path / "record.pdf").write_bytes(pdf.content)
    (tmp_path / "record.sig.bin").write_bytes(base64.b64decode(signature))
    verify = [openssl, "pkeyutl", "-verify", "-pubin", "-inkey", str(tmp_path / "key.pem"), "-rawin", "-in",
              str(tmp_path / "record.pdf"), "-sigfile", str(tmp_path / "record.sig.bin")]
    assert subprocess.run(verify, capture_output=True, check=False).returncode == 0
    (tmp_path / "record.pdf").write_bytes(pdf.content.replace(b"SH-2291", b"SH-2292", 1))
    assert subprocess.run(verify, capture_output=True, check=False).returncode != 0

    # final: no edits, no new devices
    assert api.patch("/api/v1/shipments/SH-2291", json={"customer": "x"}).status_code == 409
    assert api.post("/api/v1/shipments/SH-2291/devices", json={"device_id": S3}).status_code == 409


def test_the_share_link_opens_the_record_without_an_account_until_it_expires_or_is_revoked(api: TestClient) -> None:
    _shipment(api, reference="SH-3001")
    link = api.post("/api/v1/shipments/SH-3001/share", json={"days": 7}).json()
    assert link["url"].endswith(f"/share/{link['token']}") and link["expires_at"] > now_ms() + 6 * 86_400_000
    api.cookies.clear()
    assert api.get("/api/v1/shipments/SH-3001").status_code == 401
    page = api.get(f"/share/{link['token']}")
    assert page.status_code == 200 and "SH-3001" in page.text and "成都鲜品有限公司" in page.text
    pdf = api.get(f"/share/{link['token']}/record.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-") and pdf.headers["x-coldwatch-signature"]
    assert api.get(f"/share/{link['token']}x").status_code == 404
    assert api.get(f"/share/{link['token']}/record.pdf".replace(link["token"][:4], "AAAA")).status_code == 404
    r = api.post("/api/v1/auth/login", json={"username": "admin", "password": "admin-password-1"})
    assert r.status_code == 200
    assert api.delete("/api/v1/shipments/SH-3001/share").status_code == 204
    assert api.get(f"/share/{link['token']}").status_code == 404


@pytest.mark.parametrize(("body", "status", "says"), [
    ({"reference": "SH 1"}, 422, "reference"),
    ({"reference": "SH-1", "temp_low_c": 5, "temp_high_c": 2}, 422, "temp_low_c"),
    ({"reference": "SH-1", "profile": "tropical"}, 422, "unknown profile"),
    ({"reference": "SH-1", "planned_start": 2000, "planned_end": 1000}, 422, "planned_end"),
])
def test_bad_shipments_are_refused_with_the_reason(api: TestClient, body: dict[str, Any], status: int,
                                                   says: str) -> None:
    r = api.post("/api/v1/shipments", json=body)
    assert r.status_code == status and says in r.text, r.text


def test_states_and_assignments_refuse_what_does_not_apply(api: TestClient) -> None:
    _shipment(api, reference="SH-A")
    _shipment(api, reference="SH-B")
    assert api.post("/api/v1/shipments", json={"reference": "SH-A"}).status_code == 409
    assert api.post("/api/v1/shipments/SH-A/devices", json={"device_id": S3}).status_code == 201
    r = api.post("/api/v1/shipments/SH-B/devices", json={"device_id": S3})
    assert r.status_code == 409 and "SH-A" in r.text  # one shipment at a time
    assert api.post("/api/v1/shipments/SH-B/devices", json={"device_id": "aa:bb:cc:ff:ff:ff"}).status_code == 404
    r = api.post("/api/v1/shipments/SH-B/devices", json={"device_id": "not-a-mac"})
    assert r.status_code == 422 and "bad_sensor_id" in r.text
    r = api.post("/api/v1/shipments/SH-A/state", json={"state": "delivered"})
    assert r.status_code == 409 and "in_transit" in r.text
    assert api.post("/api/v1/shipments/SH-A/state", json={"state": "cancelled"}).status_code == 200
    assert api.post("/api/v1/shipments/SH-B/devices", json={"device_id": S3}).status_code == 201  # free again
    assert api.get("/api/v1/shipments/NOPE").status_code == 404
    assert [s["reference"] for s in api.get("/api/v1/shipments", params={"state": "planned"}).json()] == ["SH-B"]
    assert api.get("/api/v1/shipments", params={"state": "lost"}).status_code == 422


def test_a_share_link_stops_at_its_expiry(api: TestClient) -> None:
    from cloud.services import shipments

    _shipment(api, reference="SH-EXP")
    link = api.post("/api/v1/shipments/SH-EXP/share", json={"days": 1}).json()
    app: Any = api.app
    with Session(app.state.engine) as session:
        assert shipments.shared(session, link["token"], now=link["expires_at"] - 1) is not None
        assert shipments.shared(session, link["token"], now=link["expires_at"]) is None
        assert shipments.shared(session, "", now=0) is None and shipments.shared(session, "x" * 500) is None
    assert api.post("/api/v1/shipments/SH-EXP/share", json={"days": 0}).status_code == 422
    assert api.post("/api/v1/shipments/SH-EXP/share", json={"days": 400}).status_code == 422


def test_the_watcher_and_a_delivery_hold_no_write_lock_while_they_read_influxdb(
        api: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # ingest writes SQL all the time: a shipment's influx queries (a week's record takes about a second and a half)
    # must not hold SQLite's write lock, or every worker waits for them
    import sqlite3

    import cloud.services.shipment_watch as watch

    probes: list[str] = []

    def can_write(where: str) -> None:
        con = sqlite3.connect(tmp_path / "api.db", timeout=0)  # no waiting: raises "database is locked"
        try:
            con.execute("BEGIN IMMEDIATE")
            con.execute("ROLLBACK")
        finally:
            con.close()
        probes.append(where)

    original_temps, original_render = watch.recent_temps, watch.RecordDesk.render
    monkeypatch.setattr(watch, "recent_temps", lambda *a, **k: (can_write("limits"), original_temps(*a, **k))[1])
    monkeypatch.setattr(watch.RecordDesk, "render",
                        lambda self, *a, **k: (can_write("record"), original_render(self, *a, **k))[1])
    _shipment(api, reference="SH-LOCK", temp_high_c=3.0)
    assert api.post("/api/v1/shipments/SH-LOCK/devices", json={"device_id": S3}).status_code == 201
    assert api.post("/api/v1/shipments/SH-LOCK/state",
                    json={"state": "in_transit", "at": now_ms() - 5 * MIN}).status_code == 200
    _watch(api)
    assert api.post("/api/v1/shipments/SH-LOCK/state", json={"state": "delivered"}).status_code == 200
    assert probes == ["limits", "record"]
    assert api.get("/api/v1/shipments/SH-LOCK").json()["shipment"]["record_sha256"]
