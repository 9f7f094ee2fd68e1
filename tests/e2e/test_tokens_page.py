"""The API tokens page in headless Chromium against the real API (uvicorn in a thread, SQLite), under the page's
own Content Security Policy: staff create a token on the page and see its secret once, the token works against the
API until they revoke it on the page; staff never see another user's tokens; an admin sees them and revokes one.

Screenshots go to $COLDWATCH_TEST_ARTIFACTS (default var/test-artifacts/dashboard/), named tokens-*.png.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from cloud.api.app import create_app
from cloud.config import Settings
from deploy.services import free_port
from tests.e2e.conftest import artifacts_dir, log_in
from tests.integration.cloud_harness import ADMIN_PW, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

WAIT_MS = 60_000  # generous: the machine is shared; conditions are waited for, never timed
DAY_MS = 86_400_000
PASSWORDS = {"admin": ADMIN_PW, "staff1": secrets.token_urlsafe(12), "staff2": secrets.token_urlsafe(12)}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The API (dashboard included) on a free port with an admin and two staff users; yields its URL."""
    workdir = tmp_path_factory.mktemp("tokens-page")
    port = free_port()
    settings = Settings(database_url=f"sqlite:///{workdir / 'coldwatch.db'}", admin_password=ADMIN_PW,
                        api_port=port, silence_interval_s=0)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None,
                                           access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, "the API to start", 30)
        url = f"http://127.0.0.1:{port}"
        admin = {"Authorization": f"Bearer {bearer(url, 'admin')}"}
        for name in ("staff1", "staff2"):
            r = httpx.post(f"{url}/api/v1/users", headers=admin, timeout=30,
                           json={"username": name, "role": "staff", "password": PASSWORDS[name]})
            assert r.status_code == 201, r.text
        yield url
    finally:
        server.should_exit = True
        thread.join(30)


def bearer(url: str, user: str) -> str:
    """A session token of `user`, logged in through the API."""
    r = httpx.post(f"{url}/api/v1/auth/login", json={"username": user, "password": PASSWORDS[user]}, timeout=30)
    r.raise_for_status()
    return str(r.json()["access_token"])


def alerts_status(url: str, token: str) -> int:
    return httpx.get(f"{url}/api/v1/alerts", headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code


def login(browser: Any, url: str, user: str, refused: list[str], start: str = "/ui/alerts") -> Any:
    """A new browser context (CSP enforced: this test evaluates no script of its own) logged in through the login
    page; returns its page. Console lines about the Content Security Policy go to `refused`."""
    context = browser.new_context(viewport={"width": 1200, "height": 900}, timezone_id="UTC")
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # "Revoke the token …?"
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    return log_in(page, url, start, user, PASSWORDS[user])


def row(page: Any, token_id: str) -> str:
    return f'#token-rows tr[data-token="{token_id}"]'


def test_staff_create_a_token_see_it_once_use_it_and_revoke_it(api: str, browser: Any) -> None:
    csp_refusals: list[str] = []
    page = login(browser, api, "staff1", csp_refusals)
    page.click('.top a[href="/ui/tokens"]')  # next to the user name, on every page
    page.wait_for_url("**/ui/tokens")
    assert page.get_attribute('.top a[href="/ui/tokens"]', "aria-current") == "page"
    assert "No API token yet" in page.inner_text("#tokens")

    page.fill("#tok-name", "nightly export")
    page.fill("#tok-days", "400")  # above the API's cap: refused on the page
    page.click("#token-form button[type=submit]")
    assert "1 to 365 whole days" in page.inner_text("#token-error")
    assert page.is_hidden("#token-secret")

    page.fill("#tok-days", "30")
    page.press("#tok-days", "Enter")  # the form works from the keyboard
    page.wait_for_selector("#token-secret", state="visible")
    secret = page.inner_text("#token-value").strip()
    assert len(secret) >= 32
    assert "it will not be shown again" in page.inner_text("#token-secret")
    assert "nightly export" in page.inner_text("#token-made-name")
    mine = page.wait_for_selector('#token-rows tr[data-state="active"]')
    token_id = str(mine.get_attribute("data-token"))
    assert "nightly export" in mine.inner_text()
    artifacts = artifacts_dir()
    page.screenshot(path=str(artifacts / "tokens-created.png"), full_page=True)

    assert alerts_status(api, secret) == 200
    listed = httpx.get(f"{api}/api/v1/auth/tokens", headers={"Authorization": f"Bearer {secret}"}, timeout=30).json()
    assert [(t["name"], t["user"], t["expires_at"] - t["created_at"]) for t in listed] == [
        ("nightly export", "staff1", 30 * DAY_MS)]

    page.click("#token-done")
    assert page.is_hidden("#token-secret") and secret not in page.content()
    page.reload()
    assert secret not in page.content()  # shown once: nothing on the page can show it again
    page.wait_for_selector(row(page, token_id) + '[data-state="active"]')

    page.click(row(page, token_id) + " button[data-revoke]")
    page.wait_for_selector(row(page, token_id) + '[data-state="revoked"]')
    assert page.query_selector(row(page, token_id) + " button[data-revoke]") is None
    assert "revoked" in page.inner_text("#flash")
    assert alerts_status(api, secret) == 401
    page.screenshot(path=str(artifacts / "tokens-revoked.png"), full_page=True)
    assert csp_refusals == []
    page.context.close()


def test_staff_see_only_their_own_tokens_and_an_admin_revokes_anyones(api: str, browser: Any) -> None:
    csp_refusals: list[str] = []
    staff2 = {"Authorization": f"Bearer {bearer(api, 'staff2')}"}
    made = httpx.post(f"{api}/api/v1/auth/tokens", headers=staff2, json={"name": "cron on host b", "ttl_days": 7},
                      timeout=30)
    assert made.status_code == 201, made.text
    secret = made.json()["token"]
    other = str(httpx.get(f"{api}/api/v1/auth/tokens", headers=staff2, timeout=30).json()[0]["id"])
    assert alerts_status(api, secret) == 200

    page = login(browser, api, "staff1", csp_refusals, "/ui/tokens")
    page.wait_for_selector("#token-rows")
    assert page.query_selector(row(page, other)) is None
    assert page.query_selector('#token-rows tr[data-owner="staff2"]') is None
    assert "cron on host b" not in page.inner_text("main")
    assert "User" not in page.inner_text("#tokens thead")  # no owner column: every row is theirs
    page.context.close()

    page = login(browser, api, "admin", csp_refusals, "/ui/tokens")
    theirs = page.wait_for_selector(row(page, other) + '[data-owner="staff2"][data-state="active"]')
    assert "cron on host b" in theirs.inner_text() and "staff2" in theirs.inner_text()
    assert page.query_selector('#token-rows tr[data-owner="staff1"]') is not None  # everyone's, staff1's too
    page.screenshot(path=str(artifacts_dir() / "tokens-admin.png"), full_page=True)
    page.click(row(page, other) + " button[data-revoke]")
    page.wait_for_selector(row(page, other) + '[data-state="revoked"]')
    assert alerts_status(api, secret) == 401
    assert csp_refusals == []
    page.context.close()
