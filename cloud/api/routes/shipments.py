"""`/api/v1/shipments`: shipments (staff create, assign devices, move them through their states), their record as
JSON, CSV or a signed PDF, share links for a receiver, and the public key records are signed with."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlmodel import Session

from cloud.api.deps import MAX_ROW_ID, InfluxDep, RowId, SessionDep, Staff, Viewer
from cloud.api.params import normalise_sensor_id
from cloud.db.alerts import AlertPublic
from cloud.db.shipments import (
    AssignmentCreate,
    AssignmentPublic,
    ShareCreate,
    ShareLink,
    Shipment,
    ShipmentCreate,
    ShipmentPublic,
    ShipmentUpdate,
)
from cloud.services import shipment_record, shipments
from cloud.services.shipment_watch import RecordDesk
from cloud.tsdb.influx import InfluxClient

router = APIRouter(prefix="/api/v1/shipments", tags=["shipments"])
RECORD_KEY_PATH = "/api/v1/shipments/record-key"
SIGNATURE_HEADER = "X-Coldwatch-Signature"


class StateChange(BaseModel):
    """The state to move to: in_transit, delivered or cancelled; `at` (epoch ms, default now) when it happened,
    e.g. the truck left an hour ago."""

    state: Literal["in_transit", "delivered", "cancelled"]
    at: int | None = Field(default=None, ge=0, le=MAX_ROW_ID)


class ShipmentDetail(BaseModel):
    """A shipment with its devices and the alerts raised while they travelled with it."""

    shipment: ShipmentPublic
    devices: list[AssignmentPublic]
    alerts: list[AlertPublic]


def desk(request: Request) -> RecordDesk:
    """The app's record desk (cloud/services/shipment_watch.py)."""
    value: RecordDesk = request.app.state.record_desk
    return value


