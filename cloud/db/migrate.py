"""Brings a database to the newest schema revision with alembic (cloud/db/migrations); `init_schema` calls it."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

MIGRATIONS: Final = Path(__file__).resolve().parent / "migrations"
BASELINE: Final = "0001"  # the schema `create_all` made before migrations existed (schema_info version 1)
_PG_LOCK_KEY: Final = 0x636F6C64  # "cold": one process migrates at a time; the others then find nothing to do


def alembic_config(connection: Connection) -> Config:
    """An alembic Config that runs on `connection` (no URL, no alembic.ini)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate to head in one transaction. On SQLite the transaction is BEGIN IMMEDIATE and on PostgreSQL it
    holds an advisory lock, so the API and the ingest workers starting together migrate one after another."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        names = set(inspect(connection).get_table_names())
        config = alembic_config(connection)
        if "alembic_version" not in names and "schema_info" in names:
            # Made by create_all before migrations existed: complete it as create_all did, then it is the baseline.
            SQLModel.metadata.create_all(connection)
            command.stamp(config, BASELINE)
        command.upgrade(config, revision)
