"""The rollout state machine on a real SQLite database, with an in-memory desired-state publisher (the plug-in
point the MQTT publisher fills in production): canaries judged on alert episodes once there is enough evidence, a
first model on its alert budget, models needing a newer agent; and the label → training data split of retraining
jobs."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlmodel import Session

from cloud.db.engine import init_schema, make_engine
from cloud.db.fleet import Gateway
from cloud.db.registry import GatewayToken, ModelArtifact
from cloud.db.rollouts import Rollout, RolloutCreate
from cloud.services import fleet, rollouts
from cloud.services.canary import DEFAULT_ALERT_BUDGET, DEFAULT_MIN_SENSOR_HOURS, CanaryShadow, alert_budget, judge
from cloud.services.rollouts import RolloutError
from cloud.training.dataset import Label, build
from models.runtime.manifest import generate_keypair, verify_desired
from models.training.data import Series
from protocol.codec import ProtocolError, decode, encode
from protocol.messages import Desired, Reported, ShadowReport, Status

T0 = 1_767_225_600_000
HOUR = 3_600_000
BASE = "https://cloud.example"


FLEET_PRIVATE, FLEET_PUBLIC = generate_keypair()


class Published:
    """Records what would go out on cw/v1/<gw>/desired; each message must name its gateway and (with the fleet key,
    the default) carry a signature the gateways' keys verify."""

    def __init__(self, signing_key: bytes | None = FLEET_PRIVATE) -> None:
        self.messages: list[tuple[str, Desired]] = []
        self.signing_key = signing_key

    def publish(self, gateway_id: str, payload: bytes) -> None:
        desired = decode(payload, Desired)
        if self.signing_key is not None:
            verify_desired(desired, [FLEET_PUBLIC])
            assert desired.gateway == gateway_id
        else:  # the form agents from before signing decode: no field they do not know
            assert desired.signature is desired.gateway is None and b"rollback" not in payload
        self.messages.append((gateway_id, desired))

    def last(self, gateway_id: str) -> Desired:
        return [d for g, d in self.messages if g == gateway_id][-1]


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'cw.db'}")
    init_schema(engine)
    with Session(engine, expire_on_commit=False) as s:
        seed(s)
        yield s
    engine.dispose()


def seed(s: Session) -> None:
    """Five gateways and two registered models."""
    for i in range(1, 6):
        s.add(Gateway(id=f"gw{i}", created_at=T0))
        s.add(GatewayToken(gateway_id=f"gw{i}", token_hash=f"{i:064x}", created_at=T0, created_by="ops"))
    s.add(Gateway(id="gw9", created_at=T0))  # no artifact token: never a target
    for version in ("1", "2"):
        s.add(ModelArtifact(stem=f"m-{version}", name="m", version=version, profile="chilled", sha256="0" * 64,
                            threshold=1.0, size_bytes=10, created_at="2026", signature="c2ln", manifest={},
                            registered_at=T0, registered_by="ops"))
    s.commit()


def report(session: Session, gw: str, version: int, result: str, model: str, shadow: str | None = None,
           ts: int = T0, candidate: str = "2", **figures: Any) -> None:
    """What ingest stores from a gateway's `reported`; `figures` fill its shadow block (sensor_hours, episodes...)."""
    block = None
    if shadow is not None:
        figures = {"started_at": T0, "last_at": T0 + HOUR, "windows": 60, **figures}
        block = ShadowReport(model_version=candidate, state=shadow, **figures)  # type: ignore[arg-type]
    fleet.apply_reported(session, reported=Reported(
        gateway=gw, ts=ts, desired_version=version, result=result, model_version=model,  # type: ignore[arg-type]
        shadow=block))


def start(session: Session, out: Published, model: str, fraction: float, **params: Any) -> int:
    rollout = rollouts.start(session, data=RolloutCreate(model=model, canary_fraction=fraction, **params), actor="ops",
                             publisher=out, base_url=BASE)
    assert rollout.id is not None
    return rollout.id


def step(session: Session, out: Published, rollout_id: int) -> str:
    rollout = session.get(Rollout, rollout_id)
    assert rollout is not None
    rollouts.advance(session, rollout=rollout, publisher=out, base_url=BASE)
    return rollout.state


