"""The canary verdict: the candidate's alert episodes per sensor-day against the current model's over the same
readings (or, for a first model, against the profile's alert budget), summed over the canaries, taken only once
there are enough sensor-hours of shadow scoring and every canary has been on probation long enough."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

# Alert episodes per sensor-day a gateway may raise on a sensor (the model's threshold is calibrated to
# `models.training.train.MODEL_BUDGET_SHARE` of it): the default of
# `models.training.train.TrainConfig.max_alerts_per_sensor_day`, used only when a model's manifest does not record
# its own (`metrics.alert_budget_per_sensor_day`). Kept here so the API never imports torch; a test holds the two equal.
DEFAULT_ALERT_BUDGET: Final = 0.1
# The evidence a verdict needs by default: at a budget of 0.1 episodes per sensor-day, 10 sensor-days are the
# least over which one episode is within the budget, so fewer could only ever promote a model that raised none.
DEFAULT_MIN_SENSOR_HOURS: Final = 240.0
MANIFEST_BUDGET_KEY: Final = "alert_budget_per_sensor_day"
HALT_P: Final = 0.05  # a candidate is halted when a model at the limit would raise its episodes this rarely


def poisson_tail(k: int, expected: float) -> float:
    """P(X ≥ k) for X ~ Poisson(expected) (terms summed in log space: any mean, any count)."""
    if k <= 0:
        return 1.0
    if expected <= 0 or math.isnan(expected):
        return 0.0
    if math.isinf(expected):  # a limit without bound (a current model's rate over a vanishing span): reached surely
        return 1.0
    logs = [-expected + i * math.log(expected) - math.lgamma(i + 1) for i in range(k)]
    top = max(logs)
    below = math.exp(top) * sum(math.exp(v - top) for v in logs)
    return min(1.0, max(0.0, 1.0 - below))


Decision = Literal["wait", "promote", "halt"]


def alert_budget(manifest: Mapping[str, Any] | None) -> float:
    """The alert budget a registered model's manifest records (what its training was given; its threshold was
    calibrated to a share of it), else the training default."""
    metrics = (manifest or {}).get("metrics") or {}
    value = metrics.get(MANIFEST_BUDGET_KEY) if isinstance(metrics, Mapping) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= 1000:
        return float(value)
    return DEFAULT_ALERT_BUDGET


@dataclass(frozen=True)
class CanaryShadow:
    """One canary's latest shadow report for the rollout's model and desired version (None: none yet)."""

    gateway_id: str
    report: Mapping[str, Any] | None

    @property
    def sensor_hours(self) -> float:
        return float((self.report or {}).get("sensor_hours") or 0.0)

    @property
    def probation_s(self) -> float:
        """Reading time the shadow has covered, first window to newest."""
        report = self.report or {}
        start, last = report.get("started_at"), report.get("last_at")
        return (last - start) / 1000 if isinstance(start, int) and isinstance(last, int) else 0.0


@dataclass(frozen=True)
class Evidence:
    """What the canaries reported, summed; rates are alert episodes per sensor-day."""

    canaries: int
    sensor_hours: float
    min_sensor_hours: float
    candidate_episodes: int
    current_episodes: int | None  # None: no canary had a current model (a first model)
    current_sensor_hours: float  # the sensor-hours the current model scored beside the candidate
    alert_budget: float
    max_alert_ratio: float

    @property
    def candidate_per_day(self) -> float | None:
        return self.candidate_episodes * 24 / self.sensor_hours if self.sensor_hours > 0 else None

    @property
    def current_per_day(self) -> float | None:
        if self.current_episodes is None or self.current_sensor_hours <= 0:
            return None
        return self.current_episodes * 24 / self.current_sensor_hours  # a denormal span gives inf, not 0-division

    @property
    def limit_per_day(self) -> float:
        """The most the candidate may raise: `max_alert_ratio` × the current model's rate, never below the budget
        (a model within the budget is what training aims for); the budget alone for a first model."""
        current = self.current_per_day
        return self.alert_budget if current is None else max(self.max_alert_ratio * current, self.alert_budget)

    @property
    def expected_at_limit(self) -> float:
        """The episodes a model raising exactly `limit_per_day` would raise over this evidence."""
        return self.limit_per_day * self.sensor_hours / 24

    @property
    def p_value(self) -> float:
        """How likely a model at the limit raises as many episodes as the candidate did, or more (Poisson)."""
        return poisson_tail(self.candidate_episodes, self.expected_at_limit)

    @property
    def within_limit(self) -> bool:
        """Not shown to be above the limit: halted only when a model at the limit would raise this many episodes
        in under `HALT_P` of such canaries. Over 16 sensor-hours a budget of 0.1 per sensor-day expects 0.07
        episodes, and a rule of "rate ≤ limit" halted every model that raised one (7 % of models exactly at the
        budget do); over the default 240 sensor-hours it halts at 4 episodes where the budget expects 1."""
        return self.p_value >= HALT_P

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with the rates (stored on the rollout, shown on its page)."""
        rates = {"candidate_per_day": self.candidate_per_day, "current_per_day": self.current_per_day,
                 "limit_per_day": self.limit_per_day, "expected_at_limit": self.expected_at_limit,
                 "p_value": self.p_value}
        hours = {"sensor_hours": round(self.sensor_hours, 2),
                 "current_sensor_hours": round(self.current_sensor_hours, 2)}
        return {**asdict(self), **{k: round(v, 4) if v is not None else None for k, v in rates.items()}, **hours}


