"""`coldwatch users create|list|tokens|revoke-token`: accounts and API tokens from the command line (bootstrap
the first admin; revoke a leaked token without the API)."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from datetime import UTC, datetime

from sqlmodel import Session

from cloud.config import Settings
from cloud.db.engine import init_schema, make_engine
from cloud.db.users import UserCreate
from cloud.services import users
from cloud.services.clock import now_ms
from cloud.services.users import UserError

PASSWORD_ENV = "COLDWATCH_USER_PASSWORD"  # noqa: S105 (a variable name)


def _password() -> str | None:
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    if not sys.stdin.isatty():
        return None
    first = getpass.getpass("password: ")
    return first if first == getpass.getpass("again: ") else None


def _day(ms: int | None) -> str:
    return "never" if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def run_users(settings: Settings, args: argparse.Namespace) -> int:
    """Run one `users` action; returns the exit status (2: bad input)."""
    engine = make_engine(settings.database_url)
    try:
        init_schema(engine)
        with Session(engine) as session:
            if args.users_command == "list":
                for user in users.list_users(session):
                    print(f"{user.username}\t{user.role}\t{'disabled' if user.disabled else 'enabled'}")
                return 0
            if args.users_command == "tokens":
                now = now_ms()
                for row, name in users.api_tokens(session):
                    state = "revoked" if row.revoked else "expired" if row.expires_at and row.expires_at < now else (
                        "active")
                    print(f"{row.id}\t{name}\t{row.name or ''}\t{_day(row.created_at)}\t{_day(row.expires_at)}\t"
                          f"{state}")
                return 0
            if args.users_command == "revoke-token":
                if users.revoke_token_id(session, token_id=args.token_id) is None:
                    print(f"coldwatch: no API token with id {args.token_id} (see `coldwatch users tokens`)",
                          file=sys.stderr)
                    return 2
                session.commit()
                print(f"revoked API token {args.token_id}")
                return 0
            password = _password()
            if password is None:
                print(f"coldwatch: set {PASSWORD_ENV} or run on a terminal (passwords differed?)", file=sys.stderr)
                return 2
            try:
                data = UserCreate.model_validate({"username": args.username, "role": args.role,
                                                  "password": password})
                user = users.create_user(session, data=data, actor=f"cli:{getpass.getuser()}")
            except (UserError, ValueError) as exc:
                print(f"coldwatch: cannot create user: {exc}", file=sys.stderr)
                return 2
            session.commit()
            print(f"created user {user.username} with role {user.role}")
            return 0
    finally:
        engine.dispose()
