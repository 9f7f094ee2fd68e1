"""Prometheus metrics of one API app, in a registry of its own (tests create many apps)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter


@dataclass
class ApiMetrics:
    """Requests refused by reason, and InfluxDB failures seen by the API."""

    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))

    def __post_init__(self) -> None:
        self.rejected = Counter("coldwatch_api_requests_rejected", "Requests refused with 4xx, by reason",
                                ["reason"], registry=self.registry)
        self.influx_unavailable = Counter("coldwatch_api_influx_unavailable",
                                          "Requests answered 503 because InfluxDB was unavailable",
                                          registry=self.registry)
