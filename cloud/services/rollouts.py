"""Rollouts: a registered model to a group of gateways, canaries first in shadow mode, the rest once the canary
verdict (cloud/services/canary.py: alert episodes per sensor-day against the current model's, or the alert budget
for a first model, once there is enough evidence) promotes it; a halting verdict or a failed swap halts the rollout
and sends the previous model back. `advance` is the controller's step: it reads the `reported` and shadow state
ingest stored in SQL."""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from typing import Final

from sqlmodel import Session, col, select

from cloud.db.fleet import Gateway
from cloud.db.registry import GatewayToken, ModelArtifact
from cloud.db.rollouts import (
    ACTIVE_STATES,
    TARGET_STATES,
    GatewayShadow,
    Rollout,
    RolloutCreate,
    RolloutPublic,
    RolloutTarget,
    RolloutTargetPublic,
)
from cloud.services import audit, canary, desired
from cloud.services.clock import now_ms
from cloud.services.desired import DesiredPublisher
from cloud.services.errors import DomainError, Kind
from models.runtime.manifest import release

log = logging.getLogger(__name__)
_REPORTED: Final = {"shadow": "shadow", "applied": "applied", "rejected": "failed", "rolled_back": "failed"}
_SENT: Final = ("sent", "shadow", "applied", "failed")  # targets that were sent the new model


class RolloutError(DomainError):
    """A rollout that cannot be started or changed (a conflict with the fleet's state unless `kind` says otherwise)."""

    def __init__(self, message: str, kind: Kind = "conflict") -> None:
        super().__init__(message, kind=kind)


def _targets_of(session: Session, data: RolloutCreate) -> list[str]:
    """The named gateways (each must hold an artifact token: it could not download the model otherwise), or every
    unrevoked gateway with a token (of `site`, when given)."""
    with_token = select(Gateway.id).join(GatewayToken, col(GatewayToken.gateway_id) == Gateway.id).where(
        col(Gateway.revoked).is_(False))
    if data.gateways is not None:
        ids = sorted(set(data.gateways))
        known = set(session.exec(select(Gateway.id).where(col(Gateway.id).in_(ids))).all())
        if missing := [g for g in ids if g not in known]:
            raise RolloutError(f"unknown gateways: {', '.join(missing[:10])}", "invalid")
        ready = set(session.exec(with_token.where(col(Gateway.id).in_(ids))).all())
        if unready := [g for g in ids if g not in ready]:
            raise RolloutError(f"gateways without an artifact token (or revoked): {', '.join(unready[:10])}; "
                               "issue one with POST /api/v1/gateways/{id}/artifact-token", "invalid")
        return ids
    if data.site is not None:
        with_token = with_token.where(Gateway.site == data.site)
    return sorted(session.exec(with_token).all())


def _too_old(session: Session, model: ModelArtifact, ids: list[str]) -> list[str]:
    """Targets whose last reported agent version is older than the model's `min_agent_version` (or unknown), as
    'gateway (version)'."""
    need = model.manifest.get("min_agent_version") if isinstance(model.manifest, dict) else None
    if not need:
        return []
    wanted = release(str(need))
    versions = dict(session.exec(select(Gateway.id, Gateway.agent_version).where(col(Gateway.id).in_(ids))).all())
    old = []
    for g in ids:
        have = release(versions.get(g))
        if wanted is None or have is None or have < wanted:
            old.append(f"{g} ({versions.get(g) or 'version unknown'})")
    return old


def running_model(session: Session, gateway_id: str) -> str | None:
    """The model the gateway raises alerts with: its active desired model, else (a canary holding a candidate in
    shadow) what its last rollout would return it to. The one answer to "which model does this gateway run"."""
    row = desired.current(session, gateway_id)
    if row is not None and row.mode == "active" and row.model_stem:
        return row.model_stem
    last = session.exec(select(RolloutTarget).where(RolloutTarget.gateway_id == gateway_id)
                        .order_by(col(RolloutTarget.id).desc())).first()
    return last.previous_model if last is not None else None


