"""Shipment records on real influxd and SQLite: the signed record PDF of a 7-day shipment with 8 sensors at 1 Hz
(from the 1-minute rollups ingest keeps), against the InfluxQL queries it needs sent straight to influxd."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from sqlmodel import Session

from bench.e2e import T0
from bench.results import Result
from cloud.db.engine import init_schema, make_engine
from cloud.db.fleet import Gateway, Sensor
from cloud.db.shipments import AssignmentCreate, ShipmentCreate
from cloud.services import shipments
from cloud.services.shipment_record import RecordKey
from cloud.services.shipment_watch import RecordDesk
from cloud.tsdb.influx import InfluxClient
from cloud.tsdb.lineprotocol import readings_lines
from cloud.tsdb.reports import minute_rows_many
from cloud.tsdb.rollups import rebuild_days
from deploy.services import Influxd, free_port
from protocol.messages import Reading

DAY_MS = 86_400_000
SENSORS = [f"aa:bb:cc:00:09:{i:02x}" for i in range(8)]
NAMES = ["冷链托盘", "pallet", "door", "rear", "front", "top", "floor", "ceiling"]


def _fill(influx: InfluxClient, start: int, end: int) -> None:
    """1 Hz readings for every sensor, a sine-ish day with an excursion on one sensor; rollups as ingest writes."""
    for n, mac in enumerate(SENSORS):
        batch: list[Reading] = []
        for second in range((end - start) // 1000):
            ts = start + second * 1000
            temp = 3.0 + (second % 3600) / 3600 + n / 10 + (3.0 if n == 0 and 40_000 <= second < 42_000 else 0.0)
            batch.append(Reading(sensor=mac, ts=ts, profile="chilled", seq=second % 65535, temp_c=round(temp, 2)))
            if len(batch) == 20_000:
                influx.write(readings_lines("truck-1", batch).lines)
                batch = []
        if batch:
            influx.write(readings_lines("truck-1", batch).lines)
    rebuild_days(influx, start, end)


def report_shipment_7d(runs: int = 5) -> list[Result]:
    """Median time to build and render the record (every query, the numbers, the chart of 8 × 10,080 minutes,
    the PDF with its Chinese names, the signature) against the time of its InfluxQL queries alone."""
    week = 7 * DAY_MS
    with tempfile.TemporaryDirectory(prefix="coldwatch-bench-") as tmp:
        server = Influxd(workdir=Path(tmp) / "influxd", port=free_port()).start()
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        try:
            influx = InfluxClient(url=server.url, database="coldwatch")
            influx.ensure_database(create=True)
            _fill(influx, T0, T0 + week)
            init_schema(engine)
            desk = RecordDesk(RecordKey(Path(tmp) / "key.pem"), Path(tmp) / "records")
            with Session(engine) as session:
                session.add(Gateway(id="truck-1", created_at=0))
                for mac, name in zip(SENSORS, NAMES, strict=True):
                    session.add(Sensor(id=mac, gateway_id="truck-1", profile="chilled", label=name))
                shipment = shipments.create(session, data=ShipmentCreate(
                    reference="SH-BENCH", origin="上海", destination="成都", customer="成都鲜品有限公司",
                    profile="chilled", temp_low_c=1.0, temp_high_c=5.0), actor="bench")
                for mac in SENSORS:
                    shipments.assign(session, shipment=shipment, data=AssignmentCreate(device_id=mac, start=T0),
                                     actor="bench")
                shipments.transition(session, shipment=shipment, to="in_transit", actor="bench", at=T0)
                shipments.transition(session, shipment=shipment, to="delivered", actor="bench", at=T0 + week)
                session.commit()
                record_s, query_s, size = [], [], 0
                for _ in range(runs):
                    t0 = time.perf_counter()
                    pdf, signature = desk.render(session, influx, shipment)
                    record_s.append(time.perf_counter() - t0)
                    assert pdf.startswith(b"%PDF-") and signature
                    size = len(pdf)
                    t0 = time.perf_counter()
                    for rows in minute_rows_many(influx, [(mac, T0, T0 + week) for mac in SENSORS]):
                        assert len(rows) == week // 60_000, len(rows)
                    query_s.append(time.perf_counter() - t0)
        finally:
            engine.dispose()
            server.stop()
    return [Result("report_shipment_7d_pdf", statistics.median(record_s) * 1000, "ms",
                   f"its InfluxQL minute queries alone, run as it runs them (8 sensors × 7 days at 1 Hz, 2 at a time; "
                   f"PDF {size // 1024} KiB)",
                   statistics.median(query_s) * 1000, higher_is_better=False)]


def run() -> list[Result]:
    return report_shipment_7d()
