"""A shipment's record: per sensor the numbers of the sensor report over its assignment (band: the shipment's
limits), the journey's per-minute means and gaps, the alerts; as CSV, and as a PDF signed with Ed25519 by the
records key (its public key is published so a receiver verifies the record offline), kept on disk at delivery."""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import serialization
from sqlmodel import Session

from cloud.db.alerts import Alert
from cloud.db.fleet import Sensor
from cloud.db.shipments import Shipment
from cloud.services import completeness, shipments
from cloud.services.clock import now_ms
from cloud.tsdb.influx import InfluxClient
from cloud.tsdb.reports import MINUTE_MS, SensorReport, minute_rows_many, sensor_report
from models.runtime.manifest import generate_keypair, load_private_key, sign_bytes
from protocol.profiles import Profile

log = logging.getLogger(__name__)

KEY_FILE_MODE: Final = 0o600


@dataclass(slots=True)
class SensorPart:
    """One sensor's share of the record: its period, report, per-minute means and gaps."""

    sensor: str
    label: str | None
    start: int
    end: int
    report: SensorReport
    points: list[tuple[int, float]]
    gaps: list[tuple[int, int]]


@dataclass(slots=True)
class ShipmentRecord:
    """Everything the record shows, computed once for the page, the PDF and the CSV."""

    shipment: Shipment
    band: Profile | None
    start: int
    end: int
    generated_at: int
    sensors: list[SensorPart] = field(default_factory=list)
    gateways: list[str] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)

    @property
    def readings(self) -> int:
        return sum(p.report.readings for p in self.sensors)

    @property
    def missing(self) -> int:
        return sum(p.report.missing for p in self.sensors)

    @property
    def completeness_pct(self) -> float | None:
        total = self.readings + self.missing
        return round(100.0 * self.readings / total, 3) if total else None

    @property
    def time_out_of_band_s(self) -> int:
        """Minutes in which at least one sensor's mean was outside the band (the union, not a sum)."""
        minutes = {ts for p in self.sensors for e in p.report.excursions for ts in range(e.start, e.end, MINUTE_MS)}
        return len(minutes) * 60

    @property
    def mkt_c(self) -> float | None:
        """The highest of the sensors' mean kinetic temperatures (the warmest place in the load decides)."""
        return max((p.report.mkt_c for p in self.sensors if p.report.mkt_c is not None), default=None)

    @property
    def min_c(self) -> float | None:
        return min((p.report.min_c for p in self.sensors if p.report.min_c is not None), default=None)

    @property
    def max_c(self) -> float | None:
        return max((p.report.max_c for p in self.sensors if p.report.max_c is not None), default=None)

    @property
    def excursions(self) -> int:
        return sum(len(p.report.excursions) for p in self.sensors)


def build(session: Session, influx: InfluxClient, shipment: Shipment, *, now: int | None = None) -> ShipmentRecord:
    """The record of `shipment` as of `now` (a travelling shipment's record ends now)."""
    now = now if now is not None else now_ms()
    start, end = shipments.span(shipment, now)
    band = shipments.band(shipment)
    record = ShipmentRecord(shipment=shipment, band=band, start=start, end=end, generated_at=now,
                            alerts=shipments.alerts_during(session, shipment, now=now))
    spans = []
    for p in shipments.periods(session, shipment):
        if p.kind == "gateway":
            record.gateways.append(p.device_id)
            continue
        lo, hi = max(p.start, start), min(p.clipped_end(now), end)
        if hi > lo:
            spans.append((p.device_id, lo, hi))
    for (sensor_id, lo, hi), rows in zip(spans, minute_rows_many(influx, spans), strict=True):
        sensor = session.get(Sensor, sensor_id)
        report = sensor_report(influx, session, sensor=sensor_id, profile=shipment.profile, start=lo, end=hi,
                               band=band, rows=rows)
        gaps = [(g.after_ts, g.before_ts) for g in completeness.list_gaps(session, sensor_id=sensor_id,
                                                                          kind="sensor", start=lo, end=hi)]
        record.sensors.append(SensorPart(sensor=sensor_id, label=(sensor.label or sensor.asset) if sensor else None,
                                         start=lo, end=hi, report=report,
                                         points=[(ts, mean) for ts, _, _, _, mean in rows], gaps=gaps))
    return record


