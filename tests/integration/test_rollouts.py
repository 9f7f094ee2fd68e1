"""Rollouts end to end: the registry, the rollout controller in the API, real ingest storing `reported`, real
mosquitto and ten real agents (.venv-edge, tflite-runtime) running a real int8 model trained in this run.

The tests share one fleet and run in file order: each rollout starts from the model the previous one left.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud.api_client.client import ApiError
from deploy.services import Influxd
from models.runtime.features import FeatureSpec
from models.runtime.manifest import generate_keypair
from models.runtime.tflite import TfliteModel
from models.training.evaluate import GRACE_MS, ModelDetector
from tests.conftest import CLOUD_BIN, require_binary
from tests.integration.cloud_harness import wait_until
from tests.integration.edge_harness import T0_MS, AgentProcess
from tests.integration.rollout_harness import Fleet, running_fleet, states
from tests.integration.site_data import site_data, store_site

pytestmark = pytest.mark.integration

GATEWAYS = [f"gw{i:02d}" for i in range(1, 11)]
PROBATION_S = 600.0  # ten minutes of reading time (frames are one simulated minute apart)
EVIDENCE_H = 0.4  # sensor-hours over the two canaries (one tag each): about 12 windows each


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, influxd: Influxd, edge_python: Path) -> Iterator[Fleet]:
    require_binary("mosquitto")
    with running_fleet(tmp_path_factory.mktemp("rollouts"), influxd, GATEWAYS) as fleet:
        yield fleet


def test_registry_verifies_uploads_and_serves_artifacts_only_with_a_token(fleet: Fleet) -> None:
    detail = fleet.push("chilled_ae-1")
    assert detail.stem == "chilled_ae-1" and detail.sha256 == fleet.model.manifest.sha256
    assert detail.manifest["threshold"] == fleet.model.manifest.threshold and detail.signature
    assert [m.stem for m in fleet.cloud.ops.models(profile="chilled")] == ["chilled_ae-1"]
    with pytest.raises(ApiError, match="409"):
        fleet.push("chilled_ae-1")  # a version is registered once
    forged = fleet.model.variant("66", threshold=0.5, private_pem=generate_keypair()[0])  # signed by a stranger
    with pytest.raises(ApiError, match="bad_signature"):
        fleet.push(forged.name[: -len(".tflite")])
    import httpx

    url = f"{fleet.cloud.url}/api/v1/artifacts/chilled_ae-1.tflite"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401
    token = (fleet.agents["gw01"].workdir / "artifact.token").read_text().strip()
    got = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
    assert got.status_code == 200 and got.content == fleet.model.files.model.read_bytes()


def test_a_first_model_is_judged_on_its_canary_against_the_alert_budget_then_reaches_every_gateway(
        fleet: Fleet) -> None:
    started = fleet.cloud.ops.start_rollout(model="chilled_ae-1", canary_fraction=0.2, probation_s=PROBATION_S,
                                            min_sensor_hours=EVIDENCE_H)
    rid = started.id
    canaries = sorted(states(started, "canary"))
    assert started.state == "canary" and len(canaries) == 2 and started.alert_budget == 0.1
    wait_until(lambda: set(states(fleet.rollout(rid), "canary").values()) == {"shadow"}, "the canaries' shadow")
    waiting = fleet.rollout(rid)
    assert waiting.state == "canary" and (waiting.verdict or "").startswith("not enough data yet: 0.0 "
                                                                           f"sensor-hours of {EVIDENCE_H:g}")
    assert {fleet.reported_model(gw) for gw in canaries} == {None}  # in shadow a first model raises nothing

    fleet.minutes(canaries, 45)  # windows from minute 29 (a full window of history): 16 each, 0.53 sensor-hours
    done = fleet.wait_state(rid, "completed")
    assert (done.verdict or "").startswith("promoted: first model: 0 alert episodes (0.00 per sensor-day) over "), \
        done.verdict
    assert "not above the alert budget 0.1" in done.verdict
    assert done.evidence["current_episodes"] is None and done.evidence["sensor_hours"] >= EVIDENCE_H
    assert set(states(done).values()) == {"applied"}
    assert {t.reported_model_version for t in done.targets} == {"1"}
    for t in done.targets:
        if t.role == "canary":
            assert t.shadow.state == "promoted" and t.shadow.active_episodes is None
    fleet.minutes([gw for gw in GATEWAYS if gw not in canaries], 45)  # fill every window before any shadow starts


def test_canary_shadows_is_promoted_and_the_rest_follow_an_offline_one_on_its_return(fleet: Fleet) -> None:
    fleet.model.variant("2", threshold=fleet.model.manifest.threshold)  # a sound candidate
    fleet.push("chilled_ae-2")
    started = fleet.cloud.ops.start_rollout(model="chilled_ae-2", canary_fraction=0.2, probation_s=PROBATION_S,
                                            min_sensor_hours=EVIDENCE_H)
    rid = started.id
    canaries = sorted(states(started, "canary"))
    rest = sorted(states(started, "rest"))
    assert len(canaries) == 2 and len(rest) == 8
    assert set(states(started, "canary").values()) == {"sent"} and set(states(started, "rest").values()) == {"waiting"}

    shadowing = wait_until(lambda: (r := fleet.rollout(rid)) and set(states(r, "canary").values()) == {"shadow"} and r,
                           "the canaries to report their shadow")
    assert shadowing.state == "canary" and set(states(shadowing, "rest").values()) == {"waiting"}
    assert all(t.shadow.state == "running" for t in shadowing.targets if t.role == "canary")
    assert {fleet.reported_model(gw) for gw in canaries} == {"1"}  # the active model still raises the alerts

    offline = rest[-1]
    fleet.agents[offline].terminate()  # away while the rest are sent the model
    wait_until(lambda: fleet.cloud.ops.request("GET", f"/api/v1/gateways/{offline}")["status"] == "offline",
               "the gateway to be seen offline")

    fleet.minutes(canaries, 15)  # evidence and probation pass in reading time
    promoting = wait_until(lambda: (r := fleet.rollout(rid)).state != "canary" and r, "the canaries' verdict")
    assert promoting.state == "promoting", promoting
    assert promoting.verdict.startswith("promoted: candidate 0 alert episodes (0.00 per sensor-day) vs 0 for the "
                                        "current model"), promoting.verdict
    evidence = promoting.evidence
    assert evidence["sensor_hours"] >= EVIDENCE_H and evidence["canaries"] == 2 and evidence["decision"] == "promote"

    online_rest = [gw for gw in rest if gw != offline]
    waiting = wait_until(lambda: (r := fleet.rollout(rid)) and all(
        states(r)[gw] == "applied" for gw in canaries + online_rest) and r, "the online rest to apply")
    assert waiting.state == "promoting" and states(waiting)[offline] == "sent"
    assert {fleet.reported_model(gw) for gw in canaries + online_rest} == {"2"}
    for t in waiting.targets:
        if t.role == "canary":  # the gateway's last word on its probation came with the promotion
            assert t.shadow.state == "promoted" and t.shadow.windows >= 10
            assert t.shadow.shadow_episodes == t.shadow.active_episodes == 0

    fleet.agents[offline].start()  # the retained desired state is waiting for it at the broker
    done = fleet.wait_state(rid, "completed")
    assert set(states(done).values()) == {"applied"} and fleet.reported_model(offline) == "2"


def test_a_candidate_raising_more_alerts_is_halted_at_the_canary_which_returns_to_the_previous_model(
        fleet: Fleet) -> None:
    fleet.model.variant("3", threshold=-1e9)  # every window above threshold (scores are logits): an alert each
    fleet.push("chilled_ae-3")
    started = fleet.cloud.ops.start_rollout(model="chilled_ae-3", canary_fraction=0.2, probation_s=PROBATION_S,
                                            min_sensor_hours=EVIDENCE_H)
    rid = started.id
    canaries = sorted(states(started, "canary"))
    assert {t.previous_model for t in started.targets} == {"chilled_ae-2"}
    wait_until(lambda: set(states(fleet.rollout(rid), "canary").values()) == {"shadow"}, "the canaries' shadow")

    fleet.minutes(canaries, 15)
    halted = fleet.wait_state(rid, "halted")
    assert (halted.reason or "").startswith("halted: candidate 2 alert episodes"), halted.reason
    assert "vs 0 for the current model" in halted.reason and halted.evidence["decision"] == "halt"
    assert set(states(halted, "canary").values()) == {"reverted"}
    assert set(states(halted, "rest").values()) == {"waiting"}  # never sent
    wait_until(lambda: all((t := {x.gateway_id: x for x in fleet.rollout(rid).targets}[gw]).reported_result
                           == "applied" and t.reported_model_version == "2" for gw in canaries),
               "the canaries to run the previous model again")
    assert {fleet.reported_model(gw) for gw in GATEWAYS} == {"2"}
    assert all(t.shadow.state == "discarded" for t in fleet.rollout(rid).targets if t.role == "canary")
    audit = fleet.cloud.ops.request("GET", "/api/v1/audit", params={"target_type": "rollout", "target_id": str(rid)})
    assert audit[0]["action"] == "rollout.halted" and audit[0]["actor"] == "controller"


def test_a_model_needing_a_newer_agent_is_refused_by_the_rollout(fleet: Fleet) -> None:
    import dataclasses

    from models.runtime.manifest import write_signed

    for version, minimum in (("30", "99.0"), ("31", "0.1")):
        fleet.model.variant(version, threshold=fleet.model.manifest.threshold)
        write_signed(dataclasses.replace(fleet.model.manifest, version=version, min_agent_version=minimum),
                     fleet.model.directory, fleet.model.private_pem)
        assert fleet.push(f"chilled_ae-{version}").manifest["min_agent_version"] == minimum
    agent_version = fleet.cloud.ops.request("GET", "/api/v1/gateways/gw08")["agent_version"]
    with pytest.raises(ApiError, match="422") as refused:
        fleet.cloud.ops.start_rollout(model="chilled_ae-30", gateways=["gw08", "gw09"], canary_fraction=0.0)
    assert "needs coldwatch-agent 99.0 or newer" in str(refused.value)
    assert f"gw08 ({agent_version})" in str(refused.value) and f"gw09 ({agent_version})" in str(refused.value)
    started = fleet.cloud.ops.start_rollout(model="chilled_ae-31", gateways=["gw08"], canary_fraction=0.0)
    assert fleet.wait_state(started.id, "completed").targets[0].reported_model_version == "31"
    back = fleet.cloud.ops.rollout_action(started.id, "rollback", "back to model 2")
    assert back.state == "rolled_back"
    wait_until(lambda: fleet.reported_model("gw08") == "2", "gw08 back on model 2")


def test_key_rotation_a_new_key_is_used_only_once_every_gateway_trusts_both(fleet: Fleet) -> None:
    password, token_file = fleet.cloud.provision("gw11", fleet.root / "gw11")
    old_only = (f'[updater]\npublic_keys = ["{fleet.model.public_key}"]\ntoken_file = "{token_file}"\n'
                f'api_url = "{fleet.cloud.url}"\n')
    late = fleet.agents["gw11"] = AgentProcess(fleet.root / "gw11", fleet.broker_port, gateway="gw11",
                                               password=password, extra=old_only).start()
    first = fleet.cloud.ops.start_rollout(model="chilled_ae-2", canary_fraction=0.0, gateways=["gw11"])
    fleet.wait_state(first.id, "completed")

    fleet.model.variant("4", threshold=fleet.model.manifest.threshold, private_pem=fleet.second_key)
    fleet.push("chilled_ae-4")  # the registry trusts both keys during the overlap
    group = ["gw01", "gw02", "gw11"]
    too_early = fleet.cloud.ops.start_rollout(model="chilled_ae-4", canary_fraction=0.0, gateways=group)
    halted = fleet.wait_state(too_early.id, "halted")  # gw11 does not know the new key yet
    assert "gw11" in halted.reason and "bad_signature" in halted.reason
    wait_until(lambda: {fleet.reported_model(gw) for gw in group} == {"2"}, "the group back on model 2")

    late.terminate()  # step 1 of the procedure: every gateway gets the new key beside the old one
    late.config.write_text(late.config.read_text().replace(
        f'public_keys = ["{fleet.model.public_key}"]',
        f'public_keys = ["{fleet.model.public_key}", "{fleet.second_public}"]'))
    late.start()
    done = fleet.wait_state(fleet.cloud.ops.start_rollout(model="chilled_ae-4", canary_fraction=0.0,
                                                          gateways=group).id, "completed")
    assert {t.reported_model_version for t in done.targets} == {"4"}


def _cli(fleet: Fleet, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLDWATCH_API_TOKEN": fleet.cloud.token, "COLDWATCH_API_URL": fleet.cloud.url}
    return subprocess.run([str(CLOUD_BIN / "coldwatch"), *args], env=env, capture_output=True, text=True, timeout=120)


def test_ops_push_start_status_and_roll_back_from_the_terminal(fleet: Fleet) -> None:
    fleet.model.variant("5", threshold=fleet.model.manifest.threshold)
    pushed = _cli(fleet, "models", "push", str(fleet.model.directory / "chilled_ae-5.tflite"))
    assert pushed.returncode == 0 and json.loads(pushed.stdout)["stem"] == "chilled_ae-5", pushed.stderr
    group = ["gw03", "gw04", "gw05"]
    started = _cli(fleet, "rollouts", "start", "chilled_ae-5", "--gateways", ",".join(group), "--canary-fraction", "0")
    assert started.returncode == 0, started.stderr
    rid = json.loads(started.stdout)["id"]
    fleet.wait_state(rid, "completed")
    assert {fleet.reported_model(gw) for gw in group} == {"5"}

    back = _cli(fleet, "rollouts", "rollback", str(rid), "--reason", "customer asked")
    assert back.returncode == 0 and json.loads(back.stdout)["state"] == "rolled_back"
    wait_until(lambda: {fleet.reported_model(gw) for gw in group} == {"2"}, "the group back on model 2")
    status = _cli(fleet, "rollouts", "status", str(rid))
    assert status.returncode == 0 and "rolled_back" in status.stdout and "customer asked" in status.stdout
    assert all(gw in status.stdout for gw in group)
    refused = _cli(fleet, "rollouts", "halt", str(rid))
    assert refused.returncode == 1 and "409" in refused.stderr
    unauthenticated = subprocess.run([str(CLOUD_BIN / "coldwatch"), "rollouts", "status"], capture_output=True,
                                     text=True, env={k: v for k, v in os.environ.items() if k != "COLDWATCH_API_TOKEN"})
    assert unauthenticated.returncode == 1 and "COLDWATCH_API_TOKEN" in unauthenticated.stderr


def test_ops_promote_during_the_canary_probation(fleet: Fleet) -> None:
    group = ["gw06", "gw07"]
    started = _cli(fleet, "rollouts", "start", "chilled_ae-5", "--gateways", ",".join(group), "--canaries", "gw06",
                   "--probation-s", "86400")  # a day of probation: ops decide before it ends
    assert started.returncode == 0, started.stderr
    rid = json.loads(started.stdout)["id"]
    wait_until(lambda: states(fleet.rollout(rid), "canary") == {"gw06": "shadow"}, "the canary's shadow")
    promoted = _cli(fleet, "rollouts", "promote", str(rid))
    assert promoted.returncode == 0 and json.loads(promoted.stdout)["state"] == "promoting"
    try:
        fleet.wait_state(rid, "completed", timeout=20)
    finally:
        _cli(fleet, "rollouts", "rollback", str(rid))


# -- retraining from staff labels ---------------------------------------------------------------------------

SITE_T0 = T0_MS + 40 * 86_400_000  # away from the agents' readings (same profile, same database)


def test_retraining_on_resolved_alerts_stops_firing_on_false_alarms_and_keeps_the_incidents(
        fleet: Fleet, tmp_path: Path) -> None:
    if not fleet.cloud.ops.models(profile="chilled"):
        fleet.push("chilled_ae-1")  # the current model: trained on the simulator only (when run alone)
    series, windows = site_data(SITE_T0)
    ids = store_site(series, windows, influx_url=fleet.cloud.settings.influx_url,
                     influx_db=fleet.cloud.settings.influx_db, database_url=fleet.cloud.settings.database_url)
    for aid, (_, _, _, code) in zip(ids, windows, strict=True):  # staff close the loop
        fleet.cloud.ops.request("POST", f"/api/v1/alerts/{aid}/resolve", json={"reason_code": code})
    end = SITE_T0 + 2 * 86_400_000
    job = fleet.cloud.ops.queue_training(profile="chilled", start=SITE_T0, end=end, epochs=24, version="9")
    assert job.state == "queued"
    key = tmp_path / "fleet.key"
    key.write_bytes(fleet.model.private_pem)
    env = {**os.environ, "COLDWATCH_API_TOKEN": fleet.cloud.token, "COLDWATCH_SIGNING_KEY_FILE": str(key)}
    worker = subprocess.run([str(CLOUD_BIN / "coldwatch"), "train-worker", "--once", "--api-url", fleet.cloud.url,
                             "--work-dir", str(tmp_path / "work")], env=env, capture_output=True, text=True,
                            timeout=600)
    done = fleet.cloud.ops.training_job(job.id)
    assert str(key) not in worker.stderr and str(key) not in done.log  # the key stays where it is used
    evaluation = done.result.evaluation  # kept on the job whether the gate passed it or not
    before, after = evaluation.current, evaluation.candidate
    assert before.benign_windows == after.benign_windows == 24
    # The simulator-only classifier already stays quiet on most of the site's loading windows (the autoencoder
    # fired on 8 or more); the retrained one must fire on none and still catch both excursions.
    assert after.benign_windows_alerted == 0 <= before.benign_windows_alerted
    assert after.recall == 1.0 >= before.recall
    if done.state == "failed":
        # The level-free candidate may see the excursions later than the 4-sensor model it is compared with; the
        # gate then refuses it on delay alone, and says so
        # (docs/decisions.md#retraining-gate-synthetic-faults-in-the-jobs-own-readings).
        reasons = evaluation.gate.reasons
        assert worker.returncode == 1 and reasons and all(r.startswith("median delay") for r in reasons), reasons
        return
    assert worker.returncode == 0 and done.state == "succeeded", (done.log, worker.stderr[-3000:])
    assert "registered cw_chilled-9" in done.log and "gate passed=True" in done.log
    assert done.model_stem == "cw_chilled-9" and done.progress == 1.0

    registered = fleet.cloud.ops.model("cw_chilled-9")  # signed, registered, and measured again here
    assert registered.source == f"training-job:{job.id}"
    assert registered.manifest["training_range"]["labels"]["loading"] == 24
    metrics = registered.manifest["metrics"]  # the shipped threshold was calibrated on the int8 model's scores
    assert isinstance(metrics["threshold_fp32"], float) and metrics["int8_accepted_by"] in ("episodes", "same_scores")
    assert metrics["int8_episodes"]["normal_sensor_days"] > 0
    model_file = tmp_path / "cw_chilled-9.tflite"
    model_file.write_bytes(fleet.cloud.ops.download("cw_chilled-9.tflite"))
    detector = ModelDetector(FeatureSpec.from_dict(registered.manifest["feature_spec"]),
                             registered.manifest["threshold"], TfliteModel(model_file).outputs)
    by_sensor = {s.sensor: detector.alerts(s) for s in series}
    fired = [w for w in windows if any(a.opened_ms <= w[2] + GRACE_MS and a.end_ms >= w[1] for a in by_sensor[w[0]])]
    assert [w[3] for w in fired] == ["real_excursion", "real_excursion"]
