"""What each `coldwatch models …` action does (imported only when one runs: torch loads lazily).

Each function takes the parsed arguments and returns an exit status.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from models.data import Series
from models.manifest import (
    Manifest,
    ModelFiles,
    generate_keypair,
    load_public_key,
    load_verified,
    sha256_file,
    sign_manifest,
)

log = logging.getLogger("models.cli")


def _keys(paths: list[Path] | None) -> list[bytes]:
    return [load_public_key(p.read_bytes()) for p in paths or []]


def _write_private_key(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # refuses to overwrite
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def keygen(args: argparse.Namespace) -> int:
    """Write NAME.key (PKCS#8 PEM, mode 0600) and NAME.pub (base64 of the 32 raw bytes)."""
    args.out.mkdir(parents=True, exist_ok=True)
    private_pem, public_raw = generate_keypair()
    private_path, public_path = args.out / f"{args.name}.key", args.out / f"{args.name}.pub"
    if public_path.exists():
        raise FileExistsError(f"{public_path} exists; not overwriting a key")
    import base64

    _write_private_key(private_path, private_pem)
    public_path.write_bytes(base64.b64encode(public_raw) + b"\n")
    print(json.dumps({"private_key": str(private_path), "public_key": str(public_path)}))
    return 0


def sign(args: argparse.Namespace) -> int:
    """Check the manifest's sha256 against the .tflite, then write the signature."""
    files = ModelFiles.locate(args.model)
    data = files.manifest.read_bytes()
    manifest = Manifest.from_bytes(data)
    actual = sha256_file(files.model)
    if actual != manifest.sha256:
        raise ValueError(f"{files.model.name} has sha256 {actual} but the manifest says {manifest.sha256}")
    files.signature.write_bytes(sign_manifest(data, args.key.read_bytes()) + b"\n")
    print(json.dumps({"signed": str(files.manifest), "signature": str(files.signature)}))
    return 0


def verify(args: argparse.Namespace) -> int:
    """The gateway's check: exit 0 and a JSON line, or ModelRejected (exit 1)."""
    manifest = load_verified(args.model, _keys(args.public_key))
    print(json.dumps({"ok": True, "name": manifest.name, "version": manifest.version, "profile": manifest.profile,
                      "threshold": manifest.threshold, "sha256": manifest.sha256}))
    return 0


def _export_and_report(trained: Any, out: Path, *, name: str, version: str, key: Path | None,
                       checkpoint: Path) -> int:
    from models.artifacts import export_model
    from models.export import ExportRejected

    try:
        done = export_model(trained, out, name=name, version=version,
                            private_key_pem=key.read_bytes() if key else None)
    except ExportRejected as exc:
        print(f"export rejected: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"checkpoint": str(checkpoint), "model": str(done.files.model), "signed": done.signed,
                      "threshold": round(done.manifest.threshold, 6), "bytes": done.files.model.stat().st_size,
                      "int8_check": done.check.as_dict(), "metrics": trained.metrics}))
    if not done.signed:
        print("warning: unsigned; gateways refuse it until `coldwatch models sign` is run", file=sys.stderr)
    return 0


def train(args: argparse.Namespace) -> int:
    """Train (simulator profile or CSV), save the checkpoint, export the signed int8 model."""
    from models.artifacts import default_name, default_version, save_checkpoint
    from models.train import TrainConfig, train_on_series, train_profile

    version = args.version or default_version()
    if args.csv is not None:
        from models.csvdata import read_csv

        data = read_csv(args.csv, time_column=args.time_column, temp_column=args.temp_column, unit=args.unit,
                        timezone=args.timezone, profile="custom")
        cfg = TrainConfig("custom", architecture=args.architecture, sample_period_s=data.sample_period_s,
                          epochs=args.epochs, seed=args.seed, device=args.device, stride=1)
        train_part, validation = _chronological_split(data.series)
        trained = train_on_series(train_part, validation, cfg)
        trained.training_range = {"source": "csv", "file": args.csv.name, "sensors": len(data.series),
                                  "sample_period_s": data.sample_period_s,
                                  "from_ms": int(min(s.ts_ms[0] for s in data.series)),
                                  "to_ms": int(max(s.ts_ms[-1] for s in data.series))}
        name = "cw_csv"
    else:
        cfg = TrainConfig(args.profile, architecture=args.architecture, sensors=args.sensors, days=args.days,
                          epochs=args.epochs, seed=args.seed, device=args.device)
        trained = train_profile(cfg)
        name = default_name(args.profile)
    out = args.out / f"{name}-{version}"
    checkpoint = save_checkpoint(trained, out / f"{name}-{version}.pt", hidden=cfg.hidden)
    if args.no_export:
        print(json.dumps({"checkpoint": str(checkpoint), "metrics": trained.metrics}))
        return 0
    return _export_and_report(trained, out, name=name, version=version, key=args.key, checkpoint=checkpoint)


def _chronological_split(series: list[Series]) -> tuple[list[Series], list[Series]]:
    """First 80 % of each sensor's time for training, the rest for the threshold."""
    train_part: list[Series] = []
    validation: list[Series] = []
    for s in series:
        cut = int(len(s.ts_ms) * 0.8)
        for part, lo, hi in ((train_part, 0, cut), (validation, cut, len(s.ts_ms))):
            part.append(Series(s.sensor, s.profile, s.ts_ms[lo:hi], s.temp_c[lo:hi], s.rh_pct[lo:hi],
                               s.battery_mv[lo:hi]))
    return train_part, validation


