"""Prometheus counters of the notification dispatcher, by channel (registered in the API's registry)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge


@dataclass
class NotifyMetrics:
    """Sent, failed (attempts), suppressed (alerts), rate-limited (held back into a summary), pending."""

    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))

    def __post_init__(self) -> None:
        self.sent = Counter("coldwatch_notify_sent", "Notifications delivered, by channel and kind",
                            ["channel", "kind"], registry=self.registry)
        self.failed = Counter("coldwatch_notify_failed", "Delivery attempts that failed (retried later), by channel",
                              ["channel"], registry=self.registry)
        self.suppressed = Counter("coldwatch_notify_suppressed", "Alerts not notified because a suppression "
                                  "window covers them, by channel", ["channel"], registry=self.registry)
        self.rate_limited = Counter("coldwatch_notify_rate_limited", "Notifications held back by the rate limit "
                                    "and sent as part of a summary, by channel", ["channel"], registry=self.registry)
        self.pending = Gauge("coldwatch_notify_pending", "Notifications waiting to be sent, by channel",
                             ["channel"], registry=self.registry)