def get(session: Session, rollout_id: int) -> Rollout:
    rollout = session.get(Rollout, rollout_id)
    assert rollout is not None
    return rollout


def first_model_everywhere(session: Session, out: Published) -> None:
    rid = start(session, out, "m-1", 0.0)  # ops may still choose no canary: every target gets it active at once
    for gw in [f"gw{i}" for i in range(1, 6)]:
        assert out.last(gw).model.mode == "active"  # type: ignore[union-attr]
        report(session, gw, out.last(gw).version, "applied", "1")
    assert step(session, out, rid) == "completed"


def canaries_of(session: Session, rid: int) -> list[str]:
    view = rollouts.public(session, rollout=get(session, rid))
    return [t.gateway_id for t in view.targets if t.role == "canary"]


def test_canaries_shadow_then_the_rest_get_the_model_active(session: Session) -> None:
    out = Published()
    first_model_everywhere(session, out)
    rid = start(session, out, "m-2", 0.4, min_sensor_hours=10, probation_s=1800)
    view = rollouts.public(session, rollout=get(session, rid))
    canaries = canaries_of(session, rid)
    assert len(canaries) == 2 and view.counts["waiting"] == 3
    for gw in canaries:
        desired = out.last(gw)
        assert desired.model is not None and desired.model.mode == "shadow" and desired.version == 2
        assert desired.model.url == f"{BASE}/api/v1/artifacts/m-2.tflite"
        report(session, gw, desired.version, "shadow", "1", shadow="running", sensor_hours=2.0, shadow_episodes=0,
               active_episodes=0)
    assert step(session, out, rid) == "canary"
    assert get(session, rid).verdict == "not enough data yet: 4.0 sensor-hours of 10"
    report(session, canaries[0], 2, "shadow", "1", shadow="running", ts=T0 + 1, sensor_hours=6.0,
           shadow_episodes=0, active_episodes=1)
    assert step(session, out, rid) == "canary"
    assert get(session, rid).verdict == "not enough data yet: 8.0 sensor-hours of 10"
    report(session, canaries[1], 2, "shadow", "1", shadow="running", ts=T0 + 1, sensor_hours=6.0,
           shadow_episodes=1, active_episodes=1, last_at=T0 + 1_000_000)  # 16.7 min of reading time
    assert step(session, out, rid) == "canary"
    assert get(session, rid).verdict == f"on probation: 0.28 h of reading time of 0.5 h on {canaries[1]}"
    report(session, canaries[1], 2, "shadow", "1", shadow="running", ts=T0 + 2, sensor_hours=6.0,
           shadow_episodes=1, active_episodes=1, last_at=T0 + 1_800_000)
    assert step(session, out, rid) == "promoting"
    rollout = get(session, rid)
    assert rollout.verdict is not None and rollout.verdict.startswith("promoted: candidate 1 alert episode (2.00 per "
                                                                      "sensor-day) vs 2 for the current model (4.00)")
    assert rollout.evidence is not None and rollout.evidence["decision"] == "promote"
    assert (rollout.evidence["sensor_hours"], rollout.evidence["candidate_episodes"],
            rollout.evidence["current_episodes"]) == (12.0, 1, 2)
    for gw in [f"gw{i}" for i in range(1, 6)]:
        desired = out.last(gw)
        assert desired.model is not None and desired.model.mode == "active" and desired.model.version == "2"
        assert step(session, out, rid) == "promoting"
        report(session, gw, desired.version, "applied", "2", ts=T0 + 3)
    assert step(session, out, rid) == "completed"


