"""Ops pages (HTML): the model registry beside the current model, rollouts with live per-gateway progress, and
retraining jobs with their progress, log and result against the quality gate. Data come from cloud/services; the
buttons call the JSON API (/api/v1/rollouts, /api/v1/training-jobs), which checks the ops role again."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from sqlmodel import Session, col, select

from cloud.api.deps import SessionDep
from cloud.db.registry import GatewayToken, ModelArtifact
from cloud.db.rollouts import ACTIVE_STATES, GatewayDesired, Rollout, RolloutCreate, RolloutPublic
from cloud.db.training import TrainingJob
from cloud.db.users import User
from cloud.i18n import _
from cloud.services import fleet, registry, rollouts, training
from cloud.ui.render import error_page, page_user, render, to_login
from protocol.profiles import PROFILES

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

FINAL_ROLLOUT: Final = ("completed", "halted", "rolled_back")
FINAL_JOB: Final = ("succeeded", "failed")
MAX_ROWS: Final = 200


@dataclass(frozen=True, slots=True)
class Current:
    """The model a profile's gateways are told to run (active desired state), and on how many gateways."""

    stem: str
    gateways: int


def current_models(session: Session) -> dict[str, Current]:
    """Per profile, the model most gateways are told to raise alerts with: their active desired model, or for a
    canary holding a candidate in shadow, the model its rollout would return it to."""
    held: dict[str, str] = {}
    told = session.exec(select(GatewayDesired.gateway_id).where(col(GatewayDesired.model_stem).is_not(None))).all()
    for gateway_id in told:
        if stem := rollouts.running_model(session, gateway_id):
            held[gateway_id] = stem
    counts: dict[str, int] = {}
    for stem in held.values():
        counts[stem] = counts.get(stem, 0) + 1
    best: dict[str, Current] = {}
    for stem, count in sorted(counts.items()):
        model = session.get(ModelArtifact, stem)
        if model is not None and (model.profile not in best or count > best[model.profile].gateways):
            best[model.profile] = Current(stem=stem, gateways=count)
    return best


