"""`coldwatch models …`: keygen, sign, verify, train, export, evaluate, score (wired into cloud/cli/main.py)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Final

from models.runtime.manifest import ModelRejected
from models.training.third_party_noise import quiet_third_parties

log = logging.getLogger("models.training.cli")

EXIT_FAIL: Final = 1
EXIT_USAGE: Final = 2
DEFAULT_DIR: Final = Path("var/models")
# models.training.nets.ARCHITECTURES, named here without importing torch
ARCHITECTURE_CHOICES: Final = ("classifier", "autoencoder", "forecaster")
# Third-party chatter during training and export: litert_torch's progress lines on stdout, TensorFlow / absl / TFLite
# lines on fd 2, torch / torchao / jax warnings through logging, FutureWarnings. Set only where not set already.
def add_subparsers(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add `models` and its subcommands to a parent's subparsers."""
    models = subparsers.add_parser("models", help="train, export, sign, verify and evaluate anomaly models",
                                   description="The model pipeline: train (simulator or CSV) → int8 TFLite → "
                                               "signed manifest; evaluation against baselines; CSV backtests.")
    sub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")

    keygen = sub.add_parser("keygen", help="create an Ed25519 signing key pair")
    keygen.add_argument("--out", type=Path, default=Path("var/keys"), help="folder (default var/keys)")
    keygen.add_argument("--name", default="fleet", help="file stem: NAME.key (private), NAME.pub (default fleet)")

    sign = sub.add_parser("sign", help="(re)sign a model's manifest after checking its sha256")
    sign.add_argument("model", type=Path, help="model folder or any of its files")
    sign.add_argument("--key", type=Path, required=True, help="private key (PEM) from keygen")

    verify = sub.add_parser("verify", help="verify a model as a gateway would (exit 1 if rejected)")
    verify.add_argument("model", type=Path, help="model folder or any of its files")
    verify.add_argument("--public-key", type=Path, action="append", required=True, help="trusted key (repeatable)")

    train = sub.add_parser("train", help="train a profile on simulated data, or on your own CSV; then export")
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument("--profile", help="asset profile to train on simulated normal data (e.g. chilled)")
    source.add_argument("--csv", type=Path, help="train on a logger export (assumed mostly normal operation)")
    train.add_argument("--out", type=Path, default=DEFAULT_DIR, help=f"models folder (default {DEFAULT_DIR})")
    train.add_argument("--key", type=Path, help="sign with this private key (default: unsigned)")
    train.add_argument("--architecture", choices=ARCHITECTURE_CHOICES, default="classifier",
                       help="network (default classifier; docs/experiments.md#architecture-comparison)")
    train.add_argument("--sensors", type=int, default=50, help="simulated sensors (default 50)")
    train.add_argument("--days", type=float, default=7.0, help="simulated days per sensor (default 7)")
    train.add_argument("--epochs", type=int, default=8)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    train.add_argument("--version", help="model version (default: UTC time)")
    train.add_argument("--no-export", action="store_true", help="write only the torch checkpoint")
    _csv_options(train)

    export = sub.add_parser("export", help="int8 TFLite + manifest (+ signature) from a checkpoint")
    export.add_argument("checkpoint", type=Path, help="the .pt written by train")
    export.add_argument("--key", type=Path, help="sign with this private key")
    export.add_argument("--version", help="model version (default: the checkpoint's)")

    evaluate = sub.add_parser("evaluate", help="held-out scenario suite: models beside the static rule and z-score")
    evaluate.add_argument("--models", type=Path, default=DEFAULT_DIR, help="folder with models (newest per profile)")
    evaluate.add_argument("--seeds", type=int, default=4, help="held-out seeds per scenario (default 4)")
    evaluate.add_argument("--days", type=float, default=1.0, help="days per run (default 1)")
    evaluate.add_argument("--scenario", action="append", type=_scenario,
                          help="only these scenarios (repeatable; names from `coldwatch-sim list-scenarios`)")
    evaluate.add_argument("--rule-minutes", type=float, default=30.0, help="static rule hold time (default 30)")
    evaluate.add_argument("--json", type=Path, help="also write the results here")
    evaluate.add_argument("--public-key", type=Path, action="append", help="verify models with these keys first")

    score = sub.add_parser("score", help="backtest a model on a CSV: per-row score and flagged events")
    score.add_argument("--model", type=Path, required=True, help="model folder or any of its files")
    score.add_argument("--csv", type=Path, required=True)
    score.add_argument("--out", type=Path, required=True, help="CSV with a score per row")
    score.add_argument("--public-key", type=Path, action="append", help="verify the model with these keys first")
    score.add_argument("--report", action="store_true",
                       help="also report alerts per sensor-day, time in alert and each episode (stderr and JSON)")
    _csv_options(score)
    return models


def _csv_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--time-column", help="timestamp column (default: found by name)")
    parser.add_argument("--temp-column", help="temperature column (default: found by name)")
    parser.add_argument("--rh-column", help="humidity column (default: found by name: humidity, rh, RH%%…)")
    parser.add_argument("--battery-column", help="battery column (default: found by name)")
    parser.add_argument("--sensor-column", help="column naming the sensor of each row (default: found by name)")
    parser.add_argument("--unit", default="auto", help="temperature unit C, F, K or auto (from the column name)")
    parser.add_argument("--timezone", default="UTC", help="zone of timestamps without an offset (default UTC)")
    parser.add_argument("--encoding", help="text encoding (default: BOM, else UTF-8, else Windows-1252)")
    order = parser.add_mutually_exclusive_group()
    order.add_argument("--date-format", help="strptime format of the timestamps, e.g. '%%d/%%m/%%Y %%H:%%M'")
    order.add_argument("--dayfirst", dest="dayfirst", action="store_const", const=True,
                       help="read 11/03/2025 as 11 March (default: inferred from a day above 12, else refused)")
    order.add_argument("--monthfirst", dest="dayfirst", action="store_const", const=False,
                       help="read 11/03/2025 as 3 November")


def _scenario(name: str) -> str:
    from models.training.simulated import scenario_names

    if name not in scenario_names():
        choices = ", ".join(sorted(scenario_names()))
        raise argparse.ArgumentTypeError(f"unknown scenario {name!r}; choose from {choices}")
    return name


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def dispatch(args: argparse.Namespace) -> int:
    """Run the chosen `models` action; returns the exit status. stdout carries only the action's JSON result."""
    quiet_third_parties()
    from models.training import cli_actions

    action = getattr(cli_actions, args.models_command)
    try:
        return int(action(args))
    except ModelRejected as exc:
        print(f"coldwatch: error: model rejected: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAIL
    except (ValueError, OSError, LookupError) as exc:
        print(f"coldwatch: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
