"""The demo's verdict on a rollout: a canary verdict that halted the model (too many alert episodes) is the safety
net working, not a failed rollout; a target that could not apply the model is a failure."""

from __future__ import annotations

from typing import Any

from deploy.demo_models import FleetOps


def rollout(state: str, *targets: dict[str, Any], decision: str | None = "halt") -> dict[str, Any]:
    return {"state": state, "targets": list(targets), "evidence": None if decision is None else {"decision": decision}}


CANARY_BACK = {"role": "canary", "state": "reverted", "shadow": {"state": "discarded"}}
REST_WAITING = {"role": "rest", "state": "waiting", "shadow": None}


def test_a_canary_verdict_that_halted_the_model_is_not_a_failure() -> None:
    assert FleetOps._canary_refused(rollout("halted", CANARY_BACK, REST_WAITING))
    assert FleetOps._canary_refused(rollout("halted", CANARY_BACK))  # a first model: one gateway, the canary


def test_a_target_that_could_not_apply_the_model_is_a_failure() -> None:
    bad_hash = {"role": "canary", "state": "reverted", "shadow": None}  # rejected before any verdict
    assert not FleetOps._canary_refused(rollout("halted", bad_hash, REST_WAITING, decision=None))
    assert not FleetOps._canary_refused(rollout("halted", bad_hash, REST_WAITING, decision="wait"))
    rest_failed = {"role": "rest", "state": "reverted", "shadow": None}
    assert not FleetOps._canary_refused(rollout("halted", CANARY_BACK, rest_failed))
    assert not FleetOps._canary_refused(rollout("rolled_back", CANARY_BACK, REST_WAITING))
    assert not FleetOps._canary_refused(rollout("completed", {"role": "canary", "state": "applied",
                                                               "shadow": {"state": "promoted"}}, decision="promote"))
