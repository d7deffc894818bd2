"""The dose log: one SQLite file that says what every session delivered, as measured.

Writes are appends only. A session is three kinds of rows: its start (prescription, device,
subject, operator) written before the platform moves, one row per measured window written as the
session goes, and its end (status, reason, delivered seconds, measured summary). Subjects and their
regimen assignments live in the same file. Each row is committed on its own, in WAL mode, so a
crash loses at most the window being measured, and a session with a start but no end is visibly
unfinished. Several processes may write one log: SQLite serialises them (busy timeout) and WAL
keeps readers from blocking writers.

Every row is a link of one hash chain across all tables: it carries its position `seq` (1, 2, 3,
...), the hash of the record before it (`prev_hash`) and its own hash, SHA-256 of its canonical
form (`canonical_record`). The head of the chain (last seq and hash) is kept in `chain_head`. A
record is appended inside BEGIN IMMEDIATE: read the head, insert, move the head, commit; so writers
in several processes extend one chain in turn. `verify()` walks the chain and names the first
record that was changed, removed or moved. Triggers refuse UPDATE and DELETE on every chained
table, so an accidental edit fails loudly; a deliberate one is found by `verify()`.

The stored form (tables, columns, their SQL, schema versions) is the module `schema`; a record's
canonical form, its hash and its append at the head of the chain are the module `chain`.
"""

from __future__ import annotations

import difflib
import heapq
import json
import os
import socket
import sqlite3
import stat
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path

from livctl import __version__
from livctl.clock import utc_now
from livctl.errors import LogError, UsageError
from livctl.records.doselog import schema
from livctl.records.doselog.chain import append_record, canonical_record, describe_record, hash_matches, record_hash
from livctl.records.doselog.schema import (
    ADDED_COLUMNS,
    ADDED_TABLES,
    ARCHIVE_COLUMNS,
    ASSIGNMENT_COLUMNS,
    CHAINED,
    END_COLUMNS,
    GENESIS_HASH,
    SCHEMA_VERSION,
    SESSION_COLUMNS,
    STATUSES,
    SUBJECT_COLUMNS,
    SUBJECT_KINDS,
    WINDOW_COLUMNS,
    iso_utc,
    present_tables,
)

__all__ = [
    "ADDED_COLUMNS", "ADDED_TABLES", "ARCHIVE_COLUMNS", "ASSIGNMENT_COLUMNS", "BUSY_TIMEOUT_S", "END_COLUMNS",
    "GENESIS_HASH", "PAGE_SIZE", "PARALLEL_MIN_RECORDS", "SCHEMA_VERSION", "SESSION_COLUMNS", "STATUSES",
    "SUBJECT_COLUMNS", "SUBJECT_KINDS", "WINDOW_COLUMNS", "ChainCheck", "DoseLog", "SessionStart",
    "UnknownSubject", "canonical_record", "default_log_path", "describe_record", "iso_utc", "record_hash",
    "session_summary",
]

_DB_ERRORS = (sqlite3.Error, UnicodeDecodeError)
"""What reading a damaged file can raise: SQLite's errors, and a schema or error message whose
damaged bytes are no longer UTF-8."""
BUSY_TIMEOUT_S = 30.0
PAGE_SIZE = 1024


def default_log_path() -> Path:
    """The station's log (livctl.records.config): $LIVCTL_LOG, else `log` in the user's or the system's
    configuration file, else the user's data directory ($XDG_DATA_HOME/livctl/doses.sqlite)."""
    from livctl.records.config import load_settings

    return load_settings()["log"]


class UnknownSubject(UsageError):
    """A subject id the log does not hold."""


@dataclass(frozen=True)
class SessionStart:
    """A session's start record: the platform, the people, the prescription and its tolerances, the calibration."""

    device: str
    platform_id: str
    simulated: bool
    time_base: str
    subject: str | None
    operator: str | None
    preset: str | None
    frequency_hz: float
    peak_g: float
    duration_s: float
    ramp_s: float
    tol_frequency_hz: float
    tol_accel_fraction: float
    max_thd_fraction: float
    min_in_spec_fraction: float
    window_s: float
    calibration_id: str | None = None
    regimen: str | None = None
    """The subject's regimen at the start (its name), when the subject has one."""
    deviation: str | None = None
    """What the regimen said against this bout (rest, daily count, signal), when it said anything."""
    override_reason: str | None = None
    """The operator's reason for running a bout the regimen refused."""
    practice: bool = False
    """A practice session on a simulated platform: logged, never counted as dose."""


