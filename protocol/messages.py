"""Payload schemas v1 (msgspec Structs): telemetry, alerts, status, reported, desired, replay.

Every payload carries `v` (the schema version). Timestamps are integer milliseconds since
the Unix epoch, UTC. Unknown fields are refused: a new field means a new schema version.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Final, Literal

import msgspec
from msgspec import Meta

SCHEMA_VERSION: Final = 1
MAX_READINGS_PER_BATCH: Final = 5000

# Shared field types. Bounds double as NaN/inf guards: NaN satisfies no bound.
GatewayId = Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}\Z")]
SENSOR_ID_PATTERN: Final = r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}\Z"
PROFILE_PATTERN: Final = r"^[a-z][a-z0-9_]{0,31}\Z"
SensorId = Annotated[str, Meta(pattern=SENSOR_ID_PATTERN, description="MAC, lower-case")]
Profile = Annotated[str, Meta(pattern=PROFILE_PATTERN)]
# A reading's identifiers are bounded here and matched against the same patterns by the codec, once per distinct
# value (protocol.codec.decode): msgspec matching two regular expressions per reading was three quarters of the time
# a telemetry batch took to decode.
ReadingSensorId = Annotated[str, Meta(min_length=17, max_length=17, description="MAC, lower-case (SENSOR_ID_PATTERN)")]
ReadingProfile = Annotated[str, Meta(min_length=1, max_length=32, description="PROFILE_PATTERN")]
TimestampMs = Annotated[int, Meta(ge=946_684_800_000, le=4_102_444_800_000)]  # 2000-01-01 .. 2100-01-01
Seq = Annotated[int, Meta(ge=1, le=2**63 - 1)]
TempC = Annotated[float, Meta(ge=-163.835, le=163.835)]
RhPct = Annotated[float, Meta(ge=0.0, le=163.835)]
BatteryMv = Annotated[int, Meta(ge=1600, le=3646)]
RssiDbm = Annotated[int, Meta(ge=-127, le=20)]
Score = Annotated[float, Meta(ge=-1e6, le=1e6)]
Sha256Hex = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}\Z")]
ShortText = Annotated[str, Meta(max_length=500)]
# Counters and versions are stored in SQL BIGINT columns and InfluxDB integer fields: both are signed 64-bit.
Count = Annotated[int, Meta(ge=0, le=2**63 - 1)]
# Non-negative measurements (seconds, MiB, ms): finite and far above any real value, so no column overflows.
Amount = Annotated[float, Meta(ge=0, le=1e15)]
Version = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}\Z")]


class _Message(
    msgspec.Struct, tag_field="v", tag=SCHEMA_VERSION, forbid_unknown_fields=True, omit_defaults=True,
    kw_only=True,
):
    """Base of every payload: strict, compact, versioned (`v` is always encoded; see codec.decode)."""


class Reading(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    """One sensor measurement as the gateway saw it; (sensor, ts) is its identity in storage."""

    sensor: ReadingSensorId
    ts: TimestampMs
    profile: ReadingProfile
    seq: Annotated[int, Meta(ge=0, le=65534)] | None = None  # the sensor's own measurement sequence
    temp_c: TempC | None = None
    rh_pct: RhPct | None = None
    battery_mv: BatteryMv | None = None
    rssi_dbm: RssiDbm | None = None
    anomaly_score: Score | None = None


class TelemetryBatch(_Message):
    """Readings from many sensors; `seq` is the gateway's outbox sequence, gap-free per gateway."""

    gateway: GatewayId
    seq: Seq
    sent_at: TimestampMs
    readings: Annotated[list[Reading], Meta(min_length=1, max_length=MAX_READINGS_PER_BATCH)]


class AlertEvent(_Message):
    """One step of an alert's life (open, update, clear); `id` is the same for every step."""

    id: Annotated[str, Meta(pattern=r"^[0-9a-f]{32}\Z")]
    gateway: GatewayId
    seq: Seq
    sensor: SensorId
    kind: Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_]{0,47}\Z")]
    severity: Literal["info", "warning", "critical"]
    state: Literal["open", "update", "clear"]
    source: Literal["rule", "model"]
    started_at: TimestampMs
    updated_at: TimestampMs
    ended_at: TimestampMs | None = None
    value: Score | None = None
    threshold: Score | None = None
    reason: ShortText = ""
    model_version: Version | None = None


class Status(_Message):
    """Gateway liveness, retained; the broker publishes the `offline` form as the LWT.

    `session` is when the MQTT connection the status belongs to was opened (ms): the last will is composed at
    connect time, so its `ts` is older than the `online` statuses the same connection sent after it; the cloud
    orders statuses by session first, and an `offline` ends its session whatever its `ts` (docs/security.md).
    """

    gateway: GatewayId
    state: Literal["online", "offline"]
    ts: TimestampMs
    session: TimestampMs | None = None
    agent_version: Version | None = None
    model_version: Version | None = None
    outbox_depth: Count | None = None
    uptime_s: Amount | None = None
    cpu_pct: Annotated[float, Meta(ge=0, le=6400)] | None = None  # of one core, since the previous status
    rss_mb: Amount | None = None
    frames_received: Count | None = None
    frames_rejected: Count | None = None
    readings_dropped: Count | None = None  # by the outbox disk cap
    inference_p50_ms: Amount | None = None
    inference_p99_ms: Amount | None = None


