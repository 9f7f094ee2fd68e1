"""Exports are byte-identical per seed and readable back; the CLI subcommands write what they promise."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from firmware_sim.cli import main
from firmware_sim.export import read_labels, write_dataset
from firmware_sim.scenarios import SCENARIOS, generate


def test_exports_are_byte_identical_for_the_same_seed(tmp_path: Path) -> None:
    first = write_dataset(generate("power_loss", 9, days=0.5), tmp_path / "a", "x")
    second = write_dataset(generate("power_loss", 9, days=0.5), tmp_path / "b", "x")
    assert [p.name for p in first] == ["x.readings.csv", "x.readings.parquet", "x.labels.csv", "x.labels.json"]
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
    other = write_dataset(generate("power_loss", 10, days=0.5), tmp_path / "c", "x")
    assert other[0].read_bytes() != first[0].read_bytes()


def test_parquet_and_labels_read_back(tmp_path: Path) -> None:
    d = generate("battery_depletion", 1, days=0.5)
    paths = write_dataset(d, tmp_path, "b")
    table = pq.read_table(paths[1])
    assert table.num_rows == len(d)
    np.testing.assert_array_equal(table.column("temp_c").to_numpy(), d.readings["temp_c"])
    assert table.column("sensor").to_pylist() == d.readings["sensor"].tolist()
    assert read_labels(paths[2]) == d.labels == read_labels(paths[3])
    header, first_row = paths[0].read_text().splitlines()[:2]
    assert header == "sensor,profile,ts_ms,seq,temp_c,rh_pct,battery_mv,rssi_dbm"
    assert first_row.startswith("c2:00:00:00:00:00,frozen,")


def test_cli_list_scenarios(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list-scenarios"]) == 0
    out = capsys.readouterr().out
    for name in SCENARIOS:
        assert name in out


def test_cli_export_writes_the_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "sensor_drift", "--out", str(tmp_path), "--days", "0.25", "--seed", "3",
                 "--format", "csv"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    names = sorted(Path(p).name for p in summary["files"])
    assert names == ["sensor_drift-seed3.labels.csv", "sensor_drift-seed3.labels.json",
                     "sensor_drift-seed3.readings.csv"]
    assert all((tmp_path / n).stat().st_size > 0 for n in names)
    assert summary["rows"] > 4 * 360 * 0.9


def test_cli_rejects_unknown_scenario_and_format(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["export", "no_such_thing", "--out", str(tmp_path)])
    assert main(["export", "defrost", "--out", str(tmp_path), "--format", "xlsx", "--days", "0.1"]) == 2


def test_cli_plot_writes_a_png(tmp_path: Path) -> None:
    out = tmp_path / "p.png"
    assert main(["plot", "door_left_open", "--out", str(out), "--days", "0.5"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_fleet_reports_its_rate(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fleet", "--gateways", "4", "--sensors", "5", "--ticks", "30"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.9 * 600 < summary["readings"] <= 620 and summary["sent"] == 0
