"""The `livctl` command.

Each subcommand lives in its own module here with a `register(subparsers)` function that adds its
parser and sets `run`. Parsers are built without importing numpy, scipy, PortAudio or Qt, so
`livctl --help` is instant; a command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from livctl import __version__
from livctl.cli.helpformat import HelpFormatter
from livctl.errors import LivctlError, Refusal

COMMANDS = ("session", "calibrate", "calibration", "validate", "tone", "presets", "log", "devices", "regimen",
            "subject", "due", "report", "config", "sync", "server")
"""Subcommand modules, in the order `livctl --help` lists them."""

OPTIONS = {"speed": "--speed", "force": "--force", "calibration_dir": "--calibration-dir",
           "top_accel_g": "--max-accel"}
"""The option that sets each parameter a core refusal can name (livctl.errors.Refusal)."""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors that point at --help."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


DESCRIPTION = """\
Drive low-intensity vibration (LIV) platforms and prove the dose they delivered.

Accelerations are peak values in g (1 g = 9.80665 m/s^2) unless marked RMS.
Exit codes: 0 ok or dose in spec, 1 out of spec or failed, 2 bad usage or input,
130 interrupted."""

EPILOG = """\
examples:
  livctl session --device sim:// --minutes 20 --speed max
                            a simulated 20-minute session
  livctl session --device sim:// --preset mouse-90hz-0.3g
                            a preset protocol
  livctl calibrate --device sim:// --speed max
                            calibrate the simulated platform
  livctl validate plate.csv --preset human-30hz-0.4g
                            check a recording
  livctl presets            the shipped protocols
  livctl log                sessions in the dose log
  livctl devices --probe    platforms this machine can reach
  livctl subject add P-017 --kind human --regimen NAME
                            a study subject and its regimen
  livctl due                what each subject is due today
  livctl report --subject P-017
                            compliance and dose report
  livctl sync               send this station's records to the study server"""


def build_parser() -> Parser:
    parser = Parser(
        prog="livctl",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"livctl {__version__}")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="also show what livctl does step by step (serial retries, heartbeats, interlock "
                        "decisions, controller steps) on stderr")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"livctl.cli.{name}").register(sub)
    return parser


def _single_threaded_blas() -> None:
    """livctl's linear algebra is many small problems (one window at a time), where a threaded BLAS
    spends more on waking threads than it saves; one thread is faster. Must run before numpy loads,
    and never overrides a choice made in the environment."""
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")


class _NoticeHandler(logging.Handler):
    """Prints the core's notices (`livctl` loggers, INFO and up) as `livctl: ...` lines on the
    current stderr; with --verbose, its debug records as `livctl: debug: <module>: ...`."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.levelno < logging.INFO:
                where = record.name.removeprefix("livctl.")
                print(f"livctl: debug: {where}: {record.getMessage()}", file=sys.stderr)
                return
            print(f"livctl: {record.getMessage()}", file=sys.stderr)
        except Exception:  # noqa: BLE001 - a notice must never end a command
            self.handleError(record)


def _show_notices(quiet: bool, verbose: bool = False) -> None:
    """Notices (a folder created for an output file) on stderr, unless the command is --quiet;
    with --verbose, every step the core logs at debug too."""
    logger = logging.getLogger("livctl")
    if not any(isinstance(h, _NoticeHandler) for h in logger.handlers):
        logger.addHandler(_NoticeHandler())
        logger.propagate = False
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:  # while the parsers or a command's modules were still loading
        print("livctl: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _main(argv: list[str] | None) -> int:
    _single_threaded_blas()
    parser = build_parser()
    args = parser.parse_args(argv)
    _show_notices(bool(getattr(args, "quiet", False)), bool(getattr(args, "verbose", False)))
    if not hasattr(args, "run"):
        parser.print_usage(sys.stderr)
        print("livctl: error: choose a command (see `livctl --help`)", file=sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.run(args))
    except Refusal as exc:  # the core names a parameter; the command line names its option
        print(f"livctl: error: {exc.worded(OPTIONS)}", file=sys.stderr)
        return exc.exit_code
    except LivctlError as exc:
        print(f"livctl: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("livctl: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader went away (`livctl log | head`); not an error of ours
        sys.stderr.close()
        return EXIT_OK
