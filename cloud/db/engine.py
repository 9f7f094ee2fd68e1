"""The SQL engine: SQLite file by default, PostgreSQL through psycopg 3; same code for both.

Nothing is created at import time: `make_engine(url)` is called by the app factory and the worker.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine, select

log = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 1
SQLITE_BUSY_TIMEOUT_MS: Final = 30_000
READ_MOSTLY: Final = "coldwatch_read_mostly"  # execution option: begin SQLite transactions DEFERRED


def read_mostly(engine: Engine) -> Engine:
    """`engine` for work that reads (the API's GET requests): on SQLite its transactions begin DEFERRED, so in WAL
    they read a snapshot without waiting for a writer (with IMMEDIATE, 200 gateways downloading a model queued every
    page behind the rollout writing their desired state). A write in such a transaction still works, but fails at
    once with "database is locked" if another connection wrote since it first read: keep writes out of GET
    requests. Other databases: the engine unchanged in behaviour."""
    return engine.execution_options(**{READ_MOSTLY: True})


def normalise_url(url: str) -> str:
    """`postgresql://…` → `postgresql+psycopg://…` (psycopg 3, not psycopg2)."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def is_sqlite(engine: Engine) -> bool:
    """Whether `engine` is SQLite (serialised writers, BEGIN IMMEDIATE)."""
    return engine.dialect.name == "sqlite"


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for `url`. SQLite: WAL, a busy timeout, and BEGIN IMMEDIATE so that read-then-write
    transactions of two processes serialise instead of failing; the file's directory is created."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False,
                                                             "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        _sqlite_pragmas(engine)
        return engine
    return create_engine(url, echo=echo, pool_pre_ping=True, pool_size=5, max_overflow=10)


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (pysqlite's is deferred)
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        deferred = connection.get_execution_options().get(READ_MOSTLY, False)
        connection.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")


def _enable_wal(cursor: Any) -> None:
    """Switch the file to WAL. Two processes opening a new file together can both hold a shared lock and
    both want the exclusive one; SQLite then answers "database is locked" at once, without waiting on the
    busy timeout (it would be a deadlock). Whichever loses tries again; WAL is set in the file, once."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.01
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            log.debug("sqlite journal_mode=WAL busy, retrying in %.2fs", delay)
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def init_schema(engine: Engine) -> None:
    """Migrate the database to the newest revision (alembic, idempotent) and record the schema version.

    Refuses a database whose recorded schema version is newer than this code (docs/decisions.md).
    """
    from cloud.db import migrate, tables  # tables: registers every table on SQLModel.metadata

    migrate.upgrade(engine)
    with Session(engine) as session:
        row = session.exec(select(tables.SchemaInfo)).first()
        if row is None:
            session.add(tables.SchemaInfo(id=1, version=SCHEMA_VERSION))
            session.commit()
        elif row.version > SCHEMA_VERSION:
            raise RuntimeError(f"database schema version {row.version} is newer than this code's "
                               f"({SCHEMA_VERSION}); upgrade coldwatch")
    log.info("sql schema ready dialect=%s version=%d", engine.dialect.name, SCHEMA_VERSION)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session whose transaction commits on success and rolls back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
