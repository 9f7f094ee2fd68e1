"""Typed settings for the cloud processes, read once at start from `COLDWATCH_*` variables and CLI flags.

Every refusal names the variable (or flag) and the reason; secrets never appear in `repr`.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

ENV_PREFIX: Final = "COLDWATCH_"
_CLIENT_ID_RE: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
MAX_BATCH_SIZE: Final = 1_000_000
_PROFILE_RE: Final = re.compile(r"[a-z][a-z0-9_]{0,31}")
Proxies = list[ipaddress.IPv4Network | ipaddress.IPv6Network | str]  # trusted proxies, parsed


class ConfigError(ValueError):
    """A setting that cannot be used; `variable` is the env var or flag that supplied it."""

    def __init__(self, variable: str, reason: str, *, field_name: str | None = None) -> None:
        super().__init__(f"{variable}: {reason}")
        self.variable = variable
        self.reason = reason
        self.field_name = field_name


def env_name(field_name: str) -> str:
    """The environment variable for a Settings field: mqtt_port → COLDWATCH_MQTT_PORT."""
    return ENV_PREFIX + field_name.upper()


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything a `coldwatch` process needs; validated on construction."""

    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_username: str = "coldwatch.ingest"
    mqtt_password: str | None = field(default=None, repr=False)
    influx_url: str = "http://127.0.0.1:8086"
    influx_db: str = "coldwatch"
    influx_token: str | None = field(default=None, repr=False)
    influx_username: str | None = None
    influx_password: str | None = field(default=None, repr=False)
    influx_gzip: bool = False
    ingest_worker_id: str = "ingest-1"
    ingest_batch_size: int = 20_000  # points per write: per-batch costs fall per point (docs/scaling.md)
    ingest_batch_age_s: float = 1.0
    ingest_replay_after_s: float = 30.0  # a gateway-stream gap open this long is asked for again (0: never)
    retention_notifications_days: int = 90  # SQL retention (cloud/services/retention.py); 0 keeps forever
    retention_audit_days: int = 730
    retention_gaps_days: int = 400
    ingest_gap_grace_s: float = 10.0  # skipped seqs become gaps only after this long (the other worker fills them)
    # how often a worker merges the ingest journal into gateways, sensors and completeness (0: no journal, each batch
    # updates those rows in its own transaction)
    ingest_merge_s: float = 2.0
    ingest_dead_letter_max: int = 10_000  # refused messages kept with their payload (the oldest go first)
    ingest_future_s: float = 300.0  # readings stamped further ahead of the cloud's clock are dead-lettered
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    database_url: str = "sqlite:///var/coldwatch.db"
    ingest_unknown_gateway: str = "reject"  # reject (only provisioned gateways are accepted) | register
    mosquitto_passwd_file: str | None = None  # the broker's password file, rewritten when gateways are provisioned
    mosquitto_pid_file: str | None = None  # the broker's pid file: SIGHUP after rewriting
    admin_password: str | None = field(default=None, repr=False)  # bootstrap: creates user `admin` if none exists
    cookie_secure: bool = False  # set the session cookie's Secure flag (behind HTTPS)
    login_max_failures: int = 5  # per user name and per client address, in login_window_s
    login_window_s: int = 300
    # proxies whose X-Forwarded-For names the client (addresses, CIDR networks or host names, comma-separated);
    # unset, the peer's address is the client's and X-Forwarded-For is ignored (anyone could forge it)
    api_trusted_proxies: str | None = None
    # True lets GET /sensors/{id}/readings be read without logging in (a public display); off by default.
    api_public_readings: bool = False
    # Model registry and rollouts (docs/rollouts.md). The model signing key is never a setting: only the training
    # worker reads it (COLDWATCH_SIGNING_KEY_FILE), where models are signed.
    models_dir: str = "var/registry"  # registered artifacts: <dir>/<name>-<version>/<stem>.{tflite,manifest.json,sig}
    model_public_keys: str | None = None  # comma-separated public key files; uploads must be signed by one
    artifact_base_url: str | None = None  # how gateways reach this API (default http://<api_host>:<api_port>)
    rollout_controller: bool = True  # advance rollouts in the API process (needs COLDWATCH_MQTT_PASSWORD)
    rollout_interval_s: float = 2.0
    # The fleet key desired documents are signed with (an Ed25519 private key file as `coldwatch models keygen`
    # writes it; its public key in the agents' `updater.public_keys`). Unset: published unsigned, a warning at start;
    # agents with trusted keys refuse unsigned documents (docs/security.md).
    desired_signing_key: str | None = None
    # Notifications (docs/cloud.md "Notifications"): a channel is on when its settings are given; secrets only
    # from the environment.
    notify_webhook_url: str | None = field(default=None, repr=False)  # may carry a token (chat hooks)
    notify_webhook_secret: str | None = field(default=None, repr=False)  # HMAC-SHA256 key for the signature header
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_starttls: bool = True
    smtp_ca_file: str | None = None  # PEM CA bundle to verify the SMTP server by (default: the system's)
    smtp_username: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_from: str | None = None
    notify_email_to: str | None = None  # comma-separated recipients
    notify_email_language: str = "en"  # the e-mails' language: en or zh_CN (cloud/i18n.py)
    notify_timeout_s: float = 10.0  # per webhook request / SMTP session
    notify_rate_per_min: int = 10  # per channel; what is held back goes out as one summary (0: no limit)
    notify_renotify_s: int = 1800  # critical alerts still open are notified again this often (0: never)
    notify_rollup_s: float = 60.0  # a gateway's alerts received this close together make one incident (0: none)
    notify_interval_s: float = 5.0  # how often the dispatcher looks for work
    # The silence watchdog (cloud/services/silence.py): a gateway quiet this long raises `gateway_silent`.
    gateway_silence_min: float = 15.0
    gateway_silence_by_profile: str | None = None  # per profile, e.g. "pharma_2_8=5,frozen=20" (minutes)
    silence_interval_s: float = 30.0  # how often the watchdog looks (0: not in this process)
    # Shipments (docs/shipments.md): records made at delivery are kept here with their detached signature; the
    # records key (Ed25519, made on first use, mode 0600) signs them; its public key is served at
    # /api/v1/shipments/record-key. The watcher judges a shipment's own limits and notices arrival.
    records_dir: str = "var/records"
    record_signing_key: str = "var/record-signing.pem"
    shipment_interval_s: float = 15.0  # how often the shipment watcher looks (0: not in this process)

    def __post_init__(self) -> None:
        _validate(self)

    def require_mqtt_password(self) -> str:
        """The MQTT password, or ConfigError: the broker refuses anonymous clients."""
        if self.mqtt_password is None:
            raise ConfigError(
                env_name("mqtt_password"), "is required (the broker refuses anonymous clients); "
                "set it in the environment, never on the command line", field_name="mqtt_password",
            )
        return self.mqtt_password