def start(session: Session, *, data: RolloutCreate, actor: str, publisher: DesiredPublisher,
          base_url: str) -> Rollout:
    """Create the rollout and publish to its canaries (shadow), or to every target when there is no canary."""
    model = session.get(ModelArtifact, data.model)
    if model is None:
        raise RolloutError(f"no registered model {data.model!r}", "not_found")
    ids = _targets_of(session, data)
    if not ids:
        raise RolloutError("the rollout targets no gateway", "invalid")
    busy = session.exec(select(RolloutTarget.gateway_id).join(Rollout, col(Rollout.id) == RolloutTarget.rollout_id)
                        .where(col(Rollout.state).in_(ACTIVE_STATES), col(RolloutTarget.gateway_id).in_(ids))).all()
    if busy:
        raise RolloutError(f"gateways already in an active rollout: {', '.join(sorted(set(busy))[:10])}")
    if old := _too_old(session, model, ids):
        raise RolloutError(f"{model.stem} needs coldwatch-agent {model.manifest['min_agent_version']} or newer "
                           f"(its inputs); these targets report an older agent: {', '.join(old[:10])}"
                           f"{' …' if len(old) > 10 else ''}; upgrade them or leave them out", "invalid")
    if data.canaries is not None:
        if stray := sorted(set(data.canaries) - set(ids)):
            raise RolloutError(f"canaries not among the targets: {', '.join(stray[:10])}", "invalid")
        canaries = set(data.canaries)
    else:
        count = 0 if data.canary_fraction == 0 else max(1, math.ceil(data.canary_fraction * len(ids)))
        ranked = sorted(ids, key=lambda g: hashlib.sha256(f"{model.stem}/{g}".encode()).hexdigest())
        canaries = set(ranked[:count])
    now = now_ms()
    budget = data.alert_budget if data.alert_budget is not None else canary.alert_budget(model.manifest)
    rollout = Rollout(model_stem=model.stem, profile=model.profile, state="canary" if canaries else "promoting",
                      canary_fraction=data.canary_fraction, probation_s=data.probation_s,
                      max_alert_ratio=data.max_alert_ratio, min_sensor_hours=data.min_sensor_hours,
                      alert_budget=budget, created_by=actor, created_at=now, updated_at=now,
                      verdict=None if canaries else "no canary: every target gets the model active at once")
    session.add(rollout)
    session.flush()
    assert rollout.id is not None
    targets = [RolloutTarget(rollout_id=rollout.id, gateway_id=g, role="canary" if g in canaries else "rest",
                             previous_model=running_model(session, g), updated_at=now) for g in ids]
    for target in targets:
        if target.role == "canary" or not canaries:
            _send(session, publisher, target, model, rollout, base_url, mode="shadow" if canaries else "active")
        session.add(target)
    audit.record(session, actor=actor, action="rollout.start", target_type="rollout", target_id=str(rollout.id),
                 after={"model": model.stem, "gateways": len(ids), "canaries": sorted(canaries),
                        "probation_s": data.probation_s, "max_alert_ratio": data.max_alert_ratio,
                        "min_sensor_hours": data.min_sensor_hours, "alert_budget": budget})
    log.info("rollout started rollout=%d model=%s gateways=%d canaries=%s min_sensor_hours=%g alert_budget=%g by=%s",
             rollout.id, model.stem, len(ids), ",".join(sorted(canaries)) or "-", data.min_sensor_hours, budget, actor)
    return rollout


def _send(session: Session, publisher: DesiredPublisher, target: RolloutTarget, model: ModelArtifact,
          rollout: Rollout, base_url: str, *, mode: str) -> None:
    target.desired_version = desired.publish_model(
        session, publisher=publisher, gateway_id=target.gateway_id, model=model, base_url=base_url, mode=mode,
        probation_s=rollout.probation_s, max_alert_ratio=rollout.max_alert_ratio)
    target.state, target.detail, target.updated_at = "sent", None, now_ms()
    session.add(target)


