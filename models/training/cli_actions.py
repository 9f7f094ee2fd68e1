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

from models.runtime.manifest import (
    MANIFEST_SUFFIX,
    Manifest,
    ModelFiles,
    generate_keypair,
    load_public_key,
    load_verified,
    sha256_file,
    sign_manifest,
)
from models.training.csvdata import CsvData
from models.training.data import Series

log = logging.getLogger("models.training.cli")


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
    from models.training.artifacts import export_model
    from models.training.export import ExportRejected

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
    from models.training.artifacts import default_name, default_version, save_checkpoint
    from models.training.third_party_noise import native_noise_filtered, quiet_third_parties
    from models.training.train import TrainConfig, train_on_series, train_profile

    quiet_third_parties()  # again: importing torch reset its logger
    version = args.version or default_version()
    if args.csv is not None:
        data = _read_csv(args, min_rows=None)
        cfg = TrainConfig("custom", architecture=args.architecture, sample_period_s=data.sample_period_s,
                          epochs=args.epochs, seed=args.seed, device=args.device, stride=1)
        train_part, validation = _chronological_split(data.series)
        trained = train_on_series(train_part, validation, cfg)
        trained.training_range = {"source": "csv", "file": args.csv.name, "sensors": len(data.sensors),
                                  "segments": len(data.segments), "sample_period_s": data.sample_period_s,
                                  "from_ms": int(min(s.ts_ms[0] for s in data.series)),
                                  "to_ms": int(max(s.ts_ms[-1] for s in data.series)),
                                  "columns": data.columns, "timezone": data.timezone}
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
    with native_noise_filtered():
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
    from models.training.artifacts import default_name, load_checkpoint

    trained = load_checkpoint(args.checkpoint)
    stem = args.checkpoint.name[: -len(".pt")]
    name, _, old_version = stem.partition("-")
    version = args.version or old_version
    out = args.checkpoint.parent if version == old_version else args.checkpoint.parent.parent / f"{name}-{version}"
    return _export_and_report(trained, out, name=name or default_name(trained.profile), version=version,
                              key=args.key, checkpoint=args.checkpoint)


def evaluate(args: argparse.Namespace) -> int:
    """The held-out suite with the newest model of each profile beside both baselines."""
    from models.runtime.features import FeatureSpec
    from models.runtime.tflite import TfliteModel
    from models.training.artifacts import latest_by_profile
    from models.training.data import HELD_OUT_SEEDS
    from models.training.evaluate import (
        Detector,
        Gateway,
        ModelDetector,
        RollingZScore,
        StaticRule,
        gateway_rules,
        run_suite,
    )
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


def _read_csv(args: argparse.Namespace, *, min_rows: int | None) -> CsvData:
    """The CSV named by --csv with the command's reading options; what the reader noticed goes to stderr."""
    from models.training.csvdata import MIN_ROWS, read_csv

    data = read_csv(args.csv, time_column=args.time_column, temp_column=args.temp_column, rh_column=args.rh_column,
                    battery_column=args.battery_column, sensor_column=args.sensor_column, unit=args.unit,
                    timezone=args.timezone, profile="custom", min_rows=MIN_ROWS if min_rows is None else min_rows,
                    encoding=args.encoding, date_format=args.date_format, dayfirst=args.dayfirst)
    print(f"read {args.csv.name}: {data.rows} rows of {len(data.sensors)} sensor(s), header on line "
          f"{data.header_line}, {data.encoding}, every {data.sample_period_s:g} s; columns "
          + ", ".join(f"{role}={name!r}" for role, name in data.columns.items()), file=sys.stderr)
    for note in data.notes:
        print(f"note: {note.message}", file=sys.stderr)
    return data


def locate_model(path: Path) -> ModelFiles:
    """A model from what `train` printed or wrote: its folder or any of its files (.tflite, manifest, signature,
    .pt), or the folder given to `train --out` (the newest model inside when all are of one profile)."""
    if not path.exists():
        raise ValueError(f"no model at {path}")
    if path.is_file():
        if path.suffix == ".pt":
            files = ModelFiles.for_stem(path.parent, path.name[: -len(".pt")])
            if not files.manifest.exists():
                raise ValueError(f"{path} is a training checkpoint with no exported model beside it; run "
                                 f"`coldwatch models export {path}` first")
            return files
        return ModelFiles.locate(path)
    if len(list(path.glob("*" + MANIFEST_SUFFIX))) == 1:
        return ModelFiles.locate(path)
    found = []
    for manifest_path in sorted(path.rglob("*" + MANIFEST_SUFFIX)):
        manifest = Manifest.from_bytes(manifest_path.read_bytes())
        found.append((ModelFiles.for_stem(manifest_path.parent, manifest.stem), manifest))
    if not found:
        hint = ("; it has checkpoints (.pt) only: run `coldwatch models export` on one" if any(path.rglob("*.pt"))
                else "; train one with `coldwatch models train --csv FILE --out DIR`")
        raise ValueError(f"no model under {path} (no *{MANIFEST_SUFFIX}){hint}")
    newest: dict[str, tuple[ModelFiles, Manifest]] = {}
    for files, manifest in sorted(found, key=lambda fm: (fm[1].created_at, fm[1].version)):
        newest[manifest.profile] = (files, manifest)
    if len(newest) > 1:
        raise ValueError(f"{path} holds models of {len(newest)} profiles: "
                         + ", ".join(f"{p} (newest {files.model.parent})" for p, (files, _) in sorted(newest.items()))
                         + "; pass the folder of the one to use")
    ((files, manifest),) = newest.values()
    if len(found) > 1:
        print(f"note: {len(found)} models under {path}; using the newest, {manifest.stem}", file=sys.stderr)
    return files


