"""Model-based detection: per-sensor history (detect/history.py), one batched TFLite invoke per tick for every
sensor whose next window is due, scores attached to readings and turned into `anomaly` alerts past the threshold."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
import numpy as np

from edge_agent.detect.alerts import AlertTracker
from edge_agent.detect.history import SensorHistory
from edge_agent.detect.model import ActiveModel
from edge_agent.detect.shadow import ShadowRun
from models.runtime.features import History, windows_at_many
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
    history: dict[str, SensorHistory] = field(default_factory=dict)

    def score(self, readings: list[Reading]) -> tuple[list[Reading], list[AlertEvent]]:
        """Add `readings` to the history, score every sensor whose next window is due (one invoke per model),
        and return the readings (scored ones carry `anomaly_score`) and the alert events."""
        due: dict[str, list[int]] = {}
        keep: dict[str, int] = {}  # sensors given readings: how much history their next windows read
        for i, r in enumerate(readings):
            models = self._models_for(r.profile)
            if not models or r.temp_c is None:
                continue
            h = self.history.get(r.sensor)
            if h is None:
                h = self.history[r.sensor] = SensorHistory()
            elif h.last_ms is not None and r.ts < h.last_ms:
                continue  # a late, out-of-order frame: stored, but windows read a sorted history
            h.add(r)  # trimmed once the tick's windows are taken: a backlog arriving at once still has them all
            keep[r.sensor] = max(m.spec.reach_ms for m in models)
            assert h.first_ms is not None
            if r.ts - h.first_ms < max((m.spec.window - 1) * m.spec.sample_period_s * 1000 for m in models):
                continue  # as in training, a window ends a full window after the sensor's history begins
            if r.ts - h.last_scored_ms >= models[0].spec.sample_period_s * 1000:
                h.last_scored_ms = r.ts  # one window per sample period, however fast the tag reports
                due.setdefault(r.profile, []).append(i)
        events: list[AlertEvent] = []
        out = list(readings)
        for profile, indexes in due.items():
            active_scores = self._run(profile, self.models.get(profile), readings, indexes)
            shadow = self.shadows.get(profile)
            shadow_scores = self._run(profile, shadow.model if shadow else None, readings, indexes, shadow=True)
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
        for sensor, keep_ms in keep.items():  # later windows end at later readings: they read no further back
            self.history[sensor].trim(keep_ms)
        return out, events

    def _models_for(self, profile: str) -> list[ActiveModel]:
        shadow = self.shadows.get(profile)
        return [m for m in (self.models.get(profile), shadow.model if shadow else None) if m is not None]

    def _run(self, profile: str, model: ActiveModel | None, readings: list[Reading], indexes: list[int],
             shadow: bool = False) -> dict[int, float]:
        """Scores by reading index for the windows ending at `indexes` (one batched invoke)."""
        if model is None:
            return {}
        slot: dict[str, int] = {}  # sensor → its place in `histories`
        histories: list[History] = []
        owner: list[int] = []
        for i in indexes:
            sensor = readings[i].sensor
            if sensor not in slot:
                slot[sensor] = len(histories)
                histories.append(self.history[sensor].columns())  # views: nothing is added during this tick
            owner.append(slot[sensor])
        # one pass for every window due: each reads its sensor's readings up to its own (causal)
        inputs, usable = windows_at_many(model.spec, histories, owner, end_ms=[readings[i].ts for i in indexes])
        picked = [i for i, ok in zip(indexes, usable.tolist(), strict=True) if ok]
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