def export(args: argparse.Namespace) -> int:
    """Re-export a checkpoint (e.g. after signing keys change)."""
    from models.artifacts import default_name, load_checkpoint

    trained = load_checkpoint(args.checkpoint)
    stem = args.checkpoint.name[: -len(".pt")]
    name, _, old_version = stem.partition("-")
    version = args.version or old_version
    out = args.checkpoint.parent if version == old_version else args.checkpoint.parent.parent / f"{name}-{version}"
    return _export_and_report(trained, out, name=name or default_name(trained.profile), version=version,
                              key=args.key, checkpoint=args.checkpoint)


def evaluate(args: argparse.Namespace) -> int:
    """The held-out suite with the newest model of each profile beside both baselines."""
    from models.artifacts import latest_by_profile
    from models.data import HELD_OUT_SEEDS
    from models.evaluate import Detector, Gateway, ModelDetector, RollingZScore, StaticRule, gateway_rules, run_suite
    from models.features import FeatureSpec
    from models.runtime import TfliteModel
    from protocol.profiles import PROFILES

    found = latest_by_profile(args.models)
    if not found:
        raise ValueError(f"no models under {args.models}; run `coldwatch models train` first")
    keys = _keys(args.public_key)
    for files, _ in found.values():
        if keys:
            load_verified(files.manifest, keys)

    def detectors(profile: str) -> list[Detector] | None:
        if profile not in found:
            return None
        files, manifest = found[profile]
        band = PROFILES[profile]
        spec = FeatureSpec.from_dict(manifest.feature_spec)
        model = TfliteModel(files.model)
        ours = ModelDetector(spec, manifest.threshold, model.outputs, name="model (int8)")
        return [ours, Gateway([ours, *gateway_rules()], name="gateway (model+rules)"),
                StaticRule(band.low_c, band.high_c, minutes=args.rule_minutes),
                RollingZScore(sample_period_s=spec.sample_period_s)]

    seeds = range(HELD_OUT_SEEDS.start, HELD_OUT_SEEDS.start + args.seeds)
    result = run_suite(detectors, scenarios=args.scenario, seeds=seeds, days=args.days)
    print(f"held-out seeds {seeds.start}..{seeds.stop - 1}, {result.runs} runs; models: "
          + ", ".join(f"{p}={m.stem}" for p, (_, m) in sorted(found.items())))
    if result.skipped:
        print("skipped (no model for their profile): " + ", ".join(result.skipped))
    print(result.table())
    if args.json:
        report = result.to_dict() | {"models": {p: m.stem for p, (_, m) in found.items()}}
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def score(args: argparse.Namespace) -> int:
    """Per-row causal scores of a CSV with the model, and the alerts the gateway would have raised."""
    from models.csvdata import read_csv
    from models.episodes import episodes, model_lifecycle_ms
    from models.features import FeatureSpec, windows_at
    from models.features import score as score_fn
    from models.runtime import TfliteModel

    files = ModelFiles.locate(args.model)
    keys = _keys(args.public_key)
    manifest = load_verified(files.manifest, keys) if keys else Manifest.from_bytes(files.manifest.read_bytes())
    spec = FeatureSpec.from_dict(manifest.feature_spec)
    data = read_csv(args.csv, time_column=args.time_column, temp_column=args.temp_column, unit=args.unit,
                    timezone=args.timezone, min_rows=1)
    if data.sample_period_s > spec.sample_period_s * 1.5:
        print(f"warning: the CSV's cadence ({data.sample_period_s:g} s) is coarser than the model's "
              f"({spec.sample_period_s:g} s); most windows will lack data", file=sys.stderr)
    model = TfliteModel(files.model)
    min_ms, clear_ms = model_lifecycle_ms(spec.sample_period_s)
    rows: list[tuple[int, str, str, str, str, int]] = []
    events: list[dict[str, Any]] = []
    for s in data.series:
        x, usable = windows_at(spec, s.ts_ms, s.temp_c, s.rh_pct, s.battery_mv, end_ms=s.ts_ms)
        scores = np.full(len(s.ts_ms), np.nan, dtype=np.float32)
        if usable.any():
            scores[usable] = score_fn(x[usable], model.outputs(x[usable]))
        alerts = episodes(scores[usable] > manifest.threshold, s.ts_ms[usable], min_duration_ms=min_ms,
                          clear_after_ms=clear_ms)
        in_alert = np.zeros(len(s.ts_ms), dtype=np.int64)
        for number, a in enumerate(alerts, start=1):
            in_alert[(s.ts_ms >= a.opened_ms) & (s.ts_ms <= a.end_ms)] = number
            events.append({"sensor": s.sensor, "alert": number, "condition_since_ms": a.since_ms,
                           "raised_ms": a.opened_ms, "ended_ms": a.end_ms})
        for i in range(len(s.ts_ms)):
            value = "" if np.isnan(scores[i]) else f"{float(scores[i]):.6g}"
            flagged = "" if np.isnan(scores[i]) else str(int(scores[i] > manifest.threshold))
            rows.append((int(data.lines[s.sensor][i]), data.raw_time[s.sensor][i], s.sensor, value, flagged,
                         int(in_alert[i])))
    rows.sort()
    with args.out.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["line", "timestamp", "sensor", "score", "above_threshold", "alert"])
        writer.writerows(rows)
    print(json.dumps({"model": manifest.stem, "threshold": manifest.threshold, "rows": len(rows),
                      "scored": sum(1 for r in rows if r[3]), "alerts": events}))
    return 0
