"""Pieces the subcommands share: option parsers, JSON output, formatting."""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from livctl.errors import UsageError
from livctl.inputs import MAX_COUNT, InputError, parse_count, parse_date, parse_percent, parse_speed, quantity
from livctl.procedures.stopping import StopSignal
from livctl.ui.text import fmt, minutes_seconds  # noqa: F401 - the commands' formatting


def add_log_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log",
        metavar="PATH",
        help="dose log file (default: $LIVCTL_LOG, else `log` in the configuration, else "
        "~/.local/share/livctl/doses.sqlite)",
    )


def add_calibration_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--calibration-dir", metavar="DIR",
        help="where calibration files are (default: $LIVCTL_CALIBRATION_DIR, else `calibration_dir` in the "
        "configuration, else ~/.local/share/livctl/calibration)",
    )


def add_json_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON on stdout")


def log_path(args: argparse.Namespace):
    from livctl.records.doselog import default_log_path

    return Path(args.log).expanduser() if getattr(args, "log", None) else default_log_path()


def _option_type(parse, name: str):
    """An argparse type from one of livctl.inputs' readers (its InputError becomes argparse's)."""

    def option(text: str):
        try:
            return parse(text)
        except InputError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    option.__name__ = name  # argparse names the type in some messages
    return option


def positive_number(unit: str):
    """An argparse type: a positive number of `unit`, written plainly, within the unit's plausible
    range (livctl.inputs.QUANTITIES); the command's own checks narrow it further."""
    return _option_type(quantity(unit).parse, f"number of {unit}")


percent = _option_type(parse_percent, "percentage")
"""An argparse type: a percentage 0-100, returned as a fraction."""


def add_tolerance_options(group) -> None:
    """--tol-freq, --tol-accel and --max-thd: when a measured window counts as in spec."""
    group.add_argument("--tol-freq", type=positive_number("Hz"), metavar="HZ", help="+- Hz (default 1)")
    group.add_argument("--tol-accel", type=percent, metavar="PCT", help="+- %% of the peak g (default 10)")
    group.add_argument("--max-thd", type=percent, metavar="PCT", help="largest THD, %% (default 10)")


def tolerance_from(args: argparse.Namespace, base=None):
    """The tolerances given on the command line (`add_tolerance_options`, and --min-in-spec where a
    command has it), `base` (e.g. the configured ones) or the defaults for the rest."""
    from dataclasses import replace

    from livctl.prescription import Tolerance

    given = dict(frequency_hz=args.tol_freq, accel_fraction=args.tol_accel, max_thd_fraction=args.max_thd,
                 min_in_spec_fraction=getattr(args, "min_in_spec", None))
    return replace(base or Tolerance(), **{name: value for name, value in given.items() if value is not None})


def chosen_preset(args: argparse.Namespace):
    """The preset --preset names, or None; a preset with --freq or --accel is a usage error."""
    if not args.preset:
        return None
    if args.freq is not None or args.accel is not None:
        raise UsageError("a preset fixes the frequency and acceleration; give --preset or --freq/--accel, not both")
    from livctl.prescription import get_preset

    return get_preset(args.preset)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def json_text(obj: Any) -> str:
    """One indented JSON document; infinities and NaN become null (JSON has neither)."""
    return json.dumps(_finite(obj), indent=2, allow_nan=False) + "\n"


def print_json(obj: Any) -> None:
    sys.stdout.write(json_text(obj))
    sys.stdout.flush()


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip()]
    for row in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    return "\n".join(lines)


speed_factor = _option_type(parse_speed, "speed")
"""An argparse type for the simulator's --speed: a factor, or max."""


date_arg = _option_type(parse_date, "date")
"""An argparse type: a calendar date, YYYY-MM-DD, within livctl.inputs' date range."""


def check_date_range(args: argparse.Namespace) -> None:
    """--from after --to is a mistake, not an empty selection."""
    if args.date_from and args.date_to and args.date_from > args.date_to:
        raise UsageError(f"--from {args.date_from} is after --to {args.date_to}")


