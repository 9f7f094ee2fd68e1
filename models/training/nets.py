"""The torch networks: a fault classifier, a window autoencoder and a next-step forecaster; small MLPs that
export to int8.

All take [N, input_size] float32; `models.runtime.features.score` turns their output into an anomaly score.
"""

from __future__ import annotations

from typing import Final, Literal

import torch
from torch import nn

Architecture = Literal["classifier", "autoencoder", "forecaster"]
ARCHITECTURES: Final[tuple[Architecture, ...]] = ("classifier", "autoencoder", "forecaster")


class FaultClassifier(nn.Module):
    """Tells normal windows from synthetic faults (models/augment); output [N, 1], the logit of "fault"."""

    def __init__(self, input_size: int, hidden: int = 32) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(input_size, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # type: ignore[no-any-return]


class WindowAutoencoder(nn.Module):
    """Reconstructs the whole window through a narrow code; output [N, input_size]."""

    def __init__(self, input_size: int, hidden: int = 32, code: int = 8) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(input_size, hidden), nn.ReLU(),
            nn.Linear(hidden, code), nn.ReLU(),
            nn.Linear(code, hidden), nn.ReLU(),
            nn.Linear(hidden, input_size),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # type: ignore[no-any-return]


class ResidualForecaster(nn.Module):
    """Predicts the newest step's `channels` values from the steps before it; output [N, channels].

    The newest step's columns are zeroed by a fixed mask instead of sliced away, so the exported graph stays
    a chain of FULLY_CONNECTED ops.
    """

    mask: torch.Tensor

    def __init__(self, input_size: int, channels: int, hidden: int = 32) -> None:
        super().__init__()
        mask = torch.ones(input_size)
        mask[input_size - channels:] = 0.0
        self.register_buffer("mask", mask)
        self.layers = nn.Sequential(
            nn.Linear(input_size, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x * self.mask)  # type: ignore[no-any-return]


def build(architecture: Architecture, input_size: int, channels: int, hidden: int = 32) -> nn.Module:
    """A fresh network of the named kind."""
    if architecture == "classifier":
        return FaultClassifier(input_size, hidden=hidden)
    if architecture == "autoencoder":
        return WindowAutoencoder(input_size, hidden=hidden, code=max(4, hidden // 4))
    if architecture == "forecaster":
        if channels < 2:  # a one-column output is a classifier's score (models.runtime.features.score)
            raise ValueError("a forecaster needs at least 2 channels")
        return ResidualForecaster(input_size, channels, hidden=hidden)
    raise ValueError(f"unknown architecture {architecture!r}; choose from {', '.join(ARCHITECTURES)}")


def reconstruction_target(architecture: Architecture, x: torch.Tensor, channels: int) -> torch.Tensor:
    """What a reconstructing network's output is trained to match (the columns `features.score` compares)."""
    if architecture == "classifier":
        raise ValueError("a classifier reconstructs nothing")
    return x if architecture == "autoencoder" else x[:, x.shape[1] - channels:]
