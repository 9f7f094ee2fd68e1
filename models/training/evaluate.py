"""Evaluation on the simulator's labelled scenarios (held-out seeds): the model beside two baselines, same run.

Event-level recall per incident kind, detection delay from the labelled start, false alerts per sensor-day
(alerts that overlap no incident; benign events count against), as a table and as JSON; and the quality gate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import numpy as np
from numpy.typing import NDArray

from models.runtime.episodes import Episode, episodes, model_lifecycle_ms
from models.runtime.features import FeatureSpec, FloatArray, raw_windows, score, window_ends, windows_at
from models.runtime.pulldown import FADING_BELOW, FADING_FOR_S, pulldown_ratio
from models.runtime.rule_defaults import CLEAR_AFTER_S, CLEAR_MARGIN_C, SILENT_AFTER_S
from models.training.data import HELD_OUT_SEEDS, Series, series_of
from models.training.simulated import Label, scenario_dataset, scenario_names, scenario_profile

GRACE_MS: Final = 60 * 60_000  # an alert up to an hour after an incident's labelled end still belongs to it
Outputs = Callable[[FloatArray], FloatArray]


class Detector(Protocol):
    """Anything that turns one sensor's history into alert episodes."""

    name: str

    def alerts(self, series: Series) -> list[Episode]:
        """Alert episodes for this sensor."""


@dataclass
class ModelDetector:
    """A model (fp32 torch or int8 TFLite, via `outputs`) scored at every sample period, threshold as shipped."""

    spec: FeatureSpec
    threshold: float
    outputs: Outputs
    name: str = "model"
    _last: tuple[Series, list[Episode]] | None = field(default=None, init=False, repr=False, compare=False)

    def scores(self, series: Series) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Window ends with usable windows and the score at each (causal: only readings up to each end)."""
        ends = window_ends(self.spec, series.ts_ms)
        x, usable = windows_at(self.spec, series.ts_ms, series.temp_c, series.rh_pct, series.battery_mv, end_ms=ends)
        x = x[usable]
        return ends[usable], (score(x, self.outputs(x)) if len(x) else np.zeros(0, dtype=np.float32))

    def alerts(self, series: Series) -> list[Episode]:
        if self._last is not None and self._last[0] is series:  # a Gateway asks again for the same series
            return self._last[1]
        ends, s = self.scores(series)
        min_ms, clear_ms = model_lifecycle_ms(self.spec.sample_period_s)
        found = episodes(s > self.threshold, ends, min_duration_ms=min_ms, clear_after_ms=clear_ms)
        self._last = (series, found)
        return found


@dataclass
class StaticRule:
    """The industry default: temperature outside the profile's band for more than `minutes` (0.3 °C hysteresis)."""

    low_c: float | None
    high_c: float | None
    minutes: float = 30.0  # the industry's custom, not the gateway's per-profile hold
    clear_minutes: float = CLEAR_AFTER_S / 60.0
    margin_c: float = CLEAR_MARGIN_C
    name: str = "static_rule"

    def alerts(self, series: Series) -> list[Episode]:
        ok = ~np.isnan(series.temp_c)
        t, ts = series.temp_c[ok], series.ts_ms[ok]
        low = -np.inf if self.low_c is None else self.low_c
        high = np.inf if self.high_c is None else self.high_c
        active = (t < low) | (t > high)
        hold = ~active & ((t < low + self.margin_c) | (t > high - self.margin_c))
        return episodes(active, ts, hold=hold, min_duration_ms=round(self.minutes * 60_000),
                        clear_after_ms=round(self.clear_minutes * 60_000))


@dataclass
class RollingZScore:
    """|newest − mean of the previous `steps`| / (their std + `floor_c`) above `z`, per sample period."""

    sample_period_s: float = 60.0
    steps: int = 60
    z: float = 4.0
    floor_c: float = 0.2
    name: str = "rolling_z"

    def alerts(self, series: Series) -> list[Episode]:
        spec = FeatureSpec(self.steps, self.sample_period_s, ("temp_c",), (0.0,), (1.0,))
        ends = window_ends(spec, series.ts_ms)
        raw, usable = raw_windows(spec, series.ts_ms, series.temp_c, end_ms=ends)
        past, newest = raw[usable, :-1, 0].astype(np.float64), raw[usable, -1, 0].astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            zscore = np.abs(newest - past.mean(axis=1)) / (past.std(axis=1) + self.floor_c)
        min_ms, clear_ms = model_lifecycle_ms(self.sample_period_s)
        return episodes(zscore > self.z, ends[usable], min_duration_ms=min_ms, clear_after_ms=clear_ms)


@dataclass
class SilenceRule:
    """The gateway's hard rule for a tag that went quiet: no reading for `after_s` (the agent's `silent_after_s`)
    opens `sensor_silent` then; the next reading clears it. A model cannot see readings that never came."""

    after_s: float = SILENT_AFTER_S
    name: str = "silence_rule"

    def alerts(self, series: Series) -> list[Episode]:
        ts = series.ts_ms
        if len(ts) < 2:
            return []
        limit = round(self.after_s * 1000)
        gaps = np.flatnonzero(np.diff(ts) > limit)
        return [Episode(int(ts[i]), int(ts[i]) + limit, int(ts[i + 1])) for i in gaps]


