"""The dose log's stored form: its chained tables and their columns in hashing order, the SQL that
makes them (and adds what later schemas added), and values as they are stored.

Every chained table starts with seq, prev_hash and hash (the chain, see `chain`); CHAINED lists the
columns after them. A column's position here is its position in a record's canonical form, so
nothing here may be reordered, and a new column goes last in its table (ADDED_COLUMNS).
"""

from __future__ import annotations

import math
import sqlite3

SCHEMA_VERSION = 4
"""3 added `sessions.practice` (ADDED_COLUMNS), 4 the `archives` table (a session's raw signal,
ADDED_TABLES); a log of an older schema gains them when opened, with no record changed."""
GENESIS_HASH = bytes(32)
"""The `prev_hash` of the first record."""

# Each chained table's columns in hashing order, with their SQL declarations. seq, prev_hash and
# hash come first in every table and are not listed here.
CHAINED: dict[str, tuple[tuple[str, str], ...]] = {
    "sessions": (
        ("session_id", "TEXT NOT NULL UNIQUE"),
        ("started_utc", "TEXT NOT NULL"),
        ("device", "TEXT NOT NULL"),
        ("platform_id", "TEXT NOT NULL"),
        ("simulated", "INTEGER NOT NULL"),
        ("time_base", "TEXT NOT NULL"),
        ("subject", "TEXT"),
        ("operator", "TEXT"),
        ("calibration_id", "TEXT"),
        ("preset", "TEXT"),
        ("frequency_hz", "REAL NOT NULL"),
        ("peak_g", "REAL NOT NULL"),
        ("duration_s", "REAL NOT NULL"),
        ("ramp_s", "REAL NOT NULL"),
        ("tol_frequency_hz", "REAL NOT NULL"),
        ("tol_accel_fraction", "REAL NOT NULL"),
        ("max_thd_fraction", "REAL NOT NULL"),
        ("min_in_spec_fraction", "REAL NOT NULL"),
        ("window_s", "REAL NOT NULL"),
        ("livctl_version", "TEXT NOT NULL"),
        ("host", "TEXT NOT NULL"),
        ("pid", "INTEGER NOT NULL"),
        ("regimen", "TEXT"),
        ("deviation", "TEXT"),
        ("override_reason", "TEXT"),
        ("practice", "INTEGER"),
    ),
    "windows": (
        ("session_id", "TEXT NOT NULL REFERENCES sessions(session_id)"),
        ("idx", "INTEGER NOT NULL"),
        ("phase", "TEXT NOT NULL"),
        ("t_s", "REAL NOT NULL"),
        ("duration_s", "REAL NOT NULL"),
        ("drive", "REAL NOT NULL"),
        ("frequency_hz", "REAL"),
        ("peak_g", "REAL"),
        ("rms_g", "REAL"),
        ("thd_percent", "REAL"),
        ("snr_db", "REAL"),
        ("sinad_db", "REAL"),
        ("dc_g", "REAL"),
        ("axis", "TEXT"),
        ("off_axis_percent", "REAL"),
        ("in_spec", "INTEGER NOT NULL"),
        ("reasons", "TEXT NOT NULL"),
    ),
    "session_ends": (
        ("session_id", "TEXT NOT NULL UNIQUE REFERENCES sessions(session_id)"),
        ("ended_utc", "TEXT NOT NULL"),
        ("status", "TEXT NOT NULL"),
        ("reason", "TEXT"),
        ("delivered_s", "REAL NOT NULL"),
        ("in_spec_s", "REAL NOT NULL"),
        ("in_spec_fraction", "REAL"),
        ("mean_frequency_hz", "REAL"),
        ("mean_peak_g", "REAL"),
        ("mean_thd_percent", "REAL"),
        ("in_spec", "INTEGER NOT NULL"),
        ("window_count", "INTEGER NOT NULL"),
    ),
    "archives": (
        ("session_id", "TEXT NOT NULL UNIQUE REFERENCES sessions(session_id)"),
        ("file", "TEXT NOT NULL"),
        ("sha256", "TEXT NOT NULL"),
        ("bytes", "INTEGER NOT NULL"),
        ("samples", "INTEGER NOT NULL"),
        ("complete", "INTEGER NOT NULL"),
        ("note", "TEXT"),
    ),
    "subjects": (
        ("subject_id", "TEXT NOT NULL UNIQUE"),
        ("kind", "TEXT NOT NULL"),
        ("note", "TEXT"),
        ("added_utc", "TEXT NOT NULL"),
        ("operator", "TEXT"),
    ),
    "assignments": (
        ("subject_id", "TEXT NOT NULL REFERENCES subjects(subject_id)"),
        ("assigned_utc", "TEXT NOT NULL"),
        ("operator", "TEXT"),
        ("regimen_name", "TEXT NOT NULL"),
        ("regimen", "TEXT NOT NULL"),
        ("source", "TEXT NOT NULL"),
    ),
}

