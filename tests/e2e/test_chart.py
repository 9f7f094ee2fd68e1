"""The chart code alone in headless Chromium, on made-up data: a hole in the data is drawn as a hole (the line
breaks, a completeness gap is hatched), the band is shaded, and an empty range says so instead of drawing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import artifacts_dir

pytestmark = pytest.mark.e2e
STATIC = Path(__file__).resolve().parents[2] / "cloud" / "ui" / "static"
T0 = 1_700_000_000_000
MIN = 60_000


def series(with_hole: bool) -> dict[str, Any]:
    buckets = []
    for i in range(240):
        if with_hole and 100 <= i < 140:
            continue  # 40 minutes with no reading at all
        temp = 2.0 + (6.0 if 180 <= i < 200 else 0.0) + (i % 20) / 20
        buckets.append({"ts": T0 + i * MIN, "n": 1, "temp_c": temp, "temp_min": temp - 0.1, "temp_max": temp + 0.1,
                        "rh_pct": 80.0 + i % 7, "battery_mv": 2950.0, "anomaly_score": 0.1 + (0.8 if i >= 180 else 0)})
    gaps = [{"id": 1, "kind": "sensor", "gateway_id": "gw", "sensor_id": "aa:bb:cc:dd:ee:ff", "first_seq": 100,
             "last_seq": 139, "missing": 40, "after_ts": T0 + 99 * MIN, "before_ts": T0 + 140 * MIN,
             "detected_at": T0}] if with_hole else []
    return {"sensor": "aa:bb:cc:dd:ee:ff", "start": T0, "end": T0 + 240 * MIN, "bucket_ms": 10_000,
            "profile": "chilled", "band_low_c": 0.0, "band_high_c": 4.0, "buckets": buckets, "gaps": gaps}


@pytest.fixture(scope="module")
def page(browser: Any) -> Iterator[Any]:
    p = browser.new_page(viewport={"width": 1000, "height": 700})
    p.set_content('<div id="chart" style="width: 960px"></div>')
    p.add_style_tag(content=(STATIC / "app.css").read_text())
    p.add_script_tag(content=(STATIC / "chart.js").read_text())
    yield p
    p.close()


def draw(page: Any, data: dict[str, Any], name: str) -> dict[str, str]:
    page.evaluate("""(data) => {
        const el = document.getElementById('chart');
        el.replaceChildren();
        const marks = [{ start: data.start + 180 * 60000, end: data.start + 200 * 60000 }];
        window.chart = new ColdChart(el, { load: async () => data, threshold: 0.5, marks });
        return window.chart.load(data.start, data.end);
    }""", json.loads(json.dumps(data)))
    page.wait_for_selector('#chart canvas[data-state]:not([data-state="loading"])')
    page.screenshot(path=str(artifacts_dir() / f"chart-{name}.png"))
    return dict(page.eval_on_selector("#chart canvas", "c => ({...c.dataset})"))


def test_a_hole_in_the_data_is_drawn_as_a_hole(page: Any) -> None:
    whole = draw(page, series(with_hole=False), "whole")
    assert whole["state"] == "ready" and whole["segments"] == "1" and whole["gaps"] == "0"
    holed = draw(page, series(with_hole=True), "gap")
    assert holed["state"] == "ready"
    assert holed["segments"] == "2", "the line was joined across the missing 40 minutes"
    assert holed["gaps"] == "1"
    assert int(holed["points"]) == 200


def test_an_empty_range_says_so(page: Any) -> None:
    empty = series(with_hole=False) | {"buckets": []}
    assert draw(page, empty, "empty")["state"] == "empty"
    assert "No readings" in page.inner_text("#chart")
