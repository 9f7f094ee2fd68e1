"""The gateway's side of `desired` → `reported`: validate, check the fleet's signature and that the document is for
this gateway, skip what was already applied, refuse a model older than the profile's floor (anti-rollback), apply
config, hand a model to the installer, and say what happened. Bad messages are counted and never crash."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from edge_agent.metrics import AgentMetrics
from models.runtime.manifest import ModelRejected, compare_versions, verify_desired
from protocol.codec import ProtocolError, decode
from protocol.messages import Desired, DesiredModel, Reported, ShadowReport

log = logging.getLogger(__name__)

Result = Literal["applied", "rejected", "rolled_back", "pending", "shadow"]


class ModelInstaller(Protocol):
    """Fetches, verifies and activates a model; returns (result, active model version, error)."""

    def install(self, model: DesiredModel, desired_version: int) -> tuple[Result, str | None, str | None]:
        """Install `model` (activate it, or start it in shadow); never raises for a bad artifact (`rejected`)."""


@dataclass
class AppliedState:
    """What the gateway has applied, persisted so a restart does not re-apply (or forget) it. `model_floor`: per
    profile, the highest model version activated (anti-rollback); an explicit rollback sets it to its version."""

    version: int = -1
    sensor_profiles: dict[str, str] = field(default_factory=dict)
    sample_period_s: float | None = None
    model_floor: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> AppliedState:
        try:
            data = json.loads(path.read_text())
            floor = data.get("model_floor", {})
            return cls(int(data["version"]), dict(data.get("sensor_profiles", {})), data.get("sample_period_s"),
                       {str(p): str(v) for p, v in floor.items()})
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return cls()

    def save(self, path: Path, version: int | None = None) -> None:
        """Write beside, fsync, rename: a power cut leaves the old or the new state, never half of one. `version`:
        the version to record on disk when it differs from the one held (a shadow's, see DesiredHandler)."""
        tmp = path.with_suffix(".tmp")
        with tmp.open("w") as f:
            json.dump({"version": self.version if version is None else version, "sensor_profiles": self.sensor_profiles,
                       "sample_period_s": self.sample_period_s, "model_floor": self.model_floor}, f)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)

    def downgrade(self, model: DesiredModel) -> str | None:
        """Why `model` may not run here (a version below the profile's floor, without `rollback`); None if it may."""
        floor = self.model_floor.get(model.profile)
        if model.rollback or floor is None or compare_versions(model.version, floor) >= 0:
            return None
        return (f"downgrade: {model.name}-{model.version} is older than {floor}, the newest model this gateway has run "
                f"for profile {model.profile}; ops must roll back explicitly")

    def raise_floor(self, profile: str, version: str, *, rollback: bool = False) -> bool:
        """Record that `version` is active for `profile`: the floor rises to it (an explicit rollback sets it there).
        Returns whether the floor changed."""
        floor = self.model_floor.get(profile)
        if floor is not None and not rollback and compare_versions(version, floor) <= 0:
            return False
        if floor == version:
            return False
        self.model_floor[profile] = version
        return True


