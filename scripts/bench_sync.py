#!/usr/bin/env python3
"""How fast a study server takes 50 stations' year of dose records, and how fast it reports and verifies.

    python scripts/bench_sync.py [--scale 0.1] [--stations 50] [--workers 2] [--keep]

Simulates `--stations` stations (default 50), each with one subject on a two-bouts-a-day regimen
for `--scale` of a year (1.0: 365 days; the default 0.1 is 36 days): every bout is a session of
10-20 minutes in 1 s windows (600-1200 window records), its start and its end. At --scale 1 that is
about 36 500 sessions and 33 million records, the issue's "about 25 million window records" and
more. Station logs are written straight into real dose-log files (the same rows, seq, prev_hash
and SHA-256 a station writes; not through DoseLog's one-commit-per-record appends, which
scripts/bench_log.py measures), then:

1. ingest: every station runs livctl's sync (`livctl.multisite.push.push`: each record hashed
   again and linked, COPY into staging, INSERT in chain order under row-level security, the
   server's chain trigger, a `syncs` row per batch), `--workers` stations at a time; against
   the baseline of a bare COPY of the same rows, read from the same files, into plain tables
   with the same columns and primary keys (no hashing, no checks, no triggers, no RLS);
2. a study report: every subject's report numbers (`build_subject_report`, as
   `livctl report --study --json` does) read from the server as the coordinator; against a bare
   sequential scan of the same sessions, ends and windows' columns;
3. a full verify of every station's chain on the server (`StudyLog.verify_stations`: every record
   fetched and hashed again, every link checked), against a bare scan fetching every column of
   every row of the same tables to the client.

The server is a private PostgreSQL 15 (tests/pgserver.py) in a temporary directory, with
fsync and synchronous_commit on (as a study server runs), 256 MB of shared buffers.
Prints each figure with its baseline and their ratio, measured in the same run (the machine is
shared, and absolute figures drift between runs).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import multiprocessing
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO), str(REPO / "tests")]

import pgserver  # noqa: E402

from livctl.multisite.migrations import RECORD_COLUMNS  # noqa: E402
from livctl.records.doselog import GENESIS_HASH, DoseLog, iso_utc, record_hash  # noqa: E402

START = dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc)
BOUT_HOURS = (8, 18)


def _row(table: str, values: dict) -> tuple:
    return tuple(values.get(c) for c in RECORD_COLUMNS[table])


def write_station(args) -> int:
    """One station's log for `days` days; returns its records."""
    path, index, days = args
    import json
    import random

    from livctl.study.regimen import resolve_regimen

    rng = random.Random(index)
    DoseLog(path).close()  # the schema, as livctl creates it
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous = OFF")
    db.execute("BEGIN")
    seq, prev = 0, GENESIS_HASH
    pending: dict[str, list] = {t: [] for t in RECORD_COLUMNS}

    def add(table: str, values: dict) -> None:
        nonlocal seq, prev
        seq += 1
        row = _row(table, values)
        digest = record_hash(table, seq, prev, row)
        pending[table].append((seq, prev, digest, *row))
        prev = digest

    def flush() -> None:
        for table, rows in pending.items():
            if rows:
                marks = ", ".join("?" * (3 + len(RECORD_COLUMNS[table])))
                db.executemany(f"INSERT INTO {table} (seq, prev_hash, hash, {', '.join(RECORD_COLUMNS[table])}) "
                               f"VALUES ({marks})", rows)
                rows.clear()

    subject = f"S-{index:02d}"
    platform = f"plate-{index:02d}"
    add("subjects", dict(subject_id=subject, kind="human", note=None, added_utc=iso_utc(START), operator="bench"))
    regimen, source = resolve_regimen("human-30hz-0.4g", start=START.date(), days=max(days, 1), timezone="UTC")
    add("assignments", dict(subject_id=subject, assigned_utc=iso_utc(START), operator="bench",
                            regimen_name=regimen.name, regimen=json.dumps(regimen.to_dict(), sort_keys=True),
                            source=source))
    n = 0
    for day in range(days):
        for hour in BOUT_HOURS:
            n += 1
            started = START + dt.timedelta(days=day, hours=hour)
            minutes = rng.randint(10, 20)
            session_id = f"s-{index:02d}{n:08d}"
            add("sessions", dict(
                session_id=session_id, started_utc=iso_utc(started), device=f"serial:///dev/ttyACM0?id={platform}",
                platform_id=platform, simulated=0, time_base="platform clock", subject=subject, operator="bench",
                calibration_id=f"{platform}-cal", preset="human-30hz-0.4g", frequency_hz=30.0, peak_g=0.4,
                duration_s=60.0 * minutes, ramp_s=2.0, tol_frequency_hz=1.0, tol_accel_fraction=0.1,
                max_thd_fraction=0.1, min_in_spec_fraction=0.9, window_s=1.0, livctl_version="bench", host="station",
                pid=1000 + index, regimen=regimen.name))
            for i in range(60 * minutes):
                peak = 0.4 * (1 + 0.003 * math.sin(i + n))
                add("windows", dict(
                    session_id=session_id, idx=i, phase="deliver", t_s=float(i), duration_s=1.0, drive=0.27,
                    frequency_hz=30.0 + 1e-4 * math.cos(i), peak_g=peak, rms_g=peak / math.sqrt(2), thd_percent=0.9,
                    snr_db=19.3, sinad_db=19.2, dc_g=1.0, axis="z", off_axis_percent=1.1, in_spec=1, reasons="[]"))
            add("session_ends", dict(
                session_id=session_id, ended_utc=iso_utc(started + dt.timedelta(minutes=minutes, seconds=10)),
                status="completed", reason=None, delivered_s=60.0 * minutes, in_spec_s=60.0 * minutes,
                in_spec_fraction=1.0, mean_frequency_hz=30.0, mean_peak_g=0.4, mean_thd_percent=0.9, in_spec=1,
                window_count=60 * minutes))
        if day % 5 == 4:
            flush()
    flush()
    db.execute("UPDATE chain_head SET seq = ?, hash = ?", (seq, prev))
    db.execute("COMMIT")
    db.close()
    return seq


