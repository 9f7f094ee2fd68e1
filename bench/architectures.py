"""Model selection: every architecture trained per profile, run on validation scenario seeds (never the
held-out ones `make bench` and `coldwatch models evaluate` report on).
docs/experiments.md#architecture-comparison records its output.

    python -m bench.architectures [--seeds 6] [--architecture classifier ...] [--json out.json]

fp32 torch scores (the int8 export is checked against them separately); one architecture per process is
quickest on a 2-core machine (`OMP_NUM_THREADS=1`, runs side by side).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, cast

import numpy as np

from models.training.cli import ARCHITECTURE_CHOICES

PROFILES_TRAINED = ("frozen", "chilled", "pharma_2_8")
SELECTION_SEEDS_START = 5100  # validation range (models/training/data.py); seed 5000 calibrates thresholds
KINDS_SHOWN = ("compressor_failure", "refrigerant_leak", "door_left_open", "power_loss", "defrost_stuck")


def compare(architecture: str, seeds: int) -> dict[str, Any]:
    """Train the three profiles with `architecture` and run the whole scenario suite on selection seeds."""
    from models.training.evaluate import Gateway, ModelDetector, StaticRule, gateway_rules, run_suite
    from models.training.nets import Architecture
    from models.training.train import TrainConfig, predict, train_profile
    from protocol.profiles import PROFILES

    t0 = time.perf_counter()
    network = cast(Architecture, architecture)  # one of ARCHITECTURE_CHOICES (argparse checked)
    trained = {p: train_profile(TrainConfig(p, architecture=network)) for p in PROFILES_TRAINED}
    train_s = time.perf_counter() - t0

    def detectors(profile: str) -> list[Any] | None:
        if profile not in trained:
            return None
        tr = trained[profile]
        band = PROFILES[profile]

        def outputs(x: np.ndarray) -> np.ndarray:
            return predict(tr.module, np.ascontiguousarray(x))

        model = ModelDetector(tr.spec, tr.threshold, outputs)
        return [model, Gateway([model, *gateway_rules()]), StaticRule(band.low_c, band.high_c)]

    suite = run_suite(detectors, seeds=range(SELECTION_SEEDS_START, SELECTION_SEEDS_START + seeds)).to_dict()
    return {"architecture": architecture, "train_s": round(train_s, 1), "seeds": suite["seeds"],
            "thresholds": {p: round(t.threshold, 3) for p, t in trained.items()}, "detectors": suite["detectors"]}


def table(result: dict[str, Any]) -> str:
    """One line per detector: recall, false alerts per sensor-day, then median delays of the kinds shown."""
    head = f"{result['architecture']:<12}{'detector':<10}{'recall':>8}{'false/sd':>10}" + "".join(
        f"{k[:14]:>16}" for k in KINDS_SHOWN)
    lines = [head]
    for name, d in result["detectors"].items():
        delays = "".join(f"{'—' if (v := d['kinds'].get(k, {}).get('median_delay_min')) is None else v:>16}"
                         for k in KINDS_SHOWN)
        lines.append(f"{'':<12}{name[:9]:<10}{d['recall']:>8.3f}{d['false_alerts_per_sensor_day']:>10.3f}{delays}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.architectures", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=6, help="selection seeds per scenario (default 6)")
    parser.add_argument("--architecture", action="append", choices=ARCHITECTURE_CHOICES,
                        help="default: all")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    results = [compare(a, args.seeds) for a in (args.architecture or ARCHITECTURE_CHOICES)]
    for r in results:
        print(table(r), f"\n{'':<12}trained 3 profiles in {r['train_s']} s, thresholds {r['thresholds']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
