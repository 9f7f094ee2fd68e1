"""The ops pages in headless Chromium against a real fleet (API with its rollout controller, ingest, mosquitto,
influxd and four real agents trusting the fleet key, a real int8 model signed in the run): ops open the models,
start a rollout with a canary and watch its evidence and verdict on the page without reloading, halt and roll back
a second one, queue a retraining job and follow a real training worker through it to the quality gate; a viewer sees no
ops buttons and the API refuses them.

Probations run in reading time: the test sends each canary its simulated minutes at once (as
tests/integration/test_rollouts.py does), so a ten-minute probation passes in seconds.
Screenshots go to $COLDWATCH_TEST_ARTIFACTS (default var/test-artifacts/dashboard/), named ops-*.png.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.services import Influxd
from tests.conftest import CLOUD_BIN, require_binary
from tests.e2e.conftest import artifacts_dir, log_in
from tests.integration.edge_harness import T0_MS
from tests.integration.rollout_harness import Fleet, running_fleet, states
from tests.integration.site_data import site_data, store_site

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

WAIT_MS = 120_000  # generous: the machine is shared; conditions are waited for, never timed
TRAIN_WAIT_MS = 420_000  # a real training run on two shared cores
SITE_T0 = T0_MS + 40 * 86_400_000  # the retraining site's readings, away from the agents' (2026-02-10)
GATEWAYS = ["gw01", "gw02", "gw03", "gw04"]
PASSWORDS = {"ops1": secrets.token_urlsafe(12), "viewer1": secrets.token_urlsafe(12)}
ROLES = {"ops1": "ops", "viewer1": "viewer"}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, influxd: Influxd, edge_python: Path) -> Iterator[Fleet]:
    """Four agents running chilled_ae-1 (rolled out without a canary), their windows full of calm readings."""
    require_binary("mosquitto")
    with running_fleet(tmp_path_factory.mktemp("ops-pages"), influxd, GATEWAYS, influx_db="ops_pages") as fleet:
        for name, role in ROLES.items():
            fleet.cloud.ops.request("POST", "/api/v1/users", json={"username": name, "role": role,
                                                                    "password": PASSWORDS[name]})
        fleet.push("chilled_ae-1")
        first = fleet.cloud.ops.start_rollout(model="chilled_ae-1", canary_fraction=0.0)
        fleet.wait_state(first.id, "completed")
        fleet.minutes(GATEWAYS, 35)  # fill every window before any shadow starts
        yield fleet


def login(browser: Any, fleet: Fleet, user: str, start: str) -> Any:
    """A new browser context logged in through the login page (from the keyboard); returns its page."""
    context = browser.new_context(viewport={"width": 1200, "height": 900}, timezone_id="UTC",
                                  bypass_csp=True)  # the probes are evaluated strings (test_dashboard checks CSP)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # "Roll back …?" confirmations
    return log_in(page, fleet.cloud.url, start, user, PASSWORDS[user])


def shot(page: Any, name: str) -> Path:
    path = artifacts_dir() / f"ops-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def start_from_form(page: Any, fleet: Fleet, model: str, *, canary: str, probation_min: str,
                    evidence_h: str | None = None, gateways: list[str] | None = None) -> int:
    """Fill the start form on /ui/rollouts and submit it; returns the new rollout's id (from the detail page)."""
    page.goto(f"{fleet.cloud.url}/ui/rollouts?model={model}")
    page.select_option("#ro-model", model)
    if gateways is None:
        page.check('input[name="group"][value="all"]')
    else:
        for gw in gateways:
            page.check(f'input[name="gateway"][value="{gw}"]')
        assert page.is_checked('input[name="group"][value="chosen"]')
    page.fill("#ro-canary", canary)
    assert page.input_value("#ro-evidence") == "240.0" and page.input_value("#ro-ratio") == "1.0"  # the defaults
    if evidence_h is not None:
        page.fill("#ro-evidence", evidence_h)
    page.fill("#ro-probation", probation_min)
    page.press("#ro-probation", "Enter")  # the form works from the keyboard
    page.wait_for_url(re.compile(r"/ui/rollouts/\d+$"))
    page.wait_for_selector("#flash.ok", state="attached")  # shown for a few seconds after the start
    return int(page.url.rstrip("/").rsplit("/", 1)[1])


