"""Shipments and the site board in headless Chromium against a real API process, influxd and SQL: staff create a
shipment, assign sensors, start it, see an excursion against the shipment's own limits arrive live, deliver it and
download the signed record; a receiver opens the share link without an account; the site board shows a depot's
cold spaces and follows a change live.

Screenshots go to $COLDWATCH_TEST_ARTIFACTS (default var/test-artifacts/dashboard/), named `shipment-*`, `site-*`.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session

from cloud.db.engine import make_engine
from cloud.db.fleet import Gateway, Sensor
from cloud.services.clock import now_ms
from cloud.tsdb.influx import InfluxClient
from cloud.tsdb.lineprotocol import readings_lines
from deploy.stack import CLOUD_BIN, LocalStack, make_gateways
from models.runtime.manifest import verify_bytes
from protocol.messages import Reading
from tests.conftest import require_binary
from tests.e2e.conftest import artifacts_dir, log_in

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

WAIT_MS = 120_000
PASSWORD = secrets.token_urlsafe(12)
SITE = "浦东冷库 Pudong DC"
TRUCK = ["aa:bb:cc:00:07:01", "aa:bb:cc:00:07:02"]
ROOMS = {"aa:bb:cc:00:07:11": "冷库3号 Cold room 3", "aa:bb:cc:00:07:12": "Freezer 1", "aa:bb:cc:00:07:13": "Dock"}
PROFILES = {"aa:bb:cc:00:07:11": "chilled", "aa:bb:cc:00:07:12": "frozen", "aa:bb:cc:00:07:13": "ambient"}
LEVEL = {"chilled": 2.0, "frozen": -21.0, "ambient": 20.0}
MIN = 60_000


def _write(stack: LocalStack, gateway: str, sensor: str, profile: str, points: list[tuple[int, float]]) -> None:
    assert stack.influxd is not None
    with InfluxClient(url=stack.influxd.url, database=stack.influx_db) as client:
        client.ensure_database()
        client.write(readings_lines(gateway, [Reading(sensor=sensor, ts=ts, profile=profile, temp_c=v,
                                                      battery_mv=2950 if sensor != "aa:bb:cc:00:07:13" else 2410)
                                              for ts, v in points]).lines)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    require_binary("mosquitto")
    require_binary("influxd")
    s = LocalStack(workdir=tmp_path_factory.mktemp("shipments") / "stack",
                   gateways=make_gateways([("truck-e2e", 0, ["chilled"]), ("pudong-e2e", 0, ["chilled"])]),
                   say=lambda _line: None)
    try:
        s.start_infra()
        s.provision()
        now = now_ms()
        engine = make_engine(s.cloud_env()["COLDWATCH_DATABASE_URL"])
        with Session(engine) as session:
            depot = session.get(Gateway, "pudong-e2e")
            truck = session.get(Gateway, "truck-e2e")
            assert depot is not None and truck is not None
            depot.site, depot.last_heard_at, truck.site, truck.last_heard_at = SITE, now, None, now
            session.add_all([depot, truck])
            for sensor in TRUCK:
                session.add(Sensor(id=sensor, gateway_id="truck-e2e", profile="chilled", label=f"pallet {sensor[-1]}",
                                   last_seen_at=now))
            for sensor, room in ROOMS.items():
                session.add(Sensor(id=sensor, gateway_id="pudong-e2e", profile=PROFILES[sensor], asset=room,
                                   last_seen_at=now))
            session.commit()
        engine.dispose()
        for sensor in TRUCK:
            _write(s, "truck-e2e", sensor, "chilled",
                   [(now - 60 * MIN + i * MIN, 2.0 + (i % 7) / 10) for i in range(60)])
        for sensor, profile in PROFILES.items():
            _write(s, "pudong-e2e", sensor, profile, [(now - 30 * MIN + i * MIN, LEVEL[profile]) for i in range(30)])
        s.start_api(env={"COLDWATCH_SHIPMENT_INTERVAL_S": "1"})
        subprocess.run([str(CLOUD_BIN / "coldwatch"), "users", "create", "staff1", "--role", "staff"],
                       env=s.cloud_env(COLDWATCH_USER_PASSWORD=PASSWORD), check=True, capture_output=True, timeout=60)
        yield s
    finally:
        s.stop()


def _page(browser: Any, stack: LocalStack, start: str) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(WAIT_MS)
    return log_in(context.new_page(), stack.api_url, start, "staff1", PASSWORD)


def test_staff_run_a_shipment_from_creation_to_the_signed_record_and_share_it(stack: LocalStack,
                                                                              browser: Any) -> None:
    shots = artifacts_dir()
    page = _page(browser, stack, "/ui/shipments")
    page.fill('#shipment-form [name="reference"]', "SH-2291")
    page.fill('#shipment-form [name="origin"]', "上海 Shanghai")
    page.fill('#shipment-form [name="destination"]', SITE)
    page.fill('#shipment-form [name="customer"]', "成都鲜品有限公司")
    page.fill('#shipment-form [name="product"]', "chilled dairy")
    page.select_option('#shipment-form [name="profile"]', "chilled")
    page.fill('#shipment-form [name="temp_low_c"]', "1")
    page.fill('#shipment-form [name="temp_high_c"]', "3.5")
    page.screenshot(path=str(shots / "shipment-01-create.png"), full_page=True)
    page.click('#shipment-form button[type="submit"]')
    page.wait_for_url("**/ui/shipments/SH-2291")
    for sensor in TRUCK:
        page.fill('#assign-form [name="device_id"]', sensor)
        page.click('#assign-form button[type="submit"]')
        page.wait_for_selector(f'#devices tr[data-device="{sensor}"]')
    page.screenshot(path=str(shots / "shipment-02-assigned.png"), full_page=True)
    page.click('#shipment-actions [data-state="in_transit"]')
    page.wait_for_selector('#shipment-state.in_transit')
    page.click(f'#devices a[href="/ui/sensors/{TRUCK[0]}"]')  # the sensor's page names its shipment
    assert page.inner_text("#sensor-shipment").startswith("SH-2291")
    page.go_back()
    page.wait_for_selector('#shipment-state.in_transit')
    page.evaluate("window.__noReload = true")
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    started = httpx.get(f"{stack.api_url}/api/v1/shipments/SH-2291", cookies=cookies,
                        timeout=30).json()["shipment"]["started_at"]
    while now_ms() < started + 2_000:  # the readings below are stamped after the start and before now
        time.sleep(0.2)
    for sensor in TRUCK:
        _write(stack, "truck-e2e", sensor, "chilled", [(started + 100 + i * 100, 2.5) for i in range(10)])
    # the second tag warms to 3.8 °C: inside chilled's band (no gateway rule fires), above this shipment's own 3.5 °C
    _write(stack, "truck-e2e", TRUCK[1], "chilled", [(started + 1_200 + i * 100, 3.8) for i in range(5)])
    page.wait_for_selector("#shipment-alerts li .badge.sev")  # the live part brought the cloud's alert
    assert page.evaluate("window.__noReload") is True, "the page reloaded instead of updating live"
    assert TRUCK[1] in page.inner_text("#shipment-alerts")
    assert page.locator("svg.journey polyline.sensor-line").count() >= 2
    page.screenshot(path=str(shots / "shipment-03-live-excursion.png"), full_page=True)

    page.click('#shipment-actions [data-state="delivered"]')
    page.wait_for_selector('#shipment-state.delivered')
    with page.expect_download() as info:
        page.click("#record-pdf")
    pdf = Path(info.value.path()).read_bytes()
    (shots / "shipment-record.pdf").write_bytes(pdf)
    signature = httpx.get(f"{stack.api_url}/api/v1/shipments/SH-2291/record", params={"format": "sig"},
                          cookies=cookies, timeout=30).text
    key = httpx.get(f"{stack.api_url}/api/v1/shipments/record-key", timeout=30).content
    verify_bytes(pdf, signature, [key])
    page.screenshot(path=str(shots / "shipment-04-delivered.png"), full_page=True)

    page.click("#share")
    page.wait_for_selector("#share-link:not([hidden])")
    url = page.input_value("#share-url")
    assert "/share/" in url
    receiver = browser.new_context(viewport={"width": 1280, "height": 900})  # no login, no cookies
    shared = receiver.new_page()
    shared.goto(url)
    assert "SH-2291" in shared.inner_text("h1") and "成都鲜品有限公司" in shared.inner_text("main")
    assert shared.locator("svg.journey polyline.sensor-line").count() >= 2
    assert shared.locator("header nav").count() == 0  # nothing of the dashboard
    shared.screenshot(path=str(shots / "shipment-05-shared.png"), full_page=True)
    assert httpx.get(url.replace("/share/", "/share/x"), timeout=30).status_code == 404
    receiver.close()
    page.context.close()


def test_the_site_board_shows_every_cold_space_and_follows_it_live(stack: LocalStack, browser: Any) -> None:
    shots = artifacts_dir()
    page = _page(browser, stack, "/ui/sites")
    page.click(f'a.button:text("{SITE}")')
    page.wait_for_selector(".tiles .tile")
    spaces = {t.get_attribute("data-space"): t.get_attribute("data-state") for t in page.query_selector_all(".tile")}
    assert spaces["冷库3号 Cold room 3"] == "ok" and spaces["Freezer 1"] == "ok"
    assert "battery low" in page.inner_text('.tile[data-space="Dock"]')
    page.screenshot(path=str(shots / "site-01-board.png"), full_page=True)
    page.evaluate("window.__noReload = true")
    now = now_ms()
    _write(stack, "pudong-e2e", "aa:bb:cc:00:07:11", "chilled", [(now + i * 1000, 7.5) for i in range(3)])
    page.wait_for_selector('.tile[data-space="冷库3号 Cold room 3"][data-state="out"]')
    assert page.evaluate("window.__noReload") is True
    assert "7.5" in page.inner_text('.tile[data-space="冷库3号 Cold room 3"] .temp')
    page.screenshot(path=str(shots / "site-02-out-of-band.png"), full_page=True)
    page.click('.tile[data-space="Freezer 1"]')
    page.wait_for_url("**/ui/sensors/aa:bb:cc:00:07:12")
    page.context.close()


def test_the_shipment_pages_and_the_site_board_in_chinese(stack: LocalStack, browser: Any) -> None:
    shots = artifacts_dir()
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    context.set_default_timeout(WAIT_MS)
    page = log_in(context.new_page(), stack.api_url, "/ui/shipments", "staff1", PASSWORD)
    assert page.inner_text("h1") == "运单" and page.get_attribute("html", "lang") == "zh-CN"
    page.fill('#shipment-form [name="reference"]', "SH-3300")
    page.fill('#shipment-form [name="origin"]', "上海")
    page.fill('#shipment-form [name="destination"]', "成都冷链中心")
    page.fill('#shipment-form [name="customer"]', "成都鲜品有限公司")
    page.select_option('#shipment-form [name="profile"]', "chilled")
    page.fill('#shipment-form [name="temp_high_c"]', "3.5")
    assert page.input_value('#shipment-form [name="language"]') == "zh_CN"  # the record follows the reader
    page.screenshot(path=str(shots / "shipment-zh-01-create.png"), full_page=True)
    page.click('#shipment-form button[type="submit"]')
    page.wait_for_url("**/ui/shipments/SH-3300")
    page.fill('#assign-form [name="device_id"]', TRUCK[0])
    page.click('#assign-form button[type="submit"]')
    page.wait_for_selector(f'#devices tr[data-device="{TRUCK[0]}"]')
    page.click('#shipment-actions [data-state="in_transit"]')
    page.wait_for_selector("#shipment-state.in_transit")
    assert page.inner_text("#shipment-state") == "运输中"
    started = now_ms()
    while now_ms() < started + 1_500:
        time.sleep(0.2)
    _write(stack, "truck-e2e", TRUCK[0], "chilled", [(started + 100 + i * 100, 3.9) for i in range(5)])
    page.wait_for_selector("#shipment-alerts li .badge.sev")
    assert "超出运单自身温度限值" in page.inner_text("#shipment-alerts")
    page.screenshot(path=str(shots / "shipment-zh-03-live-excursion.png"), full_page=True)
    page.goto(f"{stack.api_url}/ui/sites")
    page.click(f'a.button:text("{SITE}")')
    page.wait_for_selector(".tiles .tile")
    assert "电量低" in page.inner_text('.tile[data-space="Dock"]')
    page.screenshot(path=str(shots / "site-zh-01-board.png"), full_page=True)
    record = httpx.get(f"{stack.api_url}/api/v1/shipments/SH-3300/record", params={"format": "pdf"},
                       cookies={c["name"]: c["value"] for c in context.cookies()}, timeout=60)
    assert record.status_code == 200 and record.content.startswith(b"%PDF-")
    context.close()
