"""Browser fixtures for the e2e tests: Debian's headless Chromium driven by Playwright, and where artifacts go."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.stack import ROOT
from tests.conftest import require, require_chromium

# The machine's network is closed: without the background-networking flags Chromium's connections are refused.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def log_in(page: Any, url: str, start: str, user: str, password: str) -> Any:
    """Open `start`, follow the redirect to the login page, log in from the keyboard and land on `start`."""
    page.goto(url + start)
    page.wait_for_url("**/login?next=*")
    page.fill("#username", user)
    page.fill("#password", password)
    page.keyboard.press("Enter")  # the form works from the keyboard
    page.wait_for_url(f"**{start}")
    return page


def artifacts_dir() -> Path:
    """Where screenshots and the downloaded report go (git-ignored var/ by default)."""
    base = Path(os.environ.get("COLDWATCH_TEST_ARTIFACTS") or ROOT / "var" / "test-artifacts")
    path = base / "dashboard"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    path = require_chromium()
    require(importlib.util.find_spec("playwright") is not None, "Python package playwright (the dev extra)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
