"""Wires the stages together: inputs → decode → outbox → publisher, desired/replay → their handlers; no
decisions of its own."""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable

import msgspec

from edge_agent import __version__, allocator
from edge_agent.config import AgentConfig
from edge_agent.decode import Decoder
from edge_agent.desired import DesiredHandler
from edge_agent.detect.anomaly import AnomalyDetector
from edge_agent.detect.detector import Detector
from edge_agent.health import CpuMeter, rss_mb
from edge_agent.inputs import DRIVERS, Input
from edge_agent.metrics import AgentMetrics
from edge_agent.model_lifecycle import ModelLifecycle
from edge_agent.outbox import Outbox
from edge_agent.publish import Publisher
from edge_agent.replay_requests import ReplayHandler
from protocol.messages import AlertEvent, Reading, Status
from protocol.profiles import PROFILES
from protocol.topics import Kind

log = logging.getLogger(__name__)


class Agent:
    """One gateway's daemon. `start()` returns at once; `stop()` drains what it can and shuts down."""

    def __init__(self, config: AgentConfig, metrics: AgentMetrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or AgentMetrics()
        self._cpu = CpuMeter()
        self._profile_overrides: dict[str, str] = {}  # from the cloud's desired config
        self.decoder = Decoder(self.profile_of, self.metrics)
        self.detector = Detector(config.gateway_id, config.detect)
        self.anomaly = AnomalyDetector(config.gateway_id, self.detector.tracker)
        self._detect_lock = threading.Lock()  # inputs, the tick and model swaps run on different threads
        self._alert_lock = threading.Lock()
        self._unsent_alerts: list[AlertEvent] = []  # raised, not yet committed (a full disk): retried first
        self.models = ModelLifecycle(config, self.anomaly, self._detect_lock,
                                     report=lambda reported: self.publisher.publish_reported(reported),
                                     desired_version=lambda: self.desired.state.version, metrics=self.metrics)
        self._pending: list[Reading] = []  # decoded, waiting for the tick (rules, model scoring, the outbox)
        self._pending_lock = threading.Lock()  # the inputs append, the tick takes
        box = config.outbox
        self.outbox = Outbox(box.path, config.gateway_id, self.metrics, max_bytes=box.max_bytes,
                             batch_max_readings=box.batch_max_readings, keep_sent_s=box.keep_sent_s,
                             keep_sent_bytes=box.keep_sent_bytes)
        self._inbound: queue.SimpleQueue[tuple[Kind, bytes] | None] = queue.SimpleQueue()
        self.publisher = Publisher(config, self.outbox, self.metrics, self.status,
                                   on_message=lambda kind, payload: self._inbound.put((kind, payload)))
        self.replay = ReplayHandler(config.gateway_id, self.outbox, self.metrics)
        self.desired = DesiredHandler(config.gateway_id, config.state_dir() / "desired-state.json", self.metrics,
                                      report=self.publisher.publish_reported, on_profiles=self._set_profiles,
                                      installer=self.models.installer(), on_no_model=self.models.withdraw_shadows,
                                      ended_shadow=self.models.take_ended_shadow,
                                      current_model=lambda: self.models.model_version,
                                      public_keys=config.public_keys())
        self.desired.note_active({profile: model.manifest.version for profile, model in self.anomaly.models.items()})
        self._inbound_thread: threading.Thread | None = None
        self.inputs: list[Input] = [DRIVERS[spec.driver].create(spec) for spec in config.inputs]
        self._input_losses: dict[str, int] = {}  # input/reason → the total last counted
        self._stopping = threading.Event()
        self._flusher: threading.Thread | None = None

    def profile_of(self, sensor: str) -> str:
        """The sensor's asset profile: the cloud's assignment if any, else the local config's."""
        return self._profile_overrides.get(sensor) or self.config.profile_of(sensor)

    def _set_profiles(self, profiles: dict[str, str]) -> None:
        self._profile_overrides = {mac: p for mac, p in profiles.items() if p in PROFILES}

    def _inbound_loop(self) -> None:
        """Cloud → gateway messages are handled here, never on the MQTT thread (a model download takes time)."""
        while (item := self._inbound.get()) is not None:
            kind, payload = item
            try:
                if kind == "replay":
                    self.replay.handle(payload)
                else:
                    self.desired.handle(payload)
            except Exception:  # the handlers count bad input; anything else must not kill the loop either
                log.exception("event=%s_failed gateway=%s", kind, self.config.gateway_id)

    def status(self, state: str) -> Status:
        """The gateway's Status message for `state` ('online' or 'offline'), with its health figures."""
        m = self.metrics
        rejected = sum(s.value for metric in m.frames_rejected.collect() for s in metric.samples
                       if s.name.endswith("_total"))
        dropped = sum(s.value for metric in m.dropped.collect() for s in metric.samples
                      if s.name.endswith("_total") and s.labels.get("kind") == "telemetry")
        return Status(gateway=self.config.gateway_id, state="online" if state == "online" else "offline",
                      ts=int(time.time() * 1000), agent_version=__version__, model_version=self.models.model_version,
                      outbox_depth=self.outbox.depth(), uptime_s=self._cpu.uptime_s(), cpu_pct=self._cpu.percent(),
                      rss_mb=rss_mb(), frames_received=int(m.frames_received._value.get()),
                      frames_rejected=int(rejected), readings_dropped=int(dropped),
                      inference_p50_ms=self.anomaly.latency_ms(0.5), inference_p99_ms=self.anomaly.latency_ms(0.99))

    def on_datagram(self, data: bytes) -> None:
        """Called by every input for every envelope it receives."""
        reading = self.decoder.decode(data)
        if reading is not None:
            self.accept(reading)

    def accept(self, reading: Reading) -> None:
        """A decoded reading waits for the next tick, which judges it and commits it (within one flush interval)."""
        with self._pending_lock:
            self._pending.append(reading)

    def tick(self) -> None:
        """Every flush interval, for the readings accepted since the last: the rules over all of them, the windows
        due scored (one feature pass and one invoke per model), silence checked, one batch committed."""
        with self._pending_lock:
            pending, self._pending = self._pending, []
        with self._detect_lock:
            events = self.detector.observe_many(pending)
            scored, scored_events = self.anomaly.score(pending)
            events += scored_events + self.detector.tick()
        if self.anomaly.models:
            self.metrics.windows_scored.inc(sum(r.anomaly_score is not None for r in scored))
        self.outbox.stage_many(scored)
        self._raise(events)
        self.outbox.flush()
        if self.anomaly.shadows:
            self.models.check_shadows()

    def _raise(self, events: list[AlertEvent]) -> None:
        """Commit alert events in order, after any that could not be committed before; an event whose commit
        fails (a full disk) waits, with everything after it, for the next call (every tick makes one)."""
        with self._alert_lock:
            queue, self._unsent_alerts = self._unsent_alerts + events, []
            for i, event in enumerate(queue):
                try:
                    self.outbox.put_alert(_with_seq(event))
                except sqlite3.Error:
                    self._unsent_alerts = queue[i:]  # counted and logged by the outbox
                    return
                self.metrics.alerts.labels(kind=event.kind, state=event.state).inc()
                log.info("event=alert gateway=%s sensor=%s kind=%s state=%s started_at=%d reason=%r",
                         event.gateway, event.sensor, event.kind, event.state, event.started_at, event.reason)

    def start(self) -> None:
        """Start metrics, publisher, the flush timer and the inputs (last, so nothing arrives too early)."""
        self.metrics.serve(self.config.metrics_port, self.config.metrics_bind)
        self._inbound_thread = threading.Thread(target=self._inbound_loop, name="inbound", daemon=True)
        self._inbound_thread.start()
        self.publisher.start()
        self._flusher = threading.Thread(target=self._flush_loop, name="outbox-flush", daemon=True)
        self._flusher.start()
        for source in self.inputs:
            source.start(self.on_datagram)
        log.info("event=agent_started gateway=%s version=%s inputs=%s outbox_depth=%d", self.config.gateway_id,
                 __version__, ",".join(i.name for i in self.inputs), self.outbox.depth())

    def count_input_losses(self) -> None:
        """What the inputs lost before delivering (a socket buffer that overflowed in a burst) into the metrics, as
        frames rejected by reason (the status reports their sum)."""
        for source in self.inputs:
            for reason, total in source.lost().items():
                key = f"{source.name}/{reason}"
                if total > self._input_losses.get(key, 0):
                    self.metrics.frames_rejected.labels(reason=reason).inc(total - self._input_losses.get(key, 0))
                    log.warning("event=frames_lost gateway=%s input=%s reason=%s total=%d", self.config.gateway_id,
                                source.name, reason, total)
                    self._input_losses[key] = total

    def _flush_loop(self) -> None:
        interval = self.config.outbox.flush_interval_s
        next_status = time.monotonic() + self.config.status_interval_s
        while not self._stopping.wait(interval):
            self.count_input_losses()
            if time.monotonic() >= next_status:
                next_status = time.monotonic() + self.config.status_interval_s
                self.publisher.publish_status()
            try:
                self.tick()
            except Exception:  # a full disk must not kill the daemon; the next flush retries
                log.exception("event=outbox_flush_failed gateway=%s", self.config.gateway_id)
            allocator.trim()  # the tick's freed arrays go back to the kernel (edge_agent/allocator.py)

    def stop(self) -> None:
        """Stop inputs, commit what is staged, give the broker `drain_timeout_s` to take it, then disconnect."""
        log.info("event=agent_stopping gateway=%s", self.config.gateway_id)
        for source in self.inputs:
            source.stop()
        self._stopping.set()
        if self._flusher is not None:
            self._flusher.join(timeout=2)
        self.tick()
        drained = self.publisher.drain(self.config.drain_timeout_s) if self.publisher.connected.is_set() else False
        self.publisher.stop()
        self._inbound.put(None)
        depth = self.outbox.depth()
        self.outbox.close()
        log.info("event=agent_stopped gateway=%s drained=%s outbox_depth=%d", self.config.gateway_id,
                 drained, depth)


def _with_seq(event: AlertEvent) -> Callable[[int], AlertEvent]:
    """The event as the outbox stores it: numbered with the next alert sequence."""
    return lambda seq: msgspec.structs.replace(event, seq=seq)
