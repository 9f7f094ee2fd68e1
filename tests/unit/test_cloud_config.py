"""Settings: defaults, environment, flag overrides, and refusals that name the variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cloud.cli.main import build_parser, main, settings_from_args
from cloud.config import ConfigError, Settings, load_settings

BASE = {"COLDWATCH_MQTT_PASSWORD": "pw"}


def test_defaults() -> None:
    s = load_settings({})
    assert (s.mqtt_host, s.mqtt_port, s.mqtt_username) == ("127.0.0.1", 1883, "coldwatch.ingest")
    assert (s.influx_url, s.influx_db, s.ingest_worker_id) == ("http://127.0.0.1:8086", "coldwatch", "ingest-1")
    assert (s.ingest_batch_size, s.ingest_batch_age_s, s.api_port) == (20_000, 1.0, 8000)
    assert s.database_url == "sqlite:///var/coldwatch.db"


def test_environment_is_read() -> None:
    s = load_settings(BASE | {"COLDWATCH_MQTT_PORT": "1884", "COLDWATCH_INGEST_BATCH_AGE_S": "0.5",
                              "COLDWATCH_INFLUX_TOKEN": "t0k"})
    assert (s.mqtt_port, s.ingest_batch_age_s, s.influx_token, s.mqtt_password) == (1884, 0.5, "t0k", "pw")


@pytest.mark.parametrize(("env", "variable", "words"), [
    ({"COLDWATCH_MQTT_PORT": "abc"}, "COLDWATCH_MQTT_PORT", "not an integer"),
    ({"COLDWATCH_MQTT_PORT": "70000"}, "COLDWATCH_MQTT_PORT", "not a TCP port"),
    ({"COLDWATCH_MQTT_PASSWORD": ""}, "COLDWATCH_MQTT_PASSWORD", "must not be empty"),
    ({"COLDWATCH_INFLUX_URL": "influx:8086"}, "COLDWATCH_INFLUX_URL", "http(s) URL"),
    ({"COLDWATCH_INGEST_BATCH_SIZE": "0"}, "COLDWATCH_INGEST_BATCH_SIZE", "outside"),
    ({"COLDWATCH_INGEST_BATCH_AGE_S": "nan"}, "COLDWATCH_INGEST_BATCH_AGE_S", "seconds"),
    ({"COLDWATCH_INGEST_MERGE_S": "-1"}, "COLDWATCH_INGEST_MERGE_S", "[0, 60]"),
    ({"COLDWATCH_INGEST_WORKER_ID": "bad id/1"}, "COLDWATCH_INGEST_WORKER_ID", "not 1-64"),
    ({"COLDWATCH_INFLUX_USERNAME": "u"}, "COLDWATCH_INFLUX_PASSWORD", "required"),
    ({"COLDWATCH_INFLUX_TOKEN": "t", "COLDWATCH_INFLUX_USERNAME": "u", "COLDWATCH_INFLUX_PASSWORD": "p"},
     "COLDWATCH_INFLUX_TOKEN", "not both"),
    ({"COLDWATCH_DATABASE_URL": "mysql://x"}, "COLDWATCH_DATABASE_URL", "sqlite://"),
])
def test_errors_name_the_variable(env: dict[str, str], variable: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(env)
    assert err.value.variable == variable
    assert str(err.value).startswith(f"{variable}: ") and words in str(err.value)


def test_flag_overrides_env_and_errors_name_the_flag() -> None:
    args = build_parser().parse_args(["ingest", "--mqtt-port", "1999", "--worker-id", "ingest-7"])
    s = settings_from_args(args, BASE | {"COLDWATCH_MQTT_PORT": "1884"})
    assert (s.mqtt_port, s.ingest_worker_id) == (1999, "ingest-7")
    args = build_parser().parse_args(["ingest", "--batch-size", "many"])
    with pytest.raises(ConfigError) as err:
        settings_from_args(args, BASE)
    assert err.value.variable == "--batch-size (COLDWATCH_INGEST_BATCH_SIZE)"


def test_missing_password_is_refused_for_ingest() -> None:
    with pytest.raises(ConfigError, match="COLDWATCH_MQTT_PASSWORD"):
        Settings().require_mqtt_password()


def test_secrets_are_not_in_repr() -> None:
    s = Settings(mqtt_password="mqtt-secret", influx_token="influx-secret")
    assert "mqtt-secret" not in repr(s) and "influx-secret" not in repr(s)


def test_cli_exits_2_with_a_message_on_bad_config(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLDWATCH_MQTT_PASSWORD", "pw")
    monkeypatch.setenv("COLDWATCH_INFLUX_URL", "ftp://nope")
    assert main(["ingest"]) == 2
    assert "COLDWATCH_INFLUX_URL" in capsys.readouterr().err
    monkeypatch.delenv("COLDWATCH_INFLUX_URL")
    monkeypatch.delenv("COLDWATCH_MQTT_PASSWORD")
    assert main(["ingest"]) == 2
    assert "COLDWATCH_MQTT_PASSWORD: is required" in capsys.readouterr().err


def test_console_script_help_lists_the_flags() -> None:
    out = subprocess.run([sys.executable, "-m", "cloud", "ingest", "--help"], capture_output=True, text=True,
                         check=True).stdout
    for flag in ("--mqtt-host", "--mqtt-port", "--influx-url", "--influx-db", "--worker-id", "--batch-size",
                 "--batch-age", "--metrics-port", "COLDWATCH_MQTT_PASSWORD"):
        assert flag in out


def test_the_desired_signing_key_is_checked_at_start_and_named_when_wrong(tmp_path: Path) -> None:
    from cloud.config import desired_signing_pem
    from models.runtime.manifest import generate_keypair

    private_pem, public_raw = generate_keypair()
    (tmp_path / "fleet.key").write_bytes(private_pem)
    (tmp_path / "fleet.pub").write_bytes(public_raw)
    ok = load_settings({"COLDWATCH_DESIRED_SIGNING_KEY": str(tmp_path / "fleet.key")})
    assert desired_signing_pem(ok) == private_pem and desired_signing_pem(load_settings({})) is None
    for path, words in ((tmp_path / "missing.key", "cannot read"), (tmp_path / "fleet.pub", "not an unencrypted "
                                                                                           "Ed25519 private key")):
        with pytest.raises(ConfigError) as refused:
            load_settings({"COLDWATCH_DESIRED_SIGNING_KEY": str(path)})
        assert refused.value.variable == "COLDWATCH_DESIRED_SIGNING_KEY" and words in refused.value.reason
