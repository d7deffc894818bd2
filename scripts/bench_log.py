#!/usr/bin/env python3
"""How fast the hash-chained dose log takes a year of a study, and how fast it verifies.

    python scripts/bench_log.py [--subjects 20] [--days 365] [--writers 4] [--keep]

Writes one year of a 20-subject study into a fresh log: every subject has two 10-minute bouts a
day, each a session start, 608 windows (pre-check, ramps, delivery; one committed record each, as
a session writes them) and a session end. Several processes write at once, one per platform, each
for its share of the subjects, so the chain is extended by concurrent writers as in a lab. Records
are stamped with the study's simulated dates. Then it verifies the whole chain and builds one
subject's year report (the numbers and the figure).

Prints records per second, the verify time and the time of the quick check that every command
runs when it opens the log (`DoseLog.check_damage`), with baselines measured in the same run (shared
machines drift by 30 % or more): the same window rows inserted and committed one by one into a
table without the chain (what livctl 0.1 did), and a plain scan of every row of the log.
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
sys.path[:0] = [str(REPO / "src"), str(REPO)]

from livctl.records import doselog  # noqa: E402
from livctl.records.doselog import WINDOW_COLUMNS, DoseLog, SessionStart  # noqa: E402

START_DATE = dt.date(2026, 1, 5)
PHASES = ["precheck"] * 4 + ["ramp_up"] * 2 + ["deliver"] * 600 + ["ramp_down"] * 2
BOUT_HOURS = (8, 18)


def bout_windows() -> list[dict]:
    """The 608 windows of one 10-minute bout at 30 Hz, 0.4 g peak (values vary a little, as measured)."""
    out = []
    for i, phase in enumerate(PHASES):
        level = {"precheck": 0.05 * 2 ** min(i, 3), "ramp_up": 0.2, "deliver": 0.4, "ramp_down": 0.2}[phase]
        peak = level * (1 + 0.003 * math.sin(i))
        out.append(dict(idx=i, phase=phase, t_s=float(i), duration_s=1.0, drive=0.27, frequency_hz=30.0 + 1e-4 * math.cos(i),
                        peak_g=peak, rms_g=peak / math.sqrt(2), thd_percent=0.9, snr_db=19.3, sinad_db=19.2, dc_g=1.0,
                        axis="z", off_axis_percent=1.1, in_spec=phase == "deliver", reasons=[]))
    return out


def start_record(subject: str, platform: str) -> SessionStart:
    return SessionStart(
        device=f"sim://?id={platform}", platform_id=platform, simulated=True, time_base="virtual time",
        subject=subject, operator="bench", preset="human-30hz-0.4g", frequency_hz=30.0, peak_g=0.4, duration_s=600.0,
        ramp_s=2.0, tol_frequency_hz=1.0, tol_accel_fraction=0.1, max_thd_fraction=0.1, min_in_spec_fraction=0.9,
        window_s=1.0, calibration_id=f"{platform}-cal",
    )


def writer(log_path: str, index: int, writers: int, subjects: list[str], days: int, progress) -> None:
    """One platform's process: its subjects' bouts, day by day."""
    mine = subjects[index::writers]
    platform = f"plate-{index + 1}"
    windows = bout_windows()
    clock = [dt.datetime.combine(START_DATE, dt.time(), tzinfo=dt.timezone.utc)]
    doselog.utc_now = lambda: clock[0]  # stamp records with the study's dates
    with DoseLog(log_path) as log:
        for day in range(days):
            date = START_DATE + dt.timedelta(days=day)
            for hour in BOUT_HOURS:
                for n, subject in enumerate(mine):
                    clock[0] = dt.datetime.combine(date, dt.time(hour, 15 * n % 60), tzinfo=dt.timezone.utc)
                    sid = log.start_session(start_record(subject, platform))
                    for w in windows:
                        log.add_window(sid, w)
                    clock[0] += dt.timedelta(seconds=615)
                    log.end_session(sid, dict(status="completed", reason=None, delivered_s=600.0, in_spec_s=600.0,
                                              in_spec_fraction=1.0, mean_frequency_hz=30.0, mean_peak_g=0.4,
                                              mean_thd_percent=0.9, in_spec=True, window_count=len(windows)))
            with progress.get_lock():
                progress.value += 1


def baseline_plain_inserts(path: Path, count: int) -> float:
    """Seconds to insert and commit `count` window rows one by one, without the chain (livctl 0.1)."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    columns = ", ".join(WINDOW_COLUMNS)
    db.execute(f"CREATE TABLE windows ({columns}, PRIMARY KEY (session_id, idx)) WITHOUT ROWID")
    sql = f"INSERT INTO windows ({columns}) VALUES ({', '.join('?' * len(WINDOW_COLUMNS))})"
    windows = bout_windows()
    start = time.perf_counter()
    for i in range(count):
        w = windows[i % len(windows)]
        row = dict(w, session_id=f"s-{i // len(windows)}", reasons="[]", in_spec=int(w["in_spec"]))
        db.execute("BEGIN IMMEDIATE")
        db.execute(sql, [row[c] for c in WINDOW_COLUMNS])
        db.execute("COMMIT")
    seconds = time.perf_counter() - start
    db.close()
    return seconds


