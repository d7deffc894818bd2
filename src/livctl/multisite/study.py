"""The study server read as one log: what `report --study`, `due`, `log`, `log verify` and
`log export` use with `--log postgresql://...`.

`StudyLog` answers the same questions as `DoseLog` (sessions, windows, subjects and their
regimens, verification) across every station the connected role may read: all of them for a
coordinator, its own for a station's role (row-level security decides, not this code). Each
session carries its `station`. Subjects are the coordinator's (with their regimens as the
coordinator assigned them) and those registered at stations; a station's copy of a coordinator's
assignment (pulled by `livctl sync`) is not counted twice.

`verify()` walks each station's chain on the server in seq order, hashing every record again from
its stored values and checking every link, and names a station's first bad record. The study's
check carries the records of all stations and, as its head, a SHA-256 over every station's head
(station, seq, hash), so writing it down anchors the whole study as one head anchors one log.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter

from livctl.errors import LogError
from livctl.multisite.connect import connect
from livctl.multisite.migrations import RECORD_COLUMNS, check_version
from livctl.multisite.push import PULLED_SOURCE
from livctl.records.doselog import GENESIS_HASH, SESSION_COLUMNS, ChainCheck, UnknownSubject, record_hash
from livctl.records.doselog import describe_record as describe
from livctl.records.doselog import session_summary as _local_summary

__all__ = ["StudyLog"]

_END_FIELDS = RECORD_COLUMNS["session_ends"][1:]
_SUMMARY_SQL = (
    "SELECT s.station, " + ", ".join(f"s.{c}" for c in SESSION_COLUMNS) + ", " + ", ".join(f"e.{c}" for c in _END_FIELDS)
    + " FROM livctl.sessions s LEFT JOIN livctl.session_ends e ON e.station = s.station AND e.session_id = s.session_id"
)


class ServerPath(str):
    """Where a study log is, for messages and reports: the server's URL (a `str` with the little
    of `Path` that the commands use on a log's path)."""

    def resolve(self) -> "ServerPath":
        return self

    @property
    def parent(self):
        raise LogError("the study server holds no raw-signal archives: they stay at the stations")


@dataclass(frozen=True)
class StationCheck:
    """One station's chain as the server holds it: its records, its head, its last sync, and the
    first record that does not verify (with why), if any."""

    station: str
    records: int
    head_seq: int
    head_hash: str
    last_sync_utc: str | None
    bad_seq: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_dict(self) -> dict:
        return dict(vars(self), ok=self.ok)


def session_summary(r: dict) -> dict:
    """The session object livctl prints (`livctl session --json`'s keys), with its station."""
    summary = _local_summary(r)
    return {"session_id": summary["session_id"], "station": r["station"], **summary}