@dataclass(frozen=True)
class ChainCheck:
    """What `DoseLog.verify()` found."""

    records: int
    """Records walked."""
    head_seq: int
    head_hash: str
    """The chain head's hash (hex): write it down (a report does) to anchor the log."""
    bad_seq: int | None = None
    """The first bad record's position, when the chain is broken."""
    problem: str | None = None
    """One line: which record, and what is wrong with it."""
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "records": self.records,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "bad_seq": self.bad_seq,
            "problem": self.problem,
            "warnings": list(self.warnings),
        }


class DoseLog:
    """An open dose log. Use as a context manager, or call `close()`."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True, check: bool = True):
        """Open (with `create`: or create) the log at `path`.

        With `check` (the default) the file is given `check_damage()` before the first read or
        append: a damaged log is refused before anything is read from it or appended to it.
        `verify()` runs its own, fuller check and reports on a damaged file instead.

        A log that exists but cannot be written here (a read-only folder, file or medium) is opened
        read-only: it can be read and verified, and any append is refused with a one-line error."""
        self.path = Path(path)
        self.read_only = False
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            info = None
        except OSError as exc:
            raise LogError(f"cannot open the dose log {self.path}: {_reason(exc)}; choose another --log PATH") from None
        if info is None and not create:
            raise LogError(f"no dose log at {self.path}; run a session first or pass --log PATH")
        if info is not None and not stat.S_ISREG(info.st_mode):
            raise LogError(f"the dose log {self.path} is not a regular file; choose another --log PATH")
        try:
            if info is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            elif _writable(self.path):
                self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            else:
                self.read_only = True
                self._db = _connect_read_only(self.path)
        except (OSError, *_DB_ERRORS) as exc:
            raise LogError(f"cannot open the dose log {self.path}: {_reason(exc)}; choose another --log PATH") from None
        self._checked = not check
        try:
            self._prepare()
        except _DB_ERRORS as exc:
            self._db.close()
            raise LogError(f"{self.path} is not a usable dose log: {_reason(exc)}") from None
        except LogError:
            self._db.close()
            raise

    def _prepare(self) -> None:
        db = self._db
        db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise LogError(
                f"{self.path} was written by a newer livctl (log schema {version}, this livctl reads "
                f"up to {SCHEMA_VERSION}); upgrade livctl"
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
            with self._write():
                if db.execute("PRAGMA user_version").fetchone()[0] == 0:
                    schema.create(db)
        elif version < SCHEMA_VERSION:
            self._upgrade()
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")

    def _upgrade(self) -> None:
        """Bring a log of an older schema up to this one (`schema.upgrade`); a log that cannot be
        written (a read-only copy) is read as it is."""
        if self.read_only:
            return
        try:
            with self._write():
                schema.upgrade(self._db)
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
        db = self._db
        try:
            db.execute("BEGIN")
            try:
                problem = self._damage()
            finally:
                db.execute("ROLLBACK")
        except _DB_ERRORS as exc:
            problem = f"SQLite cannot read it ({_reason(exc)})"
        self._checked = problem is None
        if problem is not None:
            raise LogError(
                f"{self.path} is damaged ({problem}); livctl neither reads nor appends to a damaged log: keep it "
                "as it is for inspection (`livctl log verify`) and continue in a new log"
            )

    def _damage(self) -> str | None:
        db = self._db
        found = db.execute("PRAGMA quick_check").fetchone()[0]
        if found != "ok":
            return f"SQLite finds {_one_line(found)}"
        if db.execute("PRAGMA user_version").fetchone()[0] == 0:
            return None  # being created by another process: nothing to check yet
        head_seq, head_hash = db.execute("SELECT seq, hash FROM chain_head").fetchone()
        tables = present_tables(db)  # a log of an older schema, read as it is, lacks the tables added since
        last = max(db.execute(f"SELECT coalesce(max(seq), 0) FROM {table}").fetchone()[0] for table in tables)
        if last != head_seq:
            return f"its chain head says record {head_seq} is the last, but the last record is {last}"
        if head_seq == 0:
            return None
        for table in tables:
            columns = CHAINED[table]
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
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken with the write lock up front (BEGIN IMMEDIATE)."""
        self.check_writable()
        if not self._checked:
            self.check_damage()
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        else:
            db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "DoseLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ------------------------------------------------------------------------------

    def start_session(
        self, start: SessionStart, *, admit: Callable[["DoseLog", SessionStart], SessionStart] | None = None
    ) -> str:
        """Append a session's start; returns its id.

        `admit(log, start)`, when given, runs inside the same write transaction before the record
        is written: it reads this log as no other writer can change it, may return the start with
        regimen fields filled in, or raise to refuse the session (nothing is written). Two
        platforms starting a session for one subject at once are thereby checked one after the
        other.
        """
        session_id = "s-" + uuid.uuid4().hex[:12]
        try:
            with self._write():
                if admit is not None:
                    start = admit(self, start)
                row = dict(vars(start))
                row["practice"] = 1 if start.practice else None  # NULL: a dose (as in logs before practice)
                row.update(
                    session_id=session_id,
                    started_utc=iso_utc(utc_now()),
                    livctl_version=__version__,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                )
                self._append_locked("sessions", row)
        except _DB_ERRORS as exc:
            raise self._write_error(exc) from None
        return session_id

    def add_window(self, session_id: str, window: dict) -> None:
        row = dict(window)
        row["session_id"] = session_id
        reasons = row.get("reasons")
        row["reasons"] = json.dumps(list(reasons)) if reasons else "[]"
        self._append("windows", row)

    def end_session(self, session_id: str, end: dict, *, unless_ended: bool = False,
                    archive: dict | None = None) -> bool:
        """Append a session's end. With `unless_ended`, a session that another process ended
        meanwhile is left as it is (False); without, ending a session twice is an error.
        `archive` (file, sha256, bytes, samples, complete, note: `livctl.records.archive.Seal.record()`)
        is chained just before the end, in the same transaction."""
        if end["status"] not in STATUSES:
            raise ValueError(f"unknown status {end['status']!r}")
        row = dict(end)
        row.update(session_id=session_id, ended_utc=iso_utc(utc_now()))
        try:
            with self._write():
                if unless_ended and self._query("SELECT 1 FROM session_ends WHERE session_id = ?", [session_id]):
                    return False
                if archive is not None:
                    self._append_locked("archives", dict(archive, session_id=session_id))
                self._append_locked("session_ends", row)
        except _DB_ERRORS as exc:
            raise self._write_error(exc) from None
        return True

    def add_subject(self, subject_id: str, kind: str, *, note: str | None = None, operator: str | None = None) -> None:
        if kind not in SUBJECT_KINDS:
            raise UsageError(f"unknown subject kind {kind!r}; choose one of: {', '.join(SUBJECT_KINDS)}")
        if not subject_id.strip() or subject_id != subject_id.strip():
            raise UsageError(f"subject id {subject_id!r} must be non-empty, without leading or trailing spaces")
        try:
            with self._write():
                if self._subject_row(subject_id) is not None:
                    raise UsageError(f"subject {subject_id} is already in {self.path}; `livctl subject show {subject_id}`")
                self._append_locked(
                    "subjects",
                    dict(subject_id=subject_id, kind=kind, note=note, added_utc=iso_utc(utc_now()), operator=operator),
                )
        except _DB_ERRORS as exc:
            raise self._write_error(exc) from None

    def assign_regimen(self, subject_id: str, *, name: str, regimen: dict, source: str, operator: str | None) -> None:
        """Append a regimen assignment (the fully resolved regimen as JSON). A later assignment
        takes over from its start date; the earlier ones stay in the record."""
        self.subject(subject_id)
        self._append(
            "assignments",
            dict(subject_id=subject_id, assigned_utc=iso_utc(utc_now()), operator=operator, regimen_name=name,
                 regimen=json.dumps(regimen, sort_keys=True), source=source),
        )

    def _append(self, table: str, row: dict) -> None:
        try:
            with self._write():
                self._append_locked(table, row)
        except _DB_ERRORS as exc:
            raise self._write_error(exc) from None

    def _append_locked(self, table: str, row: dict) -> None:
        """Add one record at the head of the chain. The caller holds the write lock."""
        append_record(self._db, table, row)

    def _write_error(self, exc: sqlite3.Error) -> LogError:
        return LogError(f"cannot write to the dose log {self.path}: {_reason(exc)}")

    # -- reading ------------------------------------------------------------------------------

    def sessions(
        self,
        *,
        limit: int | None = None,
        subjects: Sequence[str] | None = None,
        started_from_utc: str | None = None,
        started_before_utc: str | None = None,
        statuses: Sequence[str] | None = None,
        oldest_first: bool = False,
    ) -> list[dict]:
        """Session summaries, newest first (or oldest first), optionally filtered.

        Times are ISO 8601 UTC strings as the log writes them (`2026-03-02T09:00:00.000Z`);
        `statuses` may include `running` (a start without an end)."""
        where, params = [], []
        if subjects is not None:
            where.append(f"s.subject IN ({', '.join('?' * len(subjects))})")
            params += list(subjects)
        if started_from_utc is not None:
            where.append("s.started_utc >= ?")
            params.append(started_from_utc)
        if started_before_utc is not None:
            where.append("s.started_utc < ?")
            params.append(started_before_utc)
        if statuses is not None:
            where.append(f"coalesce(e.status, 'running') IN ({', '.join('?' * len(statuses))})")
            params += list(statuses)
        sql = _SUMMARY_SQL + (" WHERE " + " AND ".join(where) if where else "")
        order = "ASC" if oldest_first else "DESC"
        sql += f" ORDER BY s.started_utc {order}, s.seq {order}"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [_summary(r) for r in self._query(sql, params)]

    def find_session(self, id_or_prefix: str) -> dict:
        """One session's summary by its id or a unique prefix of it."""
        rows = self._query(_SUMMARY_SQL + " WHERE s.session_id LIKE ? ESCAPE '\\'", [_like_prefix(id_or_prefix)])
        if not rows:
            raise LogError(f"no session {id_or_prefix!r} in {self.path}; `livctl log` lists them")
        if len(rows) > 1:
            raise LogError(f"{id_or_prefix!r} matches {len(rows)} sessions; give more of the id")
        return _summary(rows[0])

    def windows(self, session_id: str) -> list[dict]:
        """A session's windows in order."""
        rows = self._window_rows(session_id, WINDOW_COLUMNS[1:])
        out = []
        for r in rows:
            d = dict(zip(WINDOW_COLUMNS[1:], r))
            d["in_spec"] = bool(d["in_spec"])
            d["reasons"] = json.loads(d["reasons"])
            out.append(d)
        return out

    def window_levels(self, session_id: str) -> list[tuple[float | None, float | None, float]]:
        """(frequency_hz, rms_g, duration_s) of a session's windows while the platform moved, in
        order: what exposure needs. The sensor check's window at rest (pre-check, no drive) is not
        vibration, measured or not."""
        return self._window_rows(session_id, ("frequency_hz", "rms_g", "duration_s"),
                                 "NOT (phase = 'precheck' AND drive = 0)")

    def _window_rows(self, session_id: str, columns: Sequence[str], where: str = "1") -> list[tuple]:
        """A session's windows lie between its start and end records in the chain, so a range of
        seq finds them without an index on windows (one b-tree less to update per window)."""
        bounds = self._query(
            "SELECT s.seq, e.seq FROM sessions s LEFT JOIN session_ends e USING (session_id) WHERE s.session_id = ?",
            [session_id],
        )
        if not bounds:
            return []
        first, end = bounds[0]
        return self._query(
            f"SELECT {', '.join(columns)} FROM windows WHERE seq > ? AND seq < ? AND session_id = ? AND {where} "
            "ORDER BY seq",
            [first, end if end is not None else 2**62, session_id],
        )

    def subjects(self) -> list[dict]:
        """Every subject, in the order they were added, each with its current regimen assignment."""
        rows = self._query(f"SELECT {', '.join(SUBJECT_COLUMNS)} FROM subjects ORDER BY seq", [])
        out = []
        for r in rows:
            d = dict(zip(SUBJECT_COLUMNS, r))
            d["assignments"] = self.assignments(d["subject_id"])
            out.append(d)
        return out

    def has_subjects(self) -> bool:
        return bool(self._query("SELECT 1 FROM subjects LIMIT 1", []))

    def subject(self, subject_id: str) -> dict:
        """One subject with its regimen assignments, oldest first; UnknownSubject when absent."""
        row = self._subject_row(subject_id)
        if row is None:
            known = [r[0] for r in self._query("SELECT subject_id FROM subjects", [])]
            close = difflib.get_close_matches(subject_id, known, n=1)
            hint = f"; did you mean {close[0]}?" if close else "; `livctl subject list` shows them, `livctl subject add` adds one"
            raise UnknownSubject(f"no subject {subject_id!r} in {self.path}{hint}")
        d = dict(zip(SUBJECT_COLUMNS, row))
        d["assignments"] = self.assignments(subject_id)
        return d

    def _subject_row(self, subject_id: str) -> tuple | None:
        rows = self._query(f"SELECT {', '.join(SUBJECT_COLUMNS)} FROM subjects WHERE subject_id = ?", [subject_id])
        return rows[0] if rows else None

    def assignments(self, subject_id: str) -> list[dict]:
        rows = self._query(
            f"SELECT seq, {', '.join(ASSIGNMENT_COLUMNS)} FROM assignments WHERE subject_id = ? ORDER BY seq",
            [subject_id],
        )
        out = []
        for r in rows:
            d = dict(zip(("seq",) + ASSIGNMENT_COLUMNS, r))
            d["regimen"] = json.loads(d["regimen"])
            out.append(d)
        return out

    def archives(self, session_id: str | None = None) -> list[dict]:
        """The sealed raw-signal archives (of one session, or all), each with its record's `seq`."""
        where, params = ("WHERE session_id = ?", [session_id]) if session_id is not None else ("", [])
        if not self._query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'archives'", []):
            return []  # a read-only log of schema 2
        rows = self._query(f"SELECT seq, {', '.join(ARCHIVE_COLUMNS)} FROM archives {where} ORDER BY seq", params)
        out = []
        for r in rows:
            d = dict(zip(("seq",) + ARCHIVE_COLUMNS, r))
            d["complete"] = bool(d["complete"])
            out.append(d)
        return out

    def chain_head(self) -> tuple[int, str]:
        """(seq, hash as hex) of the last record."""
        seq, digest = self._query("SELECT seq, hash FROM chain_head", [])[0]
        return seq, digest.hex()

    def _query(self, sql: str, params: Sequence) -> list[tuple]:
        if not self._checked:
            self.check_damage()
        try:
            return self._db.execute(sql, params).fetchall()
        except _DB_ERRORS as exc:
            raise LogError(f"cannot read the dose log {self.path}: {_reason(exc)}") from None

    # -- verifying ----------------------------------------------------------------------------

    def verify(self, progress: Callable[[int, int], None] | None = None, *, workers: int | None = None) -> ChainCheck:
        """Walk the whole chain in order and report the first record that is not as written.

        Checks, record by record: positions run 1, 2, 3, ... with none missing or repeated; each
        record's content hashes to its stored hash (else it was changed); each record's prev_hash
        is the hash of the record before it (else records were removed or moved); and the chain
        head names the last record (else records were removed from the end). Reads one snapshot
        (writers may go on meanwhile); a broken log is reported, never repaired.

        A large log is checked in stretches by `workers` processes (default: one per CPU for more
        than PARALLEL_MIN_RECORDS records), each stretch's ends then joined. `progress(done, total)`
        is called as the walk goes and with done == total when it is over.
        """
        db = self._db
        db.text_factory = _lenient_text  # text that is not UTF-8 is a changed record, named as such
        try:
            db.execute("BEGIN")
            try:
                return self._verify(progress, workers)
            finally:
                db.execute("ROLLBACK")
                db.text_factory = str
        except _DB_ERRORS as exc:
            raise LogError(f"{self.path} is damaged and cannot be verified: {_reason(exc)}") from None

    def _verify(self, progress: Callable[[int, int], None] | None, workers: int | None) -> ChainCheck:
        db = self._db
        damage = db.execute("PRAGMA quick_check").fetchone()[0]
        if damage != "ok":
            raise LogError(
                f"{self.path} is damaged at the SQLite level ({_one_line(damage)}); keep the file as it is for inspection"
            )
        head_seq, head_hash = db.execute("SELECT seq, hash FROM chain_head").fetchone()
        triggers = db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'").fetchone()[0]
        tables = present_tables(db)
        warnings = []
        if triggers < 2 * len(tables) + 1:
            warnings.append("the append-only triggers were removed from this log")
        total = sum(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in tables)
        if workers is None:
            workers = (os.cpu_count() or 1) if total >= PARALLEL_MIN_RECORDS else 1
        if workers > 1:
            walk = self._walk_in_parallel(workers, head_seq, total, progress)
        else:
            walk = _walk(db, 1, None, GENESIS_HASH, progress, total)
        bad_seq, problem = walk.bad_seq, walk.problem
        if problem is None and (head_seq != walk.last_seq or head_hash != walk.last_hash):
            if head_seq > walk.last_seq:
                bad_seq = walk.last_seq + 1
                missing = f"record {bad_seq} is" if head_seq == bad_seq else f"records {bad_seq}-{head_seq} are"
                problem = f"{missing} missing: removed from the end of the log (its head says {head_seq} records)"
            else:
                bad_seq = head_seq
                problem = (
                    f"the chain head (record {head_seq}) does not match the last record ({walk.last_seq}): "
                    "it was rewritten"
                )
        if progress is not None:
            progress(total, total)
        return ChainCheck(
            records=walk.walked,
            head_seq=head_seq,
            head_hash=head_hash.hex() if isinstance(head_hash, bytes) else str(head_hash),
            bad_seq=bad_seq,
            problem=problem,
            warnings=tuple(warnings),
        )

    def _walk_in_parallel(self, workers: int, head_seq: int, total: int, progress) -> "_Walk":
        """Walk stretches of the chain in worker processes, then check that each stretch's first
        record follows the previous stretch's last one."""
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pieces = 4 * workers
        bounds = [1 + (head_seq * i) // pieces for i in range(pieces)] + [None]  # the last stretch is open-ended
        stretches = [(lo, hi) for lo, hi in zip(bounds, bounds[1:]) if hi is None or hi > lo]
        done = 0
        walks = []
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_walk_file, str(self.path), lo, hi) for lo, hi in stretches]
            for future in futures:
                walks.append(future.result())
                done += walks[-1].walked
                if progress is not None:
                    progress(min(done, total), total)
        joined = _Walk(last_seq=0, last_hash=GENESIS_HASH)
        for (lo, hi), walk in zip(stretches, walks):
            if walk.first_seq == lo and walk.first_prev != joined.last_hash and (walk.bad_seq is None or walk.bad_seq > lo):
                joined.bad_seq, joined.problem = lo, _not_following(lo, walk.first_what)
                return joined
            joined.walked += walk.walked
            if walk.problem is not None:
                joined.bad_seq, joined.problem = walk.bad_seq, walk.problem
                return joined
            if not walk.walked and hi is not None:
                joined.bad_seq, joined.problem = lo, f"records {lo}-{hi - 1} are missing: removed from the log"
                return joined
            if walk.walked:
                joined.last_seq, joined.last_hash = walk.last_seq, walk.last_hash
        return joined

    def verified(self, progress: Callable[[int, int], None] | None = None) -> ChainCheck:
        """`verify()`, raising LogError (one line, exit 2) when the chain is broken."""
        check = self.verify(progress)
        if not check.ok:
            raise LogError(f"{self.path} fails verification: {check.problem}; nothing was repaired")
        return check


