"""Prometheus counters of one ingest worker, in a registry of its own (several workers may share a process)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge

from cloud.ingest.decode import REJECT_REASONS


@dataclass
class IngestMetrics:
    """Self-metrics: what arrived, what was refused and why, what reached InfluxDB."""

    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))

    def __post_init__(self) -> None:
        r = self.registry
        self.received = Counter("coldwatch_ingest_messages_received", "MQTT messages received", registry=r)
        self.acked = Counter("coldwatch_ingest_messages_acked", "MQTT messages acknowledged (stored or rejected)",
                             registry=r)
        self.rejected = Counter("coldwatch_ingest_messages_rejected", "Messages refused (and acked), by reason",
                                ["reason"], registry=r)
        self.points_written = Counter("coldwatch_ingest_points_written", "Points written to InfluxDB", registry=r)
        self.readings_skipped = Counter("coldwatch_ingest_readings_skipped",
                                        "Readings skipped because they carried no field", registry=r)
        self.write_failures = Counter("coldwatch_ingest_write_failures", "Failed write attempts, by kind "
                                      "(unavailable, rejected: InfluxDB; sql; rollup: a rollup pass)", ["kind"],
                                      registry=r)
        self.pending_messages = Gauge("coldwatch_ingest_pending_messages",
                                      "Messages received but not yet acknowledged", registry=r)
        self.influx_up = Gauge("coldwatch_ingest_influx_up", "1 when the last InfluxDB write succeeded", registry=r)
        self.gateway_seq = Gauge("coldwatch_ingest_gateway_last_seq", "Highest batch seq seen per gateway",
                                 ["gateway"], registry=r)
        self.seq_gaps = Counter("coldwatch_ingest_seq_gaps", "Batch seqs skipped per gateway (seen by this worker)",
                                ["gateway"], registry=r)
        self.sql_up = Gauge("coldwatch_ingest_sql_up", "1 when the last SQL transaction succeeded", registry=r)
        self.alert_events = Counter("coldwatch_ingest_alert_events", "Alert events applied to SQL", registry=r)
        self.alert_duplicates = Counter("coldwatch_ingest_alert_events_duplicate",
                                        "Alert events already applied (re-delivery)", registry=r)
        self.alert_refused = Counter("coldwatch_ingest_alert_events_refused",
                                     "Alert events refused: the alert belongs to another gateway, sensor or kind",
                                     registry=r)
        self.journal_merged = Counter("coldwatch_ingest_journal_merged",
                                      "Journal rows (stored batches) merged into gateways, sensors and completeness",
                                      registry=r)
        self.journal_dropped = Counter("coldwatch_ingest_journal_dropped",
                                       "Journal rows the database refused to merge, deleted (logged with their id)",
                                       registry=r)
        self.merge_failures = Counter("coldwatch_ingest_journal_merge_failures",
                                      "Journal merges that failed (their rows wait for the next)", registry=r)
        self.gaps_recorded = Counter("coldwatch_ingest_gaps_recorded",
                                     "Missing seq ranges recorded in SQL (gateway and sensor streams)", registry=r)
        self.replays_requested = Counter("coldwatch_ingest_replays_requested",
                                         "Gaps a gateway was asked to re-send (cw/v1/{gw}/replay)", registry=r)
        for reason in REJECT_REASONS:
            self.rejected.labels(reason=reason)
        self.sql_up.set(1)
        for kind in ("unavailable", "rejected", "sql", "rollup"):
            self.write_failures.labels(kind=kind)
        self.influx_up.set(1)
