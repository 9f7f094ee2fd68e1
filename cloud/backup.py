"""`coldwatch backup` / `coldwatch restore`: every store of the cloud into one folder and back.

- SQL (SQLite or PostgreSQL): a logical dump, one JSON-lines file per table, read in one transaction, with the
  schema revision it was taken at. A restore migrates an empty database to that revision, inserts the rows and
  migrates on to this code's head: an old backup restores into a newer coldwatch, and a SQLite backup into
  PostgreSQL (how a deployment moves from one to the other).
- InfluxDB: every point of every measurement as line protocol (gzip), a day at a time, through the same v1 HTTP API
  ingest writes to (InfluxDB 1.x, and 2.x/3.x with a DBRP mapping); field types from `SHOW FIELD KEYS`.
- The model registry folder and the delivered shipments' signed records, file by file with their SHA-256, and the
  records signing key (kept 0600; without it, records made after a restore would be signed by a new key).

`backup.json` lists what was written (rows per table, points per measurement, files); a restore checks its counts
against it. The fleet's signing key is not a cloud setting and is not included (docs/deploy.md).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from sqlalchemy import MetaData, Table, func, inspect, select, text
from sqlalchemy.engine import Connection, Engine

from cloud.config import Settings
from cloud.db import migrate
from cloud.db.engine import init_schema, make_engine
from cloud.tsdb.influx import InfluxClient, influx_from_settings, quote_ident
from cloud.tsdb.lineprotocol import escape_measurement, escape_tag, format_float, format_int

FORMAT: Final = 1
DAY_MS: Final = 86_400_000
WRITE_BATCH: Final = 5000
RECORD_KEY_NAME: Final = "record-signing.pem"
SKIPPED_TABLES: Final = frozenset({"alembic_version"})  # the migration state: recreated by migrating


class BackupError(Exception):
    """The backup or restore cannot go on; the message says what to do."""


@dataclass
class Summary:
    """What `backup.json` records and what a restore must find again."""

    format: int = FORMAT
    created_at_ms: int = 0
    sql_dialect: str = ""
    sql_revision: str = ""
    tables: dict[str, int] = field(default_factory=dict)
    influx_database: str = ""
    measurements: dict[str, int] = field(default_factory=dict)
    registry: dict[str, str] = field(default_factory=dict)  # relative path → sha256
    records: dict[str, str] = field(default_factory=dict)  # shipment records: relative path → sha256
    record_key: str = ""  # sha256 of the records signing key ("" when none had been made)


def _influx(settings: Settings, timeout_s: float = 120.0) -> InfluxClient:
    return influx_from_settings(settings, timeout_s=timeout_s)


def backup(settings: Settings, out: Path) -> Summary:
    """Write SQL, InfluxDB, the registry, the shipment records and their key into `out` (a new or empty folder)."""
    if out.exists() and any(out.iterdir()):
        raise BackupError(f"{out} is not empty: back up into a new folder")
    out.mkdir(parents=True, exist_ok=True)
    summary = Summary(created_at_ms=int(time.time() * 1000))
    engine = make_engine(settings.database_url)
    try:
        _dump_sql(engine, out / "sql", summary)
    finally:
        engine.dispose()
    with _influx(settings) as influx:
        _dump_influx(influx, out / "influx", summary)
    _copy_tree(Path(settings.models_dir), out / "registry", summary.registry)
    _copy_tree(Path(settings.records_dir), out / "records", summary.records)
    key = Path(settings.record_signing_key)
    if key.is_file():
        summary.record_key = _copy_key(key, out / "keys" / RECORD_KEY_NAME)
    (out / "backup.json").write_text(json.dumps(summary.__dict__, indent=2, sort_keys=True) + "\n")
    return summary


def restore(settings: Settings, source: Path) -> Summary:
    """Load a backup into empty stores (an empty SQL database, a missing or empty InfluxDB database, empty
    registry and records folders), then check every count against `backup.json`."""
    try:
        summary = Summary(**json.loads((source / "backup.json").read_text()))
    except (OSError, ValueError, TypeError) as exc:
        raise BackupError(f"{source} is not a coldwatch backup (backup.json: {exc})") from None
    if summary.format != FORMAT:
        raise BackupError(f"backup format {summary.format} is not {FORMAT}")
    registry, records, key = Path(settings.models_dir), Path(settings.records_dir), Path(settings.record_signing_key)
    for name, folder in (("registry", registry), ("records", records)):
        if folder.exists() and any(folder.iterdir()):
            raise BackupError(f"the {name} folder {folder} is not empty: restore into an empty one")
    if summary.record_key and key.is_file() and _sha256(key) != summary.record_key:
        raise BackupError(f"{key} holds another records signing key: move it away to restore the backup's")
    engine = make_engine(settings.database_url)
    try:
        _load_sql(engine, source / "sql", summary)
    finally:
        engine.dispose()
    with _influx(settings) as influx:
        _load_influx(influx, source / "influx", summary)
    copied: dict[str, str] = {}
    _copy_tree(source / "registry", registry, copied)
    if copied != summary.registry:
        raise BackupError("the registry files restored differ from backup.json")
    copied = {}
    _copy_tree(source / "records", records, copied)
    if copied != summary.records:
        raise BackupError("the shipment records restored differ from backup.json")
    if summary.record_key and not key.is_file() and _copy_key(source / "keys" / RECORD_KEY_NAME, key) != \
            summary.record_key:
        raise BackupError("the records signing key restored differs from backup.json")
    return summary


# -- SQL ---------------------------------------------------------------------------------------------------------

def _revision(connection: Connection) -> str:
    return str(connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one())


def _dump_sql(engine: Engine, folder: Path, summary: Summary) -> None:
    folder.mkdir()
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":  # one snapshot for every table
            connection.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        summary.sql_dialect, summary.sql_revision = connection.dialect.name, _revision(connection)
        metadata = MetaData()
        metadata.reflect(bind=connection)
        for table in metadata.sorted_tables:
            if table.name in SKIPPED_TABLES:
                continue
            order = list(table.primary_key.columns) or list(table.columns)
            count = 0
            with (folder / f"{table.name}.jsonl").open("w") as f:
                for row in connection.execute(select(table).order_by(*order)).mappings():
                    f.write(json.dumps(dict(row), sort_keys=True) + "\n")
                    count += 1
            summary.tables[table.name] = count


def _load_sql(engine: Engine, folder: Path, summary: Summary) -> None:
    with engine.connect() as connection:
        names = set(inspect(connection).get_table_names()) - SKIPPED_TABLES
        for name in sorted(names):
            if connection.execute(select(func.count()).select_from(Table(name, MetaData(),
                                                                         autoload_with=connection))).scalar():
                raise BackupError(f"the SQL database is not empty (table {name} has rows): restore into a new one "
                                  "(one that no coldwatch process has started on either: its schema must be older "
                                  "than or at the backup's revision)")
    migrate.upgrade(engine, revision=summary.sql_revision)  # the schema the rows were taken from
    with engine.begin() as connection:
        metadata = MetaData()
        metadata.reflect(bind=connection)
        for table in metadata.sorted_tables:
            if table.name not in summary.tables:
                continue
            rows = list(_jsonl(folder / f"{table.name}.jsonl"))
            # A column referring to its own table (a notification folded into a later summary) may point at a row
            # inserted after it: insert with it empty, then set it.
            own = [c.name for c in table.columns if any(fk.column.table.name == table.name for fk in c.foreign_keys)]
            first_pass = [{k: (None if k in own else v) for k, v in row.items()} for row in rows] if own else rows
            for start in range(0, len(first_pass), 1000):
                connection.execute(table.insert(), first_pass[start:start + 1000])
            key = list(table.primary_key.columns)
            for row in rows if own and len(key) == 1 else []:
                values = {c: row[c] for c in own if row.get(c) is not None}
                if values:
                    connection.execute(table.update().where(key[0] == row[key[0].name]).values(**values))
            if len(rows) != summary.tables[table.name]:
                raise BackupError(f"{table.name}: {len(rows)} rows in the backup, backup.json says "
                                  f"{summary.tables[table.name]}")
            if connection.dialect.name == "postgresql":
                _advance_sequences(connection, table)
    init_schema(engine)  # on to this code's newest revision


def _advance_sequences(connection: Connection, table: Table) -> None:
    """Rows were inserted with their ids: move each serial column's sequence past them."""
    quote = connection.dialect.identifier_preparer.quote
    for column in table.primary_key.columns:
        sequence = connection.execute(text("SELECT pg_get_serial_sequence(:t, :c)"),
                                      {"t": table.name, "c": column.name}).scalar()
        if sequence:
            column_name, table_name = quote(column.name), quote(table.name)  # quoted by the dialect
            connection.execute(text(f"SELECT setval(:s, COALESCE((SELECT MAX({column_name}) FROM {table_name}), 1), "  # noqa: S608
                                    f"(SELECT COUNT(*) > 0 FROM {table_name}))"),
                               {"s": sequence})


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open() as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


