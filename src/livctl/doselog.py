"""The dose log: one SQLite file that says what every session delivered, as measured.

Writes are appends only. A session is three kinds of rows: its start (prescription, device,
subject, operator) written before the platform moves, one row per measured window written as the
session goes, and its end (status, reason, delivered seconds, measured summary). Each row is
committed on its own, in WAL mode, so a crash loses at most the window being measured, and a
session with a start but no end is visibly unfinished. Several processes may write one log: SQLite
serialises them (busy timeout) and WAL keeps readers from blocking writers.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from livctl import __version__
from livctl.clock import utc_now
from livctl.errors import LogError

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 30.0

_SCHEMA = """
CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY,
    started_utc TEXT NOT NULL,
    device TEXT NOT NULL,
    platform_id TEXT NOT NULL,
    simulated INTEGER NOT NULL,
    time_base TEXT NOT NULL,
    subject TEXT,
    operator TEXT,
    calibration_id TEXT,
    preset TEXT,
    frequency_hz REAL NOT NULL,
    peak_g REAL NOT NULL,
    duration_s REAL NOT NULL,
    ramp_s REAL NOT NULL,
    tol_frequency_hz REAL NOT NULL,
    tol_accel_fraction REAL NOT NULL,
    max_thd_fraction REAL NOT NULL,
    min_in_spec_fraction REAL NOT NULL,
    window_s REAL NOT NULL,
    livctl_version TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL
);
CREATE TABLE windows (
    session_id TEXT NOT NULL REFERENCES sessions(session_id),
    idx INTEGER NOT NULL,
    phase TEXT NOT NULL,
    t_s REAL NOT NULL,
    duration_s REAL NOT NULL,
    drive REAL NOT NULL,
    frequency_hz REAL,
    peak_g REAL,
    rms_g REAL,
    thd_percent REAL,
    snr_db REAL,
    sinad_db REAL,
    dc_g REAL,
    axis TEXT,
    off_axis_percent REAL,
    in_spec INTEGER NOT NULL,
    reasons TEXT NOT NULL,
    PRIMARY KEY (session_id, idx)
) WITHOUT ROWID;
CREATE TABLE session_ends (
    session_id TEXT PRIMARY KEY REFERENCES sessions(session_id),
    ended_utc TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    delivered_s REAL NOT NULL,
    in_spec_s REAL NOT NULL,
    in_spec_fraction REAL,
    mean_frequency_hz REAL,
    mean_peak_g REAL,
    mean_thd_percent REAL,
    in_spec INTEGER NOT NULL,
    window_count INTEGER NOT NULL
);
CREATE INDEX sessions_started ON sessions(started_utc);
CREATE INDEX sessions_subject ON sessions(subject, started_utc);
"""

STATUSES = ("completed", "aborted", "interrupted")

SESSION_COLUMNS = (
    "session_id", "started_utc", "device", "platform_id", "simulated", "time_base", "subject", "operator",
    "calibration_id", "preset", "frequency_hz", "peak_g", "duration_s", "ramp_s", "tol_frequency_hz", "tol_accel_fraction",
    "max_thd_fraction", "min_in_spec_fraction", "window_s", "livctl_version", "host", "pid",
)
WINDOW_COLUMNS = (
    "session_id", "idx", "phase", "t_s", "duration_s", "drive", "frequency_hz", "peak_g", "rms_g",
    "thd_percent", "snr_db", "sinad_db", "dc_g", "axis", "off_axis_percent", "in_spec", "reasons",
)
END_COLUMNS = (
    "session_id", "ended_utc", "status", "reason", "delivered_s", "in_spec_s", "in_spec_fraction",
    "mean_frequency_hz", "mean_peak_g", "mean_thd_percent", "in_spec", "window_count",
)


def default_log_path() -> Path:
    """$LIVCTL_LOG, else the user's data directory ($XDG_DATA_HOME/livctl/doses.sqlite)."""
    env = os.environ.get("LIVCTL_LOG")
    if env:
        return Path(env).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data_home) / "livctl" / "doses.sqlite"


@dataclass(frozen=True)
class SessionStart:
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


