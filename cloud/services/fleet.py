"""Gateways and sensors: provisioning, registration on first sight, status/reported, assignments."""

from __future__ import annotations

import functools
import secrets
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

import msgspec
from sqlalchemy import BigInteger, String, Table, and_, bindparam, case, insert, not_, or_, update
from sqlalchemy import select as core_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert, Update
from sqlmodel import Session, col, select

from cloud.db.alerts import Alert
from cloud.db.bulk import execute_many
from cloud.db.fleet import Gateway, GatewayCreate, GatewayUpdate, Sensor, SensorUpdate
from cloud.db.rollouts import GatewayShadow
from cloud.security import mosquitto_hash
from cloud.services import audit
from cloud.services.clock import now_ms
from cloud.services.errors import DomainError
from protocol.messages import Reported, Status

_GATEWAY_FIELDS: Final = ("name", "site", "provisioned", "revoked")
_SENSOR_FIELDS: Final = ("profile", "asset", "shipment", "label")
IN_CHUNK: Final = 5000  # ids per `IN (...)` (SQLite's default limit is 32,766 bound parameters)
_HEALTH_FIELDS: Final = ("uptime_s", "cpu_pct", "rss_mb", "frames_received", "frames_rejected", "readings_dropped",
                         "inference_p50_ms", "inference_p99_ms")


class FleetError(DomainError):
    """A fleet change that cannot be made."""


def provision_gateway(session: Session, *, data: GatewayCreate, actor: str,
                      password: str | None = None) -> tuple[Gateway, str]:
    """Create (or take over a self-registered) gateway with fresh MQTT credentials; returns (gateway, password).

    The password is returned once; only mosquitto's hash of it is stored. `password`: one already in the broker's
    file (a local stack whose broker was started with its gateways), instead of a new one.
    """
    password = password or secrets.token_urlsafe(24)
    gateway = session.get(Gateway, data.id)
    before = None if gateway is None else audit.snapshot(gateway, _GATEWAY_FIELDS)
    if gateway is not None and gateway.provisioned and not gateway.revoked:
        raise FleetError(f"gateway {data.id!r} is already provisioned; rotate its credentials instead",
                         kind="conflict")
    if gateway is None:
        gateway = Gateway(id=data.id, created_at=now_ms())
    gateway.name, gateway.site = data.name, data.site
    gateway.provisioned, gateway.revoked, gateway.registered_by = True, False, actor
    gateway.mqtt_password_hash = mosquitto_hash(password)
    session.add(gateway)
    audit.record(session, actor=actor, action="gateway.provision", target_type="gateway", target_id=gateway.id,
                 before=before, after=audit.snapshot(gateway, _GATEWAY_FIELDS) | {"credentials": "issued"})
    return gateway, password


def rotate_credentials(session: Session, *, gateway: Gateway, actor: str) -> str:
    """New MQTT password for a gateway (returned once)."""
    password = secrets.token_urlsafe(24)
    gateway.mqtt_password_hash = mosquitto_hash(password)
    gateway.provisioned, gateway.revoked = True, False
    session.add(gateway)
    audit.record(session, actor=actor, action="gateway.rotate_credentials", target_type="gateway",
                 target_id=gateway.id, after={"credentials": "issued"})
    return password


def revoke_gateway(session: Session, *, gateway: Gateway, actor: str) -> None:
    """Remove a gateway's broker account (its rows and history stay)."""
    before = audit.snapshot(gateway, _GATEWAY_FIELDS)
    gateway.revoked, gateway.mqtt_password_hash = True, None
    session.add(gateway)
    audit.record(session, actor=actor, action="gateway.revoke", target_type="gateway", target_id=gateway.id,
                 before=before, after=audit.snapshot(gateway, _GATEWAY_FIELDS))


def update_gateway(session: Session, *, gateway: Gateway, data: GatewayUpdate, actor: str) -> Gateway:
    """Rename / move a gateway (audited)."""
    before = audit.snapshot(gateway, _GATEWAY_FIELDS)
    for name, value in data.model_dump(exclude_unset=True).items():
        setattr(gateway, name, value)
    session.add(gateway)
    audit.record(session, actor=actor, action="gateway.update", target_type="gateway", target_id=gateway.id,
                 before=before, after=audit.snapshot(gateway, _GATEWAY_FIELDS))
    return gateway


def broker_accounts(session: Session) -> dict[str, str]:
    """gateway id → mosquitto hash for every provisioned, unrevoked gateway."""
    rows = session.exec(select(Gateway).where(col(Gateway.provisioned), col(Gateway.revoked).is_(False))).all()
    return {g.id: g.mqtt_password_hash for g in rows if g.mqtt_password_hash}


