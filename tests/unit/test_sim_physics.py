"""Physics sanity: steady state holds the band, a dead compressor warms toward ambient, humidity stays
physical, the battery curve has its plateau and knee and never rises."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim import battery
from firmware_sim.ambient import PEAK_HOUR_LOCAL, ambient_series
from firmware_sim.cli import utc_offset_for
from firmware_sim.physics import Drivers, SpaceParams, SpaceState, setpoints, simulate
from protocol.profiles import PROFILES

PROFILE_NAMES = sorted(PROFILES)


def _drivers(steps: int, profiles: list[str], ambient_c: float, ambient_rh: float = 60.0) -> Drivers:
    shape = (steps, len(profiles))
    return Drivers(np.full(shape, ambient_c), np.full(shape, ambient_rh), np.tile(setpoints(profiles), (steps, 1)),
                   np.ones(shape), np.ones(shape, dtype=bool), np.zeros(shape, dtype=bool), np.zeros(shape, dtype=bool))


def _space(profiles: list[str], seed: int) -> tuple[SpaceParams, SpaceState]:
    rng = np.random.default_rng(seed)
    params = SpaceParams.for_profiles(profiles, rng)
    return params, SpaceState.settled(setpoints(profiles), params, rng)


@settings(max_examples=15, deadline=None)
@given(ambient=st.floats(-15.0, 38.0), seed=st.integers(0, 2**32 - 1))
def test_steady_state_holds_the_band_with_a_visible_duty_cycle(ambient: float, seed: int) -> None:
    params, state = _space(PROFILE_NAMES, seed)
    traj = simulate(params, _drivers(720, PROFILE_NAMES, ambient), state, dt_s=60.0)
    for s, name in enumerate(PROFILE_NAMES):
        air = traj.air_c[60:, s]  # after the first hour
        band = PROFILES[name]
        assert all(band.contains(t) for t in air), (name, ambient, air.min(), air.max())
        if ambient > band.setpoint_c + 12:  # a clear cooling load: the compressor cycles (at +8 a well-insulated
            # freezer switched on only twice in 12 h: seed 3, ambient -12.5)
            switches = np.count_nonzero(np.diff(traj.cooling[:, s].astype(np.int8)) == 1)
            assert switches >= 3 and 0.02 < traj.cooling[:, s].mean() < 0.9


@settings(max_examples=15, deadline=None)
@given(ambient=st.floats(15.0, 40.0), seed=st.integers(0, 2**32 - 1))
def test_failed_compressor_warms_monotonically_toward_ambient(ambient: float, seed: int) -> None:
    profiles = ["frozen", "chilled", "pharma_2_8"]
    params, state = _space(profiles, seed)
    drivers = _drivers(1440, profiles, ambient)
    drivers.capacity[:] = 0.0
    air = simulate(params, drivers, state, dt_s=60.0).air_c
    assert (np.diff(air, axis=0) > -1e-9).all()
    assert (air < ambient).all()


@settings(max_examples=25, deadline=None)
@given(ambient=st.floats(-25.0, 45.0), ambient_rh=st.floats(5.0, 100.0), seed=st.integers(0, 2**32 - 1),
       door=st.booleans(), defrost=st.booleans(), power=st.booleans())
def test_humidity_stays_within_0_and_100(ambient: float, ambient_rh: float, seed: int, door: bool, defrost: bool,
                                         power: bool) -> None:
    params, state = _space(PROFILE_NAMES, seed)
    drivers = _drivers(240, PROFILE_NAMES, ambient, ambient_rh)
    drivers.door_open[60:120] = door
    drivers.defrost[100:160] = defrost
    drivers.powered[150:] = power
    rh = simulate(params, drivers, state, dt_s=60.0).rh_pct
    assert np.isfinite(rh).all() and (rh >= 0).all() and (rh <= 100).all()


def test_open_door_and_defrost_raise_humidity_in_a_chiller() -> None:
    params, state = _space(["chilled"], 1)
    drivers = _drivers(180, ["chilled"], 25.0, 70.0)
    drivers.door_open[60:90] = True
    rh = simulate(params, drivers, state, dt_s=60.0).rh_pct[:, 0]
    assert rh[85] > rh[55] + 3


def test_battery_plateau_then_knee_and_never_rising() -> None:
    used = np.linspace(0.0, 1.1, 1101)
    volts = battery.open_circuit_mv(used)
    assert (np.diff(volts) <= 0).all()
    plateau = volts[used <= battery.KNEE_AT]
    assert plateau[0] - plateau[-1] < 150  # flat for 85 % of the capacity
    assert volts[used <= 1.0][-1] < plateau[-1] - 800  # then the knee
    cold, warm = battery.loaded_mv(used, np.full_like(used, -25.0)), battery.loaded_mv(used, np.full_like(used, 20.0))
    assert (cold < warm).all()  # sag in the cold
    assert (np.diff(cold) <= 0).all()  # at a constant temperature the reading never rises either


@given(st.lists(st.floats(0.0, 1.2), min_size=2, max_size=50), st.floats(-40.0, 60.0))
def test_battery_reading_never_rises_as_the_cell_is_used(used: list[float], temp_c: float) -> None:
    ordered = np.sort(np.array(used))
    assert (np.diff(battery.loaded_mv(ordered, np.full_like(ordered, temp_c))) <= 1e-9).all()


@given(start_ms=st.integers(0, 2**41), local_hour=st.floats(0.0, 24.0))
def test_the_air_follows_the_sites_local_time_whatever_the_utc_hour_of_the_start(start_ms: int,
                                                                                 local_hour: float) -> None:
    t_s = np.arange(0.0, 86_400.0, 600.0)
    anchored = ambient_series(["warehouse"], t_s, start_ms, np.random.default_rng(7),
                              utc_offset_for(start_ms, local_hour))
    # The same local start hour from another UTC start: the same day of air.
    other = start_ms + 5 * 3_600_000 + 123_456
    again = ambient_series(["warehouse"], t_s, other, np.random.default_rng(7), utc_offset_for(other, local_hour))
    assert np.allclose(anchored[0], again[0], atol=1e-6)
    peak_local_h = (local_hour + t_s[int(np.argmax(anchored[0][:, 0]))] / 3600.0) % 24.0
    assert min(abs(peak_local_h - PEAK_HOUR_LOCAL), 24.0 - abs(peak_local_h - PEAK_HOUR_LOCAL)) <= 0.2
