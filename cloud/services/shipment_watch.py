"""The cloud's shipment watcher, a thread of the API process: a reading outside a shipment's own limits opens a
`shipment_excursion` alert (cleared when the readings are back in range), a shipment whose devices are heard at
its destination site is delivered, and a delivered shipment gets its signed record on disk (`RecordDesk`).

The gateway's rules judge the profile's band (they know nothing of shipments); a shipment's own, stricter or
looser, limits are judged here, on the readings ingest stored, within `shipment_interval_s` of their arrival
(docs/decisions.md "Shipment limits are judged in the cloud").
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from cloud.db.alerts import Alert, AlertHistory
from cloud.db.engine import read_mostly, session_scope
from cloud.db.fleet import Sensor
from cloud.db.shipments import Shipment
from cloud.periodic import PeriodicThread
from cloud.services import shipment_record, shipments
from cloud.services.clock import now_ms
from cloud.shipment_pdf import shipment_pdf
from cloud.tsdb.influx import InfluxClient, InfluxError
from cloud.tsdb.series import recent_temps
from protocol.messages import alert_id
from protocol.profiles import Profile

log = logging.getLogger(__name__)

KIND: Final = "shipment_excursion"
SOURCE: Final = "cloud"
ACTOR: Final = "cloud:shipments"
LOOKBACK_MS: Final = 10 * 60_000  # readings this recent are judged each pass (a late backlog is in the record)


class RecordDesk:
    """Makes a shipment's record PDF, signs it, and keeps it in `directory` (at delivery, or on demand)."""

    def __init__(self, key: shipment_record.RecordKey, directory: Path, *, public_key_url: str | None = None) -> None:
        self.key = key
        self.directory = directory
        self.public_key_url = public_key_url

    def render(self, session: Session, influx: InfluxClient, shipment: Shipment) -> tuple[bytes, str]:
        """(PDF, base64 signature) of the shipment's record as of now."""
        record = shipment_record.build(session, influx, shipment)
        pdf = shipment_pdf(record, public_key_url=self.public_key_url, language=shipment.language)
        return pdf, self.key.sign(pdf)

    def keep(self, engine: Engine, influx: InfluxClient, shipment_id: int) -> Path:
        """Make and keep a delivered shipment's record (its delivery committed); its path. The record is built from
        a read snapshot and only its SHA-256 is written after, in a short transaction: a week of 8 sensors takes
        about a second and a half, which must not hold SQLite's write lock (ingest would wait for it)."""
        with Session(read_mostly(engine), expire_on_commit=False) as session:
            shipment = session.get(Shipment, shipment_id)
            if shipment is None:
                raise ValueError(f"no shipment {shipment_id}")
            pdf, signature = self.render(session, influx, shipment)
        path, digest = shipment_record.store(self.directory, shipment, pdf, signature)
        with session_scope(engine) as session:
            row = session.get(Shipment, shipment_id)
            if row is not None:
                row.record_sha256 = digest
                session.add(row)
        log.info("shipment record written shipment=%s path=%s bytes=%d", shipment.reference, path, len(pdf))
        return path

    def stored(self, shipment: Shipment) -> Path | None:
        """The record kept at delivery, if it is on disk."""
        path = self.directory / f"{shipment_record.file_stem(shipment)}.pdf"
        return path if path.is_file() else None


@dataclass
class WatchResult:
    """What one pass changed (shipment references, alert ids)."""

    delivered: list[str] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)


def _open_alert(session: Session, sensor_id: str) -> Alert | None:
    return session.exec(select(Alert).where(Alert.sensor_id == sensor_id, Alert.kind == KIND,
                                            Alert.device_state != "clear")).first()


def _last_cleared(session: Session, sensor_id: str) -> int:
    ended = session.exec(select(Alert.ended_at).where(Alert.sensor_id == sensor_id, Alert.kind == KIND,
                                                      col(Alert.ended_at).is_not(None))
                         .order_by(col(Alert.ended_at).desc())).first()
    return ended or 0


def _reason(shipment: Shipment, band: Profile, value: float) -> str:
    if band.high_c is not None and value > band.high_c:
        return f"{value:.1f} °C is above shipment {shipment.reference}'s upper limit {band.high_c:g} °C"
    return f"{value:.1f} °C is below shipment {shipment.reference}'s lower limit {band.low_c:g} °C"


def _limit(band: Profile, value: float) -> float | None:
    return band.high_c if band.high_c is not None and value > band.high_c else band.low_c


