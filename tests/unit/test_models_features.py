"""models.runtime.features: one window path for edge and training, causal, gap-tolerant, numpy-only."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.runtime.features import (
    DEFAULT_FEATURES,
    FeatureSpec,
    default_spec,
    raw_windows,
    score,
    window_ends,
    window_features,
    windows_at,
)

T0 = 1_767_225_600_000


def history(n: int = 200, period_ms: int = 60_000, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    ts = T0 + np.arange(n, dtype=np.int64) * period_ms + rng.integers(-500, 500, n)
    temp = 2.0 + 0.5 * np.sin(np.arange(n) / 7.0) + rng.normal(0, 0.02, n)
    rh = 80.0 + rng.normal(0, 1, n)
    batt = np.full(n, 2950.0)
    return ts, temp, rh, batt


def spec() -> FeatureSpec:
    n = len(DEFAULT_FEATURES)
    return FeatureSpec(30, 60.0, DEFAULT_FEATURES, (1.0,) * n, (2.0,) * n)


def test_spec_round_trip_and_validation() -> None:
    s = spec()
    assert FeatureSpec.from_dict(s.to_dict()) == s
    assert s.input_size == 30 * len(DEFAULT_FEATURES)
    assert s.window_ms == 30 * 60_000
    assert s.span_ms == 30 * 60_000 * (1 + s.baseline_windows)  # temp_drift looks back before the window
    drift = FeatureSpec(30, 60.0, ("temp_dev", "temp_drift"), (0.0, 0.0), (1.0, 1.0), baseline_windows=4)
    assert FeatureSpec.from_dict(drift.to_dict()) == drift
    assert drift.span_ms == 30 * 60_000 * 5  # temp_drift looks back four window spans before the window
    with pytest.raises(ValueError, match="unknown features"):
        FeatureSpec(30, 60.0, ("nope",), (0.0,), (1.0,))
    with pytest.raises(ValueError, match="std"):
        FeatureSpec(30, 60.0, ("temp_c",), (0.0,), (0.0,))


def test_window_features_is_the_last_row_of_the_batch_path() -> None:
    ts, temp, rh, batt = history(400)
    s = spec()
    x, _ = windows_at(s, ts, temp, rh, batt, end_ms=ts)
    one = window_features(s, ts, temp, rh, batt)
    assert one is not None and one.dtype == np.float32 and one.shape == (s.input_size,)
    np.testing.assert_array_equal(one, x[-1])
    # `span_ms` of history is enough: windows use readings inside themselves and temp_drift's baseline before them
    keep = s.span_ms // 60_000 + 2
    tail = window_features(s, ts[-keep:], temp[-keep:], rh[-keep:], batt[-keep:])
    np.testing.assert_array_equal(tail, one)


@settings(max_examples=25, deadline=None)
@given(cut=st.integers(min_value=40, max_value=199), seed=st.integers(0, 1000))
def test_causal_future_readings_change_nothing(cut: int, seed: int) -> None:
    ts, temp, rh, batt = history(seed=seed)
    s = spec()
    end = ts[cut]
    full = window_features(s, ts, temp, rh, batt, now_ms=int(end))
    past = window_features(s, ts[: cut + 1], temp[: cut + 1], rh[: cut + 1], batt[: cut + 1])
    assert full is not None and past is not None
    np.testing.assert_array_equal(full, past)


def test_gaps_nan_and_too_little_data() -> None:
    ts, temp, rh, batt = history()
    s = spec()
    temp = temp.copy()
    temp[-10:-5] = np.nan  # invalid readings: forward-filled, flagged missing
    raw, usable = raw_windows(s, ts, temp, rh, batt, end_ms=ts[-1:])
    missing = raw[0, :, DEFAULT_FEATURES.index("missing")]
    assert usable[0] and 4 <= missing.sum() <= 6
    assert np.isfinite(raw).all()
    assert window_features(s, ts[:10], temp[:10], rh[:10], batt[:10]) is None  # 10 of 30 steps
    assert window_features(s, ts, temp, rh, batt, now_ms=int(ts[-1]) + 20 * 60_000) is None  # silent 20 min
    assert window_features(s, ts[:0], temp[:0], None, None) is None
    no_rh = window_features(s, ts, temp, None, None)  # a logger without humidity or battery
    assert no_rh is not None and np.isfinite(no_rh).all()


def test_unsorted_timestamps_are_refused() -> None:
    ts, temp, rh, batt = history()
    with pytest.raises(ValueError, match="sorted"):
        window_features(spec(), ts[::-1], temp, rh, batt)


def test_derived_channels() -> None:
    s = default_spec(window=30)
    ts = T0 + np.arange(60, dtype=np.int64) * 60_000
    rising = -20.0 + 0.1 * np.arange(60)
    raw, _ = raw_windows(s, ts, rising, None, np.linspace(3000, 2990, 60), end_ms=ts[-1:])
    ch = {name: raw[0, :, i] for i, name in enumerate(DEFAULT_FEATURES)}
    assert ch["temp_rate"][-1] == pytest.approx(0.1, abs=1e-4)
    assert ch["cooling_duty"][-1] == 0.0
    assert ch["battery_trend"][-1] < 0
    falling, _ = raw_windows(s, ts, -rising, None, None, end_ms=ts[-1:])
    assert falling[0, -1, DEFAULT_FEATURES.index("cooling_duty")] == pytest.approx(1.0)


def test_window_ends_cover_the_history() -> None:
    ts, *_ = history()
    ends = window_ends(spec(), ts)
    assert ends[0] == ts[0] + 29 * 60_000 and ends[-1] <= ts[-1] and np.all(np.diff(ends) == 60_000)


def test_one_output_column_is_the_score_itself() -> None:
    x = np.arange(12, dtype=np.float32).reshape(2, 6)
    assert score(x, np.array([[-3.5], [7.25]], dtype=np.float32)).tolist() == [-3.5, 7.25]


def test_score_reconstruction_and_forecast() -> None:
    x = np.arange(12, dtype=np.float32).reshape(2, 6)
    assert score(x, x).tolist() == [0.0, 0.0]
    assert score(x, x + 2).tolist() == [4.0, 4.0]
    forecast = x[:, -2:] + np.array([[1, 1], [0, 0]], dtype=np.float32)
    assert score(x, forecast).tolist() == [1.0, 0.0]
    with pytest.raises(ValueError):
        score(x, np.zeros((3, 6), dtype=np.float32))


def test_features_and_manifest_import_in_the_edge_venv_without_torch(edge_python: Path) -> None:
    code = ("import sys, numpy as np; import models.runtime.features as f; "
            "w = f.window_features(f.default_spec(), np.arange(40) * 60000, np.zeros(40), None, None); "
            "assert w is not None and w.shape == (30 * len(f.DEFAULT_FEATURES),); "
                "assert 'torch' not in sys.modules; print(np.__version__)")
    out = subprocess.run([str(edge_python), "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("1."), "the edge venv should run numpy 1.x"


@settings(max_examples=40, deadline=None)
@given(offset=st.floats(-60.0, 60.0), rh_offset=st.floats(-30.0, 30.0), seed=st.integers(0, 50))
def test_the_default_inputs_do_not_change_when_the_whole_history_sits_at_another_level(
        offset: float, rh_offset: float, seed: int) -> None:
    ts, temp, rh, batt = history(seed=seed)
    spec = default_spec()
    ends = window_ends(spec, ts)
    a, ua = raw_windows(spec, ts, temp, rh, batt, end_ms=ends)
    b, ub = raw_windows(spec, ts, temp + offset, rh + rh_offset, batt, end_ms=ends)
    assert np.array_equal(ua, ub)
    np.testing.assert_allclose(a, b, atol=1e-3)  # a setpoint, a room, a season: the same behaviour


def test_temp_drift_is_each_step_against_the_sensors_own_past() -> None:
    n = 600
    ts = T0 + np.arange(n, dtype=np.int64) * 60_000
    temp = np.full(n, 4.0)
    temp[-20:] = 5.0  # the last 20 minutes a degree above the hours before
    spec = FeatureSpec(30, 60.0, ("temp_dev", "temp_drift"), (0.0, 0.0), (1.0, 1.0), baseline_windows=4)
    raw, usable = raw_windows(spec, ts, temp, end_ms=[int(ts[-1])])
    assert usable[0]
    np.testing.assert_allclose(raw[0, -20:, 1], 1.0, atol=1e-6)
    np.testing.assert_allclose(raw[0, :10, 1], 0.0, atol=1e-6)
    early, _ = raw_windows(spec, ts, temp, end_ms=[int(ts[29]), int(ts[49]), int(ts[99])])
    assert np.isnan(early[0, :, 1]).all()  # no history before the window: no drift known
    assert np.isnan(early[1, :, 1]).all()  # 20 min of a 2 h baseline: too little to stand for the sensor's past
    assert np.isfinite(early[2, :, 1]).all()  # 70 min of it: enough
