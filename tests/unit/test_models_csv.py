"""models.training.csvdata: logger exports with units, zones, cadences, encodings, preambles, date orders and clock
jumps."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from models.training.csvdata import CsvData, CsvError, parse_time, read_csv, temperature_unit

SKAB = Path("/work/shared/data/skab")
UTC = ZoneInfo("UTC")


def write(tmp_path: Path, text: str, name: str = "log.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def stamps(n: int, step_s: float = 300, start: str = "2026-01-01 00:00:00",
           fmt: str = "%Y-%m-%d %H:%M:%S") -> list[str]:
    t0 = datetime.fromisoformat(start)
    return [(t0 + timedelta(seconds=i * step_s)).strftime(fmt) for i in range(n)]


def body(times: list[str], header: str = "timestamp,temperature", sep: str = ",") -> str:
    return header + "\n" + "".join(f"{t}{sep}{4.0 + (i % 5) * 0.1:.1f}\n" for i, t in enumerate(times))


def utc_ms(text: str) -> int:
    return parse_time(text, UTC)


def kinds(data: CsvData) -> list[str]:
    return [n.kind for n in data.notes]


def test_fahrenheit_timezone_cadence_and_volts(tmp_path: Path) -> None:
    lines = ["Date Time;Temperature (°F);Humidity (%);Battery (V)"]
    lines += [f"{t};{39.2 + (i % 3) * 0.1:.1f};55;3,0" for i, t in enumerate(stamps(80, 300))]
    data = read_csv(write(tmp_path, "\n".join(lines) + "\n"), timezone="Europe/Berlin")
    (s,) = data.series
    assert data.sample_period_s == 300.0
    assert s.temp_c[0] == pytest.approx(4.0)
    assert s.battery_mv[0] == pytest.approx(3000.0)
    assert s.rh_pct[0] == 55.0
    assert s.ts_ms[0] == utc_ms("2025-12-31T23:00:00Z")  # Berlin is UTC+1 in winter
    assert np.all(np.diff(s.ts_ms) == 300_000)


def test_epoch_seconds_and_milliseconds_and_units() -> None:
    assert parse_time("1767225600", UTC) == parse_time("1767225600000", UTC) == 1_767_225_600_000
    assert parse_time("2026-01-01T00:00:00+01:00", UTC) == 1_767_222_000_000
    assert temperature_unit("temp_f", "auto") == "F"
    assert temperature_unit("Temperature (K)", "auto") == "K"
    assert temperature_unit("temperature", "auto") == "C"
    assert temperature_unit("whatever", "f") == "F"


@pytest.mark.parametrize("cell, expected", [
    ("03/11/2025 02:15:00 PM", "2025-03-11T14:15:00Z"),  # month-first (with monthfirst)
    ("2025-03-11 2:15 pm", "2025-03-11T14:15:00Z"),
    ("2025-03-11 12:05 AM", "2025-03-11T00:05:00Z"),
    ("2025-03-11 12:05 p.m.", "2025-03-11T12:05:00Z"),
    ("11-Mar-2025 2:15:00 PM", "2025-03-11T14:15:00Z"),
    ("2025/03/11 14:15:30.250", "2025-03-11T14:15:30.250Z"),
])
def test_am_pm_and_other_layouts(cell: str, expected: str) -> None:
    assert parse_time(cell, UTC, dayfirst=False) == utc_ms(expected)


def test_am_pm_hours_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="AM/PM"):
        parse_time("2025-03-11 13:15 PM", UTC)


def test_am_pm_file(tmp_path: Path) -> None:
    times = stamps(70, 600, start="2025-03-11 09:00:00", fmt="%m/%d/%Y %I:%M:%S %p")
    assert "PM" in times[-1]
    (s,) = read_csv(write(tmp_path, body(times)), dayfirst=False, min_rows=1).series
    assert s.ts_ms[-1] - s.ts_ms[0] == 69 * 600_000
    assert s.ts_ms[0] == utc_ms("2025-03-11T09:00:00Z")


def test_a_clock_jump_back_starts_a_segment_and_names_the_lines(tmp_path: Path) -> None:
    times = stamps(100, 60)
    times[50:] = stamps(50, 60, start="2025-12-31 23:00:00")  # the logger's clock was set back an hour
    data = read_csv(write(tmp_path, body(times)))
    assert len(data.segments) == 2
    first, second = data.segments
    assert first.lines.tolist() == list(range(2, 52)) and second.lines.tolist() == list(range(52, 102))
    (note,) = data.notes
    assert note.kind == "clock_jump" and note.lines == (51, 52)
    assert "line 52" in note.message and note.detail["back_s"] == pytest.approx(60 * 60 + 49 * 60)
    assert data.sample_period_s == 60.0
    assert all(np.all(np.diff(s.ts_ms) > 0) for s in data.series)


def test_repeated_rows_are_kept_and_reported_never_sort_advice(tmp_path: Path) -> None:
    times = stamps(80, 60)
    times.insert(10, times[9])
    data = read_csv(write(tmp_path, body(times)))
    (seg,) = data.segments
    assert len(seg.lines) == 81
    (note,) = data.notes
    assert note.kind == "repeated" and note.lines == (12,) and note.detail["count"] == 1
    assert "sort" not in note.message


def test_out_of_order_single_row(tmp_path: Path) -> None:
    a, b, c = (f"2026-01-01T00:0{i}:00Z,4.0" for i in range(3))
    data = read_csv(write(tmp_path, f"timestamp,temperature\n{a}\n{c}\n{b}\n"), min_rows=1)
    assert [seg.lines.tolist() for seg in data.segments] == [[2, 3], [4]]
    assert [n.lines for n in data.notes if n.kind == "clock_jump"] == [(3, 4)]


def berlin_fall_back_rows() -> list[str]:
    """Wall times of a logger following Berlin time on 26 Oct 2025: 02:00-02:50 twice (10 min cadence)."""
    first = stamps(18, 600, start="2025-10-26 00:00:00")  # 00:00 .. 02:50 (summer time)
    again = stamps(6, 600, start="2025-10-26 02:00:00")  # 02:00 .. 02:50 (winter time)
    after = stamps(48, 600, start="2025-10-26 03:00:00")
    return first + again + after


def test_dst_fall_back_hour_is_recognised_in_a_zone_with_dst(tmp_path: Path) -> None:
    path = write(tmp_path, body(berlin_fall_back_rows()))
    data = read_csv(path, timezone="Europe/Berlin")
    (s,) = data.series
    assert np.all(np.diff(s.ts_ms) == 600_000)  # one continuous timeline, no jump
    assert s.ts_ms[0] == utc_ms("2025-10-25T22:00:00Z")
    assert kinds(data) == ["dst_fallback"]
    assert data.notes[0].lines == (20, 25)  # the rows of the second 02:00-02:50
    assert "Europe/Berlin" in data.notes[0].message
    # the same wall times read as UTC repeat an hour: a clock jump back at the first repeated row
    utc = read_csv(path)
    assert kinds(utc) == ["clock_jump"] and utc.notes[0].lines == (19, 20) and len(utc.segments) == 2


def test_dst_fall_back_at_hourly_cadence(tmp_path: Path) -> None:
    times = ["2025-10-26 00:00:00", "2025-10-26 01:00:00", "2025-10-26 02:00:00", "2025-10-26 02:00:00",
             *stamps(10, 3600, start="2025-10-26 03:00:00")]
    (s,) = read_csv(write(tmp_path, body(times)), timezone="Europe/Berlin", min_rows=1).series
    assert np.all(np.diff(s.ts_ms) == 3_600_000)


def test_spring_forward_gap_times_are_reported(tmp_path: Path) -> None:
    times = stamps(20, 600, start="2025-03-30 01:00:00")  # 02:00-02:50 do not exist in Berlin that night
    data = read_csv(write(tmp_path, body(times)), timezone="Europe/Berlin", min_rows=1)
    gap = [n for n in data.notes if n.kind == "dst_gap"]
    assert gap and gap[0].detail["count"] == 6 and gap[0].lines[0] == 8


def test_newest_first_files_are_read_oldest_first(tmp_path: Path) -> None:
    times = stamps(70, 60)[::-1]
    data = read_csv(write(tmp_path, body(times)))
    (seg,) = data.segments
    assert np.all(np.diff(seg.series.ts_ms) == 60_000)
    assert seg.lines[0] == 71 and kinds(data) == ["newest_first"]


AMBIGUOUS = ["11/03/2025 10:00", "11/03/2025 10:10", "12/03/2025 10:00", "01/04/2025 09:00"]


def test_ambiguous_dates_are_refused_without_an_order(tmp_path: Path) -> None:
    path = write(tmp_path, body(AMBIGUOUS))
    with pytest.raises(CsvError, match=r"ambiguous dates: '11/03/2025 10:00' \(line 2\).*--dayfirst, --monthfirst"):
        read_csv(path, min_rows=1)
    day = read_csv(path, min_rows=1, dayfirst=True)
    month = read_csv(path, min_rows=1, dayfirst=False)
    fmt = read_csv(path, min_rows=1, date_format="%d/%m/%Y %H:%M")
    assert day.series[0].ts_ms[0] == utc_ms("2025-03-11T10:00:00Z") == fmt.series[0].ts_ms[0]
    assert month.series[0].ts_ms[0] == utc_ms("2025-11-03T10:00:00Z")
    assert day.date_order == "day-first" and month.date_order == "month-first"


def test_one_row_with_a_day_above_12_decides_for_the_whole_file(tmp_path: Path) -> None:
    data = read_csv(write(tmp_path, body([*AMBIGUOUS, "13/04/2025 09:00"])), min_rows=1)
    assert data.date_order == "day-first"
    assert data.series[0].ts_ms[0] == utc_ms("2025-03-11T10:00:00Z")
    assert data.notes[0].kind == "date_order" and data.notes[0].lines == (6,)
    us = read_csv(write(tmp_path, body(["03/11/2025 10:00", "03/13/2025 10:00"])), min_rows=1)
    assert us.date_order == "month-first" and us.series[0].ts_ms[0] == utc_ms("2025-03-11T10:00:00Z")


def test_contradicting_date_orders_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CsvError, match=r"neither day-first nor month-first.*line 2.*line 3"):
        read_csv(write(tmp_path, body(["13/03/2025 10:00", "03/14/2025 10:00"])), min_rows=1)
    with pytest.raises(CsvError, match=r"line 3: '03/14/2025 10:00' is not a valid day-first date"):
        read_csv(write(tmp_path, body(["01/03/2025 10:00", "03/14/2025 10:00"])), min_rows=1, dayfirst=True)


def test_same_day_and_month_are_not_ambiguous(tmp_path: Path) -> None:
    data = read_csv(write(tmp_path, body(["01/01/2025 10:00", "01/01/2025 10:05", "02/02/2025 00:00"])), min_rows=1)
    assert data.series[0].ts_ms[0] == utc_ms("2025-01-01T10:00:00Z")


@pytest.mark.parametrize("encoding, expected", [
    ("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("utf-16", "utf-16"), ("cp1252", "cp1252"),
    ("utf-16-le", "utf-16-le"),
])
def test_encodings_are_detected(tmp_path: Path, encoding: str, expected: str) -> None:
    text = body(stamps(5, 60), header="Date Time,Temp (°C),RH%")
    text = text.replace("\n", ",50\n").replace("RH%,50\n", "RH%\n", 1)
    path = tmp_path / "enc.csv"
    path.write_bytes(text.encode(encoding))
    data = read_csv(path, min_rows=1)
    assert data.encoding == expected
    assert data.columns == {"time": "Date Time", "temperature": "Temp (°C)", "humidity": "RH%"}
    assert data.series[0].temp_c[0] == 4.0 and data.series[0].rh_pct[0] == 50.0
    assert ("encoding" in kinds(data)) == (expected in ("cp1252", "utf-16-le"))


def test_given_encoding_that_does_not_fit_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(body(stamps(3, 60), header="time,Temp (°C)").encode("cp1252"))
    with pytest.raises(CsvError, match=r"cannot decode latin.csv as utf-8: byte 0xb0 at offset 11.*--encoding"):
        read_csv(path, encoding="utf-8", min_rows=1)
    with pytest.raises(CsvError, match="unknown encoding 'klingon'"):
        read_csv(path, encoding="klingon", min_rows=1)
    assert read_csv(path, encoding="latin-1", min_rows=1).columns["temperature"] == "Temp (°C)"
    odd = tmp_path / "odd.csv"
    odd.write_bytes(b"\xff\xfet\x00i\x00m")  # a UTF-16 BOM and half a character
    with pytest.raises(CsvError, match=r"cannot decode odd\.csv as utf-16"):
        read_csv(odd, min_rows=1)


def test_preamble_lines_above_the_header_are_skipped(tmp_path: Path) -> None:
    preamble = "Serial: 123\nLogger: X, firmware 1.2\nTime zone: UTC, Temperature unit: C\n\n"
    data = read_csv(write(tmp_path, preamble + body(stamps(5, 60), header="Time,Temperature (°C)")), min_rows=1)
    assert data.header_line == 5
    assert data.segments[0].lines.tolist() == [6, 7, 8, 9, 10]


def test_no_header_shows_the_first_lines(tmp_path: Path) -> None:
    with pytest.raises(CsvError, match=r"no header with a timestamp and a temperature column.*'Serial: 123' \| "
                                       r"'2026-01-01 00:00:00,4.0'"):
        read_csv(write(tmp_path, "Serial: 123\n" + "".join(f"{t},4.0\n" for t in stamps(5))), min_rows=1)
    with pytest.raises(CsvError, match=r"no header with the columns time 'when'"):
        read_csv(write(tmp_path, body(stamps(5))), time_column="when", min_rows=1)


@pytest.mark.parametrize("header, column", [
    ("time,temp,RH%", "RH%"), ("time,temp,Humidity (%RH)", "Humidity (%RH)"), ("time,temp,%RH", "%RH"),
    ("time,temp,relative humidity", "relative humidity"), ("time,temp,rh_pct", "rh_pct"),
])
def test_humidity_found_by_name(tmp_path: Path, header: str, column: str) -> None:
    text = header + "\n" + "".join(f"{t},4.0,61.5\n" for t in stamps(3))
    data = read_csv(write(tmp_path, text), min_rows=1)
    assert data.columns["humidity"] == column and data.series[0].rh_pct[0] == 61.5


def test_rh_column_option(tmp_path: Path) -> None:
    text = "time,temp,moisture,rh_pct\n" + "".join(f"{t},4.0,70,50\n" for t in stamps(3))
    assert read_csv(write(tmp_path, text), rh_column="moisture", min_rows=1).series[0].rh_pct[0] == 70.0
    assert "humidity" not in read_csv(write(tmp_path, body(stamps(3))), min_rows=1).columns


@pytest.mark.parametrize("step_s", [1, 60, 3600])
def test_cadence_from_one_second_to_one_hour(tmp_path: Path, step_s: int) -> None:
    data = read_csv(write(tmp_path, body(stamps(80, step_s))))
    assert data.sample_period_s == float(step_s)
    assert data.notes == []


def test_cadence_ignores_jitter_and_repeats(tmp_path: Path) -> None:
    t0 = 1_767_225_600_000
    times = [str(t0 + i * 60_000 + (37 if i % 2 else -23)) for i in range(80)]
    times.insert(5, times[4])
    assert read_csv(write(tmp_path, body(times))).sample_period_s == 60.0


def test_date_and_time_columns_are_read_together(tmp_path: Path) -> None:
    text = "Date,Time,Temperature\n" + "".join(f"{t[:10]},{t[11:]},4.0\n" for t in stamps(3, 600))
    data = read_csv(write(tmp_path, text), min_rows=1)
    assert data.columns["time"] == "Date + Time"
    assert data.series[0].ts_ms[1] - data.series[0].ts_ms[0] == 600_000


def test_sensors_and_units_in_cells(tmp_path: Path) -> None:
    lines = ["sensor;time;temp"] + [f"{'ab'[i % 2]};{t};{3 + i % 2},5 °C" for i, t in enumerate(stamps(6, 60))]
    data = read_csv(write(tmp_path, "\n".join(lines)), min_rows=1)
    assert data.sensors == ["a", "b"] and data.series[1].temp_c[0] == 4.5


def test_too_little_data_and_missing_columns(tmp_path: Path) -> None:
    with pytest.raises(CsvError, match="too little data"):
        read_csv(write(tmp_path, "timestamp,temperature\n2026-01-01T00:00:00Z,4.0\n"))
    with pytest.raises(CsvError, match="no header with a timestamp and a temperature column"):
        read_csv(write(tmp_path, "timestamp,pressure\n2026-01-01T00:00:00Z,4.0\n"))
    with pytest.raises(CsvError, match="time zone"):
        read_csv(write(tmp_path, "timestamp,temperature\n"), timezone="Mars/Olympus")


def test_empty_cells_are_invalid_readings(tmp_path: Path) -> None:
    lines = ["timestamp,temperature"] + [f"{t},{'' if i == 5 else 4.0}" for i, t in enumerate(stamps(70, 60))]
    (s,) = read_csv(write(tmp_path, "\n".join(lines))).series
    assert np.isnan(s.temp_c[5]) and np.isfinite(s.temp_c[6])


@pytest.mark.parametrize("name, content, message", [
    ("empty.csv", b"", "empty.csv is empty"),
    ("blank.csv", b"\n\n  \n", "blank.csv is empty"),
    ("binary.csv", bytes(range(256)) * 4, "NUL characters"),
    ("header.csv", b"timestamp,temperature\n", "no data rows under the header on line 1"),
    ("bad.csv", b"timestamp,temperature\n2026-01-01T00:00:00Z,4.0\nnot a time,4.0\n",
     "line 3: unrecognised timestamp 'not a time'"),
    ("oops.csv", b"timestamp,temperature\n2026-01-01T00:00:00Z,oops\n", "line 2: not a number: 'oops'"),
    ("short.csv", b"temperature,timestamp\n4.0\n", "line 2: 1 field"),
    ("future.csv", b"timestamp,temperature\n99999999999999999,4.0\n", "out of range"),
    ("feb.csv", b"timestamp,temperature\n2025-02-30 10:00,4.0\n", "line 2"),
    ("same.csv", b"timestamp,temperature\n2025-02-03 10:00,4.0\n2025-02-03 10:00,4.0\n", "cannot detect the cadence"),
    ("quote.csv", b'timestamp,temperature\n"2025-02-03 10:00,' + b"x" * 200_000 + b"\n", "not readable as CSV"),
])
def test_bad_inputs_are_one_line_csv_errors(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CsvError, match=message) as caught:
        read_csv(path, min_rows=1)
    assert "\n" not in str(caught.value)


def test_missing_file_and_unknown_unit(tmp_path: Path) -> None:
    with pytest.raises(CsvError, match=r"cannot read .*nope\.csv"):
        read_csv(tmp_path / "nope.csv")
    with pytest.raises(CsvError, match="unknown temperature unit"):
        read_csv(write(tmp_path, body(stamps(3))), unit="R")


@pytest.mark.skipif(not SKAB.is_dir(), reason="SKAB data not present")
@pytest.mark.parametrize("name", ["anomaly-free.csv", "other_1.csv", "valve1_0.csv"])
def test_skab_files_keep_working(name: str) -> None:
    path = SKAB / name
    if not path.exists():
        pytest.skip(f"{name} not present")
    data = read_csv(path)
    rows = sum(1 for line in path.read_text().splitlines()[1:] if line.strip())
    assert data.rows == rows and data.sample_period_s == 1.0
    assert data.columns["temperature"] == "temperature_c" and data.columns["time"] == "timestamp"
    assert all(np.all(np.diff(s.ts_ms) >= 0) for s in data.series)
