"""Users' own logger exports: CSV → per-sensor series (units, time zones, cadence), with clear errors.

Columns are found by name (timestamp, temperature, optional humidity, battery, sensor); pass names to override.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from models.data import Series

TIME_NAMES: Final = ("timestamp", "ts_ms", "ts", "time", "datetime", "date_time", "date")
TEMP_NAMES: Final = ("temperature", "temp_c", "temperature_c", "temp", "temp_f", "temperature_f", "t")
RH_NAMES: Final = ("humidity", "rh_pct", "rh", "relative_humidity", "humidity_pct")
BATTERY_NAMES: Final = ("battery_mv", "battery", "battery_v", "vbat")
SENSOR_NAMES: Final = ("sensor", "mac", "device", "logger", "serial")
FORMATS: Final = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M",
                  "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M")
MIN_ROWS: Final = 60
MAX_REPORTED: Final = 5


class CsvError(ValueError):
    """The CSV cannot be used as it is; the message says where and why."""


@dataclass(frozen=True)
class CsvData:
    """One series per sensor, the detected cadence, and each row's origin for writing results back."""

    series: list[Series]
    sample_period_s: float
    lines: dict[str, np.ndarray]  # per sensor: the CSV line number of each kept row
    raw_time: dict[str, list[str]]  # per sensor: the timestamp text of each kept row


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower().replace("°", "")).strip("_")


def _find(header: list[str], wanted: str | None, names: Sequence[str], what: str, required: bool) -> int | None:
    normalised = [_norm(h) for h in header]
    if wanted is not None:
        if _norm(wanted) not in normalised:
            raise CsvError(f"no column {wanted!r} for {what}; columns are {', '.join(header)}")
        return normalised.index(_norm(wanted))
    for name in names:
        for i, col in enumerate(normalised):
            if col == name or col.startswith(name + "_"):
                return i
    if required:
        raise CsvError(f"cannot find the {what} column (tried {', '.join(names)}); name it with an option")
    return None


def temperature_unit(column: str, unit: str) -> str:
    """'C', 'F' or 'K': `unit` unless 'auto', then from the column name (°F, _f, fahrenheit, kelvin), else C."""
    if unit.upper() in ("C", "F", "K"):
        return unit.upper()
    if unit != "auto":
        raise CsvError(f"unknown temperature unit {unit!r}; use C, F, K or auto")
    name = column.lower()
    if "fahrenheit" in name or "°f" in name or re.search(r"(^|[^a-z])f\)?$", name):
        return "F"
    if "kelvin" in name or re.search(r"(^|[^a-z])k\)?$", name):
        return "K"
    return "C"


def to_celsius(values: np.ndarray, unit: str) -> np.ndarray:
    """Convert from `unit` ('C', 'F', 'K')."""
    if unit == "F":
        return (values - 32.0) * 5.0 / 9.0
    if unit == "K":
        return values - 273.15
    return values


def parse_time(text: str, tz: ZoneInfo) -> int:
    """Epoch milliseconds from epoch seconds / milliseconds or a date-time (naive ones are in `tz`)."""
    value = text.strip()
    if re.fullmatch(r"-?\d+(\.\d+)?", value):
        number = float(value)
        return round(number if abs(number) > 1e11 else number * 1000)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        for fmt in FORMATS:
            try:
                moment = datetime.strptime(value, fmt)
                break
            except ValueError:
                continue
        else:
            raise ValueError(f"unrecognised timestamp {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return round(moment.timestamp() * 1000)


def _number(text: str) -> float:
    value = text.strip().replace(",", ".") if text.count(",") == 1 and "." not in text else text.strip()
    return float(value) if value and value.lower() not in ("nan", "na", "null", "-") else float("nan")


def read_csv(path: Path | str, *, time_column: str | None = None, temp_column: str | None = None,
             rh_column: str | None = None, battery_column: str | None = None, sensor_column: str | None = None,
             unit: str = "auto", timezone: str = "UTC", profile: str = "custom", min_rows: int = MIN_ROWS) -> CsvData:
    """Read a logger export. Errors (CsvError) name the offending lines: unparseable rows, timestamps out of order
    or repeated within a sensor, too little data. The cadence is the median interval between readings."""
    try:
        tz = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CsvError(f"unknown time zone {timezone!r}") from exc
    with Path(path).open(newline="", encoding="utf-8-sig") as fh:
        sample = fh.read(4096)
        fh.seek(0)
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t") if sample else csv.excel
        rows = list(csv.reader(fh, dialect))
    if not rows:
        raise CsvError(f"{path} is empty")
    header = rows[0]
    i_time = _find(header, time_column, TIME_NAMES, "timestamp", True)
    i_temp = _find(header, temp_column, TEMP_NAMES, "temperature", True)
    i_rh = _find(header, rh_column, RH_NAMES, "humidity", False)
    i_batt = _find(header, battery_column, BATTERY_NAMES, "battery", False)
    i_sensor = _find(header, sensor_column, SENSOR_NAMES, "sensor", False)
    assert i_time is not None and i_temp is not None
    t_unit = temperature_unit(header[i_temp], unit)
    bad: list[str] = []
    groups: dict[str, list[tuple[int, int, str, float, float, float]]] = {}
    for line_no, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        try:
            ts = parse_time(row[i_time], tz)
            temp = _number(row[i_temp])
            rh = _number(row[i_rh]) if i_rh is not None else float("nan")
            batt = _number(row[i_batt]) if i_batt is not None else float("nan")
        except (ValueError, IndexError) as exc:
            bad.append(f"line {line_no}: {exc}")
            continue
        sensor = row[i_sensor].strip() if i_sensor is not None and i_sensor < len(row) else "sensor"
        groups.setdefault(sensor, []).append((line_no, ts, row[i_time], temp, rh, batt))
    if bad:
        more = f" (and {len(bad) - MAX_REPORTED} more)" if len(bad) > MAX_REPORTED else ""
        raise CsvError("unparseable rows: " + "; ".join(bad[:MAX_REPORTED]) + more)
    series, lines, raw_time, intervals = [], {}, {}, []
    for sensor, items in groups.items():
        times = np.array([it[1] for it in items], dtype=np.int64)
        steps = np.diff(times)
        for problem, where in (("out of order", np.flatnonzero(steps < 0)), ("repeated", np.flatnonzero(steps == 0))):
            if len(where):
                at = ", ".join(str(items[i + 1][0]) for i in where[:MAX_REPORTED])
                raise CsvError(f"timestamps {problem} for sensor {sensor} at line(s) {at}; sort the file and drop "
                               f"duplicate rows first")
        if len(items) < min_rows:
            raise CsvError(f"too little data for sensor {sensor}: {len(items)} rows, need at least {min_rows}")
        temps = to_celsius(np.array([it[3] for it in items]), t_unit)
        volts = np.array([it[5] for it in items])
        if np.nanmax(np.abs(volts), initial=0.0) < 10.0:  # volts, not millivolts
            volts = volts * 1000.0
        series.append(Series(sensor=sensor, profile=profile, ts_ms=times, temp_c=temps,
                             rh_pct=np.array([it[4] for it in items]), battery_mv=volts))
        lines[sensor] = np.array([it[0] for it in items])
        raw_time[sensor] = [it[2] for it in items]
        intervals.append(steps)
    period_s = float(np.median(np.concatenate(intervals))) / 1000.0
    if period_s <= 0:
        raise CsvError("cannot detect the cadence from the timestamps")
    return CsvData(series=series, sample_period_s=round(period_s, 3), lines=lines, raw_time=raw_time)
