"""Alembic migrations of the cloud's SQL schema (SQLite and PostgreSQL); run by `init_schema`."""
