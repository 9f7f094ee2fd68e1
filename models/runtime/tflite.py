"""Running a .tflite from numpy: tflite_runtime where installed (the gateway), else ai_edge_litert. No torch.

A call is one batched invoke for up to `MAX_BATCH` rows (the input resized to [N, features]); more rows go through
in batches of `MAX_BATCH`, the last padded, so the interpreter's tensors are sized once and stay small.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

MAX_BATCH = 256  # rows an invoke takes at most: a gateway's tick of thousands of windows does not resize the tensors


def interpreter_class() -> Any:
    """The TFLite Interpreter class available here."""
    try:
        from tflite_runtime.interpreter import Interpreter
    except ImportError:
        from ai_edge_litert.interpreter import Interpreter
    return Interpreter


class TfliteModel:
    """A loaded .tflite with float32 [N, F] input; `outputs` runs a whole batch in one invoke."""

    def __init__(self, model: Path | bytes, num_threads: int = 1) -> None:
        content = model if isinstance(model, bytes) else Path(model).read_bytes()
        self.interpreter = interpreter_class()(model_content=content, num_threads=num_threads)
        detail = self.interpreter.get_input_details()[0]
        self.input_index: int = int(detail["index"])
        self.features: int = int(detail["shape"][-1])
        self.output_index: int = int(self.interpreter.get_output_details()[0]["index"])
        self._batch = -1

    def outputs(self, inputs: NDArray[np.float32]) -> NDArray[np.float32]:
        """Model outputs for [N, F] float32 inputs (N ≥ 1); each row's output does not depend on the others."""
        x = np.ascontiguousarray(inputs, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.features:
            raise ValueError(f"expected [N, {self.features}] inputs, got {x.shape}")
        if len(x) <= MAX_BATCH:
            return self._invoke(x)
        padded = np.zeros((-(-len(x) // MAX_BATCH) * MAX_BATCH, self.features), dtype=np.float32)
        padded[:len(x)] = x
        out = [self._invoke(padded[i:i + MAX_BATCH]) for i in range(0, len(padded), MAX_BATCH)]
        return np.concatenate(out)[:len(x)]

    def _invoke(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        if len(x) != self._batch:
            self.interpreter.resize_tensor_input(self.input_index, [len(x), self.features])
            self.interpreter.allocate_tensors()
            self._batch = len(x)
        self.interpreter.set_tensor(self.input_index, x)
        self.interpreter.invoke()
        return np.array(self.interpreter.get_tensor(self.output_index), dtype=np.float32)


def tflite_outputs(model: Path | bytes, inputs: NDArray[np.float32]) -> NDArray[np.float32]:
    """One-off: load `model` and run `inputs` through it."""
    if len(inputs) == 0:
        return np.zeros((0, 0), dtype=np.float32)
    return TfliteModel(model).outputs(inputs)
