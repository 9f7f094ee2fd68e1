"""Chart data from InfluxDB: a sensor's readings in time buckets (mean/min/max) over any range, and the latest
values of every sensor (fleet page). A bucket of whole minutes or hours is read from the rollups
(cloud/tsdb/rollups.py), a finer one from the raw readings. Bound parameters only, like cloud/tsdb/readings.py."""

from __future__ import annotations

import math
from typing import Any, Final

from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12 (charts.py returns it)

from cloud.tsdb.influx import InfluxClient, InfluxRejected, quote_ident
from cloud.tsdb.lineprotocol import MEASUREMENT
from cloud.tsdb.rollups import LEVELS

_NS_PER_MS: Final = 1_000_000
MIN_BUCKET_MS: Final = 1_000
DEFAULT_POINTS: Final = 1_200
MAX_POINTS: Final = 5_000
# Bucket sizes a person reads easily (ms); a range is split into the smallest that gives <= `points` buckets.
_NICE_MS: Final = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


class Bucket(TypedDict):
    """One time bucket of a sensor's readings (None where no reading in it had the field)."""

    ts: int
    n: int
    temp_c: float | None
    temp_min: float | None
    temp_max: float | None
    rh_pct: float | None
    battery_mv: float | None
    anomaly_score: float | None


class Latest(TypedDict):
    """A sensor's most recent value of each field within the window (each field its own last value)."""

    temp_c: float | None
    rh_pct: float | None
    battery_mv: float | None


def bucket_ms(start_ms: int, end_ms: int, points: int = DEFAULT_POINTS) -> int:
    """The bucket width for [start_ms, end_ms) in at most `points` buckets, rounded up to a readable size."""
    want = max(MIN_BUCKET_MS, math.ceil((end_ms - start_ms) / max(1, points)))
    for seconds in _NICE_MS:
        if seconds * 1000 >= want:
            return seconds * 1000
    return math.ceil(want / 86_400_000) * 86_400_000


