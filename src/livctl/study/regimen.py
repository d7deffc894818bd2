"""Regimens: what a study prescribes a subject, bout after bout, over weeks.

A regimen is a signal (a preset, or a frequency and a peak acceleration), minutes per bout, bouts a
day, the minimum rest between bouts, the days of the week, a start date, a length and the time
zone whose days it counts. It comes from a shipped preset (named after the signal presets, with
the published schedules) or from a TOML file; `resolve_regimen` turns either, plus what the
operator gives on the command line, into one complete, checked `Regimen`. Knows nothing of the
dose log; `livctl.study.schedule` applies a regimen to the bouts a subject had.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from livctl.errors import UsageError
from livctl.inputs import InputError, parse_zone
from livctl.prescription import PRESETS, Prescription, get_preset
from livctl.procedures.safety import DEFAULT_ACCEL_CAP_G
from livctl.records.tomlfields import Field, TomlTable, open_toml

__all__ = [
    "Regimen", "RegimenError", "REGIMEN_PRESETS", "MAX_DAYS", "check_regimen", "find_regimen", "load_regimen_file",
    "parse_regimen", "resolve_regimen", "weekday_names", "zone",
]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_BOUTS_PER_DAY = 12
MAX_REST_MINUTES = 7 * 24 * 60.0
MAX_DAYS = 10 * 366
"""A regimen longer than ten years is a typing error."""


class RegimenError(UsageError):
    """A regimen (preset, file or option) that is incomplete or contradicts itself."""


@dataclass(frozen=True)
class Regimen:
    """One subject's schedule of bouts. Accelerations are peak g; days are the time zone's days."""

    name: str
    frequency_hz: float
    peak_g: float
    minutes_per_bout: float
    bouts_per_day: int
    min_rest_minutes: float
    """Least time from the end of one bout to the start of the next, in real (elapsed) minutes."""
    weekdays: tuple[int, ...]
    """Days of the week with bouts, 0 = Monday ... 6 = Sunday."""
    days: int | None
    """Length in days from `start` (None: not yet chosen)."""
    start: dt.date | None = None
    timezone: str | None = None
    """IANA time zone whose calendar days the daily count uses, e.g. Europe/Berlin."""
    preset: str | None = None
    """The signal preset, when the signal is one."""
    note: str = ""

    @property
    def end(self) -> dt.date | None:
        """The first day after the regimen."""
        return None if self.start is None or self.days is None else self.start + dt.timedelta(days=self.days)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone or "UTC")

    @property
    def days_per_week(self) -> int:
        return len(self.weekdays)

    def prescription(self, **overrides) -> Prescription:
        """One bout of this regimen (tolerances and ramp from `overrides`)."""
        values = dict(frequency_hz=self.frequency_hz, peak_g=self.peak_g, duration_s=self.minutes_per_bout * 60.0,
                      preset=self.preset)
        values.update(overrides)
        return Prescription(**values)

    def scheduled(self, day: dt.date) -> bool:
        """Whether `day` (a date of the regimen's time zone) is a day with bouts."""
        return (
            self.start is not None
            and self.start <= day
            and (self.end is None or day < self.end)
            and day.weekday() in self.weekdays
        )

    def describe(self) -> str:
        rest = f", at least {_duration(self.min_rest_minutes)} apart" if self.bouts_per_day > 1 else ""
        span = "" if self.days is None else f", {_length(self.days)}"
        start = "" if self.start is None else f" from {self.start.isoformat()}"
        tz = "" if self.timezone is None else f" ({self.timezone})"
        return (
            f"{self.frequency_hz:g} Hz, {self.peak_g:g} g peak, {self.bouts_per_day} x {self.minutes_per_bout:g} min a day"
            f"{rest}, {weekday_names(self.weekdays)}{span}{start}{tz}"
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["weekdays"] = [WEEKDAYS[i] for i in self.weekdays]
        d["start"] = None if self.start is None else self.start.isoformat()
        d["end"] = None if self.end is None else self.end.isoformat()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Regimen":
        values = {k: v for k, v in d.items() if k != "end"}
        values["weekdays"] = tuple(WEEKDAYS.index(w) for w in d["weekdays"])
        values["start"] = None if d.get("start") is None else dt.date.fromisoformat(d["start"])
        return cls(**values)


def weekday_names(weekdays: tuple[int, ...]) -> str:
    if weekdays == tuple(range(7)):
        return "daily"
    if weekdays == tuple(range(5)):
        return "Mon-Fri"
    return ", ".join(WEEKDAYS[i].capitalize() for i in weekdays)


def _duration(minutes: float) -> str:
    return f"{minutes / 60:g} h" if minutes >= 60 and minutes % 60 == 0 else f"{minutes:g} min"


def _length(days: int) -> str:
    return f"{days // 7} weeks" if days % 7 == 0 else f"{days} days"


def _preset_regimen(signal: str, bouts: int, rest_minutes: float, weekdays: tuple[int, ...], days: int | None,
                    note: str) -> Regimen:
    p = PRESETS[signal]
    return Regimen(name=signal, frequency_hz=p.frequency_hz, peak_g=p.peak_g, minutes_per_bout=p.minutes,
                   bouts_per_day=bouts, min_rest_minutes=rest_minutes, weekdays=weekdays, days=days, preset=signal,
                   note=note)


_DAILY = tuple(range(7))
_WEEKDAYS_ONLY = tuple(range(5))
_REST_NOTE = "rest between bouts not published; 1 h as for cells (Sen 2011)"

REGIMEN_PRESETS: dict[str, Regimen] = {
    r.name: r
    for r in (
        _preset_regimen("human-30hz-0.4g", 2, 60, _DAILY, 52 * 7, f"NCT03712813: 12 months; {_REST_NOTE}"),
        _preset_regimen("human-30hz-0.3g", 1, 0, _DAILY, 52 * 7, "Gilsanz 2006: 12 months"),
        _preset_regimen("human-35hz-0.3g", 2, 60, _DAILY, 52 * 7, f"Mogil 2016: 1 year; {_REST_NOTE}"),
        _preset_regimen("human-30hz-0.1g", 2, 60, _DAILY, 52 * 7, f"Rubin 2004: 12 months; {_REST_NOTE}"),
        _preset_regimen("mouse-90hz-0.3g", 1, 0, _WEEKDAYS_ONLY, None, "Lynch 2010, Pagnotti 2016: length per study"),
        _preset_regimen("mouse-45hz-0.6g", 1, 0, _WEEKDAYS_ONLY, None, "Garman 2007, Novotny 2014: length per study"),
        _preset_regimen("cells-90hz-0.7g", 2, 60, _DAILY, None,
                        "Sen 2011: 2-4 bouts a day, >= 1 h rest (less lost the effect); length per experiment"),
    )
}

REGIMEN_FIELDS: tuple[Field, ...] = (
    Field("name", "text", "the regimen's name (default: the file's name)", line=False),
    Field("preset", "text", "a signal preset (see `livctl presets`), or give frequency_hz and peak_g", line=False),
    Field("frequency_hz", "number", "the signal's frequency in Hz", unit="Hz"),
    Field("peak_g", "number", "the signal's peak acceleration in g", unit="g"),
    Field("minutes_per_bout", "number", "minutes of vibration per bout (default: the preset's)", unit="minutes"),
    Field("bouts_per_day", "whole", "bouts on each scheduled day, e.g. 2", integral_floats=True),
    Field("min_rest_minutes", "number", "least rest between bouts in minutes (or min_rest_hours)", unit="minutes"),
    Field("min_rest_hours", "number", "least rest between bouts in hours (or min_rest_minutes)", unit="hours"),
    Field("days_per_week", "whole", "scheduled days a week: the first N days from Monday (5: Mon-Fri)", low=1, high=7,
          integral_floats=True),
    Field("weekdays", "list", 'scheduled days, e.g. ["mon", "wed", "fri"]'),
    Field("weeks", "whole", "length in weeks (or days)", integral_floats=True),
    Field("days", "whole", "length in days (or weeks)", integral_floats=True),
    Field("start", "date", "first day, e.g. 2026-03-02 (or give --start when assigning)"),
    Field("timezone", "timezone", "IANA time zone of the lab, e.g. Europe/Berlin (default: the system's)"),
    Field("note", "text", "free text", line=False),
)
"""What a regimen file may hold; what the values must agree on is `parse_regimen`'s."""
_FIELD = {f.key: f for f in REGIMEN_FIELDS}


def load_regimen_file(path: str | Path) -> tuple[Regimen, str]:
    """Read and check a TOML regimen file; returns the regimen (start, length or time zone may
    still be open) and a source line naming the file and its SHA-256."""
    path = Path(path)
    table, data = open_toml(path, "regimen file", error=RegimenError)
    regimen = _parse(table, default_name=path.stem)
    return regimen, f"file {path.resolve()} sha256 {hashlib.sha256(data).hexdigest()}"


def parse_regimen(table: dict, *, where: str, default_name: str) -> Regimen:
    """Check a regimen given as a TOML table; a one-line RegimenError names the first problem."""
    return _parse(TomlTable(table, where, RegimenError), default_name=default_name)


def _value(t: TomlTable, key: str, *, required: bool = False) -> Any:
    return t.get(_FIELD[key], required=required)


def _parse(t: TomlTable, *, default_name: str) -> Regimen:
    t.check_keys(_FIELD)
    name = _value(t, "name") or default_name
    preset_name, frequency_hz, peak_g, minutes = _signal(t)
    bouts = _value(t, "bouts_per_day", required=True)
    rest = _rest_minutes(t, bouts)
    weekdays = _weekdays(t)
    length = _length_days(t)
    regimen = Regimen(
        name=name, frequency_hz=frequency_hz, peak_g=peak_g, minutes_per_bout=minutes, bouts_per_day=bouts,
        min_rest_minutes=rest, weekdays=weekdays, days=length, start=_value(t, "start"),
        timezone=_value(t, "timezone"), preset=preset_name, note=_value(t, "note") or "",
    )
    try:
        return check_regimen(regimen)
    except RegimenError as exc:
        raise t.fail(str(exc)) from None


def _signal(t: TomlTable) -> tuple[str | None, float, float, float]:
    """The regimen's preset (or None), frequency, peak acceleration and minutes per bout."""
    preset_name = _value(t, "preset")
    frequency_hz, peak_g = _value(t, "frequency_hz"), _value(t, "peak_g")
    minutes = _value(t, "minutes_per_bout")
    if preset_name is not None:
        if frequency_hz is not None or peak_g is not None:
            raise t.fail("preset fixes the frequency and acceleration; give preset or frequency_hz and peak_g, not both")
        try:
            preset = get_preset(preset_name)
        except UsageError as exc:
            raise t.fail(str(exc)) from None
        frequency_hz, peak_g = preset.frequency_hz, preset.peak_g
        minutes = preset.minutes if minutes is None else minutes
    elif frequency_hz is None or peak_g is None:
        missing = "frequency_hz" if frequency_hz is None else "peak_g"
        raise t.fail(f"missing {missing}: give preset, or frequency_hz and peak_g")
    if minutes is None:
        raise t.fail(f"missing minutes_per_bout ({_FIELD['minutes_per_bout'].help})")
    return preset_name, frequency_hz, peak_g, minutes


def _rest_minutes(t: TomlTable, bouts: int) -> float:
    """The least rest between a day's bouts, minutes (0 for one bout a day)."""
    rest_min, rest_h = _value(t, "min_rest_minutes"), _value(t, "min_rest_hours")
    if rest_min is not None and rest_h is not None:
        raise t.fail("give min_rest_minutes or min_rest_hours, not both")
    rest = rest_min if rest_min is not None else (None if rest_h is None else rest_h * 60.0)
    if rest is None:
        if bouts > 1:
            raise t.fail("missing min_rest_minutes (or min_rest_hours): the least rest between a day's bouts")
        rest = 0.0
    return rest


def _weekdays(t: TomlTable) -> tuple[int, ...]:
    """The days of the week with bouts (0 = Monday), from weekdays or days_per_week."""
    per_week = _value(t, "days_per_week")
    names = _value(t, "weekdays")
    if names is not None:
        try:
            weekdays = tuple(sorted(_weekday(n) for n in names))
        except ValueError as exc:
            raise t.fail(str(exc)) from None
        if len(set(weekdays)) != len(weekdays):
            raise t.fail(f"weekdays names a day twice: {names}")
        if per_week is not None and per_week != len(weekdays):
            raise t.fail(f"days_per_week = {per_week} but weekdays lists {len(weekdays)} days")
        return weekdays
    if per_week is None:
        raise t.fail("missing days_per_week (or weekdays): which days of the week have bouts")
    return tuple(range(per_week))


def _length_days(t: TomlTable) -> int:
    """How long the regimen lasts, days (from weeks or days)."""
    weeks, days = _value(t, "weeks"), _value(t, "days")
    if weeks is not None and days is not None:
        raise t.fail("give weeks or days, not both")
    if weeks is None and days is None:
        raise t.fail("missing weeks (or days): how long the regimen lasts")
    return days if days is not None else weeks * 7


def _weekday(name: object) -> int:
    key = str(name).strip().lower()[:3]
    if key not in WEEKDAYS:
        raise ValueError(f"{name!r} is not a day of the week (mon, tue, wed, thu, fri, sat, sun)")
    return WEEKDAYS.index(key)


def check_regimen(r: Regimen) -> Regimen:
    """Raise RegimenError naming the first unusable or contradictory field; return r when sane."""
    try:
        r.prescription().validate(DEFAULT_ACCEL_CAP_G)
    except UsageError as exc:
        raise RegimenError(str(exc)) from None
    if not 1 <= r.bouts_per_day <= MAX_BOUTS_PER_DAY:
        raise RegimenError(f"bouts_per_day must be 1-{MAX_BOUTS_PER_DAY}, got {r.bouts_per_day}")
    if not (math.isfinite(r.min_rest_minutes) and 0 <= r.min_rest_minutes <= MAX_REST_MINUTES):
        raise RegimenError(f"minimum rest must be 0-{MAX_REST_MINUTES / 60:g} h, got {r.min_rest_minutes:g} min")
    busy = r.bouts_per_day * r.minutes_per_bout + (r.bouts_per_day - 1) * r.min_rest_minutes
    if busy > 24 * 60:
        raise RegimenError(
            f"{r.bouts_per_day} bouts of {r.minutes_per_bout:g} min at least {_duration(r.min_rest_minutes)} apart "
            f"take {busy / 60:.1f} h: they do not fit in a day"
        )
    if not r.weekdays or any(not 0 <= d <= 6 for d in r.weekdays):
        raise RegimenError("the regimen needs at least one day of the week")
    if r.days is not None and not 1 <= r.days <= MAX_DAYS:
        raise RegimenError(f"length must be 1-{MAX_DAYS} days, got {r.days}")
    if r.timezone is not None:
        zone(r.timezone)
    return r


def zone(name: str) -> ZoneInfo:
    """A time zone by its IANA name; RegimenError when unknown."""
    try:
        return parse_zone(name)
    except InputError as exc:
        raise RegimenError(str(exc)) from None


def find_regimen(spec: str) -> tuple[Regimen, str]:
    """A regimen preset by name, or a TOML file by path (start, length, time zone may be open)."""
    if spec in REGIMEN_PRESETS:
        return REGIMEN_PRESETS[spec], f"preset {spec}"
    if spec.endswith(".toml") or "/" in spec or Path(spec).exists():
        return load_regimen_file(spec)
    close = difflib.get_close_matches(spec, list(REGIMEN_PRESETS), n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    raise RegimenError(
        f"no regimen preset {spec!r} and no such file; {hint}`livctl regimen list` shows the presets, "
        "or give a TOML file"
    )


def resolve_regimen(
    spec: str,
    *,
    start: dt.date | None = None,
    weeks: int | None = None,
    days: int | None = None,
    timezone: str | None = None,
    default_timezone: str = "UTC",
    now: dt.datetime | None = None,
) -> tuple[Regimen, str]:
    """A complete regimen from a preset name or a TOML file, plus options given when assigning it.

    Options fill what the preset or file leaves open; an option that contradicts the file (a
    different start, length or time zone) is an error rather than a silent winner. The time zone
    defaults to `default_timezone`, the start to the day `now` (default: the present) falls on in
    that zone. Returns the regimen and its source (preset name, or file path and SHA-256)."""
    regimen, source = find_regimen(spec)
    from_file = spec not in REGIMEN_PRESETS
    if weeks is not None and days is not None:
        raise RegimenError("give --weeks or --days, not both")
    length = days if days is not None else (None if weeks is None else weeks * 7)
    updates: dict = {}
    for field_name, given, current, label in (
        ("start", start, regimen.start, "--start"),
        ("days", length, regimen.days, "--weeks/--days"),
        ("timezone", timezone, regimen.timezone, "--tz"),
    ):
        if given is None:
            continue
        if from_file and current is not None and current != given:
            raise RegimenError(
                f"{label} contradicts the regimen file ({field_name} = {current}); change the file or drop {label}"
            )
        updates[field_name] = given
    regimen = replace(regimen, **updates)
    if regimen.days is None:
        raise RegimenError(f"regimen {regimen.name} has no fixed length; give --weeks N or --days N")
    if regimen.timezone is None:
        regimen = replace(regimen, timezone=default_timezone)
    check_regimen(regimen)
    if regimen.start is None:
        now = now or dt.datetime.now(dt.timezone.utc)
        regimen = replace(regimen, start=now.astimezone(regimen.zone).date())
    return regimen, source