def ensure_gateway(session: Session, *, gateway_id: str, seen_at: int, heard_at: int | None = None) -> Gateway:
    """The gateway's row, registered (not provisioned) on first sight; `last_seen_at` (the gateway's clock) and
    `last_heard_at` (the cloud's clock, when ingest received something) move forward."""
    gateway = session.get(Gateway, gateway_id)
    if gateway is None:
        gateway = Gateway(id=gateway_id, created_at=now_ms(), registered_by="ingest")
    if gateway.last_seen_at is None or seen_at > gateway.last_seen_at:
        gateway.last_seen_at = seen_at
    if heard_at is not None and (gateway.last_heard_at is None or heard_at > gateway.last_heard_at):
        gateway.last_heard_at = heard_at
    session.add(gateway)
    return gateway


def _table(model: type[Gateway] | type[Sensor] | type[Alert]) -> Table:
    table = getattr(model, "__table__")  # noqa: B009 (SQLModel does not type it)
    assert isinstance(table, Table)
    return table


def _chunks(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(ids), IN_CHUNK):
        yield ids[start:start + IN_CHUNK]


def _insert_missing(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows whose key another writer may have inserted since we looked: on SQLite and PostgreSQL such a row
    is skipped (the caller's monotonic UPDATE then merges our values into it); elsewhere a plain INSERT, whose
    duplicate-key failure rolls the batch back to be retried."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    statement: Insert
    if dialect == "sqlite":
        statement = sqlite.insert(table).on_conflict_do_nothing(index_elements=["id"])
    elif dialect == "postgresql":
        statement = postgresql.insert(table).on_conflict_do_nothing(index_elements=["id"])
    else:
        statement = insert(table)
    session.execute(statement, rows)


def ensure_gateways(session: Session, *, seen: Mapping[str, int], heard_at: int,
                    heard: Mapping[str, int] | None = None) -> None:
    """`ensure_gateway` for many gateways at once (ingest: every gateway of a batch), in Core statements: one
    SELECT per IN_CHUNK ids, one INSERT of the new ones, one executemany UPDATE of the ones whose times move.

    The UPDATE only moves `last_seen_at`/`last_heard_at` forward in SQL itself (a CASE on the stored value), so two
    workers racing on PostgreSQL cannot move them back whichever commits last. Rows loaded in the session's
    identity map are not refreshed: call this before loading them (ingest does). `heard`: when each gateway was
    heard, where that differs from `heard_at` (a merge of batches heard at different times)."""
    heard = heard or {}
    table = _table(Gateway)
    c = table.c
    ids = sorted(seen)
    stored: dict[str, tuple[int | None, int | None]] = {}
    for chunk in _chunks(ids):
        for r in session.execute(core_select(c.id, c.last_seen_at, c.last_heard_at).where(c.id.in_(chunk))).all():
            stored[r[0]] = (r[1], r[2])
    now = now_ms()
    new = [{"id": g, "created_at": now, "registered_by": "ingest", "provisioned": False, "revoked": False,
            "last_seen_at": seen[g], "last_heard_at": heard.get(g, heard_at)} for g in ids if g not in stored]
    _insert_missing(session, table, new)
    moves = []
    for g in ids:
        heard_g = heard.get(g, heard_at)
        if g not in stored:
            moves.append({"b_id": g, "b_seen": seen[g], "b_heard": heard_g})  # inserted meanwhile by another
            continue
        last_seen, last_heard = stored[g]
        if last_seen is None or seen[g] > last_seen or last_heard is None or heard_g > last_heard:
            moves.append({"b_id": g, "b_seen": seen[g], "b_heard": heard_g})
    if not moves:
        return
    execute_many(session, _move_gateways_forward(), moves)


@functools.cache
def _move_gateways_forward() -> Update:
    """ensure_gateways' executemany UPDATE, built once (a statement built per batch costs SQLAlchemy a cache key;
    run through cloud/db/bulk.py)."""
    c = _table(Gateway).c
    b_seen, b_heard = bindparam("b_seen", type_=BigInteger), bindparam("b_heard", type_=BigInteger)
    return update(_table(Gateway)).where(c.id == bindparam("b_id", type_=String)).values(
        last_seen_at=case((or_(c.last_seen_at.is_(None), c.last_seen_at < b_seen), b_seen), else_=c.last_seen_at),
        last_heard_at=case((or_(c.last_heard_at.is_(None), c.last_heard_at < b_heard), b_heard),
                           else_=c.last_heard_at))


def supersedes(status: Status, gateway: Gateway) -> bool:
    """Whether `status` is newer than what `gateway` holds. With session ids (agents from 0.2) sessions order
    first: a later session always wins, an `offline` ends its own session whatever its `ts` (the last will was
    composed when the connection opened), and within a live session the newer `ts` wins. Without, `ts` alone."""
    stored = gateway.status_session
    if status.session is None or stored is None:
        return gateway.status_ts is None or status.ts >= gateway.status_ts
    if status.session != stored:
        return status.session > stored
    if gateway.status == "offline":
        return False  # that session has ended
    return status.state == "offline" or gateway.status_ts is None or status.ts >= gateway.status_ts


def apply_status(session: Session, *, status: Status) -> None:
    """Store a gateway's retained status (see `supersedes`; an older one is ignored)."""
    gateway = ensure_gateway(session, gateway_id=status.gateway, seen_at=status.ts)
    if not supersedes(status, gateway):
        return
    # an offline will carries its connection's opening time; the cloud's clock says when it learnt of the end
    ts = max(status.ts, now_ms()) if status.state == "offline" and status.session is not None else status.ts
    gateway.status, gateway.status_ts, gateway.status_session = status.state, ts, status.session
    if status.state == "online":
        gateway.agent_version = status.agent_version or gateway.agent_version
        gateway.model_version = status.model_version or gateway.model_version
        if status.outbox_depth is not None:
            gateway.outbox_depth = status.outbox_depth
        health = {name: getattr(status, name) for name in _HEALTH_FIELDS if getattr(status, name) is not None}
        gateway.health = health or gateway.health


def apply_reported(session: Session, *, reported: Reported) -> None:
    """Store what the gateway applied of its desired state (older than the stored one: ignored)."""
    gateway = ensure_gateway(session, gateway_id=reported.gateway, seen_at=reported.ts)
    if gateway.reported_ts is not None and reported.ts < gateway.reported_ts:
        return
    gateway.reported_ts, gateway.reported_desired_version = reported.ts, reported.desired_version
    gateway.reported_result, gateway.reported_error = reported.result, reported.error
    gateway.reported_model_version = reported.model_version
    if reported.shadow is not None:  # the shadow comparison, for rollouts (cloud/services/rollouts.py)
        shadow = session.get(GatewayShadow, reported.gateway) or GatewayShadow(
            gateway_id=reported.gateway, desired_version=reported.desired_version, ts=reported.ts, report={})
        shadow.desired_version, shadow.ts = reported.desired_version, reported.ts
        shadow.report = {name: getattr(reported.shadow, name) for name in reported.shadow.__struct_fields__}
        session.add(shadow)
    if reported.result == "applied" and reported.model_version:
        gateway.model_version = reported.model_version


def list_gateways(session: Session) -> Sequence[Gateway]:
    """Every gateway, by id."""
    return session.exec(select(Gateway).order_by(Gateway.id)).all()


def observe_sensor(session: Session, *, sensor_id: str, gateway_id: str, profile: str, first_ts: int,
                   last_ts: int, existing: Sensor | None = None) -> Sensor:
    """Register a sensor on its first reading; track the gateway that hears it and its profile.

    `existing`: the row when the caller already loaded it (ingest loads a batch's sensors in one query).
    """
    sensor = existing if existing is not None else session.get(Sensor, sensor_id)
    if sensor is None:
        sensor = Sensor(id=sensor_id, first_seen_at=first_ts)
    if sensor.last_seen_at is None or last_ts >= sensor.last_seen_at:
        sensor.last_seen_at, sensor.gateway_id = last_ts, gateway_id
        if not sensor.profile_pinned:
            sensor.profile = profile
    if sensor.first_seen_at is None or first_ts < sensor.first_seen_at:
        sensor.first_seen_at = first_ts
    session.add(sensor)
    return sensor


class SensorObs(msgspec.Struct, array_like=True, gc=False):
    """What ingest saw of a sensor (a batch, or the batches of one merge): the gateway and profile of its newest
    reading, its time span."""

    gateway_id: str
    profile: str
    first_ts: int
    last_ts: int

    def absorb(self, gateway_id: str, profile: str, first_ts: int, last_ts: int) -> None:
        """More readings of the sensor: the newest reading's gateway and profile win, the time span widens."""
        if last_ts >= self.last_ts:
            self.gateway_id, self.profile, self.last_ts = gateway_id, profile, last_ts
        if first_ts < self.first_ts:
            self.first_ts = first_ts


def observe_sensors(session: Session, observed: Mapping[str, SensorObs]) -> None:
    """`observe_sensor` for many sensors at once (ingest: every sensor of a batch), in Core statements: one SELECT
    per IN_CHUNK ids, one INSERT of the new ones, one executemany UPDATE of the ones that change (a sensor whose
    stored row already says all this is not written).

    The UPDATE applies observe_sensor's rules in SQL (a CASE on the stored values: the newest reading's gateway and
    profile win, `first_seen_at` only moves back), so two workers racing on PostgreSQL agree whichever commits
    last. Rows loaded in the session's identity map are not refreshed: call this before loading them."""
    table = _table(Sensor)
    c = table.c
    ids = sorted(observed)
    stored: dict[str, tuple[str | None, str | None, bool, int | None, int | None]] = {}
    for chunk in _chunks(ids):
        for r in session.execute(core_select(c.id, c.gateway_id, c.profile, c.profile_pinned, c.first_seen_at,
                                             c.last_seen_at).where(c.id.in_(chunk))).all():
            stored[r[0]] = (r[1], r[2], bool(r[3]), r[4], r[5])
    new = [{"id": s, "gateway_id": o.gateway_id, "profile": o.profile, "profile_pinned": False,
            "first_seen_at": o.first_ts, "last_seen_at": o.last_ts}
           for s, o in ((s, observed[s]) for s in ids) if s not in stored]
    _insert_missing(session, table, new)
    _profile_orphan_alerts(session, [str(row["id"]) for row in new])
    changes = []
    for sensor_id in ids:
        o = observed[sensor_id]
        params = {"b_id": sensor_id, "b_gateway": o.gateway_id, "b_profile": o.profile, "b_first": o.first_ts,
                  "b_last": o.last_ts}
        row = stored.get(sensor_id)
        if row is None:
            changes.append(params)  # inserted meanwhile by another writer: merge
            continue
        gateway_id, profile, pinned, first_seen, last_seen = row
        if last_seen is None or o.last_ts >= last_seen:
            gateway_id, last_seen = o.gateway_id, o.last_ts
            profile = profile if pinned else o.profile
        if first_seen is None or o.first_ts < first_seen:
            first_seen = o.first_ts
        if (gateway_id, profile, first_seen, last_seen) != (row[0], row[1], row[3], row[4]):
            changes.append(params)
    if not changes:
        return
    execute_many(session, _merge_sensors(), changes)


def _profile_orphan_alerts(session: Session, sensor_ids: list[str]) -> None:
    """Give the alerts of sensors just registered the sensor's profile where they have none: an alert can be stored
    before its sensor's first readings are (a batch holding the alert merged while another worker was merging the
    journal rows with that sensor's first sighting), and suppressions and filters go by an alert's profile."""
    alerts = _table(Alert)
    sensors = _table(Sensor).c
    profile = core_select(sensors.profile).where(sensors.id == alerts.c.sensor_id).scalar_subquery()
    for chunk in _chunks(sensor_ids):
        session.execute(update(alerts).where(alerts.c.sensor_id.in_(chunk), alerts.c.profile.is_(None))
                        .values(profile=profile))


@functools.cache
def _merge_sensors() -> Update:
    """observe_sensors' executemany UPDATE, built once (a statement built per batch costs SQLAlchemy a cache key;
    run through cloud/db/bulk.py)."""
    c = _table(Sensor).c
    b_last, b_first = bindparam("b_last", type_=BigInteger), bindparam("b_first", type_=BigInteger)
    newest = or_(c.last_seen_at.is_(None), c.last_seen_at <= b_last)
    return update(_table(Sensor)).where(c.id == bindparam("b_id", type_=String)).values(
        gateway_id=case((newest, bindparam("b_gateway", type_=String)), else_=c.gateway_id),
        profile=case((and_(newest, not_(c.profile_pinned)), bindparam("b_profile", type_=String)), else_=c.profile),
        last_seen_at=case((newest, b_last), else_=c.last_seen_at),
        first_seen_at=case((or_(c.first_seen_at.is_(None), c.first_seen_at > b_first), b_first),
                           else_=c.first_seen_at))


def list_sensors(session: Session, *, gateway_id: str | None = None, profile: str | None = None,
                 shipment: str | None = None) -> Sequence[Sensor]:
    """Sensors, optionally by gateway / profile / shipment."""
    query = select(Sensor)
    if gateway_id is not None:
        query = query.where(Sensor.gateway_id == gateway_id)
    if profile is not None:
        query = query.where(Sensor.profile == profile)
    if shipment is not None:
        query = query.where(Sensor.shipment == shipment)
    return session.exec(query.order_by(Sensor.id)).all()


def update_sensor(session: Session, *, sensor: Sensor, data: SensorUpdate, actor: str) -> Sensor:
    """Assign a sensor to an asset/shipment or pin its profile (audited)."""
    before = audit.snapshot(sensor, _SENSOR_FIELDS)
    changes = data.model_dump(exclude_unset=True)
    for name, value in changes.items():
        setattr(sensor, name, value)
    if "profile" in changes:
        sensor.profile_pinned = changes["profile"] is not None
    session.add(sensor)
    audit.record(session, actor=actor, action="sensor.update", target_type="sensor", target_id=sensor.id,
                 before=before, after=audit.snapshot(sensor, _SENSOR_FIELDS))
    return sensor
