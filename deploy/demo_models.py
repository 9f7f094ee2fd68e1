"""The demo's ops flow: the first model of each profile trained (cached under var/demo-models/), signed with a demo
fleet key, registered through the API and rolled out through a canary (scored in shadow, judged against the alert
budget on its alert episodes); during the run one profile retrained by a training job (`coldwatch train-worker
--once`, on the readings the demo itself stored) and rolled out as a canary judged against the current model; and
each rollout's verdict and each gateway's outcome for the summary.

Everything goes through the same API, CLI and agents an operator uses (docs/rollouts.md); nothing here trains,
signs or publishes on its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import httpx

from cloud.api_client.client import OpsClient
from cloud.api_client.responses import Rollout
from deploy.stack import CLOUD_BIN, ROOT, Gateway, LocalStack
from models.runtime.manifest import ModelFiles, ModelRejected, load_public_key, load_verified

CACHE: Final = ROOT / "var" / "demo-models"
# `coldwatch models train`'s defaults: a cold start on two cores trains the three profiles in about a minute.
# Smaller models (16 sensors × 3 days) calibrated their thresholds 4× higher and missed the cold room's door left
# open while its compressor held the air just under 4 °C.
TRAIN: Final = {"sensors": 50, "days": 7, "epochs": 8}
FIRST_VERSION: Final = "1"
RETRAIN_VERSION: Final = "2"
RETRAIN_PROFILE: Final = "chilled"
RETRAIN_AT: Final = 0.22  # of the simulated day: 5.3 h of readings, before any scenario's incident (≥ 6 h)
RETRAIN_EPOCHS: Final = 40  # ~600 windows: 8 epochs are 24 optimiser steps, too few for the gate to pass often
CANARY_FRACTION: Final = 0.34  # a third of the profile's gateways, at least one
PROBATION_S: Final = 7200.0  # the retrain's canary: two hours of reading time (seconds of simulated time)
FIRST_PROBATION_S: Final = 3600.0  # a first model's canary: an hour of reading time
# Evidence before a verdict: two hours of a site's eight tags. The production default (240 sensor-hours) would take
# 30 simulated hours of one demo site; with 16 the verdict comes before the scenarios' incidents (≥ 6 h into the day),
# and a model within the budget of 0.1 alerts per sensor-day may raise none in them.
EVIDENCE_SENSOR_HOURS: Final = 16.0
STATUS_INTERVAL_S: Final = 2.0  # agents report a running shadow this often (wall time; 16 simulated minutes at 180 s)
FAILED_STATES: Final = ("halted", "rolled_back")


@dataclass(frozen=True)
class FleetKey:
    """The demo fleet's Ed25519 key pair (the private key stays on this machine, mode 0600)."""

    private: Path
    public: Path


def fleet_key(cache: Path = CACHE) -> FleetKey:
    """The cached demo fleet key, generated once with `coldwatch models keygen`."""
    key = FleetKey(cache / "keys" / "demo-fleet.key", cache / "keys" / "demo-fleet.pub")
    if not (key.private.is_file() and key.public.is_file()):
        for stale in (key.private, key.public):
            stale.unlink(missing_ok=True)
        subprocess.run([str(CLOUD_BIN / "coldwatch"), "models", "keygen", "--out", str(key.private.parent),
                        "--name", "demo-fleet"], check=True, capture_output=True, timeout=60)
    return key


def _cached(folder: Path, stem: str, key: FleetKey) -> Path | None:
    """The cached model's folder when it is there and verifies with the fleet key."""
    try:
        load_verified(folder / stem, [load_public_key(key.public.read_bytes())])
    except (ModelRejected, OSError, ValueError):
        return None
    return folder / stem


TRAINING_CODE = ("models", "firmware_sim")  # what a cached model was made from


