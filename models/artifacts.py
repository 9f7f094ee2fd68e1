"""A trained model on disk: a torch checkpoint, then the shipped artifact (int8 .tflite + manifest + signature).

Layout: one folder per model, `<dir>/<name>-<version>/` holding `<name>-<version>.{pt,tflite,manifest.json,sig}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.export import QuantisationCheck, export_checked
from models.features import FeatureSpec
from models.manifest import MANIFEST_SUFFIX, Manifest, ModelFiles, sha256_file, write_signed
from models.nets import build
from models.train import TrainedModel

CHECKPOINT_SUFFIX = ".pt"


def default_version(now: datetime | None = None) -> str:
    """A sortable version from the UTC time, e.g. 20261124.031500."""
    return (now or datetime.now(UTC)).strftime("%Y%m%d.%H%M%S")


def default_name(profile: str) -> str:
    """The model name for a profile."""
    return f"cw_{profile}"


def save_checkpoint(trained: TrainedModel, path: Path, *, hidden: int) -> Path:
    """Weights, spec, threshold and the windows the export needs, loadable with `weights_only=True`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({
        "state_dict": trained.module.state_dict(), "architecture": trained.architecture, "hidden": hidden,
        "profile": trained.profile, "spec": trained.spec.to_dict(), "threshold": trained.threshold,
        "training_range": trained.training_range, "metrics": trained.metrics,
        "calibration": torch.from_numpy(trained.calibration), "validation": torch.from_numpy(trained.validation),
    }, path)
    return path


def load_checkpoint(path: Path) -> TrainedModel:
    """Inverse of `save_checkpoint`."""
    data: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    spec = FeatureSpec.from_dict(data["spec"])
    module = build(data["architecture"], spec.input_size, spec.channels, hidden=int(data["hidden"]))
    module.load_state_dict(data["state_dict"])
    module.eval()
    return TrainedModel(module=module, architecture=data["architecture"], profile=data["profile"], spec=spec,
                        threshold=float(data["threshold"]), training_range=dict(data["training_range"]),
                        calibration=data["calibration"].numpy(), validation=data["validation"].numpy(),
                        metrics=dict(data["metrics"]))


@dataclass(frozen=True)
class Exported:
    """Where an exported model landed and what its manifest says."""

    files: ModelFiles
    manifest: Manifest
    check: QuantisationCheck
    signed: bool


def export_model(trained: TrainedModel, directory: Path, *, name: str, version: str, private_key_pem: bytes | None,
                 extra_metrics: dict[str, Any] | None = None, check: np.ndarray | None = None) -> Exported:
    """int8 .tflite (checked against fp32; ExportRejected beyond tolerance) + manifest, signed when a key is given."""
    stem = f"{name}-{version}"
    files = ModelFiles.for_stem(directory, stem)
    directory.mkdir(parents=True, exist_ok=True)
    result = export_checked(trained, files.model, check=check)
    metrics = {**trained.metrics, "int8_check": result.as_dict(), "tflite_bytes": files.model.stat().st_size,
               **(extra_metrics or {})}
    manifest = Manifest(name=name, version=version, profile=trained.profile, feature_spec=trained.spec.to_dict(),
                        threshold=float(trained.threshold), training_range=trained.training_range, metrics=metrics,
                        sha256=sha256_file(files.model), created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                        architecture=trained.architecture)
    write_signed(manifest, directory, private_key_pem)
    return Exported(files=files, manifest=manifest, check=result, signed=private_key_pem is not None)


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