def flat_metrics(metrics: dict[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    """Nested metrics as `a.b.c` keys with scalar values (lists shown as text), for side-by-side tables."""
    out: dict[str, Any] = {}
    for key, value in (metrics or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out |= flat_metrics(value, name + ".")
        elif isinstance(value, list):
            out[name] = "; ".join(str(v) for v in value) if value else "—"
        else:
            out[name] = value
    return out


def rate(alerts: int | None, windows: int | None) -> str:
    """Alerts per scored window as a percentage ('—' without windows)."""
    if not windows or alerts is None:
        return "—"
    return f"{100.0 * alerts / windows:.1f} %"


def per_day(episodes: int | None, sensor_hours: float | None) -> str:
    """Alert episodes per sensor-day ('—' without sensor-hours or episodes)."""
    if episodes is None or not sensor_hours:
        return "—"
    return f"{episodes / (sensor_hours / 24):.2f}"


def number(value: Any) -> str:
    """A metric value for a table: floats to four significant digits, None as '—'."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _id(raw: str) -> int | None:
    return int(raw) if raw.isdigit() and len(raw) < 12 else None


def _shadow_runs(session: Session, stem: str) -> list[dict[str, Any]]:
    """Every gateway that reported a shadow of this model in one of its rollouts, newest rollout first."""
    runs: list[dict[str, Any]] = []
    for rollout in session.exec(select(Rollout).where(Rollout.model_stem == stem)
                                .order_by(col(Rollout.id).desc()).limit(20)).all():
        for target in rollouts.public(session, rollout=rollout).targets:
            if target.shadow:
                runs.append({"rollout": rollout.id, "target": target, "shadow": target.shadow})
    return runs


# ---- models -------------------------------------------------------------------------------------------------
@router.get("/ui/models", response_class=HTMLResponse)
def models_page(request: Request, session: SessionDep) -> Response:
    """Registered models per profile, the current one marked, with its gateways and any shadow in progress."""
    user = page_user(request, session)
    if user is None:
        return to_login(request)
    models = list(registry.list_models(session))
    shadowing: dict[str, int] = {}
    for rollout in session.exec(select(Rollout).where(col(Rollout.state).in_(ACTIVE_STATES))).all():
        shadowing[rollout.model_stem] = sum(1 for t in rollouts.targets(session, rollout=rollout)
                                            if t.state == "shadow")
    profiles = sorted({m.profile for m in models})
    return render(request, "models.html", user, models=models, profiles=profiles, current=current_models(session),
                   shadowing=shadowing)


@router.get("/ui/models/{stem}", response_class=HTMLResponse)
def model_page(stem: str, request: Request, session: SessionDep) -> Response:
    """One model: metrics beside the current model's, its shadow comparisons, manifest, hash and signature."""
    user = page_user(request, session)
    if user is None:
        return to_login(request)
    model = registry.get_model(session, stem=stem)
    if model is None:
        return error_page(request, user, 404, _("No such model"), _(
            "No model %(id)s is registered. The models page lists every registered version.") % {
                "id": repr(stem[:60])})
    held = current_models(session).get(model.profile)
    current = registry.get_model(session, stem=held.stem) if held is not None else None
    metrics = model.metrics or {}
    eval_keys, cand, cur, gate = evaluation_rows(metrics.get("evaluation"))
    mine = flat_metrics({k: v for k, v in metrics.items() if k != "evaluation"})
    theirs = flat_metrics({k: v for k, v in ((current.metrics if current else None) or {}).items()
                           if k != "evaluation"})
    keys = sorted(set(mine) | set(theirs))
    return render(request, "model.html", user, model=model, current=current, held=held, keys=keys, mine=mine,
                   theirs=theirs, eval_keys=eval_keys, cand=cand, cur=cur, gate=gate,
                   runs=_shadow_runs(session, model.stem), number=number, rate=rate, per_day=per_day)


@router.get("/ui/models/{stem}/shadows", response_class=HTMLResponse)
def model_shadows(stem: str, request: Request, session: SessionDep) -> Response:
    """The model page's shadow table only (the page polls it while canaries report)."""
    user = page_user(request, session)
    if user is None:
        return PlainTextResponse("your session has ended; log in again", status_code=401)
    return render(request, "_model_shadows.html", user, runs=_shadow_runs(session, stem[:200]), number=number,
                   rate=rate, per_day=per_day)


# ---- rollouts -----------------------------------------------------------------------------------------------
@router.get("/ui/rollouts", response_class=HTMLResponse)
def rollouts_page(request: Request, session: SessionDep) -> Response:
    """Start a rollout (ops) and the list of rollouts, newest first."""
    user = page_user(request, session)
    if user is None:
        return to_login(request)
    rows = [rollouts.public(session, rollout=r) for r in rollouts.list_rollouts(session, limit=MAX_ROWS)]
    gateways = fleet.list_gateways(session)
    tokens = set(session.exec(select(GatewayToken.gateway_id)).all())
    return render(request, "rollouts.html", user, rows=rows, models=list(registry.list_models(session)),
                   gateways=[g for g in gateways if not g.revoked], tokens=tokens,
                   sites=sorted({g.site for g in gateways if g.site and not g.revoked}),
                   preselect=request.query_params.get("model", ""), defaults=RolloutCreate(model="-"))


def _rollout_orerror_page(request: Request, session: Session, user: User, raw: str) -> RolloutPublic | Response:
    rollout_id = _id(raw)
    rollout = session.get(Rollout, rollout_id) if rollout_id is not None else None
    if rollout is None:
        return error_page(request, user, 404, _("No such rollout"), _(
            "There is no rollout %(id)s. The rollouts page lists every rollout.") % {"id": repr(raw[:40])})
    return rollouts.public(session, rollout=rollout)


@router.get("/ui/rollouts/{rollout_id}", response_class=HTMLResponse)
def rollout_page(rollout_id: str, request: Request, session: SessionDep) -> Response:
    """One rollout: its state, each gateway's progress (refreshed by the page), promote / halt / roll back."""
    user = page_user(request, session)
    if user is None:
        return to_login(request)
    found = _rollout_orerror_page(request, session, user, rollout_id)
    if isinstance(found, Response):
        return found
    return render(request, "rollout.html", user, r=found, final=FINAL_ROLLOUT, rate=rate, number=number,
                   per_day=per_day)


@router.get("/ui/rollouts/{rollout_id}/live", response_class=HTMLResponse)
def rollout_live(rollout_id: str, request: Request, session: SessionDep) -> Response:
    """The rollout's state, buttons and per-gateway table only (the page polls this and swaps it in)."""
    user = page_user(request, session)
    if user is None:
        return PlainTextResponse("your session has ended; log in again", status_code=401)
    found = _rollout_orerror_page(request, session, user, rollout_id)
    if isinstance(found, Response):
        return PlainTextResponse("no such rollout", status_code=404)
    return render(request, "_rollout_live.html", user, r=found, final=FINAL_ROLLOUT, rate=rate, number=number,
                   per_day=per_day)


# ---- retraining ---------------------------------------------------------------------------------------------
@router.get("/ui/training", response_class=HTMLResponse)
def training_page(request: Request, session: SessionDep) -> Response:
    """Queue a retrain (ops) and the jobs with their state and progress (refreshed while one is active)."""
    user = page_user(request, session)
    if user is None:
        return to_login(request)
    jobs = list(training.list_jobs(session, limit=MAX_ROWS))
    return render(request, "training.html", user, jobs=jobs, profiles=list(PROFILES), final=FINAL_JOB)


@router.get("/ui/training/rows", response_class=HTMLResponse)
def training_rows(request: Request, session: SessionDep) -> Response:
    """The jobs table's body only (the list page polls it while a job is queued or running)."""
    user = page_user(request, session)
    if user is None:
        return PlainTextResponse("your session has ended; log in again", status_code=401)
    jobs = list(training.list_jobs(session, limit=MAX_ROWS))
    return render(request, "_training_rows.html", user, jobs=jobs, final=FINAL_JOB)


def _job_or_none(session: Session, raw: str) -> TrainingJob | None:
    job_id = _id(raw)
    return session.get(TrainingJob, job_id) if job_id is not None else None


def evaluation_rows(evaluation: dict[str, Any] | None) -> tuple[list[str], dict[str, Any], dict[str, Any],
                                                                  dict[str, Any] | None]:
    """(metric names, candidate, current, gate) of a training job's evaluation (scalar metrics only)."""
    evaluation = evaluation or {}
    cand = {k: v for k, v in (evaluation.get("candidate") or {}).items() if not isinstance(v, dict | list)}
    cur = {k: v for k, v in (evaluation.get("current") or {}).items() if not isinstance(v, dict | list)}
    return sorted(set(cand) | set(cur)), cand, cur, evaluation.get("gate")


def _gate_rows(job: TrainingJob) -> tuple[list[str], dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    return evaluation_rows((job.result or {}).get("evaluation"))


@router.get("/ui/training/{job_id}", response_class=HTMLResponse)
def job_page(job_id: str, request: Request, session: SessionDep) -> Response:
    """One job: its progress bar while it runs, its log, and its result against the quality gate."""
    user = page_user(request, session)
    if user is None:
        return to_login(request)
    job = _job_or_none(session, job_id)
    if job is None:
        return error_page(request, user, 404, _("No such training job"), _(
            "There is no training job %(id)s. The retraining page lists every job.") % {"id": repr(job_id[:40])})
    keys, cand, cur, gate = _gate_rows(job)
    return render(request, "job.html", user, job=job, final=FINAL_JOB, keys=keys, cand=cand, cur=cur, gate=gate,
                   number=number)


@router.get("/ui/training/{job_id}/live", response_class=HTMLResponse)
def job_live(job_id: str, request: Request, session: SessionDep) -> Response:
    """The job's progress, log and result only (the page polls this while the job is queued or running)."""
    user = page_user(request, session)
    if user is None:
        return PlainTextResponse("your session has ended; log in again", status_code=401)
    job = _job_or_none(session, job_id)
    if job is None:
        return PlainTextResponse("no such training job", status_code=404)
    keys, cand, cur, gate = _gate_rows(job)
    return render(request, "_job_live.html", user, job=job, final=FINAL_JOB, keys=keys, cand=cand, cur=cur,
                   gate=gate, number=number)