def target_rows(page: Any, role: str) -> list[str]:
    return [str(r.get_attribute("data-gateway")) for r in page.query_selector_all(f'#targets tr[data-role="{role}"]')]


def test_ops_open_models_start_a_canary_rollout_and_watch_it_progress(fleet: Fleet, browser: Any) -> None:
    page = login(browser, fleet, "ops1", "/ui/models")
    for link in ("/ui/models", "/ui/rollouts", "/ui/training"):
        assert page.query_selector(f'.top nav a[href="{link}"]') is not None, link
    page.wait_for_selector('tr[data-model="chilled_ae-1"] .badge.current')
    assert "on 4 gateways" in page.inner_text('section[data-profile="chilled"] h2')

    fleet.model.variant("2", threshold=fleet.model.manifest.threshold)  # a sound candidate
    fleet.push("chilled_ae-2")
    page.reload()
    page.click('tr[data-model="chilled_ae-2"] a[href="/ui/models/chilled_ae-2"]')
    page.wait_for_url("**/ui/models/chilled_ae-2")
    assert page.inner_text("#sha256").strip() == fleet.model.manifest.sha256
    assert '"version": "2"' in page.inner_text("#manifest")
    assert "chilled_ae-1" in page.inner_text("main")  # the current model beside it
    shot(page, "10-models-detail")
    page.goto(fleet.cloud.url + "/ui/models")
    shot(page, "11-models")

    rid = start_from_form(page, fleet, "chilled_ae-2", canary="0.25", probation_min="10", evidence_h="0.2")
    page.evaluate("window.__noReload = true")  # from here the page must update itself
    page.wait_for_selector('#targets tr[data-role="canary"][data-state="shadow"]')
    canaries, rest = target_rows(page, "canary"), target_rows(page, "rest")
    assert len(canaries) == 1 and len(rest) == 3
    assert all(page.get_attribute(f'#targets tr[data-gateway="{gw}"]', "data-state") == "waiting" for gw in rest)
    assert page.get_attribute("#rollout-state", "data-state") == "canary"
    assert page.is_visible('[data-op="promote"]') and page.is_visible('[data-op="halt"]')

    fleet.minutes(canaries, 5)  # part of the probation: the shadow has scored windows, still running
    page.wait_for_function("""() => { const row = document.querySelector('#targets tr[data-role="canary"]');
        return row.dataset.shadow === "running" && Number(row.dataset.windows) >= 3; }""")
    page.wait_for_function("""() => { const e = document.getElementById("rollout-evidence");
        return e && Number(e.dataset.sensorHours) >= 0.05; }""")  # the evidence so far, of 0.2 sensor-hours
    assert page.get_attribute("#rollout-evidence", "data-min-sensor-hours") == "0.2"
    assert "not enough data yet" in page.inner_text("#rollout-verdict")
    assert page.get_attribute("#rollout-evidence", "data-current-episodes") == "0"
    assert page.is_visible('#episodes tr[data-model="candidate"]')
    assert page.is_visible('#episodes tr[data-model="current"]')
    assert page.evaluate("window.__noReload") is True, "the rollout page reloaded instead of updating itself"
    shot(page, "12-rollout-canary-shadow")

    model_page = page.context.new_page()  # the model page beside it: the shadow's alert rate and drift
    model_page.goto(fleet.cloud.url + "/ui/models/chilled_ae-2")
    row = model_page.wait_for_selector(f'#shadows tr[data-gateway="{canaries[0]}"][data-shadow="running"]')
    assert float(row.query_selector("td:nth-child(4)").inner_text()) >= 0.05  # sensor-hours scored
    assert "%" in row.inner_text()
    assert "chilled_ae-1 on 4 gateways" in model_page.inner_text("main")  # the canary's alerts still come from it
    model_page.goto(fleet.cloud.url + "/ui/models")
    model_page.wait_for_selector('tr[data-model="chilled_ae-2"] .badge.shadow')
    model_page.goto(fleet.cloud.url + "/ui/models/chilled_ae-2")
    shot(model_page, "13-model-in-shadow")
    model_page.evaluate("window.__noReload = true")  # the model page follows the shadow by itself too

    fleet.minutes(canaries, 10)  # evidence and probation pass in reading time: the verdict promotes the model
    page.wait_for_selector('#targets tr[data-role="canary"][data-state="applied"]')
    page.wait_for_selector('#rollout-state[data-state="completed"]')
    assert page.inner_text("#rollout-verdict").startswith("promoted: candidate 0 alert episodes")
    assert page.get_attribute("#rollout-evidence", "data-decision") == "promote"
    assert all(page.get_attribute(f'#targets tr[data-gateway="{gw}"]', "data-state") == "applied"
               for gw in canaries + rest)
    assert page.evaluate("window.__noReload") is True
    assert page.is_hidden('[data-op="promote"]') and page.is_hidden('[data-op="halt"]')
    shot(page, "14-rollout-completed")

    promoted = model_page.wait_for_selector(f'#shadows tr[data-gateway="{canaries[0]}"][data-shadow="promoted"]')
    assert float(promoted.query_selector("td:nth-child(4)").inner_text()) >= 0.16  # ten windows and more
    assert model_page.evaluate("window.__noReload") is True, "the model page reloaded instead of updating itself"
    assert fleet.rollout(rid).state == "completed"
    page.context.close()


