"""A candidate model on probation: it scores the same windows as the active model, raises nothing, and counts the
alert episodes each model would have raised there; the cloud judges it on those counts (docs/rollouts.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np

from edge_agent.detect.model import ActiveModel
from models.runtime.episodes import episodes
from protocol.messages import ShadowReport

MAX_KEPT_VERDICTS: Final = 4096  # per sensor and model: an alert that flaps open for days is cut here (counted again)


@dataclass
class EpisodeCounter:
    """One model's alert episodes on one sensor's verdicts (time-ordered), replayed through
    `models.runtime.episodes.episodes`, the agent's own alert lifecycle. Only what can change the count is kept: once a
    quiet stretch of `clear_after_ms` follows the last verdict above the threshold, any alert has cleared and
    nothing is pending, so the kept verdicts are counted and dropped; within a stretch, a run of verdicts above
    the threshold needs only its first and last (an alert opens once the run spans the minimum duration), a quiet
    run only its first (only the stretch's length matters, and it settles the counter). An alert that never
    settles keeps at most MAX_KEPT_VERDICTS; past that they are counted and dropped, and a still-open alert counts
    once more when it goes on (a flapping model is counted high, never low)."""

    min_duration_ms: int
    clear_after_ms: int
    settled: int = 0  # episodes of the verdicts already dropped
    ts: list[int] = field(default_factory=list)
    above: list[bool] = field(default_factory=list)
    quiet_since: int | None = None  # first verdict below the threshold since the last one above

    def add(self, ts_ms: int, above: bool) -> None:
        """One verdict: was the score above the model's threshold for the window ending at `ts_ms`."""
        if not above:
            if self.quiet_since is None:
                self.quiet_since = ts_ms
                if self.ts:
                    self._keep(ts_ms, above)  # the run's first quiet verdict: it ends a pending condition
            if self.ts and ts_ms - self.quiet_since >= self.clear_after_ms:
                self._settle()
            return
        self.quiet_since = None
        if len(self.ts) >= 2 and self.above[-1] and self.above[-2]:
            self.ts[-1] = ts_ms  # the run's last verdict moves on
        else:
            self._keep(ts_ms, above)

    def _keep(self, ts_ms: int, above: bool) -> None:
        self.ts.append(ts_ms)
        self.above.append(above)
        if len(self.ts) > MAX_KEPT_VERDICTS:
            self._settle()

    def _settle(self) -> None:
        self.settled += self._replay()
        self.ts.clear()
        self.above.clear()

    def _replay(self) -> int:
        return len(episodes(np.array(self.above, dtype=bool), np.array(self.ts, dtype=np.int64),
                            min_duration_ms=self.min_duration_ms, clear_after_ms=self.clear_after_ms))

    @property
    def count(self) -> int:
        """Episodes so far; one still open counts (it was raised)."""
        return self.settled + (self._replay() if self.ts else 0)


@dataclass
class ShadowRun:
    """A candidate on probation. Over the windows both models scored (every window the candidate scored when the
    profile had no active model) it counts windows, windows above each threshold, alert episodes per model through
    the agent's lifecycle (`min_duration_periods` / `clear_after_periods` of each model's sample period) and the
    sensor-hours they cover (one sample period per window). It never decides: the cloud sends the candidate again
    as `active` (promoted) or another model (discarded)."""

    model: ActiveModel
    desired_version: int
    has_current: bool  # the profile had an active model when the probation began
    min_duration_periods: float = 2.0
    clear_after_periods: float = 3.0
    started_ms: int | None = None
    last_ms: int = 0
    windows: int = 0
    active_alerts: int = 0
    shadow_alerts: int = 0
    drift_sum: float = 0.0
    drift_windows: int = 0
    sensor_ms: int = 0
    candidate_episodes: dict[str, EpisodeCounter] = field(default_factory=dict)
    current_episodes: dict[str, EpisodeCounter] = field(default_factory=dict)

    def _counter(self, counters: dict[str, EpisodeCounter], sensor: str, model: ActiveModel) -> EpisodeCounter:
        found = counters.get(sensor)
        if found is None:
            period_ms = model.spec.sample_period_s * 1000
            found = counters[sensor] = EpisodeCounter(round(self.min_duration_periods * period_ms),
                                                      round(self.clear_after_periods * period_ms))
        return found

    def observe(self, sensor: str, ts_ms: int, shadow_score: float, active: ActiveModel | None,
                active_score: float | None) -> None:
        """One window of `sensor` scored by the candidate, and by the active model when it scored it too."""
        compared = active is not None and active_score is not None
        if self.has_current and not compared:
            return  # not the same readings: the active model had no usable window here
        self.started_ms = ts_ms if self.started_ms is None else self.started_ms
        self.last_ms = max(self.last_ms, ts_ms)
        self.windows += 1
        self.sensor_ms += round(self.model.spec.sample_period_s * 1000)
        above = shadow_score > self.model.manifest.threshold
        self.shadow_alerts += above
        self._counter(self.candidate_episodes, sensor, self.model).add(ts_ms, above)
        if active is not None and active_score is not None:
            threshold = active.manifest.threshold
            self.active_alerts += active_score > threshold
            self._counter(self.current_episodes, sensor, active).add(ts_ms, active_score > threshold)
            if threshold:
                self.drift_sum += abs(shadow_score - active_score) / abs(threshold)
                self.drift_windows += 1

    @property
    def sensor_hours(self) -> float:
        return self.sensor_ms / 3_600_000

    @property
    def shadow_episode_count(self) -> int:
        return sum(c.count for c in self.candidate_episodes.values())

    @property
    def active_episode_count(self) -> int | None:
        return sum(c.count for c in self.current_episodes.values()) if self.has_current else None

    def report(self, state: str, reason: str = "") -> ShadowReport:
        drift = self.drift_sum / self.drift_windows if self.drift_windows else None
        return ShadowReport(model_version=self.model.manifest.version,
                            state="promoted" if state == "promoted" else "discarded" if state == "discarded"
                            else "running",
                            started_at=self.started_ms or 946_684_800_000, windows=self.windows,
                            active_alerts=self.active_alerts, shadow_alerts=self.shadow_alerts,
                            score_drift=round(min(drift, 1e6), 6) if drift is not None else None, reason=reason[:500],
                            last_at=self.last_ms or None, sensor_hours=round(min(self.sensor_hours, 1e9), 4),
                            shadow_episodes=self.shadow_episode_count, active_episodes=self.active_episode_count)