def silence_by_profile(s: Settings) -> dict[str, float]:
    """`gateway_silence_by_profile` parsed: profile → minutes (ConfigError naming the bad entry)."""
    out: dict[str, float] = {}
    for entry in filter(None, (e.strip() for e in (s.gateway_silence_by_profile or "").split(","))):
        name, sep, raw = entry.partition("=")
        try:
            minutes = float(raw) if sep else math.nan
        except ValueError:
            minutes = math.nan
        if not _PROFILE_RE.fullmatch(name.strip()) or not (math.isfinite(minutes) and 1 <= minutes <= 1440):
            raise _fail("gateway_silence_by_profile", f"{entry!r} is not profile=minutes (a profile id, 1-1440 min)")
        out[name.strip()] = minutes
    return out


def parse_proxies(raw: str | None) -> Proxies:
    """`api_trusted_proxies`: comma-separated addresses, networks (CIDR) or host names; ValueError naming a bad
    entry."""
    out: list[ipaddress.IPv4Network | ipaddress.IPv6Network | str] = []
    for entry in filter(None, (e.strip() for e in (raw or "").split(","))):
        try:
            out.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            if not entry.replace("-", "").replace(".", "").isalnum() or not entry.isascii():
                raise ValueError(f"{entry!r} is not an address, a network or a host name") from None
            out.append(entry.lower())
    return out


def _fail(name: str, reason: str) -> ConfigError:
    return ConfigError(env_name(name), reason, field_name=name)


