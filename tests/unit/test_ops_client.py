"""The ops API client's typed responses (cloud/api_client/responses.py), the CLI's output from them, and the training
worker on a job it cannot read; the API is an httpx.MockTransport."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from cloud.api_client.client import ApiError, MalformedJob, OpsClient
from cloud.api_client.responses import ModelFigures, Rollout, TrainingJob
from cloud.cli import ops as ops_cli
from cloud.training import worker
from models.training.evaluate import Tally

T0 = 1_767_225_600_000
SHADOW = {"model_version": "2", "state": "running", "started_at": T0, "windows": 12, "active_alerts": 0,
          "shadow_alerts": 1, "score_drift": 0.25, "reason": "", "last_at": T0 + 60_000, "sensor_hours": 0.2,
          "shadow_episodes": 1, "active_episodes": 0}
ROLLOUT = {"model_stem": "cw_chilled-2", "profile": "chilled", "state": "canary", "canary_fraction": 0.5,
           "probation_s": 3600.0, "max_alert_ratio": 1.0, "created_by": "ops", "created_at": T0, "updated_at": T0,
           "reason": None, "min_sensor_hours": 240.0, "alert_budget": 0.1, "verdict": "not enough data yet",
           "evidence": {"decision": "wait", "sensor_hours": 0.2, "current_episodes": None}, "id": 7,
           "counts": {"waiting": 1, "sent": 0, "shadow": 1, "applied": 0, "failed": 0, "reverted": 0},
           "targets": [
               {"gateway_id": "gw01", "role": "canary", "state": "shadow", "desired_version": 3,
                "previous_model": "cw_chilled-1", "detail": None, "updated_at": T0, "reported_result": "shadow",
                "reported_model_version": "1", "gateway_status": "online", "shadow": SHADOW},
               {"gateway_id": "gw02", "role": "rest", "state": "waiting", "desired_version": None,
                "previous_model": None, "detail": None, "updated_at": T0, "reported_result": None,
                "reported_model_version": None, "gateway_status": "online", "shadow": None}]}
JOB = {"profile": "chilled", "start": T0, "end": T0 + 86_400_000, "epochs": 8, "seed": 0, "version": None,
       "state": "running", "stage": "train", "progress": 0.2, "worker": "w1", "model_stem": None, "error": None,
       "created_by": "ops", "created_at": T0, "started_at": T0, "finished_at": None, "id": 3, "result": None,
       "log": "query\ntrain\n"}

Handler = Callable[[httpx.Request], httpx.Response]


def client(routes: dict[tuple[str, str], Any], seen: list[httpx.Request] | None = None) -> OpsClient:
    """An OpsClient answered from `routes` ((method, path) → JSON body; an httpx.Response as is)."""
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        body = routes[(request.method, request.url.path)]
        return body if isinstance(body, httpx.Response) else httpx.Response(200, json=body)

    return OpsClient(url="http://api.test", token="t", transport=httpx.MockTransport(handle))


def test_responses_decode_into_structs_and_ignore_fields_they_do_not_know() -> None:
    api = client({("GET", "/api/v1/rollouts/7"): ROLLOUT | {"added_later": 1},
                  ("GET", "/api/v1/training-jobs/3"): JOB})
    rollout = api.rollout(7)
    assert isinstance(rollout, Rollout) and rollout.targets[0].shadow is not None
    assert rollout.targets[0].shadow.shadow_episodes == 1 and rollout.targets[1].shadow is None
    assert rollout.evidence == ROLLOUT["evidence"]
    assert msgspec.to_builtins(rollout) == ROLLOUT  # nothing the API sent is lost or added
    job = api.training_job(3)
    assert isinstance(job, TrainingJob) and (job.id, job.epochs, job.version) == (3, 8, None)


def test_a_response_that_does_not_fit_is_an_api_error_naming_the_call() -> None:
    api = client({("GET", "/api/v1/rollouts/7"): ROLLOUT | {"id": "seven"},
                  ("GET", "/api/v1/audit"): [{"action": "rollout.halted"}]})
    with pytest.raises(ApiError, match=r"GET /api/v1/rollouts/7: unexpected response: .*\$\.id"):
        api.rollout(7)
    assert api.request("GET", "/api/v1/audit") == [{"action": "rollout.halted"}]  # untyped: plain JSON


def test_start_rollout_sends_only_what_was_given() -> None:
    seen: list[httpx.Request] = []
    api = client({("POST", "/api/v1/rollouts"): ROLLOUT}, seen)
    api.start_rollout(model="cw_chilled-2", gateways=["gw01", "gw02"], canary_fraction=0.5, alert_budget=None)
    assert json.loads(seen[0].content) == {"model": "cw_chilled-2", "gateways": ["gw01", "gw02"],
                                           "canary_fraction": 0.5}


def test_the_cli_prints_the_api_json_and_the_status_table(capsys: pytest.CaptureFixture[str]) -> None:
    api = client({("GET", "/api/v1/rollouts/7"): ROLLOUT, ("GET", "/api/v1/training-jobs/3"): JOB})
    status = argparse.Namespace(command="rollouts", rollouts_command="status", rollout=7, json=True)
    assert ops_cli._dispatch(api, status) == 0
    assert capsys.readouterr().out == json.dumps(ROLLOUT, indent=2, sort_keys=True) + "\n"
    assert ops_cli._dispatch(api, argparse.Namespace(**{**vars(status), "json": False})) == 0
    assert capsys.readouterr().out.splitlines() == [
        "rollout 7  model cw_chilled-2  state canary",
        "  waiting=1  shadow=1",
        "  verdict: not enough data yet",
        "  gateway             role    state     reported    model       shadow",
        "  gw01                canary  shadow    shadow      1           running sensor-hours=0.2 episodes "
        "new/current=1/0 windows=12",
        "  gw02                rest    waiting   -           -           "]
    assert ops_cli._dispatch(api, argparse.Namespace(command="training", training_command="status", job=3)) == 0
    rest = {k: v for k, v in JOB.items() if k != "log"}
    assert capsys.readouterr().out == "query\ntrain\n" + json.dumps(rest, indent=2, sort_keys=True) + "\n"


def test_a_claimed_job_the_worker_cannot_read_is_failed_not_left_running(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = tmp_path / "key"
    key.write_bytes(b"not used")
    monkeypatch.setenv(worker.KEY_ENV, str(key))
    seen: list[httpx.Request] = []
    api = client({("POST", "/api/v1/training-jobs/claim"): JOB | {"epochs": "eight"},
                  ("POST", "/api/v1/training-jobs/3/progress"): JOB | {"state": "failed"}}, seen)
    with pytest.raises(MalformedJob) as malformed:
        api.claim_training("w1")
    assert malformed.value.job_id == 3 and "$.epochs" in str(malformed.value)
    assert worker.run_worker(api, worker="w1", once=True, poll_s=0, work_dir=tmp_path / "work", device=None) == 1
    report = json.loads(seen[-1].content)
    assert seen[-1].url.path == "/api/v1/training-jobs/3/progress" and report["state"] == "failed"
    assert report["error"].startswith("malformed job: POST /api/v1/training-jobs/claim: unexpected response")
    nothing = client({("POST", "/api/v1/training-jobs/claim"): httpx.Response(204)})
    assert nothing.claim_training("w1") is None


def test_model_figures_hold_every_figure_the_evaluation_measures() -> None:
    """A figure Tally.summary() gains must be added to ModelFigures, or a job's evaluation would drop it."""
    measured = set(Tally().summary()) | {"benign_windows", "benign_windows_alerted", "synthetic_fault_recall"}
    assert measured == set(ModelFigures.__struct_fields__)
