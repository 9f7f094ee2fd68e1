"""Stored readings + staff labels → training and evaluation series.

Alerts resolved as false_alarm / defrost / loading mark normal behaviour: those windows stay in the training
data. Windows resolved as real_excursion / sensor_fault are cut out of the training data (with a margin) and
kept, with their labels, for evaluation; `other` is cut out and not used at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from cloud.api_client.responses import StoredReading
from models.training.data import Series

NORMAL_CODES: Final = ("false_alarm", "defrost", "loading")
INCIDENT_CODES: Final = ("real_excursion", "sensor_fault")
MARGIN_MS: Final = 30 * 60_000  # cut this much either side of an incident out of the training data
MIN_SEGMENT: Final = 120  # readings; shorter pieces between cuts are dropped


@dataclass(frozen=True)
class Label:
    """A staff-resolved window on one sensor."""

    sensor: str
    start_ms: int
    end_ms: int
    code: str

    @property
    def benign(self) -> bool:
        return self.code in NORMAL_CODES


@dataclass
class LabelledData:
    """What a job trains and evaluates on."""

    train: list[Series] = field(default_factory=list)
    validation: list[Series] = field(default_factory=list)
    evaluation: list[tuple[Series, list[Label]]] = field(default_factory=list)  # whole series, every label
    counts: dict[str, int] = field(default_factory=dict)


def to_series(sensor: str, profile: str, readings: Sequence[StoredReading]) -> Series | None:
    """One sensor's stored readings (API rows, oldest first) as a Series; None when empty."""
    if not readings:
        return None

    def column(values: Sequence[float | None]) -> np.ndarray:
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)

    return Series(sensor=sensor, profile=profile, ts_ms=np.array([r.ts for r in readings], dtype=np.int64),
                  temp_c=column([r.temp_c for r in readings]), rh_pct=column([r.rh_pct for r in readings]),
                  battery_mv=column([r.battery_mv for r in readings]))


def _slice(s: Series, keep: np.ndarray) -> Series:
    return Series(s.sensor, s.profile, s.ts_ms[keep], s.temp_c[keep], s.rh_pct[keep], s.battery_mv[keep])


def _segments(s: Series, cut: np.ndarray) -> list[Series]:
    """The runs of readings not in `cut`, each at least MIN_SEGMENT long."""
    out: list[Series] = []
    keep = ~cut
    edges = np.flatnonzero(np.diff(np.concatenate([[0], keep.astype(np.int8), [0]])))
    for lo, hi in zip(edges[::2], edges[1::2], strict=True):
        if hi - lo >= MIN_SEGMENT:
            mask = np.zeros(len(keep), dtype=bool)
            mask[lo:hi] = True
            out.append(_slice(s, mask))
    return out


def build(series: Sequence[Series], labels: Sequence[Label], *, validation_share: float = 0.25) -> LabelledData:
    """Cut incidents (and `other`) out of training; the last `validation_share` of each piece calibrates the
    threshold; every series with its labels is the evaluation set."""
    data = LabelledData(counts={code: 0 for code in (*NORMAL_CODES, *INCIDENT_CODES, "other")})
    for label in labels:
        data.counts[label.code if label.code in data.counts else "other"] += 1
    for s in series:
        mine = [lab for lab in labels if lab.sensor == s.sensor]
        cut = np.zeros(len(s.ts_ms), dtype=bool)
        for lab in mine:
            if not lab.benign:
                cut |= (s.ts_ms >= lab.start_ms - MARGIN_MS) & (s.ts_ms <= lab.end_ms + MARGIN_MS)
        for piece in _segments(s, cut):
            split = int(len(piece.ts_ms) * (1 - validation_share))
            first, last = np.arange(len(piece.ts_ms)) < split, np.arange(len(piece.ts_ms)) >= split
            data.train.append(_slice(piece, first))
            if last.sum() >= MIN_SEGMENT // 2:
                data.validation.append(_slice(piece, last))
        data.evaluation.append((s, mine))
    return data
