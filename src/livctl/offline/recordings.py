"""Accelerometer recordings read from files: CSV in the forms people have, the 3D-printer firmware
tooling's ADXL345 dumps, and WAV.

Every reader returns a `Recording`: samples in m/s^2 on a uniform time grid, axes in x, y, z order,
stored column by column (each axis contiguous, as the estimator reads them). When a file has time
stamps, `livctl.offline.timebase` fits the rate to them, splits the record where samples are missing (a
gap) into pieces, measures how the stamps wander, and decides from the samples whether to believe
them (then the samples are resampled onto the fitted grid with a cubic spline). Anything unusable
is a `RecordingError`: one line saying what was expected and what was found. What is usable but
worth knowing (a truncated last row, samples the recorder says it dropped) is a note.

CSV:
- the header is the last line before the first row of numbers (lines starting `##` and blank lines
  are skipped; a leading `#` is taken off the header); its dialect (`,` `;` tab `|` or spaces,
  quoted or not, a byte-order mark, decimal commas with `;`) comes from `csv.Sniffer` and is
  checked against the rows;
- column names are recognised in their common forms: `time`, `t`, `timestamp`, `elapsed`, and
  `x`, `ax`, `accel_x`, `acc x`, `X-axis`, ..., with a unit in brackets or parentheses
  (`Time (s)`, `X (g)`, `accel_x (m/s^2)`, `X [mg]`; a recorder's `X (100g)` names a 100 g sensor
  whose values are in g) or as a suffix (`time_ms`, `timestamp_us`); `columns` maps the rest;
- time stamps in s, ms or us: from the header's unit, `time_unit`, or else from the steps (the
  first of s, ms, us that gives a rate from 20 Hz to 60 kHz, said in `describe`);
- the firmware tooling's dumps (`#time,accel_x,accel_y,accel_z`, mm/s^2, with or without the
  `##drops=...` line older versions write first) are recognised by their header.
WAV (PCM 8/16/24/32-bit integer or 32/64-bit float, 1 to 3 channels, as x, y, z): full scale maps
to `full_scale_g`.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import re
import stat
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from livctl.errors import UsageError
from livctl.offline.timebase import (
    JITTER_RESAMPLE_FRACTION,
    Gap,
    Piece,
    Timing,
    analyse,
    decide,
    diffusion,
    drift_curve,
    white_and_drift,
)
from livctl.units import STANDARD_GRAVITY_MPS2

__all__ = [
    "Recording", "RecordingError", "JITTER_RESAMPLE_FRACTION", "read_recording", "recording_from_samples",
    "describe", "parse_columns", "check_magnitude",
]

AXES = ("x", "y", "z")
UNITS_MPS2 = {"g": STANDARD_GRAVITY_MPS2, "m/s2": 1.0, "mm/s2": 1e-3}
"""Scale of each unit `--units` accepts to m/s^2."""
TIME_UNITS_S = {"s": 1.0, "ms": 1e-3, "us": 1e-6}
"""Scale of each unit `--time-unit` accepts to seconds."""
FIRMWARE_HEADER = ("time", "accel_x", "accel_y", "accel_z")
PLAUSIBLE_RATE_HZ = (20.0, 60_000.0)
"""Rates an accelerometer recording has: the range in which a time unit is inferred."""
SANE_RATE_HZ = (1.0, 1_000_000.0)
"""Outside these, a rate is refused whatever said the unit."""
MAX_ABS_G = 1e6
"""No accelerometer reads more (shock sensors stop near 1e5 g): larger values are a wrong unit or
a broken file, and would overflow the arithmetic of a fit."""
_LAYOUT_BYTES = 1 << 20

_ACCEL_UNITS = {
    "g": 1.0, "gs": 1.0, "g0": 1.0, "gn": 1.0, "mg": 1e-3,
    "m/s^2": 1.0 / STANDARD_GRAVITY_MPS2, "m/s2": 1.0 / STANDARD_GRAVITY_MPS2, "m/s²": 1.0 / STANDARD_GRAVITY_MPS2,
    "m/s/s": 1.0 / STANDARD_GRAVITY_MPS2, "ms^-2": 1.0 / STANDARD_GRAVITY_MPS2, "ms-2": 1.0 / STANDARD_GRAVITY_MPS2,
    "m s^-2": 1.0 / STANDARD_GRAVITY_MPS2, "m s-2": 1.0 / STANDARD_GRAVITY_MPS2, "mps2": 1.0 / STANDARD_GRAVITY_MPS2,
    "mm/s^2": 1e-3 / STANDARD_GRAVITY_MPS2, "mm/s2": 1e-3 / STANDARD_GRAVITY_MPS2, "mm/s²": 1e-3 / STANDARD_GRAVITY_MPS2,
}
"""Acceleration units a header may name, in g per unit."""
_UNIT_NAMES = {1.0: "g", 1e-3: "mg", 1.0 / STANDARD_GRAVITY_MPS2: "m/s2", 1e-3 / STANDARD_GRAVITY_MPS2: "mm/s2"}
_TIME_UNITS = {"s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0, "ms": 1e-3, "msec": 1e-3,
               "millisecond": 1e-3, "milliseconds": 1e-3, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "usec": 1e-6,
               "microsecond": 1e-6, "microseconds": 1e-6, "ns": 1e-9}
_MAGNITUDE_NAMES = {"absolute acceleration", "abs", "magnitude", "norm", "total acceleration", "resultant",
                    "total", "vector sum", "acc_mag", "accel_mag", "mag"}
"""Columns some recorders add that derive from the axes (|a|): left out."""
_TIME_NAMES = {"time", "t", "timestamp", "time stamp", "timestamps", "elapsed", "elapsed time", "seconds", "sec"}
_AXIS_NAME = re.compile(
    r"^(?:(?:a|acc|accel|accl|accelerometer|acceleration|linear acceleration)[ ._-]*)?([xyz])"
    r"(?:[ ._-]*(?:axis|acc|accel|acceleration))?$")
_UNIT_IN_BRACKETS = re.compile(r"^(.*?)\s*[(\[]\s*([^)\]]*?)\s*[)\]]\s*$")
_RANGE_LABEL = re.compile(r"^\d+(?:\.\d+)?\s*g$")
_DELIMITERS = (",", ";", "\t", "|", " ")


class RecordingError(UsageError):
    """A recording that cannot be read or measured: empty, malformed, irregular, clipped, ..."""


@dataclass(frozen=True)
class Recording:
    """A recording as read: samples in m/s^2 on a uniform grid (runs between gaps), with where it came from and
    notes."""

    accel_mps2: np.ndarray
    """(n, axes) in m/s^2, column-major (each axis contiguous)."""
    rate_hz: float
    """Sample rate: as given, from the WAV header, or fitted to the time stamps."""
    axes: tuple[str, ...]
    source: str
    format: str
    """"csv", "firmware-csv" or "wav" (or what made an in-memory recording)."""
    units: str
    """The unit the file's values were in."""
    timing: Timing = field(default_factory=Timing)
    pieces: tuple[Piece, ...] = ()
    """Runs of samples without a gap (empty: one run, the whole recording)."""
    gaps: tuple[Gap, ...] = ()
    t0_s: float = 0.0
    """Time of the first sample, seconds after the first sample of the file (after --start)."""
    notes: tuple[str, ...] = ()
    """Things worth knowing about how the file was read (one line each)."""
    time_unit: str = ""
    """How the time stamps were read, e.g. "ms (from the header)"; empty without stamps."""

    @property
    def samples(self) -> int:
        return self.accel_mps2.shape[0]

    @property
    def time_unit_words(self) -> str:
        """How the stamps were read, without brackets: "ms, from the header"."""
        unit, _, how = self.time_unit.partition(" (")
        return f"{unit}, {how.rstrip(')')}" if how else unit

    @property
    def duration_s(self) -> float:
        """Time covered by the samples (gaps excluded)."""
        return self.samples / self.rate_hz

    @property
    def span_s(self) -> float:
        """Time from the first sample to the end of the last (gaps included)."""
        last = self.piece_list[-1]
        return last.t0_s + last.n / self.rate_hz

    @property
    def nbytes(self) -> int:
        return self.accel_mps2.nbytes

    @property
    def piece_list(self) -> tuple[Piece, ...]:
        return self.pieces or (Piece(0, self.samples, 0.0),)

    def between(self, start_s: float | None = None, end_s: float | None = None) -> "Recording":
        """The part from `start_s` to `end_s` (seconds from the first sample; a view, not a copy).
        A gap inside it is refused: a stretch asked for must be one run of samples."""
        span = self.span_s
        lo = 0.0 if start_s is None else float(start_s)
        hi = span if end_s is None else min(float(end_s), span)
        shown_end = f"{end_s:g}" if end_s is not None else f"{span:.3f}"
        if not (lo < hi and lo < span):
            raise RecordingError(
                f"--start {lo:g} s / --end {shown_end} s leave nothing of {self.source}, which lasts {span:.3f} s"
            )
        chosen = []
        for p in self.piece_list:
            a = max(0, int(math.ceil((lo - p.t0_s) * self.rate_hz - 0.5)))
            b = min(p.n, int(math.floor((hi - p.t0_s) * self.rate_hz + 0.5)))
            if a < b:
                chosen.append((p, a, b))
        if not chosen:
            inside_gap = any(g.after_s < lo and hi <= g.after_s + g.duration_s for g in self.gaps)
            where = f"fall inside a gap of {self.source}" if inside_gap else f"hold no sample of {self.source}"
            raise RecordingError(f"--start {lo:g} s / --end {shown_end} s {where}; expected a stretch of at least a "
                                 "few cycles")
        if len(chosen) > 1:
            gap = self.gaps[self.piece_list.index(chosen[0][0])]
            raise RecordingError(
                f"{self.source}: a gap of {gap.duration_s * 1e3:.1f} ms after t = {gap.after_s:.3f} s (about "
                f"{gap.missing} samples missing) lies between --start {lo:g} s and --end {shown_end} s; expected one "
                f"run of samples: choose a stretch without it ({_pieces_text(self)})"
            )
        p, a, b = chosen[0]
        start, stop = p.start + a, p.start + b
        return replace(self, accel_mps2=self.accel_mps2[start:stop], pieces=(), gaps=(),
                       t0_s=self.t0_s + p.t0_s + a / self.rate_hz, timing=self.timing.between(start, stop))