# -- InfluxDB ----------------------------------------------------------------------------------------------------

def _field_types(influx: InfluxClient, measurement: str) -> dict[str, str]:
    series = influx.query(f"SHOW FIELD KEYS FROM {quote_ident(measurement)}")
    return {row[0]: row[1] for s in series for row in s.values}


def _bounds(influx: InfluxClient, measurement: str, field_name: str) -> tuple[int, int] | None:
    def first(order: str) -> int | None:
        query = f"SELECT {quote_ident(field_name)} FROM {quote_ident(measurement)} ORDER BY time {order} LIMIT 1"  # noqa: S608
        series = influx.query(query)
        return int(series[0].values[0][0]) if series and series[0].values else None

    lo, hi = first("ASC"), first("DESC")
    return None if lo is None or hi is None else (lo, hi)


def _value(value: Any, kind: str) -> str:
    if kind == "float":
        return format_float(float(value))
    if kind == "integer":
        return format_int(int(value))
    if kind == "boolean":
        return "true" if value else "false"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dump_influx(influx: InfluxClient, folder: Path, summary: Summary) -> None:
    folder.mkdir()
    summary.influx_database = influx.database
    if not influx.database_exists():
        return
    measurements = [row[0] for s in influx.query("SHOW MEASUREMENTS") for row in s.values]
    for measurement in measurements:
        types = _field_types(influx, measurement)
        # every field: a point carries only some of them (a reading has an anomaly score only once scored)
        spans = [b for name in types if (b := _bounds(influx, measurement, name)) is not None]
        bounds = (min(lo for lo, _ in spans), max(hi for _, hi in spans)) if spans else None
        count = 0
        with gzip.open(folder / f"{measurement}.lp.gz", "wt") as f:
            for lo in range(bounds[0] - bounds[0] % DAY_MS, bounds[1] + 1, DAY_MS) if bounds else ():
                query = f"SELECT * FROM {quote_ident(measurement)} WHERE time >= $lo AND time < $hi GROUP BY *"  # noqa: S608
                series = influx.query(query, {"lo": lo * 1_000_000, "hi": (lo + DAY_MS) * 1_000_000})  # ns
                for s in series:
                    tags = "".join(f",{escape_tag(k, 'tag key')}={escape_tag(v)}" for k, v in sorted(s.tags.items())
                                   if v)
                    for row in s.values:
                        fields = ",".join(f"{escape_tag(c, 'field key')}={_value(v, types[c])}"
                                          for c, v in zip(s.columns[1:], row[1:], strict=True) if v is not None)
                        if fields:
                            f.write(f"{escape_measurement(measurement)}{tags} {fields} {int(row[0])}\n")
                            count += 1
        summary.measurements[measurement] = count


