"""`livctl config show`: every setting of this station, its value and where it came from."""

from __future__ import annotations

import argparse

from livctl.cli.helpformat import HelpFormatter
from livctl.cli.common import add_json_option, print_json, table

EXAMPLE = """\
# ~/.config/livctl/config.toml (or /etc/xdg/livctl/config.toml for every account of a lab PC)
device = "serial:///dev/ttyUSB0"
log = "/srv/livctl/doses.sqlite"
calibration_dir = "/srv/livctl/calibration"
timezone = "Europe/Berlin"
require_operator = true

[tolerance]
frequency_hz = 1
accel_percent = 10"""

DESCRIPTION = f"""\
A station is configured in TOML: the system-wide file (livctl/config.toml in $XDG_CONFIG_DIRS,
default /etc/xdg) and the user's ($XDG_CONFIG_HOME/livctl/config.toml, default ~/.config).
Precedence: command line > environment (LIVCTL_DEVICE, LIVCTL_LOG, LIVCTL_CALIBRATION_DIR,
LIVCTL_TIMEZONE, LIVCTL_OPERATOR) > user file > system file > defaults. Paths in a file are
relative to its folder.

{EXAMPLE}"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="this station's settings and where each comes from",
                       description=DESCRIPTION, formatter_class=HelpFormatter)
    actions = p.add_subparsers(title="actions", metavar="ACTION")
    show = actions.add_parser("show", help="every effective setting and its source",
                              description="Print every setting livctl uses on this station, its value and where it "
                              "came from (command line, environment, user file, system file, default).\n\n" + EXAMPLE,
                              formatter_class=HelpFormatter)
    add_json_option(show, "the settings and the files read")
    show.set_defaults(run=run_show)
    p.set_defaults(run=run_show, json=False)


def run_show(args: argparse.Namespace) -> int:
    from livctl.cli.common import station
    from livctl.records.config import STATION_FIELDS

    settings = station()
    if args.json:
        print_json(settings.to_dict())
        return 0
    helps = {f.key: f.help for f in STATION_FIELDS}
    rows = []
    for key, value in settings.items():
        shown = value.value
        if key == "timezone" and shown is None:
            shown = f"(not set: {settings.timezone()[0]} assumed)"
        rows.append([key, _text(shown), value.source])
    print(table(rows, ["setting", "value", "from"]))
    print()
    for which, path, read in settings.files:
        print(f"{which} file: {path}" + ("" if read else " (none)"))
    print("\n" + "\n".join(f"  {key}: {text}" for key, text in helps.items()))
    return 0


def _text(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
