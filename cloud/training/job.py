"""One retraining job, end to end: query (readings + labels through the API), train (CUDA when present), export
int8, evaluate against the current model, quality gate, sign, register. Progress goes to the API as it runs."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from cloud.api_client.client import OpsClient
from cloud.api_client.responses import Evaluation, TrainingJob, TrainingResult, TrainingUpdate
from cloud.training import dataset
from cloud.training.evaluate import compare
from models.training.augment import inject_faults
from models.training.evaluate import Detector, ModelDetector

if TYPE_CHECKING:
    from models.runtime.manifest import Manifest

log = logging.getLogger(__name__)
Report = Callable[[TrainingUpdate], None]


class JobFailed(Exception):  # noqa: N818 (reads as the verdict it is)
    """The job cannot produce a model; the message says why (shown on the job), `result` what was measured."""

    def __init__(self, message: str, result: TrainingResult | None = None) -> None:
        super().__init__(message)
        self.result = result


def _detector(model_path: Path, manifest: Manifest, name: str) -> Detector:
    from models.runtime.features import FeatureSpec
    from models.runtime.tflite import TfliteModel

    return ModelDetector(FeatureSpec.from_dict(manifest.feature_spec), manifest.threshold,
                         TfliteModel(model_path).outputs, name=name)


def _current(api: OpsClient, profile: str, folder: Path, *, calibrated_to: object) -> Detector | str | None:
    """The newest registered model of the profile, downloaded as gateways get it (None: there is none); why it is
    not a reference when its threshold was calibrated to another share of the alert budget than the candidate's
    (`metrics.model_budget_per_sensor_day`; models from before 2026-12-07 lack it: they took the whole budget and
    open sooner, so a candidate would be refused for being calibrated as it should)."""
    from models.runtime.manifest import Manifest

    found = api.models(profile=profile)
    if not found:
        return None
    stem = found[0].stem
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.tflite").write_bytes(api.download(f"{stem}.tflite"))
    manifest = Manifest.from_bytes(api.download(f"{stem}.manifest.json"))
    if manifest.metrics.get("model_budget_per_sensor_day") != calibrated_to:
        return (f"current model {stem} was calibrated to "
                f"{manifest.metrics.get('model_budget_per_sensor_day', 'the whole alert budget')} alerts per "
                f"sensor-day, the candidate to {calibrated_to}: judged against the absolute targets, as a first model")
    return _detector(folder / f"{stem}.tflite", manifest, f"current {stem}")


def run_job(api: OpsClient, job: TrainingJob, *, work_dir: Path, signing_key: bytes, device: str | None,
            report: Report) -> TrainingResult:
    """Run `job`; returns the result (registered model, evaluation, timings). JobFailed when it cannot."""
    from models.runtime.manifest import ModelFiles, load_private_key, write_signed
    from models.training.artifacts import default_name, default_version, export_model
    from models.training.train import TrainConfig, train_on_series

    load_private_key(signing_key)  # a bad key fails the job before any work
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    report(TrainingUpdate(stage="query", progress=0.05,
                          log=[f"query profile={job.profile} start={job.start} end={job.end}"]))
    data = api.training_dataset(job.id)
    labels = [dataset.Label(lab.sensor, lab.start, lab.end, str(lab.code)) for lab in data.labels]
    series = [s for sensor in data.sensors if (s := dataset.to_series(
        sensor, job.profile, api.readings(sensor, job.start, job.end))) is not None]
    labelled = dataset.build(series, labels)
    timings["query_s"] = time.perf_counter() - t0
    readings = sum(len(s.ts_ms) for s in series)
    report(TrainingUpdate(stage="train", progress=0.2,
                          log=[f"sensors={len(series)} readings={readings} labels={labelled.counts}"]))
    if not labelled.train or not labelled.validation:
        raise JobFailed(f"too little data: {len(series)} sensors with readings in the period")

    t1 = time.perf_counter()
    cfg = TrainConfig(job.profile, epochs=job.epochs, seed=job.seed, device=device)
    try:
        trained = train_on_series(labelled.train, labelled.validation, cfg)
    except ValueError as exc:
        raise JobFailed(str(exc)) from None
    timings["train_s"] = time.perf_counter() - t1
    trained.training_range = {"source": "influxdb", "profile": job.profile, "from_ms": job.start,
                              "to_ms": job.end, "sensors": len(series), "readings": readings,
                              "labels": labelled.counts, "training_job": job.id}
    report(TrainingUpdate(stage="export", progress=0.6, log=[
        f"trained in {timings['train_s']:.1f} s device={trained.metrics['device']} "
        f"windows={trained.metrics['train_windows']} loss={trained.metrics['final_loss']} "
        f"threshold={trained.threshold:.4f}"]))

    t2 = time.perf_counter()
    name, version = default_name(job.profile), job.version or default_version()
    folder = work_dir / f"job-{job.id}" / f"{name}-{version}"
    shutil.rmtree(folder, ignore_errors=True)
    from models.training.export import ExportRejected

    trained.incident_series = [s for s, labels in labelled.evaluation if any(not lab.benign for lab in labels)]
    # the one artifact pipeline: int8, threshold calibrated on its scores, episode check (models.training.pipeline)
    try:
        exported = export_model(trained, folder, name=name, version=version, private_key_pem=None)
    except ExportRejected as exc:
        raise JobFailed(f"int8 export rejected: {exc}") from None
    shipped, threshold = exported.manifest, exported.manifest.threshold
    timings["export_s"] = time.perf_counter() - t2
    report(TrainingUpdate(stage="evaluate", progress=0.75, log=[
        f"exported {exported.files.model.name} bytes={exported.files.model.stat().st_size} "
        f"threshold int8={threshold:.4f} fp32={trained.threshold:.4f}"]))

    t3 = time.perf_counter()
    candidate = _detector(exported.files.model, shipped, "candidate")
    current = _current(api, job.profile, work_dir / f"job-{job.id}" / "current",
                       calibrated_to=shipped.metrics.get("model_budget_per_sensor_day"))
    if isinstance(current, str):
        report(TrainingUpdate(stage="evaluate", progress=0.8, log=[current]))
        current = None
    faults = [(item.series, int(item.series.ts_ms[item.onset]))
              for item in inject_faults(labelled.validation, seed=job.seed + 7, min_steps=trained.spec.window)]
    evaluation = compare(candidate, current, labelled.evaluation, faults)
    timings["evaluate_s"] = time.perf_counter() - t3
    report(TrainingUpdate(stage="gate", progress=0.85, log=_gate_log(evaluation)))
    device_used = str(trained.metrics["device"])
    if not evaluation.gate.passed:  # the refused candidate's figures stay visible on the job
        timings["total_s"] = time.perf_counter() - t0
        raise JobFailed("quality gate: " + "; ".join(evaluation.gate.reasons), TrainingResult(
            model=None, evaluation=evaluation, device=device_used,
            timings_s={k: round(v, 2) for k, v in timings.items()}))

    t4 = time.perf_counter()  # sign the manifest that carries the evaluation, then register through the API
    manifest = dataclasses.replace(shipped, metrics={**shipped.metrics,
                                                     "evaluation": msgspec.to_builtins(evaluation)})
    write_signed(manifest, folder, signing_key)
    report(TrainingUpdate(stage="register", progress=0.95, log=["signed; registering"]))
    registered = api.push_model(ModelFiles.for_stem(folder, manifest.stem).manifest, source=f"training-job:{job.id}")
    timings["sign_register_s"] = time.perf_counter() - t4
    timings["total_s"] = time.perf_counter() - t0
    log.info("training job done job=%s model=%s seconds=%.1f", job.id, registered.stem, timings["total_s"])
    return TrainingResult(model=registered.stem, evaluation=evaluation, device=device_used,
                          timings_s={k: round(v, 2) for k, v in timings.items()})


def _gate_log(evaluation: Evaluation) -> list[str]:
    """The gate stage's log lines: each model's figures, then the verdict."""
    lines = []
    for role, figures in (("candidate", evaluation.candidate), ("current", evaluation.current)):
        if figures is not None:
            lines.append(f"{role} recall={figures.recall} synthetic_faults={figures.synthetic_fault_recall} "
                         f"false_alerts={figures.false_alerts} benign_windows_alerted={figures.benign_windows_alerted}"
                         + (f"/{figures.benign_windows}" if role == "candidate" else ""))
    gate = evaluation.gate
    return [*lines, f"gate passed={gate.passed} {'; '.join(gate.reasons)}"]
