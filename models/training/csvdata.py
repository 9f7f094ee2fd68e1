"""Users' logger exports → per-sensor series: encodings, preambles, date orders, zones, clock jumps, clear errors."""

from __future__ import annotations

import codecs
import csv
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from datetime import timezone as fixed_offset
from itertools import islice, pairwise
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
from numpy.typing import NDArray

from models.training.data import Series

TIME_NAMES: Final = ("timestamp", "ts_ms", "ts", "datetime", "date_time", "time", "date")
TEMP_NAMES: Final = ("temperature", "temp_c", "temperature_c", "temp", "temp_f", "temperature_f", "celsius",
                     "fahrenheit", "t")
RH_NAMES: Final = ("humidity", "rh_pct", "rh", "relative_humidity", "humidity_pct", "hum", "rel_hum")
BATTERY_NAMES: Final = ("battery_mv", "battery", "battery_v", "vbat")
SENSOR_NAMES: Final = ("sensor", "mac", "device", "logger", "serial")
DELIMITERS: Final = (",", ";", "\t", "|")
MONTH_NAME_FORMATS: Final = ("%d-%b-%Y %H:%M:%S", "%d-%b-%Y %H:%M", "%d %b %Y %H:%M:%S", "%d %b %Y %H:%M",
                             "%b %d %Y %H:%M:%S", "%b %d %Y %H:%M", "%b %d, %Y %H:%M:%S", "%b %d, %Y %H:%M",
                             "%d-%b-%y %H:%M:%S", "%d-%b-%y %H:%M", "%d %B %Y %H:%M:%S", "%B %d, %Y %H:%M:%S")
MISSING: Final = frozenset({"", "nan", "na", "n/a", "null", "none", "-", "--"})
MIN_ROWS: Final = 60
MAX_REPORTED: Final = 5
MAX_JUMP_NOTES: Final = 20  # per sensor; further clock jumps are counted in one more note
HEADER_SEARCH_ROWS: Final = 200
EARLIEST_YEAR: Final = 1900
LATEST_YEAR: Final = 2199
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)
_LAST_MS: Final = (datetime(LATEST_YEAR + 1, 1, 1, tzinfo=UTC) - _EPOCH) // _MS
_EPOCH_NUMBER = re.compile(r"\d{1,20}(\.\d+)?")
_NUMERIC_DATE = re.compile(
    r"(?P<a>\d{1,4})(?P<sep>[-/.])(?P<b>\d{1,2})(?P=sep)(?P<c>\d{1,4})"
    r"(?:(?:T|\s+|\s*,\s*)(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:[.,](?P<f>\d{1,9}))?)?"
    r"(?:\s*(?P<ampm>[ap])\.?\s?m\.?)?)?"
    r"\s*(?P<tz>Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?", re.IGNORECASE)
_AMPM = re.compile(r"\s*([ap])\.?\s?m\.?$", re.IGNORECASE)
_NUMBER = re.compile(r"([-+]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][-+]?\d+)?)\s*(?:°\s*[CFK]|[CFK]|%\s*(?:RH)?|mV|V)?",
                     re.IGNORECASE)
_NATIVE_UTC: Final = frozenset({"UTC", "Etc/UTC", "GMT", "Etc/GMT", "Zulu", "Universal"})


class CsvError(ValueError):
    """The CSV cannot be used as it is; the one-line message says where and why, and what to pass instead."""


@dataclass(frozen=True)
class Note:
    """Something the reader handled and reports (stderr and the JSON result): clock jumps, DST, repeats, encoding."""

    kind: str  # clock_jump, dst_fallback, dst_gap, repeated, newest_first, encoding, date_order
    message: str
    sensor: str | None = None
    lines: tuple[int, ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"kind": self.kind, "sensor": self.sensor, "lines": list(self.lines), "message": self.message,
                **self.detail}


@dataclass(frozen=True)
class Segment:
    """Rows of one sensor whose clock runs forward, in arrival order; a clock jump back starts the next one."""

    series: Series
    lines: NDArray[np.int64]  # the file's line number of each row
    raw_time: list[str]  # the timestamp text of each row


