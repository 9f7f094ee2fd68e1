"""`/api/v1/training-jobs`: queue a retrain (ops), follow its progress and log; the worker's claim, progress and
dataset calls (cloud/training/worker.py) use the same API with an ops token."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, Field

from cloud.api.deps import Ops, RowId, SessionDep, Viewer
from cloud.db.training import TrainingJob, TrainingJobCreate, TrainingJobPublic, TrainingJobUpdate
from cloud.services import training

router = APIRouter(prefix="/api/v1/training-jobs", tags=["training"])


class Claim(BaseModel):
    """A worker asking for work."""

    worker: str = Field(min_length=1, max_length=100)


def _job(session: SessionDep, job_id: int) -> TrainingJob:
    job = session.get(TrainingJob, job_id)
    if job is None:
        raise HTTPException(status_code=404, detail="no such training job")
    return job


@router.post("", response_model=TrainingJobPublic, status_code=201, summary="Queue a retrain of a profile (ops)")
def create(body: TrainingJobCreate, user: Ops, session: SessionDep) -> TrainingJobPublic:
    """A training worker picks it up; nothing is trained in the request."""
    job = training.create(session, data=body, actor=user.username)
    session.commit()
    return TrainingJobPublic.model_validate(job)


@router.get("", response_model=list[TrainingJobPublic], summary="Training jobs, newest first")
def list_jobs(user: Viewer, session: SessionDep, state: Annotated[str | None, Query(max_length=16)] = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[TrainingJobPublic]:
    """Each job's state, stage, progress, log and result."""
    return [TrainingJobPublic.model_validate(j) for j in training.list_jobs(session, state=state, limit=limit)]


@router.get("/{job_id}", response_model=TrainingJobPublic, summary="One training job with its log")
def show(job_id: RowId, user: Viewer, session: SessionDep) -> TrainingJobPublic:
    """Progress, log and (when done) the registered model and its evaluation."""
    return TrainingJobPublic.model_validate(_job(session, job_id))


@router.post("/claim", response_model=TrainingJobPublic, summary="Worker: take the oldest queued job (ops)",
             responses={204: {"description": "nothing queued"}})
def claim(body: Claim, user: Ops, session: SessionDep) -> Any:
    """The job is `running` for this worker from now on."""
    job = training.claim(session, worker=body.worker)
    session.commit()
    if job is None:
        return Response(status_code=204)
    return TrainingJobPublic.model_validate(job)


@router.post("/{job_id}/progress", response_model=TrainingJobPublic, summary="Worker: report progress (ops)")
def progress(job_id: RowId, body: TrainingJobUpdate, user: Ops, session: SessionDep) -> TrainingJobPublic:
    """Stage, fraction done, log lines; at the end the state, the model registered and the evaluation."""
    job = training.update(session, job=_job(session, job_id), data=body, actor=user.username)
    session.commit()
    return TrainingJobPublic.model_validate(job)


@router.get("/{job_id}/dataset", summary="Worker: the job's sensors and staff labels (ops)")
def dataset(job_id: RowId, user: Ops, session: SessionDep) -> dict[str, Any]:
    """Sensors of the profile and resolved alerts (resolution code, start, end) in the job's period."""
    return training.dataset(session, job=_job(session, job_id))
