"""Values people type: numbers with their units and ranges, calendar dates, instants, time zones.

One strict reader for each, shared by every command-line option, every device-URL option and the
files that carry such values, so that a value means the same wherever it is typed:

- A number is plain ASCII decimal: an optional sign, digits with an optional point, an optional
  exponent (`30`, `0.3`, `2.5e-3`). Python's `float()` is more lenient than a lab record should
  be: it reads `3_0` and full-width `３０` as 30, ignores surrounding whitespace and takes `nan`
  and `inf`; all of those are refused here (and hexadecimal, which `int(text, 0)` would take), as
  are numbers too large for a double and numbers so small they are below any physical resolution
  (`1e-308`).
- A whole number is ASCII digits with an optional sign, within a stated range (a count of
  sessions, a number of weeks), never so large that SQLite or a date computation overflows.
- A quantity has a unit and a plausible range: the range is wide (a domain check later says
  "outside 10-200 Hz for LIV"), but it keeps values that no instrument could mean from reaching
  code that would loop, overflow or divide by them.
- Dates and instants lie within `EARLIEST_DATE`-`LATEST_DATE`: a study record, a calibration or a
  report outside it is a typing error, and the bound keeps date arithmetic (a day after `--to`, a
  calendar of days) finite.

Errors are `InputError` (a `ValueError`, so option parsers that expect one keep working, and a
`UsageError`, exit 2) with one line that says what is wrong and how to write it instead; they
speak of the value, never of an option name: the command line adds that.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import sys
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from livctl.errors import UsageError

__all__ = [
    "InputError", "Range", "MAX_COUNT", "EARLIEST_DATE", "MAX_ZONE_NAME", "parse_number", "parse_whole",
    "parse_count", "parse_percent", "parse_speed", "parse_date", "check_date", "check_instant", "is_plain_number",
    "quantity", "LATEST_DATE", "ZONE_REMEDY", "parse_zone",
]


class InputError(UsageError, ValueError):
    """A typed value that is not well formed or not within its range."""


_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_WHOLE = re.compile(r"[+-]?[0-9]+", re.ASCII)
_MAX_TEXT = 64
"""No number anyone types needs more characters than this (int() on a million digits is slow)."""

SMALLEST_MAGNITUDE = 1e-12
"""Below this a value is not a measurement of anything livctl handles (a picosecond, a pico-g)."""


def _shown(text: str) -> str:
    return repr(text if len(text) <= 24 else text[:20] + "...")


def _check_syntax(text: str, pattern: re.Pattern[str], wanted: str) -> None:
    """InputError unless `text` matches `pattern`; the message says what is wrong with it and
    ends with `wanted` (what to give instead, with an example)."""
    if not isinstance(text, str):
        raise InputError(f"{text!r} is not text; give {wanted}")
    if len(text) > _MAX_TEXT:
        raise InputError(f"{_shown(text)} is {len(text)} characters long, not a number; give {wanted}")
    if pattern.fullmatch(text):
        return
    bare = text.strip().lower().lstrip("+-")
    if text != text.strip() or any(c.isspace() for c in text):
        problem = "has spaces in or around it"
    elif "_" in text:
        problem = "groups digits with '_'"
    elif not text.isascii():
        problem = "has characters other than ASCII digits"
    elif bare in ("nan", "inf", "infinity"):
        problem = "is not a finite number"
    elif bare.startswith("0x") or bare.startswith("0o") or bare.startswith("0b"):
        problem = "is not written in decimal"
    else:
        problem = "is not a number"
    raise InputError(f"{_shown(text)} {problem}; give {wanted}")


def is_plain_number(text: str) -> bool:
    """Whether `text` is written as this module accepts numbers (decimal ASCII, nothing else)."""
    return isinstance(text, str) and len(text) <= _MAX_TEXT and bool(_DECIMAL.fullmatch(text))


def _fmt(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e16:
        return str(int(value))
    return f"{value:g}"


@dataclass(frozen=True)
class Range:
    """Where a value may lie: `low` and `high` (None: unbounded), each end open or closed."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: float) -> bool:
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            return False
        return True

    @property
    def positive(self) -> bool:
        return self.low is not None and (self.low > 0 or (self.low == 0 and self.low_open))

    def describe(self, unit: str = "", *, whole: bool = False) -> str:
        """What to give, e.g. "a positive number of Hz (0.001 to 1e+06)"."""
        kind = "whole number" if whole else "number"
        of = f" of {unit}" if unit else ""
        if self.positive:
            lowest = "" if self.low == 0 else _fmt(self.low)
            if self.high is None:
                span = f" (at least {lowest})" if lowest else ""
            else:
                span = f" ({lowest} to {_fmt(self.high)})" if lowest else f" (up to {_fmt(self.high)})"
            return f"a positive {kind}{of}{span}"
        if self.low is not None and self.high is not None:
            return f"a {kind}{of} between {_fmt(self.low)} and {_fmt(self.high)}"
        if self.low is not None:
            return f"a {kind}{of} {'>' if self.low_open else '>='} {_fmt(self.low)}"
        if self.high is not None:
            return f"a {kind}{of} {'<' if self.high_open else '<='} {_fmt(self.high)}"
        return f"a finite {kind}{of}"


