"""Reading a dose log: sessions as the objects livctl prints, a session's windows, subjects and
their regimen assignments, the sealed raw-signal archives and the chain's head.

Every query goes through the log's file (`LogFile.query`), so a damaged log is refused before the
first row is read.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence

from livctl.errors import LogError, UsageError
from livctl.records.doselog.logfile import LogFile
from livctl.records.doselog.schema import (
    ARCHIVE_COLUMNS,
    ASSIGNMENT_COLUMNS,
    END_COLUMNS,
    SESSION_COLUMNS,
    SUBJECT_COLUMNS,
    WINDOW_COLUMNS,
)


class UnknownSubject(UsageError):
    """A subject id the log does not hold."""


class LogReader:
    """The questions livctl asks of an open dose log: sessions (summaries, filtered), one session
    by its id, its windows, subjects and their regimen assignments, archives, the chain's head."""

    def __init__(self, file: LogFile):
        self._file = file

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
            raise LogError(f"no session {id_or_prefix!r} in {self._file.path}; `livctl log` lists them")
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
            raise UnknownSubject(f"no subject {subject_id!r} in {self._file.path}{hint}")
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
