"""The agent's tick judges its readings in bulk (`Detector.observe_many`): the same alert events, in the same order,
as judging them one at a time, however the readings fall into ticks."""

from __future__ import annotations

from collections import deque
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings, target
from hypothesis import strategies as st

from edge_agent.config import DetectConfig
from edge_agent.detect.alerts import AlertTracker
from edge_agent.detect.anomaly import AnomalyDetector
from edge_agent.detect.detector import Detector
from edge_agent.detect.rules import PulldownRule
from edge_agent.detect.shadow import ShadowRun
from models.runtime.features import FeatureSpec, windows_at
from protocol.messages import AlertEvent, Reading

T0 = 1_767_225_600_000
MIN = 60_000
SENSORS = ("c2:00:00:00:00:01", "c2:00:00:00:00:02", "c2:00:00:00:00:03")


def settings_for_tests() -> DetectConfig:
    return DetectConfig(range_min_duration_s=3 * 60, clear_after_s=3 * 60, update_every_s=10 * 60,
                        rate_max_c_per_min=2.0, rate_min_duration_s=60, rate_window_s=4 * 60,
                        range_min_duration_by_profile_s={}, pulldown_s=0, silent_after_s=20 * 60)  # range and
    # battery alerts hold as long: one reading can open both (their order is the rules' order)


def one_at_a_time(readings: list[Reading], ticks: list[int]) -> list[AlertEvent]:
    detector = Detector("gw1", settings_for_tests())
    events = []
    for i, reading in enumerate(readings):
        events += detector.observe(reading)
        if i in ticks:
            events += detector.tick()
    return events


def in_ticks(readings: list[Reading], ticks: list[int]) -> list[AlertEvent]:
    detector = Detector("gw1", settings_for_tests())
    events, start = [], 0
    for end in sorted({*ticks, len(readings) - 1}):
        events += detector.observe_many(readings[start:end + 1])
        events += detector.tick() if end in ticks else []
        start = end + 1
    return events


@settings(max_examples=120, deadline=None)
@given(steps=st.lists(st.tuples(st.sampled_from(SENSORS), st.integers(-3, 12),
                                st.none() | st.sampled_from([-25.0, -19.0, 3.0, 4.5, 9.0, 30.0])
                                | st.floats(-30, 40, allow_nan=False),
                                st.none() | st.sampled_from([2000, 3000]) | st.integers(1800, 3200),
                                st.sampled_from(["chilled", "frozen"])),
                      min_size=1, max_size=200),
       cuts=st.lists(st.integers(0, 199), max_size=12))
def test_ticks_raise_what_one_reading_at_a_time_raises(
        steps: list[tuple[str, int, float | None, int | None, str]], cuts: list[int]) -> None:
    readings, ts = [], T0
    for sensor, minutes, temp, battery, profile in steps:
        ts += minutes * MIN // 2  # mostly forward, at times a late frame, a gap or two readings at once
        readings.append(Reading(sensor=sensor, ts=ts, profile=profile, temp_c=temp, battery_mv=battery))
    ticks = [c for c in cuts if c < len(readings)]
    expected = one_at_a_time(readings, ticks)
    assert in_ticks(readings, ticks) == expected
    target(float(len(expected)))  # steer towards runs that raise many events (several rules on one reading)


def test_the_pulldown_rule_in_bulk_gives_the_verdicts_of_one_check_at_a_time() -> None:
    """Hours of a thermostat cycling whose compressor fades: verdicts exist, and every one is the same."""
    rng = np.random.default_rng(7)
    temp, on, readings = -20.0, False, []
    for i in range(10 * 60 * 2):  # 10 h, a reading every 30 s per sensor, two sensors interleaved
        capacity = 1.0 if i < 600 else 0.7
        on = temp > -18.5 or (on and temp > -21.5)
        temp += 0.07 - (0.3 * capacity if on else 0.0) + rng.normal(0, 0.01)
        for k, sensor in enumerate(SENSORS[:2]):
            readings.append(Reading(sensor=sensor, ts=T0 + i * 30_000 + k, profile="frozen",
                                    temp_c=None if i % 97 == 0 else temp + k))
    single, bulk = PulldownRule(below=0.88, min_duration_ms=0, clear_after_ms=0), \
        PulldownRule(below=0.88, min_duration_ms=0, clear_after_ms=0)
    one = [single.check(r, None) for r in readings]
    many = []
    for start in range(0, len(readings), 333):
        many += bulk.check_many([(r, None) for r in readings[start:start + 333]])
    assert many == one
    assert sum(f is not None for f in one) > 100 and any(f is not None and f.active for f in one)
    bulk._steps.write_open_steps()
    single._steps.write_open_steps()
    for name, kept in bulk._steps._arrays.items():  # the same steps kept, whichever way they came
        np.testing.assert_array_equal(kept, single._steps._arrays[name])


