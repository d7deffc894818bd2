"""`livctl sync`: a station's records to the study server, and the study's subjects back.

Records go in chain order, in batches, one transaction per batch: the batch's records (COPY, one
statement per run of records of one table), then a `syncs` row with the new head. Each batch
starts by locking the station's chain on the server and reading the head the server holds, so
a sync killed at any point (the transaction rolls back) and run again, or two syncs of one station
at once, send each record exactly once. Before a record goes, it is hashed again here and linked
to the one before it: a tampered local log is refused naming the record, and nothing from it on is
sent. Before the first batch, the station's record at the server's head must carry the hash the
server holds: a rewritten or forked log (or another station's log under this role) is refused,
naming the first record where the two differ. The server checks the links again (a trigger), and
its row-level security lets the role write its own station's records only.

The local log is read on its own read-only connection; sessions may go on writing meanwhile.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter

from livctl.errors import LivctlError, UsageError
from livctl.multisite.migrations import RECORD_COLUMNS
from livctl.records.doselog import GENESIS_HASH, DoseLog, UnknownSubject, record_hash
from livctl.records.doselog import describe_record as describe

__all__ = ["SyncResult", "PULLED_SOURCE", "my_station", "push", "pull"]

BATCH_RECORDS = 20_000
"""Records per transaction: a killed sync loses at most one batch's work, never a record."""
PULLED_SOURCE = "study server assignment"
"""How a regimen assignment pulled from the server is marked in the station's log (its source
starts with this and the server's assignment id), so it is pulled once."""


class SyncRefused(LivctlError):
    """The station's log cannot continue the server's copy of its chain (exit 1): tampered,
    rewritten or forked. Nothing from the named record on was sent."""


@dataclass
class SyncResult:
    """What one `livctl sync` did: records sent and in how many batches, the server's chain head
    before and after against this log's, and the coordinator's subjects pulled."""

    station: str
    sent: int = 0
    batches: int = 0
    server_head_seq: int = 0
    server_head_hash: str = ""
    local_head_seq: int = 0
    pulled_subjects: list[str] = field(default_factory=list)
    pulled_assignments: int = 0
    note: str | None = None

    def to_dict(self) -> dict:
        return dict(vars(self))


class LocalChain:
    """The station's log read record by record, in chain order (its own read-only connection)."""

    def __init__(self, log: DoseLog):
        from urllib.parse import quote

        self.path = log.path
        self._db = sqlite3.connect(f"file:{quote(str(log.path.resolve()))}?mode=ro", uri=True, timeout=30,
                                   isolation_level=None)
        names = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        self.tables = [t for t in RECORD_COLUMNS if t in names]

    def close(self) -> None:
        self._db.close()

    def records(self, after_seq: int, upto_seq: int) -> list[tuple[int, str, bytes, bytes, tuple]]:
        """(seq, table, prev_hash, hash, values) for after_seq < seq <= upto_seq, in chain order."""
        out = []
        for table in self.tables:
            columns = RECORD_COLUMNS[table]
            present = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
            names = ", ".join(c if c in present else "NULL" for c in columns)  # an older schema read as it is
            sql = f"SELECT seq, prev_hash, hash, {names} FROM {table} WHERE seq > ? AND seq <= ?"
            out += [(r[0], table, r[1], r[2], r[3:]) for r in self._db.execute(sql, (after_seq, upto_seq))]
        out.sort(key=itemgetter(0))
        return out

    def record(self, seq: int):
        found = self.records(seq - 1, seq)
        return found[0] if found else None


def _server_hash(conn, station: str, seq: int) -> bytes | None:
    row = conn.execute("SELECT hash FROM livctl.chain WHERE station = %s AND seq = %s", (station, seq)).fetchone()
    return None if row is None else bytes(row[0])


def server_head(conn, station: str) -> tuple[int, bytes]:
    row = conn.execute("SELECT seq, hash FROM livctl.chain WHERE station = %s ORDER BY seq DESC LIMIT 1",
                       (station,)).fetchone()
    return (0, GENESIS_HASH) if row is None else (row[0], bytes(row[1]))


def my_station(conn, url: str) -> str:
    row = conn.execute("SELECT livctl.my_station(), current_user").fetchone()
    if row[0] is None:
        raise UsageError(f"the role {row[1]} is not a station's on {url}; the study's administrator runs "
                         f"`livctl server add-station NAME --role {row[1]}`")
    return row[0]


def _first_divergence(conn, local: LocalChain, station: str, upto: int) -> int:
    """The first seq <= upto where the station's record and the server's differ (their record at
    `upto` differs). Hashes chain, so records before a matching one all match: a binary search."""
    lo, hi = 0, upto  # record lo matches (0: before the chain), record hi differs
    while hi - lo > 1:
        mid = (lo + hi) // 2
        mine = local.record(mid)
        if mine is not None and _server_hash(conn, station, mid) == bytes(mine[3]):
            lo = mid
        else:
            hi = mid
    return hi


def _check_continues(conn, local: LocalChain, station: str, local_head: int) -> tuple[int, bytes]:
    """The server's head for this station, once the station's log is known to continue it."""
    head_seq, head_hash = server_head(conn, station)
    if head_seq == 0:
        return head_seq, head_hash
    upto = min(head_seq, local_head)
    mine = local.record(upto)
    if mine is None or bytes(mine[3]) != _server_hash(conn, station, upto):
        seq = _first_divergence(conn, local, station, upto)
        mine = local.record(seq)
        what = f"record {seq} ({describe(mine[1], mine[4])})" if mine is not None else f"record {seq} (missing here)"
        raise SyncRefused(
            f"{local.path} does not continue station {station}'s chain on the server: {what} differs from the "
            f"record {seq} the server holds (a rewritten, restored or forked log, or another station's log); "
            "nothing was sent"
        )
    return head_seq, head_hash