PARALLEL_MIN_RECORDS = 1_000_000
"""Logs with more records than this are verified by one process per CPU."""


@dataclass
class _Walk:
    """What walking a stretch of the chain found."""

    walked: int = 0
    first_seq: int | None = None
    first_prev: bytes | None = None
    first_what: str = ""
    last_seq: int = 0
    last_hash: bytes = GENESIS_HASH
    bad_seq: int | None = None
    problem: str | None = None


def _not_following(seq: int, what: str) -> str:
    return f"record {seq} ({what}) does not follow record {seq - 1}: records were moved, replaced or rewritten"


def _walk(db: sqlite3.Connection, lo: int, hi: int | None, expected_prev: bytes | None,
          progress: Callable[[int, int], None] | None = None, total: int = 0) -> _Walk:
    """Walk records lo <= seq < hi (hi None: to the end) in seq order across all tables: positions
    without gaps from lo, each record's own hash, and each link inside the stretch (and the first
    one's to `expected_prev`, when given)."""
    limit = hi if hi is not None else 2**62

    def rows(table: str):
        names = ", ".join(name for name, _ in CHAINED[table])
        sql = f"SELECT seq, prev_hash, hash, {names} FROM {table} WHERE seq >= ? AND seq < ? ORDER BY seq"
        for row in db.execute(sql, (lo, limit)):
            yield row[0], table, row

    walk = _Walk(last_seq=lo - 1, last_hash=expected_prev if expected_prev is not None else GENESIS_HASH)
    expected_seq = lo
    for seq, table, row in heapq.merge(*(rows(t) for t in present_tables(db)), key=itemgetter(0)):
        prev_hash, stored, values = row[1], row[2], row[3:]
        what = describe_record(table, values)
        if walk.first_seq is None:
            walk.first_seq, walk.first_prev, walk.first_what = seq, prev_hash, what
        if seq > expected_seq:
            walk.bad_seq = expected_seq
            missing = f"record {expected_seq} is" if seq == expected_seq + 1 else f"records {expected_seq}-{seq - 1} are"
            walk.problem = f"{missing} missing: removed from the log (the next record is {seq}, {what})"
            break
        if seq < expected_seq:
            walk.bad_seq, walk.problem = seq, f"record {seq} ({what}) appears twice: a record was inserted or copied"
            break
        if not hash_matches(table, seq, prev_hash, values, stored):
            walk.bad_seq = seq
            walk.problem = f"record {seq} ({what}) was changed after it was written: its content does not match its hash"
            break
        if prev_hash != walk.last_hash and (expected_prev is not None or seq > lo):
            walk.bad_seq, walk.problem = seq, _not_following(seq, what)
            break
        expected_seq, walk.last_seq, walk.last_hash = seq + 1, seq, stored
        walk.walked += 1
        if progress is not None and walk.walked % 100_000 == 0:
            progress(walk.walked, total)
    return walk


