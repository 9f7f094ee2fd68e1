"""Reading queries against InfluxDB (the data-access layer for the API): bound parameters only."""

from __future__ import annotations

from typing import Final

from typing_extensions import TypedDict  # pydantic reads it as the API's response schema (Python 3.11)

from cloud.tsdb.influx import InfluxClient, InfluxRejected, quote_ident
from cloud.tsdb.lineprotocol import FLOAT_FIELDS, INT_FIELDS, MEASUREMENT

MAX_READINGS: Final = 100_000
_NS_PER_MS: Final = 1_000_000
_COLUMNS: Final = ("gateway", "profile", *FLOAT_FIELDS, *INT_FIELDS)


class StoredReading(TypedDict):
    """One reading as stored: time in epoch ms, tags, fields (None where the gateway sent none)."""

    ts: int
    gateway: str
    profile: str
    temp_c: float | None
    rh_pct: float | None
    battery_mv: int | None
    rssi_dbm: int | None
    anomaly_score: float | None
    seq: int | None


def _readings_query(limit: int) -> str:
    columns = ", ".join(quote_ident(c) for c in _COLUMNS)
    return (
        f"SELECT {columns} FROM {quote_ident(MEASUREMENT)} "  # noqa: S608 (identifiers quoted, values bound)
        f"WHERE {quote_ident('sensor')} = $sensor AND time >= $start AND time < $end "
        f"ORDER BY time ASC LIMIT {int(limit)}"
    )


def _as_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


def _as_float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def sensor_readings(
    influx: InfluxClient, *, sensor: str, start_ms: int, end_ms: int, limit: int = MAX_READINGS
) -> list[StoredReading]:
    """Readings of `sensor` with start_ms <= ts < end_ms, oldest first, at most `limit`."""
    try:
        series = influx.query(
            _readings_query(limit), {"sensor": sensor, "start": start_ms * _NS_PER_MS, "end": end_ms * _NS_PER_MS}
        )
    except InfluxRejected as exc:
        if "database not found" in exc.message:  # nothing ingested yet: no readings, not an error
            return []
        raise
    out: list[StoredReading] = []
    for s in series:
        for row in s.rows():
            out.append(StoredReading(
                ts=int(row["time"]), gateway=str(row["gateway"]), profile=str(row["profile"]),
                temp_c=_as_float(row["temp_c"]), rh_pct=_as_float(row["rh_pct"]),
                battery_mv=_as_int(row["battery_mv"]), rssi_dbm=_as_int(row["rssi_dbm"]),
                anomaly_score=_as_float(row["anomaly_score"]), seq=_as_int(row["seq"]),
            ))
    out.sort(key=lambda r: r["ts"])
    return out
