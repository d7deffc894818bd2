"""`livctl log`: the sessions in the dose log, and one session in full."""

from __future__ import annotations

import argparse

from livctl.cli.common import add_json_option, add_log_option, fmt, log_path, minutes_seconds, print_json, table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "log",
        help="list the sessions in the dose log, or show one",
        description="List the sessions in the dose log, newest first (accelerations are peak g). "
        "`livctl log show ID` prints one session; an unambiguous prefix of its id is enough.",
    )
    add_log_option(p)
    add_json_option(p, "a list of session objects")
    p.add_argument("--limit", type=int, default=20, metavar="N", help="show the newest N sessions (default 20; 0: all)")
    p.set_defaults(run=run_list)
    actions = p.add_subparsers(title="actions", metavar="ACTION")
    show = actions.add_parser("show", help="print one session", description="Print one session of the dose log.")
    show.add_argument("session_id", metavar="ID", help="session id, or an unambiguous prefix of it")
    show.add_argument("--windows", action="store_true", help="also list every measured window")
    add_log_option(show)
    add_json_option(show, "the session (with its windows) as one object")
    show.set_defaults(run=run_show)


def _open(args: argparse.Namespace):
    from livctl.cli.session import report_orphans
    from livctl.doselog import DoseLog
    from livctl.recovery import close_orphans

    log = DoseLog(log_path(args), create=False)
    report_orphans(close_orphans(log))
    return log


def run_list(args: argparse.Namespace) -> int:
    with _open(args) as log:
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
            s["status"] + ("" if s["in_spec"] or s["status"] != "completed" else " (out of spec)"),
            f"{rx['frequency_hz']:g} Hz {rx['peak_g']:g} g",
            f"{minutes_seconds(s['delivered_s'])}/{minutes_seconds(rx['duration_s'])}",
            fmt(s["mean_frequency_hz"], ".2f"),
            fmt(s["mean_peak_g"], ".3f"),
            fmt(share, ".0f"),
        ])
    print(table(rows, ["session", "started (UTC)", "subject", "status", "prescribed", "delivered",
                       "Hz", "g peak", "in spec %"]))
    return 0


def run_show(args: argparse.Namespace) -> int:
    from livctl.cli.session import render_summary

    with _open(args) as log:
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
