"""The per-sensor step rings the gateway reads its windows from: the windows, baselines and pull-down steps they give
are those `models.runtime.features` and `models.runtime.pulldown` compute from every reading so far, on numpy 2 (this
interpreter) and on the gateway's numpy 1.x (.venv-edge); a row's memory does not grow with its tag's rate or age."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.detect.alerts import AlertTracker
from edge_agent.detect.anomaly import AnomalyDetector
from edge_agent.detect.history import StepRing, slots_for
from models.runtime.features import KNOWN_FEATURES, FeatureSpec
from protocol.messages import Reading
from tests.edge_interpreter import EdgeCheck, edge_check

T0 = 1_767_225_600_000
ATOL = 2e-4  # the ring keeps float32 values and per-step sums: the windows differ from float64 ones in rounding

# Runs in the gateway's interpreter and in this one: one JSON case a line in, one verdict a line out.
_CHECK = r"""
import json, sys
import numpy as np
from edge_agent.detect.history import StepRing, needs_spread, slots_for
from models.runtime.features import FeatureSpec, sample_steps, windows_at

def check(case):
    spec = FeatureSpec.from_dict(case["spec"])
    period = round(spec.sample_period_s * 1000)
    ring = StepRing(period, slots_for(spec), stats=True, recent=spec.window, spread=needs_spread(spec))
    pull = StepRing(period, case["pull_steps"])
    kept = {}  # sensor -> readings added so far (humidity and battery float32 as the ring keeps them)
    worst, compared = 0.0, 0
    for sensor, ts, temp, rh, battery in case["readings"]:
        opened = ring.add(sensor, ts, temp, rh, battery)
        pull_opened = pull.add(sensor, ts, temp)
        assert pull_opened == opened, (pull_opened, opened)
        rows = kept.setdefault(sensor, [])
        if rows and ts < rows[-1][0]:
            assert opened is None
            continue
        rows.append((ts, temp, float(np.float32(np.nan if rh is None else rh)),
                     float(np.float32(np.nan if battery is None else battery))))
        if opened is None:
            continue
        end = (opened + 1) * period  # the window of the step just opened, from what has come
        before = [r for r in rows if r[0] <= end]
        cols = [np.asarray(c, dtype=np.int64 if i == 0 else np.float64) for i, c in enumerate(zip(*before))]
        want, want_ok = windows_at(spec, *cols, end_ms=[end])
        got, got_ok = ring.windows(spec, np.array([ring.row(sensor)]), np.array([opened]))
        if bool(got_ok[0]) != bool(want_ok[0]):
            return {"same": False, "why": "usable", "end": end}
        diff = float(np.max(np.abs(got[0] - want[0])))
        if not np.allclose(got[0], want[0], rtol=0, atol=case["atol"]):
            return {"same": False, "why": "values", "end": end, "max_diff": diff}
        steps = case["pull_steps"]
        offsets = (np.arange(steps, dtype=np.int64) - (steps - 1)) * period
        grid, _ = sample_steps(cols[0], cols[1], end + offsets[None, :], np.array([[end - steps * period]]), period)
        ours = pull.temperatures(np.array([pull.row(sensor)]), np.array([opened]), steps)
        if not np.array_equal(ours, grid, equal_nan=True):
            return {"same": False, "why": "pull-down steps", "end": end}
        worst, compared = max(worst, diff), compared + 1
    return {"same": True, "max_diff": worst, "compared": compared}

for line in sys.stdin:
    case = json.loads(line)
    verdict = check(case)
    verdict["numpy"] = np.__version__
    print(json.dumps(verdict), flush=True)
"""
_NAMESPACE: dict[str, Any] = {}
exec(compile(_CHECK.split("for line in sys.stdin")[0], "<ring check>", "exec"), _NAMESPACE)


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    """A spec and a few sensors' readings in arrival order: gaps shorter and longer than a ring, bursts, repeated
    and late timestamps, missing humidity and battery, levels from -30 to 60 °C."""
    features = draw(st.lists(st.sampled_from(sorted(KNOWN_FEATURES)), min_size=1, max_size=5, unique=True))
    n = len(features)
    spec = FeatureSpec(window=draw(st.integers(2, 8)), sample_period_s=draw(st.sampled_from([1.0, 2.5, 60.0])),
                       features=tuple(features),
                       mean=tuple(draw(st.lists(st.floats(-5, 5), min_size=n, max_size=n))),
                       std=tuple(draw(st.lists(st.floats(0.05, 5), min_size=n, max_size=n))),
                       baseline_windows=draw(st.integers(1, 3)))
    period = round(spec.sample_period_s * 1000)
    readings = []
    clocks = {s: T0 + draw(st.integers(0, 3 * period)) for s in ("a", "b")}
    levels = {s: draw(st.floats(-30, 60) | st.just(3.005)) for s in clocks}
    for _ in range(draw(st.integers(1, 150))):
        sensor = draw(st.sampled_from(sorted(clocks)))
        step = draw(st.sampled_from([0, period // 3, period // 2, period, period + 1, 3 * period])
                    | st.integers(-period, 40 * period))
        clocks[sensor] += step  # mostly forward; at times a late frame or a gap longer than the ring
        temp = round(levels[sensor] + draw(st.floats(-2, 2)), draw(st.sampled_from([2, 3, 4])))  # as tags report
        rh = draw(st.none() | st.floats(0, 100))
        battery = draw(st.none() | st.integers(1600, 3600).map(float))
        readings.append((sensor, clocks[sensor], temp, rh, battery))
    return {"spec": spec.to_dict(), "readings": readings, "pull_steps": draw(st.integers(2, 40)), "atol": ATOL}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_the_rings_windows_are_those_of_every_reading_so_far(case: dict[str, Any]) -> None:
    verdict = _NAMESPACE["check"](case)
    assert verdict["same"], verdict


@pytest.fixture(scope="module")
def edge(edge_python: Path) -> Iterator[EdgeCheck]:
    """The check above, in the gateway's interpreter (numpy 1.x), fed one case at a time."""
    with edge_check(edge_python, _CHECK) as check:
        yield check


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(case=cases())
def test_the_same_holds_on_the_gateways_numpy(edge: EdgeCheck, case: dict[str, Any]) -> None:
    verdict = edge.verdict(case)
    assert verdict["same"], verdict


