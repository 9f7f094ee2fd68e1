"""models.runtime.episodes: the harness opens and clears alerts as the agent's tracker does; threshold calibration."""

from __future__ import annotations

import numpy as np
import pytest

from models.runtime.episodes import Episode, calibrate_threshold, count_episodes, episodes

MIN = 60_000


def run(active: list[int], hold: list[int] | None = None, min_periods: int = 2, clear_periods: int = 3
        ) -> list[Episode]:
    ts = np.arange(len(active), dtype=np.int64) * MIN
    return episodes(np.array(active, dtype=bool), ts, min_duration_ms=min_periods * MIN,
                    clear_after_ms=clear_periods * MIN, hold=None if hold is None else np.array(hold, dtype=bool))


def test_blips_shorter_than_min_duration_never_open() -> None:
    assert run([0, 1, 1, 0, 1, 0, 0]) == []


def test_opens_after_min_duration_and_clears_after_quiet() -> None:
    assert run([0, 1, 1, 1, 1, 0, 0, 0, 0]) == [Episode(1 * MIN, 3 * MIN, 8 * MIN)]


def test_short_quiet_gap_keeps_one_alert_and_open_alert_ends_with_data() -> None:
    assert run([1, 1, 1, 0, 1, 1, 1, 1]) == [Episode(0, 2 * MIN, 7 * MIN)]


def test_hold_keeps_an_open_alert_but_opens_nothing() -> None:
    assert run([1, 1, 1, 0, 0, 0, 0, 0], hold=[0, 0, 0, 1, 1, 1, 0, 0]) == [Episode(0, 2 * MIN, 7 * MIN)]
    assert run([0, 0, 0], hold=[1, 1, 1]) == []


def test_calibrated_threshold_meets_the_alert_budget() -> None:
    rng = np.random.default_rng(0)
    scores = [rng.gamma(1.0, 1.0, 1440).astype(np.float32) for _ in range(10)]
    ends = [np.arange(1440, dtype=np.int64) * MIN for _ in range(10)]
    threshold = calibrate_threshold(scores, ends, sensor_days=10.0, max_alerts_per_sensor_day=0.1,
                                    sample_period_s=60.0, margin=1.0)
    assert count_episodes(scores, ends, threshold, sample_period_s=60.0) <= 1
    assert count_episodes(scores, ends, threshold * 0.7, sample_period_s=60.0) > 1


def test_short_normal_data_extrapolates_the_tail_beyond_every_alert_seen() -> None:
    from models.runtime.episodes import NotEnoughNormalData

    rng = np.random.default_rng(3)
    ends = [np.arange(1800, dtype=np.int64) * 1000]  # half an hour at 1 s: the budget allows 0.002 alerts
    scores = [rng.gumbel(0.0, 1.0, 1800).astype(np.float32)]
    threshold = calibrate_threshold(scores, ends, sensor_days=1800 / 86400, max_alerts_per_sensor_day=0.1,
                                    sample_period_s=1.0)
    assert threshold > float(np.quantile(scores[0], 0.995))
    assert count_episodes(scores, ends, threshold, sample_period_s=1.0) == 0
    with pytest.raises(NotEnoughNormalData, match=r"not enough normal data: 0\.0 h \(50 windows\), need 240 h"):
        calibrate_threshold([scores[0][:50]], [ends[0][:50]], sensor_days=50 / 86400,
                            max_alerts_per_sensor_day=0.1, sample_period_s=1.0)


def test_threshold_is_the_lowest_that_meets_the_budget_when_alerts_come_from_a_few_rare_spikes() -> None:
    # 100 sensor-days of quiet scores with 20 spikes of heights 1..20 (five windows each): a budget of 0.1 per
    # sensor-day allows 10 of them, so the threshold sits between the 10th and 11th highest spike, not at the top
    rng = np.random.default_rng(5)
    scores, ends = [], []
    for sensor in range(100):
        s = rng.normal(-5.0, 0.3, 1440).astype(np.float32)
        if sensor < 20:
            s[700:705] = float(sensor + 1)
        scores.append(s)
        ends.append(np.arange(1440, dtype=np.int64) * MIN)
    threshold = calibrate_threshold(scores, ends, sensor_days=100.0, max_alerts_per_sensor_day=0.1,
                                    sample_period_s=60.0, margin=1.0)
    assert 10.0 <= threshold < 11.0
    assert count_episodes(scores, ends, threshold, sample_period_s=60.0) == 10