@dataclass(frozen=True)
class CsvData:
    """The file's rows as forward-running segments per sensor, the cadence, and what the reader found out."""

    segments: list[Segment]
    sample_period_s: float
    notes: list[Note]
    columns: dict[str, str]  # role (time, temperature, humidity, battery, sensor) → the header's name for it
    encoding: str
    header_line: int
    date_order: str | None  # "day-first" / "month-first" when the file has numeric day/month dates
    timezone: str

    @property
    def series(self) -> list[Series]:
        """One Series per segment (a sensor whose clock jumped back has several)."""
        return [seg.series for seg in self.segments]

    @property
    def sensors(self) -> list[str]:
        """Distinct sensors, in the order they first appear."""
        return list(dict.fromkeys(seg.series.sensor for seg in self.segments))

    @property
    def rows(self) -> int:
        """Data rows kept."""
        return sum(len(seg.lines) for seg in self.segments)


@dataclass(frozen=True)
class _Stamp:
    """One timestamp cell, read: an instant (epoch ms), a date-time (naive = wall time in the zone), or day and
    month numbers whose order the whole file decides."""

    ms: int | None = None
    moment: datetime | None = None
    parts: tuple[int, int, int, int, int, int, int] | None = None  # p, q, year, hour, minute, second, µs
    offset_min: int | None = None  # with `parts`: an explicit UTC offset


@dataclass(frozen=True)
class _Layout:
    delimiter: str
    header_row: int  # index among the CSV rows
    header: list[str]
    time: tuple[int, ...]  # one column, or a date and a time column read together
    temp: int
    rh: int | None
    battery: int | None
    sensor: int | None


@dataclass(frozen=True)
class _Row:
    line: int
    sensor: str
    time_text: str
    stamp: _Stamp
    temp: float
    rh: float
    battery: float


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower().replace("°", "").replace("º", "")).strip("_")


def _match(normalised: list[str], names: Sequence[str], taken: set[int]) -> int | None:
    for name in names:
        for i, col in enumerate(normalised):
            if i not in taken and (col == name or col.startswith(name + "_")):
                return i
    return None


def _column(normalised: list[str], wanted: str | None, names: Sequence[str], taken: set[int]) -> int | None:
    if wanted is not None:
        target = _norm(wanted)
        return next((i for i, col in enumerate(normalised) if col == target and i not in taken), None)
    return _match(normalised, names, taken)


def _time_columns(normalised: list[str], wanted: str | None) -> tuple[int, ...] | None:
    if wanted is None and "date" in normalised and "time" in normalised and not any(
            c in ("timestamp", "datetime", "date_time") for c in normalised):
        return normalised.index("date"), normalised.index("time")  # a date column and a time-of-day column
    found = _column(normalised, wanted, TIME_NAMES, set())
    return None if found is None else (found,)


def _layout_of(header: list[str], delimiter: str, row: int, names: dict[str, str | None]) -> _Layout | None:
    normalised = [_norm(h) for h in header]
    time = _time_columns(normalised, names["time"])
    if time is None:
        return None
    temp = _column(normalised, names["temperature"], TEMP_NAMES, set(time))
    if temp is None:
        return None
    taken = {*time, temp}
    found: dict[str, int | None] = {}
    for role, candidates in (("humidity", RH_NAMES), ("battery", BATTERY_NAMES), ("sensor", SENSOR_NAMES)):
        index = _column(normalised, names[role], candidates, taken)
        if index is None and names[role] is not None:
            return None  # not this row: it lacks a column the user named
        if index is not None:
            taken.add(index)
        found[role] = index
    return _Layout(delimiter, row, header, time, temp, found["humidity"], found["battery"], found["sensor"])


def _reader(text: str, delimiter: str) -> Any:
    return csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, skipinitialspace=True)


