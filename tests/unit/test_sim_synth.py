"""The synthesizer behind datasets and live mode: chunking changes nothing; invariants hold for any
seed, length and sample period."""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from firmware_sim.scenarios import SCENARIOS, build_plan, generate
from firmware_sim.synth import Synthesizer, concat_blocks


@settings(max_examples=8, deadline=None)
@given(name=st.sampled_from(sorted(SCENARIOS)), seed=st.integers(0, 2**31),
       chunks=st.lists(st.integers(1, 200), min_size=1, max_size=6))
# A weak tag's reboots (its sequence back to 0) once drew from the stream the chunk's faults also draw from.
@example(name="battery_depletion", seed=400599612, chunks=[103, 182, 172, 161, 1, 157])
def test_live_chunks_equal_one_dataset_run(name: str, seed: int, chunks: list[int]) -> None:
    total = sum(chunks)
    plan = build_plan(name, seed, duration_s=total * 60.0)
    whole = Synthesizer(plan, seed=seed, period_s=60.0).advance(total)
    stepped = Synthesizer(plan, seed=seed, period_s=60.0)
    joined = concat_blocks([stepped.advance(n) for n in chunks])
    np.testing.assert_array_equal(whole.true_air_c, joined.true_air_c)
    np.testing.assert_array_equal(whole.seq, joined.seq)
    np.testing.assert_array_equal(whole.battery_code, joined.battery_code)
    assert stepped.labels(joined) == Synthesizer(plan, seed=seed, period_s=60.0).labels(whole)


@settings(max_examples=12, deadline=None)
@given(name=st.sampled_from(sorted(SCENARIOS)), seed=st.integers(0, 2**31), days=st.floats(0.05, 0.6),
       period=st.sampled_from([10.0, 30.0, 60.0, 90.0, 300.0]))
def test_any_seed_length_and_period_gives_a_sane_dataset(name: str, seed: int, days: float, period: float) -> None:
    d = generate(name, seed, days=days, sample_period_s=period)
    r = d.readings
    assert len(d) > 0 and len(d) <= 2 * 4 * days * 86400 / period
    rh = r["rh_pct"][~np.isnan(r["rh_pct"])]
    assert ((rh >= 0) & (rh <= 100)).all()
    assert ((r["seq"] >= 0) & (r["seq"] < 65535)).all()
    assert ((r["rssi_dbm"] >= -127) & (r["rssi_dbm"] <= -20)).all()
    start, end = 1_767_225_600_000, 1_767_225_600_000 + days * 86_400_000 + 2 * period * 1000
    assert ((r["ts_ms"] >= start) & (r["ts_ms"] <= end)).all()
    assert all(lab.start_ms <= lab.end_ms <= end for lab in d.labels)
    for mac in d.sensors:
        assert (np.diff(d.for_sensor(mac)["ts_ms"]) >= 0).all()