def parse_number(text: str, valid: Range = Range(), unit: str = "", *, example: str = "2.5") -> float:
    """A finite float written plainly (see the module's docstring) within `valid`."""
    wanted = f"{valid.describe(unit)}, e.g. {example}"
    _check_syntax(text, _DECIMAL, wanted)
    value = float(text)
    if math.isinf(value):
        raise InputError(f"{_shown(text)} is too large; give {wanted}")
    if value != 0 and abs(value) < max(SMALLEST_MAGNITUDE, sys.float_info.min):
        raise InputError(f"{_shown(text)} is too small to mean anything; give {wanted}")
    if not valid.contains(value):
        raise InputError(f"{_shown(text)} is out of range: it must be {wanted}")
    return value


def parse_whole(text: str, low: int | None = None, high: int | None = None, unit: str = "") -> int:
    """An integer written as ASCII digits (optional sign) within `low`-`high` (either may be None)."""
    valid = Range(low, high)
    wanted = valid.describe(unit, whole=True)
    _check_syntax(text, _WHOLE, wanted)
    value = int(text)
    if not valid.contains(value):
        raise InputError(f"{_shown(text)} is out of range: it must be {wanted}")
    return value


# -- quantities a person types, by unit: wide plausibility ranges; domain checks come later ------


@dataclass(frozen=True)
class Quantity:
    """A unit with the range of values that could mean something for a vibration platform."""

    unit: str
    valid: Range
    example: str

    def parse(self, text: str) -> float:
        return parse_number(text, self.valid, self.unit, example=self.example)


QUANTITIES: dict[str, Quantity] = {
    q.unit: q
    for q in (
        # frequencies (a signal, a sample rate): a millihertz to a megahertz
        Quantity("Hz", Range(1e-3, 1e6), "30"),
        # accelerations, peak g: a micro-g (below any accelerometer's noise) to 1000 g
        Quantity("g", Range(1e-6, 1e3), "0.3"),
        # durations: a millisecond (a ramp or a window shorter is a step, or no window) to ~4 months
        Quantity("seconds", Range(1e-3, 1e7), "2"),
        Quantity("minutes", Range(1e-3, 1e5), "10"),
        Quantity("days", Range(1e-3, 1e5), "30"),
        # masses on a platform: a gram (a cell plate) to ten tonnes
        Quantity("kg", Range(1e-3, 1e4), "70"),
        # a drive level or share, percent: a hundredth of a percent up to well past 100 (a later
        # check says what a command allows)
        Quantity("percent", Range(1e-2, 1e4), "10"),
    )
}


