"""The dose log's SQLite file: opening it (read-only where it cannot be written), creating or
upgrading its tables, the quick check that refuses a damaged file, and its transactions.

WAL mode with `synchronous=NORMAL` and a busy timeout, so several livctl processes share one file
and readers never block a session; every record is its own write transaction, taken with the write
lock up front (BEGIN IMMEDIATE).
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from livctl.errors import LogError
from livctl.records.doselog import schema
from livctl.records.doselog.chain import describe_record, hash_matches

DB_ERRORS = (sqlite3.Error, UnicodeDecodeError)
"""What reading a damaged file can raise: SQLite's errors, and a schema or error message whose
damaged bytes are no longer UTF-8."""
BUSY_TIMEOUT_S = 30.0
PAGE_SIZE = 1024


class LogFile:
    """A dose log's open SQLite connection: created, upgraded and checked for damage as it is
    opened, read-only when the file cannot be written here, and the one place its transactions
    are taken."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True, check: bool = True):
        """Open (with `create`: or create) the log at `path`; `check`: `check_damage()` before the
        first read or append. LogError (one line) when it cannot be opened or is no usable log."""
        self.path = Path(path)
        self.read_only = False
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            info = None
        except OSError as exc:
            raise LogError(f"cannot open the dose log {self.path}: {reason(exc)}; choose another --log PATH") from None
        if info is None and not create:
            raise LogError(f"no dose log at {self.path}; run a session first or pass --log PATH")
        if info is not None and not stat.S_ISREG(info.st_mode):
            raise LogError(f"the dose log {self.path} is not a regular file; choose another --log PATH")
        try:
            if info is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            elif _writable(self.path):
                self.db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            else:
                self.read_only = True
                self.db = _connect_read_only(self.path)
        except (OSError, *DB_ERRORS) as exc:
            raise LogError(f"cannot open the dose log {self.path}: {reason(exc)}; choose another --log PATH") from None
        self._checked = not check
        try:
            self._prepare()
        except DB_ERRORS as exc:
            self.db.close()
            raise LogError(f"{self.path} is not a usable dose log: {reason(exc)}") from None
        except LogError:
            self.db.close()
            raise

    def _prepare(self) -> None:
        db = self.db
        db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > schema.SCHEMA_VERSION:
            raise LogError(
                f"{self.path} was written by a newer livctl (log schema {version}, this livctl reads "
                f"up to {schema.SCHEMA_VERSION}); upgrade livctl"
            )
        if version == 1:
            raise LogError(
                f"{self.path} was written by livctl 0.1 (log schema {version}, without a hash chain); "
                "this livctl keeps it as it is and writes new logs only: pass another --log PATH"
            )
        if version == 0:
            tables = db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
            if tables:
                raise LogError(f"{self.path} is an SQLite file but not a livctl dose log; choose another --log PATH")
            # Every record is its own transaction, and a commit copies each page it dirtied (the
            # table's last leaf, the chain head) whole into the WAL: small pages make the
            # per-window append about a quarter cheaper than SQLite's default 4 KiB.
            db.execute(f"PRAGMA page_size = {PAGE_SIZE}")
            db.execute("PRAGMA journal_mode = WAL")
            with self.write():
                if db.execute("PRAGMA user_version").fetchone()[0] == 0:
                    schema.create(db)
        elif version < schema.SCHEMA_VERSION:
            self._upgrade()
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")

    def _upgrade(self) -> None:
        """Bring a log of an older schema up to this one (`schema.upgrade`); a log that cannot be
        written (a read-only copy) is read as it is."""
        if self.read_only:
            return
        try:
            with self.write():
                schema.upgrade(self.db)
        except sqlite3.OperationalError as exc:
            if "readonly" not in str(exc) and "read-only" not in str(exc):
                raise

    def check_damage(self) -> None:
        """The quick check run whenever the log is opened: LogError (one line) when the file is
        damaged or its chain head is not its last record as written.

        Two parts, on one snapshot: SQLite's `PRAGMA quick_check` (every page of every b-tree is
        read and its structure checked: a damaged page anywhere is found, not only on the pages a
        command happens to read), and the chain head's own record (it exists, it is the last one,
        its stored hash is the head's and its content hashes to it). The full chain walk is
        `verify()`. Costs about a second per 300 MB of log (docs/doselog.md)."""
        db = self.db
        try:
            db.execute("BEGIN")
            try:
                problem = self._damage()
            finally:
                db.execute("ROLLBACK")
        except DB_ERRORS as exc:
            problem = f"SQLite cannot read it ({reason(exc)})"
        self._checked = problem is None
        if problem is not None:
            raise LogError(
                f"{self.path} is damaged ({problem}); livctl neither reads nor appends to a damaged log: keep it "
                "as it is for inspection (`livctl log verify`) and continue in a new log"
            )

    def _damage(self) -> str | None:
        db = self.db
        found = db.execute("PRAGMA quick_check").fetchone()[0]
        if found != "ok":
            return f"SQLite finds {one_line(found)}"
        if db.execute("PRAGMA user_version").fetchone()[0] == 0:
            return None  # being created by another process: nothing to check yet
        head_seq, head_hash = db.execute("SELECT seq, hash FROM chain_head").fetchone()
        tables = schema.present_tables(db)  # a log of an older schema, read as it is, lacks the tables added since
        last = max(db.execute(f"SELECT coalesce(max(seq), 0) FROM {table}").fetchone()[0] for table in tables)
        if last != head_seq:
            return f"its chain head says record {head_seq} is the last, but the last record is {last}"
        if head_seq == 0:
            return None
        for table in tables:
            columns = schema.CHAINED[table]
            # a log of an older schema (not yet upgraded) lacks the added columns: they read as NULL
            present = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
            names = ", ".join(name if name in present else "NULL" for name, _ in columns)
            row = db.execute(f"SELECT prev_hash, hash, {names} FROM {table} WHERE seq = ?", (head_seq,)).fetchone()
            if row is not None:
                if row[1] != head_hash or not hash_matches(table, head_seq, row[0], row[2:], row[1]):
                    return f"its last record ({head_seq}, {describe_record(table, row[2:])}) does not match the chain head"
                return None
        return f"its last record ({head_seq}) is missing"

    def check_writable(self) -> None:
        """LogError (one line) when this log cannot be written here: before anything else is made
        for a record (a session's raw-signal folder), as before any append."""
        if self.read_only:
            raise LogError(
                f"the dose log {self.path} cannot be written here (read-only file, folder or medium): it can be "
                "read and verified only; nothing was written"
            )

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken with the write lock up front (BEGIN IMMEDIATE)."""
        self.check_writable()
        if not self._checked:
            self.check_damage()
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        else:
            db.execute("COMMIT")

    @contextmanager
    def appending(self) -> Iterator[sqlite3.Connection]:
        """`write()` for appending records: SQLite's errors become one line (LogError) naming the log."""
        try:
            with self.write() as db:
                yield db
        except DB_ERRORS as exc:
            raise LogError(f"cannot write to the dose log {self.path}: {reason(exc)}") from None

    def query(self, sql: str, params: Sequence) -> list[tuple]:
        """All rows of one query; LogError (one line) when the file cannot be read."""
        if not self._checked:
            self.check_damage()
        try:
            return self.db.execute(sql, params).fetchall()
        except DB_ERRORS as exc:
            raise LogError(f"cannot read the dose log {self.path}: {reason(exc)}") from None

    def close(self) -> None:
        self.db.close()


def _writable(path: Path) -> bool:
    """Whether SQLite may write the log and its WAL and shared-memory files beside it."""
    return os.access(path, os.W_OK) and os.access(path.parent if str(path.parent) else Path("."), os.W_OK | os.X_OK)


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection to a log that cannot be written here. A WAL database needs its
    shared-memory file: read-only, SQLite uses one that exists; where none exists and none can be
    made (a read-only folder after a clean close, which also leaves no WAL to miss), the file is
    opened as immutable."""
    from urllib.parse import quote

    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    db = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError:
        db.close()
        if Path(f"{path}-wal").exists():
            raise
    return sqlite3.connect(uri + "&immutable=1", uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)


def lenient_text(data: bytes) -> str:
    """TEXT as verify reads it: bytes that are not UTF-8 (a damaged record) decode to U+FFFD and
    so no longer hash as written, instead of stopping the walk."""
    return data.decode("utf-8", "replace")


def one_line(report: str) -> str:
    """SQLite's integrity report ("*** in database main ***\nPage 230: ...") as one line."""
    return " ".join(report.replace("*** in database main ***", "").split())


def reason(exc: BaseException) -> str:
    """An error as a clause of a one-line message (an OSError's strerror, lower case)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__
