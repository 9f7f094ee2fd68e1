"""Runs the rules on every reading and the silence check on every tick; yields alert events."""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Final

from edge_agent.config import DetectConfig as DetectSettings
from edge_agent.detect.alerts import AlertTracker
from edge_agent.detect.rules import BatteryRule, Finding, PulldownRule, RangeRule, RateRule, Rule, check_all
from protocol.messages import AlertEvent, Reading


def default_rules(s: DetectSettings) -> list[Rule]:
    """The rules every gateway runs, whatever model it has."""
    clear = int(s.clear_after_s * 1000)
    return [
        RangeRule(min_duration_ms=int(s.range_min_duration_s * 1000), clear_after_ms=clear,
                  by_profile_ms={p: int(v * 1000) for p, v in s.range_min_duration_by_profile_s.items()},
                  pulldown_ms=int(s.pulldown_s * 1000)),
        RateRule(max_c_per_min=s.rate_max_c_per_min, min_duration_ms=int(s.rate_min_duration_s * 1000),
                 clear_after_ms=clear),
        BatteryRule(low_mv=s.battery_low_mv, min_duration_ms=clear, clear_after_ms=clear),
        PulldownRule(below=s.pulldown_fading_below, min_duration_ms=int(s.pulldown_fading_s * 1000),
                     clear_after_ms=clear),
    ]


_OFFSET_MAX: Final = 2**31 - 1


@dataclass
class _RateWindow:
    """One sensor's readings of the last rate window as times (ms after `base`, int32) and temperatures (float32,
    NaN: none) in two flat buffers, 8 bytes a reading (a Reading object is twenty times that: at 1 Hz a 5-minute
    window held 300 of them)."""

    ts: array[int] = field(default_factory=lambda: array("i"))
    temp: array[float] = field(default_factory=lambda: array("f"))
    base: int | None = None
    start: int = 0  # the oldest kept; the buffers are cut once an eighth of them has fallen out

    def add(self, ts_ms: int, temp_c: float | None, window_ms: int) -> tuple[int, float]:
        """Add a reading (readings come in time order) and drop those more than `window_ms` older than it;
        returns the oldest kept (time, temperature)."""
        if self.base is None:
            self.base = ts_ms
        elif ts_ms - self.base > _OFFSET_MAX:  # weeks after the buffers were last cut: count from now
            self._rebase(ts_ms)
        base = self.base
        self.ts.append(ts_ms - base)
        self.temp.append(float("nan") if temp_c is None else temp_c)
        start = self.start
        while ts_ms - base - self.ts[start] > window_ms:
            start += 1
        if start > 16 and 8 * start > len(self.ts):
            del self.ts[:start], self.temp[:start]
            start = 0
        self.start = start
        return base + self.ts[start], self.temp[start]

    def _rebase(self, base: int) -> None:
        assert self.base is not None
        kept = [self.base + t - base for t in self.ts[self.start:]]
        self.ts = array("i", [max(-_OFFSET_MAX, t) for t in kept])  # all long out of the window: dropped next
        del self.temp[:self.start]
        self.start, self.base = 0, base


@dataclass
class Detector:
    """Per gateway. Time is the readings' timestamps (the gateway clock), so accelerated replays behave."""

    gateway: str
    settings: DetectSettings = field(default_factory=DetectSettings)
    rules: list[Rule] = field(default_factory=list)
    tracker: AlertTracker = field(init=False)
    last_ms: dict[str, int] = field(default_factory=dict)  # each sensor's newest reading time
    recent: dict[str, _RateWindow] = field(default_factory=dict)  # the last rate window, per sensor
    now_ms: int = 0

    def __post_init__(self) -> None:
        self.rules = self.rules or default_rules(self.settings)
        self.tracker = AlertTracker(self.gateway, update_every_ms=int(self.settings.update_every_s * 1000))

    def observe(self, reading: Reading) -> list[AlertEvent]:
        """Run every rule on `reading`; returns the alert events it causes."""
        return self.observe_many([reading])

    def observe_many(self, readings: list[Reading]) -> list[AlertEvent]:
        """Run every rule on `readings` (in arrival order, e.g. a tick's); returns the alert events they cause, the
        very events `observe` on each in turn gives, in the same order. Each rule judges all the readings first (in
        one pass where it can: rules never read the alert state), then the lifecycle takes the verdicts in order."""
        pairs: list[tuple[Reading, Reading | None]] = []
        for reading in readings:
            previous = self.last_ms.get(reading.sensor)
            if previous is not None and reading.ts < previous:
                continue  # a late, out-of-order frame: stored, but it must not rewind alert state
            self.last_ms[reading.sensor] = reading.ts
            self.now_ms = max(self.now_ms, reading.ts)
            pairs.append((reading, self._rate_reference(reading)))
        verdicts = [(rule, check_all(rule, pairs)) for rule in self.rules]
        events = []
        observe, idle = self.tracker.observe, self.tracker.idle
        for j, (reading, _) in enumerate(pairs):
            sensor = reading.sensor
            if not idle(sensor, "sensor_silent"):  # else a reading changes nothing there
                silent = observe(sensor=sensor, kind="sensor_silent", active=False, ts_ms=reading.ts,
                                 min_duration_ms=0, clear_after_ms=0, severity="warning", source="rule")
                if silent is not None:
                    events.append(silent)
            for rule, findings in verdicts:
                finding: Finding | None = findings[j]
                if finding is None or (not finding.active and idle(sensor, rule.kind)):
                    continue  # the common case: the condition does not hold and nothing is pending or open
                event = observe(
                    sensor=reading.sensor, kind=rule.kind, active=finding.active, hold=finding.hold, ts_ms=reading.ts,
                    min_duration_ms=finding.min_duration_ms or rule.min_duration_ms,
                    clear_after_ms=rule.clear_after_ms, severity=rule.severity,
                    source="rule", value=finding.value, threshold=finding.threshold, reason=finding.reason,
                )
                if event is not None:
                    events.append(event)
        return events

    def _rate_reference(self, reading: Reading) -> Reading | None:
        """The oldest reading within the rate window, if it is at least half a window old (sensor noise over
        one sample interval would otherwise look like a fast change): its time and temperature, which is all a
        rule reads of it."""
        window_ms = int(self.settings.rate_window_s * 1000)
        window = self.recent.get(reading.sensor)
        if window is None:
            window = self.recent[reading.sensor] = _RateWindow()
        ts, temp = window.add(reading.ts, reading.temp_c, window_ms)
        if reading.ts - ts < window_ms // 2:
            return None
        return Reading(sensor=reading.sensor, ts=ts, profile=reading.profile, temp_c=None if temp != temp else temp)

    def tick(self) -> list[AlertEvent]:
        """Sensors not heard for `silent_after_s` of gateway time open a `sensor_silent` alert."""
        limit = int(self.settings.silent_after_s * 1000)
        events = []
        for sensor, last_ms in self.last_ms.items():
            quiet_ms = self.now_ms - last_ms
            if quiet_ms >= limit:
                event = self.tracker.observe(
                    sensor=sensor, kind="sensor_silent", active=True, ts_ms=self.now_ms, started_ms=last_ms,
                    min_duration_ms=limit, clear_after_ms=0, severity="warning", source="rule",
                    value=quiet_ms / 1000, threshold=limit / 1000,
                    reason=f"no reading for {quiet_ms / 60_000:.0f} min",
                )
                if event is not None:
                    events.append(event)
        return events
