"""`/api/v1/gateways`, `/api/v1/sensors`, `/api/v1/gaps`: the fleet, provisioning (ops), assignments (staff)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from cloud.api.deps import Ops, SessionDep, SettingsDep, Staff, Viewer
from cloud.api.params import normalise_sensor_id, parse_time
from cloud.broker import BrokerAccounts, BrokerSyncError
from cloud.config import Settings
from cloud.db.fleet import Gateway, GatewayCreate, GatewayPublic, GatewayUpdate, Sensor, SensorPublic, SensorUpdate
from cloud.db.ingest import IngestGapPublic
from cloud.services import completeness, fleet

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", tags=["fleet"])


class Credentials(BaseModel):
    """MQTT credentials, shown once: the broker user name is the gateway id."""

    gateway: GatewayPublic
    mqtt_username: str
    mqtt_password: str
    broker_reloaded: bool


def _sync_broker(session: SessionDep, settings: Settings, revoked: set[str] | None = None) -> bool:
    """Rewrite mosquitto's password file from SQL and SIGHUP it; False when no broker file is configured."""
    if settings.mosquitto_passwd_file is None:
        log.warning("broker accounts not synced: COLDWATCH_MOSQUITTO_PASSWD_FILE is not set")
        return False
    broker = BrokerAccounts(passwd_file=Path(settings.mosquitto_passwd_file),
                            pid_file=Path(settings.mosquitto_pid_file) if settings.mosquitto_pid_file else None)
    try:
        broker.sync(fleet.broker_accounts(session), revoked=revoked or set())
    except BrokerSyncError as exc:
        log.error("broker accounts sync failed error=%s", exc)
        raise HTTPException(status_code=502, detail="stored, but the broker could not be updated; retry") from None
    return True


def _gateway(session: SessionDep, gateway_id: str) -> Gateway:
    gateway = session.get(Gateway, gateway_id) if len(gateway_id) <= 64 else None
    if gateway is None:
        raise HTTPException(status_code=404, detail="no such gateway")
    return gateway


@router.get("/gateways", response_model=list[GatewayPublic], summary="Gateways with status, last seen, outbox "
            "depth and model version")
def list_gateways(user: Viewer, session: SessionDep) -> list[GatewayPublic]:
    """Every gateway (provisioned or registered by ingest on first sight)."""
    return [GatewayPublic.model_validate(g) for g in fleet.list_gateways(session)]


@router.get("/gateways/{gateway_id}", response_model=GatewayPublic, summary="One gateway")
def get_gateway(gateway_id: str, user: Viewer, session: SessionDep) -> GatewayPublic:
    """A gateway's status and what it reported of its desired state."""
    return GatewayPublic.model_validate(_gateway(session, gateway_id))


@router.post("/gateways", response_model=Credentials, status_code=201, summary="Provision a gateway (ops)",
             responses={409: {"description": "already provisioned"}})
def provision(body: GatewayCreate, user: Ops, session: SessionDep, settings: SettingsDep) -> Credentials:
    """New MQTT credentials (returned once); the broker's password file is rewritten and mosquitto reloaded."""
    gateway, password = fleet.provision_gateway(session, data=body, actor=user.username)
    session.commit()
    reloaded = _sync_broker(session, settings)
    log.info("gateway provisioned gateway=%s by=%s broker_reloaded=%s", gateway.id, user.username, reloaded)
    return Credentials(gateway=GatewayPublic.model_validate(gateway), mqtt_username=gateway.id,
                       mqtt_password=password, broker_reloaded=reloaded)


@router.post("/gateways/{gateway_id}/credentials", response_model=Credentials, summary="Rotate MQTT password (ops)")
def rotate(gateway_id: str, user: Ops, session: SessionDep, settings: SettingsDep) -> Credentials:
    """A new password replaces the old one at the broker (returned once)."""
    gateway = _gateway(session, gateway_id)
    password = fleet.rotate_credentials(session, gateway=gateway, actor=user.username)
    session.commit()
    reloaded = _sync_broker(session, settings)
    log.info("gateway credentials rotated gateway=%s by=%s", gateway.id, user.username)
    return Credentials(gateway=GatewayPublic.model_validate(gateway), mqtt_username=gateway.id,
                       mqtt_password=password, broker_reloaded=reloaded)