@dataclass
class DesiredHandler:
    """One per agent; `handle` is called with every message that arrives on the gateway's `desired` topic."""

    gateway: str
    state_path: Path
    metrics: AgentMetrics
    report: Callable[[Reported], None]
    installer: ModelInstaller | None = None
    on_profiles: Callable[[dict[str, str]], None] = lambda _profiles: None
    on_no_model: Callable[[], None] = lambda: None  # a desired state naming no model ends any shadow probation
    ended_shadow: Callable[[], ShadowReport | None] = lambda: None  # the probation this state ended, if any
    current_model: Callable[[], str | None] = lambda: None  # the model raising alerts, for a state naming none
    # The fleet's Ed25519 keys (`updater.public_keys`): with any, a document must be signed by one and name this
    # gateway. Without, documents are applied unverified (config only: models are refused with no keys anyway).
    public_keys: list[bytes] = field(default_factory=list)
    state: AppliedState = field(init=False)

    def __post_init__(self) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        self.state = AppliedState.load(self.state_path)
        if self.state.sensor_profiles:
            self.on_profiles(self.state.sensor_profiles)
        if not self.public_keys:
            log.warning("event=desired_unverified gateway=%s detail=%r", self.gateway,
                        "no updater.public_keys: desired documents are applied without a signature check")

    def note_active(self, versions: dict[str, str]) -> None:
        """The models active at boot (profile → version) raise the floors: an agent upgraded from one that kept no
        floor, or whose state file was lost, still refuses going below what it runs."""
        if any([self.state.raise_floor(profile, version) for profile, version in versions.items()]):
            self.state.save(self.state_path)

    def _refusal(self, desired: Desired) -> tuple[str, str] | None:
        """(reason, detail) when this gateway must not act on `desired` at all: with trusted keys configured, a
        document that is unsigned, not signed by one of them, or for another gateway."""
        if not self.public_keys:
            return None
        try:
            verify_desired(desired, self.public_keys)
        except ModelRejected as exc:
            return ("unsigned" if exc.reason == "unsigned" else "bad_signature"), exc.detail
        if desired.gateway != self.gateway:
            return "wrong_gateway", f"the document is for {desired.gateway or 'no gateway'}, this is {self.gateway}"
        return None

    def _refuse(self, desired: Desired, reason: str, detail: str) -> Reported:
        """Count, log and report a document this gateway does not act on; nothing is applied or recorded (a forged
        version must not block the cloud's next one)."""
        self.metrics.desired_rejected.labels(reason=reason).inc()
        log.warning("event=desired_rejected gateway=%s version=%d reason=%s detail=%r", self.gateway, desired.version,
                    reason, detail[:200])
        reported = Reported(gateway=self.gateway, ts=int(time.time() * 1000), desired_version=desired.version,
                            result="rejected", model_version=self.current_model(), error=f"{reason}: {detail}"[:500])
        self.report(reported)
        return reported

    def handle(self, payload: bytes) -> Reported | None:
        """Validate and apply one desired-state message; returns the Reported it sent (None if ignored)."""
        try:
            desired = decode(payload, Desired)
        except ProtocolError as exc:
            self.metrics.desired_rejected.labels(reason=exc.reason).inc()
            log.warning("event=desired_rejected gateway=%s reason=%s detail=%r", self.gateway, exc.reason,
                        exc.detail[:200])
            return None
        if desired.version <= self.state.version:
            return None  # the retained message again, or an older one: already applied
        if (refusal := self._refusal(desired)) is not None:
            return self._refuse(desired, *refusal)
        model_version: str | None = None
        error: str | None = None
        result: Result = "applied"
        if desired.model is not None:
            if self.installer is None:
                result, error = "rejected", "this gateway has no model updater configured"
            elif (error := self.state.downgrade(desired.model)) is not None:
                result, model_version = "rejected", self.current_model()
                self.metrics.desired_rejected.labels(reason="downgrade").inc()
                log.warning("event=desired_rejected gateway=%s version=%d reason=downgrade detail=%r", self.gateway,
                            desired.version, error[:200])
            else:
                result, model_version, error = self.installer.install(desired.model, desired.version)
                if result == "applied" and desired.model.mode == "active":
                    self.state.raise_floor(desired.model.profile, desired.model.version,
                                           rollback=desired.model.rollback)
        elif self.installer is not None:
            self.on_no_model()
            model_version = self.current_model()
        if result in ("applied", "shadow") and desired.config is not None:
            if desired.config.sensor_profiles:
                self.state.sensor_profiles = dict(desired.config.sensor_profiles)
                self.on_profiles(self.state.sensor_profiles)
            if desired.config.sample_period_s is not None:
                self.state.sample_period_s = desired.config.sample_period_s
        if result != "pending":
            before = self.state.version
            self.state.version = desired.version  # a rejected version is not retried until the cloud sends a newer one
            # A shadow lives in memory: on disk the version stays below it, so after a restart the retained desired
            # state starts the probation again instead of leaving the cloud waiting for evidence that never grows.
            self.state.save(self.state_path, version=before if result == "shadow" else None)
        reported = Reported(gateway=self.gateway, ts=int(time.time() * 1000), desired_version=desired.version,
                            result=result, model_version=model_version, error=error, shadow=self.ended_shadow())
        self.metrics.desired_applied.labels(result=result).inc()
        log.info("event=desired gateway=%s version=%d result=%s model_version=%s error=%r", self.gateway,
                 desired.version, result, model_version, error)
        self.report(reported)
        return reported