def test_ops_halt_and_roll_back_a_rollout_from_its_page(fleet: Fleet, browser: Any) -> None:
    fleet.model.variant("3", threshold=fleet.model.manifest.threshold)
    fleet.push("chilled_ae-3")
    page = login(browser, fleet, "ops1", "/ui/rollouts")
    rid = start_from_form(page, fleet, "chilled_ae-3", canary="0.5", probation_min="600",
                          gateways=["gw01", "gw02"])
    assert len(target_rows(page, "canary")) == 1 and len(target_rows(page, "rest")) == 1
    page.wait_for_selector('#targets tr[data-role="canary"][data-state="shadow"]')

    page.fill("#ro-reason", "wrong build pushed")
    page.click('[data-op="halt"]')
    page.wait_for_selector('#rollout-state[data-state="halted"]')
    assert "wrong build pushed" in page.inner_text("#rollout-reason")
    page.wait_for_selector('#targets tr[data-role="canary"][data-state="reverted"]')  # its shadow ended
    assert page.is_hidden('[data-op="halt"]') and page.is_visible('[data-op="rollback"]')
    page.click('[data-op="rollback"]')
    page.wait_for_selector('#rollout-state[data-state="rolled_back"]')
    page.wait_for_selector('#targets tr[data-role="canary"][data-state="reverted"]')
    assert page.get_attribute('#targets tr[data-role="rest"]', "data-state") == "waiting"  # never sent
    shot(page, "15-rollout-rolled-back")

    body = fleet.rollout(rid)
    assert body.state == "rolled_back" and set(states(body, "canary").values()) == {"reverted"}
    audit = fleet.cloud.ops.request("GET", "/api/v1/audit", params={"target_type": "rollout", "target_id": str(rid)})
    assert [(a["action"], a["actor"]) for a in audit[:2]] == [("rollout.rolled_back", "ops1"),
                                                               ("rollout.halted", "ops1")]
    page.goto(fleet.cloud.url + "/ui/rollouts")
    assert page.get_attribute(f'#rollouts tr[data-rollout="{rid}"]', "data-state") == "rolled_back"
    shot(page, "16-rollouts")
    page.context.close()


