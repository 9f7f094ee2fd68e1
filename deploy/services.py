"""Start real mosquitto, influxd and PostgreSQL on free loopback ports in a directory, with generated configs.

Used by the test fixtures, `make demo` and `make bench`; production configs live beside this
file (deploy/mosquitto, deploy/influxdb) and in docs/deploy.md.
"""

from __future__ import annotations

import getpass
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from deploy.tls import TlsFiles

SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin", "/sbin"])

# Broker queue limits: mosquitto's default (1,000 queued messages per client) silently drops
# data when ingest is away. Size them for the backlog the broker must absorb (docs/decisions.md).
DEFAULT_MAX_QUEUED_MESSAGES = 1_000_000
DEFAULT_MAX_QUEUED_BYTES = 1024 * 1024 * 1024


class ServiceError(RuntimeError):
    """A service binary is missing, or the service did not start."""


def find_binary(name: str) -> str | None:
    """Path of a service binary, looking in sbin directories too."""
    return shutil.which(name, path=SBIN_PATH)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceError(f"exited with {proc.returncode}; log {log}:\n{_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise ServiceError(f"port {port} not open after {timeout}s; log {log}:\n{_tail(log)}")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class _Process:
    """A started server process; stop() is idempotent."""

    workdir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.workdir / "server.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (clean shutdown, mosquitto saves its persistence file), then SIGKILL."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def kill(self) -> None:
        """SIGKILL: a crash, losing whatever the server had not written."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def __enter__(self) -> _Process:
        return self

    def __exit__(self, *exc: tuple[type[BaseException], BaseException, TracebackType] | None) -> None:
        self.stop()


@dataclass
class Mosquitto(_Process):
    """mosquitto with a password file and an ACL: gateways confined to cw/v1/<own id>/#."""

    users: dict[str, str] = field(default_factory=dict)
    service_users: tuple[str, ...] = ()  # ingest accounts (render_acl)
    api_users: tuple[str, ...] = ()  # accounts that write desired state
    max_queued_messages: int = DEFAULT_MAX_QUEUED_MESSAGES
    max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES
    autosave_interval_s: int = 5
    host: str = "127.0.0.1"
    tls: TlsFiles | None = None  # with TLS, clients must also present a certificate from the same CA

    def write_config(self) -> Path:
        """Generate mosquitto.conf, the password file (hashed) and the ACL."""
        binary = find_binary("mosquitto_passwd")
        if binary is None:
            raise ServiceError("mosquitto_passwd not found: install the Debian package 'mosquitto'")
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "data").mkdir(exist_ok=True)
        passwd = self.workdir / "passwd"
        passwd.write_text("".join(f"{u}:{p}\n" for u, p in self.users.items()))
        passwd.chmod(0o600)
        subprocess.run([binary, "-U", str(passwd)], check=True, capture_output=True)
        acl = self.workdir / "acl"
        acl.write_text(render_acl(service_users=self.service_users, api_users=self.api_users))
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            render_mosquitto_conf(
                port=self.port,
                bind=self.host,
                passwd=passwd,
                acl=acl,
                data_dir=self.workdir / "data",
                log=self.log,
                max_queued_messages=self.max_queued_messages,
                max_queued_bytes=self.max_queued_bytes,
                autosave_interval_s=self.autosave_interval_s,
                tls=self.tls,
            )
        )
        return conf

    def start(self, timeout: float = 15.0) -> Mosquitto:
        """Start (or restart, keeping persistence) the broker and wait for its port."""
        binary = find_binary("mosquitto")
        if binary is None:
            raise ServiceError("mosquitto not found: install the Debian package 'mosquitto'")
        conf = self.write_config()
        self.proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait_for_port(self.port, self.proc, self.log, timeout)
        return self

    def reload(self) -> None:
        """Rewrite password file and ACL and make the running broker re-read them (SIGHUP)."""
        self.write_config()
        if self.proc is not None:
            self.proc.send_signal(1)


def render_acl(service_users: tuple[str, ...], api_users: tuple[str, ...] = ()) -> str:
    """ACL: ingest accounts (`service_users`) read every gateway's uplink and ask for replays; API accounts
    (`api_users`) write `desired` and nothing else; a gateway only its own subtree. An ingest account cannot
    change what a gateway runs, and the API cannot read the fleet's data off the broker."""
    lines = ["# generated by coldwatch; gateways: broker user name = gateway id"]
    for user in service_users:
        lines += [
            f"user {user}",
            "topic read cw/v1/+/telemetry",
            "topic read cw/v1/+/alerts",
            "topic read cw/v1/+/status",
            "topic read cw/v1/+/reported",
            "topic write cw/v1/+/replay",
        ]
    for user in api_users:
        lines += [f"user {user}", "topic write cw/v1/+/desired"]
    lines += ["", "pattern write cw/v1/%u/telemetry", "pattern write cw/v1/%u/alerts",
              "pattern readwrite cw/v1/%u/status", "pattern readwrite cw/v1/%u/reported",
              "pattern read cw/v1/%u/desired", "pattern read cw/v1/%u/replay", ""]
    return "\n".join(lines)


