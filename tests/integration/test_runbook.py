"""docs/deploy.md's procedure, step by step, with the binaries the compose file runs, in a clean directory: keys
and certificates (`coldwatch models keygen`, `coldwatch certs`), `coldwatch broker init`, mosquitto from
deploy/mosquitto/production.conf, influxd, the first admin and an ops token from the command line, the API and an
ingest worker, a gateway provisioned through the API and connected over TLS with its client certificate, one
simulated tag: its readings are stored and shown."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import httpx

from deploy.services import free_port, start_influxd
from tests.conftest import API_USER, CLOUD_BIN, EDGE_VENV, INGEST_USER, require_binary

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{' '.join(argv[:3])}: {done.stderr[-2000:]}"
    return done


def _wait(condition: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_documented_procedure_takes_a_clean_directory_to_a_gateway_reporting(tmp_path: Path) -> None:
    mosquitto_bin = require_binary("mosquitto")
    procs: list[subprocess.Popen[bytes]] = []
    influxd = None
    try:
        # 1. Keys and certificates, once per fleet.
        _run([str(CLOUD_BIN / "coldwatch"), "models", "keygen", "--out", str(tmp_path / "keys")], dict(os.environ))
        certs = tmp_path / "certs"  # the layout compose mounts at /mosquitto/certs
        for argv in (["init"], ["broker", "--host", "127.0.0.1"], ["gateway", "reefer-0042"]):
            _run([str(CLOUD_BIN / "coldwatch"), "certs", *argv, "--dir", str(certs)], dict(os.environ))
        # 2.–3. The broker: its password file seeded before its first start (compose's broker-init).
        (tmp_path / "config" / "state").mkdir(parents=True)
        (tmp_path / "config" / "acl").write_bytes((DEPLOY / "mosquitto" / "acl").read_bytes())
        (tmp_path / "data").mkdir()
        passwd, pid = tmp_path / "config" / "state" / "passwd", tmp_path / "mosquitto.pid"
        ingest_password = "ingest-password-1"
        env = dict(os.environ) | {"COLDWATCH_MQTT_PASSWORD": ingest_password, "COLDWATCH_MQTT_USERNAME": INGEST_USER}
        _run([str(CLOUD_BIN / "coldwatch"), "broker", "init", "--passwd-file", str(passwd),  # as compose seeds them
              "--account", f"{INGEST_USER}=INGEST_MQTT_PASSWORD", "--account", f"{API_USER}=API_MQTT_PASSWORD"],
             env | {"INGEST_MQTT_PASSWORD": ingest_password, "API_MQTT_PASSWORD": "api-password-1"})
        tls_port, plain_port = free_port(), free_port()
        conf = ((DEPLOY / "mosquitto" / "production.conf").read_text().replace("/mosquitto/", f"{tmp_path}/")
                .replace("listener 8883 0.0.0.0", f"listener {tls_port} 127.0.0.1")
                .replace("listener 1883 0.0.0.0", f"listener {plain_port} 127.0.0.1"))
        (tmp_path / "mosquitto.conf").write_text(f"user {os.environ.get('USER') or 'root'}\npid_file {pid}\n" + conf)
        procs.append(subprocess.Popen([mosquitto_bin, "-c", str(tmp_path / "mosquitto.conf")],
                                      stdout=(tmp_path / "mosquitto.log").open("wb"), stderr=subprocess.STDOUT))
        _wait(pid.exists, "mosquitto's pid file")
        influxd = start_influxd(tmp_path / "influxd")
        api_port = free_port()
        env |= {"COLDWATCH_MQTT_HOST": "127.0.0.1", "COLDWATCH_MQTT_PORT": str(plain_port),
                "COLDWATCH_INFLUX_URL": influxd.url, "COLDWATCH_INFLUX_DB": "coldwatch",
                "COLDWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'coldwatch.db'}",
                "COLDWATCH_MOSQUITTO_PASSWD_FILE": str(passwd), "COLDWATCH_MOSQUITTO_PID_FILE": str(pid),
                "COLDWATCH_MODELS_DIR": str(tmp_path / "registry"), "COLDWATCH_API_PORT": str(api_port),
                "COLDWATCH_MODEL_PUBLIC_KEYS": str(tmp_path / "keys" / "fleet.pub")}
        # 4. The first admin, then the ingest worker and the API.
        _run([str(CLOUD_BIN / "coldwatch"), "users", "create", "admin", "--role", "admin"],
             env | {"COLDWATCH_USER_PASSWORD": "admin-password-1"})
        api_env = env | {"COLDWATCH_MQTT_USERNAME": API_USER, "COLDWATCH_MQTT_PASSWORD": "api-password-1"}
        procs.append(subprocess.Popen([str(CLOUD_BIN / "coldwatch"), "serve"], env=api_env,
                                      stdout=(tmp_path / "api.log").open("wb"), stderr=subprocess.STDOUT))
        procs.append(subprocess.Popen([str(CLOUD_BIN / "coldwatch"), "ingest"], env=env,
                                      stdout=(tmp_path / "ingest.log").open("wb"), stderr=subprocess.STDOUT))
        api = f"http://127.0.0.1:{api_port}"

        def healthy() -> bool:
            try:
                return httpx.get(f"{api}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        _wait(healthy, "the API")
        # The ops token, from the command line (the trainer's is made the same way).
        token = json.loads(_run([str(CLOUD_BIN / "coldwatch"), "tokens", "create", "admin", "--name", "ops"],
                                env).stdout)["token"]
        headers = {"Authorization": f"Bearer {token}"}
        # 6. A gateway provisioned through the API: the broker's password file is rewritten and reloaded.
        made = httpx.post(f"{api}/api/v1/gateways", headers=headers, timeout=30,
                          json={"id": "reefer-0042", "name": "Reefer 42", "site": "Pudong depot"})
        assert made.status_code == 201, made.text
        credentials = made.json()
        assert credentials["broker_reloaded"] is True
        assert INGEST_USER in passwd.read_text() and API_USER in passwd.read_text()  # the accounts of step 2 stay
        # The gateway: its config (what deploy/gateway-install.sh writes), TLS with its client certificate.
        udp_port = free_port()
        gw = {"ca": certs / "ca.crt", "cert": certs / "reefer-0042.crt", "key": certs / "reefer-0042.key"}
        config = tmp_path / "agent.toml"
        config.write_text(f"""gateway_id = "reefer-0042"
