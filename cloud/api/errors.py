"""API error bodies: every refusal says which parameter and why, is counted by reason and logged."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from cloud.api.metrics import ApiMetrics
from cloud.services.errors import DomainError, Kind
from cloud.tsdb.influx import InfluxRejected, InfluxUnavailable

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    """Every refusal's body: a machine-readable reason, the parameter at fault (when one is) and a sentence."""

    error: str
    parameter: str | None = None
    message: str


# Declared for every operation instead of FastAPI's HTTPValidationError, which this API never sends.
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    422: {"model": ErrorBody, "description": "a parameter that cannot be used: which one, and why"},
}
# A service's refusal (`cloud.services.errors.DomainError`) by kind: the one place a kind becomes a status.
DOMAIN_STATUS: dict[Kind, int] = {"invalid": 422, "conflict": 409, "not_found": 404}


class BadParameterError(Exception):
    """A request parameter that cannot be used; becomes a 422 naming `parameter`."""

    def __init__(self, parameter: str, reason: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.reason = reason
        self.message = f"{parameter}: {message}"


def _metrics(request: Request) -> ApiMetrics:
    metrics: ApiMetrics = request.app.state.metrics
    return metrics


def _rejected(request: Request, status: int, reason: str, parameter: str | None, message: str) -> JSONResponse:
    _metrics(request).rejected.labels(reason=reason).inc()
    log.warning("request rejected reason=%s parameter=%s path=%s detail=%s", reason, parameter,
                request.url.path, message)
    return JSONResponse(status_code=status, content=ErrorBody(error=reason, parameter=parameter,
                                                              message=message).model_dump())


async def _bad_parameter(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BadParameterError)
    return _rejected(request, 422, exc.reason, exc.parameter, exc.message)


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": ("request",), "msg": "invalid"}
    parameter = str(first["loc"][-1])
    return _rejected(request, 422, "validation", parameter, f"{parameter}: {first['msg']}")


async def _http_error(request: Request, exc: Exception) -> Response:
    """A route's own 422 (a body field the service refused) gets the same body as every other 422; the other
    statuses keep FastAPI's `{"detail": ...}`."""
    assert isinstance(exc, HTTPException)
    if exc.status_code != 422:
        return await http_exception_handler(request, exc)
    detail = exc.detail
    if isinstance(detail, dict):
        return _rejected(request, 422, str(detail.get("error", "invalid")), detail.get("parameter"),
                         str(detail.get("message", "")))
    return _rejected(request, 422, "invalid", None, str(detail))


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    """A service's refusal: its kind's status, its reason and message in the common body; counted and logged."""
    assert isinstance(exc, DomainError)
    return _rejected(request, DOMAIN_STATUS[exc.kind], exc.reason, None, exc.message)


async def _influx_unavailable(request: Request, exc: Exception) -> JSONResponse:
    _metrics(request).influx_unavailable.inc()
    log.warning("influx unavailable path=%s error=%s", request.url.path, exc)
    return JSONResponse(status_code=503, content={
        "error": "influx_unavailable",
        "message": "the time-series database (InfluxDB) is unavailable; try again shortly",
    })


async def _influx_rejected(request: Request, exc: Exception) -> JSONResponse:
    log.error("influx refused a query path=%s error=%s", request.url.path, exc)
    return JSONResponse(status_code=502, content={  # its text stays in the log: it may describe the schema
        "error": "influx_rejected", "message": "the time-series database refused the query (the reason is logged)",
    })


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn exceptions into the JSON bodies above."""
    app.add_exception_handler(BadParameterError, _bad_parameter)
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(InfluxUnavailable, _influx_unavailable)
    app.add_exception_handler(InfluxRejected, _influx_rejected)
