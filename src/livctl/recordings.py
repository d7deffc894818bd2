"""Accelerometer recordings read from files: CSV, the 3D-printer firmware tooling's ADXL345 dumps,
and WAV.

Every reader returns a `Recording`: samples in m/s^2 on a uniform time grid, axes in x, y, z order,
stored column by column (each axis contiguous, as the estimator reads them). Timestamps, when a
file has them, are checked (increasing, no gaps) and fitted with a straight line: its slope is the
effective sample rate and what is left over is the timing jitter, both reported. Timestamps that
wander by more than 1 % of a sample period are believed: the samples are resampled onto the
uniform grid (cubic spline). Anything unusable is a `RecordingError`: one line naming the problem.

Formats:
- CSV with a header row: `time` (seconds, optional) and one to three of `x`, `y`, `z`
  (g unless `units` says m/s2 or mm/s2); without a time column the rate must be given.
- The firmware tooling's dumps: first line `#time,accel_x,accel_y,accel_z`, values in mm/s^2,
  recognised by that line.
- WAV (PCM 8/16/24/32-bit integer or 32/64-bit float, 1 to 3 channels, as x, y, z): full scale
  maps to `full_scale_g`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from livctl.errors import UsageError
from livctl.units import STANDARD_GRAVITY_MPS2

AXES = ("x", "y", "z")
UNITS_MPS2 = {"g": STANDARD_GRAVITY_MPS2, "m/s2": 1.0, "mm/s2": 1e-3}
"""Scale of each accepted unit to m/s^2."""
FIRMWARE_HEADER = ("#time", "accel_x", "accel_y", "accel_z")
JITTER_RESAMPLE_FRACTION = 0.01
"""Timestamps whose RMS deviation from a uniform grid exceeds this share of a sample period are
believed, and the samples are resampled; below it they are clock rounding and ignored."""
GAP_PERIODS = 2.5
"""A step between timestamps longer than this many sample periods means samples are missing."""


class RecordingError(UsageError):
    """A recording that cannot be read or measured: empty, malformed, irregular, clipped, ..."""


@dataclass(frozen=True)
class Timing:
    """How regular the file's timestamps were (None fields: the file had none)."""

    jitter_rms_s: float | None = None
    """RMS deviation of the timestamps from the fitted uniform grid."""
    jitter_max_s: float | None = None
    resampled: bool = False
    """The samples were interpolated onto the uniform grid (the jitter was believed)."""


@dataclass(frozen=True)
class Recording:
    accel_mps2: np.ndarray
    """(n, axes) in m/s^2, column-major (each axis contiguous)."""
    rate_hz: float
    """Sample rate: as given, from the WAV header, or fitted to the timestamps."""
    axes: tuple[str, ...]
    source: str
    format: str
    """"csv", "firmware-csv" or "wav"."""
    units: str
    """The unit the file's values were in."""
    timing: Timing = field(default_factory=Timing)

    @property
    def samples(self) -> int:
        return self.accel_mps2.shape[0]

    @property
    def duration_s(self) -> float:
        return self.samples / self.rate_hz

    @property
    def nbytes(self) -> int:
        return self.accel_mps2.nbytes

    def between(self, start_s: float | None = None, end_s: float | None = None) -> "Recording":
        """The part from `start_s` to `end_s` (seconds from the first sample; a view, not a copy)."""
        start = 0 if start_s is None else int(round(start_s * self.rate_hz))
        stop = self.samples if end_s is None else int(round(end_s * self.rate_hz))
        if not 0 <= start < min(stop, self.samples):
            raise RecordingError(
                f"--start {start_s or 0:g} s / --end {end_s if end_s is not None else self.duration_s:g} s leave "
                f"nothing of {self.source}, which lasts {self.duration_s:.3f} s"
            )
        return replace(self, accel_mps2=self.accel_mps2[start:stop])


