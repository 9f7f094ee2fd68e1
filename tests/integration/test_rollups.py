"""Rollups on a real influxd: the same buckets as the raw readings (an excursion inside a bucket kept by min and
max), recomputed when a gap is filled later, and charts that fall back to raw readings stored before rollups."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

import pytest

from cloud.tsdb import reports, rollups
from cloud.tsdb.influx import InfluxClient, Series
from cloud.tsdb.lineprotocol import readings_lines
from cloud.tsdb.series import _series_query, sensor_series
from deploy.services import Influxd
from protocol.messages import Reading

pytestmark = pytest.mark.integration

T0 = 1_767_225_600_000  # 2026-01-01T00:00Z, on an hour boundary
SENSORS = ("aa:bb:cc:00:02:01", "aa:bb:cc:00:02:02")
HOURS = 3


def _readings(start_ms: int, end_ms: int, every_ms: int = 10_000) -> list[Reading]:
    out = []
    for i, sensor in enumerate(SENSORS):
        for ts in range(start_ms, end_ms, every_ms):
            temp = 4.0 + math.sin(ts / 600_000 + i)
            if sensor == SENSORS[0] and T0 + 75 * 60_000 <= ts < T0 + 75 * 60_000 + 20_000:
                temp = 14.5  # a 20 s excursion inside one minute
            out.append(Reading(sensor=sensor, ts=ts, profile="chilled", temp_c=round(temp, 3), rh_pct=80.0,
                               battery_mv=2900 + i, anomaly_score=0.1 * i))
    return out


@pytest.fixture
def client(influxd: Influxd, influx_db: str) -> InfluxClient:
    c = InfluxClient(url=influxd.url, database=influx_db)
    c.ensure_database(create=True)
    c.write(readings_lines("gw1", _readings(T0, T0 + HOURS * 3_600_000)).lines)
    return c


def _raw(client: InfluxClient, width_ms: int) -> list[dict[str, object]]:
    series = client.query(_series_query(width_ms), {"sensor": SENSORS[0], "start": T0 * 1_000_000,
                                                    "end": (T0 + HOURS * 3_600_000) * 1_000_000})
    return [row for s in series for row in s.rows()]


@pytest.mark.parametrize(("points", "width_ms"), [(HOURS * 60, 60_000), (HOURS * 6, 600_000), (HOURS, 3_600_000)])
def test_rollups_give_the_raw_readings_buckets_and_keep_an_excursion_inside_one(
        client: InfluxClient, points: int, width_ms: int) -> None:
    written = rollups.rebuild(client, T0, T0 + HOURS * 3_600_000)
    assert written == len(SENSORS) * (HOURS * 60 + HOURS)  # a point per sensor per minute and per hour
    width, buckets = sensor_series(client, sensor=SENSORS[0], start_ms=T0, end_ms=T0 + HOURS * 3_600_000,
                                   points=points)
    assert width == width_ms
    raw = _raw(client, width_ms)
    assert [b["ts"] for b in buckets] == [r["time"] for r in raw]
    for bucket, row in zip(buckets, raw, strict=True):
        assert bucket["n"] == row["n"]
        assert bucket["temp_c"] == pytest.approx(row["temp_c"], abs=1e-9)
        assert (bucket["temp_min"], bucket["temp_max"]) == (row["temp_min"], row["temp_max"])
        assert bucket["rh_pct"] == pytest.approx(row["rh_pct"]) and bucket["battery_mv"] == pytest.approx(2900)
    assert max(b["temp_max"] or 0 for b in buckets) == 14.5  # the 20 s excursion, whatever the bucket


def test_a_gap_filled_later_is_rolled_up_again(client: InfluxClient) -> None:
    rollups.rebuild(client, T0, T0 + HOURS * 3_600_000)
    late = [Reading(sensor=SENSORS[1], ts=T0 + 30 * 60_000 + 5_000 + k, profile="chilled", temp_c=-3.0)
            for k in range(3)]  # a replay fills an old minute (with a cold spike)
    client.write(readings_lines("gw1", late).lines)
    spans = rollups.DirtySpans()
    spans.mark(min(r.ts for r in late), max(r.ts for r in late))
    for (start, end), _fresh in spans.due(now_ms=0):
        rollups.rebuild(client, start, end)
    _width, buckets = sensor_series(client, sensor=SENSORS[1], start_ms=T0, end_ms=T0 + HOURS * 3_600_000,
                                    points=HOURS * 60)
    minute = next(b for b in buckets if b["ts"] == T0 + 30 * 60_000)
    assert minute["n"] == 6 + 3 and minute["temp_min"] == -3.0
    _width, hours = sensor_series(client, sensor=SENSORS[1], start_ms=T0, end_ms=T0 + HOURS * 3_600_000,
                                  points=HOURS)
    assert hours[0]["n"] == 360 + 3 and hours[0]["temp_min"] == -3.0  # the hour above it too


def test_a_chart_of_readings_stored_before_rollups_existed_reads_them_raw(client: InfluxClient) -> None:
    width, buckets = sensor_series(client, sensor=SENSORS[0], start_ms=T0, end_ms=T0 + HOURS * 3_600_000,
                                   points=HOURS)
    assert width == 3_600_000 and [b["n"] for b in buckets] == [360] * HOURS


def test_coldwatch_rollups_rebuild_rolls_up_readings_stored_before_rollups(
        client: InfluxClient, influxd: Influxd, influx_db: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from cloud.cli.main import main

    monkeypatch.setenv("COLDWATCH_INFLUX_URL", influxd.url)
    monkeypatch.setenv("COLDWATCH_INFLUX_DB", influx_db)
    assert main(["rollups", "rebuild", "--days", "400"]) == 0
    assert json.loads(capsys.readouterr().out)["rollup_points_written"] == len(SENSORS) * (HOURS * 60 + HOURS)
    series = client.query('SELECT sum("n_t") FROM "reading_1h" WHERE time >= 0')
    assert series[0].values[0][1] == len(SENSORS) * HOURS * 360
    assert main(["rollups", "rebuild", "--days", "0"]) == 2  # a clear error, not a traceback
    assert "--days" in capsys.readouterr().err


def test_a_chart_over_readings_from_before_and_after_rollups_shows_both(client: InfluxClient) -> None:
    rollups.rebuild(client, T0 + 2 * 3_600_000, T0 + HOURS * 3_600_000)  # only the last hour was rolled up
    for points, per_bucket in ((HOURS, 360), (HOURS * 60, 6)):
        _width, buckets = sensor_series(client, sensor=SENSORS[0], start_ms=T0, end_ms=T0 + HOURS * 3_600_000,
                                        points=points)
        assert len(buckets) == points and {b["n"] for b in buckets} == {per_bucket}


def test_a_report_reads_the_minute_rollup_and_raw_readings_where_none_exists(client: InfluxClient) -> None:
    # rollups for the first two hours only: the third is what ingest has not rolled up yet
    rollups.rebuild(client, T0, T0 + 2 * 3_600_000)
    start, end = T0 + 25_000, T0 + HOURS * 3_600_000 - 35_000  # partial minutes at both edges
    expected = reports._raw_minutes(client, SENSORS[0], start, end)
    raw_queries = []
    query = client.query

    def counting(q: str, binds: Mapping[str, str | int | float | bool] | None = None) -> list[Series]:
        if "FROM \"reading\"" in q or "FROM reading " in q:
            raw_queries.append((binds or {}).get("end"))
        return query(q, binds)

    client.query = counting  # type: ignore[method-assign,assignment]
    rows = reports.minute_rows(client, sensor=SENSORS[0], start=start, end=end)
    client.query = query  # type: ignore[method-assign]
    assert [r[:4] for r in rows] == [r[:4] for r in expected]
    assert all(math.isclose(a[4], b[4], abs_tol=1e-9) for a, b in zip(rows, expected, strict=True))
    excursion = next(r for r in rows if r[0] == T0 + 75 * 60_000)
    assert excursion[3] == 14.5  # a 20 s excursion inside a rolled-up minute keeps its max
    # raw readings were read only for the first partial minute and the hour not rolled up
    assert len(raw_queries) == 2
