"""Pieces the subcommands share: option parsers, JSON output, formatting."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any

from livctl.errors import UsageError


def add_log_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log",
        metavar="PATH",
        help="dose log file (default: $LIVCTL_LOG, else ~/.local/share/livctl/doses.sqlite)",
    )


def add_json_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON on stdout")


def log_path(args: argparse.Namespace):
    from livctl.doselog import default_log_path

    from pathlib import Path

    return Path(args.log).expanduser() if getattr(args, "log", None) else default_log_path()


def positive_number(unit: str):
    """An argparse type: a finite number > 0, with the unit named in the error."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of {unit}") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of {unit}")
        return value

    return parse


def percent(text: str) -> float:
    """An argparse type: a percentage 0-100, returned as a fraction."""
    try:
        value = float(text.rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a percentage") from None
    if not (math.isfinite(value) and 0 <= value <= 100):
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 100 %")
    return value / 100.0


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def print_json(obj: Any) -> None:
    """One JSON document on stdout; infinities and NaN become null (JSON has neither)."""
    json.dump(_finite(obj), sys.stdout, indent=2, allow_nan=False)
    sys.stdout.write("\n")
    sys.stdout.flush()


def minutes_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    whole = int(round(seconds))
    return f"{whole // 60}:{whole % 60:02d}"


def fmt(value: float | None, spec: str, missing: str = "-") -> str:
    return missing if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, spec)


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip()]
    for row in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    return "\n".join(lines)


def env_or(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value else default


def require(condition: bool, message: str) -> None:
    if not condition:
        raise UsageError(message)