def read_recording(
    path: str | Path,
    *,
    units: str | None = None,
    rate_hz: float | None = None,
    full_scale_g: float | None = None,
) -> Recording:
    """Read a recording; the format comes from the file's contents (RIFF header: WAV)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            head = f.read(4096)
    except OSError as exc:
        raise RecordingError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not head.strip():
        raise RecordingError(f"{path} is empty")
    if units is not None and units not in UNITS_MPS2:
        raise RecordingError(f"unknown unit {units!r}; use one of {', '.join(UNITS_MPS2)}")
    if head[:4] == b"RIFF":
        if units is not None:
            raise RecordingError("--units does not apply to WAV files; give --full-scale-g")
        return _read_wav(path, rate_hz, full_scale_g)
    if full_scale_g is not None:
        raise RecordingError("--full-scale-g applies to WAV files only")
    return _read_csv(path, head, units, rate_hz)


# -- CSV ---------------------------------------------------------------------------------------------


def _read_csv(path: Path, head: bytes, units: str | None, rate_hz: float | None) -> Recording:
    first = head.decode("utf-8", errors="replace").splitlines()[0]
    names = [c.strip().lower() for c in first.split(",")]
    firmware = tuple(names) == FIRMWARE_HEADER
    if firmware:
        columns = ["time", "x", "y", "z"]
        unit = units or "mm/s2"
        fmt = "firmware-csv"
    else:
        columns = names
        unit = units or "g"
        fmt = "csv"
        unknown = [c for c in columns if c not in ("time",) + AXES]
        if unknown:
            raise RecordingError(
                f"{path}: unknown column {unknown[0]!r} in the header; expected a header row of "
                f"time (s, optional) and x, y, z (e.g. time,x,y,z), or {','.join(FIRMWARE_HEADER)}"
            )
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        if repeated:
            raise RecordingError(f"{path}: column {repeated[0]!r} appears twice in the header")
        if not any(c in AXES for c in columns):
            raise RecordingError(f"{path}: the header names no axis column (x, y or z)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": reported below
            data = np.loadtxt(path, delimiter=",", comments="#", skiprows=0 if firmware else 1, ndmin=2,
                              dtype=np.float64, encoding="utf-8")
    except ValueError as exc:
        raise RecordingError(f"{path}: {_first_line(exc)}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordingError(f"cannot read {path}: {exc}") from None
    if data.shape[0] == 0:
        raise RecordingError(f"{path} holds a header but no samples")
    if data.shape[1] != len(columns):
        raise RecordingError(f"{path}: the header names {len(columns)} columns but the rows hold {data.shape[1]}")
    bad = ~np.isfinite(data)
    if bad.any():
        row = int(np.argmax(bad.any(axis=1)))
        raise RecordingError(f"{path}: data row {row + 1} holds a NaN or infinite value; remove or repair it")
    axes = tuple(a for a in AXES if a in columns)
    accel = np.empty((data.shape[0], len(axes)), order="F")
    for i, a in enumerate(axes):
        np.multiply(data[:, columns.index(a)], UNITS_MPS2[unit], out=accel[:, i])
    if "time" in columns:
        if rate_hz is not None:
            raise RecordingError(f"{path} has a time column; --rate is only for files without one")
        t = np.ascontiguousarray(data[:, columns.index("time")])
        del data
        accel, rate, timing = _regularise(path, t, accel)
    else:
        if rate_hz is None:
            raise RecordingError(f"{path} has no time column: give the sample rate with --rate HZ")
        rate, timing = rate_hz, Timing()
    return Recording(accel, rate, axes, str(path), fmt, unit, timing)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _regularise(path: Path, t: np.ndarray, accel: np.ndarray) -> tuple[np.ndarray, float, Timing]:
    """Check the timestamps, fit the rate, and resample when they are truly irregular."""
    n = t.shape[0]
    if n < 2:
        raise RecordingError(f"{path} holds a single sample")
    dt = np.diff(t)
    backwards = dt <= 0
    if backwards.any():
        row = int(np.argmax(backwards)) + 1
        what = "repeats" if dt[row - 1] == 0 else "goes backwards"
        raise RecordingError(
            f"{path}: the time at data row {row + 1} ({t[row]:.6f} s) {what}; timestamps must increase"
        )
    period = _fit_period(t)
    gaps = dt > GAP_PERIODS * period
    if gaps.any():
        row = int(np.argmax(gaps))
        missing = int(round(dt[row] / period)) - 1
        raise RecordingError(
            f"{path}: a gap of {dt[row] * 1e3:.1f} ms after t = {t[row]:.6f} s (data row {row + 1}): about "
            f"{missing} samples are missing; cut the recording there"
        )
    i = np.arange(n)
    intercept = float(np.mean(t - period * i))
    residual = t - (intercept + period * i)
    jitter_rms = float(np.sqrt(np.mean(residual**2)))
    jitter_max = float(np.max(np.abs(residual)))
    rate = 1.0 / period
    if jitter_rms <= JITTER_RESAMPLE_FRACTION * period:
        return accel, rate, Timing(jitter_rms, jitter_max, False)
    from scipy.interpolate import make_interp_spline

    grid = intercept + period * i
    grid = np.clip(grid, t[0], t[-1])
    resampled = np.empty_like(accel, order="F")
    for axis in range(accel.shape[1]):
        resampled[:, axis] = make_interp_spline(t, accel[:, axis], k=3)(grid)
    return resampled, rate, Timing(jitter_rms, jitter_max, True)


def _fit_period(t: np.ndarray) -> float:
    """Least-squares slope of time against sample index (robust to jitter, exact for a clean grid)."""
    n = t.shape[0]
    i = np.arange(n, dtype=np.float64) - 0.5 * (n - 1)
    return float(np.dot(i, t - t.mean()) / np.dot(i, i))


# -- WAV ---------------------------------------------------------------------------------------------


def _read_wav(path: Path, rate_hz: float | None, full_scale_g: float | None) -> Recording:
    from scipy.io import wavfile

    if rate_hz is not None:
        raise RecordingError("--rate does not apply to WAV files: their header holds the rate")
    if full_scale_g is None:
        raise RecordingError(
            f"{path} is a WAV file: give --full-scale-g G, the acceleration (g) that full scale stands for"
        )
    try:
        rate, data = wavfile.read(path, mmap=False)
    except Exception as exc:  # scipy raises ValueError, EOFError, struct.error... for broken files
        raise RecordingError(f"cannot read WAV {path}: {_first_line(exc)}") from None
    if data.ndim == 1:
        data = data[:, None]
    if data.shape[0] == 0:
        raise RecordingError(f"WAV {path} holds no samples")
    if data.shape[1] > len(AXES):
        raise RecordingError(f"WAV {path} has {data.shape[1]} channels; livctl reads 1 to 3 (x, y, z)")
    if data.dtype.kind == "f":
        full_scale, offset = 1.0, 0.0
        if not np.all(np.isfinite(data)):
            raise RecordingError(f"WAV {path} holds NaN or infinite samples")
    elif data.dtype == np.uint8:
        full_scale, offset = 128.0, 128.0
    elif data.dtype.kind == "i":
        full_scale, offset = float(2 ** (8 * data.dtype.itemsize - 1)), 0.0
    else:
        raise RecordingError(f"WAV {path}: unsupported sample type {data.dtype}")
    scale = full_scale_g * STANDARD_GRAVITY_MPS2 / full_scale
    accel = np.empty(data.shape, order="F")
    for i in range(data.shape[1]):
        np.subtract(data[:, i], offset, out=accel[:, i])
        accel[:, i] *= scale
    axes = AXES[: data.shape[1]]
    return Recording(accel, float(rate), axes, str(path), "wav", f"full scale = {full_scale_g:g} g")


def describe(rec: Recording) -> str:
    """One line about a recording, for humans."""
    timing = rec.timing
    jitter = ""
    if timing.jitter_rms_s is not None:
        jitter = f", timestamp jitter {timing.jitter_rms_s * 1e6:.1f} us RMS"
        if timing.resampled:
            jitter += " (resampled onto a uniform grid)"
    minutes, seconds = divmod(rec.duration_s, 60.0)
    return (f"{rec.source}: {rec.format}, {rec.samples} samples x {len(rec.axes)} axes ({','.join(rec.axes)}), "
            f"{rec.rate_hz:.2f} Hz, {int(minutes)}:{seconds:06.3f}, {rec.units}{jitter}")