def test_a_warehouse_of_pulldown_verdicts_due_in_one_tick_are_those_of_one_check_at_a_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """More tags due in one tick than one pass computes (`PULLDOWN_PASS_ROWS`, made 16 here): every verdict is the
    one a check of that reading alone gives."""
    monkeypatch.setattr("edge_agent.detect.rules.PULLDOWN_PASS_ROWS", 16)
    tags = 16 * 2 + 5
    rng = np.random.default_rng(3)
    temps = rng.uniform(-21.5, -18.5, tags)
    on = np.zeros(tags, dtype=bool)
    capacity = rng.uniform(0.8, 1.2, tags)
    single, bulk = PulldownRule(below=0.88, min_duration_ms=0, clear_after_ms=0), \
        PulldownRule(below=0.88, min_duration_ms=0, clear_after_ms=0)
    one: list[object] = []
    many: list[object] = []
    for minute in range(400):  # a reading a minute from every tag, each minute one tick; the compressor fades
        for _ in range(2):  # the thermostat of the test above, 30 s at a time
            on = (temps > -18.5) | (on & (temps > -21.5))
            temps = temps + 0.07 - np.where(on, 0.3 * capacity * (1.0 if minute < 200 else 0.7), 0.0)
        temps = temps + rng.normal(0, 0.01, tags)
        tick = [(Reading(sensor=f"t{k}", ts=T0 + minute * MIN + k, profile="frozen", temp_c=float(round(t, 3))), None)
                for k, t in enumerate(temps)]
        one += [single.check(r, p) for r, p in tick]
        many += bulk.check_many(tick)
    assert many == one
    assert sum(f is not None for f in one) > 2 * tags


@settings(max_examples=80, deadline=None)
@given(steps=st.lists(st.tuples(st.integers(0, 90_000), st.none() | st.floats(-30, 40, allow_nan=False)),
                      min_size=1, max_size=300),
       window_s=st.integers(1, 600))
def test_the_rate_reference_is_the_oldest_reading_of_the_window_a_deque_kept(
        steps: list[tuple[int, float | None]], window_s: int) -> None:
    detector = Detector("gw1", DetectConfig(rate_window_s=window_s))
    window_ms = window_s * 1000
    kept: deque[Reading] = deque()  # what the detector kept before: the readings themselves
    ts = T0
    for dt, temp in steps:
        ts += dt
        reading = Reading(sensor=SENSORS[0], ts=ts, profile="chilled", temp_c=temp)
        kept.append(reading)
        while ts - kept[0].ts > window_ms:
            kept.popleft()
        want = kept[0] if ts - kept[0].ts >= window_ms // 2 else None
        got = detector._rate_reference(reading)
        assert (got is None) == (want is None)
        if got is not None and want is not None:  # (temperatures kept in float32)
            assert (got.ts, got.temp_c) == (want.ts, None if want.temp_c is None else float(np.float32(want.temp_c)))


