"""The dose log's hash chain: a record's canonical form and hash, appending a record at the head of
the chain, and a record named in words.

Every record carries its position `seq` (1, 2, 3, ... across all chained tables), the hash of the
record before it (`prev_hash`, GENESIS_HASH for the first) and its own hash, SHA-256 of its
canonical form. `chain_head` holds the last record's seq and hash. A study server hashes and names
a station's records with the same functions.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Sequence

from livctl.records.doselog.schema import ADDED_COLUMNS, INSERT_SQL, stored_values

_ENCODER = json.JSONEncoder(separators=(",", ":"))


def canonical_record(table: str, seq: int, prev_hash: bytes, values: Sequence) -> bytes:
    """The bytes a record's hash is taken of: a compact JSON array

        [table, seq, prev_hash as lowercase hex, column values in schema order...]

    (trailing NULLs of ADDED_COLUMNS left out) with Python's `json` rules (ASCII, shortest round-trip floats, `null` for NULL, `Infinity`).
    """
    values = list(values)
    for _ in ADDED_COLUMNS.get(table, ()):  # trailing added columns still NULL: as written before them
        if values and values[-1] is None:
            values.pop()
        else:
            break
    return _ENCODER.encode([table, seq, prev_hash.hex(), *values]).encode("ascii")


def record_hash(table: str, seq: int, prev_hash: bytes, values: Sequence) -> bytes:
    """SHA-256 of the record's canonical form (32 bytes)."""
    return hashlib.sha256(canonical_record(table, seq, prev_hash, values)).digest()


def hash_matches(table: str, seq: int, prev_hash, values: Sequence, stored) -> bool:
    """Whether a record as read back hashes to its stored hash (False for a value livctl never
    writes, such as a BLOB where a hash or a number belongs)."""
    if not (isinstance(prev_hash, bytes) and isinstance(stored, bytes)):
        return False
    try:
        return record_hash(table, seq, prev_hash, values) == stored
    except (TypeError, ValueError):  # a value livctl never writes (a BLOB, say): not as written
        return False


def append_record(db: sqlite3.Connection, table: str, row: dict) -> None:
    """Add one record at the head of the chain: read the head, hash the record, insert it, move the
    head. The caller holds the write lock (BEGIN IMMEDIATE), so writers extend the chain in turn."""
    values = stored_values(table, row)
    seq, prev_hash = db.execute("SELECT seq, hash FROM chain_head").fetchone()
    seq += 1
    digest = record_hash(table, seq, prev_hash, values)
    db.execute(INSERT_SQL[table], (seq, prev_hash, digest, *values))
    db.execute("UPDATE chain_head SET seq = ?, hash = ?", (seq, digest))


def describe_record(table: str, values: Sequence) -> str:
    """A record in words, as `livctl log verify` names it (a study server's verify too)."""
    if table == "sessions":
        return f"start of session {values[0]}"
    if table == "windows":
        return f"window {values[1]} of session {values[0]}"
    if table == "session_ends":
        return f"end of session {values[0]}"
    if table == "archives":
        return f"raw-signal archive of session {values[0]}"
    if table == "subjects":
        return f"subject {values[0]}"
    return f"regimen assignment of subject {values[0]}"
