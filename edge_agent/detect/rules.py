"""Hard rules per asset profile: each says, for one sensor's latest reading, whether its condition holds."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

import numpy as np

from edge_agent.detect.history import StepRing
from models.runtime.pulldown import fading_reason, pulldown_ratio_of_steps, pulldown_steps
from models.runtime.rule_defaults import CLEAR_MARGIN_C
from protocol.messages import Reading
from protocol.profiles import PROFILES

Severity = Literal["info", "warning", "critical"]


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule's verdict on one reading: whether its condition holds, and the numbers behind it."""

    active: bool
    value: float | None = None
    threshold: float | None = None
    reason: str = ""
    hold: bool = False  # not active, but not clearly back to normal either (hysteresis band)
    min_duration_ms: int | None = None  # overrides the rule's own, e.g. per asset profile


class Rule(Protocol):
    """One hard rule. `kind` names the alert; `min_duration_ms` is how long the condition must hold."""

    @property
    def kind(self) -> str: ...
    @property
    def severity(self) -> Severity: ...
    @property
    def min_duration_ms(self) -> int: ...
    @property
    def clear_after_ms(self) -> int: ...

    def check(self, reading: Reading, previous: Reading | None) -> Finding | None:
        """The verdict for `reading` (None: this reading says nothing about the rule, e.g. no temperature)."""


def check_all(rule: Rule, pairs: Sequence[tuple[Reading, Reading | None]]) -> list[Finding | None]:
    """The rule's verdicts on (reading, previous) pairs in order: what `check` gives one call after another, in one
    pass where the rule has one (`check_many`)."""
    bulk = getattr(rule, "check_many", None)
    if bulk is not None:
        found: list[Finding | None] = bulk(pairs)
        return found
    return [rule.check(reading, previous) for reading, previous in pairs]


@dataclass
class RangeRule:
    """Temperature outside the profile's band for longer than the profile's minimum duration.

    Clearing needs a margin inside the band (hysteresis). A space that has not yet reached its band
    is pulling down (pre-cooling at trip start) and is held, not alerted, for up to `pulldown_ms`.
    """

    min_duration_ms: int
    clear_after_ms: int
    by_profile_ms: dict[str, int] = field(default_factory=dict)
    pulldown_ms: int = 4 * 3600_000
    clear_margin_c: float = CLEAR_MARGIN_C
    kind: str = "temp_out_of_range"
    severity: Severity = "critical"
    _first_seen: dict[str, int] = field(default_factory=dict)
    _reached_band: set[str] = field(default_factory=set)

    def check(self, reading: Reading, previous: Reading | None) -> Finding | None:
        if reading.temp_c is None:
            return None
        band = PROFILES[reading.profile] if reading.profile in PROFILES else None
        if band is None:
            return None
        t = reading.temp_c
        minimum = self.by_profile_ms.get(reading.profile, self.min_duration_ms)
        above = band.high_c is not None and t > band.high_c
        below = band.low_c is not None and t < band.low_c
        if not above and not below:
            self._reached_band.add(reading.sensor)
            inside = ((band.high_c is None or t <= band.high_c - self.clear_margin_c)
                      and (band.low_c is None or t >= band.low_c + self.clear_margin_c))
            return Finding(False, t, hold=not inside)
        first = self._first_seen.setdefault(reading.sensor, reading.ts)
        if reading.sensor not in self._reached_band and reading.ts - first < self.pulldown_ms:
            return Finding(False, t)  # pre-cooling: not yet in band since we first heard this tag
        limit = band.high_c if above else band.low_c
        assert limit is not None
        side = "above" if above else "below"
        return Finding(True, t, limit, f"{t:.1f} °C is {side} the {reading.profile} limit {limit:g} °C",
                       min_duration_ms=minimum)


@dataclass(frozen=True)
class RateRule:
    """Temperature changing faster than `max_c_per_min` (a door open, a failing compressor, a sensor fault)."""

    max_c_per_min: float
    min_duration_ms: int
    clear_after_ms: int
    kind: str = "temp_rate"
    severity: Severity = "warning"

    def check(self, reading: Reading, previous: Reading | None) -> Finding | None:
        if reading.temp_c is None or previous is None or previous.temp_c is None or reading.ts <= previous.ts:
            return None
        rate = (reading.temp_c - previous.temp_c) / ((reading.ts - previous.ts) / 60_000)
        active = abs(rate) > self.max_c_per_min
        return Finding(active, rate, self.max_c_per_min,
                       f"temperature changing {rate:+.2f} °C/min (limit ±{self.max_c_per_min:g})" if active else "")


