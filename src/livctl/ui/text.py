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
