"""`coldwatch` command line: `serve` (the API), `ingest` (MQTT → InfluxDB + SQL worker), `users` and `tokens`
(accounts and API tokens), and the ops and model commands (cloud/cli/ops.py, models/training/cli.py).

Settings come from COLDWATCH_* environment variables; flags override them. Secrets only from the environment.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Final

from cloud.config import ConfigError, Settings, env_name, load_settings

log = logging.getLogger("cloud.cli.main")

# (Settings field, flag, help) — flags shared by every subcommand.
_COMMON: Final = (
    ("mqtt_host", "--mqtt-host", "MQTT broker host (default 127.0.0.1)"),
    ("mqtt_port", "--mqtt-port", "MQTT broker port (default 1883)"),
    ("mqtt_username", "--mqtt-username", "MQTT user name (default coldwatch.ingest); the password is read "
                                         "only from COLDWATCH_MQTT_PASSWORD"),
    ("influx_url", "--influx-url", "InfluxDB base URL (default http://127.0.0.1:8086)"),
    ("influx_db", "--influx-db", "InfluxDB database (default coldwatch)"),
    ("influx_username", "--influx-username", "InfluxDB 1.x user name; the password is read only from "
                                             "COLDWATCH_INFLUX_PASSWORD, a token only from COLDWATCH_INFLUX_TOKEN"),
    ("database_url", "--database-url", "SQL database URL: sqlite:///path (default sqlite:///var/coldwatch.db) "
                                       "or postgresql+psycopg://user@host/db"),
)
_INGEST: Final = (
    ("ingest_worker_id", "--worker-id", "stable MQTT client id of this worker (default ingest-1); each worker "
                                        "needs its own, kept across restarts"),
    ("ingest_batch_size", "--batch-size", "points per InfluxDB write (default 20000); also the MQTT "
                                          "ReceiveMaximum, capped at 65535"),
    ("ingest_batch_age_s", "--batch-age", "seconds before a partial batch is written (default 1.0; a tenth of "
                                          "it when no message came for 50 ms and the writer is idle)"),
    ("ingest_replay_after_s", "--replay-after", "seconds a gap in a gateway's telemetry/alerts stays open before "
                                                "the gateway is asked to re-send it (default 30; 0: never)"),
    ("ingest_unknown_gateway", "--unknown-gateway", "reject (default: only provisioned, unrevoked gateways) or "
                                                    "register (accept and register a gateway on first sight)"),
)
_SERVE: Final = (
    ("api_host", "--host", "address the API listens on (default 127.0.0.1)"),
    ("api_port", "--port", "port the API listens on (default 8000)"),
)
EXIT_CONFIG: Final = 2


def _add(parser: argparse.ArgumentParser, specs: Sequence[tuple[str, str, str]]) -> None:
    for name, flag, text in specs:
        parser.add_argument(flag, dest=name, default=None, metavar="VALUE",
                            help=f"{text} [env {env_name(name)}]")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="coldwatch",
        description="coldwatch cloud service. Settings come from COLDWATCH_* environment variables; "
                    "a flag overrides its variable. Passwords and tokens are read only from the environment.",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="log level (default INFO)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="run the HTTP API (uvicorn)",
                           description="Run the JSON API and /metrics, /healthz with uvicorn.")
    _add(serve, _COMMON + _SERVE)
    ingest = sub.add_parser("ingest", help="run an MQTT → InfluxDB + SQL ingest worker",
                            description="Consume every gateway's telemetry, alert events, status and reported "
                                        "state from shared subscriptions ($share/ingest/cw/v1/+/KIND), write "
                                        "readings to InfluxDB and the fleet's state (gateways, sensors, alerts, "
                                        "completeness) to SQL, and acknowledge each message only after it is "
                                        "stored or refused for good (counted by reason).")
    _add(ingest, _COMMON + _INGEST)
    ingest.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                        help="serve Prometheus metrics on 127.0.0.1:PORT (default: off)")
    users = sub.add_parser("users", help="manage API users (bootstrap the first admin)",
                           description="Create or list users in the SQL database. The password is read from "
                                       "COLDWATCH_USER_PASSWORD, else prompted for; never from argv.")
    _add(users, (_COMMON[-1],))
    users_sub = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    create = users_sub.add_parser("create", help="create a user")
    create.add_argument("username")
    create.add_argument("--role", default="viewer", choices=["viewer", "staff", "ops", "admin"],
                        help="role (default viewer)")
    users_sub.add_parser("list", help="list users (name, role, state; tab-separated)")
    users_sub.add_parser("tokens", help="the same as `coldwatch tokens list`")
    revoke = users_sub.add_parser("revoke-token", help="the same as `coldwatch tokens revoke`")
    revoke.add_argument("token_id", type=int)
    tokens = sub.add_parser("tokens", help="API (bearer) tokens for the trainer and scripts",
                            description="Create, list or revoke API tokens straight in the SQL database (the API "
                                        "need not run). A token carries its user's role; it is printed once.")
    _add(tokens, (_COMMON[-1],))
    tokens_sub = tokens.add_subparsers(dest="tokens_command", required=True, metavar="ACTION")
    make = tokens_sub.add_parser("create", help="create a token; stdout: JSON with the token (shown only once)")
    make.add_argument("username", help="the user the token acts as (e.g. an ops user for the trainer)")
    make.add_argument("--name", required=True, help="what the token is for, e.g. trainer (shown in lists)")
    make.add_argument("--days", type=int, default=90, help="days until it expires (1-365, default 90)")
    listing = tokens_sub.add_parser("list", help="id, user, name, created, expires, state (tab-separated)")
    listing.add_argument("--json", action="store_true", help="print JSON instead")
    drop = tokens_sub.add_parser("revoke", help="revoke a token by its id (from `coldwatch tokens list`)")
    drop.add_argument("token_id", type=int)
    for action in (*users_sub.choices.values(), *tokens_sub.choices.values()):
        # `coldwatch users create admin --database-url …` as well as `coldwatch users --database-url … create`
        action.add_argument("--database-url", dest="database_url", default=argparse.SUPPRESS, metavar="VALUE",
                            help=f"{_COMMON[-1][2]} [env {env_name('database_url')}]")
    broker = sub.add_parser("broker", help="seed mosquitto's password file; reload the broker when it changes",
                            description="`init` writes the service account (COLDWATCH_MQTT_USERNAME, password from "
                                        "COLDWATCH_MQTT_PASSWORD) into mosquitto's password file, keeping every "
                                        "other line (the gateways the API provisioned); mosquitto 2 does not start "
                                        "without the file, and the compose deployment runs this before it. `watch` "
                                        "reloads the broker whenever the file changes.")
    broker_sub = broker.add_subparsers(dest="broker_command", required=True, metavar="ACTION")
    seed = broker_sub.add_parser("init", help="add or update the service accounts in the password file")
    seed.add_argument("--passwd-file", dest="mosquitto_passwd_file", default=None, metavar="PATH",
                      help=f"the broker's password file [env {env_name('mosquitto_passwd_file')}]")
    seed.add_argument("--account", dest="accounts", action="append", default=None, metavar="USER=ENV_VAR",
                      help="an account to write, its password read from the environment variable ENV_VAR (never "
                           "from the command line); repeat for each (default: COLDWATCH_MQTT_USERNAME="
                           "COLDWATCH_MQTT_PASSWORD). The compose file seeds coldwatch.ingest and coldwatch.api")
    _add(seed, (_COMMON[2],))
    follow = broker_sub.add_parser(
        "watch", help="reload the broker whenever its password file changes (runs beside the broker)",
        description="Send mosquitto SIGHUP each time the password file changes, so gateways the API provisions, "
                    "rotates or revokes take effect within about a second (a revoked gateway's live session ends). "
                    "For deployments where the API cannot signal the broker itself: the compose file runs it in "
                    "the broker's process namespace. Finds the broker by COLDWATCH_MOSQUITTO_PID_FILE, else by "
                    "its process name. Runs until SIGTERM or SIGINT.")
    follow.add_argument("--passwd-file", dest="mosquitto_passwd_file", default=None, metavar="PATH",
                        help=f"the broker's password file [env {env_name('mosquitto_passwd_file')}]")
    rollup = sub.add_parser("rollups", help="recompute the 1-minute and 1-hour rollups charts and reports read",
                            description="Ingest keeps the rollups as it stores readings. Rebuild them for readings "
                                        "stored before rollups existed (an upgrade); a restore brings its own. "
                                        "Idempotent: each bucket is replaced. stdout: the points written, as JSON.")
    rollup_sub = rollup.add_subparsers(dest="rollups_command", required=True, metavar="ACTION")
    rebuild = rollup_sub.add_parser("rebuild", help="recompute the rollups of the last DAYS days, a day at a time")
    rebuild.add_argument("--days", type=float, default=400.0, metavar="DAYS",
                         help="how far back (default 400, the compose deployment's retention)")
    _add(rebuild, _COMMON[3:])
    save = sub.add_parser("backup", help="write every store (SQL, InfluxDB, model registry) into a new folder",
                          description="A logical backup of the SQL database (one JSON-lines file per table, one "
                                      "transaction), every InfluxDB point as line protocol, and the model registry, "
                                      "with backup.json listing what was written. stdout: that summary as JSON. "
                                      "The fleet's signing key is not included (docs/deploy.md).")
    save.add_argument("folder", type=Path, help="a new or empty folder")
    load = sub.add_parser("restore", help="load a backup into empty stores and check every count",
                          description="Restore into an empty SQL database (SQLite or PostgreSQL, whichever "
                                      "COLDWATCH_DATABASE_URL names: a SQLite backup restores into PostgreSQL), a "
                                      "new InfluxDB database and an empty registry folder; the schema is migrated "
                                      "from the backup's revision to this version's. Refuses stores that hold data.")
    load.add_argument("folder", type=Path, help="a folder written by `coldwatch backup`")
    for store_command in (save, load):
        _add(store_command, _COMMON[3:])
        store_command.add_argument("--models-dir", dest="models_dir", default=None, metavar="PATH",
                            help=f"the model registry folder [env {env_name('models_dir')}]")
    from deploy import certs_cli

    certs_cli.add_parser(sub)
    from cloud.cli import ops as ops_cli
    from models.training import cli as models_cli

    ops_cli.add_parsers(sub, models_cli.add_subparsers(sub))  # models …, models push, rollouts, training, train-worker
    return parser


def settings_from_args(args: argparse.Namespace, env: dict[str, str] | None = None) -> Settings:
    """Settings from the environment with the flags given in `args` on top."""
    flags = {name: flag for name, flag, _ in _COMMON + _INGEST + _SERVE}
    overrides = {
        name: (value, flags[name]) for name in flags if (value := getattr(args, name, None)) is not None
    }
    return load_settings(os.environ if env is None else env, overrides)


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level, stream=sys.stderr,
        format="time=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
    )
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLevelName(level)))  # a line per request


def _serve(settings: Settings) -> int:
    import uvicorn

    from cloud.api.app import create_app

    app = create_app(settings)
    # An open event stream (the dashboard's /ui/events) never ends by itself: on SIGTERM give requests 5 s,
    # then close what is left, so a browser left open does not hold up a restart.
    uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_config=None, access_log=False,
                timeout_graceful_shutdown=5)
    return 0


def _ingest(settings: Settings, metrics_port: int | None) -> int:
    from prometheus_client import start_http_server

    from cloud.ingest.worker import IngestWorker, tune_gc_for_ingest

    worker = IngestWorker(settings)
    tune_gc_for_ingest()
    if metrics_port is not None:
        start_http_server(metrics_port, addr="127.0.0.1", registry=worker.metrics.registry)
        log.info("metrics listening addr=127.0.0.1:%d", metrics_port)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal received signal=%s; flushing and stopping", signal.Signals(signum).name)
        worker.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    worker.run()
    return 0


def _backup_or_restore(settings: Settings, command: str, folder: Path, models_dir: str | None) -> int:
    import dataclasses
    import json

    from sqlalchemy.exc import SQLAlchemyError

    from cloud.backup import BackupError, backup, restore
    from cloud.cli.users import QUIET_LOGGERS
    from cloud.tsdb.influx import InfluxRejected, InfluxUnavailable

    for quiet in QUIET_LOGGERS:
        logging.getLogger(quiet).setLevel(logging.WARNING)
    if models_dir is not None:
        settings = dataclasses.replace(settings, models_dir=models_dir)
    try:
        summary = backup(settings, folder) if command == "backup" else restore(settings, folder)
    except BackupError as exc:
        print(f"coldwatch: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (InfluxUnavailable, InfluxRejected, OSError, SQLAlchemyError) as exc:
        print(f"coldwatch: error: {command} failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"folder": str(folder), "tables": summary.tables, "measurements": summary.measurements,
                      "registry_files": len(summary.registry), "record_files": len(summary.records),
                      "record_key": bool(summary.record_key), "sql_revision": summary.sql_revision}, sort_keys=True))
    return 0


def _rebuild_rollups(settings: Settings, days: float) -> int:
    import json
    import time

    from cloud.tsdb.influx import InfluxRejected, InfluxUnavailable, influx_from_settings
    from cloud.tsdb.rollups import rebuild_days

    if not 0 < days <= 10_000:
        raise ConfigError("--days", f"{days} is not a number of days in (0, 10000]")
    end = int(time.time() * 1000)
    try:
        with influx_from_settings(settings, timeout_s=120.0) as influx:
            written = rebuild_days(influx, end - int(days * 86_400_000), end)
    except (InfluxUnavailable, InfluxRejected) as exc:
        print(f"coldwatch: error: rollups not rebuilt: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"rollup_points_written": written, "days": days}))
    return 0


def _broker_init(settings: Settings, passwd_file: str | None, accounts: list[str] | None) -> int:
    import os

    from cloud.broker import BrokerAccounts, BrokerSyncError
    from cloud.security import mosquitto_hash

    path = passwd_file or settings.mosquitto_passwd_file
    if not path:
        raise ConfigError("--passwd-file", f"is required (or {env_name('mosquitto_passwd_file')})")
    hashes: dict[str, str] = {}
    if not accounts:
        hashes[settings.mqtt_username] = mosquitto_hash(settings.require_mqtt_password())
    for spec in accounts or []:
        user, sep, variable = spec.partition("=")
        if not sep or not user or not variable:
            raise ConfigError("--account", f"{spec!r} is not USER=ENV_VAR")
        password = os.environ.get(variable)
        if not password:
            raise ConfigError("--account", f"{variable} (the password of {user}) is not set")
        hashes[user] = mosquitto_hash(password)
    target = Path(path)
    if not target.parent.is_dir():
        raise ConfigError("--passwd-file", f"{target.parent} is not a directory")
    try:
        lines = BrokerAccounts(passwd_file=target).sync(hashes, reload=False)
    except BrokerSyncError as exc:
        print(f"coldwatch: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"coldwatch: {target}: account{'s' if len(hashes) > 1 else ''} {', '.join(sorted(hashes))} written "
          f"({lines} accounts in the file)", file=sys.stderr)
    return 0


def _broker_watch(settings: Settings, passwd_file: str | None) -> int:
    import signal
    import threading

    from cloud.broker import watch

    path = passwd_file or settings.mosquitto_passwd_file
    if not path:
        raise ConfigError("--passwd-file", f"is required (or {env_name('mosquitto_passwd_file')})")
    if not Path(path).parent.is_dir():
        raise ConfigError("--passwd-file", f"{Path(path).parent} is not a directory")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    watch(Path(path), pid_file=Path(settings.mosquitto_pid_file) if settings.mosquitto_pid_file else None, stop=stop)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `coldwatch` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    _configure_logging(args.log_level)
    if args.command == "certs":
        from deploy import certs_cli

        return certs_cli.run(args)
    if args.command == "models" and args.models_command != "push":
        from models.training import cli as models_cli

        return models_cli.dispatch(args)
    if args.command == "models" or args.command in ("rollouts", "training", "train-worker"):
        from cloud.cli import ops as ops_cli

        return ops_cli.run(args)
    try:
        settings = settings_from_args(args)
        if args.command == "broker" and args.broker_command == "watch":
            return _broker_watch(settings, getattr(args, "mosquitto_passwd_file", None))
        if args.command == "broker":
            return _broker_init(settings, getattr(args, "mosquitto_passwd_file", None), args.accounts)
        if args.command == "rollups":
            return _rebuild_rollups(settings, args.days)
        if args.command in ("backup", "restore"):
            return _backup_or_restore(settings, args.command, args.folder, args.models_dir)
        if args.command == "ingest":
            settings.require_mqtt_password()
            if args.metrics_port is not None and not 1 <= args.metrics_port <= 65535:
                raise ConfigError("--metrics-port", f"{args.metrics_port} is not a TCP port (1-65535)")
    except ConfigError as exc:
        print(f"coldwatch: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "serve":
        return _serve(settings)
    if args.command in ("users", "tokens"):
        from cloud.cli.users import run_accounts

        return run_accounts(settings, args)
    return _ingest(settings, args.metrics_port)
