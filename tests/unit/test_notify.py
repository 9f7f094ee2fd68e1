"""Notification settings, channel registry, signatures, message text and retry delays (no servers)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from cloud.config import ConfigError, Settings, load_settings
from cloud.notify import FACTORIES, configured
from cloud.notify.base import Notification
from cloud.notify.dispatcher import RETRY_MAX_MS, retry_delay_ms
from cloud.notify.webhook import signature

MAIL = {"COLDWATCH_SMTP_HOST": "mail.example.com", "COLDWATCH_SMTP_FROM": "coldwatch@example.com",
        "COLDWATCH_NOTIFY_EMAIL_TO": "ops@example.com, qa@example.com"}


def refusal(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    return info.value.variable


def test_channels_are_off_by_default_and_on_when_configured() -> None:
    assert configured(Settings()) == []
    assert list(FACTORIES) == ["webhook", "email"]
    settings = load_settings(MAIL | {"COLDWATCH_NOTIFY_WEBHOOK_URL": "https://hooks.example.com/x"})
    assert [n.name for n in configured(settings)] == ["webhook", "email"]


def test_bad_notify_settings_name_the_variable() -> None:
    assert refusal({"COLDWATCH_NOTIFY_WEBHOOK_URL": "ftp://x"}) == "COLDWATCH_NOTIFY_WEBHOOK_URL"
    assert refusal({"COLDWATCH_NOTIFY_WEBHOOK_SECRET": "s"}) == "COLDWATCH_NOTIFY_WEBHOOK_SECRET"
    assert refusal({"COLDWATCH_SMTP_HOST": "mail"}) == "COLDWATCH_NOTIFY_EMAIL_TO"
    assert refusal(MAIL | {"COLDWATCH_SMTP_FROM": "nobody"}) == "COLDWATCH_SMTP_FROM"
    assert refusal(MAIL | {"COLDWATCH_NOTIFY_EMAIL_TO": "ops@example.com,oops"}) == "COLDWATCH_NOTIFY_EMAIL_TO"
    assert refusal(MAIL | {"COLDWATCH_SMTP_USERNAME": "u"}) == "COLDWATCH_SMTP_PASSWORD"
    assert refusal(MAIL | {"COLDWATCH_SMTP_PORT": "0"}) == "COLDWATCH_SMTP_PORT"
    assert refusal(MAIL | {"COLDWATCH_SMTP_USERNAME": "u", "COLDWATCH_SMTP_PASSWORD": "p",
                           "COLDWATCH_SMTP_STARTTLS": "false"}) == "COLDWATCH_SMTP_STARTTLS"
    assert refusal({"COLDWATCH_NOTIFY_RATE_PER_MIN": "-1"}) == "COLDWATCH_NOTIFY_RATE_PER_MIN"
    assert refusal({"COLDWATCH_NOTIFY_RENOTIFY_S": "x"}) == "COLDWATCH_NOTIFY_RENOTIFY_S"
    assert refusal({"COLDWATCH_NOTIFY_ROLLUP_S": "nan"}) == "COLDWATCH_NOTIFY_ROLLUP_S"
    assert refusal({"COLDWATCH_NOTIFY_TIMEOUT_S": "0"}) == "COLDWATCH_NOTIFY_TIMEOUT_S"
    assert refusal(MAIL | {"COLDWATCH_SMTP_CA_FILE": "/nonexistent/ca.pem"}) == "COLDWATCH_SMTP_CA_FILE"


def test_secrets_stay_out_of_repr() -> None:
    settings = load_settings(MAIL | {"COLDWATCH_SMTP_USERNAME": "u", "COLDWATCH_SMTP_PASSWORD": "smtp-secret-1",
                                     "COLDWATCH_NOTIFY_WEBHOOK_URL": "https://hooks.example.com/T0KEN",
                                     "COLDWATCH_NOTIFY_WEBHOOK_SECRET": "hmac-secret-1"})
    text = repr(settings) + repr(configured(settings))
    for secret in ("smtp-secret-1", "hmac-secret-1", "T0KEN"):
        assert secret not in text


def test_signature_is_hmac_sha256_of_timestamp_and_body() -> None:
    expected = hmac.new(b"k", b"1700000000000.{}", hashlib.sha256).hexdigest()
    assert signature("k", "1700000000000", b"{}") == "sha256=" + expected


def test_text_lists_every_alert() -> None:
    alert = {"id": "a" * 32, "gateway_id": "gw1", "sensor_id": "aa:bb:cc:dd:ee:ff", "kind": "temp_high",
             "severity": "critical", "started_at": 1_700_000_000_000, "value": 6.5, "threshold": 4.0,
             "reason": "above band", "profile": "chilled"}
    text = Notification(id=1, kind="summary", subject="s", created_at=0, alerts=[alert], held=3).as_text()
    assert "held back 3" in text and "2023-11-14 22:13:20Z" in text and "value=6.5 threshold=4" in text


def test_retry_delay_doubles_up_to_a_cap() -> None:
    assert [retry_delay_ms(n) for n in (1, 2, 3)] == [10_000, 20_000, 40_000]
    assert retry_delay_ms(50) == RETRY_MAX_MS
