"""deploy/: the compose file against the Compose Specification and our own settings, the production mosquitto
config started for real, and the gateway installer run into a temporary root."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import jsonschema
import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from cloud.broker import BrokerAccounts
from cloud.cli.main import build_parser
from cloud.config import Settings, env_name
from cloud.security import mosquitto_hash
from deploy.services import find_binary, free_port, render_acl
from deploy.tls import make_dev_pki
from models.runtime.manifest import generate_keypair
from protocol.codec import MAX_PAYLOAD_BYTES
from tests.conftest import API_USER, CLOUD_BIN, EDGE_VENV, INGEST_USER, require_binary

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
# Read by the ops CLI and the trainer, not by Settings.
OPS_VARIABLES = {"COLDWATCH_API_URL", "COLDWATCH_API_TOKEN", "COLDWATCH_SIGNING_KEY_FILE"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())
    return data


def test_the_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads((ROOT / "tests" / "data" / "compose_spec.json").read_text())
    jsonschema.validate(compose, schema)
    assert {"influxdb", "mosquitto", "postgres", "api", "ingest-1", "ingest-2", "trainer", "trainer-gpu"} <= set(
        compose["services"])
    gpu = compose["services"]["trainer-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"]
    for name, service in compose["services"].items():  # Docker's default json-file log grows forever
        assert service["logging"]["options"]["max-size"] and service["logging"]["options"]["max-file"], name


def test_every_coldwatch_variable_and_command_in_compose_exists(compose: dict[str, Any]) -> None:
    known = {env_name(name) for name in Settings.__dataclass_fields__} | OPS_VARIABLES
    parser = build_parser()
    worker_ids = []
    for name, service in compose["services"].items():
        env = service.get("environment", {})
        unknown = {k for k in env if k.startswith("COLDWATCH_")} - known
        assert not unknown, f"{name}: {sorted(unknown)} are not settings"
        command = service.get("command")
        if command and command[0] == "coldwatch":
            parser.parse_args(command[1:])  # exits (SystemExit) on a subcommand or flag that does not exist
        if command and command[:2] == ["coldwatch", "ingest"]:
            worker_ids.append(env["COLDWATCH_INGEST_WORKER_ID"])
    assert len(worker_ids) == len(set(worker_ids)) == 2  # each worker a stable id of its own
    ingest = [s for s in compose["services"].values() if s.get("command", [])[:2] == ["coldwatch", "ingest"]]
    assert all(s["environment"]["COLDWATCH_INGEST_UNKNOWN_GATEWAY"] == "reject" for s in ingest)  # production


def test_the_broker_is_seeded_before_it_starts_and_the_api_writes_the_file_it_reads(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["mosquitto"]["depends_on"]["broker-init"] == {"condition": "service_completed_successfully"}
    conf = (DEPLOY / "mosquitto" / "production.conf").read_text()
    read_by_broker = next(line.split()[1] for line in conf.splitlines() if line.startswith("password_file"))
    for name in ("api", "broker-init"):
        written = services[name]["environment"]["COLDWATCH_MOSQUITTO_PASSWD_FILE"]
        mounts = [v.split(":") for v in services[name]["volumes"]]
        assert any(src == "mosquitto-config" and written.startswith(dst + "/") for src, dst, *_ in mounts), name
        assert written == read_by_broker, name
    assert any(v.startswith("mosquitto-config:/mosquitto/config/state") for v in services["mosquitto"]["volumes"])


def test_the_broker_is_reloaded_by_a_watcher_in_its_process_namespace(compose: dict[str, Any]) -> None:
    reload = compose["services"]["broker-reload"]
    assert reload["command"] == ["coldwatch", "broker", "watch"] and reload["pid"] == "service:mosquitto"
    watched = reload["environment"]["COLDWATCH_MOSQUITTO_PASSWD_FILE"]
    assert watched == compose["services"]["api"]["environment"]["COLDWATCH_MOSQUITTO_PASSWD_FILE"]
    assert any(v.startswith("mosquitto-config:/mosquitto/config/state") for v in reload["volumes"])


def test_a_revocation_written_by_another_process_ends_the_gateways_session_within_seconds(tmp_path: Path) -> None:
    """As in compose: the API rewrites the password file it cannot signal the broker about; `coldwatch broker
    watch`, finding mosquitto by its process name, reloads it, and mosquitto ends the revoked gateway's session."""
    binary = require_binary("mosquitto")
    (tmp_path / "state").mkdir()
    passwd = tmp_path / "state" / "passwd"
    BrokerAccounts(passwd_file=passwd).sync({INGEST_USER: mosquitto_hash("pw-ingest"),
                                             "gw1": mosquitto_hash("pw-gw1")}, reload=False)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "acl").write_bytes((DEPLOY / "mosquitto" / "acl").read_bytes())
    (tmp_path / "data").mkdir()
    port = free_port()
    conf = ((DEPLOY / "mosquitto" / "production.conf").read_text()
            .replace("/mosquitto/config/state/", f"{tmp_path}/state/").replace("/mosquitto/", f"{tmp_path}/"))
    conf = conf[:conf.index("listener 8883")] + f"listener {port} 127.0.0.1\n" + conf[conf.index("max_packet_size"):]
    (tmp_path / "mosquitto.conf").write_text(f"user {os.environ.get('USER') or 'root'}\n" + conf)
    broker = subprocess.Popen([binary, "-c", str(tmp_path / "mosquitto.conf")], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    watcher = subprocess.Popen([str(CLOUD_BIN / "coldwatch"), "broker", "watch", "--passwd-file", str(passwd)],
                               env={k: v for k, v in os.environ.items() if not k.startswith("COLDWATCH_")},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    gone = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="gw1", protocol=MQTTProtocolVersion.MQTTv5)
    client.username_pw_set("gw1", "pw-gw1")
    client.on_disconnect = lambda *_args: gone.set()
    try:
        assert _connect("gw1", "pw-gw1", port) == 0
        client.connect("127.0.0.1", port)
        client.loop_start()
        time.sleep(1.5)
        assert not gone.is_set()
        BrokerAccounts(passwd_file=passwd).sync({INGEST_USER: mosquitto_hash("pw-ingest")}, revoked={"gw1"},
                                                reload=False)  # what the API writes on a revocation
        assert gone.wait(10), "the revoked gateway's session did not end"
        assert _connect("gw1", "pw-gw1", port) != 0  # and it cannot log in again
        assert _connect(INGEST_USER, "pw-ingest", port) == 0  # the service account is untouched
    finally:
        client.loop_stop()
        watcher.terminate()
        watched_log = watcher.communicate(timeout=10)[0].decode(errors="replace")
        broker.terminate()
        broker.communicate(timeout=10)
    assert watcher.returncode == 0, watched_log
    assert "broker reloaded" in watched_log, watched_log


def test_the_production_acl_is_the_generated_one() -> None:
    assert (DEPLOY / "mosquitto" / "acl").read_text() == render_acl(service_users=(INGEST_USER,), api_users=(API_USER,))


def test_the_production_broker_config_starts_and_serves_both_listeners(tmp_path: Path) -> None:
    binary = require_binary("mosquitto")
    pki, clients = make_dev_pki(tmp_path / "certs", clients=("gw1",))
    for name, path in (("ca.crt", pki.ca), ("broker.crt", pki.cert), ("broker.key", pki.key)):
        (tmp_path / "certs" / name).write_bytes(path.read_bytes())
    # As compose does: `coldwatch broker init` seeds the service account before the broker's first start, then
    # the API adds each gateway it provisions (cloud/broker.py), keeping the service account's line.
    (tmp_path / "config" / "state").mkdir(parents=True)
    passwd = tmp_path / "config" / "state" / "passwd"
    seeded = subprocess.run([str(CLOUD_BIN / "coldwatch"), "broker", "init", "--passwd-file", str(passwd)],
                            env=os.environ | {"COLDWATCH_MQTT_PASSWORD": "pw-ingest"}, capture_output=True, text=True,
                            timeout=60)
    assert seeded.returncode == 0, seeded.stderr
    BrokerAccounts(passwd_file=passwd).sync({"gw1": mosquitto_hash("pw-gw1")}, reload=False)
    (tmp_path / "config" / "acl").write_bytes((DEPLOY / "mosquitto" / "acl").read_bytes())
    (tmp_path / "data").mkdir()
    tls_port, plain_port = free_port(), free_port()
    conf = ((DEPLOY / "mosquitto" / "production.conf").read_text()
            .replace("/mosquitto/", f"{tmp_path}/").replace("listener 8883 0.0.0.0", f"listener {tls_port} 127.0.0.1")
            .replace("listener 1883 0.0.0.0", f"listener {plain_port} 127.0.0.1"))
    (tmp_path / "mosquitto.conf").write_text(f"user {os.environ.get('USER') or 'root'}\n" + conf)
    proc = subprocess.Popen([binary, "-c", str(tmp_path / "mosquitto.conf")], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        gateway = _connect("gw1", "pw-gw1", tls_port, tls=(str(pki.ca), str(clients["gw1"].cert),
                                                          str(clients["gw1"].key)))
        assert gateway == 0, f"TLS gateway login refused: {gateway}"
        assert _connect("gw1", "pw-gw1", tls_port, tls=(str(pki.ca), None, None)) != 0  # no client certificate
        assert _connect(INGEST_USER, "pw-ingest", plain_port) == 0
        assert _connect(INGEST_USER, "wrong", plain_port) != 0
        # max_packet_size: the protocol's largest message passes, one twice that size ends the connection
        assert _published(INGEST_USER, "pw-ingest", plain_port, MAX_PAYLOAD_BYTES)
        assert not _published(INGEST_USER, "pw-ingest", plain_port, 2 * MAX_PAYLOAD_BYTES)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    log = out.decode(errors="replace")
    assert ": Error" not in log, log  # config errors; the refused probe's "OpenSSL Error" is expected
    assert "peer did not return a certificate" in log


def _connect(user: str, password: str, port: int, tls: tuple[str, str | None, str | None] | None = None) -> int:
    """CONNACK reason code (0: accepted), or -1 when the connection itself failed (TLS handshake)."""
    import time

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{user}-{port}",
                         protocol=MQTTProtocolVersion.MQTTv5)
    client.username_pw_set(user, password)
    if tls is not None:
        client.tls_set(ca_certs=tls[0], certfile=tls[1], keyfile=tls[2])
    result: list[int] = []
    client.on_connect = lambda _c, _u, _f, reason, _p: result.append(reason.value)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # the broker may still be starting
        try:
            client.connect("127.0.0.1", port, keepalive=10)
            break
        except ConnectionRefusedError:
            time.sleep(0.1)
        except OSError:
            return -1
    try:
        while not result and time.monotonic() < deadline:
            if client.loop(timeout=0.2) not in (mqtt.MQTT_ERR_SUCCESS,):
                return result[0] if result else -1
    except OSError:
        return -1
    client.disconnect()
    return result[0] if result else -1


def _published(user: str, password: str, port: int, size: int) -> bool:
    """Whether the broker acknowledges a QoS 1 message of `size` bytes (MQTT 3.1.1: the client learns no limit, so
    only the broker enforces one)."""
    import time

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-size-{size}",
                         protocol=MQTTProtocolVersion.MQTTv311)
    client.username_pw_set(user, password)
    acked: list[int] = []
    client.on_publish = lambda _c, _u, mid, _r, _p: acked.append(mid)
    client.connect("127.0.0.1", port, keepalive=10)
    client.loop_start()
    try:
        info = client.publish("cw/v1/gw1/desired", b"x" * size, qos=1)
        deadline = time.monotonic() + 10
        while not acked and client.is_connected() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        return info.mid in acked
    finally:
        client.disconnect()
        client.loop_stop()