ADDED_COLUMNS: dict[str, tuple[tuple[str, int], ...]] = {"sessions": (("practice", 3),)}
"""Columns added after schema 2, last in their table, with the schema that added them. They are
NULL in records written before them and are then left out of the canonical form (a trailing NULL
of an added column is not hashed), so older records keep their hashes and older logs verify."""
ADDED_TABLES: dict[str, int] = {"archives": 4}
"""Chained tables added after schema 2, with the schema that added them (created empty on upgrade)."""

SESSION_COLUMNS = tuple(name for name, _ in CHAINED["sessions"])
WINDOW_COLUMNS = tuple(name for name, _ in CHAINED["windows"])
END_COLUMNS = tuple(name for name, _ in CHAINED["session_ends"])
SUBJECT_COLUMNS = tuple(name for name, _ in CHAINED["subjects"])
ASSIGNMENT_COLUMNS = tuple(name for name, _ in CHAINED["assignments"])
ARCHIVE_COLUMNS = tuple(name for name, _ in CHAINED["archives"])

STATUSES = ("completed", "aborted", "interrupted")
SUBJECT_KINDS = ("human", "animal", "cells")


def create(db: sqlite3.Connection) -> None:
    """Make a new log's tables, indexes and triggers and set its schema version (inside the
    caller's write transaction)."""
    statements = [
        "CREATE TABLE chain_head (only INTEGER PRIMARY KEY CHECK (only = 1), seq INTEGER NOT NULL, hash BLOB NOT NULL)",
        "INSERT INTO chain_head VALUES (1, 0, x'" + GENESIS_HASH.hex() + "')",
        "CREATE TRIGGER chain_head_kept BEFORE DELETE ON chain_head "
        "BEGIN SELECT RAISE(ABORT, 'the dose log is append-only'); END",
    ]
    for table in CHAINED:
        statements += _table_schema(table)
    statements += [
        "CREATE INDEX sessions_started ON sessions(started_utc)",
        "CREATE INDEX sessions_subject ON sessions(subject, started_utc)",
        "CREATE INDEX assignments_subject ON assignments(subject_id)",
    ]
    for statement in statements:
        db.execute(statement)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def upgrade(db: sqlite3.Connection) -> None:
    """Add the columns and tables of later schemas to a log of an older one and set its schema
    version (inside the caller's write transaction). No record changes: see ADDED_COLUMNS and
    ADDED_TABLES."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    for table, columns in ADDED_COLUMNS.items():
        declared = dict(CHAINED[table])
        present = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
        for name, added_in in columns:
            if version < added_in and name not in present:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {declared[name]}")
    for table, added_in in ADDED_TABLES.items():
        if version < added_in and table not in tables:
            for statement in _table_schema(table):
                db.execute(statement)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _table_schema(table: str) -> list[str]:
    """One chained table and its append-only triggers."""
    body = ", ".join(f"{name} {decl}" for name, decl in CHAINED[table])
    statements = [f"CREATE TABLE {table} (seq INTEGER PRIMARY KEY, prev_hash BLOB NOT NULL, hash BLOB NOT NULL, {body})"]
    for action in ("UPDATE", "DELETE"):
        statements.append(
            f"CREATE TRIGGER {table}_append_only_{action.lower()} BEFORE {action} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, 'the dose log is append-only: {table} rows cannot be changed'); END"
        )
    return statements


def present_tables(db: sqlite3.Connection) -> list[str]:
    """The chained tables this log holds (a read-only log of schema 2 has no archives table)."""
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return [t for t in CHAINED if t in names]


def _real(value):
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value  # SQLite stores NaN as NULL: hash what is read back


def _integer(value):
    return None if value is None else int(value)


def _text(value):
    return None if value is None else str(value)


_COERCE = {"REAL": _real, "INTEGER": _integer, "TEXT": _text}
_COERCERS = {table: tuple(_COERCE[decl.split()[0]] for _, decl in columns) for table, columns in CHAINED.items()}
INSERT_SQL = {
    table: f"INSERT INTO {table} (seq, prev_hash, hash, {', '.join(n for n, _ in columns)}) "
    f"VALUES ({', '.join('?' * (len(columns) + 3))})"
    for table, columns in CHAINED.items()
}
"""Each chained table's INSERT: seq, prev_hash, hash, then its columns in hashing order."""


def stored_values(table: str, row: dict) -> list:
    """A record's column values in hashing order, as SQLite will store them and give them back
    (a missing column is NULL, a NaN is NULL), so that the hash is of what is read back."""
    return [coerce(row.get(name)) for (name, _), coerce in zip(CHAINED[table], _COERCERS[table])]


def iso_utc(moment) -> str:
    """A UTC timestamp as the log writes it: 2026-03-02T09:00:00.000Z."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