def quantity(unit: str) -> Quantity:
    """The quantity of `unit` (QUANTITIES), or a positive number of it with no physical bound."""
    return QUANTITIES.get(unit) or Quantity(unit, Range(0.0, 1e12, low_open=True), "1")


def parse_percent(text: str) -> float:
    """A share 0-100 %, written with or without one trailing '%'; returned as a fraction 0-1."""
    body = text[:-1] if isinstance(text, str) and text.endswith("%") else text
    return parse_number(body, Range(0.0, 100.0), "%", example="10") / 100.0


SPEED_RANGE = Range(0.1, 1e6)
"""The simulator's speed factors: from ten times slower than real time to a million times faster."""


def parse_speed(text: str) -> float:
    """The simulator's speed: a factor (SPEED_RANGE) or `max` (as fast as it computes: inf)."""
    if isinstance(text, str) and text.lower() == "max":
        return math.inf
    try:
        return parse_number(text, SPEED_RANGE, example="10")
    except InputError as exc:
        if not is_plain_number(text):
            raise InputError(f"{_shown(str(text))} is not a speed; give a factor such as 10, or max") from None
        raise InputError(f"speed {exc}, or max") from None


MAX_COUNT = 10**9
"""The largest count anyone types (sessions to list, weeks, steps); SQLite and dates stay safe."""


def parse_count(text: str, low: int = 1, high: int = MAX_COUNT, unit: str = "") -> int:
    """A whole number of things, `low`-`high`."""
    return parse_whole(text, low, high, unit)


# -- dates and instants ------------------------------------------------------------------------

EARLIEST_DATE = dt.date(1970, 1, 1)
LATEST_DATE = dt.date(2199, 12, 31)
"""Days a study record, a calibration or a report may name. Outside them a date is a typing error
(year 0001 or 9999), and date arithmetic a day beyond them stays finite."""


def check_date(day: dt.date, what: str = "date") -> dt.date:
    """`day` when it lies within EARLIEST_DATE-LATEST_DATE, else InputError naming `what`."""
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise InputError(
            f"{what} {day.isoformat()} is outside {EARLIEST_DATE.isoformat()} - {LATEST_DATE.isoformat()}; "
            "check the year"
        )
    return day


def parse_date(text: str, what: str = "date") -> dt.date:
    """A calendar date written YYYY-MM-DD, within EARLIEST_DATE-LATEST_DATE."""
    if not isinstance(text, str) or len(text) > _MAX_TEXT or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text,
                                                                              re.ASCII):
        raise InputError(f"{_shown(str(text))} is not a date; give YYYY-MM-DD, e.g. 2026-03-02")
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise InputError(f"{_shown(text)} is not a date of the calendar; give YYYY-MM-DD, e.g. 2026-03-02") from None
    return check_date(day, what)


def check_instant(moment: dt.datetime, what: str = "time") -> dt.datetime:
    """`moment` (aware) when its UTC date lies within EARLIEST_DATE-LATEST_DATE."""
    try:
        day = moment.astimezone(dt.timezone.utc).date()
    except OverflowError:
        day = moment.date()
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise InputError(
            f"{what} {moment.isoformat()} is outside {EARLIEST_DATE.isoformat()} - {LATEST_DATE.isoformat()}; "
            "check the year"
        )
    return moment


MAX_ZONE_NAME = 64
"""IANA time-zone names are at most about 30 characters (America/Argentina/ComodRivadavia)."""
ZONE_REMEDY = "give an IANA name such as Europe/Berlin or America/New_York"


def parse_zone(name: str) -> ZoneInfo:
    """The time zone of an IANA name (`Europe/Berlin`); InputError for a name the zone database does
    not know (a folder of it, such as `Europe`, included)."""
    shown = name if len(name) <= MAX_ZONE_NAME else name[:MAX_ZONE_NAME] + "..."
    try:
        if len(name) > MAX_ZONE_NAME:
            raise ValueError("too long")
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder of the database ("Europe")
        raise InputError(f"unknown time zone {shown!r}; {ZONE_REMEDY}") from None
