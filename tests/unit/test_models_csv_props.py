"""models.training.csvdata on arbitrary input (hypothesis): only CsvError escapes, rows are never lost or reordered."""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.training.csvdata import CsvData, CsvError, parse_time, read_csv

PROFILE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def read_bytes(content: bytes, **options: object) -> CsvData | None:
    """read_csv on `content`; None when it refused it with a CsvError (anything else fails the test)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "any.csv"
        path.write_bytes(content)
        try:
            return read_csv(path, min_rows=1, **options)  # type: ignore[arg-type]
        except CsvError as exc:
            assert "\n" not in str(exc)
            return None


@PROFILE
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_give_data_or_a_csv_error(content: bytes) -> None:
    read_bytes(content)


@PROFILE
@given(st.text(max_size=1500))
def test_arbitrary_text_after_a_header_gives_data_or_a_csv_error(text: str) -> None:
    read_bytes(("timestamp,temperature,rh\n" + text).encode("utf-8"))


CELL = st.one_of(
    st.text(alphabet="0123456789-/.:, TZAPMapm+\"'", max_size=25),
    st.integers(-10**18, 10**18).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.datetimes(min_value=datetime(1800, 1, 1), max_value=datetime(2300, 1, 1)).map(
        lambda d: d.strftime("%d/%m/%Y %I:%M:%S %p")),
)


@PROFILE
@given(st.lists(st.tuples(CELL, CELL, CELL), min_size=1, max_size=30),
       st.sampled_from([",", ";", "\t"]), st.sampled_from(["utf-8", "utf-16", "cp1252"]),
       st.sampled_from(["UTC", "Europe/Berlin", "America/New_York"]), st.sampled_from([None, True, False]))
def test_arbitrary_rows_give_data_or_a_csv_error(rows: list[tuple[str, str, str]], sep: str, encoding: str,
                                                 zone: str, dayfirst: bool | None) -> None:
    lines = [sep.join(["Date Time", "Temp (°C)", "RH%"])] + [sep.join(r).replace("\n", " ") for r in rows]
    try:
        content = "\n".join(lines).encode(encoding)
    except UnicodeEncodeError:
        return
    data = read_bytes(content, timezone=zone, dayfirst=dayfirst)
    if data is not None:
        assert data.rows <= len(rows)
        assert all(np.all(np.diff(s.ts_ms) >= 0) for s in data.series)


@PROFILE
@given(st.lists(st.integers(0, 50), min_size=2, max_size=60), st.sampled_from(["UTC", "Europe/Berlin"]))
def test_every_row_kept_in_arrival_order_in_forward_running_segments(minutes: list[int], zone: str) -> None:
    t0 = datetime(2025, 10, 26, 1, 30)  # Berlin repeats 02:00-03:00 that night
    text = "timestamp,temperature\n" + "".join(
        f"{t0 + timedelta(minutes=m):%Y-%m-%d %H:%M:%S},4.0\n" for m in minutes)
    data = read_bytes(text.encode())
    if len(set(minutes)) == 1:
        assert data is None  # no cadence without two different times
        return
    assert data is not None
    lines = [int(x) for seg in data.segments for x in seg.lines]
    expected = list(range(2, len(minutes) + 2))
    assert lines in (expected, expected[::-1])  # arrival order (newest-first files are read oldest first)
    assert all(np.all(np.diff(s.ts_ms) >= 0) for s in data.series)
    jumps = sum(n.detail.get("count", 1) for n in data.notes if n.kind == "clock_jump")
    assert jumps == len(data.segments) - 1


@PROFILE
@given(st.lists(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)), min_size=1,
                max_size=20), st.booleans(), st.sampled_from(["%d/%m/%Y %H:%M:%S", "%d.%m.%Y %I:%M %p"]))
def test_a_day_above_12_decides_the_order_for_every_row(moments: list[datetime], dayfirst: bool, fmt: str) -> None:
    decider = datetime(2024, 5, 13, 12, 0)  # day 13: only one reading possible
    moments = [m.replace(second=0, microsecond=0) for m in [*moments, decider]]
    if not dayfirst:
        fmt = fmt.replace("%d", "@").replace("%m", "%d").replace("@", "%m")
    text = "time,temp\n" + "".join(f"{m.strftime(fmt)},4.0\n" for m in moments)
    data = read_bytes(text.encode())
    assert data is not None and data.date_order == ("day-first" if dayfirst else "month-first")
    got = sorted(int(x) for s in data.series for x in s.ts_ms)
    assert got == sorted(parse_time(m.isoformat() + "Z", ZoneInfo("UTC")) for m in moments)