def _pieces_text(rec: Recording) -> str:
    parts = [f"{p.t0_s:.3f}-{p.t0_s + p.n / rec.rate_hz:.3f} s" for p in rec.piece_list]
    return "runs " + ", ".join(parts[:6]) + (f" and {len(parts) - 6} more" if len(parts) > 6 else "")


def read_recording(
    path: str | Path,
    *,
    units: str | None = None,
    rate_hz: float | None = None,
    full_scale_g: float | None = None,
    columns: dict[str, str | int] | None = None,
    time_unit: str | None = None,
) -> Recording:
    """Read a recording; the format comes from the file's contents (RIFF header: WAV)."""
    path = Path(path)
    try:
        info = path.stat()
    except OSError as exc:
        raise RecordingError(f"cannot read {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise RecordingError(f"{path} is a directory; expected a recording file (CSV or WAV)")
    if not stat.S_ISREG(info.st_mode):
        raise RecordingError(f"{path} is not a regular file (a device or a pipe); expected a recording file")
    try:
        with path.open("rb") as f:
            head = f.read(4096)
    except OSError as exc:
        raise RecordingError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not head.strip():
        raise RecordingError(f"{path} is empty")
    if units is not None and units not in UNITS_MPS2:
        raise RecordingError(f"unknown unit {units!r}; use one of {', '.join(UNITS_MPS2)}")
    if time_unit is not None and time_unit not in TIME_UNITS_S:
        raise RecordingError(f"unknown time unit {time_unit!r}; use one of {', '.join(TIME_UNITS_S)}")
    if head[:4] == b"RIFF":
        for given, name in ((units, "--units"), (columns, "--columns"), (time_unit, "--time-unit")):
            if given is not None:
                raise RecordingError(f"{name} does not apply to WAV files" + ("; give --full-scale-g" if name == "--units" else ""))
        return _read_wav(path, rate_hz, full_scale_g)
    if full_scale_g is not None:
        raise RecordingError("--full-scale-g applies to WAV files only")
    if b"\0" in head:
        raise RecordingError(f"{path} is neither text (CSV) nor WAV: it holds binary data")
    return _read_csv(path, units, rate_hz, columns, time_unit)


def parse_columns(text: str) -> dict[str, str | int]:
    """`--columns time=Time,z=Acc Z` or by 1-based position `time=1,z=4`: which file column is which."""
    mapping: dict[str, str | int] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        key, value = key.strip().lower(), value.strip().strip('"').strip()
        if not sep or not value:
            raise RecordingError(f"--columns {text!r}: expected ROLE=COLUMN pairs such as time=Time,z=Acc Z; found {part.strip()!r}")
        if key not in ("time",) + AXES:
            raise RecordingError(f"--columns: {key!r} is not a role; expected time, x, y or z")
        if key in mapping:
            raise RecordingError(f"--columns names {key} twice")
        mapping[key] = int(value) if value.isdigit() else value
        if isinstance(mapping[key], int) and mapping[key] < 1:
            raise RecordingError(f"--columns {key}={value}: column numbers start at 1")
    if not any(k in AXES for k in mapping):
        raise RecordingError(f"--columns {text!r} names no axis; expected at least one of x=, y=, z=")
    return mapping


# -- CSV ---------------------------------------------------------------------------------------------


@dataclass
class _Layout:
    """Where a CSV file's header and numbers are and how its rows are split."""

    header_line: int | None
    """Physical line (0-based) of the header; None without one."""
    first_data_line: int
    names: list[str]
    delimiter: str | None
    """None: runs of white space."""
    decimal_comma: bool
    fields: int
    klipper: bool = False
    drops: str | None = None


def _read_csv(path: Path, units: str | None, rate_hz: float | None, columns: dict | None,
              time_unit: str | None) -> Recording:
    layout = _layout(path)
    roles, unit_of, describe_units, notes = _map_columns(path, layout, columns)
    if layout.drops is not None:
        notes.append(f"the file says {layout.drops} samples were dropped while recording")
    stop_line, truncated = _last_good_line(path, layout, roles)
    if truncated:
        notes.append(f"the last row ({truncated!r}) is cut short: left out")
    data = _load(path, layout, roles, stop_line)
    if data.shape[0] == 0:
        raise RecordingError(f"{path} holds a header but no samples")
    bad = ~np.isfinite(data)
    if bad.any():
        row = int(np.argmax(bad.any(axis=1)))
        raise RecordingError(f"{path}: data row {row + 1} holds a NaN or infinite value; expected numbers: "
                             "remove or repair it")
    axes = tuple(a for a in AXES if a in roles)
    default = "mm/s2" if layout.klipper else "g"
    accel = np.empty((data.shape[0], len(axes)), order="F")
    shown = []
    for i, a in enumerate(axes):
        g_per_unit = 1.0 / UNITS_MPS2["g"] * UNITS_MPS2[units] if units else unit_of.get(a)
        if g_per_unit is None:
            g_per_unit = UNITS_MPS2[default] / STANDARD_GRAVITY_MPS2
        np.multiply(data[:, list(roles).index(a)], g_per_unit * STANDARD_GRAVITY_MPS2, out=accel[:, i])
        shown.append(units or describe_units.get(a) or default)
    check_magnitude(path, accel)
    unit_text = shown[0] if len(set(shown)) == 1 else ", ".join(f"{a}: {u}" for a, u in zip(axes, shown))
    fmt = "firmware-csv" if layout.klipper else "csv"
    if "time" not in roles:
        if rate_hz is None:
            raise RecordingError(f"{path} has no time column: give the sample rate with --rate HZ "
                                 "(or name the time column with --columns time=NAME)")
        return Recording(accel, rate_hz, axes, str(path), fmt, unit_text, notes=tuple(notes))
    if rate_hz is not None:
        raise RecordingError(f"{path} has a time column; --rate is only for files without one")
    raw_t = np.ascontiguousarray(data[:, list(roles).index("time")])
    del data
    scale, how = _time_scale(path, raw_t, time_unit, unit_of.get("time"))
    return recording_from_samples(raw_t * scale, accel, axes=axes, source=str(path), format=fmt, units=unit_text,
                                  notes=tuple(notes), time_unit=how)


def _layout(path: Path) -> _Layout:
    """Where the header and the numbers are, and how the rows are split."""
    with path.open("rb") as f:
        raw = f.read(_LAYOUT_BYTES)
        complete = not f.read(1)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if complete or exc.start < len(raw) - 4:
            raise RecordingError(f"{path} is not UTF-8 text (byte {exc.start} is {raw[exc.start:exc.start + 1]!r}); "
                                 "expected a CSV file or a WAV file") from None
        text = raw[: exc.start].decode("utf-8-sig")
    lines = text.split("\n")
    if not complete:
        lines = lines[:-1]  # possibly cut in the middle
    header_line, first_data, drops = None, None, None
    for i, line in enumerate(lines):
        s = line.strip().strip("\ufeff")
        if not s:
            continue
        if s.startswith("##"):
            match = re.search(r"drops\s*=\s*(\d+)", s)
            if match and int(match.group(1)) > 0:
                drops = match.group(1)
            continue
        if _starts_with_number(s):
            first_data = i
            break
        header_line = i
    if first_data is None:
        if header_line is not None:
            raise RecordingError(f"{path} holds a header but no samples")
        raise RecordingError(f"{path} holds no rows of numbers")
    header = lines[header_line].strip().strip("\ufeff").lstrip("#").strip() if header_line is not None else None
    sample_rows = [ln.strip() for ln in lines[first_data : first_data + 50] if ln.strip() and not ln.lstrip().startswith("#")]
    sample_rows = sample_rows[:-1] if len(sample_rows) > 2 else sample_rows  # the last may be cut short
    delimiter, decimal_comma, names, fields = _dialect(path, header, sample_rows)
    klipper = header_line is not None and lines[header_line].lstrip().startswith("#") and \
        tuple(n.lower() for n in names) == FIRMWARE_HEADER
    return _Layout(header_line, first_data, names, delimiter, decimal_comma, fields, klipper, drops)


def _starts_with_number(line: str) -> bool:
    s = line.lstrip("\"' \t")
    return bool(s) and (s[0].isdigit() or (s[0] in "+-." and len(s) > 1 and (s[1].isdigit() or s[1] == ".")))


def _split(line: str, delimiter: str | None) -> list[str]:
    if delimiter is None:
        return line.split()
    return [c.strip() for c in next(csv.reader([line], delimiter=delimiter, quotechar='"', skipinitialspace=True))]


def _number(text: str, decimal_comma: bool) -> bool:
    try:
        float(text.replace(",", ".") if decimal_comma else text)
    except ValueError:
        return False
    return True


def _dialect(path: Path, header: str | None, rows: list[str]) -> tuple[str | None, bool, list[str], int]:
    """The delimiter (csv.Sniffer's guess first, checked against the rows: every sample row must
    split into the same number of fields, the first into numbers, the header into as many names),
    decimal commas, the header's names and the number of fields."""
    sample = "\n".join(([header] if header else []) + rows[:20])
    candidates = []
    try:
        candidates.append(csv.Sniffer().sniff(sample, delimiters="".join(_DELIMITERS)).delimiter)
    except csv.Error:
        pass
    candidates += [d for d in _DELIMITERS if d not in candidates]
    for delimiter in candidates:
        d = None if delimiter == " " else delimiter
        split = [_split(r, d) for r in rows]
        counts = {len(s) for s in split}
        if len(counts) != 1:
            continue
        fields = counts.pop()
        for decimal_comma in (False, True) if d != "," else (False,):
            if all(_number(c, decimal_comma) or c == "" for c in split[0]):
                names = _split(header, d) if header else []
                while len(names) > fields and not names[-1]:
                    names.pop()
                if header is not None and len(names) != fields and fields > 1:
                    break
                if fields == 1 and len(rows) and header is not None and len(names) > 1:
                    break
                return d, decimal_comma, names, fields
    first = rows[0] if rows else ""
    raise RecordingError(
        f"{path}: cannot split the rows into columns of numbers (first row {first[:60]!r}); expected values "
        "separated by , ; tab | or spaces, the same number on every row"
    )


def _normalise(name: str) -> tuple[str, str | None]:
    """A column's name without quotes, case or its unit, and the unit (None without one)."""
    name = name.strip().strip('"\'').strip().lower()
    match = _UNIT_IN_BRACKETS.match(name)
    if match and match.group(1):
        return match.group(1).strip(), match.group(2).strip()
    for suffix in ("_ms", "_us", "_s", "_sec", "_usec", "_msec", "(ms)", "(us)", "(s)"):
        base = name[: -len(suffix)]
        if name.endswith(suffix) and base in _TIME_NAMES:
            return base, suffix.strip("_()")
    return name, None


def _role(base: str) -> str | None:
    if base in _TIME_NAMES:
        return "time"
    match = _AXIS_NAME.match(base)
    return match.group(1) if match else None


def _map_columns(path: Path, layout: _Layout, columns: dict | None):
    """Which column is time and which are axes (by name, or as `columns` says), and each one's
    unit: (role -> column index, role -> g per unit or s per unit, role -> unit as shown, notes)."""
    names = layout.names
    notes: list[str] = []
    parsed = [_normalise(n) for n in names]
    roles: dict[str, int] = {}
    if columns:
        for role, want in columns.items():
            if isinstance(want, int):
                if want > layout.fields:
                    raise RecordingError(f"--columns {role}={want}: {path} has {layout.fields} columns")
                roles[role] = want - 1
                continue
            wanted = want.strip().lower()
            hits = [i for i, (raw, (base, _)) in enumerate(zip(names, parsed))
                    if raw.strip().strip('"\'').strip().lower() == wanted or base == wanted]
            if not hits:
                shown = ", ".join(repr(n) for n in names) if names else "none (the file has no header row)"
                raise RecordingError(f"--columns {role}={want}: no such column in {path}; its columns are {shown}")
            roles[role] = hits[0]
    if layout.header_line is None and not columns:
        raise RecordingError(
            f"{path} has no header row; expected one naming the columns (e.g. time,x,y,z), or say which is which "
            "with --columns time=1,x=2,y=3,z=4"
        )
    taken = set(roles.values())
    for i, (base, _) in enumerate(parsed):
        if i in taken:
            continue
        role = _role(base)
        if role is None:
            if columns or base in _MAGNITUDE_NAMES:
                continue  # with a map, the columns it does not name are ignored; a magnitude is derived
            raise RecordingError(
                f"{path}: unknown column {names[i]!r} in the header; expected time (optional) and x, y, z columns "
                "(e.g. time,x,y,z or \"Time (s)\",\"X (g)\"), or name them with --columns time=...,z=..."
            )
        if role in roles:
            if columns:
                continue
            raise RecordingError(f"{path}: column {role!r} appears twice in the header ({names[roles[role]]!r} and "
                                 f"{names[i]!r}); name the one to use with --columns {role}=NAME")
        roles[role] = i
    if not any(r in AXES for r in roles):
        raise RecordingError(f"{path}: the header names no axis column; expected x, y or z (or accel_x, \"X (g)\", "
                             "...), or name them with --columns z=NAME")
    unit_of: dict[str, float] = {}
    shown: dict[str, str] = {}
    for role, i in roles.items():
        unit = parsed[i][1] if i < len(parsed) else None
        if unit is None:
            continue
        unit_key = unit.replace(" ", "") if unit.replace(" ", "") in _ACCEL_UNITS else unit
        if role == "time":
            if unit not in _TIME_UNITS:
                raise RecordingError(f"{path}: column {names[i]!r}: unit {unit!r} is not a time unit; expected s, ms "
                                     "or us (or give --time-unit)")
            unit_of[role] = _TIME_UNITS[unit]
        elif unit_key in _ACCEL_UNITS:
            unit_of[role] = _ACCEL_UNITS[unit_key]
            shown[role] = _UNIT_NAMES.get(_ACCEL_UNITS[unit_key], unit)
        elif _RANGE_LABEL.match(unit):
            unit_of[role] = 1.0
            shown[role] = "g"
            label = unit.replace(" ", "")
            note = f"read the ({label}) columns as a {label[:-1]} g sensor's values in g"
            if note not in notes:
                notes.append(note)
        else:
            raise RecordingError(f"{path}: column {names[i]!r}: unit {unit!r} is not an acceleration unit; expected "
                                 "g, mg, m/s^2 or mm/s^2 (or give --units)")
    ordered = dict(sorted(roles.items(), key=lambda kv: (("time",) + AXES).index(kv[0])))
    return ordered, unit_of, shown, notes


def _last_good_line(path: Path, layout: _Layout, roles: dict[str, int]) -> tuple[int | None, str]:
    """The physical line to stop before, and the last row's text when it is cut short (fewer fields
    than the header names, or a used field that is not a number); (None, "") when it is whole."""
    size = path.stat().st_size
    with path.open("rb") as f:
        f.seek(max(0, size - 65536))
        tail = f.read()
    lines = tail.split(b"\n")
    trailing = 0
    while lines and not lines[-1].strip():
        lines.pop()
        trailing += 1
    if not lines:
        return None, ""
    last = lines[-1].decode("utf-8", errors="replace").strip()
    if last.startswith("#"):
        return None, ""
    fields = _split(last, layout.delimiter)
    if not _cut_short(fields, layout):
        return None, ""
    with path.open("rb") as f:
        newlines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 22), b""))
    ends_with_newline = trailing > 0
    total_lines = newlines + (0 if ends_with_newline else 1)
    return total_lines - 1 - max(0, trailing - 1), last[:40]