def _validate(s: Settings) -> None:
    for name in ("mqtt_host", "api_host", "mqtt_username", "influx_db"):
        value = getattr(s, name)
        if not value or not value.strip():
            raise _fail(name, "must not be empty")
        if any(c in value for c in "\r\n\0"):
            raise _fail(name, "must not contain control characters")
    for name in ("mqtt_port", "api_port"):
        if not 1 <= getattr(s, name) <= 65535:
            raise _fail(name, f"{getattr(s, name)} is not a TCP port (1-65535)")
    if s.mqtt_password is not None and not s.mqtt_password:
        raise _fail("mqtt_password", "must not be empty; the broker refuses anonymous clients")
    url = urlsplit(s.influx_url)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise _fail("influx_url", f"{s.influx_url!r} is not an http(s) URL with a host")
    if s.influx_token is not None and s.influx_username is not None:
        raise _fail("influx_token", "set either a token or a user name and password, not both")
    if s.influx_username is not None and s.influx_password is None:
        raise _fail("influx_password", "is required when COLDWATCH_INFLUX_USERNAME is set")
    if s.influx_password is not None and s.influx_username is None:
        raise _fail("influx_username", "is required when COLDWATCH_INFLUX_PASSWORD is set")
    if not _CLIENT_ID_RE.fullmatch(s.ingest_worker_id):
        raise _fail("ingest_worker_id", f"{s.ingest_worker_id!r} is not 1-64 of A-Z a-z 0-9 . _ -")
    if not 1 <= s.ingest_batch_size <= MAX_BATCH_SIZE:
        raise _fail("ingest_batch_size", f"{s.ingest_batch_size} is outside 1..{MAX_BATCH_SIZE}")
    if not (math.isfinite(s.ingest_batch_age_s) and 0 < s.ingest_batch_age_s <= 60):
        raise _fail("ingest_batch_age_s", f"{s.ingest_batch_age_s} is not a number of seconds in (0, 60]")
    if not (math.isfinite(s.ingest_replay_after_s) and 0 <= s.ingest_replay_after_s <= 86400):
        raise _fail("ingest_replay_after_s", f"{s.ingest_replay_after_s} is not a number of seconds in [0, 86400]")
    scheme = s.database_url.split("://", 1)[0] if "://" in s.database_url else ""
    if scheme not in ("sqlite", "postgresql", "postgresql+psycopg"):
        raise _fail("database_url", "must start with sqlite:// or postgresql+psycopg://")
    for name in ("retention_notifications_days", "retention_audit_days", "retention_gaps_days"):
        if not 0 <= getattr(s, name) <= 36_500:
            raise _fail(name, f"{getattr(s, name)} is not a number of days in [0, 36500] (0 keeps forever)")
    if not (math.isfinite(s.ingest_gap_grace_s) and 0 <= s.ingest_gap_grace_s <= 3600):
        raise _fail("ingest_gap_grace_s", f"{s.ingest_gap_grace_s} is not a number of seconds in [0, 3600]")
    if not (math.isfinite(s.ingest_merge_s) and 0 <= s.ingest_merge_s <= 60):
        raise _fail("ingest_merge_s", f"{s.ingest_merge_s} is not a number of seconds in [0, 60]")
    if not 0 <= s.ingest_dead_letter_max <= 10_000_000:
        raise _fail("ingest_dead_letter_max", f"{s.ingest_dead_letter_max} is not a row count in [0, 10000000]")
    if not (math.isfinite(s.ingest_future_s) and 0 < s.ingest_future_s <= 86400):
        raise _fail("ingest_future_s", f"{s.ingest_future_s} is not a number of seconds in (0, 86400]")
    if s.ingest_unknown_gateway not in ("register", "reject"):
        raise _fail("ingest_unknown_gateway", f"{s.ingest_unknown_gateway!r} is not 'register' or 'reject'")
    if s.admin_password is not None and len(s.admin_password) < 10:
        raise _fail("admin_password", "must be at least 10 characters")
    if not 1 <= s.login_max_failures <= 1000:
        raise _fail("login_max_failures", f"{s.login_max_failures} is outside 1..1000")
    if not 1 <= s.login_window_s <= 86400:
        raise _fail("login_window_s", f"{s.login_window_s} is outside 1..86400")
    if not (math.isfinite(s.rollout_interval_s) and 0 < s.rollout_interval_s <= 3600):
        raise _fail("rollout_interval_s", f"{s.rollout_interval_s} is not a number of seconds in (0, 3600]")
    if s.artifact_base_url is not None and urlsplit(s.artifact_base_url).scheme not in ("http", "https"):
        raise _fail("artifact_base_url", f"{s.artifact_base_url!r} is not an http(s) URL")
    if s.desired_signing_key is not None:
        desired_signing_pem(s)  # raises naming the variable and the reason
    _validate_notify(s)


