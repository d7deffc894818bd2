"""`livctl due`: what each subject is due today, and when the next bout is allowed."""

from __future__ import annotations

import argparse

from livctl.cli.helpformat import HelpFormatter
from livctl.cli.common import add_json_option, add_log_option, print_json, table

EPILOG = """\
Days are the regimen's time-zone days; rest is counted in real elapsed time from the end of the
last bout. A bout is a session that vibrated the subject (interrupted ones included).

examples:
  livctl due                                  every subject, now
  livctl due --subject P-017 --json
  livctl due --at 2026-03-02T23:30            as it will be (or was) then, local time
  livctl due --at 2026-03-02T22:30Z
  livctl due --log postgresql://alice@study.example.org/livctl    every station's subjects (docs/multisite.md)"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "due",
        help="what each subject is due today, and when the next bout is allowed",
        description="For each subject with a regimen: today's bouts (done and prescribed) and when the next "
        "one may start, from the regimen and the bouts in the dose log.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument("--subject", action="append", metavar="ID", help="only this subject (repeatable)")
    p.add_argument("--at", metavar="TIME",
                   help="evaluate at this ISO 8601 time instead of now (without an offset: the lab's time zone, "
                   "from the configuration)")
    add_log_option(p)
    add_json_option(p, "one object per subject")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from zoneinfo import ZoneInfo

    from livctl.cli.log import open_log
    from livctl.clock import utc_now
    import sys

    from livctl.cli.common import station
    from livctl.study.schedule import Plan, parse_instant

    lab_zone, note = station().timezone()
    at = utc_now() if args.at is None else parse_instant(args.at, ZoneInfo(lab_zone))
    with open_log(args) as log:
        ids = args.subject or [s["subject_id"] for s in log.subjects()]
        dues = [Plan.from_log(log, subject_id).due(at) for subject_id in ids]
        stations = log.stations() if hasattr(log, "stations") else None  # a study server: each station's summary
    if note:  # after the work: a refusal stays one line
        print(f"livctl: {note}", file=sys.stderr)
    if args.json:
        print_json([d.to_dict() for d in dues])
        return 0
    if not dues:
        print("no subjects in the log yet; `livctl subject add` adds one")
        return 0
    rows = []
    for d in dues:
        rows.append([
            d.subject,
            d.regimen or "-",
            f"{d.day:%a %d %b} ({d.timezone})",
            f"{d.delivered}/{d.prescribed}",
            d.message,
        ])
    print(table(rows, ["subject", "regimen", "today", "bouts", "next"]))
    if stations is not None:
        from livctl.cli.server import station_table

        print()
        print(station_table(stations))
    return 0
