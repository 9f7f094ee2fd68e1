"""models.runtime.features.windows_at_many: the windows of many sensors in one pass equal `windows_at` row by row,
on numpy 2 (this interpreter) and on the gateway's numpy 1.x (.venv-edge, where the agent runs it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.runtime.features import KNOWN_FEATURES, FeatureSpec, windows_at, windows_at_many
from tests.edge_interpreter import EdgeCheck, edge_check

T0 = 1_767_225_600_000
ATOL = 1e-5  # float32 inputs clipped at ±8: a few ulps; the sums behind temp_drift differ only in rounding

# Runs in the gateway's interpreter: one JSON case a line in, one verdict a line out.
_EDGE_CHECK = r"""
import json, sys
import numpy as np
from models.runtime.features import FeatureSpec, windows_at, windows_at_many
for line in sys.stdin:
    case = json.loads(line)
    spec = FeatureSpec.from_dict(case["spec"])
    histories = [tuple(None if c is None else np.asarray(c, dtype=np.float64 if i else np.int64)
                       for i, c in enumerate(h)) for h in case["histories"]]
    got, got_ok = windows_at_many(spec, histories, case["owner"], end_ms=case["ends"])
    rows = [windows_at(spec, *histories[o], end_ms=[e]) for o, e in zip(case["owner"], case["ends"])]
    want = np.concatenate([r[0] for r in rows]) if rows else np.zeros((0, spec.input_size), dtype=np.float32)
    want_ok = np.concatenate([r[1] for r in rows]) if rows else np.zeros(0, dtype=bool)
    same = got.shape == want.shape and bool(np.array_equal(got_ok, want_ok)) and bool(
        np.allclose(got, want, rtol=0, atol=case["atol"]))
    diff = float(np.max(np.abs(got - want))) if got.shape == want.shape and got.size else 0.0
    print(json.dumps({"same": same, "numpy": np.__version__, "max_diff": diff}), flush=True)
"""


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    """A spec, a few sensors' histories (gaps, bursts, invalid values, absent columns, short or empty) and windows
    of them ending at readings or anywhere around them."""
    features = draw(st.lists(st.sampled_from(sorted(KNOWN_FEATURES)), min_size=1, max_size=5, unique=True))
    n = len(features)
    spec = FeatureSpec(window=draw(st.integers(2, 12)), sample_period_s=draw(st.sampled_from([1.0, 2.5, 60.0])),
                       features=tuple(features),
                       mean=tuple(draw(st.lists(st.floats(-5, 5), min_size=n, max_size=n))),
                       std=tuple(draw(st.lists(st.floats(0.05, 5), min_size=n, max_size=n))),
                       baseline_windows=draw(st.integers(1, 4)))
    period_ms = round(spec.sample_period_s * 1000)
    value = st.floats(-40, 90, allow_nan=False) | st.just(float("nan"))
    histories = []
    for _ in range(draw(st.integers(1, 5))):
        size = draw(st.integers(0, 60))
        gaps = draw(st.lists(st.integers(0, 4 * period_ms), min_size=size, max_size=size))  # 0: a repeated ts
        ts = (T0 + np.cumsum(gaps, dtype=np.int64)).tolist()
        level = draw(st.floats(-30, 60))
        temp = [level + v if v == v else v for v in draw(st.lists(value.map(lambda v: v / 20), min_size=size,
                                                                  max_size=size))]
        rh = draw(st.none() | st.lists(value, min_size=size, max_size=size))
        battery = draw(st.none() | st.lists(st.integers(1600, 3600).map(float) | st.just(float("nan")),
                                            min_size=size, max_size=size))
        histories.append([ts, temp, rh, battery])
    owner, ends = [], []
    for _ in range(draw(st.integers(0, 8))):
        o = draw(st.integers(0, len(histories) - 1))
        ts = histories[o][0]
        if ts and draw(st.booleans()):
            end = draw(st.sampled_from(ts))  # as the agent asks: a window ending at a reading
        else:
            end = (ts[-1] if ts else T0) + draw(st.integers(-spec.window * 3 * period_ms, 3 * period_ms))
        owner.append(o)
        ends.append(end)
    return {"spec": spec.to_dict(), "histories": histories, "owner": owner, "ends": ends, "atol": ATOL}


def _columns(history: list[Any]) -> tuple[Any, ...]:
    return tuple(None if c is None else np.asarray(c, dtype=np.float64 if i else np.int64)
                 for i, c in enumerate(history))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_many_sensors_at_once_equal_windows_at_row_by_row(case: dict[str, Any]) -> None:
    spec = FeatureSpec.from_dict(case["spec"])
    histories = [_columns(h) for h in case["histories"]]
    got, got_ok = windows_at_many(spec, histories, case["owner"], end_ms=case["ends"])
    assert got.shape == (len(case["ends"]), spec.input_size) and got.dtype == np.float32
    for j, (o, end) in enumerate(zip(case["owner"], case["ends"], strict=True)):
        want, want_ok = windows_at(spec, *histories[o], end_ms=[end])
        assert got_ok[j] == want_ok[0]
        np.testing.assert_allclose(got[j], want[0], rtol=0, atol=ATOL)


def test_float32_columns_give_the_float64_windows() -> None:
    """The agent keeps its history in float32: the windows are those of the same values in float64."""
    spec = FeatureSpec(30, 60.0, tuple(sorted(KNOWN_FEATURES)), (0.0,) * len(KNOWN_FEATURES),
                       (1.0,) * len(KNOWN_FEATURES))
    rng = np.random.default_rng(3)
    ts = T0 + np.arange(400, dtype=np.int64) * 60_000
    temp = (3 + rng.normal(0, 1, 400)).astype(np.float32)
    rh = (80 + rng.normal(0, 2, 400)).astype(np.float32)
    battery = np.full(400, 2950, dtype=np.float32)
    ends = ts[[100, 250, 399]]
    got, ok = windows_at_many(spec, [(ts, temp, rh, battery)], [0, 0, 0], end_ms=ends)
    want, want_ok = windows_at(spec, ts, temp.astype(np.float64), rh.astype(np.float64),
                               battery.astype(np.float64), end_ms=ends)
    np.testing.assert_array_equal(ok, want_ok)
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


def test_unsorted_readings_inside_a_window_are_refused() -> None:
    spec = FeatureSpec(5, 60.0, ("temp_dev",), (0.0,), (1.0,))
    ts = T0 + np.array([0, 120_000, 60_000, 180_000], dtype=np.int64)
    with pytest.raises(ValueError, match="sorted"):
        windows_at_many(spec, [(ts, np.zeros(4), None, None)], [0], end_ms=[T0 + 180_000])


@pytest.fixture(scope="module")
def edge(edge_python: Path) -> Iterator[EdgeCheck]:
    """The check above, in the gateway's interpreter (numpy 1.x), fed one case at a time."""
    with edge_check(edge_python, _EDGE_CHECK) as check:
        yield check


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(case=cases())
def test_the_same_holds_on_the_gateways_numpy(edge: EdgeCheck, case: dict[str, Any]) -> None:
    verdict = edge.verdict(case)
    assert verdict["same"], verdict
