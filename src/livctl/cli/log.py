"""`livctl log`: the sessions in the dose log, and one session in full."""

from __future__ import annotations

import argparse
import sys

from livctl.cli.helpformat import HelpFormatter
from livctl.cli.common import (
    add_json_option,
    add_log_option,
    check_date_range,
    date_arg,
    fmt,
    json_text,
    log_path,
    minutes_seconds,
    print_json,
    table,
    verify_progress,
    whole_number,
)

VERIFY_DESCRIPTION = """\
Check the dose log's hash chain: every record (session start, window, raw-signal archive, session
end, subject, regimen assignment) carries the hash of the one before it, so an edited, deleted,
inserted or reordered record breaks the chain. Prints the number of records and the head hash;
write the head down (reports print it) and a later verify proves nothing before it changed since.
Then every session's raw signal (<log>.archive/<session>.h5) is checked against the SHA-256 its
session's end chained: a missing or altered file is named (--no-raw skips this).
A broken chain or archive is an error naming the first bad one (exit 2); nothing is repaired.
With --log postgresql://... (a study server, docs/multisite.md): every station's chain on the
server, one line per station (records, head, last sync); a broken one is named (exit 1)."""

EXPORT_EPILOG = """\
examples:
  livctl log export --csv > sessions.csv
  livctl log export --csv --windows --subject P-017 --out p017-windows.csv
  livctl log export --json --from 2026-03-01 --to 2026-03-31 --status completed --out march.json
  livctl log export --raw s-1a2b3c --out s-1a2b3c.h5      # the session's raw signal, as sealed
  livctl log export --raw s-1a2b3c --csv --out s-1a2b3c.csv
  livctl log export --csv --log postgresql://alice@study.example.org/livctl   every station's sessions

Dates are calendar days in --tz (default: the system's time zone), both ends included. The log's
chain is verified first (exit 2 if broken); --no-verify skips that and says so in the JSON.
--raw hands one session's raw signal to someone without livctl: the HDF5 archive byte for byte
(its SHA-256 is the one the log chained; see docs/archive.md), or with --csv the samples in m/s^2
(time, x, y, z) with the session's metadata in ## lines, a file `livctl validate` reads too.
The archive is checked against its SHA-256 first, always."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "log",
        help="list the sessions in the dose log, or show one",
        description="List the sessions in the dose log, newest first (accelerations are peak g). "
        "`livctl log show ID` prints one session; an unambiguous prefix of its id is enough.",
    )
    add_log_option(p)
    add_json_option(p, "a list of session objects")
    p.add_argument("--limit", type=whole_number(0), default=20, metavar="N", help="show the newest N sessions (default 20; 0: all)")
    p.set_defaults(run=run_list)
    actions = p.add_subparsers(title="actions", metavar="ACTION")
    show = actions.add_parser("show", help="print one session", description="Print one session of the dose log.")
    show.add_argument("session_id", metavar="ID", help="session id, or an unambiguous prefix of it")
    show.add_argument("--windows", action="store_true", help="also list every measured window")
    add_log_option(show)
    add_json_option(show, "the session (with its windows) as one object")
    show.set_defaults(run=run_show)

    verify = actions.add_parser("verify", help="check the log's hash chain and the raw-signal files",
                                description=VERIFY_DESCRIPTION, formatter_class=HelpFormatter)
    verify.add_argument("--no-raw", action="store_true", help="check the chain only, not the raw-signal files")
    add_log_option(verify)
    add_json_option(verify, "the result")
    verify.set_defaults(run=run_verify)

    export = actions.add_parser(
        "export", help="export sessions (or windows) as CSV or JSON",
        description="Export the dose log: one row per session, or with --windows one per measured window.",
        epilog=EXPORT_EPILOG, formatter_class=HelpFormatter,
    )
    fmt_group = export.add_mutually_exclusive_group()
    fmt_group.add_argument("--csv", action="store_const", dest="format", const="csv", help="CSV with a header row")
    fmt_group.add_argument("--json", action="store_const", dest="format", const="json",
                           help="one JSON document: provenance, chain check, sessions")
    export.add_argument("--subject", action="append", metavar="ID", help="only this subject (repeatable)")
    export.add_argument("--from", dest="date_from", type=date_arg, metavar="DATE", help="sessions started on or after DATE")
    export.add_argument("--to", dest="date_to", type=date_arg, metavar="DATE", help="sessions started on or before DATE")
    export.add_argument("--tz", metavar="ZONE", help="time zone of --from/--to (default: the system's)")
    export.add_argument("--status", action="append", metavar="STATUS",
                        choices=("completed", "aborted", "interrupted", "running"),
                        help="only sessions with this status (repeatable): completed, aborted, interrupted, running")
    export.add_argument("--windows", action="store_true", help="one row per measured window (JSON: nested)")
    export.add_argument("--raw", metavar="ID", help="one session's raw signal: the HDF5 archive (--out FILE.h5), "
                                                    "or with --csv its samples as CSV")
    export.add_argument("--out", metavar="FILE", help="write to FILE (default: stdout)")
    export.add_argument("--no-verify", action="store_true", help="skip the chain check")
    add_log_option(export)
    export.set_defaults(run=run_export)


def open_log(args: argparse.Namespace):
    """The log named by --log, after closing the sessions of livctl processes that died; with
    `--log postgresql://...` (or `--log server`, the configuration's), the study server's records of
    every station the role may read (livctl.multisite.study)."""
    from livctl.cli.server import study_log_url

    url = study_log_url(args)
    if url is not None:
        from livctl.multisite.study import StudyLog

        return StudyLog(url)
    from livctl.cli.session import report_orphans
    from livctl.records.doselog import DoseLog
    from livctl.records.recovery import close_orphans

    log = DoseLog(log_path(args), create=False)
    report_orphans(close_orphans(log))
    return log


def run_list(args: argparse.Namespace) -> int:
    with open_log(args) as log:
        sessions = log.sessions(limit=args.limit if args.limit > 0 else None)
    if args.json:
        print_json(sessions)
        return 0
    if not sessions:
        print("no sessions in the log yet")
        return 0
    rows = []
    for s in sessions:
        rx = s["prescription"]
        share = None if s["in_spec_fraction"] is None else 100 * s["in_spec_fraction"]
        rows.append([
            s["session_id"],
            s["started_utc"][:16].replace("T", " "),
            s["subject"] or "-",
            s["platform_id"] + (" (simulated)" if s["simulated"] else ""),
            ("PRACTICE " if s["practice"] else "") + s["status"]
            + ("" if s["in_spec"] or s["status"] != "completed" or s["practice"] else " (out of spec)"),
            f"{rx['frequency_hz']:g} Hz {rx['peak_g']:g} g",
            f"{minutes_seconds(s['delivered_s'])}/{minutes_seconds(rx['duration_s'])}",
            fmt(s["mean_frequency_hz"], ".2f"),
            fmt(s["mean_peak_g"], ".3f"),
            fmt(share, ".0f"),
        ])
    print(table(rows, ["session", "started (UTC)", "subject", "platform", "status", "prescribed", "delivered",
                       "Hz", "g peak", "in spec %"]))
    return 0


def run_show(args: argparse.Namespace) -> int:
    from livctl.cli.session import render_summary

    with open_log(args) as log:
        session = log.find_session(args.session_id)
        windows = log.windows(session["session_id"]) if (args.windows or args.json) else []
        archives = log.archives(session["session_id"])
    archive = archives[0] if archives else None
    if args.json:
        session["archive"] = archive
        session["windows"] = windows
        print_json(session)
        return 0
    print(render_summary(session))
    print(f"  started      {session['started_utc']}  ended {session['ended_utc'] or '-'}")
    if archive is not None:
        state = "" if archive["complete"] else f" (incomplete: {archive['note']})"
        print(f"  raw signal   {archive['file']}, {archive['samples']:,} samples, {archive['bytes'] / 1e6:.1f} MB, "
              f"SHA-256 {archive['sha256'][:16]}...{state}")
    if args.windows:
        rows = [[
            str(w["idx"]), w["phase"], f"{w['t_s']:.1f}", f"{w['drive']:.3f}",
            fmt(w["frequency_hz"], ".2f"), fmt(w["peak_g"], ".3f"), fmt(w["thd_percent"], ".1f"),
            "yes" if w["in_spec"] else "no", "; ".join(w["reasons"]),
        ] for w in windows]
        print()
        print(table(rows, ["#", "phase", "t (s)", "drive", "Hz", "g peak", "THD %", "in spec", "why not"]))
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from livctl.cli.server import run_study_verify, study_log_url
    from livctl.records.doselog import DoseLog
    from livctl.errors import LogError

    if study_log_url(args) is not None:
        return run_study_verify(args)
    with DoseLog(log_path(args), create=False) as log:  # only reads: no orphan is closed here
        check = log.verify(verify_progress())
        raw = None if args.no_raw or not check.ok else check_raw_signal(log)
    if args.json:
        print_json(dict(check.to_dict(), log=str(log.path), raw_signal=raw))
    for warning in check.warnings:
        print(f"livctl: warning: {warning}", file=sys.stderr)
    if not check.ok:
        raise LogError(f"{log.path} fails verification: {check.problem}; nothing was repaired")
    if not args.json:
        print(f"{log.path}: chain intact, {check.records} records; head {check.head_seq} {check.head_hash}")
        if raw is not None:
            print(_raw_summary(raw))
    if raw is not None and raw["problems"]:
        for problem in raw["problems"][1:]:
            print(f"livctl: also: {problem['problem']}", file=sys.stderr)
        first = raw["problems"][0]
        raise LogError(f"{log.path} fails verification: {first['problem']}; nothing was repaired")
    return 0


def check_raw_signal(log) -> dict:
    """Every sealed archive against the SHA-256 the log chained; sessions still running (not yet
    sealed) and sessions without an archive (older logs) are counted."""
    from livctl.records.archive import sealed_problem

    records = log.archives()
    sealed = {r["session_id"] for r in records}
    problems = []
    for r in records:
        problem = sealed_problem(log.path.parent, r)
        if problem is not None:
            problems.append({"session_id": r["session_id"], "seq": r["seq"], "file": r["file"],
                             "problem": f"the raw signal of session {r['session_id']} (record {r['seq']}): {problem}"})
    sessions = log.sessions()
    running = [s["session_id"] for s in sessions if s["status"] == "running"]
    without = [s["session_id"] for s in sessions if s["status"] != "running" and s["session_id"] not in sealed]
    return {"checked": len(records), "matching": len(records) - len(problems),
            "incomplete": [r["session_id"] for r in records if not r["complete"]],
            "running": running, "without_archive": len(without), "problems": problems}


def _raw_summary(raw: dict) -> str:
    parts = [f"raw signal: {raw['matching']} of {raw['checked']} archives match the SHA-256 the log chained"]
    if raw["incomplete"]:
        parts.append(f"{len(raw['incomplete'])} incomplete (a crash or a failed write; `livctl log show ID` says which)")
    if raw["running"]:
        parts.append(f"{len(raw['running'])} session{'s' if len(raw['running']) > 1 else ''} still running (not sealed yet)")
    if raw["without_archive"]:
        parts.append(f"{raw['without_archive']} session{'s' if raw['without_archive'] > 1 else ''} without one "
                     "(an older livctl, or none could be kept)")
    return "; ".join(parts)


def run_export(args: argparse.Namespace) -> int:
    import datetime as dt

    from livctl.errors import UsageError

    if args.raw is not None:
        return export_raw(args)
    if args.format is None:
        raise UsageError("say what to export: --csv or --json (or --raw ID for one session's raw signal)")
    from livctl import __version__
    from livctl.clock import utc_now
    from livctl.records.doselog import iso_utc
    from livctl.records.export import SESSION_FIELDS, WINDOW_FIELDS, session_row, window_row, write_csv
    from livctl.records.files import atomic_output
    from livctl.study.regimen import zone
    from livctl.cli.common import station

    check_date_range(args)
    name, note = station().timezone()
    if args.tz:
        name, note = args.tz, None
    tz = zone(name)

    def utc_bound(day):
        if day is None:
            return None
        return iso_utc(dt.datetime.combine(day, dt.time(), tzinfo=tz).astimezone(dt.timezone.utc))

    with open_log(args) as log:
        check = None if args.no_verify else log.verified(verify_progress())
        for subject in args.subject or ():
            if log.has_subjects():
                log.subject(subject)  # an unknown subject is an error, not an empty export
        sessions = log.sessions(
            subjects=args.subject,
            started_from_utc=utc_bound(args.date_from),
            started_before_utc=utc_bound(None if args.date_to is None else args.date_to + dt.timedelta(days=1)),
            statuses=args.status,
            oldest_first=True,
        )

        def write(stream) -> int:
            """Rows go out as they are read: a year of windows never sits in memory."""
            if args.format == "csv" and args.windows:
                rows = (window_row(s, w) for s in sessions for w in log.windows(s["session_id"]))
                return write_csv(stream, rows, WINDOW_FIELDS)
            if args.format == "csv":
                return write_csv(stream, (session_row(s) for s in sessions), SESSION_FIELDS)
            header = {
                "log": str(log.path),
                "exported_utc": iso_utc(utc_now()),
                "livctl_version": __version__,
                "chain": {"verified": False} if check is None else dict(check.to_dict(), verified=True),
                **({"stations": log.stations()} if hasattr(log, "stations") else {}),  # a study server's
                "filters": {
                    "subjects": args.subject, "from": None if args.date_from is None else args.date_from.isoformat(),
                    "to": None if args.date_to is None else args.date_to.isoformat(), "timezone": str(tz),
                    "timezone_note": note, "statuses": args.status, "windows": args.windows,
                },
            }
            stream.write(json_text(header).rstrip()[:-1].rstrip() + ',\n  "sessions": [')
            for i, s in enumerate(sessions):
                if args.windows:
                    s = dict(s, windows=log.windows(s["session_id"]))
                stream.write(("," if i else "") + "\n" + json_text(s).rstrip())
            stream.write("\n]}\n")
            return len(sessions)

        if args.out is not None:  # an empty --out is a mistake, not stdout
            with atomic_output(args.out) as stream:
                count = write(stream)
            unit = "windows" if args.windows and args.format == "csv" else "sessions"
            print(f"wrote {count} {unit} to {args.out}", file=sys.stderr)
        else:
            write(sys.stdout)
    if note:  # after the work: a refusal stays one line
        print(f"livctl: {note}", file=sys.stderr)
    return 0


def export_raw(args: argparse.Namespace) -> int:
    """`livctl log export --raw ID`: the session's archive, checked against the SHA-256 its end chained."""
    from livctl.records.archive import read_archive, sealed_problem
    from livctl.errors import LogError, UsageError
    from livctl.records.files import atomic_output

    unused = [name for name, given in (("--json", args.format == "json"), ("--windows", args.windows),
                                       ("--subject", args.subject), ("--from", args.date_from),
                                       ("--to", args.date_to), ("--status", args.status), ("--tz", args.tz)) if given]
    if unused:
        raise UsageError(f"--raw exports one session's raw signal; {', '.join(unused)} does not apply to it")
    csv = args.format == "csv"
    if not csv and not args.out:
        raise UsageError("--raw writes the HDF5 archive to a file: give --out FILE.h5 (or --csv for CSV)")
    with open_log(args) as log:
        check = None if args.no_verify else log.verified(verify_progress())
        session = log.find_session(args.raw)
        session_id = session["session_id"]
        records = log.archives(session_id)
        if not records:
            why = ("it is still running" if session["status"] == "running"
                   else "it was run by an older livctl, or none could be kept")
            raise LogError(f"session {session_id} has no sealed raw signal: {why}")
        record = records[0]
        problem = sealed_problem(log.path.parent, record)
        if problem is not None:
            raise LogError(f"session {session_id}'s raw signal fails verification: {problem}; nothing was exported")
        path = log.path.parent / record["file"]
    if not csv:
        with open(path, "rb") as source, atomic_output(args.out, "wb") as out:
            for piece in iter(lambda: source.read(1 << 20), b""):
                out.write(piece)
        print(f"wrote the raw signal of session {session_id} to {args.out}: {record['samples']:,} samples, "
              f"SHA-256 {record['sha256']} (record {record['seq']} of the log"
              f"{'' if check is None else f', head {check.head_seq} {check.head_hash}'})", file=sys.stderr)
        return 0
    data = read_archive(path)

    def write(stream) -> None:
        write_raw_csv(stream, data, session, record)

    if args.out:
        with atomic_output(args.out) as stream:
            write(stream)
        print(f"wrote the raw signal of session {session_id} to {args.out}: {data.accel_mps2.shape[0]:,} samples",
              file=sys.stderr)
    else:
        write(sys.stdout)
    return 0


def write_raw_csv(stream, data, session: dict, record: dict) -> None:
    """Time (s, the sensor's) and x, y, z (m/s^2, 9 significant digits: far below one count), after
    `##` lines with what the samples are; `livctl validate` and any spreadsheet read it."""
    import numpy as np

    rx = session["prescription"]
    header = {
        "livctl raw signal of session": session["session_id"],
        "sha256 of the archive": record["sha256"],
        "platform": f"{session['platform_id']} ({session['device']})",
        "sensor rate (Hz)": f"{data.rate_hz:g}",
        "prescription": f"{rx['frequency_hz']:g} Hz, {rx['peak_g']:g} g peak, {rx['duration_s']:g} s",
        "status": session["status"] + (f": {session['reason']}" if session["reason"] else ""),
        "units": "time in s on the sensor's clock; acceleration in m/s^2, gravity included",
    }
    for key, value in header.items():
        stream.write(f"## {key}: {value}\n")
    stream.write("time (s),accel_x (m/s^2),accel_y (m/s^2),accel_z (m/s^2)\n")
    times = data.times_s()
    accel = data.accel_mps2
    step = 65536
    for start in range(0, accel.shape[0], step):
        rows = np.column_stack([times[start : start + step], accel[start : start + step]])
        lines = [f"{t:.9f},{x:.9g},{y:.9g},{z:.9g}" for t, x, y, z in rows.tolist()]
        stream.write("\n".join(lines) + "\n")
