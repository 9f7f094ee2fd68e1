"""Cloud figures on real processes: ingest with one and two workers vs raw influxd writes, alert latency
(gateway publish → visible through the API) vs the broker's own publish → receive, and a 7-day chart query
through the API vs the same InfluxQL sent straight to influxd."""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from bench.e2e import T0, ingest_vs_raw_influx
from bench.results import Result
from cloud.tsdb.influx import InfluxClient
from cloud.tsdb.lineprotocol import readings_lines
from cloud.tsdb.rollups import rebuild_days
from cloud.tsdb.series import _series_query, bucket_ms
from deploy.services import Postgres, pg_bindir
from deploy.stack import INGEST_USER, LocalStack, make_gateways
from protocol import encode
from protocol.messages import AlertEvent, Reading, alert_id
from protocol.topics import topic

ADMIN_PW = "bench-admin-password"
DAY_MS = 86_400_000


def _quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1]


def _client(client_id: str, user: str, password: str, port: int) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5)
    client.username_pw_set(user, password)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def _stack(tmp: str) -> LocalStack:
    os.environ["COLDWATCH_ADMIN_PASSWORD"] = ADMIN_PW  # the API bootstraps user admin
    stack = LocalStack(workdir=Path(tmp), gateways=make_gateways([("bench-01", 1, ["chilled"])]),
                       say=lambda _line: None)
    stack.start_infra()
    stack.provision()
    stack.start_ingest(workers=2)
    stack.start_api()
    return stack


