"""The TFLite anomaly model at the edge: one batched invoke per tick, its latency figures, and a verified model
in use for a profile (`ActiveModel`)."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.runtime.features import FeatureSpec, score
from models.runtime.manifest import Manifest
from models.runtime.tflite import TfliteModel


class TfliteScorer:
    """The gateway's model: `models.runtime.tflite.TfliteModel` (the very wrapper evaluation, the bench and the
    backtests run, one thread) with the invoke latencies the status message reports."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.model = TfliteModel(path)
        self.features = self.model.features
        self.latencies_ms: deque[float] = deque(maxlen=1000)

    def run(self, windows: np.ndarray) -> np.ndarray:
        """The model's raw output for `windows` ([N, features] float32), in one invoke."""
        if windows.ndim != 2 or windows.shape[1] != self.features:
            raise ValueError(f"expected [N, {self.features}] windows, got {list(windows.shape)}")
        t0 = time.perf_counter()
        out = self.model.outputs(windows)
        self.latencies_ms.append((time.perf_counter() - t0) * 1000)
        return out

    def latency_ms(self, quantile: float) -> float | None:
        """A quantile of recent invoke latencies (a whole batch: a tick's windows of one model, up to
        `history.PASS_ROWS` of them), for the status message."""
        if not self.latencies_ms:
            return None
        return float(np.quantile(np.fromiter(self.latencies_ms, dtype=float), quantile))


@dataclass
class ActiveModel:
    """A verified model in use for one asset profile."""

    manifest: Manifest
    spec: FeatureSpec
    scorer: TfliteScorer

    @classmethod
    def load(cls, model_path: Path, manifest: Manifest) -> ActiveModel:
        """Build from a verified manifest and its .tflite (the caller has checked the signature)."""
        spec = FeatureSpec.from_dict(manifest.feature_spec)
        scorer = TfliteScorer(model_path)
        if scorer.features != spec.input_size:
            raise ValueError(f"model takes {scorer.features} inputs, the manifest's spec makes {spec.input_size}")
        return cls(manifest, spec, scorer)

    def scores(self, windows: np.ndarray) -> np.ndarray:
        """Anomaly score per window (the manifest's threshold applies)."""
        return score(windows, self.scorer.run(windows))