@dataclass
class PulldownRule:
    """The gateway's `cooling_fading` rule (edge_agent.detect.rules.PulldownRule) replayed: the pull-down ratio
    (`models.runtime.pulldown`) below `below` for `minutes`, verdicts every sample period; no verdict holds."""

    below: float = FADING_BELOW
    minutes: float = FADING_FOR_S / 60.0
    clear_minutes: float = CLEAR_AFTER_S / 60.0
    sample_period_s: float = 60.0
    name: str = "pulldown_rule"

    def alerts(self, series: Series) -> list[Episode]:
        ok = ~np.isnan(series.temp_c)
        if ok.sum() < 2:
            return []
        ts, temp = series.ts_ms[ok], series.temp_c[ok]
        ends = np.arange(int(ts[0]), int(ts[-1]) + 1, round(self.sample_period_s * 1000), dtype=np.int64)
        ratio = pulldown_ratio(ts, temp, ends, self.sample_period_s)
        return episodes(ratio < self.below, ends, hold=np.isnan(ratio), min_duration_ms=round(self.minutes * 60_000),
                        clear_after_ms=round(self.clear_minutes * 60_000))


def gateway_rules() -> list[Detector]:
    """The agent's rules that see what a model cannot: a tag gone quiet, pull-downs slowing over hours."""
    return [SilenceRule(), PulldownRule()]


@dataclass
class Gateway:
    """What a gateway raises for one sensor: every alert of `parts` (the model beside the agent's hard rules)."""

    parts: list[Detector]
    name: str = "gateway"

    def alerts(self, series: Series) -> list[Episode]:
        return sorted((a for part in self.parts for a in part.alerts(series)), key=lambda a: a.opened_ms)


@dataclass
class Tally:
    """One detector's counts over a suite."""

    detected: dict[str, int] = field(default_factory=dict)
    incidents: dict[str, int] = field(default_factory=dict)
    delays_min: dict[str, list[float]] = field(default_factory=dict)
    false_alerts: int = 0
    false_on_benign: dict[str, int] = field(default_factory=dict)
    sensor_days: float = 0.0

    @classmethod
    def pooled(cls, tallies: Iterable[Tally]) -> Tally:
        """One tally of several over different runs (models of other training seeds on the same suite): counts and
        sensor-days add up, delays are kept together."""
        out = cls()
        for t in tallies:
            for mine, theirs in ((out.detected, t.detected), (out.incidents, t.incidents),
                                 (out.false_on_benign, t.false_on_benign)):
                for kind, n in theirs.items():
                    mine[kind] = mine.get(kind, 0) + n
            for kind, delays in t.delays_min.items():
                out.delays_min.setdefault(kind, []).extend(delays)
            out.false_alerts += t.false_alerts
            out.sensor_days += t.sensor_days
        return out

    def summary(self) -> dict[str, Any]:
        """JSON-ready figures: per kind and overall."""
        kinds = {}
        for kind in sorted(self.incidents):
            delays = self.delays_min.get(kind, [])
            kinds[kind] = {"incidents": self.incidents[kind], "detected": self.detected.get(kind, 0),
                           "recall": round(self.detected.get(kind, 0) / self.incidents[kind], 4),
                           "median_delay_min": round(float(np.median(delays)), 1) if delays else None}
        total = sum(self.incidents.values())
        all_delays = [d for v in self.delays_min.values() for d in v]
        return {"kinds": kinds,
                "recall": round(sum(self.detected.values()) / total, 4) if total else None,
                "median_delay_min": round(float(np.median(all_delays)), 1) if all_delays else None,
                "false_alerts": self.false_alerts, "sensor_days": round(self.sensor_days, 2),
                "false_alerts_per_sensor_day": round(self.false_alerts / self.sensor_days, 4)
                if self.sensor_days else None,
                "false_alerts_on_benign": dict(sorted(self.false_on_benign.items()))}


def _match(tally: Tally, alerts: list[Episode], labels: list[Label], days: float) -> None:
    tally.sensor_days += days
    incidents = [lab for lab in labels if not lab.benign]
    for lab in incidents:
        tally.incidents[lab.kind] = tally.incidents.get(lab.kind, 0) + 1
        hits = [a for a in alerts if a.opened_ms <= lab.end_ms + GRACE_MS and a.end_ms >= lab.start_ms]
        if hits:
            tally.detected[lab.kind] = tally.detected.get(lab.kind, 0) + 1
            delay = max(0.0, (min(a.opened_ms for a in hits) - lab.start_ms) / 60_000)
            tally.delays_min.setdefault(lab.kind, []).append(delay)
    for a in alerts:
        if any(a.opened_ms <= lab.end_ms + GRACE_MS and a.end_ms >= lab.start_ms for lab in incidents):
            continue
        tally.false_alerts += 1
        for lab in labels:
            if lab.benign and a.since_ms <= lab.end_ms + GRACE_MS and a.end_ms >= lab.start_ms:
                tally.false_on_benign[lab.kind] = tally.false_on_benign.get(lab.kind, 0) + 1
                break


