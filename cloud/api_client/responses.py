"""What the ops API client (`client.py`) sends and gets back, as msgspec Structs (unknown fields ignored)."""

from __future__ import annotations

import msgspec

# Free-form JSON objects the API passes through as stored (a manifest, its metrics, a verdict's evidence).
JsonObject = dict[str, object]


# -- models -----------------------------------------------------------------------------------------------------
class ModelEntry(msgspec.Struct, kw_only=True):
    """A registered model as `GET /models` lists it (cloud.db.registry.ModelArtifactPublic)."""

    name: str
    version: str
    profile: str
    sha256: str
    threshold: float
    size_bytes: int
    created_at: str  # the manifest's ISO-8601 created_at
    source: str  # upload | training-job:<id>
    stem: str
    registered_at: int
    registered_by: str
    metrics: JsonObject | None


class ModelDetail(ModelEntry, kw_only=True):
    """One model with its whole manifest (as signed) and signature (ModelArtifactDetail)."""

    manifest: JsonObject
    signature: str


# -- rollouts ---------------------------------------------------------------------------------------------------
class ShadowSummary(msgspec.Struct, kw_only=True):
    """A canary's latest shadow comparison (protocol.messages.ShadowReport as ingest stored it)."""

    model_version: str
    state: str  # running | promoted | discarded
    started_at: int
    windows: int = 0
    active_alerts: int = 0
    shadow_alerts: int = 0
    score_drift: float | None = None
    reason: str = ""
    last_at: int | None = None
    sensor_hours: float = 0.0
    shadow_episodes: int = 0
    active_episodes: int | None = None


class RolloutTarget(msgspec.Struct, kw_only=True):
    """One gateway's part in a rollout, with what it last reported (RolloutTargetPublic)."""

    gateway_id: str
    role: str  # canary | rest
    state: str
    desired_version: int | None
    previous_model: str | None
    detail: str | None
    updated_at: int
    reported_result: str | None = None
    reported_model_version: str | None = None
    gateway_status: str | None = None
    shadow: ShadowSummary | None = None


class Rollout(msgspec.Struct, kw_only=True):
    """A rollout with its targets and a count per target state (RolloutPublic)."""

    model_stem: str
    profile: str
    state: str
    canary_fraction: float
    probation_s: float
    max_alert_ratio: float
    created_by: str
    created_at: int
    updated_at: int
    reason: str | None = None
    min_sensor_hours: float
    alert_budget: float
    verdict: str | None = None
    evidence: JsonObject | None = None  # what the verdict was taken on (cloud.services.canary.Evidence + decision)
    id: int
    counts: dict[str, int]
    targets: list[RolloutTarget]


# -- training jobs ----------------------------------------------------------------------------------------------
class KindFigures(msgspec.Struct, kw_only=True):
    """A model's figures on one incident kind (models.training.evaluate.Tally.summary()["kinds"])."""

    incidents: int
    detected: int
    recall: float
    median_delay_min: float | None


class ModelFigures(msgspec.Struct, kw_only=True):
    """A model on the job's labelled data: Tally.summary(), the benign windows it alerted on, synthetic faults."""

    kinds: dict[str, KindFigures]
    recall: float | None
    median_delay_min: float | None
    false_alerts: int
    sensor_days: float
    false_alerts_per_sensor_day: float | None
    false_alerts_on_benign: dict[str, int]
    benign_windows: int
    benign_windows_alerted: int
    synthetic_fault_recall: float | None


class Gate(msgspec.Struct, kw_only=True):
    """The quality gate's verdict on the candidate."""

    passed: bool
    reasons: list[str]


class Evaluation(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Candidate and current model on the same data, and the gate (`current` absent: there was none)."""

    candidate: ModelFigures
    current: ModelFigures | None = None
    gate: Gate


class TrainingResult(msgspec.Struct, kw_only=True):
    """What a job produced: the registered model (None: the gate refused it), its evaluation, where and how long."""

    model: str | None
    evaluation: Evaluation
    device: str
    timings_s: dict[str, float]


class TrainingJob(msgspec.Struct, kw_only=True):
    """A training job as the API shows it and a worker receives it (cloud.db.training.TrainingJobPublic)."""

    id: int
    profile: str
    start: int  # epoch ms, inclusive
    end: int  # epoch ms, exclusive
    epochs: int
    seed: int = 0
    version: str | None = None
    state: str  # queued | running | succeeded | failed
    stage: str | None = None
    progress: float = 0.0
    worker: str | None = None
    model_stem: str | None = None
    error: str | None = None
    created_by: str
    created_at: int
    started_at: int | None = None
    finished_at: int | None = None
    result: TrainingResult | None = None
    log: str = ""


class JobRef(msgspec.Struct, kw_only=True):
    """Just a job's id: what can still be read from a job the worker cannot decode."""

    id: int


class TrainingUpdate(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What a worker reports on a job (TrainingJobUpdate); fields left at None are not sent."""

    stage: str | None = None
    progress: float | None = None
    log: list[str] | None = None
    state: str | None = None
    model_stem: str | None = None
    error: str | None = None
    result: TrainingResult | None = None


class DatasetLabel(msgspec.Struct, kw_only=True):
    """A resolved alert on one of the job's sensors: the window staff labelled, and how."""

    alert: str
    sensor: str
    start: int
    end: int
    code: str | None
    kind: str


class TrainingDataset(msgspec.Struct, kw_only=True):
    """The job's sensors (those of its profile) and labels (cloud.services.training.dataset)."""

    job: int
    profile: str
    start: int
    end: int
    sensors: list[str]
    labels: list[DatasetLabel]


class StoredReading(msgspec.Struct, kw_only=True):
    """One reading as stored (cloud.tsdb.readings.StoredReading); None where the gateway sent none."""

    ts: int
    gateway: str
    profile: str
    temp_c: float | None = None
    rh_pct: float | None = None
    battery_mv: int | None = None
    rssi_dbm: int | None = None
    anomaly_score: float | None = None
    seq: int | None = None


class ReadingsPage(msgspec.Struct, kw_only=True):
    """A sensor's readings with start <= ts < end, oldest first (the readings route's ReadingsOut)."""

    sensor: str
    start: int
    end: int
    count: int
    readings: list[StoredReading]


# -- gateways (provisioning, as the demo and the tests do it) ---------------------------------------------------
class GatewayCredentials(msgspec.Struct, kw_only=True):
    """A provisioned gateway's MQTT account (the password is shown once)."""

    mqtt_username: str
    mqtt_password: str
    broker_reloaded: bool


class ArtifactToken(msgspec.Struct, kw_only=True):
    """A gateway's artifact-download token, shown once."""

    gateway_id: str
    token: str


class Gateway(msgspec.Struct, kw_only=True):
    """A gateway's status and what it last reported (the fields of GatewayPublic the ops tools read)."""

    id: str
    site: str | None = None
    status: str | None = None
    agent_version: str | None = None
    model_version: str | None = None
    reported_result: str | None = None
    reported_model_version: str | None = None
    reported_error: str | None = None