def record_csv(record: ShipmentRecord) -> str:
    """Three tables in one file: `metric,value` for the shipment, one row per sensor, then the excursions."""
    s = record.shipment
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["metric", "value"])
    for name, value in (("reference", s.reference), ("origin", s.origin), ("destination", s.destination),
                        ("customer", s.customer), ("product", s.product), ("profile", s.profile),
                        ("state", s.state), ("start_ms", record.start), ("end_ms", record.end),
                        ("band_low_c", record.band.low_c if record.band else None),
                        ("band_high_c", record.band.high_c if record.band else None),
                        ("readings", record.readings), ("missing", record.missing),
                        ("completeness_pct", record.completeness_pct), ("min_c", record.min_c),
                        ("max_c", record.max_c), ("mkt_c", record.mkt_c),
                        ("time_out_of_band_s", record.time_out_of_band_s), ("excursions", record.excursions),
                        ("alerts", len(record.alerts)), ("generated_at_ms", record.generated_at)):
        writer.writerow([name, "" if value is None else value])
    writer.writerow([])
    writer.writerow(["sensor", "label", "start_ms", "end_ms", "readings", "missing", "completeness_pct", "min_c",
                     "mean_c", "max_c", "mkt_c", "time_out_of_band_s"])
    for p in record.sensors:
        r = p.report
        writer.writerow([p.sensor, p.label or "", p.start, p.end, r.readings, r.missing,
                         *("" if v is None else v for v in (r.completeness_pct, r.min_c, r.mean_c, r.max_c, r.mkt_c)),
                         r.time_out_of_band_s])
    writer.writerow([])
    writer.writerow(["sensor", "excursion_start_ms", "excursion_end_ms", "peak_c", "duration_s"])
    for p in record.sensors:
        for e in p.report.excursions:
            writer.writerow([p.sensor, e.start, e.end, e.peak_c, e.duration_s])
    return out.getvalue()


class RecordKey:
    """The Ed25519 key shipment records are signed with: read from `path`, or made there (mode 0600) when first
    needed. Only its public half ever leaves the server."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._pem: bytes | None = None

    def _private_pem(self) -> bytes:
        with self._lock:
            if self._pem is None:
                if not self.path.exists():
                    private_pem, _ = generate_keypair()
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
                    with os.fdopen(fd, "wb") as fh:
                        fh.write(private_pem)
                    log.info("records signing key created path=%s", self.path)
                pem = self.path.read_bytes()
                load_private_key(pem)  # refuses anything but an Ed25519 private key, naming the file below
                self._pem = pem
            return self._pem

    def sign(self, data: bytes) -> str:
        """The base64 Ed25519 signature over `data`."""
        return sign_bytes(data, self._private_pem()).decode()

    def public_pem(self) -> bytes:
        """The public key as PEM (what `openssl pkeyutl -verify -pubin` reads)."""
        key = load_private_key(self._private_pem()).public_key()
        return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def file_stem(shipment: Shipment) -> str:
    """A file name for the shipment's record (its reference, made safe)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in shipment.reference)
    return f"shipment-{safe}"


def store(directory: Path, shipment: Shipment, pdf: bytes, signature: str) -> tuple[Path, str]:
    """Write `<stem>.pdf` and `<stem>.pdf.sig` into `directory`; the PDF's path and SHA-256."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{file_stem(shipment)}.pdf"
    tmp = path.with_suffix(".pdf.tmp")
    tmp.write_bytes(pdf)
    tmp.replace(path)
    (directory / f"{path.name}.sig").write_text(signature + "\n")
    return path, hashlib.sha256(pdf).hexdigest()
