"""The station's configuration: TOML files of typed, ranged fields, and where each value came from.

A station (a lab PC with its platform) is configured once, in TOML:

- the system-wide file, `livctl/config.toml` in the first of `$XDG_CONFIG_DIRS` (default
  `/etc/xdg`) that has one: for a shared lab PC;
- the user's file, `$XDG_CONFIG_HOME/livctl/config.toml` (default `~/.config/livctl/config.toml`).

Precedence, highest first: the command line, the environment (`LIVCTL_DEVICE`, ...), the user's
file, the system file, the defaults. `Settings` holds each value with its source, which
`livctl config show` prints.

The reader is generic: a `Field` says a key's type, range and unit, `read_fields` checks a parsed
TOML document against a tuple of fields, and every problem is one line naming the file and the key
(`ConfigError`, exit 2). Calibrations, regimens and profiles can describe their fields the same way.
Paths in a file are relative to the file's folder; `~` is the user's home.
"""

from __future__ import annotations

import difflib
import math
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from livctl.errors import UsageError

FILE_NAME = Path("livctl") / "config.toml"


class ConfigError(UsageError):
    """A configuration file (or value) that cannot be used: one line naming the file and the key."""


# ================================================================================================
# Fields: a key, its type, its range
# ================================================================================================


@dataclass(frozen=True)
class Field:
    """One key of a TOML document. `kind` is one of: text, path, bool, number, integer, choice,
    timezone. Numbers are checked against `low`..`high` (inclusive) in `unit`."""

    key: str
    """Dotted: `tolerance.frequency_hz` is `frequency_hz` in the table `[tolerance]`."""
    kind: str
    help: str
    default: Any = None
    env: str | None = None
    """An environment variable that gives this value (above the files, below the command line)."""
    low: float | None = None
    high: float | None = None
    unit: str = ""
    choices: tuple[str, ...] = ()

    def describe(self) -> str:
        """What the key takes, for error messages: 'a number of Hz from 0.01 to 10'."""
        if self.kind in ("number", "integer"):
            noun = "a number" if self.kind == "number" else "a whole number"
            unit = f" of {self.unit}" if self.unit else ""
            if self.low is not None and self.high is not None:
                return f"{noun}{unit} from {self.low:g} to {self.high:g}"
            if self.low is not None:
                return f"{noun}{unit} of at least {self.low:g}"
            return f"{noun}{unit}"
        if self.kind == "bool":
            return "true or false"
        if self.kind == "choice":
            return "one of " + ", ".join(f'"{c}"' for c in self.choices)
        if self.kind == "timezone":
            return 'an IANA time zone such as "Europe/Berlin"'
        if self.kind == "path":
            return "a path in quotes"
        return "text in quotes"

    def parse(self, value: Any, base: Path | None = None) -> Any:
        """The value as livctl uses it; ValueError with what was expected and found."""
        kind = self.kind
        if kind in ("text", "path", "choice", "timezone"):
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"must be {self.describe()}, not {_shown(value)}")
            value = value.strip()
            if kind == "path":
                path = Path(value).expanduser()
                return path if path.is_absolute() or base is None else base / path
            if kind == "choice" and value not in self.choices:
                raise ValueError(f"must be {self.describe()}, not {_shown(value)}")
            if kind == "timezone":
                check_timezone(value)
            return value
        if kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"must be true or false (no quotes), not {_shown(value)}")
            return value
        if kind in ("number", "integer"):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                kind == "integer" and not isinstance(value, int)
            ):
                raise ValueError(f"must be {self.describe()}, not {_shown(value)}")
            if not math.isfinite(value) or (self.low is not None and value < self.low) or (
                self.high is not None and value > self.high
            ):
                raise ValueError(f"must be {self.describe()}, not {_shown(value)}")
            return value if kind == "integer" else float(value)
        raise AssertionError(kind)

    def parse_text(self, text: str) -> Any:
        """The value from an environment variable's text."""
        if self.kind in ("number", "integer"):
            try:
                number: Any = int(text) if self.kind == "integer" else float(text)
            except ValueError:
                raise ValueError(f"must be {self.describe()}, not {text!r}") from None
            return self.parse(number)
        if self.kind == "bool":
            lowered = text.strip().lower()
            if lowered not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(f"must be true or false, not {text!r}")
            return lowered in ("1", "true", "yes")
        return self.parse(text)


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def check_timezone(name: str) -> str:
    """`name` if it is a time zone zoneinfo knows; ValueError naming the problem otherwise."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f'{name!r} is not a known time zone; give an IANA name such as "Europe/Berlin"') from None
    return name


def load_toml(path: Path) -> dict:
    """A TOML file as a dict; ConfigError (one line) when it cannot be read or parsed."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {(exc.strerror or str(exc)).lower()}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a UTF-8 text file") from None


