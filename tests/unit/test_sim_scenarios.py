"""Scenario library: determinism by seed, the public dataset shape, and labels that line up with the physics."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from firmware_sim.events import BENIGN_KINDS, INCIDENT_KINDS
from firmware_sim.physics import PHYSICS
from firmware_sim.scenarios import SCENARIOS, Dataset, Label, generate, normal
from protocol.profiles import PROFILES

START = 1_767_225_600_000


def _affected(d: Dataset) -> dict[str, np.ndarray]:
    return d.for_sensor(d.sensors[0])


def _label(d: Dataset, kind: str) -> Label:
    return next(lab for lab in d.labels if lab.kind == kind and lab.sensor == d.sensors[0])


def test_catalogue_has_every_incident_and_benign_kind() -> None:
    kinds = {s.kind for s in SCENARIOS.values()}
    assert set(INCIDENT_KINDS) <= kinds
    assert set(BENIGN_KINDS) <= kinds
    assert all(s.description and s.profile in PROFILES for s in SCENARIOS.values())


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_scenario_is_deterministic_and_well_formed(name: str) -> None:
    a, b = generate(name, 7, days=0.5), generate(name, 7, days=0.5)
    assert set(a.readings) == {"sensor", "profile", "ts_ms", "seq", "temp_c", "rh_pct", "battery_mv", "rssi_dbm"}
    for column, values in a.readings.items():
        assert len(values) == len(a)
        np.testing.assert_array_equal(values, b.readings[column])
    assert a.labels == b.labels
    assert a.readings["ts_ms"].dtype == np.int64 and a.readings["seq"].dtype == np.int64
    assert a.readings["temp_c"].dtype == np.float64 and a.readings["rssi_dbm"].dtype == np.int64
    rh = a.readings["rh_pct"][~np.isnan(a.readings["rh_pct"])]
    assert ((rh >= 0) & (rh <= 100)).all()
    for mac in a.sensors:
        assert (np.diff(a.for_sensor(mac)["ts_ms"]) >= 0).all()
    kind = SCENARIOS[name].kind
    if kind in INCIDENT_KINDS:
        assert any(lab.kind == kind and not lab.benign for lab in a.labels)
    else:
        assert all(lab.benign for lab in a.labels)
    assert all(START <= lab.start_ms <= lab.end_ms <= START + 43_200_000 for lab in a.labels)


def test_another_seed_gives_other_data() -> None:
    a, b = generate("door_left_open", 1), generate("door_left_open", 2)
    assert a.labels != b.labels
    assert not np.array_equal(a.readings["temp_c"][:500], b.readings["temp_c"][:500])


def test_a_day_of_eight_sensors_is_fast() -> None:
    import time

    t0 = time.perf_counter()
    d = normal("chilled", 1, sensors=8, days=1.0)
    assert time.perf_counter() - t0 < 2.0  # generous; the figure that counts is in bench/sim.py
    assert len(d) > 8 * 1440 * 0.9


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_normal_mode_has_no_incidents_and_holds_the_band_outside_benign_events(profile: str) -> None:
    d = normal(profile, 3, sensors=4, days=1.0)
    assert d.labels and all(lab.benign for lab in d.labels)
    band = PROFILES[profile]
    for mac in d.sensors:
        rows = d.for_sensor(mac)
        busy = np.zeros(len(rows["ts_ms"]), dtype=bool)
        for lab in d.labels:
            if lab.sensor == mac:
                busy |= (rows["ts_ms"] >= lab.start_ms - 120_000) & (rows["ts_ms"] <= lab.end_ms + 120_000)
        quiet = rows["temp_c"][~busy]
        assert all(band.contains(t) for t in quiet), (mac, quiet.min(), quiet.max())


def test_door_left_open_leaves_the_band_after_its_start_and_recovers() -> None:
    d = generate("door_left_open", 4)
    lab = _label(d, "door_left_open")
    rows = _affected(d)
    high = PROFILES["chilled"].high_c
    assert high is not None
    during = rows["temp_c"][(rows["ts_ms"] >= lab.start_ms) & (rows["ts_ms"] <= lab.end_ms)]
    assert during.max() > high + 2.0
    open_at_least = rows["temp_c"][(rows["ts_ms"] >= lab.start_ms) & (rows["ts_ms"] < lab.start_ms + 2_700_000)]
    assert open_at_least.max() > open_at_least[0] + 2.0  # rises from the start (the door is open ≥ 45 min)
    after = rows["temp_c"][(rows["ts_ms"] > lab.end_ms + 600_000) & (rows["ts_ms"] < lab.end_ms + 3_600_000)]
    assert len(after) and np.median(after) < high


def test_defrost_is_benign_rises_and_recovers() -> None:
    d = generate("defrost", 2)
    truth = d.truth
    assert truth is not None
    defrosts = [lab for lab in d.labels if lab.kind == "defrost"]
    assert defrosts and all(lab.benign for lab in defrosts)
    hyst = PHYSICS["frozen"].hysteresis_c
    for lab in defrosts:
        s = d.sensors.index(lab.sensor)
        t = truth.ts_ms[:, s]
        inside = (t >= lab.start_ms) & (t <= lab.end_ms)
        air = truth.true_air_c[inside, s]
        assert air.max() > truth.setpoint_c[0, s] + hyst + 2.0  # a real rise, above the thermostat band
        if lab.end_ms < t[-1] - 120_000:
            assert air[-1] <= truth.setpoint_c[0, s] + hyst + 1.0  # and back when the label ends


def test_refrigerant_leak_duty_cycle_creeps_up_before_any_limit() -> None:
    d = generate("refrigerant_leak", 5)
    truth = d.truth
    assert truth is not None
    lab = _label(d, "refrigerant_leak")
    t = truth.ts_ms[:, 0]
    before = truth.cooling[t < lab.start_ms, 0].mean()
    late = truth.cooling[t > lab.start_ms + 0.7 * (lab.end_ms - lab.start_ms), 0].mean()
    assert late > before + 0.25
    # Long before any limit: in the first hours of the leak the reefer still holds the band between defrosts.
    rows = _affected(d)
    early = (rows["ts_ms"] > lab.start_ms) & (rows["ts_ms"] < lab.start_ms + 3 * 3_600_000)
    for other in d.labels:
        if other.sensor == d.sensors[0] and other.kind in ("defrost", "door_short"):
            early &= ~((rows["ts_ms"] >= other.start_ms) & (rows["ts_ms"] <= other.end_ms + 600_000))
    assert rows["temp_c"][early].max() < -18.0


def test_compressor_failure_warms_toward_ambient_without_recovery() -> None:
    d = generate("compressor_failure", 3)
    lab = _label(d, "compressor_failure")
    rows = _affected(d)
    after = rows["temp_c"][rows["ts_ms"] > lab.start_ms]
    hourly = [chunk.mean() for chunk in np.array_split(after, max(2, len(after) // 60))]
    assert all(b > a for a, b in itertools.pairwise(hourly))
    assert lab.end_ms >= rows["ts_ms"][-1] - 120_000


def test_sensor_faults_show_in_the_readings_only() -> None:
    stuck = generate("sensor_stuck", 1)
    lab = _label(stuck, "sensor_stuck")
    rows = _affected(stuck)
    inside = (rows["ts_ms"] >= lab.start_ms + 60_000) & (rows["ts_ms"] < lab.end_ms)
    assert len(set(rows["temp_c"][inside].tolist())) == 1
    dropout = generate("sensor_dropout", 1)
    lab = _label(dropout, "sensor_dropout")
    rows = _affected(dropout)
    assert not ((rows["ts_ms"] > lab.start_ms + 60_000) & (rows["ts_ms"] < lab.end_ms - 60_000)).any()
    spikes = generate("sensor_spikes", 1)
    lab = _label(spikes, "sensor_spikes")
    rows = _affected(spikes)
    inside = (rows["ts_ms"] >= lab.start_ms) & (rows["ts_ms"] < lab.end_ms)
    jumps = np.abs(np.diff(rows["temp_c"]))
    assert jumps[inside[1:]].max() > 4.0 and jumps[~inside[1:]].max() < 4.0


def test_battery_depletion_knee_garbage_reboot_and_silence() -> None:
    d = generate("battery_depletion", 2)
    lab = _label(d, "battery_depletion")
    rows = _affected(d)
    assert lab.start_ms == START  # the cell starts past its knee: the incident holds from the run's start
    volts = rows["battery_mv"][~np.isnan(rows["battery_mv"])]
    assert volts[:60].min() > 2500 and volts.min() < 2500  # the operator's "low" voltage comes later in the label
    late = rows["ts_ms"] > lab.start_ms
    temps = rows["temp_c"][late]
    assert np.isnan(temps).any() or (temps > 30).any()  # garbage near empty
    assert (np.diff(rows["seq"]) < 0).any()  # a brown-out reboot restarts the sequence
    assert rows["ts_ms"][-1] < START + 86_400_000 - 3_600_000  # then the tag falls silent


def test_wrong_profile_is_configured_pharma_but_reads_frozen() -> None:
    d = generate("wrong_profile", 1)
    rows = _affected(d)
    assert set(rows["profile"].tolist()) == {"pharma_2_8"}
    assert np.nanmedian(rows["temp_c"]) < -15
    assert _label(d, "wrong_profile").start_ms == START


def test_precool_and_setpoint_change_labels_end_when_the_air_is_in_band() -> None:
    d = generate("precool", 1)
    lab = _label(d, "precool")
    rows = _affected(d)
    assert rows["temp_c"][0] > 10 and lab.benign
    at_end = rows["temp_c"][np.searchsorted(rows["ts_ms"], lab.end_ms)]
    assert at_end < PROFILES["chilled"].setpoint_c + 2.0
    d = generate("setpoint_change", 1)
    lab = _label(d, "setpoint_change")
    assert lab.benign and lab.end_ms > lab.start_ms
