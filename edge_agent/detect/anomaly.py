"""Model-based detection: per-sensor steps in fixed-size rings (detect/history.py), one batched TFLite invoke per
tick for every sensor whose next window is due, scores attached to readings and turned into `anomaly` alerts past
the threshold."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
import numpy as np

from edge_agent.detect.alerts import AlertTracker
from edge_agent.detect.history import PASS_ROWS, StepRing, needs_spread, slots_for
from edge_agent.detect.model import ActiveModel
from edge_agent.detect.shadow import ShadowRun
from models.runtime.features import FeatureSpec
from protocol.messages import AlertEvent, Reading

RingKey = tuple[int, int, int, bool]  # period (ms), steps kept, steps with values, spread kept


def ring_key(spec: FeatureSpec) -> RingKey:
    """The ring a spec's windows are read from."""
    return round(spec.sample_period_s * 1000), slots_for(spec), spec.window, needs_spread(spec)


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
    rings: dict[RingKey, StepRing] = field(default_factory=dict)  # sensors' steps, by what a model's spec reads

    def score(self, readings: list[Reading]) -> tuple[list[Reading], list[AlertEvent]]:
        """Add `readings` to their sensors' rings and score every window due (one invoke per model) and return the
        readings (those that completed a window carry its score in `anomaly_score`) and the alert events.

        Windows end where sample periods end: when a sensor's reading opens a new step of its grid, the window
        ending where that step will end is scored from what has come (that reading is its newest step): one window
        a period, however fast the tag reports, and no later than the reading. Models whose specs read the same
        steps share a ring; a ring no model reads any more is dropped.
        """
        out = list(readings)
        events: list[AlertEvent] = []
        self._keep_rings_in_use(readings)
        due: list[tuple[int, RingKey, int]] = []  # (reading index, ring, step opened) of the windows due
        waiting: set[tuple[RingKey, str]] = set()  # (ring, sensor) with a window due, not yet taken
        plans: dict[str, list[tuple[RingKey, StepRing, int]]] = {}  # profile → (key, ring, first window) per ring
        for i, r in enumerate(readings):
            if r.temp_c is None:
                continue
            plan = plans.get(r.profile)
            if plan is None:
                plan = plans[r.profile] = self._plan(self._models_for(r.profile))
            for key, ring, first_window_ms in plan:
                if (key, r.sensor) in waiting and ring.advances(r.sensor, r.ts):
                    self._judge(due, readings, out, events)  # a backlog: its ring moves on past what they read
                    due, waiting = [], set()
                opened = ring.add(r.sensor, r.ts, r.temp_c, r.rh_pct,
                                  None if r.battery_mv is None else float(r.battery_mv))
                if opened is None:
                    continue
                if (opened + 1) * ring.period_ms - ring.first_ms[ring.row(r.sensor)] < first_window_ms:
                    continue  # as in training, a window ends a full window after the sensor's history begins
                due.append((i, key, opened))
                waiting.add((key, r.sensor))
        self._judge(due, readings, out, events)
        return out, events

    def _keep_rings_in_use(self, readings: list[Reading]) -> None:
        """Drop the rings no active or shadow model reads, and give rows of tags long silent to new ones (once per
        tick, before any window of it is due: a row is never taken from a sensor with a window waiting)."""
        used = {ring_key(m.spec) for profile in {*self.models, *self.shadows} for m in self._models_for(profile)}
        for key in [k for k in self.rings if k not in used]:
            del self.rings[key]
        if readings and self.rings:
            # the tick's earliest reading (a sensor silent for a ring's span before it has nothing the ring still
            # needs: its next reading clears the whole ring), never later than the clock (a frame from the future)
            now = min(min(r.ts for r in readings), int(time.time() * 1000))
            for ring in self.rings.values():
                ring.recycle(now)

    def _plan(self, models: list[ActiveModel]) -> list[tuple[RingKey, StepRing, int]]:
        """For a profile's models: the rings they read (one per distinct need: period, steps kept, window, spread)
        and how long after a sensor's first reading its first window of each ends (a full window, as in
        training)."""
        plan: dict[RingKey, int] = {}
        for m in models:
            key = ring_key(m.spec)
            if key not in self.rings:
                period, slots, recent, spread = key
                self.rings[key] = StepRing(period, slots, stats=True, recent=recent, spread=spread)
            first = (m.spec.window - 1) * key[0]
            plan[key] = max(first, plan.get(key, first))
        return [(key, self.rings[key], first) for key, first in plan.items()]

    def _judge(self, due: list[tuple[int, RingKey, int]], readings: list[Reading], out: list[Reading],
               events: list[AlertEvent]) -> None:
        """Score the windows `due` with their profiles' models and shadows and turn scores into alert events."""
        by_profile: dict[str, list[tuple[int, RingKey, int]]] = {}
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
            m = model.manifest
            threshold = m.threshold
            for i, s in active_scores.items():
                r = readings[i]
                out[i] = msgspec.structs.replace(r, anomaly_score=round(min(s, 1e6), 6))
                if s <= threshold and self.tracker.idle(r.sensor, "anomaly"):
                    continue  # below threshold, nothing pending or open: the tracker would do nothing
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
             entries: list[tuple[int, RingKey, int]], shadow: bool = False) -> dict[int, float]:
        """Scores by reading index for the windows `entries` of the model's ring (one batched invoke)."""
        if model is None:
            return {}
        key = ring_key(model.spec)
        mine = [(i, opened) for i, k, opened in entries if k == key]
        ring = self.rings.get(key)
        if not mine or ring is None:
            return {}  # windows planned for another model (one rolled back within this tick): none for this one
        rows = np.array([ring.row(readings[i].sensor) for i, _ in mine], dtype=np.int64)
        ends = np.array([opened for _, opened in mine], dtype=np.int64)
        out: dict[int, float] = {}
        for start in range(0, len(mine), PASS_ROWS):  # a pass's arrays stay small (history.PASS_ROWS)
            inputs, usable = ring.windows(model.spec, rows[start:start + PASS_ROWS], ends[start:start + PASS_ROWS])
            picked = [i for (i, _), ok in zip(mine[start:start + PASS_ROWS], usable.tolist(), strict=True) if ok]
            if not picked:
                continue
            try:
                scores = model.scores(inputs[usable])
            except (RuntimeError, ValueError) as exc:  # a model that fails at run time is taken out at once
                if shadow:
                    self.shadows.pop(profile, None)
                else:
                    del self.models[profile]
                self.on_failure(profile, exc)
                return {}
            out.update(zip(picked, np.where(np.isfinite(scores), scores, 1e6).astype(np.float64).tolist(),
                           strict=True))
        return out

    def latency_ms(self, quantile: float) -> float | None:
        """The worst of the active models' invoke-latency quantiles (None before any invoke)."""
        values = [v for m in self.models.values() if (v := m.scorer.latency_ms(quantile)) is not None]
        return max(values) if values else None
