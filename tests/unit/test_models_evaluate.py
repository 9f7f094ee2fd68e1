"""models.training.evaluate: baselines, event matching and the quality gate (no training needed)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.runtime.episodes import Episode
from models.training.data import Series
from models.training.evaluate import RollingZScore, SilenceRule, StaticRule, Tally, _match, quality_gate

MIN = 60_000


@dataclass
class Label:
    sensor: str
    kind: str
    start_ms: int
    end_ms: int
    benign: bool


def series(temp: np.ndarray) -> Series:
    n = len(temp)
    return Series("s", "chilled", np.arange(n, dtype=np.int64) * MIN, temp.astype(float), np.full(n, 80.0),
                  np.full(n, 3000.0))


def test_static_rule_needs_the_hold_time() -> None:
    temp = np.full(200, 2.0)
    temp[50:70] = 6.0  # 20 min out of band: no alert at 30 min
    temp[100:150] = 6.0  # 50 min: one alert, raised 30 min in
    (alert,) = StaticRule(0.0, 4.0, minutes=30).alerts(series(temp))
    assert alert.since_ms == 100 * MIN and alert.opened_ms == 130 * MIN


def test_rolling_z_flags_a_jump_not_a_steady_level() -> None:
    temp = 2.0 + np.random.default_rng(0).normal(0, 0.05, 300)
    assert RollingZScore().alerts(series(temp)) == []
    temp[200:] += 5.0
    assert len(RollingZScore().alerts(series(temp))) == 1


def test_matching_counts_recall_delay_and_false_alerts_on_benign() -> None:
    labels = [Label("s", "door_left_open", 100 * MIN, 160 * MIN, False), Label("s", "defrost", 400 * MIN,
                                                                              430 * MIN, True)]
    alerts = [Episode(105 * MIN, 110 * MIN, 170 * MIN), Episode(405 * MIN, 410 * MIN, 420 * MIN),
              Episode(900 * MIN, 901 * MIN, 905 * MIN)]
    tally = Tally()
    _match(tally, alerts, labels, days=1.0)
    summary = tally.summary()
    assert summary["kinds"]["door_left_open"] == {"incidents": 1, "detected": 1, "recall": 1.0,
                                                  "median_delay_min": 10.0}
    assert summary["false_alerts"] == 2 and summary["false_alerts_on_benign"] == {"defrost": 1}
    assert summary["false_alerts_per_sensor_day"] == 2.0


def test_pooled_tallies_add_counts_and_keep_every_delay() -> None:
    labels = [Label("s", "door_left_open", 100 * MIN, 160 * MIN, False), Label("s", "defrost", 400 * MIN,
                                                                              430 * MIN, True)]
    found, missed = Tally(), Tally()
    _match(found, [Episode(130 * MIN, 130 * MIN, 170 * MIN), Episode(405 * MIN, 410 * MIN, 420 * MIN)], labels,
           days=1.0)
    _match(missed, [], labels, days=2.0)
    pooled = Tally.pooled([found, missed]).summary()
    assert pooled["kinds"]["door_left_open"] == {"incidents": 2, "detected": 1, "recall": 0.5,
                                                 "median_delay_min": 30.0}
    assert pooled["false_alerts"] == 1 and pooled["false_alerts_on_benign"] == {"defrost": 1}
    assert pooled["sensor_days"] == 3.0
    assert found.summary()["kinds"]["door_left_open"]["incidents"] == 1  # the parts are not changed


def test_quality_gate() -> None:
    current = {"recall": 0.9, "false_alerts_per_sensor_day": 0.05, "median_delay_min": 20.0}
    assert quality_gate(dict(current), current).passed
    worse = {"recall": 0.8, "false_alerts_per_sensor_day": 0.2, "median_delay_min": 40.0}
    decision = quality_gate(worse, current)
    assert not decision.passed and len(decision.reasons) == 3
    assert not quality_gate(current, None).passed  # first model: must meet the absolute targets
    assert quality_gate({"recall": 0.96, "false_alerts_per_sensor_day": 0.05, "median_delay_min": 5.0}, None).passed


def test_silence_rule_opens_after_the_gap_and_the_gateway_adds_it_to_the_model() -> None:
    from models.training.evaluate import Gateway, SilenceRule

    ts = np.concatenate([np.arange(100), np.arange(160, 300)]).astype(np.int64) * MIN  # an hour without frames
    quiet = Series("s", "frozen", ts, np.full(len(ts), -21.0), np.full(len(ts), 60.0), np.full(len(ts), 3000.0))
    (alert,) = SilenceRule(after_s=900).alerts(quiet)
    assert (alert.since_ms, alert.opened_ms, alert.end_ms) == (99 * MIN, 114 * MIN, 160 * MIN)
    assert SilenceRule(after_s=900).alerts(series(np.full(50, 2.0))) == []  # one reading a minute: never silent

    hot = StaticRule(0.0, 4.0, minutes=30)
    temp = np.full(len(ts), 2.0)
    temp[200:260] = 6.0
    both = Gateway([hot, SilenceRule(after_s=900)]).alerts(
        Series("s", "chilled", ts, temp, np.full(len(ts), 60.0), np.full(len(ts), 3000.0)))
    assert [a.opened_ms for a in both] == [114 * MIN, sorted(a.opened_ms for a in hot.alerts(
        Series("s", "chilled", ts, temp, np.full(len(ts), 60.0), np.full(len(ts), 3000.0))))[0]]


def test_the_replayed_rules_use_the_gateways_own_defaults() -> None:
    from edge_agent.config import DetectConfig
    from edge_agent.detect.rules import RangeRule

    gateway = DetectConfig()
    assert SilenceRule().after_s == gateway.silent_after_s
    assert StaticRule(0.0, 4.0).clear_minutes * 60 == gateway.clear_after_s
    assert StaticRule(0.0, 4.0).margin_c == RangeRule(min_duration_ms=0, clear_after_ms=0).clear_margin_c
