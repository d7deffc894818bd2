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
canonical form, its hash and its append at the head of the chain are the module `chain`; the SQLite
file (opening it read-only where it cannot be written, upgrades, the damage check, transactions) is
`logfile.LogFile`; walking the chain is the module `verification`.
"""

from __future__ import annotations

import difflib
import json
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from livctl import __version__
from livctl.clock import utc_now
from livctl.errors import LogError, UsageError
from livctl.records.doselog import verification
from livctl.records.doselog.chain import append_record, canonical_record, describe_record, record_hash
from livctl.records.doselog.logfile import BUSY_TIMEOUT_S, PAGE_SIZE, LogFile
from livctl.records.doselog.schema import (
    ADDED_COLUMNS,
    ADDED_TABLES,
    ARCHIVE_COLUMNS,
    ASSIGNMENT_COLUMNS,
    END_COLUMNS,
    GENESIS_HASH,
    SCHEMA_VERSION,
    SESSION_COLUMNS,
    STATUSES,
    SUBJECT_COLUMNS,
    SUBJECT_KINDS,
    WINDOW_COLUMNS,
    iso_utc,
)
from livctl.records.doselog.verification import PARALLEL_MIN_RECORDS, ChainCheck

__all__ = [
    "ADDED_COLUMNS", "ADDED_TABLES", "ARCHIVE_COLUMNS", "ASSIGNMENT_COLUMNS", "BUSY_TIMEOUT_S", "END_COLUMNS",
    "GENESIS_HASH", "PAGE_SIZE", "PARALLEL_MIN_RECORDS", "SCHEMA_VERSION", "SESSION_COLUMNS", "STATUSES",
    "SUBJECT_COLUMNS", "SUBJECT_KINDS", "WINDOW_COLUMNS", "ChainCheck", "DoseLog", "SessionStart",
    "UnknownSubject", "canonical_record", "default_log_path", "describe_record", "iso_utc", "record_hash",
    "session_summary",
]


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


class DoseLog:
    """An open dose log. Use as a context manager, or call `close()`."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True, check: bool = True):
        """Open (with `create`: or create) the log at `path`.

        With `check` (the default) the file is given `check_damage()` before the first read or
        append: a damaged log is refused before anything is read from it or appended to it.
        `verify()` runs its own, fuller check and reports on a damaged file instead.

        A log that exists but cannot be written here (a read-only folder, file or medium) is opened
        read-only: it can be read and verified, and any append is refused with a one-line error."""
        self._file = LogFile(path, create=create, check=check)

    @property
    def path(self) -> Path:
        return self._file.path

    @property
    def read_only(self) -> bool:
        return self._file.read_only

    def check_damage(self) -> None:
        """LogError (one line) when the file is damaged or its chain head is not its last record
        as written: `LogFile.check_damage`, run whenever the log is opened."""
        self._file.check_damage()

    def check_writable(self) -> None:
        """LogError (one line) when this log cannot be written here: before anything else is made
        for a record (a session's raw-signal folder), as before any append."""
        self._file.check_writable()

    def close(self) -> None:
        self._file.close()

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
        with self._file.appending() as db:
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
            append_record(db, "sessions", row)
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
        with self._file.appending() as db:
            if unless_ended and self._query("SELECT 1 FROM session_ends WHERE session_id = ?", [session_id]):
                return False
            if archive is not None:
                append_record(db, "archives", dict(archive, session_id=session_id))
            append_record(db, "session_ends", row)
        return True

    def add_subject(self, subject_id: str, kind: str, *, note: str | None = None, operator: str | None = None) -> None:
        if kind not in SUBJECT_KINDS:
            raise UsageError(f"unknown subject kind {kind!r}; choose one of: {', '.join(SUBJECT_KINDS)}")
        if not subject_id.strip() or subject_id != subject_id.strip():
            raise UsageError(f"subject id {subject_id!r} must be non-empty, without leading or trailing spaces")
        with self._file.appending() as db:
            if self._subject_row(subject_id) is not None:
                raise UsageError(f"subject {subject_id} is already in {self.path}; `livctl subject show {subject_id}`")
            append_record(
                db,
                "subjects",
                dict(subject_id=subject_id, kind=kind, note=note, added_utc=iso_utc(utc_now()), operator=operator),
            )

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
        """One record in a write transaction of its own."""
        with self._file.appending() as db:
            append_record(db, table, row)

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
        return self._file.query(sql, params)


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
        return verification.verify(self._file, progress, workers)

    def verified(self, progress: Callable[[int, int], None] | None = None) -> ChainCheck:
        """`verify()`, raising LogError (one line, exit 2) when the chain is broken."""
        check = self.verify(progress)
        if not check.ok:
            raise LogError(f"{self.path} fails verification: {check.problem}; nothing was repaired")
        return check


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
