"""A candidate model on probation: it scores the same windows as the active model, raises nothing, and is
promoted or discarded on how its alert rate and scores compare."""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.detect.anomaly import ActiveModel
from protocol.messages import ShadowReport


@dataclass
class ShadowRun:
    """Counts per window both models scored; the decision is taken once `probation_ms` of readings passed."""

    model: ActiveModel
    desired_version: int
    probation_ms: int
    max_alert_ratio: float
    started_ms: int | None = None
    last_ms: int = 0
    windows: int = 0
    active_alerts: int = 0
    shadow_alerts: int = 0
    drift_sum: float = 0.0

    def observe(self, ts_ms: int, active_score: float | None, active_threshold: float | None,
                shadow_score: float) -> None:
        """One window scored by the candidate (and by the active model, if there is one)."""
        self.started_ms = ts_ms if self.started_ms is None else self.started_ms
        self.last_ms = max(self.last_ms, ts_ms)
        self.windows += 1
        self.shadow_alerts += shadow_score > self.model.manifest.threshold
        if active_score is not None and active_threshold:
            self.active_alerts += active_score > active_threshold
            self.drift_sum += abs(shadow_score - active_score) / active_threshold

    @property
    def finished(self) -> bool:
        return self.started_ms is not None and self.last_ms - self.started_ms >= self.probation_ms

    def passes(self) -> tuple[bool, str]:
        """Whether the candidate may replace the active model, and why not."""
        limit = self.max_alert_ratio * max(self.active_alerts, 1)
        if self.shadow_alerts > limit:
            return False, (f"shadow alert rate too high: {self.shadow_alerts} windows above threshold vs "
                           f"{self.active_alerts} for the active model (limit {limit:g})")
        return True, ""

    def report(self, state: str, reason: str = "") -> ShadowReport:
        drift = self.drift_sum / self.windows if self.windows and self.active_alerts is not None else None
        return ShadowReport(model_version=self.model.manifest.version,
                            state="promoted" if state == "promoted" else "discarded" if state == "discarded"
                            else "running",
                            started_at=self.started_ms or 946_684_800_000, windows=self.windows,
                            active_alerts=self.active_alerts, shadow_alerts=self.shadow_alerts,
                            score_drift=round(min(drift, 1e6), 6) if drift is not None else None, reason=reason[:500])
