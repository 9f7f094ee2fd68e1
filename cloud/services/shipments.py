"""Shipments: create and edit, assign sensors and gateways for a period, move planned → in transit → delivered,
the alerts that happened during a shipment, share links for a receiver, and delivery on arrival at the destination.

Readings belong to a shipment by time: a sensor's assignment [start, end) selects its readings; InfluxDB series are
never re-tagged, so a sensor can travel many shipments over its life.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from sqlalchemy import ColumnElement, or_
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from cloud.db.alerts import Alert
from cloud.db.fleet import Gateway, Sensor
from cloud.db.shipments import (
    DEVICE_KINDS,
    SHIPMENT_STATES,
    AssignmentCreate,
    Shipment,
    ShipmentAssignment,
    ShipmentCreate,
    ShipmentShare,
    ShipmentUpdate,
)
from cloud.security import new_token, token_digest
from cloud.services import audit
from cloud.services.clock import now_ms
from cloud.services.errors import DomainError
from protocol.profiles import PROFILES, Profile

log = logging.getLogger(__name__)

_FIELDS: Final = ("reference", "origin", "destination", "customer", "product", "profile", "planned_start",
                  "planned_end", "temp_low_c", "temp_high_c", "language", "state")
# state → the states it may move to (cancelled and delivered are final)
TRANSITIONS: Final = {"planned": ("in_transit", "cancelled"), "in_transit": ("delivered", "cancelled"),
                      "delivered": (), "cancelled": ()}
DAY_MS: Final = 86_400_000
OPEN_STATES: Final = ("planned", "in_transit")  # a device on a shipment in these is not free for another


def _open_sensor_assignment() -> tuple[ColumnElement[bool], ...]:
    """The conditions (with Shipment joined) of a sensor's assignment still open on a planned or travelling
    shipment."""
    return (col(ShipmentAssignment.kind) == "sensor", col(ShipmentAssignment.end).is_(None),
            col(Shipment.state).in_(OPEN_STATES))


class ShipmentError(DomainError):
    """A shipment change that cannot be made."""


@dataclass(frozen=True, slots=True)
class Period:
    """A device on a shipment for [start, end); end None: still travelling."""

    kind: str
    device_id: str
    start: int
    end: int | None

    def clipped_end(self, now: int) -> int:
        """The end, or `now` while it is open."""
        return self.end if self.end is not None else now


def _id(shipment: Shipment) -> int:
    assert shipment.id is not None, "a stored shipment has an id"
    return shipment.id


def band(shipment: Shipment) -> Profile | None:
    """The shipment's allowed band: its own limits where given, the profile's for the side it leaves open."""
    base = PROFILES.get(shipment.profile or "")
    low = shipment.temp_low_c if shipment.temp_low_c is not None else (base.low_c if base else None)
    high = shipment.temp_high_c if shipment.temp_high_c is not None else (base.high_c if base else None)
    if low is None and high is None:
        return None
    setpoint = base.setpoint_c if base else ((low + high) / 2 if low is not None and high is not None
                                             else (low if low is not None else high))
    assert setpoint is not None
    return Profile(f"shipment:{shipment.reference}", low, high, setpoint)


def own_limits(shipment: Shipment) -> bool:
    """Whether the shipment has limits of its own (the cloud, not the gateway, then judges its readings)."""
    return shipment.temp_low_c is not None or shipment.temp_high_c is not None


def create(session: Session, *, data: ShipmentCreate, actor: str) -> Shipment:
    """A new planned shipment; the reference is unique."""
    if data.profile is not None and data.profile not in PROFILES:
        raise ShipmentError(f"unknown profile {data.profile!r}; known: {', '.join(PROFILES)}")
    if session.exec(select(Shipment.id).where(Shipment.reference == data.reference)).first() is not None:
        raise ShipmentError(f"shipment {data.reference!r} exists already", kind="conflict")
    shipment = Shipment.model_validate(data, update={"created_at": now_ms(), "created_by": actor})
    session.add(shipment)
    session.flush()
    audit.record(session, actor=actor, action="shipment.create", target_type="shipment", target_id=shipment.reference,
                 after=audit.snapshot(shipment, _FIELDS))
    log.info("shipment created shipment=%s actor=%s", shipment.reference, actor)
    return shipment


def get(session: Session, reference: str) -> Shipment:
    """The shipment with this reference, or a not_found refusal."""
    shipment = session.exec(select(Shipment).where(Shipment.reference == reference)).first()
    if shipment is None:
        raise ShipmentError(f"no shipment {reference[:64]!r}", kind="not_found")
    return shipment


def list_shipments(session: Session, *, state: str | None = None, limit: int = 200,
                   offset: int = 0) -> Sequence[Shipment]:
    """Newest first, optionally in one state."""
    query = select(Shipment)
    if state is not None:
        if state not in SHIPMENT_STATES:
            raise ShipmentError(f"unknown state {state!r}; known: {', '.join(SHIPMENT_STATES)}")
        query = query.where(Shipment.state == state)
    return session.exec(query.order_by(col(Shipment.id).desc()).offset(offset).limit(limit)).all()


def update(session: Session, *, shipment: Shipment, data: ShipmentUpdate, actor: str) -> Shipment:
    """Change the fields sent; a delivered or cancelled shipment's record is final."""
    if shipment.state in ("delivered", "cancelled"):
        raise ShipmentError(f"shipment {shipment.reference} is {shipment.state}; its record is final", kind="conflict")
    changes = data.model_dump(exclude_unset=True)
    if changes.get("profile") is not None and changes["profile"] not in PROFILES:
        raise ShipmentError(f"unknown profile {changes['profile']!r}; known: {', '.join(PROFILES)}")
    low = changes.get("temp_low_c", shipment.temp_low_c)
    high = changes.get("temp_high_c", shipment.temp_high_c)
    if low is not None and high is not None and low >= high:
        raise ShipmentError(f"temp_low_c ({low}) must be below temp_high_c ({high})")
    before = audit.snapshot(shipment, _FIELDS)
    for name, value in changes.items():
        setattr(shipment, name, value)
    session.add(shipment)
    audit.record(session, actor=actor, action="shipment.update", target_type="shipment", target_id=shipment.reference,
                 before=before, after=audit.snapshot(shipment, _FIELDS))
    return shipment