def test_a_discarded_shadow_halts_and_the_canary_gets_its_previous_model(session: Session) -> None:
    """More alert episodes than the current model over the same readings halts the rollout at the canary."""
    out = Published()
    first_model_everywhere(session, out)
    rid = start(session, out, "m-2", 0.2, min_sensor_hours=24, probation_s=600)
    (canary,) = canaries_of(session, rid)
    report(session, canary, out.last(canary).version, "shadow", "1", shadow="running", ts=T0 + 1,
           sensor_hours=48.0, shadow_episodes=5, active_episodes=1, windows=2880, shadow_alerts=12, active_alerts=40)
    assert step(session, out, rid) == "halted"
    back = out.last(canary)
    assert back.model is not None and (back.model.version, back.model.mode) == ("1", "active") and back.version == 3
    assert {g for g, _ in out.messages[5:]} == {canary}  # the rest were never sent anything
    rollout = get(session, rid)
    # fewer windows above its threshold (12 vs 40), but five alerts where the current model raised one: a model at
    # the current one's rate raises five or more in 0.4 % of such canaries
    assert rollout.reason == rollout.verdict and (rollout.reason or "").startswith(
        "halted: candidate 5 alert episodes (2.50 per sensor-day) vs 1 for the current model (0.50)")
    assert "p = 0.004" in (rollout.reason or "")
    assert rollouts.public(session, rollout=rollout).targets[0].state == "reverted"
    with pytest.raises(RolloutError):
        rollouts.promote(session, rollout=rollout, actor="ops", publisher=out, base_url=BASE)


def test_a_first_model_is_judged_on_its_canary_against_the_alert_budget(session: Session) -> None:
    out = Published()
    rid = start(session, out, "m-1", 0.2, min_sensor_hours=240, probation_s=600)
    assert get(session, rid).alert_budget == 0.1  # the manifest records none: the training default
    (canary,) = canaries_of(session, rid)
    report(session, canary, 1, "shadow", None, shadow="running", candidate="1", sensor_hours=100.0,
           shadow_episodes=0)  # no active model: `active_episodes` absent
    assert step(session, out, rid) == "canary"
    assert get(session, rid).verdict == "not enough data yet: 100.0 sensor-hours of 240"
    report(session, canary, 1, "shadow", None, shadow="running", candidate="1", ts=T0 + 1, sensor_hours=240.0,
           shadow_episodes=1)
    assert step(session, out, rid) == "promoting"  # one episode in ten sensor-days: 0.1, the budget itself
    assert get(session, rid).verdict == ("promoted: first model: 1 alert episode (0.10 per sensor-day) over 240.0 "
                                         "sensor-hours on 1 canary, not above the alert budget 0.1; p = 0.632 for a "
                                         "model at the limit (halt below 0.05)")
    assert all(d.model is not None and d.model.mode == "active" for _, d in out.messages[1:])


def test_a_first_model_over_its_budget_is_withdrawn_from_the_canary(session: Session) -> None:
    out = Published()
    rid = start(session, out, "m-1", 0.2, min_sensor_hours=240, probation_s=600)
    (canary,) = canaries_of(session, rid)
    report(session, canary, 1, "shadow", None, shadow="running", candidate="1", sensor_hours=250.0,
           shadow_episodes=4)  # the budget expects 1.04 over 250 sensor-hours; four or more: 1.9 % of such models
    assert step(session, out, rid) == "halted"
    rollout = get(session, rid)
    assert (rollout.reason or "").startswith("halted: first model: 4 alert episodes (0.38 per sensor-day)")
    assert "above the alert budget 0.1" in (rollout.reason or "")
    withdrawn = out.last(canary)  # no model to return to: a desired state naming none ends its shadow
    assert withdrawn.model is None and withdrawn.version == 2
    (target,) = [t for t in rollouts.public(session, rollout=rollout).targets if t.role == "canary"]
    assert target.state == "reverted" and "withdrawn" in (target.detail or "")
    assert {g for g, _ in out.messages} == {canary}


def test_the_alert_budget_comes_from_the_rollout_else_the_manifest(session: Session) -> None:
    model = session.get(ModelArtifact, "m-1")
    assert model is not None
    model.manifest = {"metrics": {"alert_budget_per_sensor_day": 0.5}}
    session.add(model)
    out = Published()
    assert get(session, start(session, out, "m-1", 0.2, gateways=["gw1"])).alert_budget == 0.5
    assert get(session, start(session, out, "m-1", 0.2, gateways=["gw2"], alert_budget=0.05)).alert_budget == 0.05


def test_a_reported_shadow_of_another_version_is_no_evidence(session: Session) -> None:
    out = Published()
    first_model_everywhere(session, out)
    rid = start(session, out, "m-2", 0.2, min_sensor_hours=1, probation_s=60)
    (canary,) = canaries_of(session, rid)
    version = out.last(canary).version
    report(session, canary, version, "shadow", "1", shadow="running", candidate="9", sensor_hours=500.0)
    assert step(session, out, rid) == "canary"  # a shadow of model 9 says nothing about model 2
    assert (get(session, rid).verdict or "").startswith("not enough data yet: 0.0 sensor-hours of 1")
    report(session, canary, version - 1, "shadow", "1", shadow="running", ts=T0 + 1, sensor_hours=500.0)
    assert step(session, out, rid) == "canary"  # an earlier desired version's probation neither