def test_a_1_hz_tag_takes_the_memory_of_a_60_s_tag_and_keeps_it() -> None:
    """Memory per sensor is the ring's, fixed when the sensor is first heard: a tag at 1 Hz for a day costs what a
    tag at one reading a minute costs, and a day costs what the first hour did."""
    spec = FeatureSpec(30, 60.0, ("temp_dev", "temp_drift"), (0.0, 0.0), (1.0, 1.0))

    def traced(interval_ms: int, hours: float) -> int:
        ring = StepRing(60_000, slots_for(spec), stats=True, recent=spec.window)
        tracemalloc.start()
        for k in range(int(hours * 3_600_000 / interval_ms)):
            ts = T0 + k * interval_ms
            for sensor in ("a", "b", "c", "d"):
                ring.add(sensor, ts, 3.0 + (k % 7) * 0.1, 80.0, 3000.0)
        size, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return size

    fast_hour, slow_hour, fast_day = traced(1000, 1.0), traced(60_000, 1.0), traced(1000, 24.0)
    assert abs(fast_day - fast_hour) < 1024 and abs(fast_hour - slow_hour) < 1024
    ring = StepRing(60_000, slots_for(spec), stats=True, recent=spec.window, spread=False)
    assert slots_for(spec) == 270 and ring.bytes_per_row() == 270 * 10 + 30 * 12  # 3 KB a sensor, at any rate


def test_a_warehouses_tags_come_and_go_and_the_rings_follow_the_tags_heard_lately() -> None:
    """Rows of tags silent for longer than the ring spans go to new tags: a gateway that has heard thousands of
    tags over months keeps rows for those heard lately, and a returning tag starts afresh."""
    ring = StepRing(60_000, 10, stats=True, recent=4)
    for k in range(16):
        ring.add(f"old-{k}", T0 + k, 3.0)
    capacity = ring._arrays["temp"].shape[0]
    later = T0 + 11 * 60_000  # the old tags are silent for longer than the ring's 10 steps
    ring.recycle(later)
    for k in range(16):
        ring.add(f"new-{k}", later + k, 5.0)
    assert ring._arrays["temp"].shape[0] == capacity and len(ring) == 16
    assert ring.add("old-3", later + 60_000, 4.0) is not None  # heard again: a row of its own, its steps empty
    got = ring.temperatures(np.array([ring.row("old-3")]), np.array([ring.slot_of(later + 60_000)]), 4)
    assert np.isnan(got[0, :-1]).all() and got[0, -1] == 4.0
    assert ring.add("new-0", later + 60_001, float("nan")) is None  # no temperature: nothing kept


def test_a_frame_from_the_future_does_not_take_the_rows_of_the_tags_heard_now() -> None:
    """The detector recycles rows once per tick at the earlier of the tick's newest reading and the clock, so a
    frame stamped years ahead by a broken scanner leaves every other tag's history as it was."""
    spec = FeatureSpec(4, 60.0, ("temp_dev",), (0.0,), (1.0,))
    model = SimpleNamespace(spec=spec, manifest=SimpleNamespace(threshold=1e9, name="m", version="1"),
                            scores=lambda windows: np.zeros(len(windows), dtype=np.float32))
    detector = AnomalyDetector("gw1", AlertTracker("gw1"), models={"chilled": model})  # type: ignore[dict-item]
    now = int(time.time() * 1000)
    tick = [Reading(sensor=f"c2:00:00:00:00:{k:02x}", ts=now - 60_000 * (5 - m), profile="chilled", temp_c=3.0)
            for m in range(5) for k in range(16)]
    detector.score(tick)
    detector.score([Reading(sensor="c2:00:00:00:01:00", ts=now + 50 * 365 * 86_400_000, profile="chilled",
                            temp_c=3.0)])
    ring = next(iter(detector.rings.values()))
    assert all(ring.row(f"c2:00:00:00:00:{k:02x}") >= 0 for k in range(16)) and len(ring) == 17