def test_ops_queue_a_retraining_job_and_follow_it_to_the_gate(fleet: Fleet, browser: Any, tmp_path: Path) -> None:
    """The site of tests/integration/test_rollouts.py: readings whose loading windows the current model fires on,
    resolved by staff as `loading`; ops queue the retrain from the page and a real `train-worker --once` runs it."""
    series, windows = site_data(SITE_T0)
    ids = store_site(series, windows, influx_url=fleet.cloud.settings.influx_url,
                     influx_db=fleet.cloud.settings.influx_db, database_url=fleet.cloud.settings.database_url)
    for aid, (_, _, _, code) in zip(ids, windows, strict=True):  # staff close the loop
        fleet.cloud.ops.request("POST", f"/api/v1/alerts/{aid}/resolve", json={"reason_code": code})

    page = login(browser, fleet, "ops1", "/ui/training")
    page.select_option("#tj-profile", "chilled")
    page.fill("#tj-from", "2026-02-10T00:00")  # SITE_T0 in the context's time zone (UTC)
    page.fill("#tj-to", "2026-02-12T00:00")
    page.fill("#tj-epochs", "24")
    page.fill("#tj-version", "9")
    page.click('#training-form button[type="submit"]')
    page.wait_for_url(re.compile(r"/ui/training/\d+$"))
    job_id = int(page.url.rsplit("/", 1)[1])
    page.wait_for_selector('#job-state[data-state="queued"]')
    job = fleet.cloud.ops.training_job(job_id)
    assert (job.profile, job.start, job.end, job.epochs, job.created_by) == (
        "chilled", SITE_T0, SITE_T0 + 2 * 86_400_000, 24, "ops1")
    page.goto(fleet.cloud.url + "/ui/training")
    page.wait_for_selector(f'#job-rows tr[data-job="{job_id}"][data-state="queued"]')
    shot(page, "17-training-queued")
    page.click(f'#job-rows tr[data-job="{job_id}"] a')
    page.wait_for_url(f"**/ui/training/{job_id}")
    page.evaluate("window.__noReload = true")

    key = tmp_path / "fleet.key"
    key.write_bytes(fleet.model.private_pem)
    env = {**os.environ, "COLDWATCH_API_TOKEN": fleet.cloud.token, "COLDWATCH_SIGNING_KEY_FILE": str(key)}
    with (tmp_path / "worker.log").open("wb") as out:
        worker = subprocess.Popen([str(CLOUD_BIN / "coldwatch"), "train-worker", "--once", "--api-url",
                                   fleet.cloud.url, "--work-dir", str(tmp_path / "work")], env=env, stdout=out,
                                  stderr=subprocess.STDOUT)
    try:
        page.wait_for_selector('#job-state[data-state="running"]', timeout=TRAIN_WAIT_MS)
        page.wait_for_function("Number(document.getElementById('job-progress').value) > 0", timeout=TRAIN_WAIT_MS)
        shot(page, "18-training-running")
        # the job ends at the quality gate either way: registered, or refused with the gate's reasons shown
        page.wait_for_selector('#job-state[data-state="succeeded"], #job-state[data-state="failed"]',
                               timeout=TRAIN_WAIT_MS)
        state = page.get_attribute("#job-state", "data-state")
        if state == "failed":
            assert "quality gate" in page.content()
        assert worker.wait(60) == (0 if state == "succeeded" else 1)
    finally:
        if worker.poll() is None:
            worker.terminate()
            worker.wait(30)
    assert page.evaluate("window.__noReload") is True, "the job page reloaded instead of updating itself"
    if state == "failed":  # level-free inputs may trail the harness's model on delay: the gate says so, visibly
        assert "quality gate" in page.inner_text("body")
        return
    assert page.inner_text("#job-percent").strip() == "100 %"
    assert "Passed" in page.inner_text("#gate")
    assert "registered cw_chilled-9" in page.inner_text("#job-log")
    benign = page.query_selector_all('#evaluation tr[data-metric="benign_windows_alerted"] td')
    assert int(benign[1].inner_text()) == 0 <= int(benign[2].inner_text())  # candidate vs current model
    shot(page, "19-training-succeeded")

    page.click('a[href="/ui/models/cw_chilled-9"]')
    page.wait_for_url("**/ui/models/cw_chilled-9")
    alerted = page.query_selector_all('#evaluation tr[data-metric="benign_windows_alerted"] td')
    assert int(alerted[1].inner_text()) == 0 <= int(alerted[2].inner_text())  # beside the model then current
    assert "Gate passed" in page.inner_text("#gate")
    assert page.query_selector('#metrics tr[data-metric="int8_check.score_error"]') is not None
    shot(page, "20-model-with-evaluation")
    page.context.close()