def _head_rows(text: str, delimiter: str) -> list[list[str]]:
    rows: list[list[str]] = []
    reader = _reader(text, delimiter)
    try:
        rows.extend(islice(reader, HEADER_SEARCH_ROWS))
    except csv.Error:
        pass  # not this delimiter, or a broken row further down (reported when the data are read)
    return rows


def _cell(row: list[str], columns: tuple[int, ...]) -> str:
    return row[columns[0]].strip() if len(columns) == 1 else " ".join(row[i].strip() for i in columns)


def _preview(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()][:MAX_REPORTED]
    return " | ".join(repr(line if len(line) <= 60 else line[:57] + "...") for line in lines) or "(nothing)"


def _find_layout(text: str, path: Path, names: dict[str, str | None], date_format: str | None) -> _Layout:
    """The header: the first row with a timestamp and a temperature column (by name) followed by a data row."""
    best: tuple[tuple[bool, int, int], _Layout] | None = None
    for delimiter in DELIMITERS:
        rows = _head_rows(text, delimiter)
        for i, row in enumerate(rows):
            layout = _layout_of(row, delimiter, i, names)
            if layout is None:
                continue
            data = next((r for r in rows[i + 1:] if any(c.strip() for c in r)), None)
            followed = data is not None and max(layout.time) < len(data) and _readable(_cell(data, layout.time),
                                                                                         date_format)
            key = (not followed, i, -len(row))
            if best is None or key < best[0]:
                best = (key, layout)
            if followed:
                break
    if best is None:
        given = [f"{role} {name!r}" for role, name in names.items() if name is not None]
        wanted = ("the columns " + ", ".join(given)) if given else "a timestamp and a temperature column"
        raise CsvError(f"no header with {wanted} in the first {HEADER_SEARCH_ROWS} lines of {path.name}; it starts: "
                       f"{_preview(text)}; name the columns with --time-column / --temp-column")
    return best[1]


def _decode(raw: bytes, path: Path, encoding: str | None) -> tuple[str, str]:
    """The file's text and the encoding used: `encoding`, else by BOM, else UTF-8, else Windows-1252 / Latin-1."""
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise CsvError(f"unknown encoding {encoding!r} (try utf-8, utf-16, cp1252 or latin-1)") from None
        return _decode_as(raw, path, encoding).removeprefix("\ufeff"), encoding
    if raw.startswith(codecs.BOM_UTF8):
        return _decode_as(raw, path, "utf-8-sig"), "utf-8-sig"
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _decode_as(raw, path, "utf-16"), "utf-16"
    sample = raw[:4096]
    if len(sample) >= 4:
        odd, even = sample[1::2].count(0), sample[0::2].count(0)
        guess = "utf-16-le" if odd > 0.4 * len(sample) / 2 > even * 4 else (
            "utf-16-be" if even > 0.4 * len(sample) / 2 > odd * 4 else None)
        if guess is not None:
            try:
                return raw.decode(guess), guess
            except UnicodeDecodeError:
                pass
    for candidate in ("utf-8", "cp1252"):
        try:
            return raw.decode(candidate), candidate
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1"), "latin-1"


def _decode_as(raw: bytes, path: Path, encoding: str) -> str:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        bad = exc.object[exc.start:exc.start + 1].hex() if isinstance(exc.object, bytes) else "?"
        raise CsvError(f"cannot decode {path.name} as {encoding}: byte 0x{bad} at offset {exc.start} ({exc.reason}); "
                       f"pass the file's encoding with --encoding (e.g. utf-8, utf-16, cp1252, latin-1)") from None


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


def to_celsius(values: NDArray[np.float64], unit: str) -> NDArray[np.float64]:
    """Convert from `unit` ('C', 'F', 'K')."""
    if unit == "F":
        return (values - 32.0) * 5.0 / 9.0
    if unit == "K":
        return values - 273.15
    return values