def test_ops_halt_during_the_canary_ends_the_canaries_shadows(session: Session) -> None:
    out = Published()
    first_model_everywhere(session, out)
    rid = start(session, out, "m-2", 0.2)
    (canary,) = canaries_of(session, rid)
    report(session, canary, out.last(canary).version, "shadow", "1", shadow="running")
    rollouts.halt(session, rollout=get(session, rid), actor="ops", publisher=out, base_url=BASE)
    assert get(session, rid).state == "halted"
    back = out.last(canary)
    assert back.model is not None and (back.model.version, back.model.mode) == ("1", "active")
    assert not back.model.rollback  # the candidate was only in shadow: model 1 is still the active one there


def test_a_return_to_an_older_model_is_flagged_rollback_once_the_model_may_have_run_active(session: Session) -> None:
    """The gateways refuse a model older than the newest they ran unless the desired model says `rollback`: the
    cloud says so when ops roll back, and when the controller halts a rollout whose model was sent active."""
    out = Published()
    first_model_everywhere(session, out)
    rid = start(session, out, "m-2", 0.0)  # no canary: every target gets model 2 active
    report(session, "gw1", out.last("gw1").version, "applied", "2")
    report(session, "gw2", out.last("gw2").version, "rejected", "1")
    assert step(session, out, rid) == "halted"  # the controller's halt while promoting
    for gw in [f"gw{i}" for i in range(1, 6)]:
        back = out.last(gw).model
        assert back is not None and (back.version, back.mode, back.rollback) == ("1", "active", True)

    rid = start(session, out, "m-2", 0.0, gateways=["gw3"])
    sent = out.last("gw3")
    assert sent.model is not None and sent.model.rollback is False
    assert b'"rollback"' not in encode(sent)  # omitted when false: older documents keep their bytes
    report(session, "gw3", sent.version, "applied", "2", ts=T0 + 1)
    assert step(session, out, rid) == "completed"
    rollouts.rollback(session, rollout=get(session, rid), actor="ops", publisher=out, base_url=BASE)
    back = out.last("gw3").model
    assert back is not None and (back.version, back.rollback) == ("1", True)


def test_without_a_signing_key_desired_documents_go_out_in_the_unsigned_form_older_agents_know(
        session: Session) -> None:
    out = Published(signing_key=None)  # it checks: no signature, no gateway, no rollback flag
    first_model_everywhere(session, out)
    rid = start(session, out, "m-2", 0.0, gateways=["gw1"])
    report(session, "gw1", out.last("gw1").version, "applied", "2", ts=T0 + 1)
    assert step(session, out, rid) == "completed"
    rollouts.rollback(session, rollout=get(session, rid), actor="ops", publisher=out, base_url=BASE)
    back = out.last("gw1").model
    assert back is not None and (back.version, back.rollback) == ("1", False)


def test_versions_only_grow_and_a_busy_gateway_is_refused(session: Session) -> None:
    out = Published()
    report(session, "gw1", 41, "applied", "0")  # the gateway applied version 41 from an earlier cloud
    start(session, out, "m-1", 0.0)
    assert out.last("gw1").version == 42 and out.last("gw2").version == 1
    with pytest.raises(RolloutError, match="already in an active rollout"):
        start(session, out, "m-2", 0.2)
    with pytest.raises(RolloutError, match="no registered model"):
        start(session, out, "m-9", 0.2)
    with pytest.raises(RolloutError, match="without an artifact token"):
        rollouts.start(session, data=RolloutCreate(model="m-2", gateways=["gw9"]), actor="ops", publisher=out,
                       base_url=BASE)


