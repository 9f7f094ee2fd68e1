"""Model-based detection: per-sensor steps in fixed-size rings (detect/history.py), one batched TFLite invoke per
tick for every sensor whose next window is due, scores attached to readings and turned into `anomaly` alerts past
the threshold."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
import numpy as np

from edge_agent.detect.alerts import AlertTracker
from edge_agent.detect.history import StepRing, needs_spread, slots_for
from edge_agent.detect.model import ActiveModel
from edge_agent.detect.shadow import ShadowRun
from protocol.messages import AlertEvent, Reading


@dataclass
class AnomalyDetector:
    """Scores readings with the model of their profile; without one, readings pass through unscored."""

    gateway: str
    tracker: AlertTracker
    models: dict[str, ActiveModel] = field(default_factory=dict)  # by asset profile
    shadows: dict[str, ShadowRun] = field(default_factory=dict)  # candidates on probation, by profile
    on_failure: Callable[[str, Exception], None] = lambda _profile, _exc: None  # the agent rolls back
    min_duration_periods: float = 2.0
    clear_after_periods: float = 3.0
    rings: dict[int, StepRing] = field(default_factory=dict)  # sensors' steps, by sample period (ms)

    def score(self, readings: list[Reading]) -> tuple[list[Reading], list[AlertEvent]]:
        """Add `readings` to their sensors' rings and score every window due (one invoke per model) and return the
        readings (those that completed a window carry its score in `anomaly_score`) and the alert events.

        Windows end where sample periods end: when a sensor's reading opens a new step of its grid, the window
        ending where that step will end is scored from what has come (that reading is its newest step): one window
        a period, however fast the tag reports, and no later than the reading.
        """
        out = list(readings)
        events: list[AlertEvent] = []
        due: list[tuple[int, int, int]] = []  # (reading index, period, step opened) of the windows due
        waiting: set[tuple[int, str]] = set()  # (period, sensor) with a window due, not yet taken
        plans: dict[str, list[tuple[int, StepRing, int]]] = {}  # profile → (period, ring, first window) per period
        for i, r in enumerate(readings):
            if r.temp_c is None:
                continue
            plan = plans.get(r.profile)
            if plan is None:
                plan = plans[r.profile] = self._plan(self._models_for(r.profile))
            for period, ring, first_window_ms in plan:
                if (period, r.sensor) in waiting and ring.advances(r.sensor, r.ts):
                    self._judge(due, readings, out, events)  # a backlog: its ring moves on past what they read
                    due, waiting = [], set()
                opened = ring.add(r.sensor, r.ts, r.temp_c, r.rh_pct,
                                  None if r.battery_mv is None else float(r.battery_mv))
                if opened is None:
                    continue
                if (opened + 1) * period - ring.first_ms[ring.row(r.sensor)] < first_window_ms:
                    continue  # as in training, a window ends a full window after the sensor's history begins
                due.append((i, period, opened))
                waiting.add((period, r.sensor))
        self._judge(due, readings, out, events)
        return out, events

    def _plan(self, models: list[ActiveModel]) -> list[tuple[int, StepRing, int]]:
        """For a profile's models: per sample period, the ring they read, holding what the longest-reaching reads (a
        model that reaches further than a ring holds gets a new ring: its windows begin again), and how long after
        a sensor's first reading its first window ends (a full window, as in training)."""
        plan: dict[int, tuple[StepRing, int]] = {}
        for m in models:
            period = _period_ms(m)
            ring = self.rings.get(period)
            if (ring is None or ring.slots < slots_for(m.spec) or ring.recent < m.spec.window
                    or (needs_spread(m.spec) and not ring.spread)):
                ring = self.rings[period] = StepRing(period, slots_for(m.spec), stats=True, recent=m.spec.window,
                                                     spread=needs_spread(m.spec))
            first = (m.spec.window - 1) * period
            plan[period] = (ring, max(first, plan[period][1]) if period in plan else first)
        return [(period, ring, first) for period, (ring, first) in plan.items()]

    def _judge(self, due: list[tuple[int, int, int]], readings: list[Reading], out: list[Reading],
               events: list[AlertEvent]) -> None:
        """Score the windows `due` with their profiles' models and shadows and turn scores into alert events."""
        by_profile: dict[str, list[tuple[int, int, int]]] = {}
        for entry in due:
            by_profile.setdefault(readings[entry[0]].profile, []).append(entry)
        for profile, entries in by_profile.items():
            active_scores = self._run(profile, self.models.get(profile), readings, entries)
            shadow = self.shadows.get(profile)
            shadow_scores = self._run(profile, shadow.model if shadow else None, readings, entries, shadow=True)
            if shadow is not None:
                active = self.models.get(profile)
                for i, s in shadow_scores.items():
                    shadow.observe(readings[i].sensor, readings[i].ts, s, active, active_scores.get(i))
            model = self.models.get(profile)
            if model is None:
                continue
            period_ms = model.spec.sample_period_s * 1000
            for i, s in active_scores.items():
                r = readings[i]
                out[i] = msgspec.structs.replace(r, anomaly_score=round(min(s, 1e6), 6))
                threshold = model.manifest.threshold
                m = model.manifest
                reason = f"model {m.name} {m.version}: score {s:.3g} above {threshold:.3g}" if s > threshold else ""
                event = self.tracker.observe(
                    sensor=r.sensor, kind="anomaly", active=s > threshold, ts_ms=r.ts,
                    min_duration_ms=int(self.min_duration_periods * period_ms),
                    clear_after_ms=int(self.clear_after_periods * period_ms), severity="warning", source="model",
                    value=min(s, 1e6), threshold=threshold, model_version=m.version, reason=reason,
                )
                if event is not None:
                    events.append(event)

    def _models_for(self, profile: str) -> list[ActiveModel]:
        shadow = self.shadows.get(profile)
        return [m for m in (self.models.get(profile), shadow.model if shadow else None) if m is not None]

    def _run(self, profile: str, model: ActiveModel | None, readings: list[Reading],
             entries: list[tuple[int, int, int]], shadow: bool = False) -> dict[int, float]:
        """Scores by reading index for the windows `entries` of the model's period (one batched invoke)."""
        if model is None:
            return {}
        period = _period_ms(model)
        mine = [(i, closed) for i, p, closed in entries if p == period]
        ring = self.rings.get(period)
        if not mine or ring is None:
            return {}
        rows = np.array([ring.row(readings[i].sensor) for i, _ in mine], dtype=np.int64)
        ends = np.array([closed for _, closed in mine], dtype=np.int64)
        inputs, usable = ring.windows(model.spec, rows, ends)
        picked = [i for (i, _), ok in zip(mine, usable.tolist(), strict=True) if ok]
        if not picked:
            return {}
        windows = inputs[usable]
        try:
            scores = model.scores(windows)
        except (RuntimeError, ValueError) as exc:  # a model that fails at run time is taken out at once
            if shadow:
                self.shadows.pop(profile, None)
            else:
                del self.models[profile]
            self.on_failure(profile, exc)
            return {}
        return {i: float(v) if np.isfinite(v) else 1e6 for i, v in zip(picked, scores, strict=True)}

    def latency_ms(self, quantile: float) -> float | None:
        """The worst of the active models' invoke-latency quantiles (None before any invoke)."""
        values = [v for m in self.models.values() if (v := m.scorer.latency_ms(quantile)) is not None]
        return max(values) if values else None


def _period_ms(model: ActiveModel) -> int:
    return round(model.spec.sample_period_s * 1000)