def assignments(session: Session, shipment: Shipment) -> Sequence[ShipmentAssignment]:
    """Every device assignment of the shipment, in the order made."""
    return session.exec(select(ShipmentAssignment).where(ShipmentAssignment.shipment_id == shipment.id)
                        .order_by(col(ShipmentAssignment.id))).all()


def periods(session: Session, shipment: Shipment, *, kind: str | None = None) -> list[Period]:
    """The shipment's devices with their periods (of one kind if given)."""
    return [Period(a.kind, a.device_id, a.start, a.end) for a in assignments(session, shipment)
            if kind is None or a.kind == kind]


def assign(session: Session, *, shipment: Shipment, data: AssignmentCreate, actor: str) -> ShipmentAssignment:
    """Put a sensor or gateway on the shipment from `data.start` (default: the shipment's start, or now).

    A device travels one shipment at a time: an open assignment elsewhere that began earlier is refused
    (end it first, or deliver that shipment)."""
    if data.kind not in DEVICE_KINDS:
        raise ShipmentError(f"kind must be one of {', '.join(DEVICE_KINDS)}, not {data.kind!r}")
    if shipment.state in ("delivered", "cancelled"):
        raise ShipmentError(f"shipment {shipment.reference} is {shipment.state}", kind="conflict")
    device_id = data.device_id.strip().lower() if data.kind == "sensor" else data.device_id.strip()
    table = Sensor if data.kind == "sensor" else Gateway
    if session.get(table, device_id) is None:
        raise ShipmentError(f"no {data.kind} {device_id!r} is known", kind="not_found")
    start = data.start if data.start is not None else (shipment.started_at or now_ms())
    busy = session.exec(select(ShipmentAssignment, Shipment).join(
        Shipment, col(Shipment.id) == ShipmentAssignment.shipment_id).where(
        ShipmentAssignment.kind == data.kind, ShipmentAssignment.device_id == device_id,
        or_(col(ShipmentAssignment.end).is_(None), col(ShipmentAssignment.end) > start),
        col(Shipment.state).in_(OPEN_STATES))).first()
    if busy is not None:
        other = busy[1]
        raise ShipmentError(f"{data.kind} {device_id} is on shipment {other.reference} already "
                            f"({other.state}); remove it there first", kind="conflict")
    row = ShipmentAssignment(shipment_id=_id(shipment), kind=data.kind, device_id=device_id, start=start,
                             assigned_by=actor)
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action="shipment.assign", target_type="shipment", target_id=shipment.reference,
                 after={"kind": data.kind, "device_id": device_id, "start": start})
    log.info("shipment device assigned shipment=%s %s=%s actor=%s", shipment.reference, data.kind, device_id, actor)
    return row


