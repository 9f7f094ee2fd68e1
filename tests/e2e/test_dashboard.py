"""The staff dashboard in headless Chromium against the real stack (mosquitto, influxd, ingest, API, agent,
simulator): an alert raised by the simulator appears live in the inbox, staff open it, see the chart drawn,
acknowledge and resolve it, download the PDF report; a viewer sees no buttons and the API refuses them; a browser
set to zh-CN sees the inbox, the fleet and the PDF in Chinese.

Screenshots of every page go to $COLDWATCH_TEST_ARTIFACTS (default var/test-artifacts/dashboard/).
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.stack import CLOUD_BIN, ROOT, LocalStack, make_gateways
from tests.conftest import require, require_binary
from tests.e2e.conftest import artifacts_dir, log_in
from tests.unit.test_cloud_ui import _pdf_text_codes

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

WAIT_MS = 120_000  # generous: the machine is shared; conditions are waited for, never timed
SIM_SPAN_S = 6 * 3600  # six simulated hours, one reading a minute per tag, played in SIM_WALL_S
SIM_WALL_S = 45
# The line colour of the temperature series in chart.js (#1a5fb4).
LINE_RGB = (26, 95, 180)
PASSWORDS = {"staff1": secrets.token_urlsafe(12), "viewer1": secrets.token_urlsafe(12)}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    require_binary("mosquitto")
    require_binary("influxd")
    require((ROOT / ".venv-edge" / "bin" / "coldwatch-agent").exists(), "edge venv .venv-edge")
    s = LocalStack(workdir=tmp_path_factory.mktemp("dashboard") / "stack",
                   gateways=make_gateways([("coldroom-e2e", 4, ["chilled"])]), say=lambda _line: None)
    try:
        s.start_infra()
        s.provision()
        s.start_ingest(workers=1)
        s.start_api()
        s.start_agents()
        for name, role in (("staff1", "staff"), ("viewer1", "viewer")):
            subprocess.run([str(CLOUD_BIN / "coldwatch"), "users", "create", name, "--role", role],
                           env=s.cloud_env(COLDWATCH_USER_PASSWORD=PASSWORDS[name]), check=True,
                           capture_output=True, timeout=60)
        yield s
    finally:
        s.stop()


def login(browser: Any, stack: LocalStack, user: str, start: str = "/ui/alerts", *, bypass_csp: bool = True) -> Any:
    """A new browser context logged in through the login page; returns its page. The tests' own probes
    (`wait_for_function`) are evaluated strings, which the pages' CSP forbids: they bypass it, and
    `test_the_pages_run_under_their_own_content_security_policy` checks the pages without."""
    context = browser.new_context(viewport={"width": 1200, "height": 900}, accept_downloads=True,
                                  bypass_csp=bypass_csp)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    return log_in(page, stack.api_url, start, user, PASSWORDS[user])


def line_pixels(page: Any) -> int:
    """Pixels of the chart canvas in the temperature line's colour: proof that data were drawn."""
    return int(page.evaluate("""([r, g, b]) => {
        const c = document.querySelector('#chart canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        const near = (i) => Math.abs(d[i] - r) < 40 && Math.abs(d[i + 1] - g) < 40 && Math.abs(d[i + 2] - b) < 40;
        for (let i = 0; i < d.length; i += 4) if (near(i) && d[i + 3] > 200) n++;
        return n;
    }""", list(LINE_RGB)))


def wait_chart(page: Any) -> None:
    page.wait_for_selector('#chart canvas[data-state="ready"]')


@pytest.fixture(scope="module")
def raised_alert(stack: LocalStack, browser: Any) -> Iterator[dict[str, Any]]:
    """Staff open the inbox, then the simulator plays a door left open; the alert must arrive live."""
    page = login(browser, stack, "staff1")
    shots = artifacts_dir()
    page.screenshot(path=str(shots / "01-inbox-empty.png"), full_page=True)
    page.wait_for_selector("#live.on")  # the event stream is connected
    page.evaluate("window.__noReload = true")
    gw = stack.gateways[0]
    sim = stack.start_sim_for(gw, interval=60.0, speed=SIM_SPAN_S / SIM_WALL_S, duration=SIM_WALL_S,
                              scenario="door_left_open")
    row = page.wait_for_selector("#alert-rows tr[data-alert]")
    assert page.evaluate("window.__noReload") is True, "the inbox reloaded instead of updating live"
    alert_id = row.get_attribute("data-alert")
    assert alert_id
    page.wait_for_function("Number(document.getElementById('count-open').textContent) >= 1")
    page.screenshot(path=str(shots / "02-inbox-live-alert.png"), full_page=True)
    yield {"id": alert_id, "page": page, "sim": sim}
    page.context.close()