def render_mosquitto_conf(
    *, port: int, bind: str, passwd: Path, acl: Path, data_dir: Path, log: Path,
    max_queued_messages: int, max_queued_bytes: int, autosave_interval_s: int, tls: TlsFiles | None = None,
) -> str:
    """A loopback broker config; see deploy/mosquitto/production.conf for the TLS one."""
    # Run as whoever started us: as root mosquitto would otherwise switch to user 'mosquitto',
    # which cannot read files in our temporary directory.
    return f"""# generated by coldwatch (deploy/services.py)
user {getpass.getuser()}
per_listener_settings false
allow_anonymous false
password_file {passwd}
acl_file {acl}
listener {port} {bind}
{_tls_lines(tls)}persistence true
persistence_location {data_dir}/
autosave_interval {autosave_interval_s}
max_queued_messages {max_queued_messages}
max_queued_bytes {max_queued_bytes}
max_inflight_messages 0
log_dest file {log}
log_type error
log_type warning
log_type notice
log_type information
connection_messages true
"""


def _tls_lines(tls: TlsFiles | None) -> str:
    """Listener TLS: the broker's certificate, and client certificates required from the same CA."""
    if tls is None:
        return ""
    return (f"cafile {tls.ca}\ncertfile {tls.cert}\nkeyfile {tls.key}\n"
            "require_certificate true\ntls_version tlsv1.2\n")


@dataclass
class Influxd(_Process):
    """influxd 1.x with HTTP on `port` and its RPC port on another free port; data in workdir."""

    rpc_port: int = 0
    auth: tuple[str, str] | None = None  # admin (user, password) when auth is enabled

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> Influxd:
        """Start influxd (keeping data across restarts) and wait until /ping answers."""
        binary = find_binary("influxd")
        if binary is None:
            raise ServiceError("influxd not found: install the Debian package 'influxdb'")
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.rpc_port:
            self.rpc_port = free_port()
        conf = self.workdir / "influxdb.conf"
        conf.write_text(render_influxdb_conf(
            http_port=self.port, rpc_port=self.rpc_port, data_dir=self.workdir, auth=self.auth is not None
        ))
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [binary, "-config", str(conf)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise ServiceError(f"influxd exited with {self.proc.returncode}:\n{_tail(self.log)}")
            try:
                if httpx.get(f"{self.url}/ping", timeout=1).status_code == 204:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise ServiceError(f"influxd did not answer /ping in {timeout}s:\n{_tail(self.log)}")
            time.sleep(0.1)
        if self.auth is not None:
            user, password = self.auth
            # The first admin may be created without credentials; afterwards this is a no-op error.
            httpx.post(f"{self.url}/query", data={
                "q": f"CREATE USER \"{user}\" WITH PASSWORD '{password}' WITH ALL PRIVILEGES"
            }, timeout=10)
        return self


def render_influxdb_conf(*, http_port: int, rpc_port: int, data_dir: Path, auth: bool) -> str:
    """An influxd 1.x config for one instance in `data_dir` (both ports on loopback)."""
    return f"""# generated by coldwatch (deploy/services.py)
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{data_dir}/meta"

[data]
  dir = "{data_dir}/data"
  wal-dir = "{data_dir}/wal"
  query-log-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = {"true" if auth else "false"}
  log-enabled = false
  max-body-size = 0

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false
"""


def start_mosquitto(
    workdir: Path, users: dict[str, str], service_users: tuple[str, ...] = (), **kwargs: Any
) -> Mosquitto:
    """Start a broker in `workdir` on a free port with these (user → password) accounts.

    `service_users` (which must not be valid gateway ids, e.g. 'coldwatch.ingest') may read every
    gateway's uplink; every other user is a gateway confined to its own subtree.
    """
    return Mosquitto(
        workdir=workdir, port=free_port(), users=users, service_users=service_users, **kwargs
    ).start()


def start_influxd(workdir: Path, auth: tuple[str, str] | None = None) -> Influxd:
    """Start influxd in `workdir` on free ports."""
    return Influxd(workdir=workdir, port=free_port(), auth=auth).start()


def pg_bindir() -> Path | None:
    """The newest /usr/lib/postgresql/<ver>/bin holding initdb (Debian keeps it off PATH)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
                   if p.parent.parent.name.isdigit() else 0)
    return found[-1].parent if found else None


class Postgres:
    """A throw-away cluster in a temp dir on a free loopback port; as root it runs as user `postgres`
    (the server refuses root), so the directory is created for and owned by that user."""

    def __init__(self, bindir: Path) -> None:
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
        subprocess.run([*self.runas, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> Postgres:
        pwfile = self.workdir / "pw"
        pwfile.write_text(self.password + "\n")
        if self.runas:
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
        import psycopg  # the cloud's driver: imported here, so deploy/ stays importable without it

        with psycopg.connect(self.url().replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)