def judge_sensor(session: Session, shipment: Shipment, band: Profile, sensor_id: str,
                 readings: list[tuple[int, float]], now: int, result: WatchResult) -> None:
    """Open, update or clear the sensor's `shipment_excursion` alert from its recent readings."""
    alert = _open_alert(session, sensor_id)
    if alert is None:
        after = _last_cleared(session, sensor_id)
        out = [(ts, v) for ts, v in readings if ts > after and not band.contains(v)]
        if not out:
            return
        ts, value = out[0]
        sensor = session.get(Sensor, sensor_id)
        gateway = sensor.gateway_id if sensor and sensor.gateway_id else ""
        reason = _reason(shipment, band, value)
        worst = max(out, key=lambda r: abs(r[1] - band.setpoint_c))[1]
        alert = Alert(id=alert_id(gateway, sensor_id, KIND, ts), gateway_id=gateway, sensor_id=sensor_id, kind=KIND,
                      severity="critical", source=SOURCE, device_state="open", started_at=ts, updated_at=now,
                      received_at=now, last_event_at=now, value=value, peak=worst, threshold=_limit(band, value),
                      reason=reason, profile=shipment.profile)
        session.add(alert)
        session.flush()
        session.add(AlertHistory(alert_id=alert.id, at=now, actor=ACTOR, action="open",
                                 detail={"reason": reason, "shipment": shipment.reference}))
        result.opened.append(alert.id)
        log.warning("shipment excursion shipment=%s sensor=%s value=%.2f reason=%r", shipment.reference, sensor_id,
                    value, reason)
        return
    later = [(ts, v) for ts, v in readings if ts >= alert.started_at]
    outs = [(ts, v) for ts, v in later if not band.contains(v)]
    if outs:
        worst = max(outs, key=lambda r: abs(r[1] - band.setpoint_c))[1]
        alert.peak = worst if alert.peak is None or abs(worst - band.setpoint_c) > abs(alert.peak - band.setpoint_c) \
            else alert.peak
        alert.value, alert.updated_at, alert.last_event_at = outs[-1][1], now, now
    last_out = outs[-1][0] if outs else alert.started_at
    back = [(ts, v) for ts, v in later if ts > last_out]
    if back and band.contains(back[-1][1]):
        alert.device_state, alert.ended_at, alert.updated_at, alert.last_event_at = "clear", back[0][0], now, now
        session.add(AlertHistory(alert_id=alert.id, at=now, actor=ACTOR, action="clear",
                                 detail={"reason": "readings back within the shipment's limits",
                                         "shipment": shipment.reference}))
        result.cleared.append(alert.id)
        log.info("shipment excursion over shipment=%s sensor=%s alert=%s", shipment.reference, sensor_id, alert.id)
    session.add(alert)


@dataclass(frozen=True)
class _Travelling:
    """A travelling shipment with limits of its own, and its sensors still on it (from a read snapshot)."""

    shipment_id: int
    band: Profile
    sensors: tuple[tuple[str, int], ...]  # (sensor id, assigned since)


def _travelling(session: Session) -> list[_Travelling]:
    out = []
    for shipment in session.exec(select(Shipment).where(Shipment.state == "in_transit")).all():
        band = shipments.band(shipment)
        if band is None or not shipments.own_limits(shipment) or shipment.id is None:
            continue
        live = tuple((p.device_id, p.start) for p in shipments.periods(session, shipment, kind="sensor")
                     if p.end is None)
        if live:
            out.append(_Travelling(shipment.id, band, live))
    return out


def check_limits(engine: Engine, influx: InfluxClient, *, now: int, result: WatchResult) -> None:
    """Judge the recent readings of every travelling shipment with limits of its own: which shipments from a read
    snapshot, their readings with no transaction open (one query), the alerts in one short write transaction."""
    with Session(read_mostly(engine)) as session:
        plans = _travelling(session)
    if not plans:
        return
    sensors = sorted({sensor for plan in plans for sensor, _ in plan.sensors})
    since = max(now - LOOKBACK_MS, min(start for plan in plans for _, start in plan.sensors))
    temps = recent_temps(influx, sensors=sensors, since_ms=since)
    with session_scope(engine) as session:
        for plan in plans:
            shipment = session.get(Shipment, plan.shipment_id)
            if shipment is None or shipment.state != "in_transit":
                continue  # delivered or cancelled since the snapshot
            for sensor, start in plan.sensors:
                readings = [(ts, v) for ts, v in temps.get(sensor, []) if ts >= start]
                judge_sensor(session, shipment, plan.band, sensor, readings, now, result)


class ShipmentWatch:
    """`step()` once, or `start()` a daemon thread that steps every `interval_s` until `stop()`."""

    def __init__(self, engine: Engine, influx: Callable[[], InfluxClient], desk: RecordDesk, *, interval_s: float,
                 clock: Callable[[], int] = now_ms) -> None:
        self.engine = engine
        self.influx = influx
        self.desk = desk
        self.clock = clock
        self._thread = PeriodicThread("shipment-watch", interval_s, self.step)

    def step(self) -> WatchResult:
        """One pass: arrivals (delivered in a short transaction, then each record kept), then the limits."""
        result = WatchResult()
        influx = self.influx()
        now = self.clock()
        delivered: list[int] = []
        with session_scope(self.engine) as session:
            for shipment in shipments.arrived(session):
                shipments.transition(session, shipment=shipment, to="delivered", actor="cloud:arrival", at=now)
                result.delivered.append(shipment.reference)
                if shipment.id is not None:
                    delivered.append(shipment.id)
        for shipment_id in delivered:
            try:
                self.desk.keep(self.engine, influx, shipment_id)
            except InfluxError as exc:  # the record can be made on demand later; the delivery stands
                log.warning("shipment record not made shipment_id=%d error=%s", shipment_id, exc)
        try:
            check_limits(self.engine, influx, now=now, result=result)
        except InfluxError as exc:
            log.warning("shipment limits not judged this pass error=%s", exc)
        return result

    def start(self) -> ShipmentWatch:
        """Run in a daemon thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread (waits for the current step)."""
        self._thread.stop()
