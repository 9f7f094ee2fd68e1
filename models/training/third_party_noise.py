"""Keeps third-party chatter (torch, TensorFlow Lite, absl) off the `models` CLI's output: stdout carries only the
JSON result, stderr only what a user should read."""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

QUIET_ENV: Final = {"LITERT_TORCH_SHOW_PROGRESS": "n", "TF_CPP_MIN_LOG_LEVEL": "3", "GLOG_minloglevel": "2",
                    "GRPC_VERBOSITY": "ERROR"}
NOISY_LOGGERS: Final = ("torch", "torchao", "jax", "absl", "tensorflow", "litert_torch", "ai_edge_litert", "h5py")
OUR_PACKAGES: Final = r"(models|cloud|edge_agent|protocol|firmware_sim|deploy)(\.|$)"
NATIVE_NOISE: Final = re.compile(r"WARNING: All log messages before absl::InitializeLog\(\)|"
                                 r"[IW]\d{4} [\d:.]+\s+\d+ \S+:\d+\] |INFO: (Created|Initialized) TensorFlow Lite")


def quiet_third_parties() -> None:
    """Silence libraries' chatter (environment, loggers, warnings); call again after importing torch, which resets
    its logger. Our own loggers and warnings are untouched; third-party errors still show."""
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    root = logging.getLogger()
    if not any(isinstance(f, _RootCallsFilter) for f in root.filters):
        root.addFilter(_RootCallsFilter())
    warnings.filterwarnings("ignore")
    warnings.filterwarnings("default", module=OUR_PACKAGES)


class _RootCallsFilter(logging.Filter):
    """Drops records logged on the root logger itself below ERROR: libraries calling `logging.info(...)` directly
    (ours log on named loggers, whose records reach the root's handlers without passing this filter)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


@contextmanager
def native_noise_filtered() -> Iterator[None]:
    """Native libraries (absl, TensorFlow, TFLite) write INFO lines straight to fd 2: while the block runs fd 2 goes
    to a temporary file, then every line but theirs is written back to stderr (ours arrive late, none is lost)."""
    try:
        sys.stderr.flush()
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # stderr is not a file (captured): nothing native reaches it
        yield
        return
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            kept = [line for line in tmp.read().decode(errors="replace").splitlines(keepends=True)
                    if not NATIVE_NOISE.match(line)]
            sys.stderr.write("".join(kept))
            sys.stderr.flush()