def targets(session: Session, *, rollout: Rollout) -> Sequence[RolloutTarget]:
    """A rollout's targets, canaries first."""
    return session.exec(select(RolloutTarget).where(RolloutTarget.rollout_id == rollout.id)
                        .order_by(col(RolloutTarget.role), col(RolloutTarget.gateway_id))).all()


def _observe(session: Session, rows: Sequence[RolloutTarget]) -> bool:
    """Move targets on from what their gateways reported for the version sent to them."""
    ids = [t.gateway_id for t in rows]
    gateways = {g.id: g for g in session.exec(select(Gateway).where(col(Gateway.id).in_(ids))).all()}
    changed = False
    for target in rows:
        gateway = gateways.get(target.gateway_id)
        if target.state not in ("sent", "shadow", "applied") or gateway is None or target.desired_version is None:
            continue
        if gateway.reported_desired_version != target.desired_version:
            continue
        state = _REPORTED.get(gateway.reported_result or "")
        if state is not None and state != target.state:
            target.state, target.detail, target.updated_at = state, gateway.reported_error, now_ms()
            session.add(target)
            log.info("rollout target rollout=%d gateway=%s state=%s detail=%r", target.rollout_id,
                     target.gateway_id, state, (target.detail or "")[:200])
            changed = True
    return changed


def advance(session: Session, *, rollout: Rollout, publisher: DesiredPublisher, base_url: str) -> bool:
    """One controller step for an active rollout; returns whether anything changed."""
    if rollout.state not in ACTIVE_STATES:
        return False
    rows = targets(session, rollout=rollout)
    changed = _observe(session, rows)
    failed = [t for t in rows if t.state == "failed"]
    if failed:
        first = failed[0]
        _halt(session, rollout, rows, publisher, base_url, actor="controller", state="halted",
              reason=f"{first.role} {first.gateway_id}: {first.detail or 'swap failed'}"[:500])
        return True
    if rollout.state == "canary":
        verdict = judge(session, rollout=rollout, rows=rows)
        changed = _record(session, rollout, verdict) or changed
        if verdict.decision == "promote":
            _promote(session, rollout, rows, publisher, base_url, actor="controller", verdict=verdict)
            return True
        if verdict.decision == "halt":
            _halt(session, rollout, rows, publisher, base_url, actor="controller", state="halted",
                  reason=verdict.text[:500], verdict=verdict)
            return True
        return changed
    if rollout.state == "promoting" and all(t.state == "applied" for t in rows):
        _set_state(session, rollout, "completed", actor="controller")
        return True
    return changed


def canary_shadows(session: Session, *, rollout: Rollout, rows: Sequence[RolloutTarget]) -> list[canary.CanaryShadow]:
    """Each canary's latest shadow report of this rollout's model, for the desired version sent to it."""
    ids = [t.gateway_id for t in rows if t.role == "canary"]
    stored = {s.gateway_id: s for s in session.exec(select(GatewayShadow)
                                                    .where(col(GatewayShadow.gateway_id).in_(ids))).all()}
    version = rollout.model_stem.split("-", 1)[1]
    out = []
    for t in rows:
        if t.role != "canary":
            continue
        s = stored.get(t.gateway_id)
        fits = (s is not None and t.state == "shadow" and s.desired_version == t.desired_version
                and s.report.get("model_version") == version)
        out.append(canary.CanaryShadow(t.gateway_id, s.report if fits and s is not None else None))
    return out


def judge(session: Session, *, rollout: Rollout, rows: Sequence[RolloutTarget]) -> canary.Verdict:
    """The canary verdict on what the canaries reported so far."""
    return canary.judge(canary_shadows(session, rollout=rollout, rows=rows), min_sensor_hours=rollout.min_sensor_hours,
                        probation_s=rollout.probation_s, alert_budget=rollout.alert_budget,
                        max_alert_ratio=rollout.max_alert_ratio)