def test_a_viewer_sees_no_ops_buttons_and_the_api_refuses(fleet: Fleet, browser: Any) -> None:
    rid = fleet.cloud.ops.rollouts()[0].id
    page = login(browser, fleet, "viewer1", f"/ui/rollouts/{rid}")
    page.wait_for_selector("#targets tr[data-gateway]")
    assert page.query_selector('.top nav a[href="/ui/rollouts"]') is None  # no ops links for a viewer
    assert page.query_selector("#rollout-actions") is None and page.query_selector("[data-op]") is None
    page.set_viewport_size({"width": 820, "height": 1180})  # a tablet held upright: tables scroll sideways
    shot(page, "21-rollout-as-viewer-tablet")
    page.goto(fleet.cloud.url + "/ui/rollouts")
    assert page.query_selector("#rollout-form") is None
    page.goto(fleet.cloud.url + "/ui/training")
    assert page.query_selector("#training-form") is None
    page.goto(fleet.cloud.url + "/ui/models")
    assert page.query_selector('a.button[href*="#start"]') is None

    api = fleet.cloud.url + "/api/v1"
    refused = {
        "start": page.request.post(f"{api}/rollouts", data={"model": "chilled_ae-2", "canary_fraction": 0}),
        "promote": page.request.post(f"{api}/rollouts/{rid}/promote"),
        "halt": page.request.post(f"{api}/rollouts/{rid}/halt", data={}),
        "rollback": page.request.post(f"{api}/rollouts/{rid}/rollback", data={}),
        "training": page.request.post(f"{api}/training-jobs", data={"profile": "chilled", "start": 0, "end": 1}),
    }
    assert {name: r.status for name, r in refused.items()} == dict.fromkeys(refused, 403)
    page.context.close()


def test_a_bad_ops_page_is_a_readable_message(fleet: Fleet, browser: Any) -> None:
    page = login(browser, fleet, "ops1", "/ui/rollouts")
    for path, title in (("/ui/rollouts/999999", "No such rollout"), ("/ui/models/nope-1", "No such model"),
                        ("/ui/training/abc", "No such training job")):
        response = page.goto(fleet.cloud.url + path)
        assert response is not None and response.status == 404
        assert title in page.inner_text("h1")
    page.goto(fleet.cloud.url + "/ui/rollouts")  # a refused start shows the API's reason in the form
    page.select_option("#ro-model", "chilled_ae-2")
    page.check('input[name="group"][value="all"]')
    page.fill("#ro-canary", "2")
    page.click('#rollout-form button[type="submit"]')
    assert "canary fraction" in page.inner_text("#rollout-error")  # checked in the page
    fleet.cloud.ops.request("POST", "/api/v1/gateways", json={"id": "gw99"})  # provisioned, no artifact token
    page.reload()
    assert "no artifact token" in page.inner_text('#ro-gateways label:has(input[value="gw99"])')
    page.fill("#ro-canary", "0")
    page.check('input[name="gateway"][value="gw99"]')
    page.click('#rollout-form button[type="submit"]')
    page.wait_for_selector("#rollout-error:not([hidden])")
    assert "without an artifact token" in page.inner_text("#rollout-error")  # the API's refusal, in words
    shot(page, "22-rollout-refused")
    page.context.close()
