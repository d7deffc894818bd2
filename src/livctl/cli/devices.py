"""`livctl devices`: the platforms livctl can reach from this machine, as device URLs."""

from __future__ import annotations

import argparse
import importlib

from livctl.cli.helpformat import HelpFormatter
from livctl.cli.common import add_json_option, print_json, table

DESCRIPTION = """\
List the platforms livctl can drive from here, as URLs for `--device`: the simulator, serial
ports, and sound cards when an audio backend and PortAudio are present. Each backend lists its
own devices; one that cannot load (a missing system library) is reported as a note.

--probe opens each serial port and asks it *IDN? (at most 0.5 s per port) to tell livctl
platforms from other devices; a port another program holds is reported with its holder."""

EPILOG = """\
examples:
  livctl devices                 what is there
  livctl devices --probe         and who answers on each serial port
  livctl devices --json          for scripts: {"devices": [...], "notes": [...]}"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "devices",
        help="list the simulator, serial ports and audio devices",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument("--probe", action="store_true", help="ask each serial port *IDN? (0.5 s per port)")
    add_json_option(p, "the devices and notes")
    p.set_defaults(run=run)


def collect(probe: bool) -> tuple[list[dict], list[str]]:
    """Every backend's `list_devices(probe)`, imported lazily; a backend that fails becomes a note."""
    from livctl.platforms import BACKENDS

    devices: list[dict] = []
    notes: list[str] = []
    for scheme, module_name in BACKENDS.items():
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # e.g. OSError: PortAudio library not found
            notes.append(f"{scheme}:// is not available: {_one_line(exc)}")
            continue
        lister = getattr(module, "list_devices", None)
        if lister is None:
            continue
        try:
            rows = lister(probe)
        except Exception as exc:
            notes.append(f"{scheme}:// cannot list its devices: {_one_line(exc)}")
            continue
        devices.extend({"backend": scheme, **row} for row in rows)
    return devices, notes


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def run(args: argparse.Namespace) -> int:
    devices, notes = collect(args.probe)
    if args.json:
        print_json({"devices": devices, "notes": notes})
        return 0
    header = ["url", "device"] + (["probe"] if args.probe else [])
    rows = []
    for d in devices:
        row = [d["url"], d.get("description", "")]
        if args.probe:
            row.append(", ".join(x for x in (d.get("status"), d.get("identity")) if x) or "-")
        rows.append(row)
    print(table(rows, header))
    for note in notes:
        print(f"note: {note}")
    return 0
