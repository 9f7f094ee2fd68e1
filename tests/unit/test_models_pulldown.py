"""The pull-down ratio and the `cooling_fading` rule: a compressor losing capacity is seen against the same
sensor's own past, on the gateway exactly as in the evaluation replay."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.config import DetectConfig
from edge_agent.detect.detector import Detector
from edge_agent.detect.rules import PulldownRule as GatewayPulldownRule
from models.runtime.pulldown import FADING_BELOW, HISTORY_MS, pulldown_ratio
from models.training.evaluate import PulldownRule
from protocol.messages import Reading

MIN = 60_000
T0 = 1_767_225_600_000


def thermostat(hours: float, capacity: list[float] | None = None, *, gain: float = 0.15, cooling: float = 0.6,
               defrost_at_h: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Minute readings of a space held between −21.5 and −18.5 °C: it warms by `gain` °C/min and the compressor
    takes `cooling` × capacity off while it runs (capacity per minute, default 1). A defrost heats 0.5 °C/min
    for 15 min with the compressor off; the pull-down after it runs at 60 % above the band (warm coil)."""
    n = int(hours * 60)
    cap = np.ones(n) if capacity is None else np.asarray(capacity)
    defrost = range(-1) if defrost_at_h is None else range(int(defrost_at_h * 60), int(defrost_at_h * 60) + 15)
    temp, on, out = -20.0, False, []
    for i in range(n):
        on = i not in defrost and (temp > -18.5 or (on and temp > -21.5))
        pace = 0.6 if temp > -18.0 else 1.0
        temp += gain + (0.5 if i in defrost else 0.0) - (cooling * cap[i] * pace if on else 0.0)
        out.append(temp)
    return T0 + np.arange(n, dtype=np.int64) * MIN, np.array(out)


def test_a_steady_unit_pulls_down_as_fast_as_before() -> None:
    ts, temp = thermostat(8)
    ratio = pulldown_ratio(ts, temp, ts[-60:])
    assert np.all(np.abs(ratio - 1.0) < 0.02)


def test_slower_pull_downs_lower_the_ratio_below_the_rule() -> None:
    cap = np.concatenate([np.ones(6 * 60), np.full(2 * 60, 0.7)])
    ts, temp = thermostat(8, list(cap))
    ratio = float(pulldown_ratio(ts, temp, [ts[-1]])[0])
    assert ratio < FADING_BELOW
    assert abs(ratio - (0.6 * 0.7 - 0.15) / (0.6 - 0.15)) < 0.05  # the net pull-down rate, now against before


def test_the_median_of_falls_is_numpys() -> None:
    from models.runtime.pulldown import FALL_C_PER_MIN, MIN_FALLS, _median_fall

    rng = np.random.default_rng(0)
    for width in range(1, 40):
        rates = rng.normal(-0.1, 0.2, (16, width))
        falls = np.where(rates < -FALL_C_PER_MIN, rates, np.nan)
        enough = np.sum(~np.isnan(falls), axis=1) >= MIN_FALLS
        expected = np.full(len(rates), np.nan)
        expected[enough] = np.nanmedian(falls[enough], axis=1)
        assert np.allclose(_median_fall(rates), expected, equal_nan=True, rtol=0, atol=1e-15)


def test_a_slow_recovery_from_a_defrost_is_not_a_fading_compressor() -> None:
    ts, temp = thermostat(8, defrost_at_h=7.0)
    assert temp.max() > -12  # the defrost went well above the band, and came back slowly
    assert np.all(pulldown_ratio(ts, temp, ts[-50:]) > 0.95)  # only falls at the usual level count


def test_no_verdict_until_the_history_reaches_back_far_enough() -> None:
    ts, temp = thermostat(8)
    ratio = pulldown_ratio(ts, temp, ts)
    assert np.all(np.isnan(ratio[ts - ts[0] < HISTORY_MS - 10 * MIN]))
    assert not np.any(np.isnan(ratio[ts - ts[0] >= HISTORY_MS]))


def test_no_pull_downs_give_no_verdict() -> None:
    ts = T0 + np.arange(6 * 60, dtype=np.int64) * MIN
    assert np.isnan(pulldown_ratio(ts, -20 + 0.05 * np.arange(len(ts)), [ts[-1]])[0])  # a dead compressor


