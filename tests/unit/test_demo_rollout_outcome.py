"""The demo's verdict on a rollout: a canary verdict that halted the model (too many alert episodes) is the safety
net working, not a failed rollout; a target that could not apply the model is a failure."""

from __future__ import annotations

from typing import Any

import msgspec

from cloud.api_client.responses import Rollout
from deploy.demo_models import FleetOps

ROLLOUT: dict[str, Any] = {"id": 1, "model_stem": "cw_chilled-2", "profile": "chilled", "canary_fraction": 0.2,
                           "probation_s": 3600.0, "max_alert_ratio": 1.0, "created_by": "ops", "created_at": 0,
                           "updated_at": 0, "min_sensor_hours": 240.0, "alert_budget": 0.1, "counts": {}}
TARGET: dict[str, Any] = {"desired_version": None, "previous_model": None, "detail": None, "updated_at": 0}
SHADOW: dict[str, Any] = {"model_version": "2", "started_at": 1_767_225_600_000}


def rollout(state: str, *targets: dict[str, Any], decision: str | None = "halt") -> Rollout:
    return msgspec.convert(ROLLOUT | {
        "state": state, "evidence": None if decision is None else {"decision": decision},
        "targets": [TARGET | {"gateway_id": f"gw{i}"} | t | {"shadow": t["shadow"] and SHADOW | t["shadow"]}
                    for i, t in enumerate(targets)]}, Rollout)


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
