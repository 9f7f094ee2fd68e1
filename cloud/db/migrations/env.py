"""Alembic environment: runs on the connection `init_schema` hands over (never a URL of its own), with batch
mode so SQLite can alter tables, against every table registered in `cloud.db.tables`."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from cloud.db import tables  # noqa: F401 (registers every table on SQLModel.metadata)

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=SQLModel.metadata, render_as_batch=True,
                  compare_type=True)
with context.begin_transaction():
    context.run_migrations()