def test_staff_see_the_alert_live_open_it_and_resolve_it(stack: LocalStack, raised_alert: dict[str, Any]) -> None:
    page, alert_id = raised_alert["page"], raised_alert["id"]
    shots = artifacts_dir()
    page.click(f'#alert-rows tr[data-alert="{alert_id}"] a[href^="/ui/alerts/"]')
    page.wait_for_url(f"**/ui/alerts/{alert_id}")
    wait_chart(page)
    assert int(page.get_attribute("#chart canvas", "data-points") or 0) >= 10
    assert int(page.get_attribute("#chart canvas", "data-drawn") or 0) >= 10
    assert line_pixels(page) > 100
    assert "Raised by" in page.inner_text("#reason")
    assert page.inner_text("#model-version").strip()
    page.screenshot(path=str(shots / "03-alert-detail.png"), full_page=True)

    page.click('[data-action="acknowledge"]')
    page.wait_for_selector('#alert-status:text("acknowledged")')
    page.wait_for_selector('#history li[data-step="acknowledge"]')
    page.fill("#note", "Door found open at the loading bay; closed it.")
    page.click('[data-resolve="real_excursion"]')
    page.wait_for_selector('#alert-status:text("resolved")')
    assert "real_excursion" in page.inner_text('#history li[data-step="resolve"]')
    assert "Door found open" in page.inner_text("#history")
    wait_chart(page)
    page.screenshot(path=str(shots / "04-alert-resolved.png"), full_page=True)

    body = httpx.get(f"{stack.api_url}/api/v1/alerts/{alert_id}",
                     cookies=dict((c["name"], c["value"]) for c in page.context.cookies()), timeout=30).json()
    assert body["alert"]["status"] == "resolved"
    assert body["alert"]["resolution"] == "real_excursion"
    assert body["alert"]["acknowledged_by"] == "staff1"


def test_fleet_and_sensor_page_with_pdf_report(stack: LocalStack, raised_alert: dict[str, Any]) -> None:
    page = raised_alert["page"]
    shots = artifacts_dir()
    gw = stack.gateways[0]
    page.goto(stack.api_url + "/ui/fleet")
    page.wait_for_selector(f'#gateways tr[data-gateway="{gw.gateway_id}"] .badge.online')
    mac = gw.sensors[0].mac
    page.wait_for_selector(f'#sensors tr[data-sensor="{mac}"]')
    page.screenshot(path=str(shots / "05-fleet.png"), full_page=True)

    page.click(f'#sensors tr[data-sensor="{mac}"] a')
    page.wait_for_url(f"**/ui/sensors/{mac}")
    wait_chart(page)
    assert line_pixels(page) > 100
    page.wait_for_function("!document.getElementById('report-facts').textContent.includes('…')")
    assert "%" in page.inner_text("#report-facts")
    page.screenshot(path=str(shots / "06-sensor.png"), full_page=True)

    # Drag across the right part of the chart: it zooms into that range (new, finer buckets from the API).
    before = int(page.get_attribute("#chart canvas", "data-start") or 0)
    box = page.locator("#chart canvas").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.80, box["y"] + box["height"] * 0.3)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.99, box["y"] + box["height"] * 0.3, steps=8)
    page.mouse.up()
    page.wait_for_function(f"Number(document.querySelector('#chart canvas').dataset.start) > {before}")
    wait_chart(page)
    assert line_pixels(page) > 100
    page.screenshot(path=str(shots / "06b-sensor-zoomed.png"), full_page=True)

    with page.expect_download() as info:
        page.click("#report-pdf")
    pdf = Path(info.value.path()).read_bytes()
    (shots / "report.pdf").write_bytes(pdf)
    assert pdf.startswith(b"%PDF-")
    assert pdf.rstrip().endswith(b"%%EOF")
    assert len(pdf) > 2000
    assert b"/Type /Page" in pdf


def test_viewer_sees_no_buttons_and_the_api_refuses(stack: LocalStack, browser: Any,
                                                    raised_alert: dict[str, Any]) -> None:
    alert_id = raised_alert["id"]
    page = login(browser, stack, "viewer1", start=f"/ui/alerts/{alert_id}")
    wait_chart(page)
    assert page.query_selector("#actions") is None
    assert page.query_selector("[data-resolve]") is None
    assert page.query_selector('button[data-action]') is None
    page.screenshot(path=str(shots_path := artifacts_dir() / "07-alert-as-viewer.png"), full_page=True)
    assert shots_path.exists()
    for action, body in (("acknowledge", {}), ("comments", {"text": "x"}), ("reopen", {}),
                         ("resolve", {"reason_code": "false_alarm"}), ("assign", {"assignee": "viewer1"})):
        response = page.request.post(f"{stack.api_url}/api/v1/alerts/{alert_id}/{action}", data=body)
        assert response.status == 403, (action, response.status)
    page.context.close()


