"""A trained model on disk: a torch checkpoint, then the shipped artifact (int8 .tflite + manifest + signature).

Layout: one folder per model, `<dir>/<name>-<version>/` holding `<name>-<version>.{pt,tflite,manifest.json,sig}`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from models.runtime.features import FeatureSpec
from models.runtime.manifest import MANIFEST_SUFFIX, Manifest, ModelFiles
from models.training.data import Series
from models.training.nets import build
from models.training.pipeline import Exported, build_artifact
from models.training.train import MODEL_BUDGET_SHARE, TrainedModel, model_threshold, series_scores

__all__ = ["Exported", "default_name", "default_version", "export_model", "find_manifests", "latest_by_profile",
           "load_checkpoint", "save_checkpoint"]

CHECKPOINT_SUFFIX = ".pt"


def default_version(now: datetime | None = None) -> str:
    """A sortable version from the UTC time, e.g. 20261124.031500."""
    return (now or datetime.now(UTC)).strftime("%Y%m%d.%H%M%S")


def default_name(profile: str) -> str:
    """The model name for a profile."""
    return f"cw_{profile}"


def _series_to_dict(s: Series) -> dict[str, Any]:
    return {"sensor": s.sensor, "profile": s.profile, "ts_ms": torch.from_numpy(s.ts_ms),
            "temp_c": torch.from_numpy(s.temp_c), "rh_pct": torch.from_numpy(s.rh_pct),
            "battery_mv": torch.from_numpy(s.battery_mv)}


def _series_from_dict(d: dict[str, Any]) -> Series:
    return Series(str(d["sensor"]), str(d["profile"]), d["ts_ms"].numpy(), d["temp_c"].numpy(), d["rh_pct"].numpy(),
                  d["battery_mv"].numpy())


def save_checkpoint(trained: TrainedModel, path: Path, *, hidden: int) -> Path:
    """Weights, spec, threshold and the windows and series the export needs, loadable with `weights_only=True`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({
        "state_dict": trained.module.state_dict(), "architecture": trained.architecture, "hidden": hidden,
        "profile": trained.profile, "spec": trained.spec.to_dict(), "threshold": trained.threshold,
        "training_range": trained.training_range, "metrics": trained.metrics,
        "calibration": torch.from_numpy(trained.calibration), "validation": torch.from_numpy(trained.validation),
        "alert_budget": trained.alert_budget, "model_budget_share": MODEL_BUDGET_SHARE,
        "calibration_faults": torch.from_numpy(trained.calibration_faults),
        "validation_series": [_series_to_dict(s) for s in trained.validation_series],
        "incident_series": [_series_to_dict(s) for s in trained.incident_series],
    }, path)
    return path


def load_checkpoint(path: Path) -> TrainedModel:
    """Inverse of `save_checkpoint`."""
    data: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    spec = FeatureSpec.from_dict(data["spec"])
    module = build(data["architecture"], spec.input_size, spec.channels, hidden=int(data["hidden"]))
    module.load_state_dict(data["state_dict"])
    module.eval()
    trained = TrainedModel(module=module, architecture=data["architecture"], profile=data["profile"], spec=spec,
                           threshold=float(data["threshold"]), training_range=dict(data["training_range"]),
                           calibration=data["calibration"].numpy(), validation=data["validation"].numpy(),
                           calibration_faults=data["calibration_faults"].numpy() if "calibration_faults" in data
                           else data["calibration"].numpy()[:0],
                           metrics=dict(data["metrics"]), alert_budget=float(data.get("alert_budget", 0.1)),
                           validation_series=[_series_from_dict(d) for d in data.get("validation_series", [])],
                           incident_series=[_series_from_dict(d) for d in data.get("incident_series", [])])
    if data.get("model_budget_share") != MODEL_BUDGET_SHARE and trained.validation_series:
        # saved when the model's threshold took another share of the alert budget (before 2026-12-07: all of it):
        # calibrated again as training does now, so that the export's int8 check compares like with like
        scores, ends = series_scores(module, spec, trained.validation_series)
        trained.threshold = model_threshold(scores, ends, trained.validation_series, spec, trained.alert_budget)
    return trained


def export_model(trained: TrainedModel, directory: Path, *, name: str, version: str, private_key_pem: bytes | None,
                 extra_metrics: dict[str, Any] | None = None) -> Exported:
    """The artifact pipeline (`models.training.pipeline.build_artifact`): int8 .tflite, threshold calibrated on its
    scores, checked against fp32 on alert episodes (ExportRejected beyond tolerance),
    manifest signed when a key is given."""
    return build_artifact(trained, directory, name=name, version=version, private_key_pem=private_key_pem,
                          extra_metrics=extra_metrics)


def find_manifests(root: Path) -> list[tuple[ModelFiles, Manifest]]:
    """Every model under `root` (read, not verified), newest version last."""
    found = []
    for path in sorted(root.rglob("*" + MANIFEST_SUFFIX)):
        manifest = Manifest.from_bytes(path.read_bytes())
        found.append((ModelFiles.for_stem(path.parent, manifest.stem), manifest))
    return sorted(found, key=lambda item: (item[1].profile, item[1].created_at, item[1].version))


def latest_by_profile(root: Path) -> dict[str, tuple[ModelFiles, Manifest]]:
    """The newest model of each profile under `root`."""
    return {manifest.profile: (files, manifest) for files, manifest in find_manifests(root)}