class DoseLog:
    """An open dose log. Use as a context manager, or call `close()`."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True):
        self.path = Path(path)
        if not create and not self.path.exists():
            raise LogError(f"no dose log at {self.path}; run a session first or pass --log PATH")
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise LogError(f"cannot open the dose log {self.path}: {_reason(exc)}; choose another --log PATH") from None
        try:
            self._prepare()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise LogError(f"{self.path} is not a usable dose log: {_reason(exc)}") from None

    def _prepare(self) -> None:
        db = self._db
        db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise LogError(
                f"{self.path} was written by a newer livctl (log schema {version}, this livctl reads "
                f"up to {SCHEMA_VERSION}); upgrade livctl"
            )
        if version == 0:
            tables = db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
            if tables:
                raise LogError(f"{self.path} is an SQLite file but not a livctl dose log; choose another --log PATH")
            db.execute("PRAGMA journal_mode = WAL")
            with self._write():
                if db.execute("PRAGMA user_version").fetchone()[0] == 0:
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            db.execute(statement)
                    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken with the write lock up front (BEGIN IMMEDIATE)."""
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

    def start_session(self, start: SessionStart) -> str:
        session_id = "s-" + uuid.uuid4().hex[:12]
        row = dict(vars(start))
        row.update(
            session_id=session_id,
            started_utc=_iso(utc_now()),
            simulated=int(start.simulated),
            livctl_version=__version__,
            host=socket.gethostname(),
            pid=os.getpid(),
        )
        self._insert("sessions", SESSION_COLUMNS, row)
        return session_id

    def add_window(self, session_id: str, window: dict) -> None:
        row = dict(window)
        row["session_id"] = session_id
        row["in_spec"] = int(bool(row["in_spec"]))
        row["reasons"] = json.dumps(list(row.get("reasons", ())))
        for name in WINDOW_COLUMNS:
            row.setdefault(name, None)
        self._insert("windows", WINDOW_COLUMNS, row)

    def end_session(self, session_id: str, end: dict) -> None:
        if end["status"] not in STATUSES:
            raise ValueError(f"unknown status {end['status']!r}")
        row = dict(end)
        row.update(session_id=session_id, ended_utc=_iso(utc_now()), in_spec=int(bool(end["in_spec"])))
        self._insert("session_ends", END_COLUMNS, row)

    def _insert(self, table: str, columns: Sequence[str], row: dict) -> None:
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        try:
            with self._write() as db:
                db.execute(sql, [row[c] for c in columns])
        except sqlite3.Error as exc:
            raise LogError(f"cannot write to the dose log {self.path}: {_reason(exc)}") from None

    # -- reading ------------------------------------------------------------------------------

    def sessions(self, *, limit: int | None = None) -> list[dict]:
        """Session summaries, newest first."""
        sql = _SUMMARY_SQL + " ORDER BY s.started_utc DESC, s.rowid DESC"
        params: list = []
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
        rows = self._query(
            f"SELECT {', '.join(WINDOW_COLUMNS[1:])} FROM windows WHERE session_id = ? ORDER BY idx", [session_id]
        )
        out = []
        for r in rows:
            d = dict(zip(WINDOW_COLUMNS[1:], r))
            d["in_spec"] = bool(d["in_spec"])
            d["reasons"] = json.loads(d["reasons"])
            out.append(d)
        return out

    def _query(self, sql: str, params: Sequence) -> list[tuple]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise LogError(f"cannot read the dose log {self.path}: {_reason(exc)}") from None


_SUMMARY_FIELDS = [f"s.{c}" for c in SESSION_COLUMNS] + [f"e.{c}" for c in END_COLUMNS[1:]]
_SUMMARY_SQL = (
    f"SELECT {', '.join(_SUMMARY_FIELDS)} FROM sessions s LEFT JOIN session_ends e USING (session_id)"
)


def _summary(row: tuple) -> dict:
    """The session object livctl prints (`session --json`, `log --json`)."""
    names = list(SESSION_COLUMNS) + list(END_COLUMNS[1:])
    r = dict(zip(names, row))
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
        "device": r["device"],
        "platform_id": r["platform_id"],
        "simulated": bool(r["simulated"]),
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


def _iso(moment) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__
