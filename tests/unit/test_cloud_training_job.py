"""The training job's reference model: a current model calibrated to another share of the alert budget is not
compared with the candidate (it would refuse a candidate for being calibrated as it should)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from cloud.training.job import _current
from models.runtime.manifest import Manifest


@dataclasses.dataclass
class _Registered:
    stem: str


class _Api:
    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest

    def models(self, *, profile: str) -> list[_Registered]:
        return [_Registered(self.manifest.stem)]

    def download(self, name: str) -> bytes:
        return self.manifest.to_bytes() if name.endswith(".manifest.json") else b"not a model"


def _manifest(metrics: dict[str, object]) -> Manifest:
    return Manifest(name="cw_chilled", version="3", profile="chilled", feature_spec={}, threshold=3.0,
                    training_range={}, metrics=metrics, sha256="0" * 64, created_at="2026-12-01T00:00:00+00:00")


def test_a_current_model_calibrated_to_the_whole_budget_is_not_the_reference(tmp_path: Path) -> None:
    why = _current(_Api(_manifest({"alert_budget_per_sensor_day": 0.1})), "chilled", tmp_path,  # type: ignore[arg-type]
                   calibrated_to=0.05)
    assert isinstance(why, str) and "cw_chilled-3" in why and "absolute targets" in why


def test_no_registered_model_is_no_reference(tmp_path: Path) -> None:
    class _Empty(_Api):
        def models(self, *, profile: str) -> list[_Registered]:
            return []

    assert _current(_Empty(_manifest({})), "chilled", tmp_path, calibrated_to=0.05) is None  # type: ignore[arg-type]