def training_code_tag() -> str:
    """A short hash of the training code and the data it trains on (every .py under models/ and firmware_sim/,
    sub-packages included): a cached model is reused only while they are unchanged."""
    digest = hashlib.sha256()
    for path in sorted(p for folder in TRAINING_CODE for p in (ROOT / folder).rglob("*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:10]


def first_models(profiles: list[str], key: FleetKey, logs: Path, say: Callable[[str], None] = print,
                 cache: Path = CACHE) -> dict[str, Path]:
    """The first model of each profile (folder of `cw_<profile>-1`): from the cache, else trained now with
    `coldwatch models train` (simulated normal data, int8 export checked against fp32, signed)."""
    tag = "s{sensors}d{days}e{epochs}".format(**TRAIN) + "-" + training_code_tag()
    found: dict[str, Path] = {}
    for profile in profiles:
        folder, stem = cache / f"{profile}-{tag}", f"cw_{profile}-{FIRST_VERSION}"
        model = _cached(folder, stem, key)
        if model is not None:
            say(f"==> model {stem}: cached ({model.relative_to(ROOT) if model.is_relative_to(ROOT) else model})")
            found[profile] = model
            continue
        for stale in cache.glob(f"{profile}-s*"):  # trained by other code or settings
            if stale != folder:
                shutil.rmtree(stale, ignore_errors=True)
        t0 = time.monotonic()
        say(f"==> training {stem} ({TRAIN['sensors']} simulated sensors × {TRAIN['days']} days, "
            f"{TRAIN['epochs']} epochs; int8 export; signing) ...")
        log = logs / f"train-{profile}.log"
        with log.open("wb") as out:
            done = subprocess.run(
                [str(CLOUD_BIN / "coldwatch"), "models", "train", "--profile", profile, "--version", FIRST_VERSION,
                 "--sensors", str(TRAIN["sensors"]), "--days", str(TRAIN["days"]), "--epochs", str(TRAIN["epochs"]),
                 "--key", str(key.private), "--out", str(folder)], stdout=out, stderr=subprocess.STDOUT, timeout=600)
        model = _cached(folder, stem, key) if done.returncode == 0 else None
        if model is None:
            raise RuntimeError(f"training {stem} failed (exit {done.returncode}); see {log}")
        manifest = json.loads(ModelFiles.locate(model).manifest.read_text())
        say(f"    done in {time.monotonic() - t0:.1f} s (threshold {manifest['threshold']:.3g}, "
            f"{ModelFiles.locate(model).model.stat().st_size // 1024} KB)")
        found[profile] = model
    return found


def timed(what: str, action: Callable[[], object], say: Callable[[str], None] = print) -> None:
    """A progress step with its duration, as the stack prints them."""
    t0 = time.monotonic()
    say(f"==> {what} ...")
    action()
    say(f"    done in {time.monotonic() - t0:.1f} s")


def api_env(stack: LocalStack, key: FleetKey) -> dict[str, str]:
    """What the API needs for the registry, rollouts and provisioning at this stack's broker; it signs desired
    documents with the demo fleet key the agents trust."""
    assert stack.mosquitto is not None and stack.mosquitto.proc is not None
    pid_file = stack.workdir / "mosquitto.pid"
    pid_file.write_text(f"{stack.mosquitto.proc.pid}\n")
    return {"COLDWATCH_MODEL_PUBLIC_KEYS": str(key.public),
            "COLDWATCH_DESIRED_SIGNING_KEY": str(key.private),
            "COLDWATCH_MODELS_DIR": str(stack.workdir / "registry"),
            "COLDWATCH_MOSQUITTO_PASSWD_FILE": str(stack.mosquitto.workdir / "passwd"),
            "COLDWATCH_MOSQUITTO_PID_FILE": str(pid_file),
            "COLDWATCH_ROLLOUT_INTERVAL_S": "1"}


def profile_of(gw: Gateway) -> str:
    """The profile a demo gateway's tags share (each demo site holds one kind of goods)."""
    return gw.sensors[0].profile


@dataclass
class FleetOps:
    """The ops side of the demo: provisioning, registry, rollouts and one retrain, through the API."""

    stack: LocalStack
    key: FleetKey
    admin_password: str
    say: Callable[[str], None] = print
    rollout_ids: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the retrain did, for the summary
    problems: list[str] = field(default_factory=list)  # what went wrong in the ops flow (fails the demo)

    def __post_init__(self) -> None:
        login = httpx.post(f"{self.stack.api_url}/api/v1/auth/login",
                           json={"username": "admin", "password": self.admin_password}, timeout=30)
        login.raise_for_status()
        self.token: str = login.json()["access_token"]
        self.ops = OpsClient(url=self.stack.api_url, token=self.token)
        self._thread: threading.Thread | None = None

    def provision(self) -> None:
        """Each gateway provisioned through the API (its MQTT password, the broker reloaded) with an artifact
        token, and its agent told the fleet key: the `[updater]` section an installer writes."""
        for gw in self.stack.gateways:
            gw.password = self.ops.provision_gateway(gw.gateway_id, site=gw.gateway_id).mqtt_password
            token = self.ops.artifact_token(gw.gateway_id).token
            token_file = self.stack.workdir / "agents" / gw.gateway_id / "artifact.token"
            token_file.parent.mkdir(parents=True, exist_ok=True)
            token_file.write_text(token + "\n")
            token_file.chmod(0o600)
            gw.agent_extra = f'\n[updater]\npublic_keys = ["{self.key.public}"]\ntoken_file = "{token_file}"\n'
            gw.agent_extra += f'api_url = "{self.stack.api_url}"\n'  # the token goes nowhere else
            gw.status_interval_s = STATUS_INTERVAL_S

    def register(self, models: dict[str, Path]) -> list[str]:
        """Upload the signed models to the registry (the API verifies signature and hash)."""
        return [self.ops.push_model(folder, source="demo").stem for folder in models.values()]

    def gateways_of(self, profile: str) -> list[str]:
        return [gw.gateway_id for gw in self.stack.gateways if profile_of(gw) == profile]

    def roll_out_first(self, stems: list[str], timeout: float = 90.0) -> None:
        """One rollout per profile to the gateways holding it, through a canary: it scores the model in shadow (a
        first model raises nothing there) until EVIDENCE_SENSOR_HOURS of readings are in, and the rollout promotes it
        if its alert episodes per sensor-day are within the model's alert budget. Returns once every canary is
        scoring (the simulated day starts then); the verdicts come during the day."""
        self._wait_agents_known(timeout)  # a model may name a minimum agent version: the rollout checks it
        for stem in stems:
            profile = stem.split("-", 1)[0].removeprefix("cw_")
            started = self.ops.start_rollout(model=stem, gateways=self.gateways_of(profile),
                                             canary_fraction=CANARY_FRACTION, probation_s=FIRST_PROBATION_S,
                                             min_sensor_hours=EVIDENCE_SENSOR_HOURS)
            self.rollout_ids.append(started.id)
        deadline = time.monotonic() + timeout
        rollouts: list[Rollout] = []
        while time.monotonic() < deadline:
            rollouts = [self.ops.rollout(rid) for rid in self.rollout_ids]
            if all(r.state != "canary" or all(t.state != "sent" for t in r.targets if t.role == "canary")
                   for r in rollouts):
                break
            time.sleep(0.5)
        for r in rollouts:
            canaries = {t.gateway_id: t.state for t in r.targets if t.role == "canary"}
            if r.state != "canary" or set(canaries.values()) != {"shadow"}:
                self.problems.append(f"rollout #{r.id} {r.model_stem} is {r.state} (canaries: "
                                     f"{canaries}): {r.reason or ''}")

    def _wait_rollouts_done(self, group: list[str], timeout: float = 60.0) -> None:
        """Until no rollout the demo started holds a gateway of `group` (two cannot hold one at once)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            busy = [r for r in (self.ops.rollout(rid) for rid in self.rollout_ids) if r.state in (
                "canary", "promoting") and any(t.gateway_id in group for t in r.targets)]
            if not busy:
                return
            time.sleep(0.5)

    def _wait_agents_known(self, timeout: float) -> None:
        """Until ingest has stored every agent's status (its agent version)."""
        deadline = time.monotonic() + timeout
        for gw in self.stack.gateways:
            while not self.ops.gateway(gw.gateway_id).agent_version:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{gw.gateway_id} reported no agent version within {timeout:.0f} s")
                time.sleep(0.25)

    def retrain_later(self, sim_start_ms: int, play_s: float, stop: threading.Event) -> None:
        """In a thread: when RETRAIN_AT of the day's readings are stored, retrain RETRAIN_PROFILE on them and roll
        the new version out as a canary."""
        def run() -> None:
            if stop.wait(RETRAIN_AT * play_s):
                return
            try:
                self._retrain(sim_start_ms, sim_start_ms + int(RETRAIN_AT * 86_400_000))
            except Exception as exc:  # the thread's boundary: whatever broke the ops flow fails the demo visibly
                self.problems.append(f"retrain of {RETRAIN_PROFILE}: {type(exc).__name__}: {exc}")
                self.say(f"    retrain failed: {exc}")

        self._thread = threading.Thread(target=run, name="demo-retrain", daemon=True)
        self._thread.start()

    def _retrain(self, start_ms: int, end_ms: int) -> None:
        t0 = time.monotonic()
        hours = (end_ms - start_ms) / 3_600_000
        self.say(f"==> retraining {RETRAIN_PROFILE} on the {hours:.1f} h of readings stored so far "
                 f"(a training job, `coldwatch train-worker --once`) ...")
        job = self.ops.queue_training(profile=RETRAIN_PROFILE, start=start_ms, end=end_ms, epochs=RETRAIN_EPOCHS,
                                      version=RETRAIN_VERSION)
        env = os.environ | {"COLDWATCH_API_TOKEN": self.token, "COLDWATCH_SIGNING_KEY_FILE": str(self.key.private)}
        log = self.stack.workdir / "logs" / "train-worker.log"
        with log.open("ab") as out:
            subprocess.run([str(CLOUD_BIN / "coldwatch"), "train-worker", "--once", "--api-url", self.stack.api_url,
                            "--work-dir", str(self.stack.workdir / "training")], env=env, stdout=out,
                           stderr=subprocess.STDOUT, timeout=600)
        done = self.ops.training_job(job.id)
        if done.state == "failed" and (done.error or "").startswith("quality gate"):
            self.notes.append(f"the quality gate refused the retrained {RETRAIN_PROFILE} model (job #{job.id}: "
                              f"{done.error}); nothing was rolled out, the gateways keep the first model")
            self.say(f"    the quality gate refused the candidate: {done.error}")
            return
        if done.state != "succeeded" or done.result is None:
            raise RuntimeError(f"training job #{job.id} {done.state}: {done.error or ''}; see {log}")
        stem = str(done.model_stem)
        gate = done.result.evaluation
        cand, cur = gate.candidate.false_alerts_per_sensor_day, gate.current
        self.notes.append(f"retrained {stem} from {hours:.1f} h of stored {RETRAIN_PROFILE} readings (job "
                          f"#{job.id}, {done.result.timings_s['total_s']:.0f} s); gate: false alerts/day "
                          f"{cand} vs {None if cur is None else cur.false_alerts_per_sensor_day} "
                          f"for the current model")
        self.say(f"    {stem} registered in {time.monotonic() - t0:.1f} s (quality gate passed)")
        group = self.gateways_of(RETRAIN_PROFILE)
        self._wait_rollouts_done(group)  # the first model's canary may still hold them on a slow machine
        started = self.ops.start_rollout(model=stem, gateways=group, canary_fraction=CANARY_FRACTION,
                                         probation_s=PROBATION_S, min_sensor_hours=EVIDENCE_SENSOR_HOURS)
        self.rollout_ids.append(started.id)
        canaries = [t.gateway_id for t in started.targets if t.role == "canary"]
        self.say(f"==> rolling out {stem} as a canary: {', '.join(canaries)} ({len(canaries)} of {len(group)} "
                 f"{RETRAIN_PROFILE} gateways) scores it in shadow beside the current model for at least "
                 f"{PROBATION_S / 3600:g} h and {EVIDENCE_SENSOR_HOURS:g} sensor-hours of readings; it is promoted "
                 f"if it raises no more alert episodes per sensor-day than the current model (or the budget)")

    def outcome(self) -> list[Rollout]:
        """Every rollout the demo started, with each target (after the retrain thread finished)."""
        if self._thread is not None:
            self._thread.join(timeout=1)
            if self._thread.is_alive():
                self.notes.append(f"the retrain of {RETRAIN_PROFILE} was still running when the run ended")
        return [self.ops.rollout(rid) for rid in self.rollout_ids]

    def report(self) -> bool:
        """Print each rollout per gateway and the model each gateway runs now; True when none failed."""
        rollouts = self.outcome()
        failed = list(self.problems)
        print("\n  rollouts (a canary scores the model in shadow; the verdict compares alert episodes per sensor-day "
              "with the current model's, or a first model's with the alert budget)")
        for r in rollouts:
            targets = ", ".join(f"{t.gateway_id} {t.role} {t.state}" for t in r.targets)
            print(f"  #{r.id:<3} {r.model_stem:<16} {r.state:<10} {targets}")
            if r.verdict:
                print(f"       verdict: {r.verdict}")
            for t in r.targets:
                if t.state == "failed":
                    failed.append(f"rollout #{r.id} {r.model_stem} failed on {t.gateway_id}: {t.detail}")
            if self._canary_refused(r):  # the canary did its job: the fleet never ran the worse model
                print("       halted by its canary's verdict; the gateways keep the model they had (or rules alone)")
            elif r.state in FAILED_STATES:
                failed.append(f"rollout #{r.id} {r.model_stem} {r.state}: {r.reason or ''}")
            elif r.state in ("canary", "promoting"):
                print(f"       still {r.state} when the run ended (evidence and probation run in reading time)")
        for note in self.notes:
            print(f"  {note}")
        print("  gateway       profile      model active        status")
        for gw in self.stack.gateways:
            g = self.ops.gateway(gw.gateway_id)
            version = g.reported_model_version or g.model_version
            active = f"cw_{profile_of(gw)}-{version}" if version else "none (rules only)"
            print(f"  {gw.gateway_id:<13} {profile_of(gw):<12} {active:<19} {g.status or '-'}")
        for problem in failed:
            print(f"    FAIL: {problem}")
        print(f"  {'OK: no rollout failed' if not failed else 'FAIL: a rollout failed'}")
        return not failed

    @staticmethod
    def _canary_refused(rollout: Rollout) -> bool:
        """Halted by the canary verdict (the candidate raised more alert episodes than allowed), with no target
        failing to apply anything: every target that was sent the model is a canary sent back."""
        sent = [t for t in rollout.targets if t.state != "waiting"]
        return rollout.state == "halted" and (rollout.evidence or {}).get("decision") == "halt" and bool(
            sent) and all(t.role == "canary" and t.state == "reverted" for t in sent)

    def close(self) -> None:
        """Close the API client."""
        self.ops.close()