def chained_inserts(path: Path, count: int) -> float:
    """Seconds for `count` DoseLog.add_window calls in one process (the same rows, with the chain)."""
    windows = bout_windows()
    with DoseLog(path) as log:
        sid = log.start_session(start_record("P-x", "plate-x"))
        start = time.perf_counter()
        for i in range(count):
            log.add_window(sid, windows[i % len(windows)])
        return time.perf_counter() - start


def plain_scan(path: Path) -> tuple[float, int]:
    db = sqlite3.connect(path)
    start = time.perf_counter()
    rows = 0
    for table in ("subjects", "assignments", "sessions", "windows", "session_ends"):
        for _ in db.execute(f"SELECT * FROM {table} ORDER BY seq"):
            rows += 1
    db.close()
    return time.perf_counter() - start, rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=20)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--writers", type=int, default=4, help="concurrent writer processes (platforms)")
    parser.add_argument("--baseline-records", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="keep the log (path printed)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-log-"))
    log_path = tmp / "study.sqlite"
    subjects = [f"P-{i + 1:03d}" for i in range(args.subjects)]
    with DoseLog(log_path) as log:
        for subject in subjects:
            log.add_subject(subject, "human", operator="bench")
            regimen = {"name": "human-30hz-0.4g", "frequency_hz": 30.0, "peak_g": 0.4, "minutes_per_bout": 10.0,
                       "bouts_per_day": 2, "min_rest_minutes": 60.0, "weekdays": ["mon", "tue", "wed", "thu", "fri",
                       "sat", "sun"], "days": args.days, "start": START_DATE.isoformat(), "timezone": "UTC",
                       "preset": "human-30hz-0.4g", "note": "", "end": None}
            log.assign_regimen(subject, name="human-30hz-0.4g", regimen=regimen, source="bench", operator="bench")

    expected = args.subjects * args.days * len(BOUT_HOURS) * (len(PHASES) + 2) + 2 * args.subjects
    print(f"writing {args.days} days of {args.subjects} subjects x {len(BOUT_HOURS)} bouts x {len(PHASES)} windows "
          f"= {expected:,} records with {args.writers} writer processes, {os.cpu_count()} CPUs", flush=True)
    progress = multiprocessing.Value("i", 0)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=writer, args=(str(log_path), i, args.writers, subjects, args.days, progress))
             for i in range(args.writers)]
    start = time.perf_counter()
    for p in procs:
        p.start()
    total_days = args.days * args.writers
    shown = start
    while any(p.is_alive() for p in procs):
        time.sleep(0.05)
        if time.perf_counter() - shown >= 5:
            shown = time.perf_counter()
            print(f"\r  {100 * progress.value / total_days:5.1f} %  {shown - start:7.0f} s", end="", file=sys.stderr,
                  flush=True)
    write_s = time.perf_counter() - start
    print(file=sys.stderr)
    if any(p.exitcode != 0 for p in procs):
        print("a writer failed", file=sys.stderr)
        return 1

    with DoseLog(log_path, create=False, check=False) as log:
        start = time.perf_counter()
        check = log.verify()
        verify_s = time.perf_counter() - start
        quick = []
        for _ in range(5):  # the quick check every command runs when it opens the log (warm cache)
            start = time.perf_counter()
            log.check_damage()
            quick.append(time.perf_counter() - start)
        quick_s = sorted(quick)[2]
    scan_s, scanned = plain_scan(log_path)
    size_mb = log_path.stat().st_size / 1e6

    from livctl.study.report import build_subject_report, render, subject_figure

    with DoseLog(log_path, create=False) as log:
        start = time.perf_counter()
        report = build_subject_report(log, subjects[0], last=START_DATE + dt.timedelta(days=args.days - 1),
                                      check=check)
        report_s = time.perf_counter() - start
        start = time.perf_counter()
        png = render(subject_figure(report), "png")
        figure_s = time.perf_counter() - start

    n = args.baseline_records
    plain_s = baseline_plain_inserts(tmp / "plain.sqlite", n)
    chained_s = chained_inserts(tmp / "chained.sqlite", n)

    print(f"records written    {check.records:,} (expected {expected:,}), log {size_mb:,.0f} MB")
    print(f"write              {write_s:8.1f} s   {check.records / write_s:9,.0f} records/s "
          f"({args.writers} writers, each record committed on its own)")
    print(f"verify             {verify_s:8.1f} s   {check.records / verify_s:9,.0f} records/s   "
          f"chain {'intact' if check.ok else 'BROKEN: ' + str(check.problem)}")
    print(f"quick check        {quick_s:8.2f} s   (median of 5; run by every command that opens the log)")
    print(f"baseline: scan     {scan_s:8.1f} s   {scanned / scan_s:9,.0f} rows/s   verify / scan = {verify_s / scan_s:.1f}")
    print(f"one process, {n:,} windows: chained {1e6 * chained_s / n:6.1f} us/window, "
          f"baseline without chain {1e6 * plain_s / n:6.1f} us/window, chained / baseline = {chained_s / plain_s:.2f}")
    print(f"one subject's year report: numbers {report_s:.1f} s ({report.compliant_bouts} of "
          f"{report.prescribed_bouts} bouts), figure {figure_s:.1f} s ({len(png) / 1e3:.0f} kB PNG)")
    if args.keep:
        print(f"kept {log_path}")
    else:
        for path in tmp.iterdir():
            path.unlink()
        tmp.rmdir()
    return 0 if check.ok else 1


if __name__ == "__main__":
    sys.exit(main())