def _offset(text: str | None) -> int | None:
    if text is None:
        return None
    if text.upper() in ("Z", "UTC", "GMT"):
        return 0
    digits = text[1:].replace(":", "")
    minutes = int(digits[:2]) * 60 + (int(digits[2:4]) if len(digits) > 2 else 0)
    return -minutes if text[0] == "-" else minutes


def _hour(hour: int, ampm: str | None, value: str) -> int:
    if ampm is None:
        return hour
    if not 1 <= hour <= 12 and not (hour == 0 and ampm.lower() == "a"):
        raise ValueError(f"hour {hour} with AM/PM in {value!r}")
    return hour % 12 + (12 if ampm.lower() == "p" else 0)


def _scan(text: str, date_format: str | None) -> _Stamp:
    """Read one timestamp cell as far as it can be without knowing the file's day/month order (ValueError)."""
    value = text.strip()
    if not value:
        raise ValueError("empty timestamp")
    if date_format is not None:
        try:
            return _Stamp(moment=datetime.strptime(value, date_format))
        except ValueError as exc:
            raise ValueError(f"timestamp {value!r} does not match --date-format {date_format!r} ({exc})") from None
    if _EPOCH_NUMBER.fullmatch(value):
        number = float(value)
        ms = round(number if number > 1e11 else number * 1000)
        if ms >= _LAST_MS:
            raise ValueError(f"epoch timestamp {value!r} is out of range")
        return _Stamp(ms=ms)
    match = _NUMERIC_DATE.fullmatch(value)
    if match is not None:
        return _numeric(match, value)
    try:
        return _Stamp(moment=datetime.fromisoformat(value))
    except ValueError:
        pass
    ampm = _AMPM.search(value)
    bare = value[:ampm.start()] if ampm else value
    for fmt in MONTH_NAME_FORMATS:
        try:
            moment = datetime.strptime(bare, fmt)
        except ValueError:
            continue
        return _Stamp(moment=moment.replace(hour=_hour(moment.hour, ampm.group(1) if ampm else None, value)))
    raise ValueError(f"unrecognised timestamp {value!r}")


def _numeric(match: re.Match[str], value: str) -> _Stamp:
    a, b, c = match["a"], match["b"], match["c"]
    hour = _hour(int(match["H"] or 0), match["ampm"], value)
    minute, second = int(match["M"] or 0), int(match["S"] or 0)
    micro = int((match["f"] or "0")[:6].ljust(6, "0"))
    offset = _offset(match["tz"])
    if len(a) == 4:  # year first: always year, month, day
        if len(c) > 2:
            raise ValueError(f"unrecognised timestamp {value!r}")
        zone = None if offset is None else _fixed(offset)
        return _Stamp(moment=datetime(int(a), int(b), int(c), hour, minute, second, micro, tzinfo=zone))
    if len(a) > 2 or len(c) not in (2, 4):
        raise ValueError(f"unrecognised timestamp {value!r}")
    year = int(c) + (2000 if len(c) == 2 else 0)
    return _Stamp(parts=(int(a), int(b), year, hour, minute, second, micro), offset_min=offset)


def _fixed(offset_min: int) -> tzinfo:
    return fixed_offset(timedelta(minutes=offset_min))


def _readable(text: str, date_format: str | None) -> bool:
    try:
        _scan(text, date_format)
    except (ValueError, OverflowError):
        return False
    return True


def _resolve(stamp: _Stamp, dayfirst: bool, value: str) -> int | datetime:
    """Epoch ms for an instant, or the (naive) wall time; ValueError for impossible dates."""
    if stamp.ms is not None:
        return stamp.ms
    if stamp.parts is not None:
        p, q, year, hour, minute, second, micro = stamp.parts
        day, month = (p, q) if dayfirst else (q, p)
        zone = None if stamp.offset_min is None else _fixed(stamp.offset_min)
        try:
            moment = datetime(year, month, day, hour, minute, second, micro, tzinfo=zone)
        except ValueError as exc:
            order = "day-first" if dayfirst else "month-first"
            raise ValueError(f"{value!r} is not a valid {order} date ({exc})") from None
    else:
        assert stamp.moment is not None
        moment = stamp.moment
    if not EARLIEST_YEAR <= moment.year <= LATEST_YEAR:
        raise ValueError(f"timestamp {value!r} is out of range (years {EARLIEST_YEAR}–{LATEST_YEAR})")
    if moment.tzinfo is not None:
        return (moment - _EPOCH) // _MS
    return moment


