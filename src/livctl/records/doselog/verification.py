"""Verifying a dose log: the whole chain walked in order on one snapshot, and the first record that
is not as written named (changed, removed, moved, inserted, or cut from the end).

A log of more than PARALLEL_MIN_RECORDS records is walked in stretches by one process per CPU, each
on its own read-only connection; the stretches' ends are then joined, which gives the same answer
as one walk.
"""

from __future__ import annotations

import heapq
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter

from livctl.errors import LogError
from livctl.records.doselog.chain import describe_record, hash_matches
from livctl.records.doselog.logfile import BUSY_TIMEOUT_S, DB_ERRORS, LogFile, lenient_text, one_line, reason
from livctl.records.doselog.schema import CHAINED, GENESIS_HASH, present_tables

PARALLEL_MIN_RECORDS = 1_000_000
"""Logs with more records than this are verified by one process per CPU."""


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


def verify(file: LogFile, progress: Callable[[int, int], None] | None, workers: int | None) -> ChainCheck:
    """`DoseLog.verify()`: the walk on one snapshot of `file`, whose text that is not UTF-8 is read
    as a changed record; LogError when the file is damaged at the SQLite level."""
    db = file.db
    db.text_factory = lenient_text  # text that is not UTF-8 is a changed record, named as such
    try:
        db.execute("BEGIN")
        try:
            return _verify(file, progress, workers)
        finally:
            db.execute("ROLLBACK")
            db.text_factory = str
    except DB_ERRORS as exc:
        raise LogError(f"{file.path} is damaged and cannot be verified: {reason(exc)}") from None


def _verify(file: LogFile, progress: Callable[[int, int], None] | None, workers: int | None) -> ChainCheck:
    db = file.db
    damage = db.execute("PRAGMA quick_check").fetchone()[0]
    if damage != "ok":
        raise LogError(
            f"{file.path} is damaged at the SQLite level ({one_line(damage)}); keep the file as it is for inspection"
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
        walk = _walk_in_parallel(file.path, workers, head_seq, total, progress)
    else:
        walk = _walk(db, 1, None, GENESIS_HASH, progress, total)
    bad_seq, problem = walk.bad_seq, walk.problem
    if problem is None and (head_seq != walk.last_seq or head_hash != walk.last_hash):
        bad_seq, problem = _head_problem(head_seq, walk)
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


def _head_problem(head_seq: int, walk: _Walk) -> tuple[int, str]:
    """The first bad record and the problem when a sound walk does not end at the chain head."""
    if head_seq > walk.last_seq:
        bad_seq = walk.last_seq + 1
        missing = f"record {bad_seq} is" if head_seq == bad_seq else f"records {bad_seq}-{head_seq} are"
        return bad_seq, f"{missing} missing: removed from the end of the log (its head says {head_seq} records)"
    return head_seq, (
        f"the chain head (record {head_seq}) does not match the last record ({walk.last_seq}): it was rewritten"
    )


def _walk_in_parallel(path, workers: int, head_seq: int, total: int, progress) -> _Walk:
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
        futures = [pool.submit(_walk_file, str(path), lo, hi) for lo, hi in stretches]
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
    db.text_factory = lenient_text
    try:
        db.execute("BEGIN")
        return _walk(db, lo, hi, None)
    finally:
        db.close()
