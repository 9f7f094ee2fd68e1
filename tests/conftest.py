"""Shared fixtures: real mosquitto and influxd on free loopback ports in temp dirs, edge venv paths.

With CI=true a missing binary or venv fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from deploy.services import Influxd, Mosquitto, find_binary, free_port

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

    def start(**kwargs: int) -> Broker:
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


def _pg_bindir() -> Path | None:
    """The newest /usr/lib/postgresql/<ver>/bin holding initdb (Debian keeps it off PATH)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
                   if p.parent.parent.name.isdigit() else 0)
    return found[-1].parent if found else None


class Postgres:
    """A throw-away cluster in a temp dir on a free loopback port; as root it runs as user `postgres`
    (the server refuses root), so the directory is created for and owned by that user."""

    def __init__(self, bindir: Path) -> None:
        import pwd
        import tempfile

        self.bindir = bindir
        self.port = free_port()
        self.password = secrets.token_urlsafe(12)
        self.workdir = Path(tempfile.mkdtemp(prefix="coldwatch-pg-"))
        self.datadir = self.workdir / "data"
        self.log = self.workdir / "server.log"
        self.runas: list[str] = []
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.workdir, entry.pw_uid, entry.pw_gid)
            self.runas = ["runuser", "-u", "postgres", "--"]
        self.workdir.chmod(0o700)

    def _run(self, *args: str) -> None:
        import subprocess

        subprocess.run([*self.runas, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> Postgres:
        pwfile = self.workdir / "pw"
        pwfile.write_text(self.password + "\n")
        if self.runas:
            import shutil

            shutil.chown(pwfile, "postgres")
        self._run(str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "coldwatch", "--auth=scram-sha-256",
                  f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8")
        pwfile.unlink()
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off " \
                  "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.log), "-w", "-t", "60",
                  "-o", options, "start")
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://coldwatch:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url().replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        import shutil

        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One PostgreSQL cluster for the session (Debian `postgresql`); tests create their own databases."""
    bindir = _pg_bindir()
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