@dataclass(frozen=True)
class Verdict:
    """`wait` (not yet), `promote` or `halt`, and the sentence the rollout shows."""

    decision: Decision
    text: str
    evidence: Evidence


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _episodes(n: int) -> str:
    return f"{n} alert episode{'' if n == 1 else 's'}"


def judge(shadows: Sequence[CanaryShadow], *, min_sensor_hours: float, probation_s: float, alert_budget: float,
          max_alert_ratio: float) -> Verdict:
    """The verdict on the canaries' shadows so far."""
    reported = [s for s in shadows if s.report is not None]
    compared = [s for s in reported if (s.report or {}).get("active_episodes") is not None]
    evidence = Evidence(
        canaries=len(shadows), sensor_hours=sum(s.sensor_hours for s in reported), min_sensor_hours=min_sensor_hours,
        candidate_episodes=sum(int((s.report or {}).get("shadow_episodes") or 0) for s in reported),
        current_episodes=sum(int((s.report or {})["active_episodes"]) for s in compared) if compared else None,
        current_sensor_hours=sum(s.sensor_hours for s in compared), alert_budget=alert_budget,
        max_alert_ratio=max_alert_ratio)
    short = f"not enough data yet: {evidence.sensor_hours:.1f} sensor-hours of {min_sensor_hours:g}"
    if missing := [s.gateway_id for s in shadows if s.report is None]:
        return Verdict("wait", f"{short} (no shadow report yet from {', '.join(missing[:5])})", evidence)
    if evidence.sensor_hours < min_sensor_hours:
        return Verdict("wait", short, evidence)
    if young := [s for s in shadows if s.probation_s < probation_s]:
        first = min(young, key=lambda s: s.probation_s)
        return Verdict("wait", f"on probation: {first.probation_s / 3600:.2f} h of reading time of "
                               f"{probation_s / 3600:g} h on {first.gateway_id}", evidence)
    over = f"over {evidence.sensor_hours:.1f} sensor-hours on {len(shadows)} canar{'y' if len(shadows) == 1 else 'ies'}"
    candidate = evidence.candidate_per_day or 0.0
    ok = evidence.within_limit
    test = f"; p = {evidence.p_value:.3f} for a model at the limit (halt below {HALT_P:g})"
    if evidence.current_episodes is None:
        text = (f"first model: {_episodes(evidence.candidate_episodes)} ({_rate(candidate)} per sensor-day) {over}, "
                f"{'not above' if ok else 'above'} the alert budget {alert_budget:g}{test}")
    else:
        text = (f"candidate {_episodes(evidence.candidate_episodes)} ({_rate(candidate)} per sensor-day) vs "
                f"{evidence.current_episodes} for the current model ({_rate(evidence.current_per_day)}) {over}; "
                f"limit {_rate(evidence.limit_per_day)} (max({max_alert_ratio:g} × current, budget {alert_budget:g}))"
                f"{test}")
    return Verdict("promote" if ok else "halt", f"{'promoted' if ok else 'halted'}: {text}", evidence)