def _f(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def _series_query(width_ms: int) -> str:
    t, rh, bat, score = (quote_ident(n) for n in ("temp_c", "rh_pct", "battery_mv", "anomaly_score"))
    return (f"SELECT count({t}) AS n, mean({t}) AS temp_c, min({t}) AS temp_min, max({t}) AS temp_max, "  # noqa: S608
            f"mean({rh}) AS rh_pct, mean({bat}) AS battery_mv, max({score}) AS anomaly_score "
            f"FROM {quote_ident(MEASUREMENT)} WHERE {quote_ident('sensor')} = $sensor "
            f"AND time >= $start AND time < $end GROUP BY time({int(width_ms)}ms) fill(none)")


def rollup_for(width_ms: int) -> str | None:
    """The coarsest rollup whose buckets divide `width_ms` (None: read the raw readings)."""
    for measurement, level_ms in reversed(LEVELS):
        if width_ms % level_ms == 0:
            return measurement
    return None


def _rollup_query(measurement: str, width_ms: int) -> str:
    sums = ", ".join(f"sum({quote_ident(f)}) AS {quote_ident(f)}" for f in ("n_t", "t_sum", "n_rh", "rh_sum",
                                                                            "n_bat", "bat_sum"))
    return (f"SELECT {sums}, min({quote_ident('t_min')}) AS temp_min, max({quote_ident('t_max')}) AS temp_max, "  # noqa: S608
            f"max({quote_ident('score_max')}) AS anomaly_score FROM {quote_ident(measurement)} "
            f"WHERE {quote_ident('sensor')} = $sensor AND time >= $start AND time < $end "
            f"GROUP BY time({int(width_ms)}ms) fill(none)")


def _mean(total: object, count: object) -> float | None:
    return float(total) / float(count) if total is not None and count else None  # type: ignore[arg-type]


def _from_rollup(row: dict[str, Any]) -> dict[str, Any]:
    """A rollup row as the raw query's columns: means from sums and counts."""
    return {"time": row["time"], "n": row.get("n_t") or 0, "temp_c": _mean(row.get("t_sum"), row.get("n_t")),
            "temp_min": row.get("temp_min"), "temp_max": row.get("temp_max"),
            "rh_pct": _mean(row.get("rh_sum"), row.get("n_rh")),
            "battery_mv": _mean(row.get("bat_sum"), row.get("n_bat")), "anomaly_score": row.get("anomaly_score")}


def sensor_series(influx: InfluxClient, *, sensor: str, start_ms: int, end_ms: int,
                  points: int = DEFAULT_POINTS) -> tuple[int, list[Bucket]]:
    """(bucket width in ms, the buckets that hold readings, oldest first); empty buckets are left out, so a
    chart can draw a hole where no data arrived instead of joining across it. From a rollup, a bucket counts when
    it starts inside the range (the raw query also counts the part of a bucket that starts before it)."""
    width = bucket_ms(start_ms, end_ms, points)
    rollup = rollup_for(width)
    params: dict[str, str | int] = {"sensor": sensor, "start": start_ms * _NS_PER_MS, "end": end_ms * _NS_PER_MS}
    try:
        rows = [_from_rollup(r) for s in influx.query(_rollup_query(rollup, width), params)
                for r in s.rows()] if rollup is not None else []
        # raw buckets: for a fine width, and before the first rollup bucket (readings stored before rollups
        # existed: `coldwatch rollups rebuild` fills those in)
        raw_end = min((int(r["time"]) for r in rows), default=end_ms)
        if raw_end > start_ms:
            raw = influx.query(_series_query(width), params | {"end": raw_end * _NS_PER_MS})
            rows = [r for s in raw for r in s.rows()] + rows
    except InfluxRejected as exc:
        if "database not found" in exc.message:
            return width, []
        raise
    out: list[Bucket] = []
    for row in rows:
        if row.get("temp_c") is None and row.get("rh_pct") is None and row.get("battery_mv") is None:
            continue
        out.append(Bucket(ts=int(row["time"]), n=int(row.get("n") or 0), temp_c=_f(row.get("temp_c")),
                          temp_min=_f(row.get("temp_min")), temp_max=_f(row.get("temp_max")),
                          rh_pct=_f(row.get("rh_pct")), battery_mv=_f(row.get("battery_mv")),
                          anomaly_score=_f(row.get("anomaly_score"))))
    out.sort(key=lambda b: b["ts"])
    return width, out


def latest_by_sensor(influx: InfluxClient, *, since_ms: int) -> dict[str, Latest]:
    """sensor id → its last temperature, humidity and battery since `since_ms` (one query for the fleet)."""
    t, rh, bat = (quote_ident(n) for n in ("temp_c", "rh_pct", "battery_mv"))
    query = (f"SELECT last({t}) AS temp_c, last({rh}) AS rh_pct, last({bat}) AS battery_mv "  # noqa: S608
             f"FROM {quote_ident(MEASUREMENT)} WHERE time >= $start GROUP BY {quote_ident('sensor')}")
    try:
        series = influx.query(query, {"start": since_ms * _NS_PER_MS})
    except InfluxRejected as exc:
        if "database not found" in exc.message:
            return {}
        raise
    out: dict[str, Latest] = {}
    for s in series:
        sensor = s.tags.get("sensor")
        for row in s.rows():
            if sensor:
                out[sensor] = Latest(temp_c=_f(row.get("temp_c")), rh_pct=_f(row.get("rh_pct")),
                                     battery_mv=_f(row.get("battery_mv")))
    return out



def _per_sensor(influx: InfluxClient, *, field: str, sensors: list[str], since_ms: int,
                group: str = "") -> dict[str, list[tuple[int, float]]]:
    """sensor id → (ts ms, value) rows of `field` (a column or an aggregate AS temp_c) since `since_ms`."""
    if not sensors:
        return {}
    s = quote_ident("sensor")
    which = " OR ".join(f"{s} = $s{i}" for i in range(len(sensors)))
    query = (f"SELECT {field} FROM {quote_ident(MEASUREMENT)} WHERE ({which}) AND time >= $start "  # noqa: S608
             f"GROUP BY {group}{s}" + (" fill(none)" if group else ""))
    params: dict[str, str | int] = {f"s{i}": sensor for i, sensor in enumerate(sensors)}
    params["start"] = since_ms * _NS_PER_MS
    try:
        series = influx.query(query, params)
    except InfluxRejected as exc:
        if "database not found" in exc.message:
            return {}
        raise
    out: dict[str, list[tuple[int, float]]] = {}
    for found in series:
        sensor = found.tags.get("sensor")
        if sensor:
            out.setdefault(sensor, []).extend((int(r["time"]), float(r["temp_c"])) for r in found.rows()
                                              if r.get("temp_c") is not None)
    for rows in out.values():
        rows.sort()
    return out


def recent_temps(influx: InfluxClient, *, sensors: list[str], since_ms: int) -> dict[str, list[tuple[int, float]]]:
    """sensor id → its (ts ms, °C) readings since `since_ms`, oldest first (one query for all `sensors`)."""
    return _per_sensor(influx, field=quote_ident("temp_c"), sensors=sensors, since_ms=since_ms)


def bucket_means(influx: InfluxClient, *, sensors: list[str], since_ms: int,
                 bucket_ms: int) -> dict[str, list[tuple[int, float]]]:
    """sensor id → (bucket start ms, mean °C) of its readings since `since_ms`, oldest first (one query)."""
    return _per_sensor(influx, field=f"mean({quote_ident('temp_c')}) AS temp_c", sensors=sensors, since_ms=since_ms,
                       group=f"time({int(bucket_ms)}ms), ")
