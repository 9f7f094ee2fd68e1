"""`/api/v1/suppressions` (planned loading/defrost windows: staff create and delete, audited) and
`/api/v1/notifications` (what was sent on which channel, and what is still pending)."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, Field

from cloud.api.deps import Offset, RowId, SessionDep, Staff, Viewer
from cloud.db.notify import NotificationPublic, Suppression, SuppressionBase, SuppressionPublic
from cloud.notify import records
from cloud.services import suppressions

router = APIRouter(prefix="/api/v1", tags=["notifications"])

MAX_PAGE: Final = 500
KIND_PATTERN: Final = r"^[a-z][a-z0-9_]{0,47}$"
Ms = Annotated[int, Field(ge=0, le=4_102_444_800_000)]


class SuppressionIn(BaseModel):
    """A window [start_at, end_at) in epoch ms; at least one of profile, gateway_id, sensor_id; `kinds`
    (alert kinds such as `temp_high`) empty or absent for every kind."""

    reason: str = Field(min_length=1, max_length=500)
    start_at: Ms
    end_at: Ms
    profile: str | None = Field(default=None, min_length=1, max_length=32)
    gateway_id: str | None = Field(default=None, min_length=1, max_length=64)
    sensor_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
    kinds: list[Annotated[str, Field(pattern=KIND_PATTERN)]] | None = Field(default=None, max_length=50)


class SuppressionDetail(BaseModel):
    """A window and the alerts it kept from being notified."""

    suppression: SuppressionPublic
    suppressed_alerts: list[str]


def _window(session: SessionDep, suppression_id: int) -> Suppression:
    window = session.get(Suppression, suppression_id) if 0 < suppression_id < 2**63 else None
    if window is None:
        raise HTTPException(status_code=404, detail="no such suppression window")
    return window


@router.post("/suppressions", response_model=SuppressionPublic, status_code=201,
             summary="Create a suppression window (staff)")
def create_suppression(body: SuppressionIn, user: Staff, session: SessionDep) -> SuppressionPublic:
    """Alerts that start inside the window and match its scope are stored and marked suppressed, not notified."""
    window = suppressions.create(session, data=SuppressionBase.model_validate(body.model_dump()),
                                 actor=user.username)
    session.commit()
    return SuppressionPublic.model_validate(window)


@router.get("/suppressions", response_model=list[SuppressionPublic], summary="List suppression windows")
def list_suppressions(
    user: Viewer, session: SessionDep,
    active_at: Annotated[int | None, Query(ge=0, le=4_102_444_800_000, description="only windows covering this "
                                                                                    "instant (epoch ms)")] = None,
    include_deleted: bool = False, limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    offset: Offset = 0,
) -> list[SuppressionPublic]:
    """Newest first; deleted windows only with `include_deleted`."""
    rows = suppressions.list_windows(session, active_at=active_at, include_deleted=include_deleted, limit=limit,
                                     offset=offset)
    return [SuppressionPublic.model_validate(w) for w in rows]


@router.get("/suppressions/{suppression_id}", response_model=SuppressionDetail,
            summary="A suppression window and the alerts it suppressed")
def get_suppression(suppression_id: RowId, user: Viewer, session: SessionDep) -> SuppressionDetail:
    """The window and the ids of the alerts it kept from being notified."""
    window = _window(session, suppression_id)
    assert window.id is not None
    return SuppressionDetail(suppression=SuppressionPublic.model_validate(window),
                             suppressed_alerts=suppressions.suppressed_alert_ids(session, window_id=window.id))


@router.delete("/suppressions/{suppression_id}", status_code=204, summary="Delete a suppression window (staff)")
def delete_suppression(suppression_id: RowId, user: Staff, session: SessionDep) -> Response:
    """Alerts from now on are notified again; those it suppressed stay marked (409 if already deleted)."""
    window = _window(session, suppression_id)
    suppressions.delete(session, window=window, actor=user.username)
    session.commit()
    return Response(status_code=204)


@router.get("/notifications", response_model=list[NotificationPublic], summary="Notification deliveries")
def list_notifications(
    user: Viewer, session: SessionDep, alert: Annotated[str | None, Query(max_length=32)] = None,
    channel: Annotated[str | None, Query(max_length=32)] = None, pending: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100, offset: Offset = 0,
) -> list[NotificationPublic]:
    """Newest first: channel, kind, alerts covered, attempts, last error, sent_at (null while pending)."""
    rows = records.list_notifications(session, alert_id=alert, channel=channel, pending=pending, limit=limit,
                                      offset=offset)
    return [NotificationPublic.model_validate(n) for n in rows]