def test_the_ratio_is_causal_and_needs_only_history_ms() -> None:
    cap = np.linspace(1.0, 0.5, 10 * 60)
    ts, temp = thermostat(10, list(cap))
    end = int(ts[8 * 60])
    whole = pulldown_ratio(ts, temp, [end])[0]
    keep = (ts <= end) & (ts > end - HISTORY_MS)
    assert whole == pulldown_ratio(ts[keep], temp[keep], [end])[0]


def _leak() -> tuple[object, object]:
    from firmware_sim.scenarios import generate
    from models.training.data import series_of

    data = generate("refrigerant_leak", 5100, days=1.0)
    label = next(lab for lab in data.labels if not lab.benign)
    series = next(s for s in series_of(data) if s.sensor == label.sensor)
    return label, series


def test_the_replay_catches_a_simulated_leak_hours_after_it_starts_and_not_before() -> None:
    label, series = _leak()
    alerts = PulldownRule().alerts(series)  # type: ignore[arg-type]
    assert alerts, "the leak was not seen"
    assert all(a.opened_ms > label.start_ms for a in alerts)  # type: ignore[attr-defined]


def test_the_gateway_rule_judges_like_the_replay_and_opens_during_the_leak() -> None:
    label, series = _leak()
    ok = ~np.isnan(series.temp_c)  # type: ignore[attr-defined]
    ts_all, temp_all = series.ts_ms[ok], series.temp_c[ok]  # type: ignore[attr-defined]
    detector = Detector("gw1", DetectConfig())
    rule = GatewayPulldownRule(below=FADING_BELOW, min_duration_ms=3_600_000, clear_after_ms=300_000)
    opened, judged = [], []
    for k, (ts, temp) in enumerate(zip(ts_all, temp_all, strict=True)):
        reading = Reading(sensor="c2:00:00:00:00:00", ts=int(ts), profile="frozen", temp_c=float(temp))
        finding = rule.check(reading, None)  # a second one alone, to see its verdicts ...
        if finding is not None:  # for the span ending where the reading's minute ends, from what has come
            judged.append((((reading.ts - 1) // MIN + 1) * MIN, k + 1, finding.value))
        opened += [e for e in detector.observe(reading) if e.kind == "cooling_fading" and e.state == "open"]
    assert opened, "the gateway did not see the leak"
    assert opened[0].started_at > label.start_ms  # type: ignore[attr-defined]
    assert opened[0].reason.startswith("pull-downs") and opened[0].threshold == FADING_BELOW
    assert opened[0].value is not None and opened[0].value < FADING_BELOW
    # ... which are the replay's over the series up to each verdict's reading: the steps the agent keeps are enough
    assert len(judged) > 500
    replay = [float(pulldown_ratio(ts_all[:upto], temp_all[:upto], [end])[0]) for end, upto, _ in judged]
    assert np.allclose([value for _, _, value in judged], replay)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30 * MIN), st.one_of(st.none(), st.floats(-90.0, 150.0))), max_size=300))
def test_any_reading_sequence_gives_a_verdict_in_range_or_none(steps: list[tuple[int, float | None]]) -> None:
    """Gaps, repeats, missing temperatures, wild jumps: the rule never raises and says 0..2 or nothing."""
    rule = GatewayPulldownRule(below=FADING_BELOW, min_duration_ms=0, clear_after_ms=0, every_ms=0)
    ts = T0
    for gap, temp in steps:
        ts += gap
        finding = rule.check(Reading(sensor="c2:00:00:00:00:01", ts=ts, profile="frozen", temp_c=temp), None)
        assert finding is None or (finding.value is not None and 0.0 <= finding.value <= 2.0)


def test_no_verdict_while_the_lookback_holds_an_hour_without_a_pull_down() -> None:
    from models.runtime.pulldown import STILL_S

    still = int(STILL_S / 60) + 10  # a power cut: the compressor does not run at all
    cap = np.concatenate([np.ones(5 * 60), np.zeros(still), np.full(3 * 60, 0.7)])  # then the warm goods slow it
    ts, temp = thermostat(len(cap) / 60, list(cap))
    after = ts > ts[5 * 60 + still + 90]
    ratio = pulldown_ratio(ts, temp, ts[after])
    assert np.all(np.isnan(ratio))  # not "cooling fading": the spans are not the same unit's normal
    cap[5 * 60:5 * 60 + still] = 0.7  # the same slowdown without the cut is seen
    ts, temp = thermostat(len(cap) / 60, list(cap))
    assert np.nanmin(pulldown_ratio(ts, temp, ts[after])) < FADING_BELOW
