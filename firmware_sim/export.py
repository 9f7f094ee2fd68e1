"""Write datasets to disk: readings as CSV and/or Parquet, labels as CSV and JSON; byte-identical per seed."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Final

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from firmware_sim.dataset import COLUMNS, Dataset
from firmware_sim.synth import Label

FORMATS: Final = ("csv", "parquet")
LABEL_FIELDS: Final = ("sensor", "kind", "start_ms", "end_ms", "benign")
_ARROW_TYPES: Final = {
    "sensor": pa.string(), "profile": pa.string(), "ts_ms": pa.int64(), "seq": pa.int64(), "temp_c": pa.float64(),
    "rh_pct": pa.float64(), "battery_mv": pa.float64(), "rssi_dbm": pa.int64(),
}


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return str(value)


def readings_csv(dataset: Dataset) -> str:
    """Readings as CSV text: a header, then one row per frame; an empty cell is an invalid marker."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    columns = [dataset.readings[name].tolist() for name in COLUMNS]
    writer.writerows([[_cell(v) for v in row] for row in zip(*columns, strict=True)])
    return out.getvalue()


def readings_table(dataset: Dataset) -> pa.Table:
    """Readings as an Arrow table (NaN stays NaN: the invalid marker, not a missing row)."""
    return pa.table({name: pa.array(dataset.readings[name].tolist() if name in ("sensor", "profile")
                                    else dataset.readings[name], type=_ARROW_TYPES[name]) for name in COLUMNS})


def labels_csv(labels: list[Label]) -> str:
    """Labels as CSV text (benign as true/false)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(LABEL_FIELDS)
    for lab in labels:
        writer.writerow([lab.sensor, lab.kind, lab.start_ms, lab.end_ms, "true" if lab.benign else "false"])
    return out.getvalue()


def labels_json(labels: list[Label]) -> str:
    """Labels as a JSON list of objects."""
    return json.dumps([asdict(lab) for lab in labels], indent=1) + "\n"


def read_labels(path: Path) -> list[Label]:
    """Labels back from a .json or .csv file written here."""
    if path.suffix == ".json":
        return [Label(**row) for row in json.loads(path.read_text())]
    with path.open(newline="") as fh:
        return [Label(r["sensor"], r["kind"], int(r["start_ms"]), int(r["end_ms"]), r["benign"] == "true")
                for r in csv.DictReader(fh)]


def write_dataset(dataset: Dataset, out_dir: Path, stem: str, formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """Write `{stem}.readings.csv|.parquet` and `{stem}.labels.csv|.json` into `out_dir`; returns the paths."""
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown format(s) {sorted(unknown)}; choose from {', '.join(FORMATS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if "csv" in formats:
        path = out_dir / f"{stem}.readings.csv"
        path.write_text(readings_csv(dataset))
        written.append(path)
    if "parquet" in formats:
        path = out_dir / f"{stem}.readings.parquet"
        pq.write_table(readings_table(dataset), path, compression="zstd")
        written.append(path)
    for path, text in ((out_dir / f"{stem}.labels.csv", labels_csv(dataset.labels)),
                       (out_dir / f"{stem}.labels.json", labels_json(dataset.labels))):
        path.write_text(text)
        written.append(path)
    return written
