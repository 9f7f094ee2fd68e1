"""Schema migrations on real SQLite and PostgreSQL: a new database reaches head and matches the models exactly,
a database made by `create_all` before migrations existed is adopted, and processes starting together migrate
one after another."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

from cloud.db import tables
from cloud.db.engine import SCHEMA_VERSION, init_schema, make_engine
from cloud.db.migrate import MIGRATIONS

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def head() -> str:
    script = ScriptDirectory(str(MIGRATIONS))
    return str(script.get_current_head())


def revision_and_diffs(engine: Engine) -> tuple[str | None, list[object]]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return context.get_current_revision(), list(compare_metadata(context, SQLModel.metadata))


def test_a_new_database_reaches_head_and_matches_every_model(engine: Engine) -> None:
    init_schema(engine)
    init_schema(engine)  # idempotent
    revision, diffs = revision_and_diffs(engine)
    assert revision == head()
    assert diffs == []  # a model changed without a migration fails here


def test_a_database_made_by_create_all_before_migrations_is_adopted(engine: Engine) -> None:
    SQLModel.metadata.create_all(engine)  # what init_schema did before alembic
    with Session(engine) as session:
        session.add(tables.SchemaInfo(id=1, version=SCHEMA_VERSION))
        session.commit()
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE replay_request"))  # a table added since: created on adoption
    init_schema(engine)
    revision, diffs = revision_and_diffs(engine)
    assert revision == head() and diffs == []
    assert "replay_request" in inspect(engine).get_table_names()


def test_processes_starting_together_migrate_one_after_another(database_url: str) -> None:
    engines = [make_engine(database_url) for _ in range(3)]
    errors: list[BaseException] = []

    def start(engine: Engine) -> None:
        try:
            init_schema(engine)
        except BaseException as exc:  # collected: the assertion below names it
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:
        assert errors == []
        assert revision_and_diffs(engines[0]) == (head(), [])
    finally:
        for e in engines:
            e.dispose()


def test_a_populated_database_at_the_first_revision_migrates_forward_without_losing_a_row(engine: Engine) -> None:
    from cloud.db import migrate

    migrate.upgrade(engine, revision="0001")  # a deployment from before the later revisions
    with engine.begin() as connection:
        for i in range(50):
            connection.execute(text(
                "INSERT INTO gateway (id, name, site, provisioned, revoked, created_at, registered_by, last_seen_at, "
                "status, outbox_depth) VALUES (:id, :name, 'depot', :p, false, :t, 'ingest', :t, 'online', :d)"),
                {"id": f"gw-{i}", "name": f"Gateway {i}", "p": i % 2 == 0, "t": 1_700_000_000_000 + i,
                 "d": 10 ** 12 + i})
    init_schema(engine)  # what the new version's API does at start
    revision, diffs = revision_and_diffs(engine)
    assert revision == head() and diffs == []
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT id, outbox_depth, status_session, last_heard_at FROM gateway "
                                       "ORDER BY outbox_depth")).all()
    assert [(r[0], r[1]) for r in rows] == [(f"gw-{i}", 10 ** 12 + i) for i in range(50)]
    assert all(r[2] is None and r[3] is None for r in rows)  # the new columns arrive empty, nothing invented