def parse_time(text: str, tz: ZoneInfo, *, dayfirst: bool | None = None, date_format: str | None = None) -> int:
    """Epoch milliseconds of one timestamp: epoch seconds / milliseconds or a date-time (naive ones are in `tz`,
    the first of a repeated DST hour). ValueError when unreadable, or when day and month could be either and
    `dayfirst` is None."""
    stamp = _scan(text, date_format)
    if stamp.parts is not None and dayfirst is None and stamp.parts[0] != stamp.parts[1]:
        p, q = stamp.parts[:2]
        if p <= 12 and q <= 12:
            raise ValueError(f"{text.strip()!r} is ambiguous: day-first or month-first?")
        dayfirst = p > 12
    resolved = _resolve(stamp, bool(dayfirst), text.strip())
    return resolved if isinstance(resolved, int) else (resolved.replace(tzinfo=tz) - _EPOCH) // _MS


def _number(text: str) -> float:
    try:
        number = float(text)  # the common case, fast
    except ValueError:
        pass
    else:
        return number if math.isfinite(number) else float("nan")
    value = text.strip()
    if value.lower() in MISSING:
        return float("nan")
    match = _NUMBER.fullmatch(value)
    if match is None:
        raise ValueError(f"not a number: {value!r}")
    number = float(match.group(1).replace(",", "."))
    return number if math.isfinite(number) else float("nan")


def _zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise CsvError(f"unknown time zone {timezone!r} (an IANA name such as Europe/Berlin, or UTC)") from None


def _bad_rows(bad: list[str], what: str) -> CsvError:
    more = f" (and {len(bad) - MAX_REPORTED} more)" if len(bad) > MAX_REPORTED else ""
    return CsvError(f"{what}: " + "; ".join(bad[:MAX_REPORTED]) + more)


def _data_rows(text: str, layout: _Layout, path: Path, date_format: str | None) -> tuple[list[_Row], int]:
    """The rows under the header (blank ones and repeats of the header skipped), and the header's line."""
    reader = _reader(text, layout.delimiter)
    out: list[_Row] = []
    bad: list[str] = []
    last_line = 0
    header_line = 1
    width = max(*layout.time, layout.temp)
    header = [h.strip() for h in layout.header]
    try:
        for index, row in enumerate(reader):
            line, last_line = last_line + 1, reader.line_num
            if index == layout.header_row:
                header_line = line
            if index <= layout.header_row or not any(c.strip() for c in row) or [c.strip() for c in row] == header:
                continue
            if len(row) <= width:
                bad.append(f"line {line}: {len(row)} field(s), the timestamp and temperature need {width + 1}")
                continue
            time_text = _cell(row, layout.time)
            try:
                stamp = _scan(time_text, date_format)
                values = [_number(row[i]) if i is not None and i < len(row) else float("nan")
                          for i in (layout.temp, layout.rh, layout.battery)]
            except (ValueError, OverflowError) as exc:
                bad.append(f"line {line}: {exc}")
                continue
            sensor = row[layout.sensor].strip() if layout.sensor is not None and layout.sensor < len(row) else ""
            out.append(_Row(line, sensor or "sensor", time_text, stamp, values[0], values[1], values[2]))
    except csv.Error as exc:
        raise CsvError(f"{path.name} line {reader.line_num}: not readable as CSV ({exc})") from None
    if bad:
        raise _bad_rows(bad, "unparseable rows")
    if not out:
        raise CsvError(f"no data rows under the header on line {header_line} of {path.name}")
    return out, header_line


