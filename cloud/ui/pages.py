"""Dashboard pages (HTML): login, alerts inbox, alert detail, fleet, sensor. Data come from cloud/services and
cloud/series; the buttons call the JSON API, which checks the role again."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from sqlmodel import Session

from cloud.api.deps import SessionDep
from cloud.api.errors import BadParameterError
from cloud.api.params import normalise_sensor_id
from cloud.db.alerts import WORKFLOW_STATUSES, Alert
from cloud.db.fleet import Sensor
from cloud.db.users import LANGUAGES
from cloud.i18n import N_, _
from cloud.services import alerts, fleet, shipments, users
from cloud.services.alerts import AlertFilter
from cloud.tsdb.influx import InfluxClient, InfluxError
from cloud.tsdb.series import latest_by_sensor
from cloud.ui import events, wording
from cloud.ui.render import error_page, now_ms, page_user, render, to_login
from protocol.profiles import PROFILES

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

SEVERITIES: Final = ("critical", "warning", "info")
SINCE: Final = {"1h": 3_600_000, "24h": 86_400_000, "7d": 7 * 86_400_000, "30d": 30 * 86_400_000}
SINCE_WORDS: Final = {"1h": N_("last hour"), "24h": N_("last 24 hours"), "7d": N_("last 7 days"),
                      "30d": N_("last 30 days")}
SORTS: Final = {"-started_at": N_("newest first"), "started_at": N_("oldest first"),
                "-severity": N_("most severe first"), "status": N_("open first"), "-updated_at": N_("recently updated"),
                "sensor_id": N_("by sensor"), "gateway_id": N_("by gateway")}
PAGE_SIZE: Final = 100
LATEST_WINDOW_MS: Final = 2 * 86_400_000


@dataclass(frozen=True, slots=True)
class InboxQuery:
    """The inbox filters from the query string; unknown values are dropped (and said so), never a 500."""

    status: str | None
    severity: str | None
    profile: str | None
    gateway: str | None
    site: str | None
    since: str | None
    sort: str
    offset: int
    dropped: tuple[str, ...]

    @classmethod
    def parse(cls, params: Any) -> InboxQuery:
        dropped: list[str] = []

        def pick(name: str, allowed: Any) -> str | None:
            value = params.get(name) or None
            if value is not None and value not in allowed:
                dropped.append(name)
                return None
            return value

        def text(name: str, longest: int) -> str | None:
            value = params.get(name) or None
            if value is not None and len(value) > longest:
                dropped.append(name)
                return None
            return value

        gateway, site = text("gateway", 64), text("site", 200)
        sort = pick("sort", SORTS) or "-started_at"
        raw_offset = str(params.get("offset") or "0")
        offset = int(raw_offset) if re.fullmatch(r"[0-9]{1,8}", raw_offset) else 0  # not str.isdigit(): "²"
        if offset == 0 and raw_offset != "0":
            dropped.append("offset")
        return cls(status=pick("status", WORKFLOW_STATUSES), severity=pick("severity", SEVERITIES),
                   profile=pick("profile", PROFILES), gateway=gateway, site=site, since=pick("since", SINCE), sort=sort,
                   offset=offset, dropped=tuple(dropped))

    def filters(self, *, with_status: bool = True) -> AlertFilter:
        start = now_ms() - SINCE[self.since] if self.since else None
        return AlertFilter(status=self.status if with_status else None, severity=self.severity,
                           profile=self.profile, gateway_id=self.gateway, site=self.site, start=start)

    def query(self, **changes: str | int | None) -> str:
        """This query string with some parameters changed (None removes one); a new filter starts at page 1."""
        values: dict[str, str | int | None] = {"status": self.status, "severity": self.severity,
                                               "profile": self.profile, "gateway": self.gateway, "site": self.site,
                                               "since": self.since, "sort": self.sort, "offset": None}
        values.update(changes)
        return urlencode({k: v for k, v in values.items() if v})


def _inbox_rows(session: Session, q: InboxQuery) -> tuple[list[Alert], int]:
    rows, total = alerts.list_alerts(session, filters=q.filters(), limit=PAGE_SIZE, offset=q.offset, sort=q.sort)
    return list(rows), total


@router.get("/", response_class=RedirectResponse)
def home() -> RedirectResponse:
    """The inbox is the start page."""
    return RedirectResponse("/ui/alerts", status_code=303)


_LOCAL_PAGE: Final = re.compile(r"/ui/[\x21-\x5b\x5d-\x7e]*")  # printable ASCII, no backslash, no space


def local_page(target: str) -> str:
    """`target` when it is one of the dashboard's own pages, else the inbox: no open redirect (`/\\evil`,
    `/%09/evil` and `//evil` are all read by browsers as another host)."""
    return target if _LOCAL_PAGE.fullmatch(target) else "/ui/alerts"


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, session: SessionDep) -> Response:
    """The login form; it posts to /api/v1/auth/login, which sets the session cookie."""
    target = local_page(request.query_params.get("next", ""))
    user = page_user(request, session)
    if user is not None:
        return RedirectResponse(target, status_code=303)
    return render(request, "login.html", None, next=target)


@router.post("/ui/language", response_class=RedirectResponse)
async def choose_language(request: Request, session: SessionDep) -> Response:
    """The header's language selector (a form: `language`, empty for the browser's; `next`, the page to go back
    to). Cross-site posts never get here (cloud/api/browser_guard.py checks Origin and Sec-Fetch-Site)."""
    form = parse_qs((await request.body())[:4096].decode("utf-8", "replace"))
    language = (form.get("language") or [""])[0] or None
    target = local_page((form.get("next") or [""])[0])
    return await run_in_threadpool(_set_language, request, session, language, target)  # SQL off the event loop


def _set_language(request: Request, session: Session, language: str | None, target: str) -> Response:
    user = page_user(request, session)
    if user is None:
        return RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)
    if language is not None and language not in LANGUAGES:
        return error_page(request, user, 400, _("Unknown language"), _("Pick one of the languages the menu offers."))
    users.set_language(session, user=user, language=language, actor=user.username)
    session.commit()
    log.info("language chosen user=%s language=%s", user.username, language or "browser")
    return RedirectResponse(target, status_code=303)


@router.get("/ui/alerts", response_class=HTMLResponse)
def inbox(request: Request, session: SessionDep) -> Response:
    """Alerts with filters, sorting and counts by status; new ones arrive over /ui/events."""
    user = page_user(request, session)
    if user is None:
        return to_login(request)
    q = InboxQuery.parse(request.query_params)
    rows, total = _inbox_rows(session, q)
    counts = alerts.counts_by_status(session, filters=q.filters(with_status=False))
    known = fleet.list_gateways(session)
    return render(request, "alerts.html", user, q=q, rows=rows, total=total, counts=counts,
                   gateways=[g.id for g in known], sites=sorted({g.site for g in known if g.site}),
                   profiles=list(PROFILES),
                   severities=SEVERITIES, statuses=WORKFLOW_STATUSES, since_options=SINCE_WORDS, sorts=SORTS,
                   cursor=events.cursor(session), page_size=PAGE_SIZE)


@router.get("/ui/alerts/rows", response_class=HTMLResponse)
def inbox_rows(request: Request, session: SessionDep) -> Response:
    """The inbox table's rows and counts only (the live update swaps them in)."""
    user = page_user(request, session)
    if user is None:
        return PlainTextResponse("your session has ended; log in again", status_code=401)
    q = InboxQuery.parse(request.query_params)
    rows, total = _inbox_rows(session, q)
    counts = alerts.counts_by_status(session, filters=q.filters(with_status=False))
    return render(request, "_alert_rows.html", user, q=q, rows=rows, total=total, counts=counts)