@dataclass
class SuiteResult:
    """Every detector's tally over the same held-out runs."""

    tallies: dict[str, Tally]
    runs: int
    seeds: list[int]
    skipped: list[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"runs": self.runs, "seeds": self.seeds, "skipped_scenarios": self.skipped,
                "detectors": {name: t.summary() for name, t in self.tallies.items()}}

    def table(self) -> str:
        """Recall (and median delay in minutes) per incident kind, then false alerts, one column per detector."""
        names = list(self.tallies)
        summaries = {n: self.tallies[n].summary() for n in names}
        kinds = sorted({k for s in summaries.values() for k in s["kinds"]})
        head = f"{'incident kind':<20}" + "".join(f"{n:>24}" for n in names)
        lines = [head, "-" * len(head)]

        def cell(entry: dict[str, Any] | None) -> str:
            if entry is None:
                return f"{'—':>24}"
            delay = "—" if entry["median_delay_min"] is None else f"{entry['median_delay_min']:.0f} min"
            return f"{entry['recall']:>12.2f} ({delay:>8})  "

        for kind in kinds:
            lines.append(f"{kind:<20}" + "".join(cell(summaries[n]["kinds"].get(kind)) for n in names))
        lines.append("-" * len(head))
        lines.append(f"{'all incidents':<20}" + "".join(
            cell({"recall": s["recall"] or 0.0, "median_delay_min": s["median_delay_min"]})
            for s in summaries.values()))
        lines.append(f"{'false / sensor-day':<20}" + "".join(
            f"{s['false_alerts_per_sensor_day'] or 0.0:>22.3f}  " for s in summaries.values()))
        lines.append(f"{'false alerts':<20}" + "".join(
            f"{s['false_alerts']:>22d}  " for s in summaries.values()))
        return "\n".join(lines)


def run_suite(detectors: Callable[[str], list[Detector] | None], *, scenarios: Iterable[str] | None = None,
              seeds: Iterable[int] = HELD_OUT_SEEDS[:4], days: float = 1.0, sample_period_s: float = 60.0
              ) -> SuiteResult:
    """Run every scenario (default: all) for every seed; `detectors(profile)` gives the detectors for a profile
    (None: that profile is skipped). The first sensor of each run is the affected one; all count for false alerts.
    """
    names = list(scenarios) if scenarios is not None else scenario_names()
    seed_list = list(seeds)
    tallies: dict[str, Tally] = {}
    skipped: list[str] = []
    runs = 0
    for name in names:
        profile = scenario_profile(name)
        chosen = detectors(profile)
        if chosen is None:
            skipped.append(name)
            continue
        for seed in seed_list:
            dataset = scenario_dataset(name, seed, days=days, sample_period_s=sample_period_s)
            runs += 1
            for series in series_of(dataset):
                labels = [lab for lab in dataset.labels if lab.sensor == series.sensor]
                for detector in chosen:
                    _match(tallies.setdefault(detector.name, Tally()), detector.alerts(series), labels, days)
    return SuiteResult(tallies=tallies, runs=runs, seeds=seed_list, skipped=skipped)


@dataclass(frozen=True)
class GateDecision:
    """Whether a candidate may be registered, and why not."""

    passed: bool
    reasons: list[str]


def quality_gate(candidate: dict[str, Any], current: dict[str, Any] | None, *, recall_tolerance: float = 0.01,
                 false_alert_tolerance: float = 0.01, delay_tolerance_min: float = 5.0) -> GateDecision:
    """Candidate vs current model (both `Tally.summary()` on the same held-out suite): no worse on recall, false
    alerts per sensor-day or median delay, within tolerances. Without a current model: recall ≥ 0.95 and false
    alerts ≤ 0.1 per sensor-day (the issue's targets)."""
    reasons = []
    recall = candidate["recall"] or 0.0
    fa = candidate["false_alerts_per_sensor_day"] or 0.0
    if current is None:
        if recall < 0.95:
            reasons.append(f"recall {recall:.3f} < 0.95")
        if fa > 0.1:
            reasons.append(f"false alerts {fa:.3f}/sensor-day > 0.1")
        return GateDecision(not reasons, reasons)
    if recall < (current["recall"] or 0.0) - recall_tolerance:
        reasons.append(f"recall {recall:.3f} below current {current['recall']:.3f}")
    if fa > (current["false_alerts_per_sensor_day"] or 0.0) + false_alert_tolerance:
        reasons.append(f"false alerts {fa:.3f}/sensor-day above current {current['false_alerts_per_sensor_day']:.3f}")
    delay, ref = candidate["median_delay_min"], current["median_delay_min"]
    if delay is not None and ref is not None and delay > ref + delay_tolerance_min:
        reasons.append(f"median delay {delay:.0f} min above current {ref:.0f} min")
    return GateDecision(not reasons, reasons)
