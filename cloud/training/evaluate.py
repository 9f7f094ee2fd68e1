"""Evaluation of a candidate (and the current model) on the job's labelled data: recall on the incidents staff
confirmed, alerts on the windows staff called normal, false alerts per sensor-day; and the quality gate."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from cloud.api_client.responses import Evaluation, Gate, ModelFigures
from cloud.training.dataset import Label
from models.training.data import Series
from models.training.evaluate import GRACE_MS, Detector, Tally, quality_gate


def tally(detector: Detector, evaluation: Sequence[tuple[Series, list[Label]]]) -> tuple[Tally, dict[str, int]]:
    """(models.training.evaluate Tally over the labelled series, {"benign_windows": n,
    "benign_windows_alerted": n}); an alert belongs to a window when it opens before the window's end + GRACE_MS
    (the model sees a window's past)."""
    result = Tally()
    benign_total = benign_hit = 0
    for series, labels in evaluation:
        alerts = detector.alerts(series)
        result.sensor_days += series.days
        incidents = [lab for lab in labels if not lab.benign]
        for lab in incidents:
            kind = lab.code
            result.incidents[kind] = result.incidents.get(kind, 0) + 1
            hits = [a for a in alerts if a.opened_ms <= lab.end_ms + GRACE_MS and a.end_ms >= lab.start_ms]
            if hits:
                result.detected[kind] = result.detected.get(kind, 0) + 1
                delay = max(0.0, (min(a.opened_ms for a in hits) - lab.start_ms) / 60_000)
                result.delays_min.setdefault(kind, []).append(delay)
        for a in alerts:
            if not any(a.opened_ms <= lab.end_ms + GRACE_MS and a.end_ms >= lab.start_ms for lab in incidents):
                result.false_alerts += 1
        for lab in labels:
            if lab.benign:
                benign_total += 1
                if any(a.opened_ms <= lab.end_ms + GRACE_MS and a.end_ms >= lab.start_ms for a in alerts):
                    benign_hit += 1
                    result.false_on_benign[lab.code] = result.false_on_benign.get(lab.code, 0) + 1
    return result, {"benign_windows": benign_total, "benign_windows_alerted": benign_hit}


FAULT_RECALL_TOLERANCE = 0.05


def fault_recall(detector: Detector, faults: Sequence[tuple[Series, int]]) -> float | None:
    """Share of the synthetic faults (series, onset ms) the detector raises an alert for from the onset on."""
    if not faults:
        return None
    return sum(1 for s, onset in faults if any(a.end_ms >= onset for a in detector.alerts(s))) / len(faults)


def compare(candidate: Detector, current: Detector | None, evaluation: Sequence[tuple[Series, list[Label]]],
            faults: Sequence[tuple[Series, int]] = ()) -> Evaluation:
    """Both models on the same data, and the gate's verdict (candidate no worse than current, or absolute).

    `faults`: synthetic faults injected into the job's own normal readings (models.training.augment). A period with no
    confirmed incident cannot measure recall; these still can, so a retrained model that stopped seeing faults
    (5 h of one quiet room teach little) is refused when it finds fewer than the current model does."""
    cand, cand_benign = tally(candidate, evaluation)
    mine = fault_recall(candidate, faults)
    cand_figures = cand.summary() | cand_benign | {"synthetic_fault_recall": mine}
    current_summary = current_figures = theirs = None
    if current is not None:
        cur, cur_benign = tally(current, evaluation)
        current_summary = cur.summary()
        theirs = fault_recall(current, faults)
        current_figures = current_summary | cur_benign | {"synthetic_fault_recall": theirs}
    if not cand.incidents:  # no confirmed incident in the period: recall cannot be measured, only false alerts
        summary = cand_figures | {"recall": 1.0}
        reference = None if current_summary is None else current_summary | {"recall": 1.0}
    else:
        summary, reference = cand_figures, current_summary
    decision = quality_gate(summary, reference)
    reasons = list(decision.reasons)
    if mine is not None and theirs is not None and mine < theirs - FAULT_RECALL_TOLERANCE:
        reasons.append(f"recall on {len(faults)} synthetic faults {mine:.2f} below current {theirs:.2f}")
    return Evaluation(candidate=msgspec.convert(cand_figures, ModelFigures),
                      current=None if current_figures is None else msgspec.convert(current_figures, ModelFigures),
                      gate=Gate(passed=not reasons, reasons=reasons))