def whole_number(low: int, high: int | None = None, unit: str = ""):
    """An argparse type: a whole number `low`-`high` (default: livctl.inputs.MAX_COUNT)."""
    top = MAX_COUNT if high is None else high
    return _option_type(lambda text: parse_count(text, low, top, unit), "whole number")


positive_int = whole_number(1)
"""An argparse type: a whole number > 0."""


def station():
    """The station's configuration (livctl.records.config): files, environment, defaults."""
    from livctl.records.config import load_settings

    return load_settings()


def operator_name(given: str | None, settings=None) -> str | None:
    """--operator, else $LIVCTL_OPERATOR or `operator` in the configuration, else the login name;
    None when the configuration requires a named operator and none was given (a shared account's
    login names nobody)."""
    import getpass

    settings = settings or station()
    named = settings.given("operator", given, "--operator")
    if named or settings["require_operator"]:
        return named
    return getpass.getuser()


StopEvent = StopSignal
"""The stop request the commands hand to the work they run (livctl.procedures.stopping.StopSignal)."""


class stop_on_signals:
    """SIGINT and SIGTERM ask the running work to ramp down and stop (within one 0.1 s block); a
    second one asks for the drive to be cut at once."""

    def __init__(self, stop: StopEvent, display: Any = None):
        self.stop = stop
        self.display = display
        self.previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        if self.stop.is_set():
            if not self.stop.cut_requested:
                self.stop.request_cut(f"a second {name}")
                if self.display:
                    self.display.note(f"second {name}: cutting the drive at once")
            return
        self.stop.request(f"stopped by {name}")
        if self.display:
            self.display.note(f"{name}: ramping down, then stopping (again to cut the drive at once)")

    def __enter__(self) -> "stop_on_signals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def add_plot_options(parser: argparse.ArgumentParser, *, default_on: bool) -> None:
    default = "on when a display is available" if default_on else "off"
    parser.add_argument("--plot", action=argparse.BooleanOptionalAction, default=None,
                        help=f"live plots in a window (pyqtgraph; default: {default}); closing the window stops")
    parser.add_argument("--plot-png", metavar="FILE", help="save the final view as a PNG (works without a display)")


def plot_mode(args: argparse.Namespace, *, default_on: bool) -> str | None:
    """How to show the live view: "window", "offscreen" (only for --plot-png) or None (headless).

    With no usable display, says so on stderr in one line and carries on without a window."""
    wanted = args.plot if args.plot is not None else default_on
    if args.plot is False and args.plot_png:
        raise UsageError("--plot-png needs the live view; drop --no-plot")
    if args.plot_png:
        png = Path(args.plot_png).expanduser()
        if png.suffix.lower() != ".png":
            raise UsageError(f"--plot-png {png}: the file name must end in .png")
        if not png.parent.is_dir():
            raise UsageError(f"--plot-png {png}: the folder {png.parent} does not exist")
    if not wanted and not args.plot_png:
        return None
    from livctl.ui.live import display_problem

    problem = display_problem()
    if problem is None:
        return "window" if wanted else "offscreen"
    if wanted:
        fallback = "saving the view to the PNG only" if args.plot_png else "running without the live plot"
        print(f"livctl: {problem}; {fallback}", file=sys.stderr)
    return "offscreen" if args.plot_png else None


def add_operator_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--operator", metavar="NAME", help="who does this (default $LIVCTL_OPERATOR or the configuration's operator, else your "
                        "login)")


def verify_progress(stream=None):
    """A `DoseLog.verify` progress callback that redraws one line on a terminal (None otherwise)."""
    stream = stream or sys.stderr
    if not stream.isatty():
        return None

    def show(done: int, total: int) -> None:
        text = "" if done >= total else f"verifying the dose log: {done:,} of {total:,} records"
        stream.write(f"\r\033[K{text}")
        stream.flush()

    return show
