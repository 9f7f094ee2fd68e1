"""The per-sensor history the model's windows are read from: the same readings a deque popped by age would keep,
in numpy columns that grow only as far as the kept span needs."""

from __future__ import annotations

from collections import deque

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.detect.history import INITIAL_CAPACITY, SensorHistory
from protocol.messages import Reading

T0 = 1_767_225_600_000
MAC = "c2:00:00:00:00:01"


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.tuples(st.integers(-5_000, 60_000), st.none() | st.floats(-40, 60),
                                st.none() | st.floats(0, 100), st.none() | st.integers(1600, 3646)),
                      min_size=1, max_size=400),
       keep_ms=st.integers(1_000, 600_000))
def test_it_keeps_exactly_what_a_deque_popped_by_age_keeps(steps: list[tuple[int, float | None, float | None,
                                                                             int | None]], keep_ms: int) -> None:
    history = SensorHistory(capacity=4)
    reference: deque[tuple[int, float, float, float]] = deque()
    ts = T0
    for dt, temp, rh, battery in steps:
        ts += dt  # mostly forward, sometimes a late reading
        reading = Reading(sensor=MAC, ts=ts, profile="chilled", temp_c=temp, rh_pct=rh, battery_mv=battery)
        history.add(reading, keep_ms)
        reference.append((ts, np.nan if temp is None else temp, np.nan if rh is None else rh,
                          np.nan if battery is None else float(battery)))
        while reference and ts - reference[0][0] > keep_ms:
            reference.popleft()
        columns = history.columns()
        assert len(history) == len(reference)
        for got, want in zip(columns, zip(*reference, strict=True), strict=True):
            np.testing.assert_array_equal(got, np.asarray(want, dtype=got.dtype))
    assert history.first_ms == T0 + steps[0][0]


def test_a_steady_1_hz_tag_settles_at_a_fixed_capacity() -> None:
    history = SensorHistory()
    keep_ms = 3_600_000  # an hour: 3,601 readings at 1 Hz
    for i in range(20_000):
        history.add(Reading(sensor=MAC, ts=T0 + i * 1000, profile="chilled", temp_c=3.0), keep_ms)
    assert len(history) == 3601
    assert INITIAL_CAPACITY < history.capacity <= 2 * 4096  # about twice the span, never the whole stream
    ts, temp, _, _ = history.columns()
    assert ts[0] == T0 + (20_000 - 3601) * 1000 and ts[-1] == T0 + 19_999 * 1000 and np.all(temp == 3.0)