def test_a_bad_page_is_a_readable_message(stack: LocalStack, raised_alert: dict[str, Any]) -> None:
    page = raised_alert["page"]
    response = page.goto(stack.api_url + "/ui/alerts/does-not-exist")
    assert response is not None and response.status == 404
    assert "No such alert" in page.inner_text("h1")
    page.goto(stack.api_url + "/ui/alerts?severity=nonsense")
    assert "Ignored unknown filter values: severity" in page.inner_text("main")


def test_the_pages_run_under_their_own_content_security_policy(stack: LocalStack, browser: Any,
                                                                raised_alert: dict[str, Any]) -> None:
    page = login(browser, stack, "staff1", bypass_csp=False)
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    sensor = stack.gateways[0].sensors[0].mac
    for path in ("/ui/alerts", f"/ui/alerts/{raised_alert['id']}", "/ui/fleet", f"/ui/sensors/{sensor}"):
        page.goto(stack.api_url + path)
        page.wait_for_load_state("load")
        page.wait_for_timeout(1500)  # the scripts load the chart and connect the event stream
    page.goto(stack.api_url + f"/ui/alerts/{raised_alert['id']}")
    page.wait_for_selector('#chart canvas[data-state]:not([data-state="loading"])')  # the chart drew under CSP
    assert refused == []
    page.context.close()


def test_the_inbox_fleet_and_report_in_chinese(stack: LocalStack, browser: Any,
                                              raised_alert: dict[str, Any]) -> None:
    """A browser set to zh-CN gets the dashboard and the PDF in Simplified Chinese (Accept-Language); the header's
    selector overrides it for the user, and 'browser's language' gives it back."""
    context = browser.new_context(viewport={"width": 1200, "height": 900}, accept_downloads=True, bypass_csp=True,
                                  locale="zh-CN", timezone_id="Asia/Shanghai")
    context.set_default_timeout(WAIT_MS)
    page = log_in(context.new_page(), stack.api_url, "/ui/alerts", "staff1", PASSWORDS["staff1"])
    shots = artifacts_dir()
    page.wait_for_selector(f'#alert-rows tr[data-alert="{raised_alert["id"]}"]')
    page.wait_for_selector("#live.on")
    assert page.get_attribute("html", "lang") == "zh-CN"
    assert page.inner_text("h1") == "告警"
    assert "严重程度" in page.inner_text("#alerts-table thead") and "负责人" in page.inner_text("#alerts-table thead")
    row = page.inner_text(f'#alert-rows tr[data-alert="{raised_alert["id"]}"]')
    assert any("\u4e00" <= c <= "\u9fff" for c in row), row  # the alert's kind and status in Chinese
    assert page.inner_text("#live").startswith("实时")  # the script's own words too
    page.screenshot(path=str(shots / "08-inbox-zh-CN.png"), full_page=True)

    gw = stack.gateways[0]
    page.goto(stack.api_url + "/ui/fleet")
    page.wait_for_selector(f'#gateways tr[data-gateway="{gw.gateway_id}"] .badge.online')
    assert page.inner_text("h1") == "设备"
    assert page.inner_text(f'#gateways tr[data-gateway="{gw.gateway_id}"] .badge') == "在线"
    assert "最新读数" in page.inner_text("#sensors thead") and "电量" in page.inner_text("#sensors thead")
    page.screenshot(path=str(shots / "09-fleet-zh-CN.png"), full_page=True)

    mac = gw.sensors[0].mac
    page.goto(stack.api_url + f"/ui/sensors/{mac}")
    wait_chart(page)
    page.wait_for_function("!document.getElementById('report-facts').textContent.includes('…')")
    assert "数据完整率" in page.inner_text("#report-facts")
    with page.expect_download() as info:
        page.click("#report-pdf")
    pdf = Path(info.value.path()).read_bytes()
    (shots / "report-zh-CN.pdf").write_bytes(pdf)
    codes = _pdf_text_codes(pdf)
    assert {ord(c) for c in "传感器报告超温事件平均动力学温度"} <= codes  # extractable Chinese text

    # The user's own choice beats the browser's: English, then back to the browser's language.
    page.select_option("#language", "en")
    page.wait_for_url(f"**/ui/sensors/{mac}")
    page.wait_for_selector("h1:has-text('Sensor')")
    assert page.get_attribute("html", "lang") == "en"
    page.select_option("#language", "")
    page.wait_for_selector("h1:has-text('传感器')")
    context.close()
