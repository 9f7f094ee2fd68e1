"""Agent config: validated once at start; every refusal names the key and the reason."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config import ConfigError, load_config, parse_config

VALID: dict[str, Any] = {
    "gateway_id": "reefer-01",
    "mqtt": {"host": "broker.example", "port": 8883, "password": "s3cret"},
    "inputs": [{"type": "udp", "bind": "127.0.0.1:9999"}],
    "outbox": {"path": "/var/lib/coldwatch/outbox.sqlite"},
    "sensors": {"default_profile": "frozen", "profiles": {"c2:00:00:00:00:01": "pharma_2_8"}},
}


def with_change(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(VALID)
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    node[last] = value
    return data


def test_a_valid_config_loads_with_defaults() -> None:
    config = parse_config(VALID)
    assert config.mqtt.username is None and config.mqtt.max_inflight == 20
    assert config.profile_of("c2:00:00:00:00:01") == "pharma_2_8"
    assert config.profile_of("c2:00:00:00:00:02") == "frozen"
    assert config.outbox.flush_interval_s <= 1.0


@pytest.mark.parametrize(("path", "value", "names"), [
    ("mqtt.port", "mqtt", "mqtt.port"),
    ("mqtt.port", 70000, "mqtt.port"),
    ("gateway_id", "Reefer 01", "gateway_id"),
    ("mqtt.surprise", 1, "surprise"),
    ("outbox.flush_interval_s", 5, "outbox.flush_interval_s"),
    ("sensors.default_profile", "lukewarm", "sensors.default_profile"),
    ("inputs.0.type", "carrier-pigeon", "inputs[0].type"),
    ("inputs.0.bind", "nowhere", "inputs[0].bind"),
    ("inputs", [], "inputs"),
])
def test_refusals_name_the_key(path: str, value: Any, names: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(with_change(path, value))
    assert names in str(refused.value)


def test_tls_needs_cert_and_key_together() -> None:
    with pytest.raises(ConfigError, match=r"mqtt\.tls"):
        parse_config(with_change("mqtt.tls", {"ca": "/etc/ca.pem", "cert": "/etc/gw.pem"}))


def test_one_password_source() -> None:
    with pytest.raises(ConfigError, match="password_file"):
        parse_config(with_change("mqtt.password_file", "/etc/coldwatch/mqtt.pw"))


def test_the_error_message_does_not_echo_the_password() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(with_change("mqtt.password", 12345678))
    assert "12345678" not in str(refused.value)


def test_environment_overrides_file_values(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('gateway_id = "gw1"\n[mqtt]\nhost = "a"\n[[inputs]]\ntype = "udp"\nbind = "127.0.0.1:1"\n'
                    '[outbox]\npath = "/tmp/o.sqlite"\n')
    config = load_config(path, {"COLDWATCH_AGENT_MQTT__PORT": "8883", "COLDWATCH_AGENT_MQTT__PASSWORD": "1234",
                                "COLDWATCH_AGENT_LOG_LEVEL": "DEBUG", "COLDWATCH_MQTT_HOST": "not-for-the-agent"})
    assert (config.mqtt.port, config.mqtt.password, config.log_level, config.mqtt.host) == (8883, "1234", "DEBUG", "a")
    with pytest.raises(ConfigError, match="colour"):
        load_config(path, {"COLDWATCH_AGENT_MQTT__COLOUR": "blue"})


@pytest.mark.parametrize("url", ["cloud.example", "ftp://cloud.example", "https://a@cloud.example",
                                 "https://cloud.example/api", "https://cloud.example:x", "https://"])
def test_the_updater_api_url_must_be_an_origin(url: str) -> None:
    with pytest.raises(ConfigError, match=r"updater\.api_url"):
        parse_config(VALID | {"updater": {"api_url": url}})
    assert parse_config(VALID | {"updater": {"api_url": "https://cloud.example:8443/"}}).updater.api_url


@pytest.mark.parametrize(("section", "names"), [
    ({"type": "udp", "bind": "127.0.0.1:9", "path": "/tmp/x"}, "path"),  # not a udp key
    ({"type": "replay"}, "path"),  # required by replay
    ({"type": "replay", "path": "/nonexistent", "speed": 0}, "speed"),
])
def test_each_input_section_holds_exactly_its_drivers_keys(section: dict[str, Any], names: str) -> None:
    with pytest.raises(ConfigError, match=rf"inputs\[0\].*{names}"):
        parse_config(VALID | {"inputs": [section]})


def test_a_bad_public_key_is_named_by_its_own_index(tmp_path: Path) -> None:
    from models.runtime.manifest import generate_keypair

    good = tmp_path / "fleet.pub"
    good.write_bytes(generate_keypair()[1])
    with pytest.raises(ConfigError, match=r"updater\.public_keys\[1\]: cannot read .*missing\.pub"):
        parse_config(VALID | {"updater": {"public_keys": [str(good), str(tmp_path / "missing.pub")]}})
    (tmp_path / "junk.pub").write_text("not a key")
    with pytest.raises(ConfigError, match=r"updater\.public_keys\[2\]: .*junk\.pub is not an Ed25519 public key"):
        parse_config(VALID | {"updater": {"public_keys": [str(good), str(good), str(tmp_path / "junk.pub")]}})


def test_every_problem_of_a_file_is_reported_at_once_with_where_each_value_came_from(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('gateway_id = "Reefer 01"\n[mqtt]\nhost = "a"\nport = 70000\n[[inputs]]\ntype = "udp"\n'
                    'bind = "127.0.0.1:1"\nspeed = 3\n[outbox]\npath = "/tmp/o.sqlite"\nflush_interval_s = 5\n')
    with pytest.raises(ConfigError) as refused:
        load_config(path, {"COLDWATCH_AGENT_MQTT__KEEPALIVE_S": "abc"})
    problems = refused.value.problems
    assert sorted(p.split(": ")[1] for p in problems) == ["gateway_id", "inputs[0].speed", "mqtt.keepalive_s",
                                                          "mqtt.port", "outbox.flush_interval_s"]
    assert all(p.startswith(f"{path}: ") for p in problems)
    by_key = {p.split(": ")[1]: p for p in problems}
    assert "from the environment: COLDWATCH_AGENT_MQTT__KEEPALIVE_S" in by_key["mqtt.keepalive_s"]
    assert "environment" not in by_key["mqtt.port"]  # the port came from the file


def test_every_file_the_config_names_is_opened_and_each_bad_one_named(tmp_path: Path) -> None:
    not_a_cert = tmp_path / "ca.pem"
    not_a_cert.write_text("hello\n")
    data = with_change("mqtt.password_file", str(tmp_path / "missing.password"))
    del data["mqtt"]["password"]
    data["mqtt"]["tls"] = {"ca": str(not_a_cert), "cert": str(tmp_path / "gw.pem"), "key": str(tmp_path / "gw.key")}
    with pytest.raises(ConfigError) as refused:
        parse_config(data)
    text = "\n".join(refused.value.problems)
    assert f"mqtt.password_file: cannot read {tmp_path / 'missing.password'}: No such file or directory" in text
    assert f"mqtt.tls.ca: {not_a_cert} holds no PEM certificate" in text
    assert f"mqtt.tls.cert: cannot read {tmp_path / 'gw.pem'}" in text and "mqtt.tls.key: cannot read" in text


def test_real_tls_files_pass_and_a_key_of_another_certificate_is_refused(tmp_path: Path) -> None:
    from deploy.tls import make_dev_pki

    _, clients = make_dev_pki(tmp_path, clients=("gw1", "gw2"))
    password = tmp_path / "mqtt.password"
    password.write_text("s3cret\n")
    good = with_change("mqtt.tls", {"ca": str(clients["gw1"].ca), "cert": str(clients["gw1"].cert),
                                    "key": str(clients["gw1"].key)})
    good["mqtt"]["password_file"] = str(password)
    del good["mqtt"]["password"]
    assert parse_config(good).mqtt_password() == "s3cret"
    good["mqtt"]["tls"]["key"] = str(clients["gw2"].key)
    with pytest.raises(ConfigError, match="are not a matching PEM certificate and key"):
        parse_config(good)


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_the_cli_turns_a_config_problem_into_one_line_each_and_exit_2(command: str, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from edge_agent.cli import main

    path = tmp_path / "agent.toml"
    path.write_text('gateway_id = "gw1"\n[mqtt]\nhost = "a"\npassword_file = "/nonexistent/pw"\n[mqtt.tls]\n'
                    f'ca = "{tmp_path}"\n[[inputs]]\ntype = "udp"\nbind = "127.0.0.1:1"\n[outbox]\npath = "/tmp/o"\n')
    assert main([command, "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("coldwatch-agent: config error: ") for line in lines)
    assert "mqtt.password_file" in lines[0] and "mqtt.tls.ca" in lines[1]


@pytest.mark.parametrize("where", ["top", "mqtt"])
def test_a_stray_type_key_outside_an_input_is_a_config_error(where: str) -> None:
    data = copy.deepcopy(VALID)
    (data if where == "top" else data["mqtt"])["type"] = "x"
    with pytest.raises(ConfigError, match="type: unknown key"):
        parse_config(data)
