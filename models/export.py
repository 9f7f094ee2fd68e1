"""int8 TFLite export: PT2E static quantisation calibrated on training windows, checked against fp32.

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

from models.features import FloatArray, score
from models.runtime import tflite_outputs
from models.tflite_io import with_float_io
from models.train import TrainedModel, predict

log = logging.getLogger("models.export")

MAX_SCORE_ERROR: Final = 0.2  # of the spread between the median score and the threshold (see `compare`)
MIN_DECISION_AGREEMENT: Final = 0.99
CALIBRATION_WINDOWS: Final = 1024


class ExportRejected(Exception):  # noqa: N818 (reads as the verdict it is)
    """The int8 model disagrees with fp32 beyond tolerance."""


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


def convert_int8(trained: TrainedModel, path: Path) -> Path:
    """Quantise `trained.module` (PT2E, per-tensor symmetric int8, calibrated on its training windows) and write
    a float32-I/O .tflite to `path`."""
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
    example = (torch.from_numpy(trained.calibration[:1].copy()),)
    graph = torch.export.export(module, example).module()
    quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=False))
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for row in trained.calibration[:CALIBRATION_WINDOWS]:  # the exported graph is specialised to batch 1
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


def check_windows(trained: TrainedModel, extra: FloatArray | None = None) -> FloatArray:
    """Held-out windows for the int8 check: validation windows plus, when given, windows with anomalies."""
    parts = [trained.validation]
    if extra is not None and len(extra):
        parts.append(extra)
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


def export_checked(trained: TrainedModel, path: Path, *, check: FloatArray | None = None,
                   max_error: float = MAX_SCORE_ERROR,
                   min_agreement: float = MIN_DECISION_AGREEMENT) -> QuantisationCheck:
    """Convert to int8, then compare with fp32 on held-out windows; ExportRejected (file removed) beyond tolerance."""
    convert_int8(trained, path)
    windows = check if check is not None else check_windows(trained)
    fp32 = score(windows, predict(trained.module, windows))
    int8 = score(windows, tflite_outputs(path, windows))
    result = compare(fp32, int8, trained.threshold)
    log.info("int8 check windows=%d error=%.4f (band %d) agreement=%.5f corr=%.4f rank=%.4f", result.windows,
             result.score_error, result.band_windows, result.decision_agreement, result.score_correlation,
             result.rank_correlation)
    # The edge only compares a score with the threshold: what must survive int8 are the decisions and the scores
    # near the threshold. Correlations over all windows measure the rounding of clearly normal ones (frozen
    # autoencoder: 0.937 linear; classifier: rank 0.93 with 100 % of decisions the same; docs/decisions.md).
    if result.score_error > max_error or result.decision_agreement < min_agreement:
        path.unlink(missing_ok=True)
        raise ExportRejected(f"int8 disagrees with fp32: score error {result.score_error:.4f} of the spread "
                             f"(max {max_error}), decision agreement {result.decision_agreement:.5f} "
                             f"(min {min_agreement})")
    return result
