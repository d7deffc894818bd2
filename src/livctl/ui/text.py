"""Figures as a person reads them: minutes and seconds, numbers with a dash for what is missing."""

from __future__ import annotations

import math


def minutes_seconds(seconds: float | None) -> str:
    """`m:ss` (rounded to the second), or "-"."""
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    whole = int(round(seconds))
    return f"{whole // 60}:{whole % 60:02d}"


def fmt(value: float | None, spec: str, missing: str = "-") -> str:
    """`value` in the format `spec`, or `missing` when it is None or not a finite number."""
    return missing if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, spec)


def terminal_width() -> int | None:
    """The width to fold lines to: $COLUMNS, else the terminal's (stdout's or stderr's), else None:
    output to a pipe or a file keeps its lines whole for whatever reads it."""
    import os
    import sys

    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None and stream.isatty():
                return os.get_terminal_size(stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            continue
    return None


def fit_line(line: str, width: int | None = None) -> str:
    """`line` folded at spaces to `width` (default: `terminal_width()`; unfolded when there is
    none), never inside a word; each continuation starts under the line's value: after a label's
    run of two or more spaces ("  gain            1.54 ..."), else two in from the line's own
    indent."""
    import re
    import textwrap

    width = width or terminal_width()
    if width is None or len(line) <= width:
        return line
    label = re.match(r"\s*\S.*?\s{2,}(?=\S)", line)
    indent = len(label.group(0)) if label and len(label.group(0)) <= width // 2 else len(line) - len(line.lstrip()) + 2
    return "\n".join(textwrap.wrap(line, width=max(40, width - 1), subsequent_indent=" " * indent,
                                   break_long_words=False, break_on_hyphens=False))