def _token(api: str) -> dict[str, str]:
    r = httpx.post(f"{api}/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PW}, timeout=10)
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def alert_latency(n: int = 60) -> list[Result]:
    """Seconds from a gateway's PUBLISH of an alert to the API answering it, p50/p99, against the time from
    PUBLISH to a plain subscriber's receipt on the same broker (the floor ingest cannot beat)."""
    with tempfile.TemporaryDirectory(prefix="coldwatch-bench-") as tmp:
        stack = _stack(tmp)
        try:
            assert stack.mosquitto is not None
            gw = stack.gateways[0]
            headers = _token(stack.api_url)
            publisher = _client("bench-gw", gw.gateway_id, gw.password, stack.mosquitto.port)
            received: dict[bytes, float] = {}
            got = threading.Event()

            def on_message(_c: mqtt.Client, _u: object, m: mqtt.MQTTMessage) -> None:
                received[bytes(m.payload)] = time.perf_counter()
                got.set()

            watcher = _client("bench-watch", INGEST_USER, stack.ingest_password, stack.mosquitto.port)
            watcher.on_message = on_message
            watcher.subscribe(topic(gw.gateway_id, "alerts"), qos=1)
            time.sleep(2.0)
            api_s: list[float] = []
            broker_s: list[float] = []
            mac = gw.sensors[0].mac
            with httpx.Client(base_url=stack.api_url, headers=headers, timeout=10) as http:
                for i in range(n):
                    started = T0 + i * 60_000
                    event = AlertEvent(id=alert_id(gw.gateway_id, mac, "temp_out_of_range", started),
                                       gateway=gw.gateway_id, seq=i + 1, sensor=mac, kind="temp_out_of_range",
                                       severity="critical", state="open", source="rule", started_at=started,
                                       updated_at=started, reason="bench")
                    payload = encode(event)
                    got.clear()
                    t0 = time.perf_counter()
                    publisher.publish(topic(gw.gateway_id, "alerts"), payload, qos=1)
                    while http.get(f"/api/v1/alerts/{event.id}").status_code != 200:
                        time.sleep(0.002)
                    api_s.append(time.perf_counter() - t0)
                    got.wait(10)
                    broker_s.append(received.get(payload, float("nan")) - t0)
            publisher.disconnect()
            watcher.disconnect()
        finally:
            stack.stop()
    return [Result("alert_latency_p50", _quantile(api_s, 0.5) * 1000, "ms",
                   "broker publish→receive p50, same run", _quantile(broker_s, 0.5) * 1000, higher_is_better=False),
            Result("alert_latency_p99", _quantile(api_s, 0.99) * 1000, "ms",
                   "broker publish→receive p99, same run", _quantile(broker_s, 0.99) * 1000, higher_is_better=False)]


def chart_query_7_days(queries: int = 30) -> list[Result]:
    """p99 of GET /api/v1/sensors/{id}/series over 7 days of 1 Hz readings in ≤ 1,000 buckets (read from the
    rollups ingest keeps), against the raw-points InfluxQL sent straight to influxd (pinned: the query a chart
    made before rollups)."""
    week = 7 * DAY_MS
    with tempfile.TemporaryDirectory(prefix="coldwatch-bench-") as tmp:
        stack = _stack(tmp)
        try:
            assert stack.influxd is not None
            mac = stack.gateways[0].sensors[0].mac
            influx = InfluxClient(url=stack.influxd.url, database=stack.influx_db)
            influx.ensure_database(create=True)
            batch: list[Reading] = []
            for second in range(week // 1000):
                batch.append(Reading(sensor=mac, ts=T0 + second * 1000, profile="chilled", seq=second % 65535,
                                     temp_c=3.0 + (second % 600) / 600, rh_pct=80.0, battery_mv=2950))
                if len(batch) == 10_000:
                    influx.write(readings_lines("bench-01", batch).lines)
                    batch = []
            if batch:
                influx.write(readings_lines("bench-01", batch).lines)
            rebuild_days(influx, T0, T0 + week)  # what ingest writes as the readings arrive (not timed here)
            headers = _token(stack.api_url)
            params = {"start": T0, "end": T0 + week, "points": 1000}
            api_s: list[float] = []
            raw_s: list[float] = []
            query = _series_query(bucket_ms(T0, T0 + week, 1000))
            binds: dict[str, str | int] = {"sensor": mac, "start": T0 * 1_000_000, "end": (T0 + week) * 1_000_000}
            with httpx.Client(base_url=stack.api_url, headers=headers, timeout=30) as http:
                for _ in range(queries):
                    t0 = time.perf_counter()
                    r = http.get(f"/api/v1/sensors/{mac}/series", params=params)
                    api_s.append(time.perf_counter() - t0)
                    buckets = len(r.json()["buckets"]) if r.status_code == 200 else 0
                    assert 500 <= buckets <= 1000, r.text[:200]  # widths are rounded to nice ones: 15 min here
                    t0 = time.perf_counter()
                    influx.query(query, binds)
                    raw_s.append(time.perf_counter() - t0)
        finally:
            stack.stop()
    return [Result("chart_query_7d_1hz_p99", _quantile(api_s, 0.99) * 1000, "ms",
                   "same InfluxQL straight to influxd, p99", _quantile(raw_s, 0.99) * 1000, higher_is_better=False)]


def ingest_workers(total: int = 1_000_000) -> list[Result]:
    """ingest_vs_raw_influx over `total` readings with one worker, two on SQLite and two on PostgreSQL (each
    against its own same-run raw reference), and the one worker's RSS growth from 100k readings to `total`."""
    one = ingest_vs_raw_influx(total, workers=1)
    two = ingest_vs_raw_influx(total, workers=2)
    bindir = pg_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries not found (/usr/lib/postgresql/<ver>/bin): make setup")
    server = Postgres(bindir).start()
    try:
        two_pg = ingest_vs_raw_influx(total, workers=2, database_url=server.create_database("bench"))
    finally:
        server.stop()
    ref = "raw influxd /write of the same lines, one client, 5000/req"
    return [Result("ingest_1_worker", one.rate, "readings/s", ref, one.raw_rate, higher_is_better=True),
            Result("ingest_2_workers", two.rate, "readings/s", ref, two.raw_rate, higher_is_better=True),
            Result("ingest_2_workers_postgres", two_pg.rate, "readings/s", ref, two_pg.raw_rate,
                   higher_is_better=True),
            Result("ingest_2_vs_1_worker", two.rate, "readings/s", "ingest_1_worker, same run", one.rate,
                   higher_is_better=True),
            Result("ingest_rss_growth", one.rss_end_mib, "MiB", f"the worker's RSS after 100k readings (of {total:,})",
                   one.rss_early_mib, higher_is_better=False)]


def run() -> list[Result]:
    return ingest_workers() + alert_latency() + chart_query_7_days()