def sync_station(args) -> tuple[int, float]:
    path, url = args
    from livctl.multisite.connect import connect
    from livctl.multisite.push import push

    started = time.perf_counter()
    with DoseLog(path, create=False) as log, connect(url) as conn:
        sent = push(conn, url, log).sent
    return sent, time.perf_counter() - started


def copy_station(args) -> int:
    """The baseline: the same rows read from the same file, COPY'd bare into plain tables."""
    path, url, station = args
    import psycopg

    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    count = 0
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        for table, columns in RECORD_COLUMNS.items():
            with conn.cursor().copy(f"COPY plain.{table} (station, seq, prev_hash, hash, {', '.join(columns)}) "
                                    "FROM STDIN") as copy:
                for row in db.execute(f"SELECT seq, prev_hash, hash, {', '.join(columns)} FROM {table} ORDER BY seq"):
                    copy.write_row((station, *row))
                    count += 1
    db.close()
    return count


def pool_map(function, jobs, workers: int) -> list:
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        return pool.map(function, jobs, chunksize=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=0.1, help="share of a year per station (default 0.1: 36 days)")
    parser.add_argument("--stations", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2, help="stations syncing at once (default 2)")
    parser.add_argument("--keep", action="store_true", help="keep the station logs and the server's directory")
    args = parser.parse_args()
    days = max(1, round(365 * args.scale))
    work = Path(tempfile.mkdtemp(prefix="livctl-bench-sync-"))
    print(f"{args.stations} stations x {days} days (scale {args.scale:g}), 2 bouts a day of 10-20 min in 1 s windows; "
          f"{os.cpu_count()} CPUs")

    started = time.perf_counter()
    paths = [str(work / f"station-{i:02d}.sqlite") for i in range(args.stations)]
    counts = pool_map(write_station, [(p, i, days) for i, p in enumerate(paths)], max(1, os.cpu_count() or 1))
    total = sum(counts)
    print(f"station logs written: {total:,} records in {time.perf_counter() - started:.0f} s")

    server = pgserver.PrivateServer(settings={"fsync": "on", "full_page_writes": "on", "synchronous_commit": "on",
                                              "shared_buffers": "256MB", "max_wal_size": "4GB"})
    server.start()
    try:
        from livctl.multisite.admin import add_coordinator, add_station
        from livctl.multisite.connect import connect
        from livctl.multisite.migrations import migrate

        server.psql("CREATE DATABASE study")
        admin = server.url(database="study")
        with connect(admin) as conn:
            migrate(conn)
            for i in range(args.stations):
                add_station(conn, f"station-{i:02d}")
            add_coordinator(conn, "coordinator")
            conn.execute("CREATE SCHEMA plain")
            for table in RECORD_COLUMNS:
                conn.execute(f"CREATE TABLE plain.{table} (LIKE livctl.{table} INCLUDING DEFAULTS, "
                             "PRIMARY KEY (station, seq))")

        t = time.perf_counter()
        copied = sum(pool_map(copy_station, [(p, admin, f"station-{i:02d}") for i, p in enumerate(paths)], args.workers))
        bare_s = time.perf_counter() - t
        t = time.perf_counter()
        synced = pool_map(sync_station, [(p, server.url(f"station-{i:02d}", "study")) for i, p in enumerate(paths)],
                          args.workers)
        sync_s = time.perf_counter() - t
        sent = sum(s for s, _ in synced)
        assert sent == total == copied, (sent, total, copied)
        print(f"ingest: {sent:,} records in {sync_s:.1f} s = {sent / sync_s:,.0f} records/s "
              f"({args.workers} stations at a time); bare COPY of the same rows {bare_s:.1f} s = "
              f"{copied / bare_s:,.0f} records/s; ratio {sync_s / bare_s:.2f}")

        with connect(admin) as conn:
            conn.execute("VACUUM ANALYZE")
        report_s, bare_scan_s = time_report(server.url("coordinator", "study"), admin)
        print(f"study report ({args.stations} subjects, every session's windows): {report_s:.1f} s; bare scan of "
              f"the same columns {bare_scan_s:.1f} s; ratio {report_s / bare_scan_s:.2f}")
        verify_s, scan_s, walked = time_verify(server.url("coordinator", "study"), admin)
        assert walked == total
        print(f"full verify (every record hashed again, every link): {verify_s:.1f} s = {walked / verify_s:,.0f} "
              f"records/s; bare scan of every row {scan_s:.1f} s; ratio {verify_s / scan_s:.2f}")
        with connect(admin) as conn:
            size = conn.execute("SELECT pg_database_size('study')").fetchone()[0]
        print(f"server database: {size / 1e9:.2f} GB (livctl's tables and the baseline's copy)")
    finally:
        if args.keep:
            print(f"kept {work} and the server in {server.root} (stop it with pg_ctl -D {server.data} stop)")
        else:
            server.stop()
            for p in paths:
                for suffix in ("", "-wal", "-shm"):
                    Path(p + suffix).unlink(missing_ok=True)
            work.rmdir()
    return 0


