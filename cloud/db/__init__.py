"""SQL storage (SQLModel): engine from COLDWATCH_DATABASE_URL, the tables, schema creation."""
