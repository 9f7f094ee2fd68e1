"""Which model each asset profile runs, and how that changes: verified models loaded at boot, swaps from the
updater, shadow probations decided each tick, and an automatic rollback when a model fails at run time."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from edge_agent.config import AgentConfig
from edge_agent.desired import Result
from edge_agent.detect.anomaly import ActiveModel, AnomalyDetector
from edge_agent.detect.shadow import ShadowRun
from edge_agent.updater import Installer, ModelStore
from models.manifest import ModelRejected
from protocol.messages import DesiredModel, Reported

log = logging.getLogger(__name__)


class ModelLifecycle:
    """Owns the model store; the anomaly detector's models and shadows change only through here."""

    def __init__(self, config: AgentConfig, anomaly: AnomalyDetector, lock: threading.Lock,
                 report: Callable[[Reported], None], desired_version: Callable[[], int]) -> None:
        self.config = config
        self.anomaly = anomaly
        self.lock = lock  # the agent's detection lock: swaps never race a tick
        self.report = report
        self.desired_version = desired_version
        self.store: ModelStore | None = None
        self.model_version: str | None = None
        self._shadow_reported = 0.0
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
        return Installer(store, on_activate=self.activate, on_shadow=self.start_shadow, token=token)

    def activate(self, profile: str, model: ActiveModel) -> None:
        """Swap in a verified model for `profile` (from boot, the updater's thread or a promotion). A newer
        desired state that activates a model ends the profile's shadow: its verdict would answer an older one."""
        with self.lock:
            self.anomaly.models[profile] = model
            cancelled = self.anomaly.shadows.pop(profile, None)
        if cancelled is not None:
            log.info("event=shadow_cancelled gateway=%s profile=%s model=%s desired_version=%d reason=%r",
                     self.config.gateway_id, profile, cancelled.model.manifest.stem, cancelled.desired_version,
                     "a newer desired state activated a model")
        self.model_version = model.manifest.version
        log.info("event=model_active gateway=%s profile=%s model=%s", self.config.gateway_id, profile,
                 model.manifest.stem)

    def start_shadow(self, model: DesiredModel, candidate: ActiveModel, desired_version: int) -> None:
        """Put a verified candidate on probation beside the active model (from the updater's thread)."""
        run = ShadowRun(candidate, desired_version, int(model.probation_s * 1000), model.max_alert_ratio)
        with self.lock:
            self.anomaly.shadows[model.profile] = run
        self._report_shadow(run, "shadow", "running")  # the probation is visible from its first moment
        self._shadow_reported = time.monotonic()

    def check_shadows(self) -> None:
        """Each tick: decide finished probations; report running ones every status interval."""
        with self.lock:
            runs = list(self.anomaly.shadows.items())
        due = time.monotonic() - self._shadow_reported >= self.config.status_interval_s
        for profile, run in runs:
            if run.finished:
                ok, why = run.passes()
                stem = run.model.manifest.stem
                with self.lock:
                    self.anomaly.shadows.pop(profile, None)
                if ok and self.store is not None:
                    self.store.activate(profile, stem)
                    self.activate(profile, run.model)
                log.info("event=shadow_%s gateway=%s profile=%s model=%s windows=%d active_alerts=%d "
                         "shadow_alerts=%d reason=%r", "promoted" if ok else "discarded", self.config.gateway_id,
                         profile, stem, run.windows, run.active_alerts, run.shadow_alerts, why)
                self._report_shadow(run, "applied" if ok else "rejected", "promoted" if ok else "discarded", why)
            elif due:
                self._report_shadow(run, "shadow", "running")
        if due and runs:
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

