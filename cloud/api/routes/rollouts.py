"""`/api/v1/rollouts`: start a rollout (ops), follow it per gateway, promote / halt / roll back (ops)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field

from cloud.api.deps import Ops, RowId, SessionDep, Viewer
from cloud.db.rollouts import Rollout, RolloutCreate, RolloutPublic
from cloud.services import rollouts
from cloud.services.desired import DesiredPublisher

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/rollouts", tags=["rollouts"])


class RolloutAction(BaseModel):
    """Why ops step in (kept in the audit log and on the rollout)."""

    reason: str | None = Field(default=None, max_length=500)


def _publisher(request: Request) -> tuple[DesiredPublisher, str]:
    publisher: DesiredPublisher | None = request.app.state.desired_publisher
    if publisher is None:
        raise HTTPException(status_code=503, detail="desired state cannot be published: this API process has no "
                                                    "MQTT account (COLDWATCH_MQTT_PASSWORD)")
    base_url: str = request.app.state.artifact_base_url
    return publisher, base_url


def _rollout(session: SessionDep, rollout_id: int) -> Rollout:
    rollout = session.get(Rollout, rollout_id, with_for_update=True)
    if rollout is None:
        raise HTTPException(status_code=404, detail="no such rollout")
    return rollout


@router.post("", response_model=RolloutPublic, status_code=201, summary="Start a rollout (ops)")
def start(body: RolloutCreate, user: Ops, session: SessionDep, request: Request) -> RolloutPublic:
    """Canaries get the model in shadow mode now; the rest once the canary verdict promotes it (alert episodes per
    sensor-day against the current model's, or the alert budget for a first model, after `min_sensor_hours` of
    shadow scoring). A model whose manifest names a `min_agent_version` is refused (422) for targets whose reported
    agent is older."""
    publisher, base_url = _publisher(request)
    rollout = rollouts.start(session, data=body, actor=user.username, publisher=publisher, base_url=base_url)
    session.commit()
    return rollouts.public(session, rollout=rollout)


@router.get("", response_model=list[RolloutPublic], summary="Rollouts, newest first, with per-gateway state")
def list_rollouts(user: Viewer, session: SessionDep,
                  state: Annotated[str | None, Query(max_length=16)] = None,
                  limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[RolloutPublic]:
    """Every rollout (optionally in one state)."""
    return [rollouts.public(session, rollout=r) for r in rollouts.list_rollouts(session, state=state, limit=limit)]


@router.get("/{rollout_id}", response_model=RolloutPublic, summary="One rollout, per gateway")
def show(rollout_id: RowId, user: Viewer, session: SessionDep) -> RolloutPublic:
    """Each target: canary or rest, its state, the version sent, what it reported, its shadow comparison."""
    rollout = session.get(Rollout, rollout_id)
    if rollout is None:
        raise HTTPException(status_code=404, detail="no such rollout")
    return rollouts.public(session, rollout=rollout)


@router.post("/{rollout_id}/promote", response_model=RolloutPublic, summary="End the canary phase now (ops)")
def promote(rollout_id: RowId, user: Ops, session: SessionDep, request: Request) -> RolloutPublic:
    """Send the model, active, to every target without waiting for the canaries' probation."""
    publisher, base_url = _publisher(request)
    rollout = _rollout(session, rollout_id)
    rollouts.promote(session, rollout=rollout, actor=user.username, publisher=publisher, base_url=base_url)
    session.commit()
    return rollouts.public(session, rollout=rollout)


@router.post("/{rollout_id}/halt", response_model=RolloutPublic, summary="Stop the rollout where it is (ops)")
def halt(rollout_id: RowId, body: RolloutAction, user: Ops, session: SessionDep, request: Request) -> RolloutPublic:
    """No further gateway is sent the model; those that have it keep it (see rollback). In the canary phase the
    canaries' shadows are ended (they go back to their previous model)."""
    rollout = _rollout(session, rollout_id)
    publisher: DesiredPublisher | None = request.app.state.desired_publisher
    if publisher is None and rollout.state == "canary":
        publisher, _ = _publisher(request)  # 503: the canaries' shadows could not be ended
    rollouts.halt(session, rollout=rollout, actor=user.username, reason=body.reason, publisher=publisher,
                  base_url=request.app.state.artifact_base_url)
    session.commit()
    return rollouts.public(session, rollout=rollout)


@router.post("/{rollout_id}/rollback", response_model=RolloutPublic, summary="Return every target to its "
             "previous model (ops)")
def rollback(rollout_id: RowId, body: RolloutAction, user: Ops, session: SessionDep, request: Request) -> RolloutPublic:
    """Publish the previous model (active) to every gateway that was sent this one."""
    publisher, base_url = _publisher(request)
    rollout = _rollout(session, rollout_id)
    rollouts.rollback(session, rollout=rollout, actor=user.username, publisher=publisher, base_url=base_url,
                      reason=body.reason)
    session.commit()
    return rollouts.public(session, rollout=rollout)
