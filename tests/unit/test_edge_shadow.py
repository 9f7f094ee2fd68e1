"""The gateway's shadow: the candidate and the current model scored over the same windows, their alert episodes
counted through the agent's own lifecycle (models.runtime.episodes), the sensor-hours of evidence, and how a desired
state ends the probation (the cloud decides; the gateway never promotes by itself)."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.desired import DesiredHandler
from edge_agent.detect.alerts import AlertTracker
from edge_agent.detect.anomaly import AnomalyDetector
from edge_agent.detect.model import ActiveModel
from edge_agent.detect.shadow import MAX_KEPT_VERDICTS, EpisodeCounter, ShadowRun
from edge_agent.metrics import AgentMetrics
from edge_agent.model_lifecycle import ModelLifecycle
from models.runtime.episodes import episodes
from models.runtime.features import FeatureSpec
from models.runtime.manifest import Manifest
from protocol.codec import decode, encode
from protocol.messages import Desired, DesiredModel, Reading, Reported

T0 = 1_767_225_600_000
MIN = 60_000
SPEC = FeatureSpec(window=3, sample_period_s=60.0, features=("temp_c",), mean=(0.0,), std=(1.0,))


class NewestTemp:
    """A stand-in interpreter: the score of a window is its newest temperature."""

    features = SPEC.input_size

    def run(self, windows: np.ndarray) -> np.ndarray:
        return windows[:, -1:]

    def latency_ms(self, _quantile: float) -> float | None:
        return None


def model(version: str, threshold: float) -> ActiveModel:
    manifest = Manifest(name="cw_chilled", version=version, profile="chilled", feature_spec=SPEC.to_dict(),
                        threshold=threshold, training_range={}, metrics={}, sha256="0" * 64, created_at="2026")
    return ActiveModel(manifest, SPEC, NewestTemp())  # type: ignore[arg-type]


def readings(temps: list[float], sensor: str = "c2:00:00:00:00:01", start: int = 0) -> list[Reading]:
    return [Reading(sensor=sensor, ts=T0 + (start + i) * MIN, profile="chilled", temp_c=t) for i, t in enumerate(temps)]


def ticks(detector: AnomalyDetector, temps: list[float]) -> tuple[list[Reading], list[Any]]:
    """One reading a tick, as a tag heard once a minute arrives."""
    scored, events = [], []
    for r in readings(temps):
        out, raised = detector.score([r])
        scored += out
        events += raised
    return scored, events


@settings(max_examples=400, deadline=None)
@given(verdicts=st.lists(st.tuples(st.booleans(), st.integers(1, 400)), max_size=120),
       min_periods=st.integers(0, 4), clear_periods=st.integers(0, 5))
def test_counting_as_verdicts_arrive_is_the_lifecycle_replayed_at_once(
        verdicts: list[tuple[bool, int]], min_periods: int, clear_periods: int) -> None:
    """However the verdicts are spaced, the streaming count is models.runtime.episodes over the whole stream, and what a
    settled stretch needed is dropped."""
    counter = EpisodeCounter(min_periods * MIN, clear_periods * MIN)
    ts, above, t = [], [], T0
    for hot, gap_s in verdicts:
        t += gap_s * 1000
        counter.add(t, hot)
        ts.append(t)
        above.append(hot)
        whole = episodes(np.array(above, dtype=bool), np.array(ts, dtype=np.int64),
                         min_duration_ms=min_periods * MIN, clear_after_ms=clear_periods * MIN)
        assert counter.count == len(whole)
    hot = [i for i, a in enumerate(above) if a]
    quiet_from = hot[-1] + 1 if hot else 0
    if quiet_from < len(ts) and ts[-1] - ts[quiet_from] >= clear_periods * MIN:
        assert counter.ts == []  # settled: nothing pending, nothing open, no verdict kept


def test_what_is_kept_stays_small_even_for_a_model_that_never_stops_alerting() -> None:
    always = EpisodeCounter(2 * MIN, 3 * MIN)
    for i in range(30 * 1440):  # a month above the threshold: one alert, two verdicts kept
        always.add(T0 + i * MIN, True)
    assert always.count == 1 and len(always.ts) == 2
    flapping = EpisodeCounter(0, 3 * MIN)  # opens at once, never quiet long enough to clear
    for i in range(10_000):
        flapping.add(T0 + i * MIN, i % 2 == 0)
    assert len(flapping.ts) <= MAX_KEPT_VERDICTS
    assert 1 <= flapping.count <= 1 + 10_000 // MAX_KEPT_VERDICTS  # one alert, counted again at each cut


def test_a_flickering_candidate_raises_more_alerts_over_fewer_windows() -> None:
    """The case the window count got wrong: three short alerts (9 windows above) against one long one (20)."""
    candidate, current = model("2", 4.0), model("1", 4.0)
    run = ShadowRun(candidate, desired_version=2, has_current=True)
    hot_cand = {3, 4, 5, 10, 11, 12, 17, 18, 19}  # each just long enough to open (2 periods)
    for i in range(40):
        cand_score = 5.0 if i in hot_cand else 3.0
        cur_score = 5.0 if 20 <= i < 40 else 3.0
        run.observe("c2:00:00:00:00:01", T0 + i * MIN, cand_score, current, cur_score)
    report = run.report("running")
    assert (report.shadow_alerts, report.active_alerts) == (9, 20)  # windows: the candidate looks better
    assert (report.shadow_episodes, report.active_episodes) == (3, 1)  # alerts: it is worse
    assert report.sensor_hours == round(40 / 60, 4) and report.windows == 40 and report.last_at == T0 + 39 * MIN


def test_the_detector_feeds_the_shadow_the_windows_both_models_scored() -> None:
    tracker = AlertTracker("gw1")
    detector = AnomalyDetector("gw1", tracker, models={"chilled": model("1", 6.0)})
    run = ShadowRun(model("2", 4.0), desired_version=7, has_current=True)
    detector.shadows["chilled"] = run
    temps = [3.0] * 10 + [5.0] * 5 + [3.0] * 10 + [7.0] * 4 + [3.0] * 10
    scored, events = ticks(detector, temps)
    report = run.report("running")
    assert report.windows == sum(r.anomaly_score is not None for r in scored) >= 35
    assert report.shadow_episodes == 2 and report.active_episodes == 1  # 5 °C: only the candidate; 7 °C: both
    assert [e.state for e in events if e.kind == "anomaly"] == ["open", "clear"]  # only the active model raises
    assert report.sensor_hours == round(report.windows / 60, 4)


def test_the_first_window_ends_a_full_window_after_the_history_begins() -> None:
    """As training builds its windows: none ends before the sensor's first reading plus (window − 1) periods, so
    a start (a new tag, a restarted agent, a model arriving) never feeds a model a back-filled window."""
    detector = AnomalyDetector("gw1", AlertTracker("gw1"), models={"chilled": model("1", 6.0)})
    scored, _ = ticks(detector, [3.0] * 6)
    assert [r.ts for r in scored if r.anomaly_score is not None] == [T0 + i * MIN for i in range(2, 6)]
    later = readings([3.0] * 4, sensor="c2:00:00:00:00:02", start=10)  # a tag heard for the first time later
    out, _ = detector.score(later[:2])
    assert all(r.anomaly_score is None for r in out)
    out, _ = detector.score(later[2:])
    assert [r.anomaly_score is not None for r in out] == [True, True]


def test_a_first_model_is_counted_alone() -> None:
    detector = AnomalyDetector("gw1", AlertTracker("gw1"))
    run = ShadowRun(model("1", 4.0), desired_version=1, has_current=False)
    detector.shadows["chilled"] = run
    scored, events = ticks(detector, [3.0] * 10 + [5.0] * 5 + [3.0] * 10)
    report = run.report("running")
    assert events == [] and all(r.anomaly_score is None for r in scored)  # in shadow it raises and attaches nothing
    assert report.shadow_episodes == 1 and report.active_episodes is None and report.windows >= 20


class Lifecycle:
    """The agent's model lifecycle and desired handler, wired as in Agent, with a stand-in installer."""

    def __init__(self, tmp_path: Path) -> None:
        self.reports: list[Reported] = []
        self.anomaly = AnomalyDetector("gw1", AlertTracker("gw1"), models={"chilled": model("1", 6.0)})
        config: Any = SimpleNamespace(gateway_id="gw1", status_interval_s=0.0)
        self.life = ModelLifecycle(config, self.anomaly, threading.Lock(), report=self.reports.append,
                                   desired_version=lambda: 0)
        self.handler = DesiredHandler("gw1", tmp_path / "state.json", AgentMetrics(), report=self.reports.append,
                                      installer=self, on_no_model=self.life.withdraw_shadows,
                                      ended_shadow=self.life.take_ended_shadow,
                                      current_model=lambda: self.life.model_version)
        self.models = {"1": model("1", 6.0), "2": model("2", 4.0)}

    def install(self, desired: DesiredModel, desired_version: int) -> tuple[Any, str | None, str | None]:
        candidate = self.models[desired.version]
        if desired.mode == "shadow":
            self.life.start_shadow(desired, candidate, desired_version)
            return "shadow", "1", None
        self.life.activate(desired.profile, candidate)
        return "applied", desired.version, None

    def send(self, version: int, model_version: str | None, mode: str = "active") -> Reported:
        desired = Desired(version=version, issued_at=T0, model=None if model_version is None else DesiredModel(
            name="cw_chilled", version=model_version, profile="chilled", url="https://x/cw_chilled.tflite",
            sha256="0" * 64, signature="c2ln", mode=mode))  # type: ignore[arg-type]
        handled = self.handler.handle(encode(desired))
        assert handled is not None
        return decode(encode(handled), Reported)  # as the cloud receives it