def _record(session: Session, rollout: Rollout, verdict: canary.Verdict) -> bool:
    """Keep the verdict so far on the rollout (its page shows it); whether it changed."""
    evidence = verdict.evidence.as_dict() | {"decision": verdict.decision}
    if rollout.verdict == verdict.text[:500] and rollout.evidence == evidence:
        return False
    rollout.verdict, rollout.evidence, rollout.updated_at = verdict.text[:500], evidence, now_ms()
    session.add(rollout)
    return True


def _set_state(session: Session, rollout: Rollout, state: str, *, actor: str, reason: str | None = None,
               verdict: canary.Verdict | None = None) -> None:
    before = {"state": rollout.state}
    rollout.state, rollout.updated_at = state, now_ms()
    if reason is not None:
        rollout.reason = reason
    session.add(rollout)
    after: dict[str, object] = {"state": state, "reason": reason}
    if verdict is not None:
        after |= {"verdict": verdict.text, "evidence": verdict.evidence.as_dict()}
    audit.record(session, actor=actor, action=f"rollout.{state}", target_type="rollout", target_id=str(rollout.id),
                 before=before, after=after)
    log.info("rollout %s rollout=%s model=%s by=%s reason=%r", state, rollout.id, rollout.model_stem, actor, reason)


def _model(session: Session, stem: str) -> ModelArtifact:
    model = session.get(ModelArtifact, stem)
    if model is None:
        raise RolloutError(f"model {stem!r} is no longer registered")
    return model


def _promote(session: Session, rollout: Rollout, rows: Sequence[RolloutTarget], publisher: DesiredPublisher,
             base_url: str, *, actor: str, verdict: canary.Verdict | None = None) -> None:
    """Every target (canaries too, so their retained desired says `active`) gets the model in active mode."""
    model = _model(session, rollout.model_stem)
    for target in rows:
        _send(session, publisher, target, model, rollout, base_url, mode="active")
    if verdict is None and rollout.state == "canary":  # ops decided: say so beside the evidence so far
        rollout.verdict = (f"promoted by {actor} before the verdict ({rollout.verdict or 'no evidence yet'})")[:500]
    _set_state(session, rollout, "promoting", actor=actor, verdict=verdict)


def _halt(session: Session, rollout: Rollout, rows: Sequence[RolloutTarget], publisher: DesiredPublisher,
          base_url: str, *, actor: str, state: str, reason: str, verdict: canary.Verdict | None = None) -> None:
    """Stop, and send every target that received the new model its previous one (active); a canary that had none
    is sent a desired state naming no model, which ends its shadow.

    The previous model goes with `rollback` (the gateway may go below the highest version it ran) when ops roll back,
    or when the rollout's model was sent active (halted while promoting): the gateway may have run it. A canary's
    candidate was only in shadow, so its previous model is still its active one: no downgrade, no flag
    (docs/decisions.md#the-desired-document-is-signed-and-a-model-version-floor-refuses-downgrades)."""
    undo = state == "rolled_back" or rollout.state != "canary"
    for target in rows:
        if target.state not in _SENT:
            continue
        if target.previous_model is not None:
            target.desired_version = desired.publish_model(
                session, publisher=publisher, gateway_id=target.gateway_id,
                model=_model(session, target.previous_model), base_url=base_url, mode="active", rollback=undo)
        elif target.state in ("sent", "shadow") and rollout.state == "canary":
            target.desired_version = desired.publish_withdrawal(session, publisher=publisher,
                                                                gateway_id=target.gateway_id)
            target.detail = "no previous model: the candidate was withdrawn from its shadow"
        else:
            target.detail = ((target.detail or "") + "; no previous model to return to").lstrip("; ")[:500]
            session.add(target)
            continue
        target.state, target.updated_at = "reverted", now_ms()
        session.add(target)
    _set_state(session, rollout, state, actor=actor, reason=reason, verdict=verdict)


