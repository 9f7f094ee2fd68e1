"""`coldwatch users create|list` and `coldwatch tokens create|list|revoke`: accounts and API tokens straight in the
SQL database (bootstrap the first admin, make the trainer's token before the API is reachable, revoke a leaked
token without the API)."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlmodel import Session

from cloud.config import Settings
from cloud.db.engine import init_schema, make_engine
from cloud.db.users import UserCreate
from cloud.services import users
from cloud.services.clock import now_ms
from cloud.services.users import UserError

PASSWORD_ENV = "COLDWATCH_USER_PASSWORD"  # noqa: S105 (a variable name)
MAX_TOKEN_DAYS: Final = 365  # as the API's POST /api/v1/auth/tokens (held equal by a test)
EXIT_USAGE: Final = 2
QUIET_LOGGERS: Final = ("alembic", "cloud.db.engine")


class CliError(Exception):
    """A refusal to print as `coldwatch: error: …` with exit status 2."""


def _password() -> str | None:
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    if not sys.stdin.isatty():
        return None
    first = getpass.getpass("password: ")
    return first if first == getpass.getpass("again: ") else None


def _day(ms: int | None) -> str:
    return "never" if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def _missing_sqlite_file(database_url: str) -> Path | None:
    """The SQLite file the URL names when it does not exist yet (None for other databases or in-memory)."""
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite") or not url.database or url.database == ":memory:":
        return None
    path = Path(url.database)
    return None if path.exists() else path


def _validation_message(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors())


def run_accounts(settings: Settings, args: argparse.Namespace) -> int:
    """Run one `users` or `tokens` action; returns the exit status (2: bad input, nothing changed)."""
    for quiet in QUIET_LOGGERS:  # migrations are not news to someone adding a user
        logging.getLogger(quiet).setLevel(logging.WARNING)
    creating = args.command == "users" and args.users_command == "create"
    missing = _missing_sqlite_file(settings.database_url)
    if missing is not None and not creating:
        print(f"coldwatch: error: no database at {missing} (set COLDWATCH_DATABASE_URL or --database-url to the "
              "API's database; `coldwatch users create` makes a new one)", file=sys.stderr)
        return EXIT_USAGE
    if missing is not None:
        if not missing.parent.is_dir():
            print(f"coldwatch: error: {missing.parent} does not exist (create it first, or point "
                  "COLDWATCH_DATABASE_URL / --database-url at the API's database)", file=sys.stderr)
            return EXIT_USAGE
        print(f"coldwatch: creating a new database at {missing}", file=sys.stderr)
    engine = make_engine(settings.database_url)
    try:
        init_schema(engine)
        with Session(engine) as session:
            return _dispatch(session, args)
    except CliError as exc:
        print(f"coldwatch: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        engine.dispose()


def _dispatch(session: Session, args: argparse.Namespace) -> int:
    action = f"{args.command} {getattr(args, 'users_command', None) or args.tokens_command}"
    if action == "users list":
        for user in users.list_users(session):
            print(f"{user.username}\t{user.role}\t{'disabled' if user.disabled else 'enabled'}")
    elif action in ("users tokens", "tokens list"):
        _list_tokens(session, as_json=getattr(args, "json", False))
    elif action in ("users revoke-token", "tokens revoke"):
        if users.revoke_token_id(session, token_id=args.token_id) is None:
            raise CliError(f"no API token with id {args.token_id} (see `coldwatch tokens list`)")
        session.commit()
        print(f"revoked API token {args.token_id}", file=sys.stderr)
    elif action == "tokens create":
        _create_token(session, args)
    else:
        _create_user(session, args)
    return 0


def _list_tokens(session: Session, *, as_json: bool) -> None:
    now = now_ms()
    rows = []
    for row, name in users.api_tokens(session):
        state = "revoked" if row.revoked else "expired" if row.expires_at and row.expires_at < now else "active"
        rows.append({"id": row.id, "user": name, "name": row.name or "", "created": _day(row.created_at),
                     "expires": _day(row.expires_at), "state": state})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        print("\t".join(str(r[k]) for k in ("id", "user", "name", "created", "expires", "state")))


def _create_token(session: Session, args: argparse.Namespace) -> None:
    if not 1 <= len(args.name) <= 100:
        raise CliError(f"--name: 1 to 100 characters, got {len(args.name)}")
    if not 1 <= args.days <= MAX_TOKEN_DAYS:
        raise CliError(f"--days: {args.days} is not between 1 and {MAX_TOKEN_DAYS} (a token that never expires "
                       "outlives its owner's job; make a new one before it ends)")
    user = users.get_user(session, username=args.username)
    if user is None or user.disabled:
        raise CliError(f"no enabled user {args.username!r} (see `coldwatch users list`)")
    token = users.issue_token(session, user=user, kind="api", name=args.name, ttl_ms=args.days * 86_400_000)
    session.commit()
    print(json.dumps({"token": token, "user": user.username, "role": user.role, "name": args.name,
                      "expires": _day(now_ms() + args.days * 86_400_000)}))
    print(f"coldwatch: API token {args.name!r} for {user.username} ({user.role}) created; it is shown only once",
          file=sys.stderr)


def _create_user(session: Session, args: argparse.Namespace) -> None:
    password = _password()
    if password is None:
        raise CliError(f"set {PASSWORD_ENV} or run on a terminal (passwords differed?)")
    try:
        data = UserCreate.model_validate({"username": args.username, "role": args.role, "password": password})
    except ValidationError as exc:
        raise CliError(f"cannot create user: {_validation_message(exc)}") from None
    try:
        user = users.create_user(session, data=data, actor=f"cli:{getpass.getuser()}")
    except (UserError, ValueError) as exc:
        raise CliError(f"cannot create user: {exc}") from None
    session.commit()
    print(f"created user {user.username} with role {user.role}", file=sys.stderr)
