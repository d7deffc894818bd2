"""The station's configuration: TOML files of typed, ranged fields, and where each value came from.

A station (a lab PC with its platform) is configured once, in TOML:

- the system-wide file, `livctl/config.toml` in the first of `$XDG_CONFIG_DIRS` (default
  `/etc/xdg`) that has one: for a shared lab PC;
- the user's file, `$XDG_CONFIG_HOME/livctl/config.toml` (default `~/.config/livctl/config.toml`).

Precedence, highest first: the command line, the environment (`LIVCTL_DEVICE`, ...), the user's
file, the system file, the defaults. `Settings` holds each value with its source, which
`livctl config show` prints.

The files are read by `livctl.records.tomlfields`, as calibrations, regimens and safety profiles
are: `STATION_FIELDS` says each key's kind, range and unit, and every problem is one line naming the
file and the key (`ConfigError`, exit 2). Paths in a file are relative to the file's folder; `~` is
the user's home.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from livctl.errors import UsageError
from livctl.records.tomlfields import Field, open_toml

__all__ = ["Settings", "Value", "ConfigError", "STATION_FIELDS", "load_settings", "user_file", "system_file"]

FILE_NAME = Path("livctl") / "config.toml"


class ConfigError(UsageError):
    """A configuration file (or value) that cannot be used: one line naming the file and the key."""


# ================================================================================================
# The station's fields
# ================================================================================================


def _data_home(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("XDG_DATA_HOME") or Path("~/.local/share").expanduser()) / "livctl"


def _setting(key: str, kind: str, help: str, **more: Any) -> Field:
    """A station field: text and paths read with spaces around them dropped, never empty."""
    return Field(key, kind, help, strip=True, line=False, **more)


STATION_FIELDS: tuple[Field, ...] = (
    _setting("device", "text", "the platform sessions run on, as a device URL", env="LIVCTL_DEVICE"),
    _setting("log", "path", "the dose log file", env="LIVCTL_LOG"),
    _setting("server", "text", "the study server `livctl sync` sends this station's records to, as a PostgreSQL URL "
             "without a password (docs/multisite.md)", env="LIVCTL_SERVER"),
    _setting("calibration_dir", "path", "where calibration files are", env="LIVCTL_CALIBRATION_DIR"),
    _setting("timezone", "timezone", "the lab's time zone: its days count bouts, reports and exports",
             env="LIVCTL_TIMEZONE"),
    _setting("operator", "text", "who runs sessions on this account (for a personal account)", env="LIVCTL_OPERATOR"),
    _setting("require_operator", "bool", "a session needs a named operator (--operator or `operator`), "
             "never the login", default=False),
    _setting("safety_profile", "path", "a safety profile (a [safety] table) that tightens the default limits"),
    _setting("report_paper", "choice", "paper size of PDF reports", default="a4", choices=("a4", "letter")),
    _setting("tolerance.frequency_hz", "number", "a window is in spec within this many Hz", default=1.0,
             low=0.01, high=10.0, unit="Hz"),
    _setting("tolerance.accel_percent", "number", "... and within this share of the prescribed peak g", default=10.0,
             low=0.1, high=99.0, unit="%"),
    _setting("tolerance.max_thd_percent", "number", "... and under this THD", default=10.0, low=0.1, high=100.0,
             unit="%"),
    _setting("tolerance.min_in_spec_percent", "number", "a dose is in spec when this share of its windows is",
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
        table, _ = open_toml(path, "configuration file", error=ConfigError)
        found = table.fields(STATION_FIELDS)
        for key, value in found.items():
            values[key] = Value(value, f"{which} file {path}")
    for field in STATION_FIELDS:
        text = env.get(field.env) if field.env else None
        if text:
            try:
                values[field.key] = Value(_from_environment(field, text), f"environment {field.env}")
            except ValueError as exc:
                raise ConfigError(f"environment variable {field.env} {exc}") from None
    return Settings(values, files)


def _from_environment(field: Field, text: str) -> Any:
    """A field's value from an environment variable's text; ValueError saying what it takes."""
    if field.kind in ("number", "whole"):
        try:
            number: Any = int(text) if field.kind == "whole" else float(text)
        except ValueError:
            raise ValueError(f"must be {field.describe()}, not {text!r}") from None
        return field.parse(number)
    if field.kind == "bool":
        lowered = text.strip().lower()
        if lowered not in ("1", "0", "true", "false", "yes", "no"):
            raise ValueError(f"must be true or false, not {text!r}")
        return lowered in ("1", "true", "yes")
    return field.parse(text)