class StudyLog:
    """A read-only view of the study server (see the module's text). A context manager."""

    read_only = True

    def __init__(self, url: str):
        self.path = ServerPath(url)
        self._conn = connect(url)
        try:
            check_version(self._conn, url)
        except BaseException:
            self._conn.close()
            raise

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "StudyLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _rows(self, sql: str, params: Sequence = ()) -> list[tuple]:
        import psycopg

        try:
            return self._conn.execute(sql, params).fetchall()
        except psycopg.Error as exc:
            raise LogError(f"cannot read the study server {self.path}: {' '.join(str(exc).split())}") from None

    # -- sessions and windows ----------------------------------------------------------------

    def sessions(self, *, limit: int | None = None, subjects: Sequence[str] | None = None,
                 started_from_utc: str | None = None, started_before_utc: str | None = None,
                 statuses: Sequence[str] | None = None, oldest_first: bool = False) -> list[dict]:
        where, params = [], []
        if subjects is not None:
            where.append("s.subject = ANY(%s)")
            params.append(list(subjects))
        if started_from_utc is not None:
            where.append("s.started_utc >= %s")
            params.append(started_from_utc)
        if started_before_utc is not None:
            where.append("s.started_utc < %s")
            params.append(started_before_utc)
        if statuses is not None:
            where.append("coalesce(e.status, 'running') = ANY(%s)")
            params.append(list(statuses))
        order = "ASC" if oldest_first else "DESC"
        sql = _SUMMARY_SQL + (" WHERE " + " AND ".join(where) if where else "")
        sql += f" ORDER BY s.started_utc {order}, s.station {order}, s.seq {order}"
        if limit is not None:
            sql += " LIMIT %s"
            params.append(limit)
        names = ("station", *SESSION_COLUMNS, *_END_FIELDS)
        return [session_summary(dict(zip(names, r))) for r in self._rows(sql, params)]

    def find_session(self, id_or_prefix: str) -> dict:
        escaped = id_or_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        names = ("station", *SESSION_COLUMNS, *_END_FIELDS)
        rows = self._rows(_SUMMARY_SQL + " WHERE s.session_id LIKE %s", [escaped])
        if not rows:
            raise LogError(f"no session {id_or_prefix!r} on {self.path}; `livctl log --log URL` lists them")
        if len(rows) > 1:
            raise LogError(f"{id_or_prefix!r} matches {len(rows)} sessions; give more of the id")
        return session_summary(dict(zip(names, rows[0])))

    def _window_rows(self, session_id: str, columns: Sequence[str], where: str = "true") -> list[tuple]:
        bounds = self._rows("SELECT s.station, s.seq, e.seq FROM livctl.sessions s LEFT JOIN livctl.session_ends e "
                            "ON e.station = s.station AND e.session_id = s.session_id WHERE s.session_id = %s",
                            [session_id])
        if not bounds:
            return []
        station, first, end = bounds[0]
        return self._rows(f"SELECT {', '.join(columns)} FROM livctl.windows WHERE station = %s AND seq > %s "
                          f"AND seq < %s AND session_id = %s AND {where} ORDER BY seq",
                          [station, first, end if end is not None else 2**62, session_id])

    def windows(self, session_id: str) -> list[dict]:
        names = RECORD_COLUMNS["windows"][1:]
        out = []
        for r in self._window_rows(session_id, names):
            d = dict(zip(names, r))
            d["in_spec"] = bool(d["in_spec"])
            d["reasons"] = json.loads(d["reasons"])
            out.append(d)
        return out

    def window_levels(self, session_id: str) -> list[tuple]:
        return [tuple(r) for r in self._window_rows(session_id, ("frequency_hz", "rms_g", "duration_s"),
                                                    "NOT (phase = 'precheck' AND drive = 0)")]

    def archives(self, session_id: str | None = None) -> list[dict]:
        where, params = ("WHERE session_id = %s", [session_id]) if session_id is not None else ("", [])
        names = ("station", "seq", *RECORD_COLUMNS["archives"])
        rows = self._rows(f"SELECT {', '.join(names)} FROM livctl.archives {where} ORDER BY station, seq", params)
        return [dict(zip(names, r), complete=bool(r[names.index("complete")])) for r in rows]

    # -- subjects -------------------------------------------------------------------------------

    def subjects(self) -> list[dict]:
        """Every subject: the coordinator's first (in the order added), then those registered at
        stations (by station, in chain order), each once, with its regimen assignments."""
        central = self._rows("SELECT subject_id, kind, note, added_utc, operator FROM livctl.study_subjects "
                             "ORDER BY added_utc, subject_id")
        local = self._rows("SELECT subject_id, kind, note, added_utc, operator FROM livctl.subjects "
                           "ORDER BY station, seq")
        seen, out = set(), []
        for row in [*central, *local]:
            if row[0] in seen:
                continue
            seen.add(row[0])
            d = dict(zip(RECORD_COLUMNS["subjects"], row))
            d["assignments"] = self.assignments(d["subject_id"])
            out.append(d)
        return out

    def has_subjects(self) -> bool:
        return bool(self._rows("SELECT 1 FROM livctl.study_subjects UNION ALL SELECT 1 FROM livctl.subjects LIMIT 1"))

    def subject(self, subject_id: str) -> dict:
        for d in self.subjects():
            if d["subject_id"] == subject_id:
                return d
        raise UnknownSubject(f"no subject {subject_id!r} on {self.path}; `livctl subject list` at a station, or the "
                             "coordinator's `livctl server add-subject`, adds one")

    def assignments(self, subject_id: str) -> list[dict]:
        """The coordinator's assignments of a subject, then the stations' own (pulled copies of the
        coordinator's left out), oldest first."""
        names = ("seq",) + RECORD_COLUMNS["assignments"]
        central = self._rows("SELECT id, subject_id, assigned_utc, operator, regimen_name, regimen, source "
                             "FROM livctl.study_assignments WHERE subject_id = %s ORDER BY id", [subject_id])
        local = self._rows(f"SELECT seq, {', '.join(RECORD_COLUMNS['assignments'])} FROM livctl.assignments "
                           "WHERE subject_id = %s AND source NOT LIKE %s ORDER BY assigned_utc, station, seq",
                           [subject_id, PULLED_SOURCE + " %"])
        out = [dict(zip(names, r)) for r in [*central, *local]]
        out.sort(key=itemgetter("assigned_utc"))
        for d in out:
            d["regimen"] = json.loads(d["regimen"])
        return out

    # -- stations and verification -----------------------------------------------------------

    def stations(self) -> list[dict]:
        """Each station the role may read: its records, chain head and last sync."""
        rows = self._rows(
            "SELECT st.station, st.role, y.head_seq, y.head_hash, y.synced_utc, "
            "(SELECT max(synced_utc) FROM livctl.syncs z WHERE z.station = st.station) "
            "FROM livctl.stations st LEFT JOIN LATERAL (SELECT head_seq, head_hash, synced_utc FROM livctl.syncs s "
            "WHERE s.station = st.station ORDER BY head_seq DESC LIMIT 1) y ON true ORDER BY st.station")
        return [{"station": r[0], "role": r[1], "records": r[2] or 0, "head_seq": r[2] or 0,
                 "head_hash": bytes(r[3]).hex() if r[3] is not None else GENESIS_HASH.hex(),
                 "last_sync_utc": None if r[5] is None else r[5].isoformat(timespec="seconds")} for r in rows]

    def verify_stations(self, progress: Callable[[int, int], None] | None = None, *,
                        workers: int | None = None) -> list[StationCheck]:
        """Every station's chain walked on the server, in one snapshot: each record hashed again
        from its stored values, each link and position checked, the head compared with the last
        sync's. More than PARALLEL_MIN_RECORDS records are walked by `workers` processes (default:
        one per CPU), each on its own connection importing this snapshot, a station at a time."""
        import psycopg

        try:
            with self._conn.transaction():
                self._conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                stations = self.stations()
                total = sum(s["records"] for s in stations)
                if workers is None:
                    workers = (os.cpu_count() or 1) if total >= PARALLEL_MIN_RECORDS else 1
                workers = min(workers, len(stations))
                if workers > 1:
                    snapshot = self._conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
                    checks = _walk_in_parallel(str(self.path), snapshot, stations, workers, progress, total)
                else:
                    checks, done = [], 0
                    for s in stations:
                        checks.append(walk_station(self._conn, s, lambda n: progress and progress(done + n, total)))
                        done += checks[-1].records
        except psycopg.Error as exc:
            raise LogError(f"cannot read the study server {self.path}: {' '.join(str(exc).split())}") from None
        if progress is not None:
            progress(total, total)
        return checks

    def verify(self, progress: Callable[[int, int], None] | None = None) -> ChainCheck:
        """Every station's chain (verify_stations) as one check: the first bad station's problem,
        the records of all, and as head a SHA-256 over each station's (station, head seq, head hash)."""
        checks = self.verify_stations(progress)
        self.last_station_checks = checks
        bad = next((c for c in checks if not c.ok), None)
        digest = hashlib.sha256("".join(f"{c.station}\t{c.head_seq}\t{c.head_hash}\n" for c in checks).encode())
        return ChainCheck(records=sum(c.records for c in checks), head_seq=sum(c.head_seq for c in checks),
                          head_hash=digest.hexdigest(), bad_seq=None if bad is None else bad.bad_seq,
                          problem=None if bad is None else bad.problem,
                          warnings=tuple(f"also {c.problem}" for c in checks if not c.ok and c is not bad))

    def verified(self, progress: Callable[[int, int], None] | None = None) -> ChainCheck:
        check = self.verify(progress)
        if not check.ok:
            raise LogError(f"{self.path} fails verification: {check.problem}; nothing was repaired")
        return check