class ShadowReport(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    """A candidate model scored beside the active one (only the active one raises alerts). The cloud judges it on
    the alert episodes both models would have raised over the same readings, once there are enough sensor-hours."""

    model_version: Version
    state: Literal["running", "promoted", "discarded"]
    started_at: TimestampMs
    windows: Count = 0  # windows both models scored
    active_alerts: Count = 0  # windows above the active model's threshold
    shadow_alerts: Count = 0  # windows above the candidate's threshold
    score_drift: Score | None = None  # mean |candidate − active| score, in units of the active threshold
    reason: ShortText = ""
    last_at: TimestampMs | None = None  # reading time of the newest window scored
    sensor_hours: Annotated[float, Meta(ge=0, le=1e9)] = 0.0  # evidence: one sample period per window scored
    shadow_episodes: Count = 0  # alert episodes the candidate would have raised
    active_episodes: Count | None = None  # the active model's, same readings (None: none ran)


class Reported(_Message):
    """What the gateway applied of the desired state, retained."""

    gateway: GatewayId
    ts: TimestampMs
    desired_version: Count
    result: Literal["applied", "rejected", "rolled_back", "pending", "shadow"]
    model_version: Version | None = None  # the model raising alerts now
    error: ShortText | None = None
    shadow: ShadowReport | None = None


class DesiredModel(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    """A signed model the gateway should run."""

    name: Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_-]{0,63}\Z")]
    version: Version
    profile: Profile
    url: Annotated[str, Meta(max_length=2048)]
    sha256: Sha256Hex
    signature: Annotated[str, Meta(max_length=200)]  # base64 Ed25519 over the manifest
    # "shadow": score beside the active model for `probation_s`, report, then promote if within bounds;
    # "active": switch now (also how the cloud promotes a model that is in shadow).
    mode: Literal["active", "shadow"] = "active"
    probation_s: Annotated[float, Meta(gt=0, le=30 * 86400)] = 3600.0
    max_alert_ratio: Annotated[float, Meta(gt=0, le=1000)] = 3.0  # shadow alerts ≤ ratio × max(active alerts, 1)
    # Ops's explicit return to an older model: the gateway accepts a version below the highest it has run for the
    # profile only with this set (anti-rollback, docs/security.md). Omitted when false: old documents keep their bytes.
    rollback: bool = False


class DesiredConfig(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    """Fleet-managed agent settings; anything absent keeps the gateway's local value."""

    sample_period_s: Annotated[float, Meta(gt=0, le=3600)] | None = None
    sensor_profiles: dict[SensorId, Profile] = {}


class Desired(_Message):
    """Cloud → gateway, retained: the model and config the gateway should converge to.

    `gateway` names the gateway the document is for; `signature` is base64 Ed25519 by the fleet key over
    `protocol.codec.desired_signing_bytes` (the document without its signature). An agent with trusted keys refuses
    a document that is unsigned, badly signed or for another gateway (docs/security.md).
    """

    version: Count
    issued_at: TimestampMs
    model: DesiredModel | None = None
    config: DesiredConfig | None = None
    gateway: GatewayId | None = None
    signature: Annotated[str, Meta(max_length=200)] | None = None


MAX_REPLAY_SPAN: Final = 100_000


class Replay(_Message):
    """Cloud → gateway (`replay`, QoS 1, not retained): send these already-PUBACKed messages again.

    Ingest asks when a gap in a gateway's stream stays open: a broker restart can lose messages it had
    acknowledged (mosquitto 2.0 does not restore shared subscriptions; docs/decisions.md). The gateway
    re-sends what it still keeps; the seqs are unchanged, so storage stays idempotent.
    """

    gateway: GatewayId
    stream: Literal["telemetry", "alerts"]
    first_seq: Seq
    last_seq: Seq
    requested_at: TimestampMs

    def __post_init__(self) -> None:
        if self.last_seq < self.first_seq:
            raise ValueError(f"last_seq {self.last_seq} is below first_seq {self.first_seq}")
        if self.last_seq - self.first_seq >= MAX_REPLAY_SPAN:
            raise ValueError(f"a replay spans at most {MAX_REPLAY_SPAN} seqs")


Message = TelemetryBatch | AlertEvent | Status | Reported | Desired | Replay


def alert_id(gateway: str, sensor: str, kind: str, started_at: int) -> str:
    """Deterministic alert id, so a re-delivered event updates the same alert."""
    key = f"{gateway}|{sensor}|{kind}|{started_at}".encode()
    return hashlib.sha256(key).hexdigest()[:32]