def desired_signing_pem(s: Settings) -> bytes | None:
    """The desired-document signing key (PEM) from `desired_signing_key`, checked to be an Ed25519 private key;
    None when unset. ConfigError naming COLDWATCH_DESIRED_SIGNING_KEY when it cannot be read or is not one."""
    if s.desired_signing_key is None:
        return None
    from cryptography.exceptions import UnsupportedAlgorithm

    from models.runtime.manifest import load_private_key

    path = s.desired_signing_key
    try:
        pem = Path(path).read_bytes()
    except OSError as exc:
        raise _fail("desired_signing_key", f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        load_private_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise _fail("desired_signing_key", f"{path} is not an unencrypted Ed25519 private key in PEM "
                                           f"(`coldwatch models keygen` writes one): {exc}") from None
    return pem


_EMAIL_RE: Final = re.compile(r"^[^@\s,<>]+@[^@\s,<>]+$")


def _validate_notify(s: Settings) -> None:
    if s.notify_webhook_url is not None:
        url = urlsplit(s.notify_webhook_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise _fail("notify_webhook_url", "is not an http(s) URL with a host")  # the URL may hold a token
    if s.notify_webhook_secret is not None and s.notify_webhook_url is None:
        raise _fail("notify_webhook_secret", "is set but COLDWATCH_NOTIFY_WEBHOOK_URL is not")
    if (s.smtp_host is None) != (s.notify_email_to is None):
        missing = "notify_email_to" if s.notify_email_to is None else "smtp_host"
        raise _fail(missing, "is required for e-mail notifications (set both COLDWATCH_SMTP_HOST and "
                             "COLDWATCH_NOTIFY_EMAIL_TO, or neither)")
    if s.smtp_host is not None:
        if any(c in s.smtp_host for c in " \r\n\0"):
            raise _fail("smtp_host", "must be a host name")
        if s.smtp_from is None or not _EMAIL_RE.match(s.smtp_from):
            raise _fail("smtp_from", "is required for e-mail notifications: one address such as "
                                     "coldwatch@example.com")
        for address in (s.notify_email_to or "").split(","):
            if not _EMAIL_RE.match(address.strip()):
                raise _fail("notify_email_to", f"{address.strip()[:100]!r} is not an e-mail address "
                                               "(comma-separated list)")
    if s.notify_email_language not in ("en", "zh_CN"):  # cloud.db.users.LANGUAGES (tests/unit/test_i18n.py)
        raise _fail("notify_email_language", f"{s.notify_email_language[:20]!r} is not one of en, zh_CN")
    if s.smtp_ca_file is not None and not os.path.isfile(s.smtp_ca_file):
        raise _fail("smtp_ca_file", f"{s.smtp_ca_file!r} is not a file")
    if not 1 <= s.smtp_port <= 65535:
        raise _fail("smtp_port", f"{s.smtp_port} is not a TCP port (1-65535)")
    if (s.smtp_username is None) != (s.smtp_password is None):
        raise _fail("smtp_password" if s.smtp_password is None else "smtp_username",
                    "is required when the other of COLDWATCH_SMTP_USERNAME / COLDWATCH_SMTP_PASSWORD is set")
    if s.smtp_password is not None and not s.smtp_starttls and s.smtp_host not in ("127.0.0.1", "::1", "localhost"):
        raise _fail("smtp_starttls", "must be true when logging in to a non-loopback SMTP server "
                                     "(the password would cross the network in clear)")
    if not (math.isfinite(s.notify_timeout_s) and 0 < s.notify_timeout_s <= 120):
        raise _fail("notify_timeout_s", f"{s.notify_timeout_s} is not a number of seconds in (0, 120]")
    if not 0 <= s.notify_rate_per_min <= 10_000:
        raise _fail("notify_rate_per_min", f"{s.notify_rate_per_min} is outside 0..10000 (0: no limit)")
    if not 0 <= s.notify_renotify_s <= 7 * 86400:
        raise _fail("notify_renotify_s", f"{s.notify_renotify_s} is outside 0..604800 seconds (0: never)")
    if not (math.isfinite(s.notify_rollup_s) and 0 <= s.notify_rollup_s <= 3600):
        raise _fail("notify_rollup_s", f"{s.notify_rollup_s} is not a number of seconds in [0, 3600]")
    if not (math.isfinite(s.notify_interval_s) and 0 < s.notify_interval_s <= 3600):
        raise _fail("notify_interval_s", f"{s.notify_interval_s} is not a number of seconds in (0, 3600]")
    if not (math.isfinite(s.gateway_silence_min) and 1 <= s.gateway_silence_min <= 1440):
        raise _fail("gateway_silence_min", f"{s.gateway_silence_min} is not a number of minutes in [1, 1440]")
    if not (math.isfinite(s.silence_interval_s) and 0 <= s.silence_interval_s <= 3600):
        raise _fail("silence_interval_s", f"{s.silence_interval_s} is not a number of seconds in [0, 3600]")
    if not (math.isfinite(s.shipment_interval_s) and 0 <= s.shipment_interval_s <= 60):
        raise _fail("shipment_interval_s", f"{s.shipment_interval_s} is not a number of seconds in [0, 60] (an "
                    "excursion against a shipment's own limits must raise an alert within a minute)")
    silence_by_profile(s)  # raises with the key and the reason
    try:
        parse_proxies(s.api_trusted_proxies)
    except ValueError as exc:
        raise _fail("api_trusted_proxies", str(exc)) from None


def _to_int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an integer") from None


def _to_float(text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None


def _to_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{text!r} is not a boolean (true/false)")


def _optional_secret(text: str) -> str | None:
    """Optional credentials: an empty value means unset (as compose files often write it)."""
    return text or None


def _language(text: str) -> str:
    """A language code as BCP 47 (`zh-CN`) or gettext (`zh_CN`) writes it: the gettext form."""
    return text.strip().replace("-", "_")


_PARSERS: Final[dict[str, Callable[[str], Any]]] = {
    "mqtt_port": _to_int,
    "api_port": _to_int,
    "ingest_batch_size": _to_int,
    "ingest_batch_age_s": _to_float,
    "ingest_replay_after_s": _to_float,
    "ingest_dead_letter_max": _to_int,
    "ingest_gap_grace_s": _to_float,
    "ingest_merge_s": _to_float,
    "retention_notifications_days": _to_int,
    "retention_audit_days": _to_int,
    "retention_gaps_days": _to_int,
    "ingest_future_s": _to_float,
    "influx_token": _optional_secret,
    "influx_username": _optional_secret,
    "influx_password": _optional_secret,
    "influx_gzip": _to_bool,
    "admin_password": _optional_secret,
    "mosquitto_passwd_file": _optional_secret,
    "mosquitto_pid_file": _optional_secret,
    "cookie_secure": _to_bool,
    "api_public_readings": _to_bool,
    "login_max_failures": _to_int,
    "login_window_s": _to_int,
    "api_trusted_proxies": _optional_secret,
    "model_public_keys": _optional_secret,
    "artifact_base_url": _optional_secret,
    "rollout_controller": _to_bool,
    "rollout_interval_s": _to_float,
    "desired_signing_key": _optional_secret,
    "notify_webhook_url": _optional_secret,
    "notify_webhook_secret": _optional_secret,
    "smtp_host": _optional_secret,
    "smtp_port": _to_int,
    "smtp_starttls": _to_bool,
    "smtp_ca_file": _optional_secret,
    "smtp_username": _optional_secret,
    "smtp_password": _optional_secret,
    "smtp_from": _optional_secret,
    "notify_email_to": _optional_secret,
    "notify_email_language": _language,
    "notify_timeout_s": _to_float,
    "notify_rate_per_min": _to_int,
    "notify_renotify_s": _to_int,
    "notify_rollup_s": _to_float,
    "notify_interval_s": _to_float,
    "gateway_silence_min": _to_float,
    "silence_interval_s": _to_float,
    "shipment_interval_s": _to_float,
}
FIELD_NAMES: Final = tuple(f.name for f in fields(Settings))


def load_settings(env: Mapping[str, str], overrides: Mapping[str, tuple[str, str]] | None = None) -> Settings:
    """Build Settings from `env` (COLDWATCH_* variables) and `overrides`: field → (raw value, flag name).

    A flag wins over the variable; errors name whichever supplied the value.
    """
    overrides = overrides or {}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name in FIELD_NAMES:
        if name in overrides:
            raw, flag = overrides[name]
            sources[name] = f"{flag} ({env_name(name)})"
        elif env_name(name) in env:
            raw = env[env_name(name)]
            sources[name] = env_name(name)
        else:
            continue
        parser = _PARSERS.get(name, str)
        try:
            values[name] = parser(raw)
        except ValueError as exc:
            raise ConfigError(sources[name], str(exc), field_name=name) from None
    try:
        return Settings(**values)
    except ConfigError as exc:
        if exc.field_name in sources:
            raise ConfigError(sources[exc.field_name], exc.reason, field_name=exc.field_name) from None
        raise
