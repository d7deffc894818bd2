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

`DoseLog` is what callers use. It makes each record (a session's start, window and end, a
subject, a regimen assignment), stamped with `utc_now` here, and leaves the rest to the modules of
this package: `schema` (the tables, their columns and SQL, schema versions), `chain` (a record's
canonical form and hash, its append at the head), `logfile` (`LogFile`: the SQLite file, opened
read-only where it cannot be written, upgraded, checked for damage; its transactions), `reading`
(`LogReader`, which `DoseLog` is: sessions, windows, subjects, archives) and `verification` (the
chain walk, `ChainCheck`). Every name callers use is importable from here.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from livctl import __version__
from livctl.clock import utc_now
from livctl.errors import LogError, UsageError
from livctl.records.doselog import verification
from livctl.records.doselog.chain import append_record, canonical_record, describe_record, record_hash
from livctl.records.doselog.logfile import BUSY_TIMEOUT_S, PAGE_SIZE, LogFile
from livctl.records.doselog.reading import LogReader, UnknownSubject, session_summary
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


class DoseLog(LogReader):
    """An open dose log: appends a session's start, windows and end, subjects and their regimen
    assignments, each a record of the chain; reads them as a `LogReader`; `verify()` walks the
    chain. Use as a context manager, or call `close()`."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True, check: bool = True):
        """Open (with `create`: or create) the log at `path`.

        With `check` (the default) the file is given `check_damage()` before the first read or
        append: a damaged log is refused before anything is read from it or appended to it.
        `verify()` runs its own, fuller check and reports on a damaged file instead.

        A log that exists but cannot be written here (a read-only folder, file or medium) is opened
        read-only: it can be read and verified, and any append is refused with a one-line error."""
        super().__init__(LogFile(path, create=create, check=check))

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
