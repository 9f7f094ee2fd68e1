"""The agent's TOML configuration, validated once at start; errors name the key and the reason."""

from __future__ import annotations

import os
import ssl
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar, Union
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta

from edge_agent.inputs import DRIVERS, InputSection
from models.runtime.pulldown import FADING_BELOW, FADING_FOR_S
from models.runtime.rule_defaults import CLEAR_AFTER_S, RANGE_HOLD_BY_PROFILE_S, RANGE_HOLD_S, SILENT_AFTER_S
from protocol.messages import GatewayId, Profile, SensorId
from protocol.profiles import PROFILES

Port = Annotated[int, Meta(ge=1, le=65535)]
Seconds = Annotated[float, Meta(gt=0, le=86400)]


class ConfigError(ValueError):
    """The configuration is unusable; each problem says which key and why (and where a value came from)."""

    def __init__(self, problems: str | list[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Every section refuses keys it does not know: a typo is an error, not a silent default."""


_S = TypeVar("_S", bound=_Section)


class TlsConfig(_Section):
    """TLS to the broker: the CA that signed it, and this gateway's client certificate and key."""

    ca: str
    cert: str | None = None
    key: str | None = None


class MqttConfig(_Section):
    """How to reach the broker; the user name defaults to the gateway id (the ACL relies on it)."""

    host: str
    port: Port = 1883
    username: str | None = None
    password: str | None = None
    password_file: str | None = None
    tls: TlsConfig | None = None
    keepalive_s: Annotated[int, Meta(ge=5, le=3600)] = 30
    session_expiry_s: Annotated[int, Meta(ge=0, le=30 * 86400)] = 7 * 86400
    max_inflight: Annotated[int, Meta(ge=1, le=1000)] = 20
    reconnect_min_s: Seconds = 0.5
    reconnect_max_s: Seconds = 60.0


if TYPE_CHECKING:
    InputConfig = InputSection
else:  # one section type per registered driver, told apart by `type` (msgspec's tagged union)
    InputConfig = Union[tuple(driver.section for driver in DRIVERS.values())]  # noqa: UP007


class OutboxConfig(_Section):
    """The durable queue: where it lives, how big it may grow, how batches are closed."""

    path: str
    max_bytes: Annotated[int, Meta(ge=64 * 1024)] = 256 * 1024 * 1024
    flush_interval_s: Annotated[float, Meta(gt=0, le=1.0)] = 1.0
    batch_max_readings: Annotated[int, Meta(ge=1, le=5000)] = 1000
    # PUBACKed messages kept for re-sending when the cloud finds a gap (a broker restart can lose them).
    keep_sent_s: Annotated[float, Meta(ge=0, le=30 * 86400)] = 6 * 3600.0
    keep_sent_bytes: Annotated[int, Meta(ge=0)] = 32 * 1024 * 1024


class DetectConfig(_Section):
    """Rule thresholds; durations are measured in the readings' own time (the gateway clock)."""

    range_min_duration_s: Annotated[float, Meta(ge=0, le=86400)] = RANGE_HOLD_S
    range_min_duration_by_profile_s: dict[Profile, Annotated[float, Meta(ge=0, le=86400)]] = msgspec.field(
        default_factory=lambda: dict(RANGE_HOLD_BY_PROFILE_S))
    pulldown_s: Annotated[float, Meta(ge=0, le=86400)] = 4 * 3600.0
    rate_max_c_per_min: Annotated[float, Meta(gt=0, le=100)] = 2.0
    rate_min_duration_s: Annotated[float, Meta(ge=0, le=86400)] = 120.0
    rate_window_s: Annotated[float, Meta(gt=0, le=3600)] = 300.0
    battery_low_mv: Annotated[int, Meta(ge=1600, le=3646)] = 2400
    # cooling_fading: pull-downs this much slower than the sensor's own hours before, held this long
    pulldown_fading_below: Annotated[float, Meta(gt=0, lt=1)] = FADING_BELOW
    pulldown_fading_s: Annotated[float, Meta(ge=0, le=86400)] = FADING_FOR_S
    silent_after_s: Annotated[float, Meta(gt=0, le=7 * 86400)] = SILENT_AFTER_S
    clear_after_s: Annotated[float, Meta(ge=0, le=86400)] = CLEAR_AFTER_S
    update_every_s: Annotated[float, Meta(gt=0, le=86400)] = 300.0


class UpdaterConfig(_Section):
    """Where the agent keeps applied desired state and models, and which keys may sign models."""

    state_dir: str | None = None  # default: the outbox's directory
    models_dir: str | None = None  # default: <state_dir>/models
    public_keys: list[str] = []  # PEM or raw base64 Ed25519 public keys (files); empty: models are refused
    token_file: str | None = None  # the gateway's token for artifact downloads
    # the cloud API's origin (https://host:port): models are fetched only from there, and the token is sent nowhere
    # else; unset, any HTTPS host a desired document names would get the token (a warning at start)
    api_url: str | None = None


class SensorsConfig(_Section):
    """Which asset profile each sensor's goods have; unknown sensors get the default."""

    default_profile: Profile = "chilled"
    profiles: dict[SensorId, Profile] = {}


class AgentConfig(_Section):
    """The whole agent configuration (see docs/edge-agent.md for every key)."""

    gateway_id: GatewayId
    mqtt: MqttConfig
    outbox: OutboxConfig
    inputs: Annotated[list[InputConfig], Meta(min_length=1)]
    sensors: SensorsConfig = msgspec.field(default_factory=SensorsConfig)
    detect: DetectConfig = msgspec.field(default_factory=DetectConfig)
    updater: UpdaterConfig = msgspec.field(default_factory=UpdaterConfig)
    metrics_port: Annotated[int, Meta(ge=0, le=65535)] = 9108
    metrics_bind: str = "127.0.0.1"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    drain_timeout_s: Annotated[float, Meta(ge=0, le=300)] = 10.0
    status_interval_s: Annotated[float, Meta(ge=1, le=86400)] = 60.0

    def profile_of(self, sensor: str) -> str:
        """The asset profile configured for `sensor` (MAC, lower-case)."""
        return self.sensors.profiles.get(sensor, self.sensors.default_profile)

    def state_dir(self) -> Path:
        """Where applied desired state lives."""
        return Path(self.updater.state_dir) if self.updater.state_dir else Path(self.outbox.path).parent

    def models_dir(self) -> Path:
        """Where verified models are installed."""
        return Path(self.updater.models_dir) if self.updater.models_dir else self.state_dir() / "models"

    def public_keys(self) -> list[bytes]:
        """The fleet's Ed25519 public keys (raw 32 bytes each); checked readable at start."""
        from models.runtime.manifest import load_public_key

        return [load_public_key(Path(p).read_bytes()) for p in self.updater.public_keys]

    def mqtt_password(self) -> str | None:
        """The broker password, read from `password_file` when one is given."""
        if self.mqtt.password_file:
            return Path(self.mqtt.password_file).read_text().strip()
        return self.mqtt.password


def parse_config(data: dict[str, Any], origins: Mapping[str, str] | None = None) -> AgentConfig:
    """Validate a parsed TOML document; raise ConfigError naming every offending key at once.

    `origins` maps a dotted key to the environment variable that set it, so that its error says so. Every file
    the config names is opened here (password, CA, client certificate and key, public keys): a config that passes
    does not fail later on a missing or unreadable file.
    """
    problems = _schema_problems(data)
    if not problems:
        try:
            config = msgspec.convert(data, AgentConfig, strict=False)  # lax: env values arrive as text
        except msgspec.ValidationError as exc:  # whatever the per-key pass did not see
            raise ConfigError(_with_origin(_readable(str(exc)), origins or {})) from None
        problems = _semantic_problems(config) + _file_problems(config.mqtt, config.updater)
    else:  # the files of the sections that are valid on their own are still worth reporting now
        problems += _file_problems(_section(data, "mqtt", MqttConfig), _section(data, "updater", UpdaterConfig))
    if problems:
        raise ConfigError([_with_origin(problem, origins or {}) for problem in problems])
    return config


def _schema_problems(data: dict[str, Any]) -> list[str]:
    """Schema errors, every one of them: msgspec stops at the first error of a value, so each section and each
    of its keys is converted on its own."""
    return _struct_problems(data, AgentConfig, "")


def _struct_problems(data: Any, struct: type[msgspec.Struct], prefix: str) -> list[str]:
    if not isinstance(data, dict):
        return _convert_problems(data, struct, prefix)
    problems: list[str] = []
    fields = {f.name: f for f in msgspec.structs.fields(struct)}
    where = f"{prefix}." if prefix else ""
    for key in data:
        if key not in fields and not (key == "type" and prefix.startswith("inputs[")):  # an input's tag
            problems.append(f"{where}{key}: unknown key; known: {', '.join(fields)}")
    for name, field in fields.items():
        if name not in data:
            if field.required:
                problems.append(f"{where}{name}: required")
        elif name == "inputs" and struct is AgentConfig:
            problems += _input_problems(data[name])
        elif isinstance(field.type, type) and issubclass(field.type, msgspec.Struct):
            problems += _struct_problems(data[name], field.type, where + name)
        else:
            problems += _convert_problems(data[name], field.type, where + name)
    return problems


def _convert_problems(value: Any, kind: Any, key: str) -> list[str]:
    try:
        msgspec.convert(value, kind, strict=False)  # lax: env values arrive as text
    except msgspec.ValidationError as exc:
        return [_readable(str(exc), prefix=key)]
    return []


def _input_problems(sections: Any) -> list[str]:
    if not isinstance(sections, list) or not sections:
        return ["inputs: at least one [[inputs]] section is required"]
    problems = []
    for i, section in enumerate(sections):
        kind = section.get("type") if isinstance(section, dict) else None
        if kind not in DRIVERS:
            problems.append(f"inputs[{i}].type: unknown input {kind!r}; choose from {', '.join(DRIVERS)}")
            continue
        problems += _struct_problems(section, DRIVERS[kind].section, f"inputs[{i}]")
    return problems


def _with_origin(problem: str, origins: Mapping[str, str]) -> str:
    key = problem.split(":", 1)[0]
    for dotted, variable in origins.items():
        if key == dotted or key.startswith(dotted + ".") or key.startswith(dotted + "["):
            return f"{problem} (the value comes from the environment: {variable})"
    return problem


ENV_PREFIX = "COLDWATCH_AGENT_"


def apply_env(data: dict[str, Any], environ: Mapping[str, str],
              origins: dict[str, str] | None = None) -> dict[str, Any]:
    """Overlay `COLDWATCH_AGENT_<KEY>` / `COLDWATCH_AGENT_<SECTION>__<KEY>` variables on the file's values.

    `COLDWATCH_AGENT_MQTT__PASSWORD=…` sets mqtt.password. Values are strings; validation converts
    numeric and boolean text where the schema asks for a number or a boolean. Each key set is recorded in
    `origins` (dotted key → variable name) for the error messages.
    """
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX):].split("__")]
        if not all(path):
            raise ConfigError(f"environment {name}: empty key")
        node = data
        for key in path[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"environment {name}: {key} is not a section")
            node = child
        node[path[-1]] = raw
        if origins is not None:
            origins[".".join(path)] = name
    return data


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> AgentConfig:
    """Read the TOML file at `path`, overlay COLDWATCH_AGENT_* variables, validate."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    origins: dict[str, str] = {}
    data = apply_env(data, os.environ if environ is None else environ, origins)
    try:
        return parse_config(data, origins)
    except ConfigError as exc:
        raise ConfigError([f"{path}: {problem}" for problem in exc.problems]) from None


def _readable(message: str, prefix: str = "") -> str:
    """msgspec says 'Expected `int`, got `str` - at `$.mqtt.port`'; we say 'mqtt.port: expected int, got str'.
    `prefix` names the section a value was converted from on its own."""
    reason, sep, where = message.rpartition(" - at `$")
    if not sep:
        reason, where = message, ""
    key = where.rstrip("`")
    key = (prefix + key if key.startswith("[") or not prefix else f"{prefix}.{key.lstrip('.')}") if key else prefix
    key = key.lstrip(".") or "(top level)"
    return f"{key}: {reason[0].lower() + reason[1:]}".replace("`", "")


def _semantic_problems(config: AgentConfig) -> list[str]:
    """What a schema cannot say: known profiles, what each input driver checks, paired TLS files, one password
    source, an api_url that is an origin."""
    problems = []
    for key, profile in [("sensors.default_profile", config.sensors.default_profile),
                         *((f"sensors.profiles.{mac}", p) for mac, p in config.sensors.profiles.items())]:
        if profile not in PROFILES:
            problems.append(f"{key}: unknown profile {profile!r}; choose from {', '.join(PROFILES)}")
    for i, spec in enumerate(config.inputs):
        problem = DRIVERS[spec.driver].check(spec)
        if problem:
            problems.append(f"inputs[{i}].{problem}")
    api_url = urlsplit(config.updater.api_url or "https://x")
    try:
        _ = api_url.port  # a port that is not a number raises here
    except ValueError:
        api_url = urlsplit("ftp://bad-port")
    if api_url.scheme not in ("http", "https") or not api_url.hostname or "@" in api_url.netloc or api_url.path.strip(
            "/") or api_url.query or api_url.fragment:
        problems.append(f"updater.api_url: {config.updater.api_url!r} is not an origin like https://cloud.example:8443")
    if config.mqtt.password and config.mqtt.password_file:
        problems.append("mqtt.password_file: give either password or password_file, not both")
    tls = config.mqtt.tls
    if tls and (tls.cert is None) != (tls.key is None):
        problems.append("mqtt.tls: cert and key go together (a client certificate needs its key)")
    if config.mqtt.reconnect_min_s > config.mqtt.reconnect_max_s:
        problems.append("mqtt.reconnect_min_s: must not exceed mqtt.reconnect_max_s")
    return problems


def _section(data: dict[str, Any], key: str, kind: type[_S]) -> _S | None:
    try:
        return msgspec.convert(data.get(key, {}), kind, strict=False)
    except msgspec.ValidationError:
        return None


def _file_problems(mqtt: MqttConfig | None, updater: UpdaterConfig | None) -> list[str]:
    """Open every file the config names, as `run` will: each unreadable or wrong file is one problem."""
    from models.runtime.manifest import load_public_key

    problems = []
    if mqtt is not None and mqtt.password_file:
        try:
            if not Path(mqtt.password_file).read_text().strip():
                problems.append(f"mqtt.password_file: {mqtt.password_file} is empty")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"mqtt.password_file: cannot read {mqtt.password_file}: {_reason(exc)}")
    if mqtt is not None and mqtt.tls is not None:
        problems += _tls_problems(mqtt.tls)
    # each key on its own: the error names the bad one
    for i, key_path in enumerate(updater.public_keys if updater is not None else []):
        try:
            load_public_key(Path(key_path).read_bytes())
        except OSError as exc:
            problems.append(f"updater.public_keys[{i}]: cannot read {key_path}: {_reason(exc)}")
        except ValueError as exc:
            problems.append(f"updater.public_keys[{i}]: {key_path} is not an Ed25519 public key ({exc})")
    return problems


def _tls_problems(tls: TlsConfig) -> list[str]:
    problems = []
    readable = {}
    for key in ("ca", "cert", "key"):
        path = getattr(tls, key)
        if path is None:
            continue
        try:
            Path(path).read_bytes()
            readable[key] = path
        except OSError as exc:
            problems.append(f"mqtt.tls.{key}: cannot read {path}: {_reason(exc)}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if "ca" in readable:
        try:
            context.load_verify_locations(cafile=readable["ca"])
        except (ssl.SSLError, ValueError) as exc:
            problems.append(f"mqtt.tls.ca: {readable['ca']} holds no PEM certificate ({_reason(exc)})")
    if "cert" in readable and "key" in readable:
        try:
            context.load_cert_chain(readable["cert"], readable["key"])
        except (ssl.SSLError, ValueError) as exc:
            problems.append(f"mqtt.tls.cert: {readable['cert']} and mqtt.tls.key {readable['key']} are not a "
                            f"matching PEM certificate and key ({_reason(exc)})")
    return problems


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    return str(exc)
