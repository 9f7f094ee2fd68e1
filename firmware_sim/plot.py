"""A PNG of a scenario: temperature, humidity and battery per sensor, with the labelled events shaded."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from firmware_sim.dataset import Dataset
from protocol.profiles import PROFILES


def plot_dataset(dataset: Dataset, path: Path, *, title: str, max_sensors: int = 4) -> Path:
    """Draw the first `max_sensors` sensors' readings; the first sensor's (the affected one's) labels are shaded,
    incidents red, benign events green."""
    sensors = dataset.sensors[:max_sensors]
    fig, axes = plt.subplots(3, 1, figsize=(13, 9), sharex=True)
    t0 = int(np.min(dataset.readings["ts_ms"])) if len(dataset) else 0
    for index, mac in enumerate(sensors):
        rows = dataset.for_sensor(mac)
        width = 1.3 if index == 0 else 0.6
        hours = (rows["ts_ms"].astype(np.float64) - t0) / 3.6e6
        axes[0].plot(hours, rows["temp_c"], lw=width, label=f"{mac} ({rows['profile'][0]})")
        axes[1].plot(hours, rows["rh_pct"], lw=width)
        axes[2].plot(hours, rows["battery_mv"], lw=width)
    for lab in dataset.labels:
        if not sensors or lab.sensor != sensors[0]:
            continue
        colour = "tab:green" if lab.benign else "tab:red"
        start, end = (lab.start_ms - t0) / 3.6e6, (lab.end_ms - t0) / 3.6e6
        for ax in axes:
            ax.axvspan(start, max(end, start + 0.02), color=colour, alpha=0.12 if lab.benign else 0.2, lw=0)
        axes[0].annotate(lab.kind, (start, 1.0), xycoords=("data", "axes fraction"), fontsize=7, rotation=90,
                         va="top", color=colour)
    profile = PROFILES.get(str(dataset.readings["profile"][0])) if len(dataset) else None
    if profile is not None:
        for bound in (profile.low_c, profile.high_c):
            if bound is not None:
                axes[0].axhline(bound, color="grey", ls="--", lw=0.8)
    axes[0].set_ylabel("temperature °C")
    axes[1].set_ylabel("humidity %RH")
    axes[2].set_ylabel("battery mV")
    axes[2].set_xlabel("hours since start")
    axes[0].legend(fontsize=7, loc="lower right")
    axes[0].set_title(title, fontsize=10)
    axes[2].set_title(f"shaded: labels of {sensors[0] if sensors else '-'} (red incident, green benign)", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
