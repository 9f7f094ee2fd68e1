"""The rollout state machine on a real SQLite database, with an in-memory desired-state publisher (the plug-in
point the MQTT publisher fills in production); and the label → training data split of retraining jobs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlmodel import Session

from cloud.db.engine import init_schema, make_engine
from cloud.db.fleet import Gateway
from cloud.db.registry import GatewayToken, ModelArtifact
from cloud.db.rollouts import Rollout, RolloutCreate
from cloud.services import fleet, rollouts
from cloud.services.rollouts import RolloutError
from cloud.training.dataset import Label, build
from models.data import Series
from protocol.codec import decode
from protocol.messages import Desired, Reported, ShadowReport

T0 = 1_767_225_600_000
BASE = "https://cloud.example"


class Published:
    """Records what would go out on cw/v1/<gw>/desired."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, Desired]] = []

    def publish(self, gateway_id: str, payload: bytes) -> None:
        self.messages.append((gateway_id, decode(payload, Desired)))

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
           ts: int = T0) -> None:
    fleet.apply_reported(session, reported=Reported(
        gateway=gw, ts=ts, desired_version=version, result=result, model_version=model,  # type: ignore[arg-type]
        error="shadow alert rate too high" if shadow == "discarded" else None,
        shadow=None if shadow is None else ShadowReport(model_version="2", state=shadow,  # type: ignore[arg-type]
                                                        started_at=T0, windows=10, shadow_alerts=9)))


def start(session: Session, out: Published, model: str, fraction: float) -> int:
    rollout = rollouts.start(session, data=RolloutCreate(model=model, canary_fraction=fraction), actor="ops",
                             publisher=out, base_url=BASE)
    assert rollout.id is not None
    return rollout.id


def step(session: Session, out: Published, rollout_id: int) -> str:
    rollout = session.get(Rollout, rollout_id)
    assert rollout is not None
    rollouts.advance(session, rollout=rollout, publisher=out, base_url=BASE)
    return rollout.state


def first_model_everywhere(session: Session, out: Published) -> None:
    rid = start(session, out, "m-1", 0.0)
    for gw in [f"gw{i}" for i in range(1, 6)]:
        report(session, gw, out.last(gw).version, "applied", "1")
    assert step(session, out, rid) == "completed"


def test_canaries_shadow_then_the_rest_get_the_model_active(session: Session) -> None:
    out = Published()
    first_model_everywhere(session, out)
    rid = start(session, out, "m-2", 0.4)
    view = rollouts.public(session, rollout=session.get(Rollout, rid))  # type: ignore[arg-type]
    canaries = [t.gateway_id for t in view.targets if t.role == "canary"]
    assert len(canaries) == 2 and view.counts["waiting"] == 3
    for gw in canaries:
        desired = out.last(gw)
        assert desired.model is not None and desired.model.mode == "shadow" and desired.version == 2
        assert desired.model.url == f"{BASE}/api/v1/artifacts/m-2.tflite"
        report(session, gw, desired.version, "shadow", "1", shadow="running")
    assert step(session, out, rid) == "canary"
    report(session, canaries[0], 2, "applied", "2", shadow="promoted", ts=T0 + 1)
    assert step(session, out, rid) == "canary"  # one canary still on probation
    report(session, canaries[1], 2, "applied", "2", shadow="promoted", ts=T0 + 1)
    assert step(session, out, rid) == "promoting"
    for gw in [f"gw{i}" for i in range(1, 6)]:
        desired = out.last(gw)
        assert desired.model is not None and desired.model.mode == "active" and desired.model.version == "2"
        assert step(session, out, rid) == "promoting"
        report(session, gw, desired.version, "applied", "2", ts=T0 + 2)
    assert step(session, out, rid) == "completed"


def test_a_discarded_shadow_halts_and_the_canary_gets_its_previous_model(session: Session) -> None:
    out = Published()
    first_model_everywhere(session, out)
    rid = start(session, out, "m-2", 0.2)
    canary = out.messages[5][0]
    report(session, canary, out.last(canary).version, "rejected", "1", shadow="discarded", ts=T0 + 1)
    assert step(session, out, rid) == "halted"
    back = out.last(canary)
    assert back.model is not None and (back.model.version, back.model.mode) == ("1", "active") and back.version == 3
    assert {g for g, _ in out.messages[5:]} == {canary}  # the rest were never sent anything
    rollout = session.get(Rollout, rid)
    assert rollout is not None and "shadow alert rate too high" in (rollout.reason or "")
    with pytest.raises(RolloutError):
        rollouts.promote(session, rollout=rollout, actor="ops", publisher=out, base_url=BASE)


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
