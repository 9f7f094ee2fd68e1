"""`coldwatch users create|list`: accounts from the command line (bootstrap the first admin)."""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from sqlmodel import Session

from cloud.config import Settings
from cloud.db.engine import init_schema, make_engine
from cloud.db.users import UserCreate
from cloud.services import users
from cloud.services.users import UserError

PASSWORD_ENV = "COLDWATCH_USER_PASSWORD"  # noqa: S105 (a variable name)


def _password() -> str | None:
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    if not sys.stdin.isatty():
        return None
    first = getpass.getpass("password: ")
    return first if first == getpass.getpass("again: ") else None


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