def test_a_model_needing_a_newer_agent_is_refused_for_older_gateways(session: Session) -> None:
    model = session.get(ModelArtifact, "m-2")
    assert model is not None
    model.manifest = {"min_agent_version": "0.3.0"}
    session.add(model)
    fleet.apply_status(session, status=Status(gateway="gw1", state="online", ts=T0, agent_version="0.2.9"))
    fleet.apply_status(session, status=Status(gateway="gw2", state="online", ts=T0, agent_version="0.3.0"))
    fleet.apply_status(session, status=Status(gateway="gw3", state="online", ts=T0, agent_version="0.10.1rc1"))
    out = Published()
    with pytest.raises(RolloutError) as refused:
        start(session, out, "m-2", 0.2, gateways=["gw1", "gw2", "gw3", "gw4"])
    assert refused.value.kind == "invalid" and "needs coldwatch-agent 0.3.0 or newer" in str(refused.value)
    assert "gw1 (0.2.9)" in str(refused.value) and "gw4 (version unknown)" in str(refused.value)
    assert "gw2" not in str(refused.value) and "gw3" not in str(refused.value) and out.messages == []
    assert get(session, start(session, out, "m-2", 0.2, gateways=["gw2", "gw3"])).state == "canary"


@pytest.mark.parametrize("bad", [{"min_sensor_hours": 0}, {"min_sensor_hours": -5}, {"alert_budget": 0},
                                 {"max_alert_ratio": 0}, {"canary_fraction": 1.5}])