def promote(session: Session, *, rollout: Rollout, actor: str, publisher: DesiredPublisher, base_url: str) -> None:
    """Ops override: end the canary phase now and send the model to every target."""
    if rollout.state != "canary":
        raise RolloutError(f"only a rollout in its canary phase can be promoted (this one is {rollout.state})")
    _promote(session, rollout, targets(session, rollout=rollout), publisher, base_url, actor=actor)


def halt(session: Session, *, rollout: Rollout, actor: str, publisher: DesiredPublisher | None = None,
         base_url: str = "", reason: str | None = None) -> None:
    """Stop sending the model further; gateways keep what they have (see `rollback`). In the canary phase the
    canaries' shadows end too (they return to their previous model, or drop the candidate): no verdict follows."""
    if rollout.state not in ACTIVE_STATES:
        raise RolloutError(f"the rollout is {rollout.state}, not active")
    why = reason or f"halted by {actor}"
    if rollout.state == "canary" and publisher is not None:
        _halt(session, rollout, targets(session, rollout=rollout), publisher, base_url, actor=actor, state="halted",
              reason=why)
        return
    _set_state(session, rollout, "halted", actor=actor, reason=why)


def rollback(session: Session, *, rollout: Rollout, actor: str, publisher: DesiredPublisher, base_url: str,
             reason: str | None = None) -> None:
    """Send every target that received the model its previous one, flagged `rollback` (ops's explicit return: the
    gateways accept it below the newest version they ran); the rollout ends `rolled_back`."""
    if rollout.state == "rolled_back":
        raise RolloutError("the rollout was already rolled back")
    _halt(session, rollout, targets(session, rollout=rollout), publisher, base_url, actor=actor,
          state="rolled_back", reason=reason or f"rolled back by {actor}")


def list_rollouts(session: Session, *, state: str | None = None, limit: int = 100) -> Sequence[Rollout]:
    """Rollouts, newest first."""
    query = select(Rollout)
    if state is not None:
        query = query.where(Rollout.state == state)
    return session.exec(query.order_by(col(Rollout.id).desc()).limit(limit)).all()


def active_ids(session: Session) -> list[int]:
    """Ids of the rollouts the controller must look at."""
    return [i for i in session.exec(select(Rollout.id).where(col(Rollout.state).in_(ACTIVE_STATES))).all()
            if i is not None]


def public(session: Session, *, rollout: Rollout) -> RolloutPublic:
    """A rollout with each target's state, what its gateway last reported, and its shadow comparison."""
    rows = targets(session, rollout=rollout)
    ids = [t.gateway_id for t in rows]
    gateways = {g.id: g for g in session.exec(select(Gateway).where(col(Gateway.id).in_(ids))).all()}
    shadows = {s.gateway_id: s for s in session.exec(select(GatewayShadow)
                                                     .where(col(GatewayShadow.gateway_id).in_(ids))).all()}
    out = []
    for t in rows:
        g, s = gateways.get(t.gateway_id), shadows.get(t.gateway_id)
        shadow = s.report if s is not None and s.report.get("model_version") == rollout.model_stem.split("-", 1)[
            1] else None
        out.append(RolloutTargetPublic(
            gateway_id=t.gateway_id, role=t.role, state=t.state, desired_version=t.desired_version,
            previous_model=t.previous_model, detail=t.detail, updated_at=t.updated_at,
            reported_result=g.reported_result if g else None,
            reported_model_version=g.reported_model_version if g else None,
            gateway_status=g.status if g else None, shadow=shadow))
    counts = {state: sum(t.state == state for t in rows) for state in TARGET_STATES}
    assert rollout.id is not None
    return RolloutPublic(id=rollout.id, counts=counts, targets=out, **rollout.model_dump(exclude={"id"}))
