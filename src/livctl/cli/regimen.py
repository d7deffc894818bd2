"""`livctl regimen`: the shipped regimen presets, and checking a regimen file."""

from __future__ import annotations

import argparse

from livctl.cli.helpformat import HelpFormatter
from livctl.cli.common import add_json_option, print_json, table

EPILOG = """\
A regimen file is TOML, for example:

  name = "abc-trial"
  preset = "human-30hz-0.4g"        # or frequency_hz = 30.0 and peak_g = 0.4
  minutes_per_bout = 10
  bouts_per_day = 2
  min_rest_hours = 1                # or min_rest_minutes
  days_per_week = 5                 # Mon-Fri; or weekdays = ["mon", "wed", "fri"]
  weeks = 12                        # or days = 84
  # start = 2026-03-02              # else --start when assigning it
  # timezone = "Europe/Berlin"      # else --tz, else the system's

examples:
  livctl regimen list
  livctl regimen show study.toml    check a file and print what it prescribes
  livctl subject add P-017 --kind human --regimen study.toml --start 2026-03-02"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "regimen",
        help="list the regimen presets, or check a regimen file",
        description="Regimens prescribe bouts over weeks: signal, minutes per bout, bouts a day, least rest "
        "between bouts, days of the week, start and length. Presets follow the published schedules.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    actions = p.add_subparsers(title="actions", metavar="ACTION")
    p.set_defaults(run=run_list, json=False)
    listing = actions.add_parser("list", help="the shipped regimen presets", description="The shipped regimen presets.")
    add_json_option(listing, "the presets")
    listing.set_defaults(run=run_list)
    show = actions.add_parser(
        "show", help="check a regimen (preset or TOML file) and print it",
        description="Check a regimen preset or TOML file and print what it prescribes; a file with a missing "
        "or contradictory field is a one-line error (exit 2).",
    )
    show.add_argument("regimen", metavar="NAME|FILE", help="a regimen preset or a TOML file")
    add_json_option(show, "the regimen")
    show.set_defaults(run=run_show)


def run_list(args: argparse.Namespace) -> int:
    from livctl.study.regimen import REGIMEN_PRESETS, weekday_names

    if args.json:
        print_json([r.to_dict() for r in REGIMEN_PRESETS.values()])
        return 0
    rows = [
        [r.name, f"{r.frequency_hz:g}", f"{r.peak_g:g}", f"{r.bouts_per_day} x {r.minutes_per_bout:g}",
         f"{r.min_rest_minutes:g}" if r.bouts_per_day > 1 else "-", weekday_names(r.weekdays),
         f"{r.days // 7}" if r.days else "choose", r.note]
        for r in REGIMEN_PRESETS.values()
    ]
    print(table(rows, ["regimen", "Hz", "g peak", "bouts x min/day", "rest min", "days", "weeks", "note"]))
    return 0


def run_show(args: argparse.Namespace) -> int:
    from livctl.study.regimen import find_regimen

    regimen, source = find_regimen(args.regimen)
    if args.json:
        print_json(dict(regimen.to_dict(), source=source))
        return 0
    print(f"{regimen.name}: {regimen.describe()}")
    print(f"  source  {source}")
    open_fields = [name for name, value in (("start", regimen.start), ("length", regimen.days),
                                            ("timezone", regimen.timezone)) if value is None]
    if open_fields:
        print(f"  chosen when assigned: {', '.join(open_fields)} (--start, --weeks/--days, --tz)")
    if regimen.note:
        print(f"  note    {regimen.note}")
    return 0