def test_rollout_parameters_are_validated(bad: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        RolloutCreate.model_validate({"model": "m-2", **bad})
    assert RolloutCreate(model="m-2").min_sensor_hours == DEFAULT_MIN_SENSOR_HOURS == 240


def test_the_fallback_alert_budget_is_the_training_default() -> None:
    pytest.importorskip("torch")
    from models.training.train import TrainConfig

    assert DEFAULT_ALERT_BUDGET == TrainConfig(profile="chilled").max_alerts_per_sensor_day
    assert alert_budget({}) == alert_budget({"metrics": {"alert_budget_per_sensor_day": "x"}}) == DEFAULT_ALERT_BUDGET
    assert alert_budget({"metrics": {"alert_budget_per_sensor_day": 0.2}}) == 0.2


# -- the verdict on arbitrary shadow reports, as they arrive over the wire -----------------------------------------

_figures = st.fixed_dictionaries({
    "sensor_hours": st.floats(0, 2000, allow_nan=False), "shadow_episodes": st.integers(0, 50),
    "active_episodes": st.none() | st.integers(0, 50), "windows": st.integers(0, 10_000),
    "span_s": st.integers(0, 86_400)})


@given(figures=st.lists(_figures, min_size=1, max_size=4), min_hours=st.floats(0.5, 500),
       ratio=st.floats(0.5, 5), budget=st.floats(0.01, 2))
@settings(max_examples=300, deadline=None)
# A current model's episode over a denormal span: its rate, and so the limit, overflow to infinity.
@example(figures=[{"sensor_hours": 1.0, "shadow_episodes": 0, "active_episodes": None, "windows": 0, "span_s": 3600},
                  {"sensor_hours": 2.225073858507203e-309, "shadow_episodes": 1, "active_episodes": 1, "windows": 0,
                   "span_s": 3600}], min_hours=1.0, ratio=1.0, budget=1.0)
def test_the_verdict_on_any_reports_is_evidence_first_then_episodes(
        figures: list[dict[str, Any]], min_hours: float, ratio: float, budget: float) -> None:
    shadows = []
    for i, f in enumerate(figures):
        sent = ShadowReport(model_version="2", state="running", started_at=T0, last_at=T0 + f["span_s"] * 1000,
                            sensor_hours=f["sensor_hours"], shadow_episodes=f["shadow_episodes"],
                            active_episodes=f["active_episodes"], windows=f["windows"])
        wire = decode(encode(Reported(gateway=f"gw{i}", ts=T0, desired_version=2, result="shadow", shadow=sent)),
                      Reported)
        assert wire.shadow is not None
        stored = {name: getattr(wire.shadow, name) for name in wire.shadow.__struct_fields__}  # as ingest keeps it
        shadows.append(CanaryShadow(f"gw{i}", stored))
    verdict = judge(shadows, min_sensor_hours=min_hours, probation_s=3600, alert_budget=budget, max_alert_ratio=ratio)
    hours = sum(f["sensor_hours"] for f in figures)
    if hours < min_hours:
        assert verdict.decision == "wait" and verdict.text.startswith(f"not enough data yet: {hours:.1f} sensor-hours")
        return
    if any(f["span_s"] < 3600 for f in figures):
        assert verdict.decision == "wait" and verdict.text.startswith("on probation")
        return
    e = verdict.evidence
    candidate = sum(f["shadow_episodes"] for f in figures) * 24 / hours
    compared = [f for f in figures if f["active_episodes"] is not None]
    compared_hours = sum(f["sensor_hours"] for f in compared)
    limit = budget
    if compared and compared_hours > 0:
        limit = max(budget, ratio * sum(f["active_episodes"] for f in compared) * 24 / compared_hours)
    assert e.limit_per_day == pytest.approx(limit)
    expected = e.limit_per_day * hours / 24  # a model exactly at the limit: Poisson with this mean
    episodes = sum(f["shadow_episodes"] for f in figures)
    tail = 1.0 if math.isinf(expected) else 1.0 - sum(
        math.exp(-expected + i * math.log(expected) - math.lgamma(i + 1)) if expected > 0 else float(i == 0)
        for i in range(episodes))
    assert verdict.decision == ("promote" if tail >= 0.05 - 1e-9 else "halt") or abs(tail - 0.05) < 1e-6
    if candidate <= e.limit_per_day:  # a candidate at or under the limit is never halted
        assert verdict.decision == "promote"
    worse = judge([CanaryShadow(s.gateway_id, {**(s.report or {}), "shadow_episodes": 100}) for s in shadows],
                  min_sensor_hours=min_hours, probation_s=3600, alert_budget=budget, max_alert_ratio=ratio)
    assert worse.decision == "halt" or verdict.decision == "promote"  # more episodes never turn a halt around


@given(hours=st.floats(-1e9, -1e-9) | st.just(float("nan")) | st.just(float("inf")),
       episodes=st.integers(-100, -1))
def test_shadow_figures_out_of_range_are_refused_on_the_wire(hours: float, episodes: int) -> None:
    for field_, value in (("sensor_hours", hours), ("shadow_episodes", episodes), ("active_episodes", episodes)):
        payload = json.dumps({"v": 1, "gateway": "gw1", "ts": T0, "desired_version": 1, "result": "shadow",
                              "shadow": {"model_version": "2", "state": "running", "started_at": T0,
                                         field_: value}}).encode()
        with pytest.raises(ProtocolError):
            decode(payload, Reported)


def _series(sensor: str, hours: float) -> Series:
    ts = T0 + np.arange(int(hours * 60), dtype=np.int64) * 60_000
    flat = np.full(len(ts), 3.0)
    return Series(sensor, "chilled", ts, flat, flat * 20, flat * 1000)


def test_incidents_are_cut_out_of_training_and_normal_windows_kept() -> None:
    labels = [Label("a", T0 + 10 * 3_600_000, T0 + 11 * 3_600_000, "real_excursion"),
              Label("a", T0 + 2 * 3_600_000, T0 + 2 * 3_600_000 + 900_000, "loading"),
              Label("b", T0, T0 + 60_000, "other")]
    data = build([_series("a", 24), _series("b", 24)], labels)
    incident = labels[0]
    for piece in data.train + data.validation:
        inside = (piece.ts_ms >= incident.start_ms - 30 * 60_000) & (piece.ts_ms <= incident.end_ms + 30 * 60_000)
        assert not (piece.sensor == "a" and inside.any())
    loading = labels[1]
    assert any(((s.ts_ms >= loading.start_ms) & (s.ts_ms <= loading.end_ms)).any() for s in data.train if
               s.sensor == "a")
    assert data.counts == {"false_alarm": 0, "defrost": 0, "loading": 1, "real_excursion": 1, "sensor_fault": 0,
                           "other": 1}
    assert [(s.sensor, len(labs)) for s, labs in data.evaluation] == [("a", 2), ("b", 1)]
    assert sum(len(s.ts_ms) for s in data.validation) > 0


def test_training_jobs_are_claimed_once_and_keep_their_log(session: Session) -> None:
    from cloud.db.training import TrainingJobCreate, TrainingJobUpdate
    from cloud.services import training

    job = training.create(session, data=TrainingJobCreate(profile="chilled", start=T0, end=T0 + 86_400_000),
                          actor="ops")
    session.commit()
    claimed = training.claim(session, worker="gpu-1")
    session.commit()
    assert claimed is not None and claimed.id == job.id and claimed.state == "running"
    assert training.claim(session, worker="gpu-2") is None
    training.update(session, job=claimed, data=TrainingJobUpdate(stage="train", progress=0.5, log=["a", "b"]),
                    actor="ops")
    training.update(session, job=claimed, data=TrainingJobUpdate(state="failed", error="gate", log=["c"]),
                    actor="ops")
    session.commit()
    assert (claimed.state, claimed.log, claimed.error) == ("failed", "a\nb\nc\n", "gate")
    assert claimed.finished_at is not None
    with pytest.raises(training.TrainingError):
        training.update(session, job=claimed, data=TrainingJobUpdate(progress=1.0), actor="ops")


def test_the_rollout_page_shows_the_episode_counts_and_the_evidence(session: Session) -> None:
    from cloud.ui.ops_pages import FINAL_ROLLOUT, number, per_day, rate
    from cloud.ui.render import templates

    out = Published()
    first_model_everywhere(session, out)
    rid = start(session, out, "m-2", 0.2, min_sensor_hours=48, probation_s=600)
    (canary,) = canaries_of(session, rid)

    def page() -> str:
        view = rollouts.public(session, rollout=get(session, rid))
        return templates.env.get_template("_rollout_live.html").render(
            r=view, final=FINAL_ROLLOUT, rate=rate, number=number, per_day=per_day, utc=str)

    report(session, canary, out.last(canary).version, "shadow", "1", shadow="running", sensor_hours=12.0,
           shadow_episodes=1, active_episodes=2)
    step(session, out, rid)
    html = page()
    assert "not enough data yet: 12.0 sensor-hours of 48" in html
    assert 'data-sensor-hours="12.0" data-min-sensor-hours="48.0"' in html
    assert '<tr data-model="candidate"><td>Candidate (m-2)</td><td class="num">1</td><td class="num">2</td>' in html
    assert '<tr data-model="current"><td>Current model</td><td class="num">2</td><td class="num">4</td>' in html
    assert "<b>12.0</b> sensor-hours of 48.0 on 1 canary" in html and 'style="width: 25.0%"' in html
    assert f'data-gateway="{canary}"' in html and "12 · 2 / 1 · 60" in html  # sensor-hours · current / new · windows
    report(session, canary, out.last(canary).version, "shadow", "1", shadow="running", ts=T0 + 1, sensor_hours=48.0,
           shadow_episodes=0, active_episodes=2)
    assert step(session, out, rid) == "promoting"
    assert "promoted: candidate 0 alert episodes (0.00 per sensor-day) vs 2 for the current model (1.00)" in page()


def test_the_ops_page_and_the_rollouts_agree_on_which_model_a_gateway_runs(session: Session) -> None:
    """A canary holding a candidate in shadow still runs its previous model, for the rollout and for the page."""
    from cloud.ui.ops_pages import Current, current_models

    out = Published()
    first_model_everywhere(session, out)
    assert current_models(session) == {"chilled": Current(stem="m-1", gateways=5)}
    rid = start(session, out, "m-2", 0.2, min_sensor_hours=24, probation_s=600)
    (canary,) = canaries_of(session, rid)
    assert rollouts.running_model(session, canary) == "m-1"
    assert current_models(session) == {"chilled": Current(stem="m-1", gateways=5)}


def test_a_forged_huge_reported_version_does_not_push_the_next_desired_version_out_of_range(session: Session) -> None:
    from cloud.services import desired

    out = Published()
    gateway = session.get(Gateway, "gw1")
    assert gateway is not None
    gateway.reported_desired_version = 2**63 - 1  # what a refused forged document claimed
    session.add(gateway)
    model = session.get(ModelArtifact, "m-1")
    assert model is not None
    version = desired.publish_model(session, publisher=out, gateway_id="gw1", model=model, base_url=BASE)
    assert version == 1 and out.last("gw1").version == 1
    gateway.reported_desired_version = 7  # a database restored from an older backup: the gateway is ahead
    session.add(gateway)
    assert desired.publish_model(session, publisher=out, gateway_id="gw1", model=model, base_url=BASE) == 8
