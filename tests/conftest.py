"""Shared fixtures: real mosquitto and influxd on free loopback ports in temp dirs, edge venv paths.

With CI=true a missing binary or venv fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from cloud.db.engine import init_schema, make_engine
from deploy.services import Influxd, Mosquitto, Postgres, find_binary, free_port, pg_bindir

ROOT = Path(__file__).resolve().parent.parent
EDGE_VENV = ROOT / ".venv-edge"
CLOUD_BIN = Path(sys.executable).parent
INGEST_USER = "coldwatch.ingest"
API_USER = "coldwatch.api"  # writes desired state only (deploy/services.render_acl)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, what: str) -> None:
    """Skip when `what` is missing on a developer machine; fail under CI=true."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{what} is missing and CI=true: run `make test`, which installs it", pytrace=False)
    pytest.skip(f"{what} is missing")


def require_binary(name: str) -> str:
    path = find_binary(name)
    require(path is not None, f"binary {name!r}")
    assert path is not None
    return path


CHROMIUM = "/usr/bin/chromium"  # Debian's package (deploy/install-system.sh), never a downloaded browser build


def require_chromium() -> str:
    """Debian's Chromium for the browser tests (tests/e2e); missing under CI=true fails."""
    require(Path(CHROMIUM).exists(), f"Debian chromium ({CHROMIUM}; apt-get install chromium chromium-driver)")
    return CHROMIUM


@pytest.fixture(scope="session")
def edge_python() -> Path:
    """The gateway's interpreter (.venv-edge), where the agent really runs."""
    python = EDGE_VENV / "bin" / "python"
    require(python.exists(), f"edge venv {EDGE_VENV}")
    return python


class Broker:
    """A running mosquitto plus the credentials the tests may use."""

    def __init__(self, server: Mosquitto) -> None:
        self.server = server
        self.host = server.host
        self.port = server.port
        self.users = server.users

    def password(self, user: str) -> str:
        return self.users[user]

    def add_gateway(self, gateway_id: str) -> str:
        """Provision a gateway account and reload the broker; returns its password."""
        self.users[gateway_id] = secrets.token_urlsafe(12)
        self.server.reload()
        return self.users[gateway_id]


def _gateway_users() -> dict[str, str]:
    users = {f"gw{i}": f"pw-gw{i}" for i in range(1, 11)}
    users[INGEST_USER] = "pw-ingest"
    users[API_USER] = "pw-api"
    return users


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[Callable[..., Broker]]:
    """Start brokers on demand (for tests that stop or restart one); all stopped at teardown."""
    require_binary("mosquitto")
    started: list[Mosquitto] = []

    def start(**kwargs: Any) -> Broker:
        server = Mosquitto(
            workdir=tmp_path / f"mosquitto{len(started)}", port=free_port(), users=_gateway_users(),
            service_users=(INGEST_USER,), api_users=(API_USER,), **kwargs,
        ).start()
        started.append(server)
        return Broker(server)

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One broker for the session: gateways gw1..gw10 (password pw-gwN) and the ingest account."""
    require_binary("mosquitto")
    server = Mosquitto(
        workdir=tmp_path_factory.mktemp("mosquitto"), port=free_port(), users=_gateway_users(),
        service_users=(INGEST_USER,), api_users=(API_USER,),
    ).start()
    yield Broker(server)
    server.stop()


@pytest.fixture
def influxd_factory(tmp_path: Path) -> Iterator[Callable[..., Influxd]]:
    """Start influxd instances on demand (for outage tests); all stopped at teardown."""
    require_binary("influxd")
    started: list[Influxd] = []

    def start(auth: tuple[str, str] | None = None) -> Influxd:
        server = Influxd(workdir=tmp_path / f"influxd{len(started)}", port=free_port(), auth=auth).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    """One influxd for the session; tests use their own database names."""
    require_binary("influxd")
    server = Influxd(workdir=tmp_path_factory.mktemp("influxd"), port=free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def influx_db() -> str:
    """A database name unique to this test."""
    return "t_" + secrets.token_hex(6)


# -- SQL: a real PostgreSQL cluster per session, and `database_url` for both SQLite and PostgreSQL ----------


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One PostgreSQL cluster for the session (Debian `postgresql`); tests create their own databases."""
    bindir = pg_bindir()
    require(bindir is not None, "PostgreSQL server binaries (/usr/lib/postgresql/<ver>/bin/initdb)")
    assert bindir is not None
    server = Postgres(bindir).start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database for this test: a SQLite file, or a new database in the session's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'coldwatch.db'}"
    server: Postgres = request.getfixturevalue("postgres")
    return server.create_database("t_" + secrets.token_hex(6))


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on `database_url` with the schema created (SQLite and PostgreSQL), disposed afterwards."""
    engine = make_engine(database_url)
    init_schema(engine)
    yield engine
    engine.dispose()
