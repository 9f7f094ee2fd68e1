"""Local detection: rules per profile, and the alert lifecycle (open once, update, clear with hysteresis)."""

from __future__ import annotations

from edge_agent.config import DetectConfig
from edge_agent.detect.detector import Detector
from protocol.messages import AlertEvent, Reading, alert_id

T0 = 1_767_225_600_000
MIN = 60_000
S = "c2:00:00:00:00:01"


def feed(detector: Detector, temps: list[float], profile: str = "chilled", battery: int = 3000,
         start: int = 0) -> list[AlertEvent]:
    events = []
    for i, t in enumerate(temps):
        reading = Reading(sensor=S, ts=T0 + (start + i) * MIN, profile=profile, temp_c=t, battery_mv=battery)
        events += detector.observe(reading)
    return events


def detector(**overrides: float) -> Detector:
    settings = DetectConfig(range_min_duration_s=5 * 60, clear_after_s=3 * 60, update_every_s=10 * 60,
                            rate_max_c_per_min=2.0, rate_min_duration_s=0, rate_window_s=2 * 60,
                            range_min_duration_by_profile_s={}, pulldown_s=0)
    for key, value in overrides.items():
        setattr(settings, key, value)
    return Detector("gw1", settings)


def test_a_short_excursion_never_opens_an_alert() -> None:
    events = feed(detector(), [3.0, 5.0, 5.5, 5.2, 4.5, 3.0, 3.0])  # loading: 3 min above 4 °C
    assert [e for e in events if e.kind == "temp_out_of_range"] == []


def test_a_long_excursion_opens_once_updates_then_clears_with_the_same_id() -> None:
    temps = [3.0] + [6.0] * 30 + [3.9] * 5 + [3.0] * 10  # 30 min warm, 5 min just inside the band, back to normal
    events = [e for e in feed(detector(), temps) if e.kind == "temp_out_of_range"]
    states = [e.state for e in events]
    assert states[0] == "open" and states[-1] == "clear" and set(states[1:-1]) == {"update"}
    assert states.count("open") == 1
    assert len({e.id for e in events}) == 1
    assert events[0].id == alert_id("gw1", S, "temp_out_of_range", T0 + 1 * MIN)
    assert events[0].started_at == T0 + MIN and events[0].updated_at == T0 + 6 * MIN
    assert events[0].severity == "critical" and "above the chilled limit" in events[0].reason
    clear = events[-1]
    assert clear.ended_at == clear.updated_at and clear.ended_at >= T0 + 36 * MIN + 3 * MIN  # not in the margin


def test_replaying_the_same_readings_raises_the_same_alert_ids() -> None:
    temps = [3.0] + [7.0] * 20 + [2.0] * 10
    first = [(e.id, e.state) for e in feed(detector(), temps)]
    again = [(e.id, e.state) for e in feed(detector(), temps)]
    assert first == again and first


def test_profiles_set_the_band() -> None:
    assert feed(detector(), [-21.0] * 20, profile="frozen") == []
    opened = [e for e in feed(detector(), [-12.0] * 20, profile="frozen") if e.state == "open"]
    assert [e.kind for e in opened] == ["temp_out_of_range"]


def test_pre_cooling_at_trip_start_is_held_until_the_pull_down_limit() -> None:
    d = detector(pulldown_s=3 * 3600)
    pulling_down = [20.0 - i * 0.1 for i in range(170)]  # from ambient toward 4 °C for almost 3 h
    assert [e for e in feed(d, pulling_down) if e.state == "open"] == []
    stuck_warm = detector(pulldown_s=60 * 60)  # a space that never gets cold is an incident after the limit
    opened = [e for e in feed(stuck_warm, [15.0] * 120) if e.state == "open"]
    assert [(e.kind, e.started_at) for e in opened] == [("temp_out_of_range", T0 + 60 * MIN)]


def test_freezers_get_a_longer_minimum_duration_for_defrost() -> None:
    d = detector(range_min_duration_by_profile_s={"frozen": 45 * 60})
    defrost = [-21.0] * 5 + [-16.0] * 35 + [-21.0] * 10  # 35 min above -18 °C: a normal defrost
    assert [e for e in feed(d, defrost, profile="frozen") if e.kind == "temp_out_of_range"] == []
    failing = [-21.0] * 5 + [-15.0] * 60
    opened = [e for e in feed(detector(range_min_duration_by_profile_s={"frozen": 45 * 60}), failing,
                              profile="frozen") if e.kind == "temp_out_of_range" and e.state == "open"]
    assert [e.updated_at - e.started_at for e in opened] == [45 * MIN]


def test_a_fast_rise_is_a_rate_alert() -> None:
    events = feed(detector(), [3.0, 3.1, 8.0, 8.2, 8.0])
    assert [(e.kind, e.state) for e in events if e.kind == "temp_rate"][:1] == [("temp_rate", "open")]


def test_noise_between_fast_samples_is_not_a_rate_alert() -> None:
    d = detector()
    for i in range(600):  # one reading per second, ±0.1 °C of noise: 6 °C/min sample to sample
        temp = 3.0 + (0.1 if i % 2 else -0.1)
        assert d.observe(Reading(sensor=S, ts=T0 + i * 1000, profile="chilled", temp_c=temp)) == []


def test_low_battery_opens_after_it_persists() -> None:
    events = feed(detector(), [3.0] * 10, battery=2300)
    assert [(e.kind, e.state) for e in events] == [("battery_low", "open")]


def test_a_silent_sensor_opens_on_tick_and_clears_when_heard_again() -> None:
    d = detector(silent_after_s=15 * 60)
    feed(d, [3.0])
    other = Reading(sensor="c2:00:00:00:00:02", ts=T0 + 20 * MIN, profile="chilled", temp_c=3.0)
    d.observe(other)  # the gateway clock moves on: another tag is still heard
    opened = d.tick()
    assert [(e.sensor, e.kind, e.state, e.started_at) for e in opened] == [(S, "sensor_silent", "open", T0)]
    assert d.tick() == []
    cleared = feed(d, [3.0], start=21)
    assert [(e.kind, e.state) for e in cleared] == [("sensor_silent", "clear")]


def test_a_model_that_fails_at_run_time_is_taken_out_and_reported() -> None:
    from types import SimpleNamespace

    from edge_agent.detect.alerts import AlertTracker
    from edge_agent.detect.anomaly import AnomalyDetector
    from models.runtime.features import default_spec

    class Broken:
        def scores(self, windows: object) -> object:
            raise RuntimeError("tensor arena corrupted")

    failures: list[tuple[str, str]] = []
    broken = SimpleNamespace(spec=default_spec(window=3), manifest=None, scores=Broken().scores)
    detector = AnomalyDetector("gw1", AlertTracker("gw1"), models={"chilled": broken},  # type: ignore[dict-item]
                               on_failure=lambda profile, exc: failures.append((profile, str(exc))))
    readings = [Reading(sensor=S, ts=T0 + i * MIN, profile="chilled", temp_c=3.0, rh_pct=80.0, battery_mv=3000)
                for i in range(5)]
    scored, events = detector.score(readings)
    assert scored == readings and events == []  # the readings still go out, unscored
    assert failures == [("chilled", "tensor arena corrupted")] and detector.models == {}
