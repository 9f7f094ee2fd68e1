"""One retraining job, end to end: query (readings + labels through the API), train (CUDA when present), export
int8, evaluate against the current model, quality gate, sign, register. Progress goes to the API as it runs."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cloud.ops_client import OpsClient
from cloud.training import dataset
from cloud.training.evaluate import compare
from models.training.augment import inject_faults
from models.training.evaluate import Detector, ModelDetector

log = logging.getLogger(__name__)
Report = Callable[..., None]


class JobFailed(Exception):  # noqa: N818 (reads as the verdict it is)
    """The job cannot produce a model; the message says why (shown on the job), `result` what was measured."""

    def __init__(self, message: str, result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.result = result


def _detector(model_path: Path, manifest: Any, name: str) -> Detector:
    from models.runtime.features import FeatureSpec
    from models.runtime.tflite import TfliteModel

    return ModelDetector(FeatureSpec.from_dict(manifest.feature_spec), manifest.threshold,
                         TfliteModel(model_path).outputs, name=name)


def _current(api: OpsClient, profile: str, folder: Path) -> Detector | None:
    """The newest registered model of the profile, downloaded as gateways get it (None: there is none)."""
    from models.runtime.manifest import Manifest

    found = api.models(profile=profile)
    if not found:
        return None
    stem = found[0]["stem"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.tflite").write_bytes(api.download(f"{stem}.tflite"))
    manifest = Manifest.from_bytes(api.download(f"{stem}.manifest.json"))
    return _detector(folder / f"{stem}.tflite", manifest, f"current {stem}")


def run_job(api: OpsClient, job: dict[str, Any], *, work_dir: Path, signing_key: bytes, device: str | None,
            report: Report) -> dict[str, Any]:
    """Run `job`; returns the result (registered model, evaluation, timings). JobFailed when it cannot."""
    from models.runtime.manifest import ModelFiles, load_private_key, write_signed
    from models.training.artifacts import default_name, default_version, export_model
    from models.training.train import TrainConfig, train_on_series

    load_private_key(signing_key)  # a bad key fails the job before any work
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    report(stage="query", progress=0.05, log=[f"query profile={job['profile']} start={job['start']} end={job['end']}"])
    data = api.training_dataset(job["id"])
    labels = [dataset.Label(lab["sensor"], int(lab["start"]), int(lab["end"]), str(lab["code"]))
              for lab in data["labels"]]
    series = [s for sensor in data["sensors"] if (s := dataset.to_series(
        sensor, job["profile"], api.readings(sensor, job["start"], job["end"]))) is not None]
    labelled = dataset.build(series, labels)
    timings["query_s"] = time.perf_counter() - t0
    readings = sum(len(s.ts_ms) for s in series)
    report(stage="train", progress=0.2, log=[f"sensors={len(series)} readings={readings} labels={labelled.counts}"])
    if not labelled.train or not labelled.validation:
        raise JobFailed(f"too little data: {len(series)} sensors with readings in the period")

    t1 = time.perf_counter()
    cfg = TrainConfig(job["profile"], epochs=int(job["epochs"]), seed=int(job["seed"]), device=device)
    try:
        trained = train_on_series(labelled.train, labelled.validation, cfg)
    except ValueError as exc:
        raise JobFailed(str(exc)) from None
    timings["train_s"] = time.perf_counter() - t1
    trained.training_range = {"source": "influxdb", "profile": job["profile"], "from_ms": job["start"],
                              "to_ms": job["end"], "sensors": len(series), "readings": readings,
                              "labels": labelled.counts, "training_job": job["id"]}
    report(stage="export", progress=0.6, log=[
        f"trained in {timings['train_s']:.1f} s device={trained.metrics['device']} "
        f"windows={trained.metrics['train_windows']} loss={trained.metrics['final_loss']} "
        f"threshold={trained.threshold:.4f}"])

    t2 = time.perf_counter()
    name, version = default_name(job["profile"]), job.get("version") or default_version()
    folder = work_dir / f"job-{job['id']}" / f"{name}-{version}"
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
    report(stage="evaluate", progress=0.75, log=[f"exported {exported.files.model.name} "
                                                 f"bytes={exported.files.model.stat().st_size} "
                                                 f"threshold int8={threshold:.4f} fp32={trained.threshold:.4f}"])

    t3 = time.perf_counter()
    candidate = _detector(exported.files.model, shipped, "candidate")
    current = _current(api, job["profile"], work_dir / f"job-{job['id']}" / "current")
    faults = [(item.series, int(item.series.ts_ms[item.onset]))
              for item in inject_faults(labelled.validation, seed=int(job["seed"]) + 7, min_steps=trained.spec.window)]
    evaluation = compare(candidate, current, labelled.evaluation, faults)
    timings["evaluate_s"] = time.perf_counter() - t3
    cand = evaluation["candidate"]
    report(stage="gate", progress=0.85, log=[
        f"candidate recall={cand['recall']} synthetic_faults={cand['synthetic_fault_recall']} "
        f"false_alerts={cand['false_alerts']} "
        f"benign_windows_alerted={cand['benign_windows_alerted']}/{cand['benign_windows']}"]
        + ([f"current recall={evaluation['current']['recall']} "
            f"synthetic_faults={evaluation['current']['synthetic_fault_recall']} "
            f"false_alerts={evaluation['current']['false_alerts']} "
            f"benign_windows_alerted={evaluation['current']['benign_windows_alerted']}"] if current else [])
        + [f"gate passed={evaluation['gate']['passed']} {'; '.join(evaluation['gate']['reasons'])}"])
    if not evaluation["gate"]["passed"]:  # the refused candidate's figures stay visible on the job
        timings["total_s"] = time.perf_counter() - t0
        raise JobFailed("quality gate: " + "; ".join(evaluation["gate"]["reasons"]), {
            "model": None, "evaluation": evaluation, "device": trained.metrics["device"],
            "timings_s": {k: round(v, 2) for k, v in timings.items()}})

    t4 = time.perf_counter()  # sign the manifest that carries the evaluation, then register through the API
    manifest = dataclasses.replace(shipped, metrics={**shipped.metrics, "evaluation": evaluation})
    write_signed(manifest, folder, signing_key)
    report(stage="register", progress=0.95, log=["signed; registering"])
    registered = api.push_model(ModelFiles.for_stem(folder, manifest.stem).manifest, source=f"training-job:{job['id']}")
    timings["sign_register_s"] = time.perf_counter() - t4
    timings["total_s"] = time.perf_counter() - t0
    log.info("training job done job=%s model=%s seconds=%.1f", job["id"], registered["stem"], timings["total_s"])
    return {"model": registered["stem"], "evaluation": evaluation, "device": trained.metrics["device"],
            "timings_s": {k: round(v, 2) for k, v in timings.items()}}
