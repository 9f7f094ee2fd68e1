"""API error bodies: every refusal says which parameter and why, is counted by reason and logged."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from cloud.api.metrics import ApiMetrics
from cloud.influx import InfluxRejected, InfluxUnavailable

log = logging.getLogger(__name__)


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
    return JSONResponse(status_code=status, content={"error": reason, "parameter": parameter, "message": message})


async def _bad_parameter(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BadParameterError)
    return _rejected(request, 422, exc.reason, exc.parameter, exc.message)


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": ("request",), "msg": "invalid"}
    parameter = str(first["loc"][-1])
    return _rejected(request, 422, "validation", parameter, f"{parameter}: {first['msg']}")


async def _influx_unavailable(request: Request, exc: Exception) -> JSONResponse:
    _metrics(request).influx_unavailable.inc()
    log.warning("influx unavailable path=%s error=%s", request.url.path, exc)
    return JSONResponse(status_code=503, content={
        "error": "influx_unavailable",
        "message": "the time-series database (InfluxDB) is unavailable; try again shortly",
    })


async def _influx_rejected(request: Request, exc: Exception) -> JSONResponse:
    log.error("influx refused a query path=%s error=%s", request.url.path, exc)
    return JSONResponse(status_code=502, content={
        "error": "influx_rejected", "message": f"the time-series database refused the query: {exc}",
    })


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn exceptions into the JSON bodies above."""
    app.add_exception_handler(BadParameterError, _bad_parameter)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(InfluxUnavailable, _influx_unavailable)
    app.add_exception_handler(InfluxRejected, _influx_rejected)