def unassign(session: Session, *, shipment: Shipment, assignment_id: int, actor: str,
             at: int | None = None) -> ShipmentAssignment:
    """End a device's assignment now (its readings up to now stay the shipment's)."""
    row = session.get(ShipmentAssignment, assignment_id)
    if row is None or row.shipment_id != shipment.id:
        raise ShipmentError(f"shipment {shipment.reference} has no assignment {assignment_id}", kind="not_found")
    if row.end is not None:
        raise ShipmentError(f"that assignment ended already at {row.end}", kind="conflict")
    row.end = max(row.start, at if at is not None else now_ms())
    if shipment.state == "planned":  # nothing travelled yet: the assignment was a mistake, not a period
        session.delete(row)
    else:
        session.add(row)
    audit.record(session, actor=actor, action="shipment.unassign", target_type="shipment",
                 target_id=shipment.reference, after={"kind": row.kind, "device_id": row.device_id, "end": row.end})
    return row


def transition(session: Session, *, shipment: Shipment, to: str, actor: str, at: int | None = None) -> Shipment:
    """Move the shipment to state `to`. In transit: the assignments start then (if they were planned for
    later); delivered or cancelled: the open assignments end then."""
    if to not in SHIPMENT_STATES:
        raise ShipmentError(f"unknown state {to!r}; known: {', '.join(SHIPMENT_STATES)}")
    if to not in TRANSITIONS[shipment.state]:
        allowed = ", ".join(TRANSITIONS[shipment.state]) or "none (it is final)"
        raise ShipmentError(f"shipment {shipment.reference} is {shipment.state}: it can move to {allowed}, not {to}",
                            kind="conflict")
    now = now_ms()
    when = at if at is not None else now
    if when > now + 60_000:
        raise ShipmentError("a state change cannot be dated in the future")
    if to == "delivered" and shipment.started_at is not None and when < shipment.started_at:
        raise ShipmentError("a shipment cannot be delivered before it started")
    before = audit.snapshot(shipment, _FIELDS)
    rows = assignments(session, shipment)
    if to == "in_transit":
        shipment.started_at = when
        for row in rows:
            if row.start > when:
                row.start = when
                session.add(row)
    else:
        if to == "delivered":
            if shipment.started_at is None:
                shipment.started_at = when
            shipment.delivered_at = when
        for row in rows:
            if row.end is None:
                row.end = max(row.start, when)
                session.add(row)
    shipment.state = to
    session.add(shipment)
    audit.record(session, actor=actor, action=f"shipment.{to}", target_type="shipment", target_id=shipment.reference,
                 before=before, after=audit.snapshot(shipment, _FIELDS))
    log.info("shipment state shipment=%s state=%s actor=%s", shipment.reference, to, actor)
    return shipment


def span(shipment: Shipment, now: int) -> tuple[int, int]:
    """The time the shipment's record covers: from its start (planned start before it left) to its delivery
    (now while it travels)."""
    start = shipment.started_at or shipment.planned_start or shipment.created_at
    end = shipment.delivered_at or (now if shipment.state == "in_transit" else (shipment.planned_end or now))
    return start, max(start + 1, end)