PARALLEL_MIN_RECORDS = 500_000
"""A study with more records than this is verified by one process per CPU."""


def walk_station(conn, station: dict, progress: Callable[[int], None] | None = None) -> StationCheck:
    """Walk one station's chain in seq order across its tables (inside the caller's transaction)."""
    name = station["station"]

    def rows(table: str):
        columns = RECORD_COLUMNS[table]
        cur = conn.cursor(name=f"walk_{table}_{name}".replace("-", "_").replace(".", "_"))
        cur.itersize = 20_000
        cur.execute(f"SELECT seq, prev_hash, hash, {', '.join(columns)} FROM livctl.{table} "
                    "WHERE station = %s ORDER BY seq", (name,))
        try:
            for r in cur:
                yield r[0], table, r
        finally:
            cur.close()

    walked, last_seq, last_hash = 0, 0, GENESIS_HASH
    bad_seq = problem = None
    for seq, table, r in heapq.merge(*(rows(t) for t in RECORD_COLUMNS), key=itemgetter(0)):
        prev_hash, stored, values = r[1], r[2], r[3:]
        if seq != last_seq + 1:
            bad_seq = last_seq + 1
            problem = f"record {bad_seq} is missing (the next is record {seq}, {describe(table, values)})"
            break
        if record_hash(table, seq, prev_hash, values) != stored:
            bad_seq, problem = seq, f"record {seq} ({describe(table, values)}) does not match its hash: its content was changed"
            break
        if prev_hash != last_hash:
            bad_seq, problem = seq, f"record {seq} ({describe(table, values)}) does not follow record {seq - 1}"
            break
        walked, last_seq, last_hash = walked + 1, seq, stored
        if progress is not None and walked % 100_000 == 0:
            progress(walked)
    if problem is None and (station["head_seq"] != last_seq or station["head_hash"] != last_hash.hex()):
        bad_seq = last_seq
        problem = (f"its last sync says record {station['head_seq']} ({station['head_hash'][:16]}...) is the head, "
                   f"but the chain ends at record {last_seq}")
    if problem is not None:
        problem = f"station {name}: {problem}"
    return StationCheck(name, walked, last_seq, last_hash.hex(), station["last_sync_utc"], bad_seq, problem)


def _walk_exported(url: str, snapshot: str, station: dict) -> StationCheck:
    """`walk_station` in a worker process, in the snapshot the parent exported."""
    with connect(url) as conn, conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        conn.execute("SET TRANSACTION SNAPSHOT %s" % _literal(snapshot))
        return walk_station(conn, station)


def _literal(text: str) -> str:
    if not all(c.isalnum() or c == "-" for c in text):
        raise ValueError(f"unexpected snapshot id {text!r}")
    return f"'{text}'"


def _walk_in_parallel(url: str, snapshot: str, stations: list[dict], workers: int, progress, total: int):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    done = 0
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_walk_exported, url, snapshot, s) for s in stations]
        checks = []
        for future in futures:
            checks.append(future.result())
            done += checks[-1].records
            if progress is not None:
                progress(min(done, total), total)
    return checks