def _install(tmp_path: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    argv = ["bash", str(DEPLOY / "gateway-install.sh"), *extra]
    return subprocess.run(argv, capture_output=True, text=True, env=os.environ | (env or {}), timeout=60)


def test_the_gateway_installer_writes_a_config_the_agent_accepts(tmp_path: Path) -> None:
    pki, clients = make_dev_pki(tmp_path / "pki", clients=("gw-a",))
    _private, public = generate_keypair()
    (tmp_path / "fleet.pub").write_bytes(public)
    (tmp_path / "pw").write_text("s3cret-pw\n")
    (tmp_path / "token").write_text("tok\n")
    root = tmp_path / "root"
    args = ["--gateway-id", "gw-a", "--broker", "mqtt.example.com", "--ca", str(pki.ca),
            "--cert", str(clients["gw-a"].cert), "--key", str(clients["gw-a"].key),
            "--fleet-key", str(tmp_path / "fleet.pub"), "--token-file", str(tmp_path / "token"),
            "--api-url", "https://coldwatch.example.com", "--password-file", str(tmp_path / "pw"),
            "--root", str(root), "--no-pip",
            "--agent-bin", str(EDGE_VENV / "bin" / "coldwatch-agent")]
    done = _install(tmp_path, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok (gateway gw-a)" in done.stdout  # coldwatch-agent check-config accepted it
    etc = root / "etc" / "coldwatch"
    config = (etc / "agent.toml").read_text()
    assert 'gateway_id = "gw-a"' in config and "port = 8883" in config and "s3cret" not in config
    assert 'api_url = "https://coldwatch.example.com"' in config  # the token is sent only there
    assert (etc / "agent.env").read_text() == "COLDWATCH_AGENT_MQTT__PASSWORD=s3cret-pw\n"
    assert oct((etc / "agent.env").stat().st_mode & 0o777) == "0o600"
    assert oct((etc / "tls" / "gateway.key").stat().st_mode & 0o777) == "0o640"
    assert (root / "etc" / "systemd" / "system" / "coldwatch-agent.service").exists()
    assert "s3cret" not in done.stdout + done.stderr
    # the udp input's 8 MiB socket buffer is allowed by the kernel (stock cap: 212,992 bytes)
    assert "net.core.rmem_max = 8388608" in (root / "etc" / "sysctl.d" / "90-coldwatch-agent.conf").read_text()

    (etc / "agent.toml").write_text(config + "# edited by the operator\n")
    again = _install(tmp_path, *args)
    assert again.returncode == 0 and "kept" in again.stdout
    assert (etc / "agent.toml").read_text().endswith("# edited by the operator\n")  # idempotent: not overwritten


def test_re_running_the_installer_restarts_a_running_agent_and_keeps_its_outbox(tmp_path: Path) -> None:
    pki, clients = make_dev_pki(tmp_path / "pki", clients=("gw-a",))
    _private, public = generate_keypair()
    (tmp_path / "fleet.pub").write_bytes(public)
    (tmp_path / "pw").write_text("s3cret-pw\n")
    calls, active = tmp_path / "systemctl.calls", tmp_path / "systemctl.active"
    stub = tmp_path / "systemctl"
    stub.write_text("#!/bin/sh\n"
                    f'echo "$*" >> "{calls}"\n'
                    f'if [ "$1" = is-active ]; then [ -e "{active}" ]; exit $?; fi\n'
                    f'if [ "$1" = start ] || [ "$1" = restart ]; then touch "{active}"; fi\n')
    stub.chmod(0o755)
    root = tmp_path / "root"
    args = ["--gateway-id", "gw-a", "--broker", "mqtt.example.com", "--ca", str(pki.ca),
            "--cert", str(clients["gw-a"].cert), "--key", str(clients["gw-a"].key),
            "--fleet-key", str(tmp_path / "fleet.pub"), "--password-file", str(tmp_path / "pw"),
            "--root", str(root), "--no-pip", "--agent-bin", str(EDGE_VENV / "bin" / "coldwatch-agent")]
    first = _install(tmp_path, *args, env={"COLDWATCH_SYSTEMCTL": str(stub)})
    assert first.returncode == 0, first.stdout + first.stderr
    assert calls.read_text().splitlines()[-2:] == ["is-active --quiet coldwatch-agent.service",
                                                   "start coldwatch-agent.service"]
    outbox = root / "var" / "lib" / "coldwatch" / "outbox.sqlite"
    outbox.write_bytes(b"readings not yet acknowledged")  # what the running agent holds
    upgrade = _install(tmp_path, *args, env={"COLDWATCH_SYSTEMCTL": str(stub)})
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    assert "restarting the running agent" in upgrade.stdout
    assert calls.read_text().splitlines()[-1] == "restart coldwatch-agent.service"  # not `enable --now`
    assert outbox.read_bytes() == b"readings not yet acknowledged"


@pytest.mark.parametrize(("change", "message"), [
    (("--gateway-id", "GW/1"), "--gateway-id"),
    (("--broker", "host:port"), "--broker"),
    (("--ca", "/nonexistent"), "--ca"),
    (("--input", "serial"), "--input"),
    (("--api-url", "https://user@evil.example/x"), "--api-url"),
])
def test_the_gateway_installer_names_the_bad_argument(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    pki, _ = make_dev_pki(tmp_path / "pki")
    base = {"--gateway-id": "gw-a", "--broker": "h", "--ca": str(pki.ca), "--cert": str(pki.cert),
            "--key": str(pki.key), "--fleet-key": str(pki.ca), "--root": str(tmp_path / "root")}
    base[change[0]] = change[1]
    done = _install(tmp_path, *[x for kv in base.items() for x in kv], "--no-pip", "--no-systemd",
                    env={"COLDWATCH_GATEWAY_PASSWORD": "pw"})
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert not (tmp_path / "root" / "etc" / "coldwatch" / "agent.toml").exists()


def test_shell_scripts_parse() -> None:
    for script in (*DEPLOY.glob("*.sh"), *DEPLOY.glob("*/*.sh")):
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0, shlex.quote(str(script))
    assert find_binary("bash") is not None
