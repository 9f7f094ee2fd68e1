"""Schemathesis against the API's own OpenAPI spec: generated requests to every operation, as an admin, never
get a 5xx and get the bodies the spec documents (SQLite, real influxd, real mosquitto)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from cloud.api.app import create_app
from cloud.config import Settings
from deploy.services import Influxd
from tests.conftest import API_USER, Broker

pytestmark = pytest.mark.integration
ADMIN_PW = "admin-password-1"
# No 5xx, and every response with a documented status code matches its documented schema (422 included).
CHECKS = [schemathesis.checks.not_a_server_error, schemathesis.checks.response_schema_conformance]


@pytest.fixture(scope="module")
def app(influxd: Influxd, mosquitto: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    folder = tmp_path_factory.mktemp("fuzz")
    assert mosquitto.server.proc is not None
    (folder / "mosquitto.pid").write_text(str(mosquitto.server.proc.pid))
    application = create_app(Settings(
        database_url=f"sqlite:///{folder / 'fuzz.db'}", influx_url=influxd.url, influx_db="fuzz",
        admin_password=ADMIN_PW, models_dir=str(folder / "registry"), login_max_failures=1000,
        records_dir=str(folder / "records"), record_signing_key=str(folder / "records.pem"),
        mqtt_host=mosquitto.host, mqtt_port=mosquitto.port, mqtt_username=API_USER,
        mqtt_password=mosquitto.password(API_USER), mosquitto_passwd_file=str(mosquitto.server.workdir / "passwd"),
        mosquitto_pid_file=str(folder / "mosquitto.pid")))
    yield application  # schemathesis runs its lifespan once, for the whole run


@pytest.fixture(scope="module")
def admin_token(app: FastAPI) -> str:
    r = TestClient(app).post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PW})  # no lifespan
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


def test_no_request_gets_a_server_error(app: FastAPI, admin_token: str) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {admin_token}"}
    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/api/v1/auth/logout":
            continue  # it would revoke the token the rest of the run uses; logout is tested elsewhere
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            check()
        except Exception as exc:  # collect every operation's failure, then report them together
            failures[f"{operation.method.upper()} {operation.path}"] = str(exc)[:2000]
    assert operations >= 20
    assert not failures, "\n\n".join(f"{op}: {why}" for op, why in failures.items())