def time_report(coordinator_url: str, admin_url: str) -> tuple[float, float]:
    import psycopg

    from livctl.multisite.study import StudyLog
    from livctl.study.report import build_subject_report

    t = time.perf_counter()
    with StudyLog(coordinator_url) as study:
        now = dt.datetime(2027, 1, 10, tzinfo=dt.timezone.utc)
        reports = [build_subject_report(study, s["subject_id"], first=None, last=None, now=now, check=None,
                                        timezone="UTC", timezone_note=None) for s in study.subjects()]
    report_s = time.perf_counter() - t
    assert reports and all(r.delivered_bouts for r in reports)
    t = time.perf_counter()
    with psycopg.connect(admin_url) as conn:
        conn.execute("SELECT s.*, e.* FROM plain.sessions s JOIN plain.session_ends e USING (station, session_id)") \
            .fetchall()
        with conn.cursor(name="scan") as cur:
            cur.itersize = 20_000
            cur.execute("SELECT session_id, frequency_hz, rms_g, duration_s FROM plain.windows")
            for _ in cur:
                pass
    return report_s, time.perf_counter() - t


def time_verify(coordinator_url: str, admin_url: str) -> tuple[float, float, int]:
    import psycopg

    from livctl.multisite.study import StudyLog

    t = time.perf_counter()
    with StudyLog(coordinator_url) as study:
        checks = study.verify_stations()
    verify_s = time.perf_counter() - t
    assert all(c.ok for c in checks), [c.problem for c in checks if not c.ok]
    t = time.perf_counter()
    with psycopg.connect(admin_url) as conn:
        for table in RECORD_COLUMNS:
            with conn.cursor(name=f"scan_{table}") as cur:
                cur.itersize = 20_000
                cur.execute(f"SELECT * FROM plain.{table} ORDER BY station, seq")
                for _ in cur:
                    pass
    return verify_s, time.perf_counter() - t, sum(c.records for c in checks)


if __name__ == "__main__":
    sys.exit(main())