def record_response(session: Session, influx: InfluxClient, record_desk: RecordDesk, shipment: Shipment,
                    fmt: str) -> Response:
    """The shipment's record in `fmt` (json, csv, pdf or sig): a delivered shipment's is the one kept at delivery,
    a travelling one's is made now. The PDF carries its signature in `X-Coldwatch-Signature` too."""
    name = shipment_record.file_stem(shipment)
    kept = record_desk.stored(shipment) if shipment.state == "delivered" else None
    if fmt in ("pdf", "sig"):
        if kept is not None:
            pdf, signature = kept.read_bytes(), kept.with_name(kept.name + ".sig").read_text().strip()
        else:
            pdf, signature = record_desk.render(session, influx, shipment)
        if fmt == "sig":
            return Response(signature + "\n", media_type="text/plain",
                            headers={"Content-Disposition": f'attachment; filename="{name}.pdf.sig"'})
        return Response(pdf, media_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="{name}.pdf"',
                                 SIGNATURE_HEADER: signature})
    record = shipment_record.build(session, influx, shipment)
    if fmt == "csv":
        return Response(shipment_record.record_csv(record), media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    body: dict[str, Any] = {
        "reference": shipment.reference, "state": shipment.state, "start": record.start, "end": record.end,
        "band_low_c": record.band.low_c if record.band else None,
        "band_high_c": record.band.high_c if record.band else None, "readings": record.readings,
        "missing": record.missing, "completeness_pct": record.completeness_pct, "min_c": record.min_c,
        "max_c": record.max_c, "mkt_c": record.mkt_c, "time_out_of_band_s": record.time_out_of_band_s,
        "excursions": record.excursions, "alerts": [a.id for a in record.alerts], "gateways": record.gateways,
        "sensors": [{"sensor": p.sensor, "label": p.label, "start": p.start, "end": p.end,
                     "report": asdict(p.report), "gaps": p.gaps} for p in record.sensors]}
    return JSONResponse(body)


@router.get("/record-key", summary="The public key shipment records are signed with (PEM, no login needed)",
            responses={200: {"content": {"application/x-pem-file": {}}}})
def record_key(request: Request) -> Response:
    """Ed25519, SubjectPublicKeyInfo PEM: `openssl pkeyutl -verify -pubin -inkey key.pem -rawin -in record.pdf
    -sigfile record.sig.bin` (the `.sig` file is base64: decode it first), or `coldwatch shipments verify`."""
    return Response(desk(request).key.public_pem(), media_type="application/x-pem-file")


@router.get("", response_model=list[ShipmentPublic], summary="Shipments, newest first")
def list_shipments(user: Viewer, session: SessionDep,
                   state: Annotated[str | None, Query(max_length=16)] = None) -> list[ShipmentPublic]:
    """Optionally in one state (planned, in_transit, delivered, cancelled)."""
    return [ShipmentPublic.model_validate(s) for s in shipments.list_shipments(session, state=state)]


@router.post("", response_model=ShipmentPublic, status_code=201, summary="Create a shipment (staff)")
def create_shipment(data: ShipmentCreate, user: Staff, session: SessionDep) -> ShipmentPublic:
    """A planned shipment; `temp_low_c` / `temp_high_c` override the profile's band where given."""
    shipment = shipments.create(session, data=data, actor=user.username)
    session.commit()
    return ShipmentPublic.model_validate(shipment)


@router.get("/{reference}", response_model=ShipmentDetail, summary="A shipment with its devices and alerts")
def get_shipment(reference: str, user: Viewer, session: SessionDep) -> ShipmentDetail:
    """The alerts are those that began while one of its devices travelled with it."""
    shipment = shipments.get(session, reference)
    devices = shipments.assignments(session, shipment)
    return ShipmentDetail(shipment=ShipmentPublic.model_validate(shipment),
                          devices=[AssignmentPublic.model_validate(a) for a in devices],
                          alerts=[AlertPublic.model_validate(a) for a in shipments.alerts_during(session, shipment)])


@router.patch("/{reference}", response_model=ShipmentPublic, summary="Edit a shipment (staff)")
def update_shipment(reference: str, data: ShipmentUpdate, user: Staff, session: SessionDep) -> ShipmentPublic:
    """Only the fields sent change; a delivered or cancelled shipment is final (409)."""
    shipment = shipments.update(session, shipment=shipments.get(session, reference), data=data, actor=user.username)
    session.commit()
    return ShipmentPublic.model_validate(shipment)


@router.post("/{reference}/state", response_model=ShipmentPublic, summary="Start, deliver or cancel (staff)")
def change_state(reference: str, change: StateChange, user: Staff, session: SessionDep, influx: InfluxDep,
                 request: Request) -> ShipmentPublic:
    """planned → in_transit → delivered; planned or in_transit → cancelled. Delivery ends the devices'
    assignments and keeps the signed record (it also happens on arrival at the destination site)."""
    shipment = shipments.transition(session, shipment=shipments.get(session, reference), to=change.state,
                                    actor=user.username, at=change.at)
    session.commit()
    if change.state == "delivered" and shipment.id is not None:  # made after the commit: no write lock held
        desk(request).keep(request.app.state.engine, influx, shipment.id)
        session.refresh(shipment)
    return ShipmentPublic.model_validate(shipment)


@router.post("/{reference}/devices", response_model=AssignmentPublic, status_code=201,
             summary="Put a sensor or gateway on the shipment (staff)")
def assign_device(reference: str, data: AssignmentCreate, user: Staff, session: SessionDep) -> AssignmentPublic:
    """From `start` (default: the shipment's start, or now); a device on another open shipment is refused (409).
    A sensor id may be written `AA-BB-CC-DD-EE-FF` as everywhere in the API."""
    if data.kind == "sensor":
        data.device_id = normalise_sensor_id(data.device_id)
    row = shipments.assign(session, shipment=shipments.get(session, reference), data=data, actor=user.username)
    session.commit()
    return AssignmentPublic.model_validate(row)


@router.delete("/{reference}/devices/{assignment_id}", status_code=204, summary="Take a device off (staff)")
def unassign_device(reference: str, assignment_id: RowId, user: Staff, session: SessionDep) -> Response:
    """Ends the assignment now (removes it while the shipment is still planned)."""
    shipments.unassign(session, shipment=shipments.get(session, reference), assignment_id=assignment_id,
                       actor=user.username)
    session.commit()
    return Response(status_code=204)


@router.get("/{reference}/record", summary="The shipment record: JSON, CSV, signed PDF, or the PDF's signature",
            responses={200: {"content": {"text/csv": {}, "application/pdf": {}, "text/plain": {}}}})
def get_record(reference: str, user: Viewer, session: SessionDep, influx: InfluxDep, request: Request,
               format: Annotated[Literal["json", "csv", "pdf", "sig"], Query()] = "json") -> Response:
    """Per sensor over its assignment: readings, completeness with the gaps, min/max, MKT, time out of range and
    excursions against the shipment's band; the alerts. PDF and signature: the ones kept at delivery."""
    return record_response(session, influx, desk(request), shipments.get(session, reference), format)


@router.post("/{reference}/share", response_model=ShareLink, status_code=201,
             summary="A read-only link to the record for a receiver without an account (staff)")
def share_shipment(reference: str, data: ShareCreate, user: Staff, session: SessionDep,
                   request: Request) -> ShareLink:
    """The token is shown once; the link expires after `days`."""
    row, token = shipments.share(session, shipment=shipments.get(session, reference), days=data.days,
                                 actor=user.username)
    session.commit()
    return ShareLink(url=str(request.base_url).rstrip("/") + f"/share/{token}", token=token,
                     expires_at=row.expires_at)


@router.delete("/{reference}/share", status_code=204, summary="Revoke every share link of the shipment (staff)")
def unshare_shipment(reference: str, user: Staff, session: SessionDep) -> Response:
    """Links already sent stop working at once."""
    shipments.revoke_shares(session, shipment=shipments.get(session, reference), actor=user.username)
    session.commit()
    return Response(status_code=204)
