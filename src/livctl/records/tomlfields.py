"""TOML files livctl reads (calibrations, regimens, safety profiles, the configuration): one reader.

`read_toml` reads a file bounded (`livctl.records.files.read_bounded`: a regular file, at most
`MAX_INPUT_BYTES`) and parses it; `open_toml` does that and hands back the document as a
`TomlTable`, which reads it field by field:

- a `Field` says what one key takes: its kind (number, whole, text, path, bool, choice,
  timezone, date, instant, triple), its range (inclusive, the lower end optionally open) and unit;
- `TomlTable.get(field)` checks one value; `number`, `whole`, `text`, `boolean`, `choice`,
  `instant` and `triple` are shorthands that make the field on the spot; `table` and `tables`
  read nested tables and lists of tables, whose keys are named dotted (`points[0].steps[2].drive`);
- `TomlTable.fields(fields)` reads every declared field a table holds, dotted keys from nested
  tables (`tolerance.frequency_hz`), and refuses an unknown key, naming the nearest known one;
  `TomlTable.check_keys` does only that.

Every problem is one line of the caller's error class (`CalibrationError`, `RegimenError`,
`ConfigError`, `UsageError`: exit 2) that names the file and the dotted key, says what the key
takes and what was found, and ends with the caller's remedy ("recalibrate or restore the file").
What one kind of file means by its values (a calibration's date not in the future, a regimen's
weeks or days but not both, a profile that only tightens) stays with the module that owns it.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
import os
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from livctl.errors import UsageError
from livctl.inputs import EARLIEST_DATE, LATEST_DATE, ZONE_REMEDY, InputError, Range, parse_zone
from livctl.records.files import MAX_INPUT_BYTES, read_bounded

__all__ = ["Field", "TomlTable", "MAX_TEXT", "read_toml", "open_toml"]

MAX_TEXT = 1000
"""A line of text in a file (an id, a device URL, an operator, a model name) is shorter than this."""

KINDS = ("number", "whole", "text", "path", "bool", "choice", "timezone", "date", "instant", "triple", "list")


def read_toml(path: str | os.PathLike[str], what: str, *, max_bytes: int = MAX_INPUT_BYTES,
              error: type[UsageError] = UsageError) -> tuple[dict, bytes]:
    """A TOML document from a file read with `read_bounded`: (the table, the file's bytes).

    `what` names the file in errors ("regimen file"). Not UTF-8, not TOML, or nested deeper than
    the parser can follow: one line of class `error`."""
    path = Path(path)
    data = read_bounded(path, what, max_bytes=max_bytes, error=error)
    try:
        return tomllib.loads(data.decode("utf-8")), data
    except UnicodeDecodeError:
        raise error(f"{what} {path} is not UTF-8 text; give the path of a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{what} {path} is not valid TOML: {exc}") from None
    except RecursionError:
        raise error(f"{what} {path} nests arrays or tables too deeply to be a {what}; give the right file") from None


def open_toml(path: str | os.PathLike[str], what: str, *, error: type[UsageError] = UsageError,
              fix: str = "") -> tuple["TomlTable", bytes]:
    """A TOML file as a `TomlTable` whose errors name it as `what` and end with `fix`; and its bytes.

    Paths in the file are relative to its folder."""
    path = Path(path)
    doc, data = read_toml(path, what, error=error)
    return TomlTable(doc, f"{what} {path}", error, fix=fix, base=path.parent), data


# ================================================================================================
# Fields: a key, its kind, its range
# ================================================================================================


@dataclass(frozen=True)
class Field:
    """One key of a TOML table: its kind (one of `KINDS`), its range and unit, and what it means.

    Numbers (and each of a triple's three) lie within `low`..`high` (inclusive; None: unbounded;
    `low_open` excludes `low` itself); they are finite, but for `high=math.inf`, which admits
    +infinity too (a signal-to-noise ratio with no noise)."""

    key: str
    """Dotted: `tolerance.frequency_hz` is `frequency_hz` in the table `[tolerance]`."""
    kind: str
    help: str = ""
    default: Any = None
    env: str | None = None
    """An environment variable that gives this value (the configuration's fields)."""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    unit: str = ""
    choices: tuple[str, ...] = ()
    line: bool = True
    """Text: one line of printable characters, at most MAX_TEXT of them (False: any string)."""
    strip: bool = False
    """Text, path, choice, time zone: spaces around the value are dropped, and then it may not be empty."""
    integral_floats: bool = False
    """A whole number may be written as a float without a fraction (`2.0` reads as 2)."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown field kind {self.kind!r}")

    @property
    def range(self) -> Range:
        return Range(self.low, None if self.high == math.inf else self.high, low_open=self.low_open)

    def describe(self) -> str:
        """What the key takes, for error messages: 'a number of Hz between 0.01 and 10'."""
        kind = self.kind
        if kind in ("number", "whole", "triple"):
            one = self.range.describe(self.unit, whole=kind == "whole")
            return f"three numbers (x, y, z), each {one}" if kind == "triple" else one
        return {
            "bool": "true or false (no quotes)",
            "choice": "one of " + ", ".join(f'"{c}"' for c in self.choices),
            "timezone": 'an IANA time zone such as "Europe/Berlin"',
            "path": "a path in quotes",
            "date": f"a date from {EARLIEST_DATE} to {LATEST_DATE} such as 2026-03-02 (no time of day)",
            "instant": "a date and time with its UTC offset, such as 2026-01-31T09:00:00Z",
            "text": f"one line of printable text (at most {MAX_TEXT} characters)" if self.line else "text in quotes",
            "list": "a list in brackets" + (f" ({self.help})" if self.help else ""),
        }[kind]

    def parse(self, value: Any, base: Path | None = None) -> Any:
        """The value as livctl uses it; ValueError saying what the key takes and what it holds."""
        try:
            return _PARSERS[self.kind](self, value, base)
        except _Said as exc:
            raise ValueError(str(exc)) from None
        except (ValueError, TypeError, OverflowError):
            raise ValueError(f"must be {self.describe()}, not {shown(value)}") from None


class _Said(ValueError):
    """A problem with a value in words of its own (they follow the key), not "must be ..., not ..."."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(field: Field, value: Any, base: Path | None) -> float:
    if not _is_number(value):
        raise ValueError
    value = float(value)
    if math.isnan(value) or (math.isinf(value) and not (value > 0 and field.high == math.inf)):
        raise ValueError
    if not (math.isinf(value) or field.range.contains(value)):
        raise ValueError
    return value


def _whole(field: Field, value: Any, base: Path | None) -> int:
    if field.integral_floats and isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not field.range.contains(value):
        raise ValueError
    return value


def _string(field: Field, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError
    if field.strip:
        value = value.strip()
        if not value:
            raise ValueError
    return value


def _text(field: Field, value: Any, base: Path | None) -> str:
    value = _string(field, value)
    if field.line and (len(value) > MAX_TEXT or not value.isprintable()):
        raise ValueError
    return value


def _path(field: Field, value: Any, base: Path | None) -> Path:
    path = Path(_string(field, value)).expanduser()
    return path if path.is_absolute() or base is None else base / path


def _bool(field: Field, value: Any, base: Path | None) -> bool:
    if not isinstance(value, bool):
        raise ValueError
    return value


def _choice(field: Field, value: Any, base: Path | None) -> str:
    value = _string(field, value)
    if value not in field.choices:
        raise ValueError
    return value


def _timezone(field: Field, value: Any, base: Path | None) -> str:
    value = _string(field, value)
    try:
        parse_zone(value)
    except InputError:
        raise _Said(f"{shown(value)} is not a known time zone; {ZONE_REMEDY}") from None
    return value


def _date(field: Field, value: Any, base: Path | None) -> dt.date:
    if isinstance(value, str):
        value = dt.date.fromisoformat(value)
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise ValueError
    if not EARLIEST_DATE <= value <= LATEST_DATE:
        raise ValueError
    return value


def _instant(field: Field, value: Any, base: Path | None) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise ValueError
    return value.astimezone(dt.timezone.utc)


def _triple(field: Field, value: Any, base: Path | None) -> tuple[float, float, float]:
    if not isinstance(value, list) or len(value) != 3:
        raise ValueError
    one = replace(field, kind="number")
    numbers = []
    for axis, v in zip("xyz", value):
        try:
            numbers.append(_number(one, v, base))
        except ValueError:
            raise _Said(f"({axis}) must be {one.describe()}, not {shown(v)}") from None
    return tuple(numbers)  # type: ignore[return-value]


def _list(field: Field, value: Any, base: Path | None) -> list:
    """A non-empty list; what its items mean is the caller's to check."""
    if not isinstance(value, list) or not value:
        raise ValueError
    return value


_PARSERS = {"list": _list, "number": _number, "whole": _whole, "text": _text, "path": _path, "bool": _bool, "choice": _choice,
            "timezone": _timezone, "date": _date, "instant": _instant, "triple": _triple}


def shown(value: Any) -> str:
    """A value as an error message shows it: on one line, and short."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return repr(value)


# ================================================================================================
# A table, read field by field
# ================================================================================================


class TomlTable:
    """One table of a TOML document as it is read: typed, ranged values by key, and one-line
    errors of the caller's class that name the file (`where`) and the dotted key and end with `fix`."""

    def __init__(self, table: Mapping[str, Any], where: str, error: type[UsageError] = UsageError, *,
                 fix: str = "", prefix: str = "", base: Path | None = None):
        self.data, self.where, self.error = table, where, error
        self.fix, self.prefix, self.base = fix, prefix, base

    def fail(self, message: str) -> UsageError:
        """The caller's error: `where: message; fix`."""
        return self.error(f"{self.where}: {message}" + (f"; {self.fix}" if self.fix else ""))

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str) -> Any:
        """The value as TOML gave it (None when absent), for a check of the caller's own."""
        return self.data.get(key)

    def get(self, field: Field, *, required: bool = False) -> Any:
        """The checked value of `field` (its key within this table), else its default (None);
        missing and `required`, wrong kind or out of range: the caller's error."""
        if field.key not in self.data:
            if required:
                about = f" ({field.help})" if field.help else ""
                raise self.fail(f"missing {self.prefix}{field.key}{about}")
            return field.default
        try:
            return field.parse(self.data[field.key], self.base)
        except ValueError as exc:
            raise self.fail(f"{self.prefix}{field.key} {exc}") from None

    def number(self, key: str, low: float | None = None, high: float | None = None, *, low_open: bool = False,
               required: bool = True) -> Any:
        """A number (a TOML integer or float, as a float) within `low`-`high` (see `Field`)."""
        return self.get(Field(key, "number", low=low, high=high, low_open=low_open), required=required)

    def whole(self, key: str, low: int | None = None, high: int | None = None, *, required: bool = True) -> Any:
        return self.get(Field(key, "whole", low=low, high=high), required=required)

    def text(self, key: str, *, required: bool = True, line: bool = True) -> Any:
        return self.get(Field(key, "text", line=line), required=required)

    def boolean(self, key: str, *, required: bool = True) -> Any:
        return self.get(Field(key, "bool"), required=required)

    def choice(self, key: str, choices: tuple[str, ...], *, required: bool = True) -> Any:
        return self.get(Field(key, "choice", choices=choices), required=required)

    def instant(self, key: str, *, required: bool = True) -> Any:
        """An offset date-time, in UTC."""
        return self.get(Field(key, "instant"), required=required)

    def triple(self, key: str, low: float | None = None, high: float | None = None) -> tuple[float, float, float]:
        return self.get(Field(key, "triple", low=low, high=high), required=True)

    def table(self, key: str) -> "TomlTable":
        """The nested table `key` (required)."""
        value = self.data.get(key)
        if not isinstance(value, dict):
            raise self.fail(f"missing {self.prefix}{key}" if value is None
                            else f"{self.prefix}{key} must be a table, not {shown(value)}")
        return self._nested(value, f"{self.prefix}{key}.")

    def tables(self, key: str) -> list["TomlTable"]:
        """The list of tables `key` (required; `[[key]]` in TOML)."""
        items = self.data.get(key)
        if items is None:
            raise self.fail(f"missing {self.prefix}{key}")
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise self.fail(f"{self.prefix}{key} must be a list of tables ([[{key}]]), not {shown(items)}")
        return [self._nested(item, f"{self.prefix}{key}[{n}].") for n, item in enumerate(items)]

    def _nested(self, table: Mapping[str, Any], prefix: str) -> "TomlTable":
        return TomlTable(table, self.where, self.error, fix=self.fix, prefix=prefix, base=self.base)

    def check_keys(self, known: Iterable[str]) -> None:
        """Refuse a key not in `known` (dotted, as `fields` names them), naming the nearest known one."""
        known = list(known)
        for name in self.data:
            if name not in known:
                self._unknown(name, known)

    def _unknown(self, key: str, known: Sequence[str]) -> None:
        """The error for `key`, which is none of `known` (both relative to this table)."""
        close = difflib.get_close_matches(key, list(known), n=1)
        hint = f"did you mean {self.prefix}{close[0]}?" if close else "known keys: " + ", ".join(known)
        raise self.fail(f"unknown key {self.prefix}{key} ({hint})")

    def fields(self, fields: Sequence[Field]) -> dict[str, Any]:
        """{dotted key: checked value} for each of `fields` this table holds (keys relative to it,
        `tolerance.frequency_hz` from its table `[tolerance]`); a key it holds that is none of
        them, the caller's error naming the nearest that is."""
        known = {f.key: f for f in fields}
        groups = {k.split(".", 1)[0] for k in known if "." in k}
        names = [*known, *sorted(groups)]
        out: dict[str, Any] = {}
        for name, value in self.data.items():
            if name in known:
                out[name] = self.get(known[name])
            elif name in groups and isinstance(value, dict):
                nested = self._nested(value, f"{self.prefix}{name}.")
                for inner in value:
                    key = f"{name}.{inner}"
                    if key not in known:
                        self._unknown(key, names)
                    out[key] = nested.get(replace(known[key], key=inner))
            else:
                self._unknown(name, names)
        return out