metrics_port = 0
[mqtt]
host = "127.0.0.1"
port = {tls_port}
password = "{credentials['mqtt_password']}"
[mqtt.tls]
ca = "{gw['ca']}"
cert = "{gw['cert']}"
key = "{gw['key']}"
[[inputs]]
type = "udp"
bind = "127.0.0.1:{udp_port}"
[outbox]
path = "{tmp_path / 'outbox.sqlite'}"
[sensors]
default_profile = "chilled"
""")
        agent = EDGE_VENV / "bin" / "coldwatch-agent"
        _run([str(agent), "check-config", "--config", str(config)], dict(os.environ))
        procs.append(subprocess.Popen([str(agent), "run", "--config", str(config)],
                                      stdout=(tmp_path / "agent.log").open("wb"), stderr=subprocess.STDOUT))
        _run([str(CLOUD_BIN / "coldwatch-sim"), "--target", f"127.0.0.1:{udp_port}", "--sensors", "1",
              "--profiles", "chilled", "--ticks", "5", "--interval", "1", "--speed", "5"], dict(os.environ))
        mac = "c2:00:00:00:00:00"

        def shown() -> bool:
            r = httpx.get(f"{api}/api/v1/sensors/{mac}/readings", headers=headers, timeout=10)
            readings = r.json()["readings"] if r.status_code == 200 else []
            return len(readings) >= 3 and all(x["gateway"] == "reefer-0042" for x in readings)

        _wait(shown, "the tag's readings shown by the API", timeout=90)
        fleet = httpx.get(f"{api}/api/v1/gateways/reefer-0042", headers=headers, timeout=10).json()
        assert fleet["status"] == "online" and fleet["provisioned"] is True
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        if influxd is not None:
            influxd.stop()
