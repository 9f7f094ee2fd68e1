"""The agent's own metrics (Prometheus text on metrics_port): what was received, refused, queued, published."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server


@dataclass
class AgentMetrics:
    """One registry per agent, so tests can run several agents in one process."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.frames_received = Counter("coldwatch_agent_frames_received_total", "Datagrams received", registry=r)
        self.frames_rejected = Counter("coldwatch_agent_frames_rejected_total", "Datagrams refused, by reason",
                                       ["reason"], registry=r)
        self.readings_accepted = Counter("coldwatch_agent_readings_accepted_total",
                                         "Readings written to the outbox", registry=r)
        self.duplicates = Counter("coldwatch_agent_duplicate_frames_total",
                                  "Frames dropped as re-heard copies of one measurement", registry=r)
        self.published = Counter("coldwatch_agent_messages_published_total",
                                 "Outbox messages acknowledged by the broker (PUBACK)", ["kind"], registry=r)
        self.publish_failed = Counter("coldwatch_agent_publish_failures_total",
                                      "PUBACKs with an error reason code", ["reason"], registry=r)
        self.dropped = Counter("coldwatch_agent_outbox_dropped_total",
                               "Outbox entries dropped by the disk cap, by kind and action", ["kind", "action"],
                               registry=r)
        self.outbox_write_failed = Counter("coldwatch_agent_outbox_write_failures_total",
                                           "Outbox commits that failed (disk full, I/O error), by kind; what was "
                                           "staged stays staged and is retried", ["kind"], registry=r)
        self.outbox_depth = Gauge("coldwatch_agent_outbox_depth", "Messages waiting for PUBACK", registry=r)
        self.outbox_bytes = Gauge("coldwatch_agent_outbox_bytes", "Bytes of payload in the outbox", registry=r)
        self.connected = Gauge("coldwatch_agent_mqtt_connected", "1 while connected to the broker", registry=r)
        self.connect_failures = Counter("coldwatch_agent_mqtt_connect_failures_total",
                                        "Connection attempts to the broker that failed before MQTT (DNS, TCP, TLS)",
                                        registry=r)
        self.desired_rejected = Counter("coldwatch_agent_desired_rejected_total",
                                        "Desired-state messages refused, by reason", ["reason"], registry=r)
        self.desired_applied = Counter("coldwatch_agent_desired_total", "Desired-state versions handled, by result",
                                       ["result"], registry=r)
        self.models_refused = Counter("coldwatch_agent_models_refused_total",
                                      "Models the updater refused (signature, hash, too new for this agent, ...), "
                                      "by reason", ["reason"], registry=r)
        self.windows_scored = Counter("coldwatch_agent_windows_scored_total",
                                      "Readings given an anomaly score by the active model (one window each)",
                                      registry=r)
        self.alerts = Counter("coldwatch_agent_alert_events_total", "Alert events raised, by kind and state",
                              ["kind", "state"], registry=r)
        self.replayed = Counter("coldwatch_agent_replayed_total", "Kept messages queued again at the cloud's request",
                                ["kind"], registry=r)
        self.replay_rejected = Counter("coldwatch_agent_replay_rejected_total", "Replay requests refused, by reason",
                                       ["reason"], registry=r)

    def serve(self, port: int, bind: str = "127.0.0.1") -> None:
        """Expose /metrics over HTTP (port 0: disabled)."""
        if port:
            start_http_server(port, addr=bind, registry=self.registry)