_NUMBER_PREFIX = re.compile(r"^[-+]?(\d+\.?\d*|\.\d*)?([eE][-+]?\d*)?$")


def _cut_short(fields: list[str], layout: _Layout) -> bool:
    """A row whose writing stopped part way: fewer fields than the others, or as many with the last
    one an unfinished number ("", "-", "1e"); every field before the last is a number."""
    if not fields or len(fields) > layout.fields:
        return False
    if not all(_number(c, layout.decimal_comma) for c in fields[:-1]):
        return False
    last = fields[-1]
    if len(fields) < layout.fields:
        return _number(last, layout.decimal_comma) or bool(_NUMBER_PREFIX.match(last.replace(",", ".")))
    return not _number(last, layout.decimal_comma) and bool(_NUMBER_PREFIX.match(last.replace(",", ".")))


def _load(path: Path, layout: _Layout, roles: dict[str, int], stop_line: int | None) -> np.ndarray:
    usecols = list(roles.values())
    try:
        with path.open("r", encoding="utf-8-sig", errors="strict", newline="") as f:
            rows = itertools.islice(f, layout.first_data_line, stop_line)
            if layout.decimal_comma:
                rows = io.StringIO("".join(rows).replace(",", "."))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "input contained no data": reported by the caller
                return np.loadtxt(rows, delimiter=layout.delimiter, comments="#", ndmin=2, dtype=np.float64,
                                  usecols=usecols, quotechar='"')
    except ValueError as exc:
        raise RecordingError(f"{path}: {_loadtxt_message(exc, layout)}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordingError(f"cannot read {path}: {exc}") from None


def _loadtxt_message(exc: Exception, layout: _Layout) -> str:
    text = _first_line(exc)
    changed = re.search(r"number of columns changed from (\d+) to (\d+) at row (\d+)", text)
    if changed:
        return (f"data row {changed.group(3)} holds {changed.group(2)} fields where the rows before hold "
                f"{changed.group(1)}; expected {layout.fields} on every row")
    index = re.search(r"invalid column index \d+ at row (\d+) with (\d+) columns", text)
    if index:
        return (f"data row {index.group(1)} holds {index.group(2)} fields where the header names {layout.fields}; "
                f"expected {layout.fields} on every row")
    convert = re.search(r"could not convert string (.*) to float64 at row (\d+), column (\d+)", text)
    if convert:
        return (f"could not convert {convert.group(1)} at data row {convert.group(2)} to a number; expected "
                "numbers in the time and axis columns")
    return f"{text.rstrip('.')}; expected rows of numbers"


def _time_scale(path: Path, raw_t: np.ndarray, time_unit: str | None, header_unit: float | None) -> tuple[float, str]:
    """Seconds per unit of the time column, and how that was decided."""
    steps = np.diff(raw_t)
    step = float(np.median(steps)) if steps.size else math.nan
    if time_unit is not None:
        scale, how = TIME_UNITS_S[time_unit], f"{time_unit} (as --time-unit says)"
    elif header_unit is not None:
        name = {1.0: "s", 1e-3: "ms", 1e-6: "us", 1e-9: "ns"}[header_unit]
        scale, how = header_unit, f"{name} (from the header)"
    else:
        scale, how = None, ""
        if step > 0:
            for name, s in TIME_UNITS_S.items():
                if PLAUSIBLE_RATE_HZ[0] <= 1.0 / (step * s) <= PLAUSIBLE_RATE_HZ[1]:
                    scale, how = s, f"{name} (from the steps)"
                    break
        if scale is None:
            scale, how = 1.0, "s"
    if step > 0:
        rate = 1.0 / (step * scale)
        if not SANE_RATE_HZ[0] <= rate <= SANE_RATE_HZ[1]:
            others = ", ".join(f"{1.0 / (step * s):.4g} Hz in {n}" for n, s in TIME_UNITS_S.items())
            raise RecordingError(
                f"{path}: the time column steps by {step:g} per sample: a rate of {rate:.4g} Hz read in "
                f"{how.split()[0]}, which no accelerometer has ({others}); give --time-unit s, ms or us"
            )
    return scale, how


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def check_magnitude(path: Path | str, accel: np.ndarray) -> None:
    """Refuse values no accelerometer reads (they also overflow a fit's sums of squares)."""
    limit = MAX_ABS_G * STANDARD_GRAVITY_MPS2
    for i in range(accel.shape[1]):
        column = accel[:, i]
        if column.size and not (np.max(column) <= limit and np.min(column) >= -limit):
            worst = float(np.max(np.abs(column[np.isfinite(column)]))) if np.isfinite(column).any() else math.inf
            raise RecordingError(
                f"{path}: values reach {worst / STANDARD_GRAVITY_MPS2:.3g} g; expected at most {MAX_ABS_G:.0e} g "
                "(no accelerometer reads more): check the file's unit (--units, --full-scale-g)"
            )


def recording_from_samples(
    t_s: np.ndarray,
    accel_mps2: np.ndarray,
    *,
    axes: tuple[str, ...] = AXES,
    source: str = "memory",
    format: str = "memory",
    units: str = "m/s2",
    notes: tuple[str, ...] = (),
    time_unit: str = "s",
) -> Recording:
    """A recording from samples (n, axes) in m/s^2 and their time stamps in seconds: stamps
    checked (they must increase), rate fitted, gaps found, the stamps' wander measured and, when
    the samples show they were taken at the stamped instants, resampled onto the fitted grid."""
    n = t_s.shape[0]
    source_name = source
    if n < 2:
        raise RecordingError(f"{source_name} holds a single sample")
    dt = np.diff(t_s)
    backwards = ~(dt > 0)
    if backwards.any():
        row = int(np.argmax(backwards)) + 1
        what = "repeats" if dt[row - 1] == 0 else "goes backwards"
        raise RecordingError(
            f"{source_name}: the time at data row {row + 1} ({t_s[row]:.6f} s) {what}; expected time stamps that increase"
        )
    rate, pieces, gaps, residual = analyse(t_s)
    accel = np.asfortranarray(accel_mps2, dtype=np.float64)
    block = max(1, int(round(0.02 * rate)))
    drift, starts = drift_curve(residual, pieces, block)
    white, drift_rms = white_and_drift(residual, pieces, drift, block)
    jitter_rms = float(np.sqrt(np.mean(residual**2)))
    jitter_max = float(np.max(np.abs(residual)))
    q = diffusion(drift, starts, pieces, block, rate, white)
    notes = list(notes)
    if jitter_rms * rate < 1e-3:
        decision, evidence = "undecided", "stamps regular to 0.1 % of a period"
    else:
        decision, evidence = decide(accel, rate, pieces, residual, t_s, white)
    believe = decision == "stamps" or (decision == "undecided" and jitter_rms > JITTER_RESAMPLE_FRACTION / rate)
    if believe:
        accel = _resample(t_s, accel, pieces, residual, rate)
    timing = Timing(jitter_rms, jitter_max, believe, white, drift_rms, decision, evidence, drift, block, starts, q,
                    rate, float(t_s[-1] - t_s[0]))
    if gaps:
        notes.append(f"{len(gaps)} gap{'s' if len(gaps) > 1 else ''} (samples missing) split the recording into "
                     f"{len(pieces)} runs")
    return Recording(accel, rate, tuple(axes), source_name, format, units, timing, tuple(pieces) if gaps else (),
                     tuple(gaps), 0.0, tuple(notes), time_unit)


def _resample(t: np.ndarray, accel: np.ndarray, pieces: list[Piece], residual: np.ndarray, rate: float) -> np.ndarray:
    """Each piece's samples interpolated (cubic spline) from their stamps onto the fitted grid."""
    from scipy.interpolate import make_interp_spline

    out = np.empty_like(accel, order="F")
    for p in pieces:
        sl = slice(p.start, p.start + p.n)
        if p.n < 4:
            out[sl] = accel[sl]
            continue
        grid = t[p.start] - residual[p.start] + np.arange(p.n) / rate
        grid = np.clip(grid, t[p.start], t[p.start + p.n - 1])
        for axis in range(accel.shape[1]):
            out[sl, axis] = make_interp_spline(t[sl], accel[sl, axis], k=3)(grid)
    return out


# -- WAV ---------------------------------------------------------------------------------------------


def _read_wav(path: Path, rate_hz: float | None, full_scale_g: float | None) -> Recording:
    from scipy.io import wavfile

    if rate_hz is not None:
        raise RecordingError("--rate does not apply to WAV files: their header holds the rate")
    if full_scale_g is None:
        raise RecordingError(
            f"{path} is a WAV file: give --full-scale-g G, the acceleration (g) that full scale stands for"
        )
    notes = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rate, data = wavfile.read(path, mmap=False)
    except Exception as exc:  # scipy raises ValueError, EOFError, struct.error... for broken files
        found = _first_line(exc) if isinstance(exc, (ValueError, EOFError)) else "its chunks are malformed"
        raise RecordingError(f"cannot read WAV {path}: {found.rstrip('.')}; expected a PCM or float WAV file") from None
    for w in caught:
        message = _first_line(w.message) if isinstance(w.message, Exception) else str(w.message).splitlines()[0]
        notes.append(f"WAV: {message.rstrip('.')}")
    if not rate or rate <= 0:
        raise RecordingError(f"WAV {path}: its header gives a sample rate of {rate} Hz; expected a positive rate")
    if data.ndim == 1:
        data = data[:, None]
    if data.shape[0] == 0:
        raise RecordingError(f"WAV {path} holds no samples")
    if data.shape[1] > len(AXES):
        raise RecordingError(f"WAV {path} has {data.shape[1]} channels; expected 1 to 3 (x, y, z)")
    if data.dtype.kind == "f":
        full_scale, offset = 1.0, 0.0
        if not np.all(np.isfinite(data)):
            raise RecordingError(f"WAV {path} holds NaN or infinite samples; expected finite values")
    elif data.dtype == np.uint8:
        full_scale, offset = 128.0, 128.0
    elif data.dtype.kind == "i":
        full_scale, offset = float(2 ** (8 * data.dtype.itemsize - 1)), 0.0
    else:
        raise RecordingError(f"WAV {path}: samples of type {data.dtype}; expected PCM 8/16/24/32-bit integers or floats")
    scale = full_scale_g * STANDARD_GRAVITY_MPS2 / full_scale
    accel = np.empty(data.shape, order="F")
    with np.errstate(over="ignore", invalid="ignore"):
        for i in range(data.shape[1]):
            np.subtract(data[:, i], offset, out=accel[:, i])
            accel[:, i] *= scale
    check_magnitude(path, accel)
    axes = AXES[: data.shape[1]]
    return Recording(accel, float(rate), axes, str(path), "wav", f"full scale = {full_scale_g:g} g", notes=tuple(notes))


def describe(rec: Recording) -> str:
    """One line about a recording, for humans."""
    timing = rec.timing
    jitter = ""
    if timing.jitter_rms_s is not None:
        jitter = f", stamps in {rec.time_unit}, jitter {timing.jitter_rms_s * 1e6:.1f} us RMS"
        if timing.resampled:
            jitter += " (resampled onto an even grid)"
    minutes, seconds = divmod(rec.duration_s, 60.0)
    runs = f" in {len(rec.piece_list)} runs" if len(rec.piece_list) > 1 else ""
    return (f"{rec.source}: {rec.format}, {rec.samples} samples x {len(rec.axes)} axes ({','.join(rec.axes)}), "
            f"{rec.rate_hz:.2f} Hz, {int(minutes)}:{seconds:06.3f}{runs}, {rec.units}{jitter}")