def test_the_shadow_runs_until_the_cloud_sends_the_candidate_active(tmp_path: Path) -> None:
    fleet = Lifecycle(tmp_path)
    assert fleet.send(2, "2", mode="shadow").result == "shadow"
    ticks(fleet.anomaly, [3.0] * 10 + [5.0] * 5 + [3.0] * 10)
    fleet.life.check_shadows()  # a running report every status interval; no verdict of its own
    running = fleet.reports[-1]
    assert running.result == "shadow" and running.shadow is not None and running.shadow.state == "running"
    assert running.shadow.shadow_episodes == 1 and running.shadow.active_episodes == 0
    assert "chilled" in fleet.anomaly.shadows  # hours of readings later it still waits for the cloud
    promoted = fleet.send(3, "2")
    assert promoted.result == "applied" and promoted.model_version == "2" and promoted.desired_version == 3
    assert promoted.shadow is not None and promoted.shadow.state == "promoted"
    assert promoted.shadow.shadow_episodes == 1 and promoted.shadow.sensor_hours > 0
    assert fleet.anomaly.shadows == {} and fleet.anomaly.models["chilled"].manifest.version == "2"
    assert fleet.send(4, "1").shadow is None  # the outcome is reported once


def test_a_desired_state_naming_no_model_withdraws_the_shadow(tmp_path: Path) -> None:
    fleet = Lifecycle(tmp_path)
    fleet.life.model_version = "1"
    fleet.send(2, "2", mode="shadow")
    ticks(fleet.anomaly, [3.0] * 10)
    withdrawn = fleet.send(3, None)
    assert withdrawn.result == "applied" and withdrawn.model_version == "1"
    assert withdrawn.shadow is not None and withdrawn.shadow.state == "discarded"
    assert "withdrawn" in withdrawn.shadow.reason
    assert fleet.anomaly.shadows == {} and fleet.anomaly.models["chilled"].manifest.version == "1"


def test_another_model_activated_discards_the_shadow(tmp_path: Path) -> None:
    fleet = Lifecycle(tmp_path)
    fleet.send(2, "2", mode="shadow")
    back = fleet.send(3, "1")
    assert back.shadow is not None and back.shadow.state == "discarded" and "cw_chilled-1" in back.shadow.reason
    assert fleet.anomaly.models["chilled"].manifest.version == "1"


def test_a_restarted_agent_starts_the_probation_again_from_the_retained_desired_state(tmp_path: Path) -> None:
    fleet = Lifecycle(tmp_path)
    fleet.send(2, "2", mode="shadow")
    assert fleet.handler.handle(encode(Desired(version=2, issued_at=T0))) is None  # a reconnect: not again
    restarted = Lifecycle(tmp_path)  # the shadow's counts were in memory
    assert restarted.anomaly.shadows == {}
    again = restarted.send(2, "2", mode="shadow")  # the broker hands the retained state to the new process
    assert again.result == "shadow" and "chilled" in restarted.anomaly.shadows
    restarted.send(3, "1")
    assert Lifecycle(tmp_path).handler.state.version == 3  # a model activated is recorded as applied
