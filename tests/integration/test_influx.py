"""The InfluxDB adapter against a real influxd 1.6.7: write/query round trip, injection, auth, errors."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cloud.tsdb.influx import InfluxClient, InfluxRejected, InfluxUnavailable
from cloud.tsdb.lineprotocol import readings_lines
from cloud.tsdb.readings import sensor_readings
from deploy.services import Influxd, free_port
from protocol.messages import Reading

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000
MAC = "aa:bb:cc:00:00:01"
OTHER = "aa:bb:cc:00:00:02"


def _readings(sensor: str, n: int, profile: str = "frozen") -> list[Reading]:
    return [Reading(sensor=sensor, ts=T0 + i * 1000, profile=profile, seq=i, temp_c=-20.0 - i / 10,
                    battery_mv=3000, rssi_dbm=-60) for i in range(n)]


def test_write_then_query_round_trip(influxd: Influxd, influx_db: str) -> None:
    with InfluxClient(url=influxd.url, database=influx_db) as client:
        client.ensure_database()
        client.ensure_database()  # idempotent
        assert client.database_exists()
        client.write(readings_lines("gw1", _readings(MAC, 10)).lines)
        client.write(readings_lines("gw2", _readings(OTHER, 5, "chilled")).lines)
        rows = sensor_readings(client, sensor=MAC, start_ms=T0 + 2000, end_ms=T0 + 7000)
    assert [r["ts"] for r in rows] == [T0 + i * 1000 for i in range(2, 7)]  # start inclusive, end exclusive
    assert rows[0] == {"ts": T0 + 2000, "gateway": "gw1", "profile": "frozen", "temp_c": -20.2, "rh_pct": None,
                       "battery_mv": 3000, "rssi_dbm": -60, "anomaly_score": None, "seq": 2}
    assert all(isinstance(r["seq"], int) and isinstance(r["temp_c"], float) for r in rows)


def test_rewriting_the_same_points_is_idempotent(influxd: Influxd, influx_db: str) -> None:
    with InfluxClient(url=influxd.url, database=influx_db) as client:
        client.ensure_database()
        lines = readings_lines("gw1", _readings(MAC, 20)).lines
        client.write(lines)
        client.write(lines)
        assert len(sensor_readings(client, sensor=MAC, start_ms=T0, end_ms=T0 + 60_000)) == 20


@pytest.mark.parametrize("evil", [
    "aa:bb:cc:00:00:01' OR 1=1 --",
    'x" OR "sensor" =~ /.*/',
    "' ; DROP DATABASE x; SELECT '",
    "$sensor",
])
def test_injection_attempt_returns_nothing_and_breaks_nothing(influxd: Influxd, influx_db: str, evil: str) -> None:
    with InfluxClient(url=influxd.url, database=influx_db) as client:
        client.ensure_database()
        client.write(readings_lines("gw1", _readings(MAC, 3)).lines)
        assert sensor_readings(client, sensor=evil, start_ms=T0, end_ms=T0 + 60_000) == []
        assert client.database_exists()
        assert len(sensor_readings(client, sensor=MAC, start_ms=T0, end_ms=T0 + 60_000)) == 3


def test_user_password_auth(influxd_factory: Callable[..., Influxd], influx_db: str) -> None:
    server = influxd_factory(auth=("admin", "secret"))
    with InfluxClient(url=server.url, database=influx_db) as anonymous:
        with pytest.raises(InfluxRejected) as err:
            anonymous.ensure_database()
        assert err.value.status == 401
    with InfluxClient(url=server.url, database=influx_db, username="admin", password="wrong") as wrong:
        with pytest.raises(InfluxRejected):
            wrong.write(readings_lines("gw1", _readings(MAC, 1)).lines)
    with InfluxClient(url=server.url, database=influx_db, username="admin", password="secret") as client:
        client.ensure_database()
        client.write(readings_lines("gw1", _readings(MAC, 4)).lines)
        assert len(sensor_readings(client, sensor=MAC, start_ms=T0, end_ms=T0 + 60_000)) == 4


def test_type_conflict_is_rejected_with_influx_text(influxd: Influxd, influx_db: str) -> None:
    with InfluxClient(url=influxd.url, database=influx_db) as client:
        client.ensure_database()
        client.write([f"reading,gateway=gw1,sensor={MAC},profile=frozen seq=1i {T0}"])
        with pytest.raises(InfluxRejected) as err:
            client.write([f"reading,gateway=gw1,sensor={MAC},profile=frozen seq=1.5 {T0 + 1}"])
        assert err.value.status == 400 and "conflict" in err.value.message


def test_nothing_listening_is_unavailable(influx_db: str) -> None:
    with InfluxClient(url=f"http://127.0.0.1:{free_port()}", database=influx_db, timeout_s=2) as client:
        with pytest.raises(InfluxUnavailable):
            client.write(["m f=1 1"])
        with pytest.raises(InfluxUnavailable):
            client.ping()