def _date_order(rows: list[_Row], dayfirst: bool | None) -> tuple[bool, str | None, Note | None]:
    """Day-first or month-first for the file's numeric dates: given, or inferred from a row with a day above 12."""
    with_parts = [r for r in rows if r.stamp.parts is not None]
    if not with_parts:
        return True, None, None
    if dayfirst is not None:
        return dayfirst, "day-first" if dayfirst else "month-first", None
    day_first = next((r for r in with_parts if r.stamp.parts and r.stamp.parts[0] > 12), None)
    month_first = next((r for r in with_parts if r.stamp.parts and r.stamp.parts[1] > 12), None)
    if day_first is not None and month_first is not None:
        raise CsvError(f"dates are read neither day-first nor month-first throughout: line {day_first.line} "
                       f"({day_first.time_text!r}) is day-first only, line {month_first.line} "
                       f"({month_first.time_text!r}) month-first only; pass --date-format")
    if day_first is None and month_first is None:
        ambiguous = next((r for r in with_parts if r.stamp.parts and r.stamp.parts[0] != r.stamp.parts[1]), None)
        if ambiguous is not None:
            assert ambiguous.stamp.parts is not None
            p, q = ambiguous.stamp.parts[:2]
            raise CsvError(f"ambiguous dates: {ambiguous.time_text!r} (line {ambiguous.line}) reads as day {p} "
                           f"month {q} or month {p} day {q}, and no row has a day above 12; pass --dayfirst, "
                           f"--monthfirst or --date-format")
        return True, None, None
    evidence = day_first or month_first
    assert evidence is not None
    order = "day-first" if day_first is not None else "month-first"
    note = Note("date_order", f"dates read {order}, as line {evidence.line} ({evidence.time_text!r}) shows",
                lines=(evidence.line,), detail={"order": order})
    return day_first is not None, order, note


def _place(walls: list[int | datetime], tz: ZoneInfo) -> tuple[list[int], list[int], list[int]]:
    """Epoch ms per row in arrival order; a wall time in a repeated DST hour reached going back is its second
    occurrence. Also the rows placed in the second occurrence and those in a spring-forward gap."""
    out: list[int] = []
    second: list[int] = []
    gap: list[int] = []
    simple = tz.key in _NATIVE_UTC
    prev: int | None = None
    for i, wall in enumerate(walls):
        if isinstance(wall, int):
            ms = wall
        elif simple:
            ms = (wall.replace(tzinfo=UTC) - _EPOCH) // _MS
        else:
            early = wall.replace(tzinfo=tz, fold=0)
            ms = (early - _EPOCH) // _MS
            late = wall.replace(tzinfo=tz, fold=1)
            if late.utcoffset() != early.utcoffset():
                late_ms = (late - _EPOCH) // _MS
                if late_ms > ms and prev is not None and ms <= prev <= late_ms:
                    ms = late_ms
                    second.append(i)
                elif late_ms < ms:
                    gap.append(i)
        out.append(ms)
        prev = ms
    return out, second, gap


def _iso(ms: int, tz: tzinfo) -> str:
    return datetime.fromtimestamp(ms / 1000, tz).isoformat(timespec="seconds")