def _walk_file(path: str, lo: int, hi: int | None) -> _Walk:
    """`_walk` in a worker process, on its own read-only connection and snapshot."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    db.text_factory = _lenient_text
    try:
        db.execute("BEGIN")
        return _walk(db, lo, hi, None)
    finally:
        db.close()


_SUMMARY_FIELDS = [f"s.{c}" for c in SESSION_COLUMNS] + [f"e.{c}" for c in END_COLUMNS[1:]]
_SUMMARY_SQL = (
    f"SELECT {', '.join(_SUMMARY_FIELDS)} FROM sessions s LEFT JOIN session_ends e USING (session_id)"
)


def _summary(row: tuple) -> dict:
    return session_summary(dict(zip(list(SESSION_COLUMNS) + list(END_COLUMNS[1:]), row)))


def session_summary(r: dict) -> dict:
    """The session object livctl prints (`session --json`, `log --json`) from a session's columns
    and its end's."""
    finished = r["status"] is not None
    return {
        "session_id": r["session_id"],
        "status": r["status"] if finished else "running",
        "reason": r["reason"],
        "in_spec": bool(r["in_spec"]) if finished else False,
        "delivered_s": r["delivered_s"] if finished else 0.0,
        "in_spec_s": r["in_spec_s"] if finished else 0.0,
        "in_spec_fraction": r["in_spec_fraction"],
        "mean_frequency_hz": r["mean_frequency_hz"],
        "mean_peak_g": r["mean_peak_g"],
        "mean_thd_percent": r["mean_thd_percent"],
        "window_count": r["window_count"],
        "prescription": {
            "frequency_hz": r["frequency_hz"],
            "peak_g": r["peak_g"],
            "duration_s": r["duration_s"],
            "ramp_s": r["ramp_s"],
            "preset": r["preset"],
            "tolerance": {
                "frequency_hz": r["tol_frequency_hz"],
                "accel_fraction": r["tol_accel_fraction"],
                "max_thd_fraction": r["max_thd_fraction"],
                "min_in_spec_fraction": r["min_in_spec_fraction"],
            },
        },
        "subject": r["subject"],
        "operator": r["operator"],
        "calibration_id": r["calibration_id"],
        "regimen": r["regimen"],
        "deviation": r["deviation"],
        "override_reason": r["override_reason"],
        "device": r["device"],
        "platform_id": r["platform_id"],
        "simulated": bool(r["simulated"]),
        "practice": bool(r["practice"]),
        "time_base": r["time_base"],
        "window_s": r["window_s"],
        "started_utc": r["started_utc"],
        "ended_utc": r["ended_utc"],
        "livctl_version": r["livctl_version"],
        "host": r["host"],
        "pid": r["pid"],
    }


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


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


def _lenient_text(data: bytes) -> str:
    """TEXT as verify reads it: bytes that are not UTF-8 (a damaged record) decode to U+FFFD and
    so no longer hash as written, instead of stopping the walk."""
    return data.decode("utf-8", "replace")


def _one_line(report: str) -> str:
    """SQLite's integrity report ("*** in database main ***\nPage 230: ...") as one line."""
    return " ".join(report.replace("*** in database main ***", "").split())


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__
