"""Retraining jobs: queue, claim by a worker, progress and log, and the labelled dataset a job trains on
(the profile's sensors, and staff's resolution codes on alerts in the job's period)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel import Session, col, select

from cloud.db.alerts import Alert
from cloud.db.fleet import Sensor
from cloud.db.training import MAX_LOG_CHARS, TrainingJob, TrainingJobCreate, TrainingJobUpdate
from cloud.services import audit
from cloud.services.clock import now_ms
from cloud.services.errors import DomainError


class TrainingError(DomainError):
    """A job request or update that cannot be applied."""


def create(session: Session, *, data: TrainingJobCreate, actor: str) -> TrainingJob:
    """Queue a job for a training worker."""
    if data.end <= data.start:
        raise TrainingError("end must be after start")
    job = TrainingJob(profile=data.profile, start=data.start, end=data.end, epochs=data.epochs, seed=data.seed,
                      version=data.version, created_by=actor, created_at=now_ms())
    session.add(job)
    session.flush()
    audit.record(session, actor=actor, action="training.queue", target_type="training_job", target_id=str(job.id),
                 after={"profile": job.profile, "start": job.start, "end": job.end, "epochs": job.epochs})
    return job


def list_jobs(session: Session, *, state: str | None = None, limit: int = 50) -> Sequence[TrainingJob]:
    """Jobs, newest first."""
    query = select(TrainingJob)
    if state is not None:
        query = query.where(TrainingJob.state == state)
    return session.exec(query.order_by(col(TrainingJob.id).desc()).limit(limit)).all()


def claim(session: Session, *, worker: str) -> TrainingJob | None:
    """The oldest queued job, now `running` for `worker` (None: nothing queued)."""
    job = session.exec(select(TrainingJob).where(TrainingJob.state == "queued").order_by(col(TrainingJob.id))
                       .limit(1).with_for_update(skip_locked=True)).first()
    if job is None:
        return None
    job.state, job.worker, job.started_at, job.stage = "running", worker, now_ms(), "claimed"
    session.add(job)
    audit.record(session, actor=worker, action="training.claim", target_type="training_job", target_id=str(job.id))
    return job


def update(session: Session, *, job: TrainingJob, data: TrainingJobUpdate, actor: str) -> TrainingJob:
    """A worker's progress: stage, fraction done, log lines; at the end, the state and the registered model."""
    if job.state in ("succeeded", "failed"):
        raise TrainingError(f"job {job.id} already {job.state}", kind="conflict")
    if data.log:
        job.log = (job.log + "".join(line.rstrip("\n")[:2000] + "\n" for line in data.log))[-MAX_LOG_CHARS:]
    for name in ("stage", "progress", "model_stem", "error", "result"):
        value = getattr(data, name)
        if value is not None:
            setattr(job, name, value)
    if data.state is not None and data.state != job.state:
        job.state = data.state
        if data.state in ("succeeded", "failed"):
            job.finished_at = now_ms()
            audit.record(session, actor=actor, action=f"training.{data.state}", target_type="training_job",
                         target_id=str(job.id), after={"model": job.model_stem, "error": job.error})
    session.add(job)
    return job


def dataset(session: Session, *, job: TrainingJob) -> dict[str, Any]:
    """The job's sensors (those of its profile) and labels: resolved alerts of those sensors in the period."""
    sensors = list(session.exec(select(Sensor.id).where(Sensor.profile == job.profile).order_by(Sensor.id)).all())
    alerts = session.exec(select(Alert).where(col(Alert.sensor_id).in_(sensors), Alert.status == "resolved",
                                              Alert.started_at < job.end,
                                              col(Alert.ended_at).is_(None) | (col(Alert.ended_at) >= job.start))
                          .order_by(col(Alert.started_at))).all()
    labels = [{"alert": a.id, "sensor": a.sensor_id, "start": a.started_at, "end": a.ended_at or a.updated_at,
               "code": a.resolution, "kind": a.kind} for a in alerts]
    return {"job": job.id, "profile": job.profile, "start": job.start, "end": job.end, "sensors": sensors,
            "labels": labels}
