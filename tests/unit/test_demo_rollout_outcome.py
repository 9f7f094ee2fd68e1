"""The demo's verdict on a rollout: a canary whose shadow discarded the model is the safety net working, not a
failed rollout; a target that could not apply the model is a failure."""

from __future__ import annotations

from typing import Any

from deploy.demo_models import FleetOps


def rollout(state: str, *targets: dict[str, Any]) -> dict[str, Any]:
    return {"state": state, "targets": list(targets)}


CANARY_DISCARDED = {"role": "canary", "state": "reverted", "shadow": {"state": "discarded"}}
REST_WAITING = {"role": "rest", "state": "waiting", "shadow": None}


def test_a_canary_that_discarded_the_model_is_not_a_failure() -> None:
    assert FleetOps._canary_refused(rollout("halted", CANARY_DISCARDED, REST_WAITING))


def test_a_target_that_could_not_apply_the_model_is_a_failure() -> None:
    bad_hash = {"role": "canary", "state": "reverted", "shadow": None}  # rejected before any shadow ran
    assert not FleetOps._canary_refused(rollout("halted", bad_hash, REST_WAITING))
    rest_failed = {"role": "rest", "state": "reverted", "shadow": None}
    assert not FleetOps._canary_refused(rollout("halted", CANARY_DISCARDED, rest_failed))
    assert not FleetOps._canary_refused(rollout("rolled_back", CANARY_DISCARDED, REST_WAITING))
    assert not FleetOps._canary_refused(rollout("completed", {"role": "canary", "state": "applied",
                                                               "shadow": {"state": "promoted"}}))
