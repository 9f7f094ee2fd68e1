"""What the API tells and asks browsers: security headers on every response, and no state-changing request that a
cookie authenticates from another site (CSRF), whatever the route's body looks like."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final
from urllib.parse import urlsplit

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

log = logging.getLogger(__name__)

SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
# The dashboard loads only its own scripts (no inline ones); a few templates set inline styles. /docs and /redoc
# (FastAPI's pages) load their assets from a CDN and get no CSP.
CSP: Final = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
              "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
HSTS: Final = "max-age=31536000; includeSubDomains"
OPENAPI_PAGES: Final = ("/docs", "/redoc")


def cross_site(request: Request) -> str | None:
    """Why a state-changing request must be refused (None: it may go on). Only requests a browser authenticates by
    itself, with the session cookie, can be forged from another site: a bearer token is never sent by the browser
    on its own. A browser says where a request comes from in `Origin` (and `Sec-Fetch-Site`); it must be this
    host."""
    if request.method in SAFE_METHODS or request.headers.get("authorization"):
        return None
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return f"Sec-Fetch-Site {site}"
    origin = request.headers.get("origin")
    if origin is None:
        return None  # not a browser, or an old one that also sends no Sec-Fetch-Site
    host = request.headers.get("host", "")
    if origin == "null" or urlsplit(origin).netloc.lower() != host.lower():
        return f"Origin {origin[:100]} is not {host[:100]}"
    return None


def install_browser_guard(app: FastAPI, *, hsts: bool) -> None:
    """The middleware: refuse cross-site state changes (403, logged as a security event) and add the headers;
    `hsts` when the API is served over HTTPS (the cookie's Secure flag says so)."""

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        why = cross_site(request)
        if why is not None:
            log.warning("security: cross-site request refused method=%s path=%s reason=%s", request.method,
                        request.url.path, why)
            response: Response = JSONResponse(status_code=403, content={
                "error": "cross_site", "message": "a state-changing request must come from this site's own pages"})
        else:
            response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if not request.url.path.startswith(OPENAPI_PAGES):
            response.headers.setdefault("Content-Security-Policy", CSP)
        if hsts:
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        return response