def read_fields(doc: Mapping[str, Any], fields: Sequence[Field], *, where: str, base: Path | None = None) -> dict:
    """Check a parsed TOML document against `fields`: {dotted key: value} for the keys it holds.

    An unknown key (with the nearest known one), a value of the wrong type or out of range is a
    ConfigError naming `where` (the file) and the key."""
    known = {f.key: f for f in fields}
    tables = {k.split(".", 1)[0] for k in known if "." in k}
    out: dict[str, Any] = {}

    def walk(table: Mapping[str, Any], prefix: str) -> None:
        for name, value in table.items():
            key = prefix + name
            if key in known:
                try:
                    out[key] = known[key].parse(value, base)
                except ValueError as exc:
                    raise ConfigError(f"{where}: {key} {exc}") from None
            elif not prefix and name in tables and isinstance(value, dict):
                walk(value, key + ".")
            else:
                close = difflib.get_close_matches(key, list(known) + sorted(tables), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise ConfigError(f"{where}: unknown key {key}{hint}; `livctl config show` lists the keys")

    walk(doc, "")
    return out


# ================================================================================================
# The station's fields
# ================================================================================================


def _data_home(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("XDG_DATA_HOME") or Path("~/.local/share").expanduser()) / "livctl"


STATION_FIELDS: tuple[Field, ...] = (
    Field("device", "text", "the platform sessions run on, as a device URL", env="LIVCTL_DEVICE"),
    Field("log", "path", "the dose log file", env="LIVCTL_LOG"),
    Field("server", "text", "the study server `livctl sync` sends this station's records to, as a PostgreSQL URL "
          "without a password (docs/multisite.md)", env="LIVCTL_SERVER"),
    Field("calibration_dir", "path", "where calibration files are", env="LIVCTL_CALIBRATION_DIR"),
    Field("timezone", "timezone", "the lab's time zone: its days count bouts, reports and exports",
          env="LIVCTL_TIMEZONE"),
    Field("operator", "text", "who runs sessions on this account (for a personal account)", env="LIVCTL_OPERATOR"),
    Field("require_operator", "bool", "a session needs a named operator (--operator or `operator`), "
          "never the login", default=False),
    Field("safety_profile", "path", "a safety profile (a [safety] table) that tightens the default limits"),
    Field("report_paper", "choice", "paper size of PDF reports", default="a4", choices=("a4", "letter")),
    Field("tolerance.frequency_hz", "number", "a window is in spec within this many Hz", default=1.0,
          low=0.01, high=10.0, unit="Hz"),
    Field("tolerance.accel_percent", "number", "... and within this share of the prescribed peak g", default=10.0,
          low=0.1, high=99.0, unit="%"),
    Field("tolerance.max_thd_percent", "number", "... and under this THD", default=10.0, low=0.1, high=100.0, unit="%"),
    Field("tolerance.min_in_spec_percent", "number", "a dose is in spec when this share of its windows is",
          default=90.0, low=0.0, high=100.0, unit="%"),
)
"""What `config.toml` may hold; `livctl config show` prints them all."""


def _is_file(path: Path) -> bool:
    """Whether a configuration file is there; ConfigError (one line) when that cannot be told (a
    folder on its way this user may not enter): a file that may exist is never silently skipped."""
    try:
        return path.is_file()
    except OSError as exc:
        raise ConfigError(
            f"cannot look for {path}: {(exc.strerror or str(exc)).lower()}; let this user read it, or point "
            "XDG_CONFIG_DIRS and XDG_CONFIG_HOME elsewhere"
        ) from None


def user_file(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    home = env.get("XDG_CONFIG_HOME") or str(Path("~/.config").expanduser())
    return Path(home) / FILE_NAME


def system_file(environ: Mapping[str, str] | None = None) -> Path:
    """The first `livctl/config.toml` in $XDG_CONFIG_DIRS that exists (else where the first would be)."""
    env = os.environ if environ is None else environ
    dirs = [d for d in (env.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(os.pathsep) if d]
    candidates = [Path(d) / FILE_NAME for d in dirs] or [Path("/etc/xdg") / FILE_NAME]
    return next((p for p in candidates if _is_file(p)), candidates[0])


@dataclass(frozen=True)
class Value:
    """A configuration field's effective value and where it came from."""

    value: Any
    source: str
    """default, system file PATH, user file PATH, environment NAME, command line --OPTION."""


class Settings:
    """Every station field's effective value and where it came from."""

    def __init__(self, values: dict[str, Value], files: list[tuple[str, Path, bool]]):
        self._values = values
        self.files = files
        """(which, path, read): the system and user files, and whether each was there to read."""

    def __getitem__(self, key: str) -> Any:
        return self._values[key].value

    def source(self, key: str) -> str:
        return self._values[key].source

    def items(self) -> list[tuple[str, Value]]:
        return [(f.key, self._values[f.key]) for f in STATION_FIELDS]

    def given(self, key: str, value: Any, option: str) -> Any:
        """The command line's `value` for `key` when given (and remembered as its source), else the setting."""
        if value is not None:
            self._values[key] = Value(value, f"command line {option}")
            return value
        return self[key]

    def timezone(self) -> tuple[str, str | None]:
        """The lab's time zone, and when it is not configured, a note saying which one was assumed."""
        configured = self["timezone"]
        if configured:
            return configured, None
        from livctl.study.schedule import system_timezone

        assumed = system_timezone()
        return assumed, (
            f"the lab's time zone is not configured: assumed this computer's, {assumed} "
            "(set timezone in the configuration, see `livctl config show`)"
        )

    def tolerance(self):
        """The configured tolerances as a `livctl.prescription.Tolerance`."""
        from livctl.prescription import Tolerance

        return Tolerance(
            frequency_hz=self["tolerance.frequency_hz"],
            accel_fraction=self["tolerance.accel_percent"] / 100.0,
            max_thd_fraction=self["tolerance.max_thd_percent"] / 100.0,
            min_in_spec_fraction=self["tolerance.min_in_spec_percent"] / 100.0,
        )

    def to_dict(self) -> dict:
        return {
            "values": {k: {"value": _plain(v.value), "source": v.source} for k, v in self.items()},
            "files": [{"which": which, "path": str(path), "read": read} for which, path, read in self.files],
        }


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """The station's settings: defaults, then the system file, the user file and the environment."""
    env = os.environ if environ is None else environ
    data = _data_home(env)
    defaults = {f.key: f.default for f in STATION_FIELDS}
    defaults["log"] = data / "doses.sqlite"
    defaults["calibration_dir"] = data / "calibration"
    values = {key: Value(value, "default") for key, value in defaults.items()}
    files = []
    for which, path in (("system", system_file(env)), ("user", user_file(env))):
        present = _is_file(path)
        files.append((which, path, present))
        if not present:
            continue
        found = read_fields(load_toml(path), STATION_FIELDS, where=str(path), base=path.parent)
        for key, value in found.items():
            values[key] = Value(value, f"{which} file {path}")
    for field in STATION_FIELDS:
        text = env.get(field.env) if field.env else None
        if text:
            try:
                values[field.key] = Value(field.parse_text(text), f"environment {field.env}")
            except ValueError as exc:
                raise ConfigError(f"environment variable {field.env} {exc}") from None
    return Settings(values, files)
