"""The SKAB bench's tallies: openings at a threshold, and the best threshold chosen in hindsight."""

from __future__ import annotations

import numpy as np

from bench.detect_real import Run, best_in_hindsight, tally_at

START = 1_700_000_000_000
ANOMALY = (START + 600_000, START + 1_020_000)  # minutes 10–17, as most SKAB runs


def _run(name: str, normal: float, anomaly: float, spike: float | None = None) -> tuple[Run, np.ndarray, np.ndarray]:
    """A 20-minute run at 1 s with constant scores, `anomaly` inside the labelled anomaly and, if given, `spike`
    for 10 s at minute 5 (normal operation, after the warm-up)."""
    ts = START + np.arange(0, 1_200_000, 1000, dtype=np.int64)
    scores = np.full(len(ts), normal, dtype=np.float32)
    scores[(ts >= ANOMALY[0]) & (ts <= ANOMALY[1])] = anomaly
    if spike is not None:
        scores[(ts >= START + 300_000) & (ts < START + 310_000)] = spike
    return Run(name, ts, np.zeros(len(ts)), [ANOMALY]), ts, scores


def test_openings_at_a_threshold_count_anomalies_found_and_false_ones() -> None:
    scored = [_run("a", 0.0, 5.0), _run("b", 0.0, 2.0, spike=3.0)]
    shipped = tally_at(scored, 4.0, 1.0)
    assert (shipped.anomalies, shipped.detected, shipped.false_openings) == (2, 1, 0)
    low = tally_at(scored, 1.0, 1.0)
    assert (low.detected, low.false_openings) == (2, 1)


def test_the_best_threshold_in_hindsight_respects_the_false_openings_allowed() -> None:
    scored = [_run("a", 0.0, 5.0), _run("b", 0.0, 2.0, spike=3.0)]
    strict = best_in_hindsight(scored, 1.0, max_false=0)
    assert (strict.detected, strict.false_openings) == (1, 0)  # above the spike: only run a's anomaly
    lenient = best_in_hindsight(scored, 1.0, max_false=1)
    assert (lenient.detected, lenient.false_openings) == (2, 1)


def test_scores_that_never_separate_find_nothing_in_hindsight() -> None:
    scored = [_run("a", 1.0, 1.0, spike=9.0)]  # the only high scores are in normal operation
    best = best_in_hindsight(scored, 1.0, max_false=0)
    assert (best.anomalies, best.detected, best.false_openings) == (1, 0, 0)
