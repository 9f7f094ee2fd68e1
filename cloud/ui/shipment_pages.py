"""Dashboard pages for logistics staff: shipments (list, create, one shipment's journey and record), the receiver's
read-only share page (no account), and the site board (every cold space of a site as a live tile)."""

from __future__ import annotations

import logging
from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from sqlmodel import Session

from cloud.api.deps import SessionDep
from cloud.api.routes.shipments import RECORD_KEY_PATH, desk, record_response
from cloud.db.shipments import SHIPMENT_STATES, Shipment
from cloud.i18n import N_
from cloud.services import shipment_record, shipments
from cloud.services.errors import DomainError
from cloud.services.site_board import board, site_names
from cloud.tsdb.influx import InfluxClient, InfluxError
from cloud.ui.journey_chart import journey_chart
from cloud.ui.render import error_page, page_user, render, templates, to_login
from protocol.profiles import PROFILES

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

SHARE_FORMATS: Final = {"record.pdf": "pdf", "record.csv": "csv", "record.pdf.sig": "sig"}
# Marked with N_() and translated with _() where shown (the reader's language is known only then).
TRANSITION_WORDS: Final = {"in_transit": N_("Start the journey"), "delivered": N_("Mark delivered"),
                           "cancelled": N_("Cancel")}
TREND_WORDS: Final = {"rising": N_("rising"), "falling": N_("falling"), "steady": N_("steady"),
                      "unknown": N_("no trend yet")}

templates.env.globals.update(transition_words=TRANSITION_WORDS, trend_words=TREND_WORDS)


def duration(seconds: int) -> str:
    """`2 h 05 min`, `12 min`."""
    hours, rest = divmod(seconds, 3600)
    return f"{hours} h {rest // 60:02d} min" if hours else f"{rest // 60} min"


@router.get("/ui/shipments", response_class=HTMLResponse)
def shipments_page(request: Request, session: SessionDep) -> Response:
    """Shipments by state, newest first; staff create one here."""
    user = page_user(request, session)
    if user is None:
        return to_login(request)
    state = request.query_params.get("state") or None
    state = state if state in SHIPMENT_STATES else None
    rows = shipments.list_shipments(session, state=state)
    devices = {s.id: shipments.periods(session, s, kind="sensor") for s in rows}
    return render(request, "shipments.html", user, rows=rows, devices=devices, state=state, states=SHIPMENT_STATES,
                  profiles=list(PROFILES), sites=site_names(session))


def _record_or_none(request: Request, session: Session, shipment: Shipment) -> tuple[
        shipment_record.ShipmentRecord | None, str | None]:
    influx: InfluxClient = request.app.state.influx
    try:
        return shipment_record.build(session, influx, shipment), None
    except InfluxError as exc:
        log.warning("shipment page without readings shipment=%s error=%s", shipment.reference, exc)
        return None, ("The time-series database (InfluxDB) did not answer, so the chart and the numbers are not "
                      "shown. The rest of the page is current.")


@router.get("/ui/shipments/{reference}", response_class=HTMLResponse)
def shipment_page(reference: str, request: Request, session: SessionDep) -> Response:
    """One shipment: route, state, devices, the journey's chart, numbers, excursions, gaps, alerts, record."""
    user = page_user(request, session)
    if user is None:
        return to_login(request)
    try:
        shipment = shipments.get(session, reference)
    except DomainError:
        return error_page(request, user, 404, "No such shipment", f"There is no shipment {reference[:64]!r}. The "
                          "shipments page lists them all.")
    record, record_error = _record_or_none(request, session, shipment)
    sensors = {s.id: s for s in session.exec(shipments.sensor_rows(shipment)).all()} if shipment.id else {}
    return render(request, "shipment.html", user, shipment=shipment, record=record, record_error=record_error,
                  chart=journey_chart(record) if record else None, band=shipments.band(shipment),
                  devices=shipments.assignments(session, shipment), sensors=sensors,
                  transitions=shipments.TRANSITIONS[shipment.state], duration=duration,
                  known_sensors=[s.id for s in session.exec(shipments.free_sensors()).all()])