def _load_influx(influx: InfluxClient, folder: Path, summary: Summary) -> None:
    influx.ensure_database(create=True)
    for measurement, expected in summary.measurements.items():
        if _field_types(influx, measurement):
            raise BackupError(f"InfluxDB database {influx.database} already holds {measurement}: restore into a new "
                              "database (COLDWATCH_INFLUX_DB) or drop it first")
        written = 0
        batch: list[str] = []
        with gzip.open(folder / f"{measurement}.lp.gz", "rt") as f:
            for line in f:
                batch.append(line.rstrip("\n"))
                if len(batch) >= WRITE_BATCH:
                    influx.write(batch)
                    written, batch = written + len(batch), []
        influx.write(batch)
        written += len(batch)
        if written != expected:
            raise BackupError(f"{measurement}: {written} points in the backup, backup.json says {expected}")


# -- files -------------------------------------------------------------------------------------------------------

def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _copy_key(source: Path, target: Path) -> str:
    """Copy a private key, readable by its owner only; its SHA-256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(source.read_bytes())
    return _sha256(target)


def _copy_tree(source: Path, target: Path, hashes: dict[str, str]) -> None:
    """Copy every file under `source` to `target` (made if missing), recording each one's SHA-256."""
    target.mkdir(parents=True, exist_ok=True)
    if not source.is_dir():
        return
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        relative = path.relative_to(source)
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target / relative)
        hashes[relative.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
