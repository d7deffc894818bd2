"""`livctl presets`: the published protocols livctl ships."""

from __future__ import annotations

import argparse

from livctl.cli.common import add_json_option, print_json, table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "presets",
        help="list the shipped LIV protocols",
        description="List the published LIV protocols livctl ships as presets (accelerations are peak g).",
    )
    add_json_option(p, "the presets")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from livctl.prescription import PRESETS

    if args.json:
        print_json([vars(p) for p in PRESETS.values()])
        return 0
    rows = [
        [p.name, p.subject, f"{p.frequency_hz:g}", f"{p.peak_g:g}", f"{p.minutes:g}", p.schedule, p.source]
        for p in PRESETS.values()
    ]
    print(table(rows, ["preset", "for", "Hz", "g peak", "min", "schedule", "source"]))
    notes = [f"  {p.name}: {p.note}" for p in PRESETS.values() if p.note]
    if notes:
        print("\nnotes:")
        print("\n".join(notes))
    return 0