def _duration(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 7200:
        return f"{seconds / 60:.4g} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.4g} h"
    return f"{seconds / 86_400:.4g} days"


def _lines(rows: list[_Row], indices: Sequence[int]) -> tuple[int, ...]:
    return tuple(rows[i].line for i in indices)


def _sensor_segments(sensor: str, rows: list[_Row], walls: list[int | datetime], tz: ZoneInfo,
                     notes: list[Note]) -> list[tuple[list[_Row], NDArray[np.int64]]]:
    """One sensor's rows split into forward-running segments, with notes on what its clock did."""
    times, second, gap = _place(walls, tz)
    steps = np.diff(np.asarray(times, dtype=np.int64))
    if np.count_nonzero(steps < 0) > np.count_nonzero(steps > 0):
        rows, walls = rows[::-1], walls[::-1]
        times, second, gap = _place(walls, tz)
        steps = np.diff(np.asarray(times, dtype=np.int64))
        notes.append(Note("newest_first", f"sensor {sensor}: the file lists the newest reading first; scored "
                                          f"oldest first", sensor=sensor, lines=(rows[-1].line, rows[0].line)))
    if second:
        hour = walls[second[0]]
        assert isinstance(hour, datetime)
        notes.append(Note("dst_fallback", f"sensor {sensor}: lines {rows[second[0]].line}–{rows[second[-1]].line} "
                                          f"are the repeated hour after {hour:%Y-%m-%d} {tz.key} put its clocks back "
                                          f"(read as the second {hour:%H}:00–{hour.hour + 1:02d}:00)", sensor=sensor,
                          lines=(rows[second[0]].line, rows[second[-1]].line)))
    if gap:
        notes.append(Note("dst_gap", f"sensor {sensor}: {len(gap)} timestamp(s) do not exist in {tz.key} (the hour "
                                     f"skipped when clocks go forward), e.g. line {rows[gap[0]].line} "
                                     f"({rows[gap[0]].time_text!r}); does the logger's clock follow daylight saving "
                                     f"time? check --timezone", sensor=sensor, lines=_lines(rows, gap[:MAX_REPORTED]),
                          detail={"count": len(gap)}))
    repeats = np.flatnonzero(steps == 0) + 1
    if len(repeats):
        notes.append(Note("repeated", f"sensor {sensor}: {len(repeats)} row(s) repeat the previous row's timestamp, "
                                      f"e.g. line {rows[repeats[0]].line}; kept", sensor=sensor,
                          lines=_lines(rows, repeats[:MAX_REPORTED].tolist()), detail={"count": len(repeats)}))
    jumps = (np.flatnonzero(steps < 0) + 1).tolist()
    for j in jumps[:MAX_JUMP_NOTES]:
        back_s = (times[j - 1] - times[j]) / 1000
        notes.append(Note("clock_jump", f"sensor {sensor}: clock jumps back {_duration(back_s)} at line "
                                        f"{rows[j].line} ({rows[j].time_text!r} after {rows[j - 1].time_text!r} on "
                                        f"line {rows[j - 1].line}); a new segment starts there", sensor=sensor,
                          lines=(rows[j - 1].line, rows[j].line), detail={"back_s": back_s}))
    if len(jumps) > MAX_JUMP_NOTES:
        rest = jumps[MAX_JUMP_NOTES:]
        notes.append(Note("clock_jump", f"sensor {sensor}: {len(rest)} more clock jumps back, from line "
                                        f"{rows[rest[0]].line}", sensor=sensor,
                          lines=_lines(rows, rest[:MAX_REPORTED]), detail={"count": len(rest)}))
    cuts = [0, *jumps, len(rows)]
    stamps = np.asarray(times, dtype=np.int64)
    return [(rows[a:b], stamps[a:b]) for a, b in pairwise(cuts)]


def _cadence(segments: list[Segment]) -> float:
    steps = [np.diff(seg.series.ts_ms) for seg in segments]
    positive = np.concatenate(steps) if steps else np.zeros(0, dtype=np.int64)
    positive = positive[positive > 0]
    if len(positive) == 0:
        raise CsvError("cannot detect the cadence: no sensor has two readings at different times")
    period = float(np.median(positive)) / 1000.0
    if period >= 1 and abs(period - round(period)) <= 0.01 * period:
        return float(round(period))  # logger jitter: 59.98 s is a 60 s cadence
    return round(period, 3)


def read_csv(path: Path | str, *, time_column: str | None = None, temp_column: str | None = None,
             rh_column: str | None = None, battery_column: str | None = None, sensor_column: str | None = None,
             unit: str = "auto", timezone: str = "UTC", profile: str = "custom", min_rows: int = MIN_ROWS,
             encoding: str | None = None, date_format: str | None = None, dayfirst: bool | None = None) -> CsvData:
    """Read a logger export; every problem is a CsvError with a one-line message naming the file's lines.

    Decoding: `encoding`, else a BOM (UTF-8, UTF-16), else UTF-8, else Windows-1252, else Latin-1. The header is
    the first row with a timestamp and a temperature column by name (or as given) followed by a data row; lines
    above it (a logger's preamble) are skipped. Day/month order: `date_format`, `dayfirst`, else inferred from a
    row with a day above 12, else refused. Rows stay in arrival order per sensor; a clock jump back starts a new
    segment, a repeated DST hour (naive times in `timezone`) is placed after the first. The cadence is the
    median interval between readings."""
    tz = _zone(timezone)
    temperature_unit("", unit)  # an unknown unit fails before the file is read
    file = Path(path)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise CsvError(f"cannot read {file}: {exc.strerror or exc}") from None
    if not raw.strip():
        raise CsvError(f"{file.name} is empty")
    text, used = _decode(raw, file, encoding)
    if "\x00" in text:
        raise CsvError(f"{file.name} has NUL characters: a binary file, or UTF-16/32 without a BOM "
                       f"(pass --encoding)")
    names = {"time": time_column, "temperature": temp_column, "humidity": rh_column, "battery": battery_column,
             "sensor": sensor_column}
    layout = _find_layout(text, file, names, date_format)
    rows, header_line = _data_rows(text, layout, file, date_format)
    notes: list[Note] = []
    if used in ("cp1252", "latin-1", "utf-16-le", "utf-16-be") and encoding is None:
        notes.append(Note("encoding", f"{file.name} is not UTF-8: read as {used} (pass --encoding to change)",
                          detail={"encoding": used}))
    is_dayfirst, order, order_note = _date_order(rows, dayfirst)
    if order_note is not None:
        notes.append(order_note)
    bad: list[str] = []
    groups: dict[str, tuple[list[_Row], list[int | datetime]]] = {}
    for row in rows:
        try:
            wall = _resolve(row.stamp, is_dayfirst, row.time_text)
        except (ValueError, OverflowError) as exc:
            bad.append(f"line {row.line}: {exc}")
            continue
        kept, walls = groups.setdefault(row.sensor, ([], []))
        kept.append(row)
        walls.append(wall)
    if bad:
        raise _bad_rows(bad, "unreadable timestamps")
    t_unit = temperature_unit(layout.header[layout.temp], unit)
    segments: list[Segment] = []
    for sensor, (kept, walls) in groups.items():
        if len(kept) < min_rows:
            raise CsvError(f"too little data for sensor {sensor}: {len(kept)} rows, need at least {min_rows}")
        volts = np.array([r.battery for r in kept])
        scale = 1000.0 if np.nanmax(np.abs(volts), initial=0.0) < 10.0 else 1.0  # volts, not millivolts
        for part, times in _sensor_segments(sensor, kept, walls, tz, notes):
            segments.append(Segment(
                Series(sensor=sensor, profile=profile, ts_ms=times,
                       temp_c=to_celsius(np.array([r.temp for r in part], dtype=np.float64), t_unit),
                       rh_pct=np.array([r.rh for r in part], dtype=np.float64),
                       battery_mv=np.array([r.battery for r in part], dtype=np.float64) * scale),
                lines=np.array([r.line for r in part], dtype=np.int64), raw_time=[r.time_text for r in part]))
    columns = {"time": " + ".join(layout.header[i].strip() for i in layout.time),
               "temperature": layout.header[layout.temp].strip()}
    for role, index in (("humidity", layout.rh), ("battery", layout.battery), ("sensor", layout.sensor)):
        if index is not None:
            columns[role] = layout.header[index].strip()
    return CsvData(segments=segments, sample_period_s=_cadence(segments), notes=notes, columns=columns,
                   encoding=used, header_line=header_line, date_order=order, timezone=timezone)


def iso_local(ms: int, timezone: str) -> str:
    """ISO 8601 local time with its offset, to the second, in `timezone`."""
    return _iso(ms, _zone(timezone))