@settings(max_examples=25, deadline=None)
@given(tick_sizes=st.lists(st.integers(1, 120), min_size=1, max_size=40), seed=st.integers(0, 1000))
def test_the_models_windows_are_those_of_the_whole_history_however_it_is_trimmed(tick_sizes: list[int],
                                                                                 seed: int) -> None:
    """The agent keeps a sensor's steps in a fixed-size ring (a backlog arriving in one tick still has all its
    windows): every window, ending where the period of the reading that opened it ends, equals `windows_at` on
    every reading up to that one."""
    spec = FeatureSpec(4, 60.0, ("temp_dev", "temp_drift", "temp_drift_z", "missing"), (0.0,) * 4, (1.0,) * 4,
                       baseline_windows=2)
    seen: list[np.ndarray] = []

    def scores(windows: np.ndarray) -> np.ndarray:
        seen.extend(windows)
        return np.zeros(len(windows), dtype=np.float32)

    model = SimpleNamespace(spec=spec, manifest=SimpleNamespace(threshold=1e9, name="m", version="1"), scores=scores)
    detector = AnomalyDetector("gw1", AlertTracker("gw1"), models={"chilled": model})  # type: ignore[dict-item]
    rng = np.random.default_rng(seed)
    ts = T0 + np.cumsum(rng.choice([20_000, 20_000, 20_000, 0, 300_000], size=sum(tick_sizes)))
    temps = np.where(rng.random(len(ts)) < 0.1, np.nan, np.round(3 + np.cumsum(rng.normal(0, 0.1, len(ts))), 3))
    readings = [Reading(sensor=SENSORS[0], ts=int(t), profile="chilled", temp_c=None if v != v else float(v),
                        rh_pct=80.0, battery_mv=3000) for t, v in zip(ts, temps, strict=True)]
    want, start = [], 0
    for size in tick_sizes:
        tick = readings[start:start + size]
        scored, _ = detector.score(tick)
        for k, r in enumerate(scored, start):
            if r.anomaly_score is None:
                continue
            end = ((r.ts - 1) // MIN + 1) * MIN  # the window ends where the reading's period ends ...
            kept = [x for x in readings[:k + 1] if x.temp_c is not None]  # ... from what had come by then
            window, usable = windows_at(spec, [x.ts for x in kept], [float(x.temp_c or 0.0) for x in kept],
                                        np.full(len(kept), 80.0), np.full(len(kept), 3000.0), end_ms=[end])
            assert usable[0]
            want.append(window[0])
        assert len(seen) == len(want)
        start += size
    assert all(ring.slots == spec.reach_ms // MIN and ring.recent == spec.window for ring in detector.rings.values())
    for got, expected in zip(seen, want, strict=True):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


def test_models_of_other_needs_on_one_period_each_keep_their_ring_and_keep_scoring() -> None:
    """Two profiles (and a shadow) whose specs read different steps of the same period: a model arriving mid-run
    starts a ring of its own, leaves the others' history as it was, and every model keeps scoring; a ring no model
    reads any more is dropped."""
    def model(spec: FeatureSpec) -> SimpleNamespace:
        return SimpleNamespace(spec=spec, manifest=SimpleNamespace(threshold=1e9, name="m", version="1"),
                               scores=lambda windows: np.zeros(len(windows), dtype=np.float32))

    short = FeatureSpec(4, 60.0, ("temp_dev", "temp_drift"), (0.0, 0.0), (1.0, 1.0), baseline_windows=3)
    wide = FeatureSpec(8, 60.0, ("temp_dev", "temp_drift_z"), (0.0, 0.0), (1.0, 1.0), baseline_windows=1)
    detector = AnomalyDetector("gw1", AlertTracker("gw1"), models={"chilled": model(short)})  # type: ignore[dict-item]

    def minute(m: int) -> list[Reading]:
        return [Reading(sensor=SENSORS[0], ts=T0 + m * MIN, profile="chilled", temp_c=3.0 + m % 3 * 0.1),
                Reading(sensor=SENSORS[1], ts=T0 + m * MIN + 1, profile="frozen", temp_c=-20.0 + m % 2 * 0.1)]

    scored_at: dict[str, list[int]] = {SENSORS[0]: [], SENSORS[1]: []}
    for m in range(60):
        if m == 20:
            detector.models["frozen"] = model(wide)  # type: ignore[assignment]
        if m == 30:
            detector.shadows["chilled"] = ShadowRun(model(wide), desired_version=2,  # type: ignore[arg-type]
                                                    has_current=True)
        out, _ = detector.score(minute(m))
        for r in out:
            if r.anomaly_score is not None:
                scored_at[r.sensor].append(m)
    assert scored_at[SENSORS[0]] == list(range(3, 60))  # the chilled model never lost its history
    assert scored_at[SENSORS[1]] == list(range(27, 60))  # the frozen model's first window a full window on
    assert len(detector.rings) == 2
    detector.shadows.clear()
    del detector.models["frozen"]
    detector.score(minute(60))
    assert len(detector.rings) == 1
