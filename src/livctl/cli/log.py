"""`livctl log`: the sessions in the dose log, and one session in full."""

from __future__ import annotations

import argparse
import sys

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
Check the dose log's hash chain: every record (session start, window, session end, subject,
regimen assignment) carries the hash of the one before it, so an edited, deleted, inserted or
reordered record breaks the chain. Prints the number of records and the head hash; write the
head down (reports print it) and a later verify proves nothing before it changed since.
A broken chain is a one-line error naming the first bad record (exit 2); nothing is repaired."""

EXPORT_EPILOG = """\
examples:
  livctl log export --csv > sessions.csv
  livctl log export --csv --windows --subject P-017 --out p017-windows.csv
  livctl log export --json --from 2026-03-01 --to 2026-03-31 --status completed --out march.json

Dates are calendar days in --tz (default: the system's time zone), both ends included. The log's
chain is verified first (exit 2 if broken); --no-verify skips that and says so in the JSON."""


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

    verify = actions.add_parser("verify", help="check the log's hash chain", description=VERIFY_DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_log_option(verify)
    add_json_option(verify, "the result")
    verify.set_defaults(run=run_verify)

    export = actions.add_parser(
        "export", help="export sessions (or windows) as CSV or JSON",
        description="Export the dose log: one row per session, or with --windows one per measured window.",
        epilog=EXPORT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fmt_group = export.add_mutually_exclusive_group(required=True)
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
    export.add_argument("--out", metavar="FILE", help="write to FILE (default: stdout)")
    export.add_argument("--no-verify", action="store_true", help="skip the chain check")
    add_log_option(export)
    export.set_defaults(run=run_export)


def open_log(args: argparse.Namespace):
    """The log named by --log, after closing the sessions of livctl processes that died."""
    from livctl.cli.session import report_orphans
    from livctl.doselog import DoseLog
    from livctl.recovery import close_orphans

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
    if args.json:
        session["windows"] = windows
        print_json(session)
        return 0
    print(render_summary(session))
    print(f"  started      {session['started_utc']}  ended {session['ended_utc'] or '-'}")
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
    from livctl.doselog import DoseLog
    from livctl.errors import LogError

    with DoseLog(log_path(args), create=False) as log:  # only reads: no orphan is closed here
        check = log.verify(verify_progress())
    if args.json:
        print_json(dict(check.to_dict(), log=str(log.path)))
    for warning in check.warnings:
        print(f"livctl: warning: {warning}", file=sys.stderr)
    if not check.ok:
        raise LogError(f"{log.path} fails verification: {check.problem}; nothing was repaired")
    if not args.json:
        print(f"{log.path}: chain intact, {check.records} records; head {check.head_seq} {check.head_hash}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    import datetime as dt

    from livctl import __version__
    from livctl.clock import utc_now
    from livctl.doselog import iso_utc
    from livctl.export import SESSION_FIELDS, WINDOW_FIELDS, session_row, window_row, write_csv
    from livctl.files import atomic_output
    from livctl.regimen import zone
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
