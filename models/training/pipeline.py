"""The one artifact pipeline every path calls (CLI, training worker, bench, demo): int8 export calibrated on
representative windows → threshold calibrated on the int8 model's own scores → int8 judged against fp32 on alert
episodes at the thresholds each ships with → manifest, signed.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np

from models.runtime.features import LEVEL_FREE_FEATURES, score
from models.runtime.manifest import Manifest, ModelFiles, sha256_file, write_signed
from models.runtime.tflite import TfliteModel
from models.training.augment import inject_faults
from models.training.data import Series
from models.training.evaluate import ModelDetector
from models.training.export import FAULT_SHARES, ExportRejected, QuantisationCheck, compare, convert_int8
from models.training.tflite_io import int8_output_ceiling
from models.training.train import MODEL_BUDGET_SHARE, TrainedModel, model_threshold, predict

log = logging.getLogger("models.training.pipeline")

# Agents from this version on compute the level-free channels (models.runtime.features.LEVEL_FREE_FEATURES).
LEVEL_FREE_AGENT_VERSION: Final = "0.2.0"
SAME_SCORE_ERROR: Final = 0.05
SAME_DECISIONS: Final = 0.999
MAX_MISSED_SHARE: Final = 0.1  # of the faults fp32 detects that int8 may miss, beyond one


@dataclass(frozen=True)
class EpisodeCheck:
    """int8 (at its own threshold) against fp32 (at its own) on alert episodes over the same readings."""

    normal_sensor_days: float
    fp32_normal: int
    int8_normal: int
    allowed_normal: float
    fp32_faults: int  # faults with an alert from fp32
    int8_faults: int  # faults with an alert from int8
    missed_faults: int  # detected by fp32, not by int8
    allowed_missed: int

    @property
    def passed(self) -> bool:
        """Within tolerance on both: alerts on normal data and the fault episodes int8 misses."""
        return self.int8_normal <= self.allowed_normal and self.missed_faults <= self.allowed_missed

    def reasons(self) -> list[str]:
        """What failed, in words, with what to do."""
        out = []
        if self.int8_normal > self.allowed_normal:
            out.append(f"int8 opens {self.int8_normal} alerts on {self.normal_sensor_days:.2f} normal sensor-days "
                       f"where fp32 opens {self.fp32_normal} (at most {self.allowed_normal:.1f})")
        if self.missed_faults > self.allowed_missed:
            out.append(f"int8 misses {self.missed_faults} of the {self.fp32_faults} faults fp32 raises an alert "
                       f"for (at most {self.allowed_missed})")
        return out

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"normal_sensor_days": round(self.normal_sensor_days, 3), "fp32_normal_alerts": self.fp32_normal,
                "int8_normal_alerts": self.int8_normal, "allowed_normal_alerts": round(self.allowed_normal, 2),
                "faults_alerted_fp32": self.fp32_faults, "faults_alerted_int8": self.int8_faults,
                "faults_missed_by_int8": self.missed_faults, "allowed_missed": self.allowed_missed,
                "passed": self.passed}


@dataclass(frozen=True)
class Exported:
    """Where an exported model landed and what its manifest says."""

    files: ModelFiles
    manifest: Manifest
    check: QuantisationCheck
    episodes: EpisodeCheck | None
    signed: bool


def _detects(detector: ModelDetector, series: Series, onset_ms: int) -> bool:
    return any(e.end_ms >= onset_ms for e in detector.alerts(series))


def episode_check(fp32: ModelDetector, int8: ModelDetector, normal: list[Series], faulty: list[tuple[Series, int]],
                  *, max_alerts_per_sensor_day: float) -> EpisodeCheck:
    """Count both models' alert episodes: on normal data int8 may open no more than the budget or fp32's count,
    whichever is larger, plus Poisson slack (2√n + 1); of the faults fp32 raises an alert for (any episode from
    the fault's onset on) int8 may miss at most one plus a tenth. Faults, not episodes, are compared: on a fault
    the two models' episodes split and merge differently at their own thresholds, which matters to nobody."""
    days = sum(s.days for s in normal)
    f_norm = sum(len(fp32.alerts(s)) for s in normal)
    i_norm = sum(len(int8.alerts(s)) for s in normal)
    base = max(float(f_norm), max_alerts_per_sensor_day * days)
    by_fp32 = [(s, onset) for s, onset in faulty if _detects(fp32, s, onset)]
    by_int8 = sum(1 for s, onset in faulty if _detects(int8, s, onset))
    missed = sum(1 for s, onset in by_fp32 if not _detects(int8, s, onset))
    return EpisodeCheck(normal_sensor_days=days, fp32_normal=f_norm, int8_normal=i_norm,
                        allowed_normal=base + 2.0 * math.sqrt(base) + 1.0, fp32_faults=len(by_fp32),
                        int8_faults=by_int8, missed_faults=missed,
                        allowed_missed=1 + int(MAX_MISSED_SHARE * len(by_fp32)))


def check_series(trained: TrainedModel, *, seed: int = 0) -> list[tuple[Series, int]]:
    """Readings with faults for the int8 check, each with its fault's onset: the trained model's incident series
    (simulator scenarios, staff labels: the whole series counts) and every synthetic fault injected once into each
    normal validation series."""
    injected = [(item.series, int(item.series.ts_ms[item.onset]))
                for item in inject_faults(trained.validation_series, seed=seed + 1, min_steps=trained.spec.window)]
    return [*((s, int(s.ts_ms[0])) for s in trained.incident_series if len(s.ts_ms)), *injected]


def same_scores(windows: QuantisationCheck) -> bool:
    """int8 gives fp32's scores near the threshold (within `SAME_SCORE_ERROR` of the spread) and the same decisions
    on ≥ 99.9 % of windows: then faults fp32 barely alerts on and int8 barely misses at its own threshold are
    borderline for both, not a fault of the quantisation (a 3-sensor model: 7 of 48 such, score error 0.009)."""
    return windows.score_error <= SAME_SCORE_ERROR and windows.decision_agreement >= SAME_DECISIONS


def min_agent_version(trained: TrainedModel) -> str | None:
    """The oldest agent that can compute this model's inputs (None: every agent can)."""
    return LEVEL_FREE_AGENT_VERSION if set(trained.spec.features) & LEVEL_FREE_FEATURES else None


def _window_check(trained: TrainedModel, path: Path, threshold: float) -> QuantisationCheck:
    windows = np.ascontiguousarray(trained.validation, dtype=np.float32)
    fp32 = score(windows, predict(trained.module, windows))
    int8 = score(windows, TfliteModel(path).outputs(windows))
    return compare(fp32, int8, threshold)


def _int8_threshold(trained: TrainedModel, int8: ModelDetector, alert_budget: float) -> float:
    scored = [int8.scores(s) for s in trained.validation_series]
    return model_threshold([s for _, s in scored], [e for e, _ in scored], trained.validation_series, trained.spec,
                           alert_budget)


def _ceiling_reached(trained: TrainedModel, path: Path, threshold: float) -> float | None:
    """The int8 classifier's highest output when the threshold is at it (nothing can then exceed the threshold: a
    model that never alerts), else None. Only a classifier's output is its score."""
    if trained.architecture != "classifier":
        return None
    ceiling = int8_output_ceiling(path.read_bytes())
    return ceiling if ceiling is not None and threshold >= ceiling * (1.0 - 1e-6) else None


def build_artifact(trained: TrainedModel, directory: Path, *, name: str, version: str,
                   private_key_pem: bytes | None, max_alerts_per_sensor_day: float | None = None,
                   extra_metrics: dict[str, Any] | None = None) -> Exported:
    """Export `trained` as int8, calibrate the threshold that ships on the int8 scores (to MODEL_BUDGET_SHARE of the
    alert budget), check it against fp32, write the manifest (signed when a key is given). ExportRejected (files
    removed) says why and what to do."""
    budget = trained.alert_budget if max_alerts_per_sensor_day is None else max_alerts_per_sensor_day
    stem = f"{name}-{version}"
    files = ModelFiles.for_stem(directory, stem)
    directory.mkdir(parents=True, exist_ok=True)
    fp32 = ModelDetector(trained.spec, trained.threshold, lambda x: predict(trained.module, x), name="fp32")
    check: EpisodeCheck | None = None
    windows: QuantisationCheck | None = None
    threshold = trained.threshold
    faulty = check_series(trained) if trained.validation_series else []
    shares = FAULT_SHARES if len(trained.calibration_faults) else FAULT_SHARES[:1]
    ceiling: float | None = None
    for share in shares:  # the first calibration that passes; each try costs a few seconds
        convert_int8(trained, files.model, fault_share=share)
        if not trained.validation_series:
            break
        int8 = ModelDetector(trained.spec, trained.threshold, TfliteModel(files.model).outputs, name="int8")
        threshold = _int8_threshold(trained, int8, budget)
        int8.threshold = threshold
        check = episode_check(fp32, int8, trained.validation_series, faulty, max_alerts_per_sensor_day=budget)
        windows = _window_check(trained, files.model, threshold)
        ceiling = _ceiling_reached(trained, files.model, threshold)
        log.info("int8 try model=%s fault_share=%.3f threshold=%.4f %s", stem, share, threshold, check.as_dict())
        if ceiling is None and (check.passed or same_scores(windows)):
            break
    if not trained.validation_series:  # a checkpoint from before them: the fp32 threshold ships, reachable too
        ceiling = _ceiling_reached(trained, files.model, threshold)
    if ceiling is not None:
        files.model.unlink(missing_ok=True)
        raise ExportRejected(
            f"the threshold calibrated on the validation data, {threshold:.4g}, is at or above the int8 model's "
            f"highest output ({ceiling:.4g}) after {len(shares)} calibration(s): no window could ever score above it, "
            "so the model would never alert. The validation data (the last 20 % of a CSV's time, or the validation "
            "seeds) scores as high as the model can express, as only faults should: it probably holds an incident or "
            "a stretch unlike the training data. What to do: train on a stretch of normal operation only (cut the file "
            "before the incident), or on more normal data")
    if windows is None:  # no validation series (a checkpoint from before them): window figures only
        windows = _window_check(trained, files.model, threshold)
    log.info("int8 check model=%s threshold int8=%.4f fp32=%.4f episodes=%s windows=%s", stem, threshold,
             trained.threshold, check.as_dict() if check else None, windows.as_dict())
    if check is not None and not check.passed and not same_scores(windows):
        files.model.unlink(missing_ok=True)
        raise ExportRejected(
            f"int8 disagrees with fp32 on alert episodes after {len(FAULT_SHARES)} calibrations: "
            + "; ".join(check.reasons()) + ". What to do: train on "
            "more normal data (the threshold is then calibrated on more of it), or try another architecture "
            "(--architecture); the figures are in the log line 'int8 check'")
    metrics = {**trained.metrics, "threshold_fp32": trained.threshold, "int8_check": windows.as_dict(),
               "int8_episodes": check.as_dict() if check else None,
               "int8_accepted_by": "episodes" if check is None or check.passed else "same_scores",
               "int8_calibration_fault_share": round(share, 4),
               "alert_budget_per_sensor_day": budget, "model_budget_per_sensor_day": budget * MODEL_BUDGET_SHARE,
               "tflite_bytes": files.model.stat().st_size,
               **(extra_metrics or {})}
    manifest = Manifest(name=name, version=version, profile=trained.profile, feature_spec=trained.spec.to_dict(),
                        threshold=float(threshold), training_range=trained.training_range, metrics=metrics,
                        sha256=sha256_file(files.model), created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                        architecture=trained.architecture, min_agent_version=min_agent_version(trained))
    write_signed(manifest, directory, private_key_pem)
    return Exported(files=files, manifest=manifest, check=windows, episodes=check,
                    signed=private_key_pem is not None)

