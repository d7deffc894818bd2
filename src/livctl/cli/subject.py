"""`livctl subject`: the subjects of a study and the regimens assigned to them (in the dose log)."""

from __future__ import annotations

import argparse
import datetime as dt

from livctl.cli.helpformat import HelpFormatter
from livctl.cli.common import (
    add_json_option,
    add_log_option,
    add_operator_option,
    date_arg,
    log_path,
    operator_name,
    positive_int,
    print_json,
    table,
)

EPILOG = """\
examples:
  livctl subject add P-017 --kind human --regimen human-30hz-0.4g --start 2026-03-02 --tz Europe/Berlin
  livctl subject add M-03 --kind animal --regimen mouse-90hz-0.3g --weeks 8
  livctl subject assign P-017 --regimen study-amended.toml --start 2026-04-06
  livctl subject list
  livctl subject show P-017 --json

Subjects and assignments are appended to the dose log (part of its hash chain); nothing is ever
changed: a new assignment takes over from its start date and the old one stays in the record.
Once a log holds subjects, `livctl session --subject` accepts only those."""


def _regimen_options(p: argparse.ArgumentParser, *, required: bool) -> None:
    g = p.add_argument_group("regimen")
    g.add_argument("--regimen", metavar="NAME|FILE", required=required,
                   help="a regimen preset (`livctl regimen list`) or a TOML file")
    g.add_argument("--start", type=date_arg, metavar="DATE", help="first day, YYYY-MM-DD (default: today)")
    length = g.add_mutually_exclusive_group()
    length.add_argument("--weeks", type=positive_int, metavar="N", help="length in weeks (default: the regimen's)")
    length.add_argument("--days", type=positive_int, metavar="N", help="length in days")
    g.add_argument("--tz", metavar="ZONE", help="the lab's IANA time zone, e.g. Europe/Berlin (default: the system's)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "subject",
        help="add subjects, assign regimens, list them",
        description="The subjects of a study and their regimens, kept in the dose log.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    add_log_option(p)
    add_json_option(p, "the subjects")
    p.set_defaults(run=run_list)
    actions = p.add_subparsers(title="actions", metavar="ACTION")

    add = actions.add_parser("add", help="add a subject (and assign a regimen)", description="Add a subject to the dose log.",
                             epilog=EPILOG, formatter_class=HelpFormatter)
    add.add_argument("subject_id", metavar="ID", help="the subject's id, e.g. P-017")
    add.add_argument("--kind", required=True, choices=("human", "animal", "cells"),
                     help="human subjects get ISO 2631-1 exposure (A(8)) in reports")
    add.add_argument("--note", metavar="TEXT", help="free text kept with the subject")
    _regimen_options(add, required=False)
    add_operator_option(add)
    add_log_option(add)
    add_json_option(add, "the subject")
    add.set_defaults(run=run_add)

    assign = actions.add_parser("assign", help="assign a regimen to a subject",
                                description="Assign a regimen to a subject; it takes over from its start date.",
                                epilog=EPILOG, formatter_class=HelpFormatter)
    assign.add_argument("subject_id", metavar="ID")
    _regimen_options(assign, required=True)
    add_operator_option(assign)
    add_log_option(assign)
    add_json_option(assign, "the subject")
    assign.set_defaults(run=run_assign)

    listing = actions.add_parser("list", help="list the subjects", description="List the subjects and their regimens.")
    add_log_option(listing)
    add_json_option(listing, "the subjects")
    listing.set_defaults(run=run_list)

    show = actions.add_parser("show", help="one subject and its regimen history", description="Show one subject.")
    show.add_argument("subject_id", metavar="ID")
    add_log_option(show)
    add_json_option(show, "the subject")
    show.set_defaults(run=run_show)


def _resolve(args: argparse.Namespace):
    from livctl.cli.common import station
    from livctl.study.regimen import resolve_regimen, zone

    if args.tz is not None:
        zone(args.tz)
    return resolve_regimen(args.regimen, start=args.start, weeks=args.weeks, days=args.days, timezone=args.tz,
                           default_timezone=station().timezone()[0])


def _say_assumed_zone(args: argparse.Namespace, regimen) -> None:
    """When the regimen took the zone livctl had to assume, say so (after the work: errors stay one line)."""
    import sys

    from livctl.cli.common import station

    zone_name, note = station().timezone()
    if note and args.tz is None and regimen.timezone == zone_name:
        print(f"livctl: {note}", file=sys.stderr)


def run_add(args: argparse.Namespace) -> int:
    from livctl.records.doselog import DoseLog

    if args.regimen is None and any(v is not None for v in (args.start, args.weeks, args.days, args.tz)):
        from livctl.errors import UsageError

        raise UsageError("--start, --weeks, --days and --tz describe a regimen; give --regimen too")
    resolved = _resolve(args) if args.regimen is not None else None  # every check before anything is written
    operator = operator_name(args.operator)
    with DoseLog(log_path(args)) as log:
        log.add_subject(args.subject_id, args.kind, note=args.note, operator=operator)
        if resolved is not None:
            regimen, source = resolved
            log.assign_regimen(args.subject_id, name=regimen.name, regimen=regimen.to_dict(), source=source,
                               operator=operator)
        subject = log.subject(args.subject_id)
    if resolved is not None:
        _say_assumed_zone(args, resolved[0])
    return _print_subject(subject, args.json, "added")


def run_assign(args: argparse.Namespace) -> int:
    from livctl.records.doselog import DoseLog

    regimen, source = _resolve(args)
    with DoseLog(log_path(args), create=False) as log:
        log.assign_regimen(args.subject_id, name=regimen.name, regimen=regimen.to_dict(), source=source,
                           operator=operator_name(args.operator))
        subject = log.subject(args.subject_id)
    _say_assumed_zone(args, regimen)
    return _print_subject(subject, args.json, "assigned")


def run_show(args: argparse.Namespace) -> int:
    from livctl.records.doselog import DoseLog

    with DoseLog(log_path(args), create=False) as log:
        subject = log.subject(args.subject_id)
    return _print_subject(subject, args.json, None)


def run_list(args: argparse.Namespace) -> int:
    from livctl.records.doselog import DoseLog
    from livctl.study.regimen import Regimen

    with DoseLog(log_path(args), create=False) as log:
        subjects = log.subjects()
    if args.json:
        print_json(subjects)
        return 0
    if not subjects:
        print("no subjects in the log yet; `livctl subject add ID --kind human --regimen NAME` adds one")
        return 0
    rows = []
    for s in subjects:
        current = Regimen.from_dict(s["assignments"][-1]["regimen"]) if s["assignments"] else None
        rows.append([
            s["subject_id"], s["kind"],
            current.name if current else "-",
            f"{current.start} - {current.end}" if current else "-",
            current.timezone if current else "-",
            s["note"] or "",
        ])
    print(table(rows, ["subject", "kind", "regimen", "from - until", "time zone", "note"]))
    return 0


def _print_subject(subject: dict, as_json: bool, verb: str | None) -> int:
    from livctl.study.regimen import Regimen

    if as_json:
        print_json(subject)
        return 0
    head = f"subject {subject['subject_id']} ({subject['kind']})"
    print(f"{head} {verb}" if verb else head)
    if subject["note"]:
        print(f"  note      {subject['note']}")
    print(f"  added     {subject['added_utc']} by {subject['operator'] or '-'}")
    if not subject["assignments"]:
        print("  regimen   none (`livctl subject assign` gives one)")
    for a in subject["assignments"]:
        r = Regimen.from_dict(a["regimen"])
        print(f"  regimen   {r.name}: {r.describe()}")
        last = "-" if r.end is None else r.end - dt.timedelta(days=1)
        print(f"            last day {last}; {a['source']}; assigned {a['assigned_utc']} by {a['operator'] or '-'}")
    return 0