def alerts_during(session: Session, shipment: Shipment, *, now: int | None = None) -> list[Alert]:
    """The alerts that began while one of the shipment's devices travelled with it: a sensor's alerts, and a
    gateway's own (`gateway_silent`, sensor id empty) for an assigned gateway; oldest first."""
    now = now if now is not None else now_ms()
    found: dict[str, Alert] = {}
    for p in periods(session, shipment):
        column = Alert.sensor_id if p.kind == "sensor" else Alert.gateway_id
        query = select(Alert).where(column == p.device_id, col(Alert.started_at) >= p.start,
                                    col(Alert.started_at) < p.clipped_end(now))
        if p.kind == "gateway":
            query = query.where(Alert.sensor_id == "")
        for alert in session.exec(query).all():
            found[alert.id] = alert
    return sorted(found.values(), key=lambda a: (a.started_at, a.id))


def sensor_rows(shipment: Shipment) -> SelectOfScalar[Sensor]:
    """A query for the Sensor rows of the shipment's sensors."""
    return select(Sensor).join(ShipmentAssignment, col(ShipmentAssignment.device_id) == Sensor.id).where(
        ShipmentAssignment.shipment_id == shipment.id, ShipmentAssignment.kind == "sensor")


def free_sensors() -> SelectOfScalar[Sensor]:
    """A query for the sensors on no planned or travelling shipment (those that can be assigned)."""
    busy = select(ShipmentAssignment.device_id).join(
        Shipment, col(Shipment.id) == ShipmentAssignment.shipment_id).where(*_open_sensor_assignment())
    return select(Sensor).where(col(Sensor.id).not_in(busy)).order_by(col(Sensor.id))


def active_for_sensor(session: Session, sensor_id: str) -> Shipment | None:
    """The planned or travelling shipment a sensor is on now, if any."""
    return session.exec(select(Shipment).join(
        ShipmentAssignment, col(ShipmentAssignment.shipment_id) == Shipment.id).where(
        ShipmentAssignment.device_id == sensor_id, *_open_sensor_assignment())).first()


def share(session: Session, *, shipment: Shipment, days: float, actor: str) -> tuple[ShipmentShare, str]:
    """A new share token for the shipment's record (returned once; only its SHA-256 is kept)."""
    token = new_token()
    now = now_ms()
    row = ShipmentShare(shipment_id=_id(shipment), token_hash=token_digest(token), created_by=actor, created_at=now,
                        expires_at=now + round(days * DAY_MS))
    session.add(row)
    audit.record(session, actor=actor, action="shipment.share", target_type="shipment", target_id=shipment.reference,
                 after={"expires_at": row.expires_at})
    return row, token


def shared(session: Session, token: str, *, now: int | None = None) -> Shipment | None:
    """The shipment a share token opens, if the token is known, not revoked and not expired."""
    if not token or len(token) > 100:
        return None
    row = session.exec(select(ShipmentShare).where(ShipmentShare.token_hash == token_digest(token))).first()
    if row is None or row.revoked or row.expires_at <= (now if now is not None else now_ms()):
        return None
    return session.get(Shipment, row.shipment_id)


def revoke_shares(session: Session, *, shipment: Shipment, actor: str) -> int:
    """Revoke every share link of the shipment; how many were live."""
    rows = session.exec(select(ShipmentShare).where(ShipmentShare.shipment_id == shipment.id,
                                                    ShipmentShare.revoked == False)).all()  # noqa: E712
    for row in rows:
        row.revoked = True
        session.add(row)
    audit.record(session, actor=actor, action="shipment.unshare", target_type="shipment",
                 target_id=shipment.reference, after={"revoked": len(rows)})
    return len(rows)


def arrived(session: Session) -> list[Shipment]:
    """Shipments in transit one of whose sensors or gateways is now heard at (or is) a gateway of its destination
    site: they have arrived."""
    out = []
    for shipment in session.exec(select(Shipment).where(Shipment.state == "in_transit",
                                                        col(Shipment.destination).is_not(None))).all():
        sites = set()
        for p in periods(session, shipment):
            if p.end is not None:
                continue
            if p.kind == "gateway":
                gateway = session.get(Gateway, p.device_id)
            else:
                sensor = session.get(Sensor, p.device_id)
                gateway = session.get(Gateway, sensor.gateway_id) if sensor and sensor.gateway_id else None
            if gateway is not None and gateway.site:
                sites.add(gateway.site.strip().casefold())
        if shipment.destination and shipment.destination.strip().casefold() in sites:
            out.append(shipment)
    return out