@dataclass(frozen=True)
class BatteryRule:
    """Tag battery below `low_mv`: replace it before its readings turn to garbage."""

    low_mv: int
    min_duration_ms: int
    clear_after_ms: int
    kind: str = "battery_low"
    severity: Severity = "warning"

    def check(self, reading: Reading, previous: Reading | None) -> Finding | None:
        if reading.battery_mv is None:
            return None
        active = reading.battery_mv < self.low_mv
        return Finding(active, reading.battery_mv, self.low_mv,
                       f"battery {reading.battery_mv} mV is below {self.low_mv} mV" if active else "")


PULLDOWN_PERIOD_MS: Final = 60_000  # the pull-down ratio's steps (models.runtime.pulldown's default period)
PULLDOWN_PASS_ROWS = 512  # verdicts computed in one pass: [512, 330] float64 arrays, under the agent's mmap threshold
# (edge_agent/allocator.py); 5,000 tags heard since the same minute are due in the same tick


@dataclass
class PulldownRule:
    """Pull-downs slower than `below` × the same sensor's own in the hours before (`models.runtime.pulldown`): cooling
    capacity fading (a refrigerant leak) hours before the air leaves its band. Keeps each sensor's temperature per
    minute step for the ratio's span (a fixed-size ring, edge_agent/detect/history.py) and gives a verdict when a
    sensor's reading opens a new step, for the span ending where that step will end (from what has come), at most
    every `every_ms`;
    none while there are too few pull-downs to compare (an open alert then stays as it is)."""

    below: float
    min_duration_ms: int
    clear_after_ms: int
    every_ms: int = 60_000
    kind: str = "cooling_fading"
    severity: Severity = "warning"
    _steps: StepRing = field(default_factory=lambda: StepRing(PULLDOWN_PERIOD_MS, pulldown_steps()))
    _judged: dict[str, int] = field(default_factory=dict)  # sensor → end of the span of its last verdict

    def check(self, reading: Reading, previous: Reading | None) -> Finding | None:
        return self.check_many([(reading, previous)])[0]

    def check_many(self, pairs: Sequence[tuple[Reading, Reading | None]]) -> list[Finding | None]:
        """`check` on each reading in order: the verdicts due are taken together (one ratio computation for all),
        or at once when a sensor would move on before they are (its ring then no longer holds their span)."""
        out: list[Finding | None] = [None] * len(pairs)
        due: list[tuple[int, int, int]] = []  # (index, row, step opened) of the verdicts due
        waiting: set[str] = set()
        ring = self._steps
        if pairs:  # rows of tags silent for the ring's span before the tick go to new ones (see AnomalyDetector)
            ring.recycle(min(min(reading.ts for reading, _ in pairs), int(time.time() * 1000)))
        for j, (reading, _) in enumerate(pairs):
            if reading.temp_c is None:
                continue
            if reading.sensor in waiting and ring.advances(reading.sensor, reading.ts):
                self._judge(due, out)
                due, waiting = [], set()
            opened = ring.add(reading.sensor, reading.ts, reading.temp_c)
            if opened is None:
                continue
            end = (opened + 1) * ring.period_ms
            last = self._judged.get(reading.sensor)
            if last is not None and end - last < self.every_ms:
                continue
            self._judged[reading.sensor] = end
            due.append((j, ring.row(reading.sensor), opened))
            waiting.add(reading.sensor)
        self._judge(due, out)
        return out

    def _judge(self, due: list[tuple[int, int, int]], out: list[Finding | None]) -> None:
        if not due:
            return
        index, rows, ends = (np.array(column, dtype=np.int64) for column in zip(*due, strict=True))
        for start in range(0, len(index), PULLDOWN_PASS_ROWS):  # tags heard together are due together
            part = slice(start, start + PULLDOWN_PASS_ROWS)
            grid = self._steps.temperatures(rows[part], ends[part], self._steps.slots)
            ratios = pulldown_ratio_of_steps(grid, self._steps.period_ms / 1000)
            for j, ratio in zip(index[part].tolist(), ratios.tolist(), strict=True):
                out[j] = self._finding(ratio)

    def _finding(self, ratio: float) -> Finding | None:
        if np.isnan(ratio):
            return None
        active = ratio < self.below
        return Finding(active, ratio, self.below, fading_reason(ratio) if active else "")
