"""int8 TFLite export: PT2E static quantisation calibrated on training windows and synthetic faults; window-level
figures of int8 against fp32 (the pipeline, models.training.pipeline, judges it on alert episodes).

float32 in and out (QUANTIZE / FULLY_CONNECTED / DEQUANTIZE inside), batchable by resizing the input.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
from numpy.typing import NDArray

from models.runtime.features import FloatArray
from models.training.tflite_io import with_float_io
from models.training.train import TrainedModel

log = logging.getLogger("models.training.export")

CALIBRATION_WINDOWS: Final = 4096
# Shares of fault windows among the calibration's normal ones, tried in this order: few first (extreme faults widen
# the hidden layers' ranges and int8's steps for normal windows with them), more when the output range then stops
# short of the faults the fp32 model alerts on.
FAULT_SHARES: Final = (1 / 30, 1 / 8, 1 / 3)


class ExportRejected(Exception):  # noqa: N818 (reads as the verdict it is)
    """The int8 model disagrees with fp32 beyond tolerance (models.training.pipeline says why and what to do)."""


@dataclass(frozen=True)
class QuantisationCheck:
    """int8 vs fp32 on the same windows."""

    windows: int
    score_correlation: float
    rank_correlation: float
    score_error: float
    band_windows: int
    decision_agreement: float
    int8_alerts: int
    fp32_alerts: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, rounded."""
        return {"windows": self.windows, "score_correlation": round(self.score_correlation, 4),
                "rank_correlation": round(self.rank_correlation, 4), "score_error": round(self.score_error, 4),
                "band_windows": self.band_windows,
                "decision_agreement": round(self.decision_agreement, 5),
                "int8_alerts": self.int8_alerts, "fp32_alerts": self.fp32_alerts}


def calibration_windows(trained: TrainedModel, fault_share: float) -> FloatArray:
    """Normal training windows and, behind them, `fault_share` as many synthetic fault windows."""
    faults = trained.calibration_faults[:round(len(trained.calibration) * fault_share)]
    return np.ascontiguousarray(np.concatenate([trained.calibration, faults]), dtype=np.float32)


def convert_int8(trained: TrainedModel, path: Path, *, fault_share: float = FAULT_SHARES[0]) -> Path:
    """Quantise `trained.module` (PT2E, per-tensor symmetric int8, calibrated on its training windows and
    `fault_share` as many fault windows) and write a float32-I/O .tflite to `path`."""
    import litert_torch  # type: ignore[import-untyped]
    from litert_torch.quantize.pt2e_quantizer import (  # type: ignore[import-untyped]
        PT2EQuantizer,
        get_symmetric_quantization_config,
    )
    from litert_torch.quantize.quant_config import QuantConfig  # type: ignore[import-untyped]
    from torchao.quantization.pt2e.quantize_pt2e import (  # type: ignore[import-untyped]
        convert_pt2e,
        prepare_pt2e,
    )

    module = trained.module.to("cpu").eval()
    windows = calibration_windows(trained, fault_share)
    example = (torch.from_numpy(windows[:1].copy()),)
    graph = torch.export.export(module, example).module()
    quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=False))
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for row in windows[np.random.default_rng(0).permutation(len(windows))[:CALIBRATION_WINDOWS]]:  # batch 1
            prepared(torch.from_numpy(np.ascontiguousarray(row[None, :])))
    quantised = convert_pt2e(prepared, fold_quantize=False)
    # quant_config makes the converter fold the Q/DQ pairs into int8 kernels (without it the .tflite keeps float
    # weights and float FULLY_CONNECTED between fake-quant pairs); it also makes the I/O int8, which
    # with_float_io wraps back to float32.
    edge = litert_torch.convert(quantised, example, quant_config=QuantConfig(pt2e_quantizer=quantizer))
    path.parent.mkdir(parents=True, exist_ok=True)
    edge.export(str(path))
    path.write_bytes(with_float_io(path.read_bytes()))
    return path


def compare(fp32_scores: NDArray[np.float32], int8_scores: NDArray[np.float32], threshold: float) -> QuantisationCheck:
    """Correlation (linear and rank), decision agreement and the score error between two score arrays.

    Score error: how far int8 moves the scores of the windows that could flip — fp32 score within half the
    spread of the threshold, the spread being the threshold minus the median score — as the 95th percentile of
    |int8 − fp32| over them, in units of that spread. Scale-free, so it means the same for a classifier's
    logits and an autoencoder's squared errors; the order of clearly normal windows far below the threshold
    (where int8 rounding is as large as their differences) does not enter it (docs/decisions.md)."""
    a = np.asarray(fp32_scores, dtype=np.float64)
    b = np.asarray(int8_scores, dtype=np.float64)

    def corr(x: NDArray[np.float64], y: NDArray[np.float64]) -> float:
        return 1.0 if np.std(x) == 0 or np.std(y) == 0 else float(np.corrcoef(x, y)[0, 1])

    rank = corr(np.argsort(np.argsort(a)).astype(np.float64), np.argsort(np.argsort(b)).astype(np.float64))
    if len(a) and min(a.min(), b.min()) >= 0:  # errors (autoencoder, forecaster) spread over decades: log them
        a_lin, b_lin = np.log1p(a), np.log1p(b)
    else:  # logits (classifier)
        a_lin, b_lin = a, b
    spread = threshold - float(np.median(a)) if len(a) else 0.0
    band = np.abs(a - threshold) <= spread / 2 if spread > 0 else np.zeros(len(a), dtype=bool)
    if spread <= 0:
        error = float("inf")  # a threshold at or below the median score: half the windows alert
    elif not band.any():
        error = 0.0
    else:
        error = float(np.quantile(np.abs(b[band] - a[band]), 0.95)) / spread
    return QuantisationCheck(windows=len(a), score_correlation=corr(a_lin, b_lin), rank_correlation=rank,
                             score_error=error, band_windows=int(band.sum()),
                             decision_agreement=float(np.mean((a > threshold) == (b > threshold))),
                             int8_alerts=int(np.sum(b > threshold)), fp32_alerts=int(np.sum(a > threshold)))