def _missing_channels(manifest: Manifest, data: CsvData, csv_name: str) -> list[str]:
    """Warnings for channels the model reads that the file does not have (they score as the training mean); not
    for a model trained on a CSV that lacked them too."""
    trained_on = manifest.training_range.get("columns") if manifest.training_range.get("source") == "csv" else None
    features = manifest.feature_spec.get("features", [])
    out = []
    for channels, role, option, values in (
            (("rh_pct", "rh_dev"), "humidity", "--rh-column", [s.rh_pct for s in data.series]),
            (("battery_mv", "battery_trend"), "battery", "--battery-column", [s.battery_mv for s in data.series])):
        used = [c for c in channels if c in features]
        if not used or any(np.isfinite(v).any() for v in values):
            continue
        if isinstance(trained_on, dict) and role not in trained_on:
            continue
        what = f"no {role} column" if role not in data.columns else f"no valid value in its {role} column"
        out.append(f"the model uses {', '.join(used)} but {csv_name} has {what} (name it with {option}); it reads "
                   f"as missing, i.e. the training mean")
    return out


def score(args: argparse.Namespace) -> int:
    """Per-row causal scores of a CSV with the model, and the alerts the gateway would have raised."""
    from models.runtime.episodes import episodes, model_lifecycle_ms
    from models.runtime.features import FeatureSpec, windows_at
    from models.runtime.features import score as score_fn
    from models.runtime.tflite import TfliteModel
    from models.training.csvdata import iso_local
    from models.training.third_party_noise import native_noise_filtered

    files = locate_model(args.model)
    keys = _keys(args.public_key)
    manifest = load_verified(files.manifest, keys) if keys else Manifest.from_bytes(files.manifest.read_bytes())
    spec = FeatureSpec.from_dict(manifest.feature_spec)
    if args.out.resolve() == args.csv.resolve():
        raise ValueError(f"--out {args.out} is the input file; choose another name")
    if not args.out.resolve().parent.is_dir():
        raise ValueError(f"cannot write {args.out}: no folder {args.out.parent}")
    data = _read_csv(args, min_rows=1)
    for warning in _missing_channels(manifest, data, args.csv.name):
        print(f"warning: {warning}", file=sys.stderr)
    if data.sample_period_s > spec.sample_period_s * 1.5:
        print(f"warning: the CSV's cadence ({data.sample_period_s:g} s) is coarser than the model's "
              f"({spec.sample_period_s:g} s); most windows will lack data", file=sys.stderr)
    min_ms, clear_ms = model_lifecycle_ms(spec.sample_period_s)
    rows: list[tuple[int, str, str, str, str, int, int]] = []
    events: list[dict[str, Any]] = []
    numbers: dict[str, int] = {}
    with native_noise_filtered():
        model = TfliteModel(files.model)
        for index, seg in enumerate(data.segments):
            s = seg.series
            x, usable = windows_at(spec, s.ts_ms, s.temp_c, s.rh_pct, s.battery_mv, end_ms=s.ts_ms)
            # as on a gateway (and in training), a sensor's first window ends a full window after its history
            # begins: earlier ones hold a copied first value where readings have not come yet, and scored like
            # faults at the start of every file
            usable &= s.ts_ms >= s.ts_ms[0] + (spec.window - 1) * round(spec.sample_period_s * 1000)
            scores = np.full(len(s.ts_ms), np.nan, dtype=np.float32)
            if usable.any():
                scores[usable] = score_fn(x[usable], model.outputs(x[usable]))
            active, when = scores[usable] > manifest.threshold, s.ts_ms[usable]
            alerts = episodes(active, when, min_duration_ms=min_ms, clear_after_ms=clear_ms)
            alert_id = np.zeros(len(s.ts_ms), dtype=np.int64)
            opened = np.zeros(len(s.ts_ms), dtype=np.int64)
            for a in alerts:
                number = numbers[s.sensor] = numbers.get(s.sensor, 0) + 1
                alert_id[(s.ts_ms >= a.opened_ms) & (s.ts_ms <= a.end_ms)] = number
                at = int(np.searchsorted(s.ts_ms, a.opened_ms))
                opened[at] = 1
                events.append({"sensor": s.sensor, "alert_id": number, "segment": index,
                               "condition_since_ms": a.since_ms, "raised_ms": a.opened_ms, "ended_ms": a.end_ms,
                               "condition_since": iso_local(a.since_ms, data.timezone),
                               "raised": iso_local(a.opened_ms, data.timezone),
                               "ended": iso_local(a.end_ms, data.timezone), "raised_line": int(seg.lines[at]),
                               "open_at_end": _open_at_end(active, when, a.end_ms, clear_ms),
                               "duration_s": (a.end_ms - a.opened_ms) / 1000})
            for i in range(len(s.ts_ms)):
                value = "" if np.isnan(scores[i]) else f"{float(scores[i]):.6g}"
                flagged = "" if np.isnan(scores[i]) else str(int(scores[i] > manifest.threshold))
                rows.append((int(seg.lines[i]), seg.raw_time[i], s.sensor, value, flagged, int(alert_id[i]),
                             int(opened[i])))
    rows.sort()
    try:
        with args.out.open("w", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(["line", "timestamp", "sensor", "score", "above_threshold", "alert_id", "alert_opened"])
            writer.writerows(rows)
    except OSError as exc:
        raise ValueError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    result: dict[str, Any] = {
        "model": manifest.stem, "model_path": str(files.model), "threshold": manifest.threshold, "rows": len(rows),
        "scored": sum(1 for r in rows if r[3]), "out": str(args.out), "sample_period_s": data.sample_period_s,
        "csv": {"file": str(args.csv), "encoding": data.encoding, "header_line": data.header_line,
                "columns": data.columns, "date_order": data.date_order, "timezone": data.timezone,
                "sensors": len(data.sensors), "segments": len(data.segments)},
        "notes": [n.as_dict() for n in data.notes], "alerts": events}
    if args.report:
        result["report"] = backtest_report(data, events)
        print(report_text(result["report"], events, model=manifest.stem, csv_name=args.csv.name,
                          timezone=data.timezone), file=sys.stderr)
    print(json.dumps(result))
    return 0


def _open_at_end(active: np.ndarray, when: np.ndarray, end_ms: int, clear_ms: int) -> bool:
    """Whether an episode ending at `end_ms` was cut by the end of the data rather than cleared."""
    if len(when) == 0 or end_ms != int(when[-1]):
        return False
    last_active = np.flatnonzero(active)
    quiet = when[last_active[-1] + 1:] if len(last_active) else when
    return len(quiet) == 0 or int(when[-1] - quiet[0]) < clear_ms


def backtest_report(data: CsvData, events: list[dict[str, Any]]) -> dict[str, Any]:
    """Alerts per sensor-day and time in alert, per sensor and over all (covered time: each segment's span)."""
    per_sensor = []
    spans = []
    for sensor in data.sensors:
        spans.append(sum(float(s.ts_ms[-1] - s.ts_ms[0]) / 1000 for s in data.series if s.sensor == sensor))
        mine = [e for e in events if e["sensor"] == sensor]
        per_sensor.append(_rates(sensor, spans[-1], len(mine), sum(e["duration_s"] for e in mine)))
    total = _rates("all", sum(spans), len(events), sum(e["duration_s"] for e in events))
    return {"sensor_days": total["days"], "alerts": len(events), "alerts_per_sensor_day": total["alerts_per_day"],
            "time_in_alert_s": total["time_in_alert_s"], "time_in_alert_pct": total["time_in_alert_pct"],
            "per_sensor": per_sensor}


def _rates(sensor: str, span_s: float, alerts: int, in_alert_s: float) -> dict[str, Any]:
    days = span_s / 86_400
    return {"sensor": sensor, "days": round(days, 4), "alerts": alerts,
            "alerts_per_day": round(alerts / days, 3) if days > 0 else None, "time_in_alert_s": in_alert_s,
            "time_in_alert_pct": round(100 * in_alert_s / span_s, 2) if span_s > 0 else None}


def report_text(report: dict[str, Any], events: list[dict[str, Any]], *, model: str, csv_name: str,
                timezone: str) -> str:
    """The report for people: one line per sensor, then each episode in the file's local time."""
    def per_day(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    def pct(value: float | None) -> str:
        return "" if value is None else f" ({value:.1f} %)"

    width = max([len("sensor"), *(len(p["sensor"]) for p in report["per_sensor"])])
    lines = [f"backtest of {model} on {csv_name} (times in {timezone})",
             f"{'sensor':<{width}}  {'days':>7}  {'alerts':>6}  {'per day':>7}  time in alert"]
    for p in [*report["per_sensor"], {**report, "sensor": "all", "days": report["sensor_days"],
                                      "alerts_per_day": report["alerts_per_sensor_day"]}]:
        lines.append(f"{p['sensor']:<{width}}  {p['days']:>7.3f}  {p['alerts']:>6}  {per_day(p['alerts_per_day']):>7}"
                     f"  {_human_s(p['time_in_alert_s'])}{pct(p['time_in_alert_pct'])}")
    lines.append("episodes:" if events else "episodes: none")
    for e in events:
        still = ", still open at the end of the file" if e["open_at_end"] else ""
        lines.append(f"  {e['sensor']} #{e['alert_id']}: raised {e['raised']} (line {e['raised_line']}), ended "
                     f"{e['ended']}, {_human_s(e['duration_s'])} in alert; condition since {e['condition_since']}"
                     f"{still}")
    return "\n".join(lines)


def _human_s(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"
