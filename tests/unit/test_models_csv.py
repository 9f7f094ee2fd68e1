"""models.csvdata: logger exports with units, zones, cadences; clear errors naming lines."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from models.csvdata import CsvError, parse_time, read_csv, temperature_unit


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "log.csv"
    path.write_text(text)
    return path


def rows(n: int, step_s: int = 300, start: str = "2026-01-01 00:00:00") -> list[str]:
    from datetime import datetime, timedelta

    t0 = datetime.fromisoformat(start)
    return [(t0 + timedelta(seconds=i * step_s)).strftime("%Y-%m-%d %H:%M:%S") for i in range(n)]


def test_fahrenheit_timezone_cadence_and_volts(tmp_path: Path) -> None:
    lines = ["Date Time;Temperature (°F);Humidity (%);Battery (V)"]
    lines += [f"{t};{39.2 + (i % 3) * 0.1:.1f};55;3,0" for i, t in enumerate(rows(80, 300))]
    data = read_csv(write(tmp_path, "\n".join(lines) + "\n"), timezone="Europe/Berlin")
    (s,) = data.series
    assert data.sample_period_s == 300.0
    assert s.temp_c[0] == pytest.approx(4.0)
    assert s.battery_mv[0] == pytest.approx(3000.0)
    assert s.ts_ms[0] == parse_time("2025-12-31T23:00:00Z", ZoneInfo("UTC"))  # Berlin is UTC+1 in winter
    assert np.all(np.diff(s.ts_ms) == 300_000)


def test_epoch_seconds_and_milliseconds_and_units() -> None:
    utc = ZoneInfo("UTC")
    assert parse_time("1767225600", utc) == parse_time("1767225600000", utc) == 1_767_225_600_000
    assert parse_time("2026-01-01T00:00:00+01:00", utc) == 1_767_222_000_000
    assert temperature_unit("temp_f", "auto") == "F"
    assert temperature_unit("Temperature (K)", "auto") == "K"
    assert temperature_unit("temperature", "auto") == "C"
    assert temperature_unit("whatever", "f") == "F"


@pytest.mark.parametrize("body, message", [
    ("{a}\n{c}\n{b}\n", "out of order"),
    ("{a}\n{a}\n", "repeated"),
    ("{a}\nnot a time,4.0\n", "line 3"),
])
def test_errors_name_the_line(tmp_path: Path, body: str, message: str) -> None:
    a, b, c = (f"2026-01-01T00:0{i}:00Z,4.0" for i in range(3))
    with pytest.raises(CsvError, match=message):
        read_csv(write(tmp_path, "timestamp,temperature\n" + body.format(a=a, b=b, c=c)), min_rows=1)


def test_too_little_data_and_missing_columns(tmp_path: Path) -> None:
    with pytest.raises(CsvError, match="too little data"):
        read_csv(write(tmp_path, "timestamp,temperature\n2026-01-01T00:00:00Z,4.0\n"))
    with pytest.raises(CsvError, match="temperature column"):
        read_csv(write(tmp_path, "timestamp,pressure\n2026-01-01T00:00:00Z,4.0\n"))
    with pytest.raises(CsvError, match="time zone"):
        read_csv(write(tmp_path, "timestamp,temperature\n"), timezone="Mars/Olympus")


def test_empty_cells_are_invalid_readings(tmp_path: Path) -> None:
    lines = ["timestamp,temperature"] + [f"{t},{'' if i == 5 else 4.0}" for i, t in enumerate(rows(70, 60))]
    (s,) = read_csv(write(tmp_path, "\n".join(lines))).series
    assert np.isnan(s.temp_c[5]) and np.isfinite(s.temp_c[6])
