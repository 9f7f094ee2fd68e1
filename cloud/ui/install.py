"""Adds the dashboard to the API app: the pages, the event stream, the static files and readable error pages."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles

from cloud.i18n import _
from cloud.ui import events, ops_pages, pages, shipment_pages, token_pages
from cloud.ui.render import HERE, now_ms, templates, use_language

log = logging.getLogger(__name__)


def _is_page(path: str) -> bool:
    return path in ("/", "/login") or path.startswith("/share/") or (path.startswith("/ui/")
                                                                      and not path.startswith("/ui/static/"))


async def _unexpected(request: Request, exc: Exception) -> Response:
    """A bug behind a page: a readable page (and a log line with the traceback), never a blank one."""
    log.error("page failed path=%s error=%s", request.url.path, type(exc).__name__, exc_info=exc)
    if not _is_page(request.url.path):
        return PlainTextResponse("Internal Server Error", status_code=500)  # the API's answer is unchanged
    use_language(request, None)  # the browser's language: the user is not known here
    return templates.TemplateResponse(request, "error.html", {
        "user": None, "can_act": False, "can_ops": False, "now": now_ms(), "title": _("Something went wrong"),
        "message": _("The server hit an error while building this page; it has been logged. Try again, or go back "
                     "to the alerts.")}, status_code=500)


def install_ui(app: FastAPI) -> None:
    """Add the dashboard to the API app: staff, ops and API-token pages, /ui/events, /ui/static, and readable error
    pages."""
    app.include_router(pages.router)
    app.include_router(ops_pages.router)
    app.include_router(shipment_pages.router)
    app.include_router(token_pages.router)
    app.include_router(events.router)
    app.mount("/ui/static", StaticFiles(directory=str(HERE / "static")), name="ui-static")
    app.add_exception_handler(Exception, _unexpected)