@router.delete("/gateways/{gateway_id}/credentials", response_model=GatewayPublic, summary="Revoke (ops)")
def revoke(gateway_id: str, user: Ops, session: SessionDep, settings: SettingsDep) -> GatewayPublic:
    """Remove the gateway's broker account; its data and history stay."""
    gateway = _gateway(session, gateway_id)
    fleet.revoke_gateway(session, gateway=gateway, actor=user.username)
    session.commit()
    _sync_broker(session, settings, revoked={gateway.id})
    log.info("gateway revoked gateway=%s by=%s", gateway.id, user.username)
    return GatewayPublic.model_validate(gateway)


@router.patch("/gateways/{gateway_id}", response_model=GatewayPublic, summary="Rename / move a gateway (ops)")
def update_gateway(gateway_id: str, body: GatewayUpdate, user: Ops, session: SessionDep) -> GatewayPublic:
    """Name and site."""
    gateway = fleet.update_gateway(session, gateway=_gateway(session, gateway_id), data=body, actor=user.username)
    session.commit()
    return GatewayPublic.model_validate(gateway)


@router.get("/sensors", response_model=list[SensorPublic], summary="Sensors with profile and assignment")
def list_sensors(user: Viewer, session: SessionDep, gateway: Annotated[str | None, Query(max_length=64)] = None,
                 profile: Annotated[str | None, Query(max_length=32)] = None,
                 shipment: Annotated[str | None, Query(max_length=200)] = None) -> list[SensorPublic]:
    """Every sensor heard (registered by ingest on first reading), optionally filtered."""
    return [SensorPublic.model_validate(s) for s in fleet.list_sensors(session, gateway_id=gateway, profile=profile,
                                                                       shipment=shipment)]


def _sensor(session: SessionDep, sensor_id: str) -> Sensor:
    sensor = session.get(Sensor, normalise_sensor_id(sensor_id))
    if sensor is None:
        raise HTTPException(status_code=404, detail="no such sensor")
    return sensor


@router.get("/sensors/{sensor_id}", response_model=SensorPublic, summary="One sensor")
def get_sensor(sensor_id: str, user: Viewer, session: SessionDep) -> SensorPublic:
    """A sensor's profile and assignment."""
    return SensorPublic.model_validate(_sensor(session, sensor_id))


@router.patch("/sensors/{sensor_id}", response_model=SensorPublic, summary="Assign a sensor / set profile (staff)")
def update_sensor(sensor_id: str, body: SensorUpdate, user: Staff, session: SessionDep) -> SensorPublic:
    """Asset, shipment, label; a profile set here is kept whatever the readings say (null: follow readings)."""
    sensor = fleet.update_sensor(session, sensor=_sensor(session, sensor_id), data=body, actor=user.username)
    session.commit()
    return SensorPublic.model_validate(sensor)


@router.get("/gaps", response_model=list[IngestGapPublic], summary="Missing data ranges (completeness)")
def list_gaps(user: Viewer, session: SessionDep, gateway: Annotated[str | None, Query(max_length=64)] = None,
              sensor: Annotated[str | None, Query(max_length=17)] = None,
              kind: Annotated[str | None, Query(pattern="^(telemetry|alerts|sensor)$")] = None,
              start: str | None = None, end: str | None = None,
              limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> list[IngestGapPublic]:
    """Open gaps (seqs never received), newest first: gateway telemetry/alert batches and sensor readings."""
    rows = completeness.list_gaps(session, gateway_id=gateway,
                                  sensor_id=normalise_sensor_id(sensor) if sensor else None, kind=kind,
                                  start=parse_time(start, "start") if start else None,
                                  end=parse_time(end, "end") if end else None, limit=limit)
    return [IngestGapPublic.model_validate(g) for g in rows]