@router.get("/ui/shipments/{reference}/live", response_class=HTMLResponse)
def shipment_live(reference: str, request: Request, session: SessionDep) -> Response:
    """The journey and record part of a travelling shipment's page (swapped in every few seconds)."""
    user = page_user(request, session)
    if user is None:
        return PlainTextResponse("your session has ended; log in again", status_code=401)
    try:
        shipment = shipments.get(session, reference)
    except DomainError:
        return PlainTextResponse("no such shipment", status_code=404)
    record, record_error = _record_or_none(request, session, shipment)
    return render(request, "_shipment_live.html", user, shipment=shipment, record=record, record_error=record_error,
                  chart=journey_chart(record) if record else None, band=shipments.band(shipment), duration=duration)


@router.get("/share/{token}", response_class=HTMLResponse)
def shared_page(token: str, request: Request, session: SessionDep) -> Response:
    """The receiver's read-only record: no account, only the token (expiring, revocable)."""
    shipment = shipments.shared(session, token)
    if shipment is None:
        return error_page(request, None, 404, "This link does not work",
                          "The link is unknown, has expired or was revoked. Ask the sender for a new one.")
    record, record_error = _record_or_none(request, session, shipment)
    return render(request, "shipment_shared.html", None, shipment=shipment, record=record,
                  record_error=record_error, chart=journey_chart(record) if record else None,
                  band=shipments.band(shipment), token=token, key_url=RECORD_KEY_PATH, duration=duration)


@router.get("/share/{token}/{name}")
def shared_file(token: str, name: str, request: Request, session: SessionDep) -> Response:
    """The record's PDF, CSV or signature through a share link."""
    shipment = shipments.shared(session, token)
    if shipment is None or name not in SHARE_FORMATS:
        return PlainTextResponse("unknown, expired or revoked link", status_code=404)
    return record_response(session, request.app.state.influx, desk(request), shipment, SHARE_FORMATS[name])


@router.get("/ui/sites", response_class=HTMLResponse)
def sites_page(request: Request, session: SessionDep) -> Response:
    """Every site with its cold spaces, one link each to the site's board."""
    user = page_user(request, session)
    if user is None:
        return to_login(request)
    return render(request, "sites.html", user, sites=site_names(session))


def _board(request: Request, session: Session, site: str) -> tuple[list[object], str | None]:
    influx: InfluxClient = request.app.state.influx
    try:
        return list(board(session, influx, site=site)), None
    except InfluxError as exc:
        log.warning("site board without readings site=%s error=%s", site, exc)
        return list(board(session, None, site=site)), "InfluxDB did not answer: temperatures are not shown."


@router.get("/ui/sites/{site}", response_class=HTMLResponse)
def site_page(site: str, request: Request, session: SessionDep) -> Response:
    """The site board: a tile per cold space, refreshing itself (a depot's wall display)."""
    user = page_user(request, session)
    if user is None:
        return to_login(request)
    if site not in site_names(session):
        return error_page(request, user, 404, "No such site", f"No gateway is placed at {site[:64]!r}. The sites "
                          "page lists every site.")
    tiles, tiles_error = _board(request, session, site)
    return render(request, "site.html", user, site=site, tiles=tiles, tiles_error=tiles_error)


@router.get("/ui/sites/{site}/tiles", response_class=HTMLResponse)
def site_tiles(site: str, request: Request, session: SessionDep) -> Response:
    """The board's tiles only (the page swaps them in every few seconds)."""
    user = page_user(request, session)
    if user is None:
        return PlainTextResponse("your session has ended; log in again", status_code=401)
    tiles, tiles_error = _board(request, session, site)
    return render(request, "_site_tiles.html", user, site=site, tiles=tiles, tiles_error=tiles_error)

