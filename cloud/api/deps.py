"""Typed FastAPI dependencies: settings, InfluxDB client, SQL session, and the authenticated user by role."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Path, Query, Request
from sqlalchemy.engine import Engine
from sqlmodel import Session

from cloud.api.metrics import ApiMetrics
from cloud.config import Settings
from cloud.db.engine import read_mostly
from cloud.db.users import User
from cloud.services import users
from cloud.tsdb.influx import InfluxClient

SESSION_COOKIE = "coldwatch_session"


def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


def get_influx(request: Request) -> InfluxClient:
    """The app's InfluxDB client."""
    influx: InfluxClient = request.app.state.influx
    return influx


def get_metrics(request: Request) -> ApiMetrics:
    """The app's Prometheus metrics."""
    metrics: ApiMetrics = request.app.state.metrics
    return metrics


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A SQL session per request; routes commit their own changes. Async on purpose, though routes are sync: its
    teardown (closing the session, ending its transaction) then runs on the event loop. A sync dependency's teardown
    waits for a worker thread, and when every worker thread waits on SQLite's lock, which an unclosed writing session
    holds (its transactions begin IMMEDIATE; GET and HEAD ones DEFERRED, below), nothing moves until the busy timeout
    (200 gateways downloading a model at once stalled 30 s: docs/decisions.md)."""
    engine: Engine = request.app.state.engine
    if request.method in ("GET", "HEAD"):
        engine = read_mostly(engine)  # SQLite: read a snapshot, never queue behind a writer (cloud/db/engine.py)
    with Session(engine, expire_on_commit=False) as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
InfluxDep = Annotated[InfluxClient, Depends(get_influx)]
MetricsDep = Annotated[ApiMetrics, Depends(get_metrics)]
SessionDep = Annotated[Session, Depends(get_session)]

# Integers that reach SQL are bounded: SQLite refuses anything past 2**63 - 1 with an OverflowError (a 500).
MAX_ROW_ID = 2**62
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="row id")]
Offset = Annotated[int, Query(ge=0, le=10_000_000, description="rows to skip")]


def request_token(request: Request) -> str | None:
    """The bearer token (`Authorization: Bearer …`) or else the session cookie."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.cookies.get(SESSION_COOKIE) or None


def get_current_user(request: Request, session: SessionDep) -> User:
    """The authenticated user, or 401."""
    token = request_token(request)
    user = users.user_for_token(session, token=token) if token else None
    if user is None:
        raise HTTPException(status_code=401, detail="not authenticated",
                            headers={"WWW-Authenticate": "Bearer"})
    request.state.user = user.username
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def require_role(minimum: str) -> Callable[..., Any]:
    """A dependency returning the user when their role is at least `minimum`, else 403."""

    def dependency(user: CurrentUser) -> User:
        if not users.has_role(user, minimum):
            raise HTTPException(status_code=403, detail=f"requires role {minimum} or above")
        return user

    return dependency


def readings_reader(request: Request, session: SessionDep) -> User | None:
    """Viewer or above; anonymous too when COLDWATCH_API_PUBLIC_READINGS is true (off by default)."""
    settings: Settings = request.app.state.settings
    if settings.api_public_readings and request_token(request) is None:
        return None
    user: User = require_role("viewer")(get_current_user(request, session))
    return user


Viewer = Annotated[User, Depends(require_role("viewer"))]
ReadingsReader = Annotated[User | None, Depends(readings_reader)]
Staff = Annotated[User, Depends(require_role("staff"))]
Ops = Annotated[User, Depends(require_role("ops"))]
Admin = Annotated[User, Depends(require_role("admin"))]
