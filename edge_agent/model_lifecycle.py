"""Which model each asset profile runs, and how that changes: verified models loaded at boot, swaps from the
updater, shadow probations reported each status interval until the cloud ends them, and an automatic rollback
when a model fails at run time."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from edge_agent.config import AgentConfig
from edge_agent.desired import Result
from edge_agent.detect.anomaly import AnomalyDetector
from edge_agent.detect.model import ActiveModel
from edge_agent.detect.shadow import ShadowRun
from edge_agent.metrics import AgentMetrics
from edge_agent.updater import Installer, ModelStore, artifact_fetch
from models.runtime.manifest import ModelRejected
from protocol.messages import DesiredModel, Reported, ShadowReport

log = logging.getLogger(__name__)


class ModelLifecycle:
    """Owns the model store; the anomaly detector's models and shadows change only through here."""

    def __init__(self, config: AgentConfig, anomaly: AnomalyDetector, lock: threading.Lock,
                 report: Callable[[Reported], None], desired_version: Callable[[], int],
                 metrics: AgentMetrics | None = None) -> None:
        self.config = config
        self.anomaly = anomaly
        self.lock = lock  # the agent's detection lock: swaps never race a tick
        self.report = report
        self.desired_version = desired_version
        self.metrics = metrics
        self.store: ModelStore | None = None
        self.model_version: str | None = None
        self._shadow_reported = 0.0
        self._ended: ShadowReport | None = None  # the last shadow a desired state ended, for its `reported`
        anomaly.on_failure = self.model_failed

    def installer(self) -> Installer | None:
        """With trusted keys configured, load the verified active models and accept updates; else rules only."""
        keys = self.config.public_keys()
        if not keys:
            return None
        store = self.store = ModelStore(self.config.models_dir(), keys)
        for profile, model in store.load_active().items():
            self.activate(profile, model)
        token_file = self.config.updater.token_file
        token = Path(token_file).read_text().strip() if token_file else None
        refused = self.metrics.models_refused if self.metrics is not None else None
        origin = self.config.updater.api_url
        if token and origin is None:
            log.warning("event=updater_origin_unset gateway=%s detail=%r", self.config.gateway_id,
                        "set updater.api_url: without it the artifact token goes to any HTTPS host a desired "
                        "document names")
        return Installer(store, on_activate=self.activate, on_shadow=self.start_shadow, token=token,
                         gateway=self.config.gateway_id, fetch=artifact_fetch(origin),
                         on_refused=lambda reason: refused.labels(reason=reason).inc() if refused else None)

    def activate(self, profile: str, model: ActiveModel) -> None:
        """Swap in a verified model for `profile` (from boot, the updater's thread or a promotion). A newer
        desired state that activates a model ends the profile's shadow: promoted when it activates the candidate
        itself (the cloud's verdict), discarded when it activates another model."""
        with self.lock:
            self.anomaly.models[profile] = model
            ended = self.anomaly.shadows.pop(profile, None)
        if ended is not None:
            promoted = ended.model.manifest.stem == model.manifest.stem
            self._end_shadow(profile, ended, "promoted" if promoted else "discarded",
                             "" if promoted else f"the cloud activated {model.manifest.stem} instead")
        self.model_version = model.manifest.version
        log.info("event=model_active gateway=%s profile=%s model=%s", self.config.gateway_id, profile,
                 model.manifest.stem)

    def withdraw_shadows(self) -> None:
        """A newer desired state that names no model: every candidate on probation is discarded (the cloud halted
        a rollout whose canary had no model to return to). The active models stay."""
        with self.lock:
            ended = list(self.anomaly.shadows.items())
            self.anomaly.shadows.clear()
        for profile, run in ended:
            self._end_shadow(profile, run, "discarded", "withdrawn: the desired state names no model")

    def _end_shadow(self, profile: str, run: ShadowRun, state: str, reason: str) -> None:
        log.info("event=shadow_%s gateway=%s profile=%s model=%s desired_version=%d windows=%d "
                 "sensor_hours=%.2f shadow_episodes=%d active_episodes=%s reason=%r", state, self.config.gateway_id,
                 profile, run.model.manifest.stem, run.desired_version, run.windows, run.sensor_hours,
                 run.shadow_episode_count, run.active_episode_count, reason)
        self._ended = run.report(state, reason)

    def take_ended_shadow(self) -> ShadowReport | None:
        """The final report of the shadow the last desired state ended (once), for that state's `reported`."""
        ended, self._ended = self._ended, None
        return ended

    def start_shadow(self, model: DesiredModel, candidate: ActiveModel, desired_version: int) -> None:
        """Put a verified candidate on probation beside the active model (from the updater's thread)."""
        with self.lock:
            run = ShadowRun(candidate, desired_version, has_current=model.profile in self.anomaly.models,
                            min_duration_periods=self.anomaly.min_duration_periods,
                            clear_after_periods=self.anomaly.clear_after_periods)
            replaced = self.anomaly.shadows.get(model.profile)
            self.anomaly.shadows[model.profile] = run
        if replaced is not None:
            self._end_shadow(model.profile, replaced, "discarded", f"replaced by {candidate.manifest.stem}")
            self._ended = None  # this desired state's report is the new shadow's
        self._report_shadow(run, "shadow", "running")  # the probation is visible from its first moment
        self._shadow_reported = time.monotonic()

    def check_shadows(self) -> None:
        """Each tick: report the running probations every status interval (the cloud decides on them)."""
        if time.monotonic() - self._shadow_reported < self.config.status_interval_s:
            return
        with self.lock:
            runs = list(self.anomaly.shadows.values())
        for run in runs:
            self._report_shadow(run, "shadow", "running")
        self._shadow_reported = time.monotonic()

    def _report_shadow(self, run: ShadowRun, result: Result, state: str, reason: str = "") -> None:
        self.report(Reported(
            gateway=self.config.gateway_id, ts=int(time.time() * 1000), desired_version=run.desired_version,
            result=result, model_version=self.model_version, error=reason or None,
            shadow=run.report(state, reason)))

    def model_failed(self, profile: str, exc: Exception) -> None:
        """Called (detect lock held) when the active model fails at run time: go back to the previous one."""
        log.error("event=model_failed gateway=%s profile=%s error=%r", self.config.gateway_id, profile, exc)
        previous = self.store.roll_back(profile) if self.store else None
        if previous and self.store:
            try:
                self.anomaly.models[profile] = self.store.load(previous)
            except (ModelRejected, ValueError, OSError) as load_exc:
                log.error("event=model_rollback_failed gateway=%s stem=%s error=%r", self.config.gateway_id,
                          previous, load_exc)
                previous = None
        self.report(Reported(
            gateway=self.config.gateway_id, ts=int(time.time() * 1000),
            desired_version=max(self.desired_version(), 0), result="rolled_back",
            model_version=previous.split("-", 1)[1] if previous else None,
            error=f"model failed at run time: {exc}"[:500]))