@router.get("/ui/alerts/{alert_id}", response_class=HTMLResponse)
def alert_page(alert_id: str, request: Request, session: SessionDep) -> Response:
    """One alert: what, why, the chart around it, its history and (staff) the workflow buttons."""
    user = page_user(request, session)
    if user is None:
        return to_login(request)
    alert = session.get(Alert, alert_id) if len(alert_id) <= 32 else None
    if alert is None:
        return error_page(request, user, 404, _("No such alert"), _(
            "There is no alert %(id)s. It may have been mistyped; the inbox lists every alert.") % {
                "id": repr(alert_id[:40])})
    sensor = session.get(Sensor, alert.sensor_id)
    assignees = [u.username for u in users.list_users(session) if not u.disabled and users.has_role(u, "staff")]
    history = alerts.history(session, alert_id=alert.id)
    said = [str(h.detail["reason"]) for h in history if h.detail and h.detail.get("reason")]
    return render(request, "alert.html", user, alert=alert, sensor=sensor, history=history,
                   reason=wording.reason_in_words(alert, said[-1] if said else None),
                   assignees=assignees, band=PROFILES.get(alert.profile or ""))


@router.get("/ui/fleet", response_class=HTMLResponse)
def fleet_page(request: Request, session: SessionDep) -> Response:
    """Gateways (online/offline, last seen, outbox, model) and sensors (battery, last reading)."""
    user = page_user(request, session)
    if user is None:
        return to_login(request)
    influx: InfluxClient = request.app.state.influx
    latest_error = None
    try:
        latest = latest_by_sensor(influx, since_ms=now_ms() - LATEST_WINDOW_MS)
    except InfluxError as exc:
        log.warning("fleet page without latest readings error=%s", exc)
        latest, latest_error = {}, _("The time-series database (InfluxDB) did not answer, so battery levels and "
                                     "last readings are not shown. The rest of the page is current.")
    open_by_sensor: dict[str, int] = {}
    for a in alerts.list_alerts(session, filters=AlertFilter(status="open"), limit=alerts.MAX_PAGE)[0]:
        open_by_sensor[a.sensor_id] = open_by_sensor.get(a.sensor_id, 0) + 1
    return render(request, "fleet.html", user, gateways=fleet.list_gateways(session),
                   sensors=fleet.list_sensors(session), latest=latest, latest_error=latest_error,
                   open_by_sensor=open_by_sensor, age=wording.age)


@router.get("/ui/sensors/{sensor_id}", response_class=HTMLResponse)
def sensor_page(sensor_id: str, request: Request, session: SessionDep) -> Response:
    """A sensor: zoomable chart over any range, completeness gaps, report downloads."""
    user = page_user(request, session)
    if user is None:
        return to_login(request)
    try:
        sensor = session.get(Sensor, normalise_sensor_id(sensor_id))
    except BadParameterError:
        sensor = None
    if sensor is None:
        return error_page(request, user, 404, _("No such sensor"), _(
            "No sensor %(id)s has been heard. The fleet page lists every sensor.") % {"id": repr(sensor_id[:40])})
    recent = alerts.list_alerts(session, filters=AlertFilter(sensor_id=sensor.id), limit=20)[0]
    return render(request, "sensor.html", user, sensor=sensor, band=PROFILES.get(sensor.profile or ""),
                   recent=recent, age=wording.age, travelling=shipments.active_for_sensor(session, sensor.id))
