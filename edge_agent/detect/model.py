"""The TFLite anomaly model at the edge: one batched invoke per tick, its latency figures, and a verified model
in use for a profile (`ActiveModel`)."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.features import FeatureSpec, score
from models.manifest import Manifest


def load_interpreter(path: Path) -> Any:
    """An interpreter for `path`: tflite-runtime if installed (Python ≤ 3.11), else ai-edge-litert."""
    try:
        from tflite_runtime.interpreter import Interpreter
    except ImportError:
        from ai_edge_litert.interpreter import Interpreter
    return Interpreter(model_path=str(path))


class TfliteScorer:
    """Runs [N, features] float32 windows through the model in one invoke; resizes only when N changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.interpreter = load_interpreter(path)
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self.features = int(self._input["shape"][-1])
        self._batch = 0
        self.latencies_ms: deque[float] = deque(maxlen=1000)

    def run(self, windows: np.ndarray) -> np.ndarray:
        """The model's raw output for `windows` ([N, features] float32)."""
        if windows.ndim != 2 or windows.shape[1] != self.features:
            raise ValueError(f"expected [N, {self.features}] windows, got {list(windows.shape)}")
        n = int(windows.shape[0])
        if n != self._batch:
            self.interpreter.resize_tensor_input(self._input["index"], [n, self.features])
            self.interpreter.allocate_tensors()
            self._batch = n
        t0 = time.perf_counter()
        self.interpreter.set_tensor(self._input["index"], np.ascontiguousarray(windows, dtype=np.float32))
        self.interpreter.invoke()
        out = np.array(self.interpreter.get_tensor(self._output["index"]))
        self.latencies_ms.append((time.perf_counter() - t0) * 1000)
        return out

    def latency_ms(self, quantile: float) -> float | None:
        """A quantile of recent invoke latencies (whole batch), for the status message."""
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
