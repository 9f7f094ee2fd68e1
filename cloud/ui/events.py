"""`GET /ui/events`: server-sent events telling the inbox that alerts changed (no event bus: the generator
polls the SQL alert history, whose id grows with every gateway event and every staff action)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Final

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from cloud.api.deps import request_token
from cloud.db.alerts import AlertHistory
from cloud.services import users

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

POLL_S: Final = 1.0
HEARTBEAT_S: Final = 15.0
RECHECK_AUTH_S: Final = 60.0
MAX_STREAM_S: Final = 600.0  # then the browser reconnects (EventSource does so by itself)
RETRY_MS: Final = 2_000


def cursor(session: Session) -> int:
    """The newest alert-history id (0 when there is none): any change to any alert moves it."""
    value = session.exec(select(func.max(AlertHistory.id))).one()
    return int(value or 0)


def _changes(engine: Engine, since: int) -> tuple[int, list[str]]:
    """(new cursor, ids of alerts opened since `since`)."""
    with Session(engine) as session:
        now = cursor(session)
        if now <= since:
            return now, []
        opened = session.exec(select(AlertHistory.alert_id).where(col(AlertHistory.id) > since,
                                                                  AlertHistory.action == "open")).all()
        return now, sorted(set(opened))


def _authorised(engine: Engine, token: str) -> bool:
    with Session(engine) as session:
        return users.user_for_token(session, token=token) is not None


def _event(name: str, data: dict[str, object]) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


@router.get("/ui/events")
async def alert_events(request: Request) -> Response:
    """`event: alerts` with {"cursor", "opened": [ids]} whenever an alert changes; `: ping` comments keep the
    connection open. `?cursor=` (or the Last-Event-ID header) resumes without missing a change."""
    engine: Engine = request.app.state.engine
    token = request_token(request)
    if token is None or not await to_thread.run_sync(_authorised, engine, token):
        return JSONResponse(status_code=401, content={"error": "not_authenticated",
                                                      "message": "log in to receive live alerts"})
    raw = request.headers.get("last-event-id") or request.query_params.get("cursor") or ""
    start = int(raw) if re.fullmatch(r"[0-9]{1,18}", raw) else None  # str.isdigit() says yes to "²"

    async def stream() -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        began = last_beat = last_auth = loop.time()
        since = start if start is not None else (await to_thread.run_sync(_changes, engine, 1 << 62))[0]
        yield f"retry: {RETRY_MS}\n\n"
        log.info("alert stream opened cursor=%d", since)
        try:
            while not await request.is_disconnected():
                now = loop.time()
                if now - began > MAX_STREAM_S:
                    return
                if now - last_auth > RECHECK_AUTH_S:
                    last_auth = now
                    if not await to_thread.run_sync(_authorised, engine, token):
                        yield _event("session", {"message": "your session has ended; log in again"})
                        return
                latest, opened = await to_thread.run_sync(_changes, engine, since)
                if latest > since:
                    since = latest
                    yield f"id: {since}\n" + _event("alerts", {"cursor": since, "opened": opened})
                    last_beat = now
                elif now - last_beat > HEARTBEAT_S:
                    last_beat = now
                    yield ": ping\n\n"
                await asyncio.sleep(POLL_S)
        finally:
            log.info("alert stream closed cursor=%d", since)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