def _checked(records: list, prev_seq: int, prev_hash: bytes, path) -> list:
    """The records, each hashed again and linked to the one before; SyncRefused at the first bad one."""
    for seq, table, stored_prev, stored, values in records:
        if seq != prev_seq + 1:
            raise SyncRefused(f"{path}: record {prev_seq + 1} is missing (the next is record {seq}, "
                              f"{describe(table, values)}); records from {prev_seq + 1} on were not sent; "
                              "`livctl log verify` tells more")
        if stored_prev != prev_hash:
            raise SyncRefused(f"{path}: record {seq} ({describe(table, values)}) does not follow record {prev_seq}: "
                              f"records were moved, replaced or rewritten; records from {seq} on were not sent")
        try:
            good = record_hash(table, seq, stored_prev, values) == stored
        except (TypeError, ValueError):  # a value livctl never writes (a BLOB, say)
            good = False
        if not good:
            raise SyncRefused(f"{path}: record {seq} ({describe(table, values)}) was changed after it was written "
                              f"(its content does not match its hash); records from {seq} on were not sent")
        prev_seq, prev_hash = seq, stored
    return records


def _copy_batch(conn, station: str, records: list) -> None:
    """The batch into the record tables, in chain order: COPY into session-private staging tables
    (COPY cannot write a table under row-level security), then one INSERT per run of one table's
    records, so the server's chain trigger sees each run follow the one before."""
    records.sort(key=itemgetter(1, 0))
    for table, rows in groupby(records, key=itemgetter(1)):
        columns = ", ".join(RECORD_COLUMNS[table])
        conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS stage_{table} (LIKE livctl.{table}) ON COMMIT DELETE ROWS; "
                     f"CREATE INDEX IF NOT EXISTS stage_{table}_seq ON stage_{table} (seq)")
        with conn.cursor().copy(f"COPY stage_{table} (station, seq, prev_hash, hash, {columns}) FROM STDIN") as copy:
            for seq, _, prev_hash, digest, values in rows:
                copy.write_row((station, seq, prev_hash, digest, *values))
    records.sort(key=itemgetter(0))
    with conn.cursor() as cur:
        for table, run in groupby(records, key=itemgetter(1)):
            run = list(run)
            cur.execute(f"INSERT INTO livctl.{table} SELECT * FROM stage_{table} WHERE seq BETWEEN %s AND %s "
                        "ORDER BY seq", (run[0][0], run[-1][0]))


def push(conn, url: str, log: DoseLog, *, batch_records: int = BATCH_RECORDS,
         progress: Callable[[int, int], None] | None = None,
         after_batch: Callable[[int], None] | None = None) -> SyncResult:
    """Send every record the server does not hold yet, in batches (see the module's text)."""
    import psycopg

    station = my_station(conn, url)
    local_head, _ = log.chain_head()
    local = LocalChain(log)
    result = SyncResult(station=station, local_head_seq=local_head)
    try:
        head_seq, head_hash = _check_continues(conn, local, station, local_head)
        if head_seq > local_head:
            result.note = (f"the server holds {head_seq - local_head} records of station {station} that {log.path} "
                           "does not (a log restored from a backup?); nothing was sent")
        total = max(local_head - head_seq, 0)
        while head_seq < local_head:
            try:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('livctl.chain:' || %s, 0))", (station,))
                    head_seq, head_hash = server_head(conn, station)  # another sync may have sent some meanwhile
                    upto = min(head_seq + batch_records, local_head)
                    if upto <= head_seq:
                        break
                    records = _checked(local.records(head_seq, upto), head_seq, head_hash, log.path)
                    _copy_batch(conn, station, records)
                    last = records[-1]
                    conn.execute("INSERT INTO livctl.syncs (station, head_seq, head_hash, records) "
                                 "VALUES (%s, %s, %s, %s)", (station, last[0], last[3], len(records)))
            except psycopg.IntegrityError as exc:  # the server's chain trigger, or a record it holds
                raise SyncRefused(f"the study server refused station {station}'s records: "
                                  f"{exc.diag.message_primary or exc}") from None
            result.sent += len(records)
            result.batches += 1
            head_seq, head_hash = last[0], last[3]
            if progress is not None:
                progress(result.sent, total)
            if after_batch is not None:
                after_batch(result.batches)
        result.server_head_seq, result.server_head_hash = head_seq, bytes(head_hash).hex()
    finally:
        local.close()
    return result


def pull(conn, log: DoseLog, result: SyncResult) -> None:
    """Add the coordinator's subjects and regimen assignments that the station's log lacks (each
    becomes a record of the station's chain, sent with the next push)."""
    subjects = conn.execute("SELECT subject_id, kind, note, operator FROM livctl.study_subjects "
                            "ORDER BY added_utc, subject_id").fetchall()
    assignments = conn.execute("SELECT id, subject_id, operator, regimen_name, regimen, source "
                               "FROM livctl.study_assignments ORDER BY id").fetchall()
    for subject_id, kind, note, operator in subjects:
        try:
            log.subject(subject_id)
        except UnknownSubject:
            log.add_subject(subject_id, kind, note=note, operator=operator)
            result.pulled_subjects.append(subject_id)
    for key, group in groupby(assignments, key=itemgetter(1)):
        held = {a["source"].split(":", 1)[0] for a in log.assignments(key) if a["source"].startswith(PULLED_SOURCE)}
        for server_id, subject_id, operator, name, regimen, source in group:
            marker = f"{PULLED_SOURCE} {server_id}"
            if marker in held:
                continue
            log.assign_regimen(subject_id, name=name, regimen=json.loads(regimen), source=f"{marker}: {source}",
                               operator=operator)
            result.pulled_assignments += 1
