"""Platform calibration: how much drive gives how much acceleration, how linear, how clean.

A calibration is run by an engineer before a platform doses anyone (`livctl calibrate`, or
`livctl.calibrate` from a script, no Qt needed): `livctl.procedures.calibrate.Calibrator` checks the
sensor at rest and sweeps the drive through the motion guard (see there). This module holds what
the sweep finds and how it is kept:

- **The fit**, per frequency: peak acceleration = k1 d + k3 d^3 (d the drive, fraction of full
  scale, peak) by least squares weighted by each step's standard error (from its SNR), with the
  covariance scaled up by the reduced chi-square when the points scatter more than their errors
  say. k1 is the small-signal gain; k3 d^2 / k1 is the non-linearity; the drive at which the
  response reaches the cap follows, with uncertainties propagated from the covariance.

The result, `Calibration`, is written as TOML to `<dir>/<platform-id>.toml` (never over an existing
file unless asked) and read back by sessions. `Calibration.gain_at(frequency_hz)` gives the fitted
`Gain` (peak m/s^2 per unit drive, with its standard uncertainty) that amplitude control starts
from. Uncertainties are standard uncertainties (k = 1); about 95 % coverage is 2u.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from livctl.platforms import Platform
from livctl.clock import utc_now
from livctl.errors import Refusal, UsageError
from livctl.records.files import atomic_output
from livctl.records.tomlfields import TomlTable, open_toml
from livctl.inputs import EARLIEST_DATE
from livctl.prescription import MAX_FREQUENCY_HZ, MIN_FREQUENCY_HZ
from livctl.procedures.safety import DEFAULT_ACCEL_CAP_G
from livctl.units import g_to_mps2, mps2_to_g

__all__ = [
    "Calibration", "CalibrationError", "CalibrationRefused", "FrequencyPoint", "Gain", "Step", "SensorCheck",
    "FORMAT_VERSION", "MIN_SAFE_DRIVE", "MIN_STEP_DRIVE", "calibration_dir", "calibration_path", "check_writable",
    "find_calibration", "load_calibration", "save_calibration", "session_calibration", "session_reference",
    "fit_response", "frequency_point", "to_toml",
]

FORMAT_VERSION = 1
"""Version of the calibration file format this livctl writes and reads."""

FREQUENCY_MATCH_HZ = 1.0
"""A calibration point serves a frequency within this distance of it."""
LOAD_MATCH_FRACTION = 0.2
"""A session's stated load may differ this much from the calibration's before a warning."""
DEFAULT_MAX_AGE_DAYS = 30.0

HARMONICS_IN_THD = 4
"""estimator.measure reports THD over harmonics 2-5: four harmonics, each picking up noise."""


# ================================================================================================
# Errors
# ================================================================================================


class CalibrationError(UsageError):
    """A calibration file that cannot be used (missing, damaged, foreign, too new), or bad settings."""


class CalibrationRefused(Refusal, CalibrationError):
    """A calibration that will not run or be written as asked; its remedy names what to set."""


# ================================================================================================
# What a calibration holds
# ================================================================================================


@dataclass(frozen=True)
class SensorCheck:
    """The accelerometer at rest. Per-axis values are x, y, z."""

    rate_hz: float
    vertical_axis: str
    gravity_g: tuple[float, float, float]
    """Mean of each axis at rest: the specific force of gravity, +1 g on the vertical axis."""
    noise_rms_g: tuple[float, float, float]
    """RMS about the mean of each axis at rest: the noise floor over the whole band."""
    model: str | None = None

    @property
    def vertical_gravity_g(self) -> float:
        return self.gravity_g["xyz".index(self.vertical_axis)]

    @property
    def vertical_noise_rms_g(self) -> float:
        return self.noise_rms_g["xyz".index(self.vertical_axis)]

    @property
    def noise_density_g_per_rthz(self) -> float:
        """The vertical axis's noise density, assuming white noise up to Nyquist."""
        return self.vertical_noise_rms_g / math.sqrt(self.rate_hz / 2.0)


@dataclass(frozen=True)
class Step:
    """One drive level, measured: peak acceleration of the fundamental on the vertical axis."""

    drive: float
    """Commanded drive level, fraction of full scale (peak)."""
    peak_mps2: float
    peak_u_mps2: float
    """Standard error of `peak_mps2`, from the windows' SNR."""
    frequency_hz: float
    """Measured frequency."""
    thd_percent: float
    """THD as measured (harmonics 2-5); at low levels mostly noise, see `thd_excess_percent`."""
    snr_db: float
    samples: int

    @property
    def peak_g(self) -> float:
        return mps2_to_g(self.peak_mps2)

    @property
    def precision(self) -> float:
        return self.peak_u_mps2 / self.peak_mps2 if self.peak_mps2 > 0 else math.inf

    @property
    def thd_excess_percent(self) -> float:
        """THD with the noise's expected share removed: E[THD^2] from noise is 2 H / (N SNR)."""
        snr = 10.0 ** (self.snr_db / 10.0) if math.isfinite(self.snr_db) else math.inf
        noise = 2.0 * HARMONICS_IN_THD / (self.samples * snr) if snr > 0 else math.inf
        return 100.0 * math.sqrt(max(0.0, (self.thd_percent / 100.0) ** 2 - noise))


@dataclass(frozen=True)
class Gain:
    """The fitted response at one frequency: peak acceleration = k1 d + k3 d^3.

    `mps2_per_drive` (k1) is the small-signal gain, peak m/s^2 per unit of drive (drive is a
    fraction of full scale, peak); `u_mps2_per_drive` its standard uncertainty. An amplitude
    controller starts from `drive_for(target_mps2)`.
    """

    frequency_hz: float
    mps2_per_drive: float
    u_mps2_per_drive: float
    cubic_mps2: float = 0.0
    """k3: peak m/s^2 per unit drive cubed (negative: the response compresses)."""
    cubic_u_mps2: float = 0.0
    correlation: float = 0.0
    """Correlation of the k1 and k3 estimates."""

    @property
    def g_per_drive(self) -> float:
        return mps2_to_g(self.mps2_per_drive)

    @property
    def u_g_per_drive(self) -> float:
        return mps2_to_g(self.u_mps2_per_drive)

    @property
    def covariance(self) -> np.ndarray:
        u1, u3 = self.u_mps2_per_drive, self.cubic_u_mps2
        return np.array([[u1 * u1, self.correlation * u1 * u3], [self.correlation * u1 * u3, u3 * u3]])

    def accel_mps2(self, drive: float) -> float:
        """Predicted peak acceleration at `drive`."""
        return self.mps2_per_drive * drive + self.cubic_mps2 * drive**3

    def accel_u_mps2(self, drive: float) -> float:
        """Standard uncertainty of `accel_mps2(drive)`."""
        j = np.array([drive, drive**3])
        return float(math.sqrt(max(0.0, j @ self.covariance @ j)))

    def drive_for(self, accel_mps2: float) -> float:
        """The drive that gives `accel_mps2` peak, on the fitted curve (ValueError past its reach)."""
        k1, k3 = self.mps2_per_drive, self.cubic_mps2
        if not (k1 > 0 and accel_mps2 >= 0):
            raise ValueError("the response has no positive gain")
        # the curve rises up to d_max (no limit when k3 >= 0); solve by bisection on [0, d_max]
        d_max = math.sqrt(-k1 / (3.0 * k3)) if k3 < 0 else 1.0
        while k3 >= 0 and self.accel_mps2(d_max) < accel_mps2:
            d_max *= 2.0
        if self.accel_mps2(d_max) < accel_mps2:
            raise ValueError(f"{mps2_to_g(accel_mps2):.3f} g is beyond the fitted response")
        lo, hi = 0.0, d_max
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if self.accel_mps2(mid) < accel_mps2 else (lo, mid)
        return 0.5 * (lo + hi)


@dataclass(frozen=True)
class FrequencyPoint:
    """The calibration at one frequency: the measured steps, the fit and what follows from it."""

    frequency_hz: float
    gain: Gain
    steps: tuple[Step, ...]
    nonlinearity_percent: float
    """(response - k1 d) / (k1 d) at the largest measured drive, percent."""
    nonlinearity_u_percent: float
    cap_drive: float
    """The drive at which the response reaches the cap (beyond the measured range the curve is
    extended along the steeper of its tangent and its secant, so the estimate errs low)."""
    cap_drive_u: float
    max_safe_drive: float
    """min(platform maximum, cap_drive - 2 cap_drive_u): the largest drive a session may use."""
    chi2_reduced: float

    @property
    def top_drive(self) -> float:
        return max(s.drive for s in self.steps)

    @property
    def top_step(self) -> Step:
        return max(self.steps, key=lambda s: s.drive)

    def residuals_mps2(self) -> list[float]:
        return [s.peak_mps2 - self.gain.accel_mps2(s.drive) for s in self.steps]


@dataclass(frozen=True)
class Calibration:
    """One platform's calibration, as written to and read from `<platform-id>.toml`."""

    calibration_id: str
    platform_id: str
    device: str
    simulated: bool
    date_utc: datetime
    operator: str | None
    livctl_version: str
    working_frequency_hz: float
    load_kg: float | None
    """The load on the platform during calibration as stated by the operator (None: not stated)."""
    accel_cap_g: float
    platform_max_drive: float
    max_thd_percent: float
    """The THD above which a step counted as clipped."""
    sensor: SensorCheck
    points: tuple[FrequencyPoint, ...]
    format_version: int = FORMAT_VERSION
    raw_signal: dict[str, Any] | None = None
    """The sweep's raw signal (livctl.records.archive): file (relative to the calibration's folder),
    sha256, samples, complete."""

    @property
    def working_point(self) -> FrequencyPoint:
        return self.point_at(self.working_frequency_hz)

    @property
    def max_safe_drive(self) -> float:
        return self.working_point.max_safe_drive

    def point_at(self, frequency_hz: float, tolerance_hz: float = FREQUENCY_MATCH_HZ) -> FrequencyPoint:
        """The calibrated point nearest `frequency_hz`; CalibrationError if none is within tolerance."""
        nearest = min(self.points, key=lambda p: abs(p.frequency_hz - frequency_hz))
        if abs(nearest.frequency_hz - frequency_hz) > tolerance_hz:
            made = ", ".join(f"{p.frequency_hz:g}" for p in self.points)
            raise CalibrationError(
                f"calibration {self.calibration_id} has no point near {frequency_hz:g} Hz (made at {made} Hz); "
                f"calibrate at {frequency_hz:g} Hz"
            )
        return nearest

    def gain_at(self, frequency_hz: float, tolerance_hz: float = FREQUENCY_MATCH_HZ) -> Gain:
        """The fitted gain (peak m/s^2 per unit drive, with its uncertainty) at a calibrated frequency."""
        return self.point_at(frequency_hz, tolerance_hz).gain

    def age_days(self, now: datetime | None = None) -> float:
        return ((now or utc_now()) - self.date_utc).total_seconds() / 86400.0

    # -- as a TOML document -----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The file's content (also what `--json` prints); None values are left out."""
        s = self.sensor
        doc: dict[str, Any] = {
            "format": self.format_version,
            "calibration_id": self.calibration_id,
            "platform_id": self.platform_id,
            "device": self.device,
            "simulated": self.simulated,
            "date_utc": self.date_utc,
            "operator": self.operator,
            "livctl_version": self.livctl_version,
            "working_frequency_hz": self.working_frequency_hz,
            "load_kg": self.load_kg,
            "sensor": {
                "model": s.model,
                "rate_hz": s.rate_hz,
                "vertical_axis": s.vertical_axis,
                "gravity_g": list(s.gravity_g),
                "noise_rms_g": list(s.noise_rms_g),
                "noise_density_g_per_rthz": s.noise_density_g_per_rthz,
            },
            "limits": {
                "accel_cap_g": self.accel_cap_g,
                "platform_max_drive": self.platform_max_drive,
                "max_thd_percent": self.max_thd_percent,
                "max_safe_drive": self.max_safe_drive,
            },
            "points": [_point_to_dict(p) for p in self.points],
            "raw_signal": self.raw_signal,
        }
        return _drop_none(doc)

    @classmethod
    def from_dict(cls, doc: dict[str, Any], source: str = "calibration", *,
                  now: datetime | None = None) -> "Calibration":
        """A calibration from its TOML document; every field is checked against its range (a file
        edited by hand, damaged, or written by a faulty sweep is refused, never half used)."""
        return cls.from_table(TomlTable(doc, source, CalibrationError, fix=REMEDY), now=now)

    @classmethod
    def from_table(cls, r: TomlTable, *, now: datetime | None = None) -> "Calibration":
        """A calibration from its TOML document as read by `livctl.records.tomlfields`."""
        version = r.whole("format")
        if version > FORMAT_VERSION:
            raise CalibrationError(
                f"{r.where} has format {version}, newer than this livctl reads ({FORMAT_VERSION}); upgrade livctl"
            )
        if version < 1:
            raise r.fail(f"format {version} is not a livctl calibration format")
        sensor = r.table("sensor")
        limits = r.table("limits")
        platform_max_drive = limits.number("platform_max_drive", 0.0, 1.0, low_open=True)
        points = tuple(_point_from(p, platform_max_drive) for p in r.tables("points"))
        if not points:
            raise r.fail("no frequency points")
        frequencies = [p.frequency_hz for p in points]
        if len(set(frequencies)) != len(frequencies):
            raise r.fail("two frequency points at the same frequency")
        date = _date_made(r, now)
        cal = cls(
            calibration_id=r.text("calibration_id"),
            platform_id=r.text("platform_id"),
            device=r.text("device"),
            simulated=r.boolean("simulated"),
            date_utc=date,
            operator=r.text("operator", required=False),
            livctl_version=r.text("livctl_version"),
            working_frequency_hz=r.number("working_frequency_hz", MIN_FREQUENCY_HZ, MAX_FREQUENCY_HZ),
            load_kg=r.number("load_kg", 0.0, MAX_LOAD_KG, required=False),
            accel_cap_g=limits.number("accel_cap_g", 0.0, DEFAULT_ACCEL_CAP_G, low_open=True),
            platform_max_drive=platform_max_drive,
            max_thd_percent=limits.number("max_thd_percent", 0.0, 100.0, low_open=True),
            sensor=SensorCheck(
                rate_hz=sensor.number("rate_hz", 0.0, MAX_RATE_HZ, low_open=True),
                vertical_axis=sensor.choice("vertical_axis", ("x", "y", "z")),
                gravity_g=sensor.triple("gravity_g", -MAX_SENSOR_G, MAX_SENSOR_G),
                noise_rms_g=sensor.triple("noise_rms_g", 0.0, MAX_SENSOR_G),
                model=sensor.text("model", required=False),
            ),
            points=points,
            format_version=version,
            raw_signal=_raw_signal_from(r),
        )
        cal.point_at(cal.working_frequency_hz, 1e-6)  # the working frequency must be one of the points
        limits.number("max_safe_drive", 0.0, 1.0, low_open=True, required=False)  # a summary: the points' rule
        return cal


REMEDY = "recalibrate or restore the file"
"""What every problem with a calibration file ends with."""


def _date_made(r: TomlTable, now: datetime | None) -> datetime:
    """`date_utc`, in UTC: from 1970 up to now (a clock a little ahead allowed)."""
    date = r.instant("date_utc")
    latest = (now or utc_now()) + CLOCK_SKEW
    if date.date() < EARLIEST_DATE or date > latest:
        when = "in the future" if date > latest else f"before {EARLIEST_DATE.isoformat()}"
        raise CalibrationError(
            f"{r.where}: date_utc {date.isoformat()} is {when}; a calibration is dated when it was made "
            "(check the clock of the machine that made it, or recalibrate)"
        )
    return date


# What a calibration file may hold (anything outside is an edited, damaged or faulty file)
CLOCK_SKEW = timedelta(hours=1)
"""A calibration dated later than now by more than this is refused (a clock a little ahead is not)."""
MAX_LOAD_KG = 10_000.0
MAX_RATE_HZ = 1e6
MAX_SENSOR_G = 1000.0
"""No accelerometer a platform carries reads more than this (ADXL345: 16 g)."""
MIN_STEP_DRIVE = 1e-6
"""No step a calibration takes is below this share of full scale (`--levels 1e-308` once wrote one
at 0 %): its probe starts at the guard's first drive, 2.5e-5 of full scale on a platform answering
20 g per full drive, and keeps the steps whose response showed (a platform at its resonance answers
there)."""
MIN_SAFE_DRIVE = 1e-3
"""A largest safe drive below 0.1 % of full scale moves nothing measurable: a session's pre-check
would step at drive 0 for ever. Such a calibration is refused."""
MAX_GAIN_G_PER_DRIVE = 1e4
MAX_CUBIC_G_PER_DRIVE3 = MAX_GAIN_G_PER_DRIVE / MIN_STEP_DRIVE**2
"""The cubic term may answer at a step's drive no more than the largest gain does: |k3| d^3 <= 1e4 d
at d = MIN_STEP_DRIVE. (A platform 1250 times stronger than the simulator's default, calibrated at
drives near 1e-4, fits cubic terms of some 3e5 g; a bound of 1e4, the gain's, refused to read back
the calibration livctl had just written.)"""
MAX_STEPS = 10_000


def _raw_signal_from(r: TomlTable) -> dict[str, Any] | None:
    if "raw_signal" not in r:
        return None  # calibrated before livctl kept the sweep's signal
    t = r.table("raw_signal")
    return {"file": t.text("file", line=False), "sha256": t.text("sha256", line=False), "samples": t.whole("samples"),
            "complete": t.boolean("complete")}


def _point_to_dict(p: FrequencyPoint) -> dict[str, Any]:
    g = p.gain
    return {
        "frequency_hz": p.frequency_hz,
        "gain_g_per_drive": mps2_to_g(g.mps2_per_drive),
        "gain_u_g_per_drive": mps2_to_g(g.u_mps2_per_drive),
        "cubic_g": mps2_to_g(g.cubic_mps2),
        "cubic_u_g": mps2_to_g(g.cubic_u_mps2),
        "gain_cubic_correlation": g.correlation,
        "nonlinearity_percent": p.nonlinearity_percent,
        "nonlinearity_u_percent": p.nonlinearity_u_percent,
        "top_drive": p.top_drive,
        "thd_percent_at_top": p.top_step.thd_percent,
        "cap_drive": p.cap_drive,
        "cap_drive_u": p.cap_drive_u,
        "max_safe_drive": p.max_safe_drive,
        "chi2_reduced": p.chi2_reduced,
        "steps": [
            {
                "drive": s.drive,
                "peak_g": s.peak_g,
                "peak_u_g": mps2_to_g(s.peak_u_mps2),
                "residual_g": mps2_to_g(r),
                "frequency_hz": s.frequency_hz,
                "thd_percent": s.thd_percent,
                "snr_db": s.snr_db,
                "samples": s.samples,
            }
            for s, r in zip(p.steps, p.residuals_mps2())
        ],
    }


def _point_from(r: TomlTable, platform_max_drive: float = 1.0) -> FrequencyPoint:
    frequency_hz = r.number("frequency_hz", MIN_FREQUENCY_HZ, MAX_FREQUENCY_HZ)
    step_tables = r.tables("steps")
    if len(step_tables) > MAX_STEPS:
        raise r.fail(f"{r.prefix}steps has {len(step_tables):,} steps, more than a sweep makes")
    steps = tuple(
        Step(
            drive=s.number("drive", MIN_STEP_DRIVE, 1.0),
            peak_mps2=g_to_mps2(s.number("peak_g", 0.0, MAX_SENSOR_G)),
            peak_u_mps2=g_to_mps2(s.number("peak_u_g", 0.0, MAX_SENSOR_G)),
            frequency_hz=s.number("frequency_hz", 0.0, 2 * MAX_FREQUENCY_HZ, low_open=True),
            thd_percent=s.number("thd_percent", 0.0, 1e4),
            snr_db=s.number("snr_db", -200.0, math.inf),
            samples=s.whole("samples", 1, 10**9),
        )
        for s in step_tables
    )
    if not steps:
        raise r.fail(f"{r.prefix}steps: a frequency point has no steps")
    gain = Gain(
        frequency_hz=frequency_hz,
        mps2_per_drive=g_to_mps2(r.number("gain_g_per_drive", 0.0, MAX_GAIN_G_PER_DRIVE, low_open=True)),
        u_mps2_per_drive=g_to_mps2(r.number("gain_u_g_per_drive", 0.0, MAX_GAIN_G_PER_DRIVE)),
        cubic_mps2=g_to_mps2(r.number("cubic_g", -MAX_CUBIC_G_PER_DRIVE3, MAX_CUBIC_G_PER_DRIVE3)),
        cubic_u_mps2=g_to_mps2(r.number("cubic_u_g", 0.0, MAX_CUBIC_G_PER_DRIVE3)),
        correlation=r.number("gain_cubic_correlation", -1.0, 1.0),
    )
    if not gain.mps2_per_drive > 0:
        raise r.fail(f"{r.prefix}gain_g_per_drive: the gain at {frequency_hz:g} Hz must be positive")
    if not gain.u_mps2_per_drive < gain.mps2_per_drive:
        raise r.fail(f"{r.prefix}gain_u_g_per_drive: the gain at {frequency_hz:g} Hz is not measured (its "
                     "uncertainty is as large as the gain)")
    cap_drive = r.number("cap_drive", 0.0, 1e6, low_open=True)
    max_safe_drive = r.number("max_safe_drive", MIN_SAFE_DRIVE, 1.0)
    if max_safe_drive > min(platform_max_drive, cap_drive) * (1 + 1e-9):
        raise r.fail(
            f"{r.prefix}max_safe_drive {max_safe_drive:g} is above the platform's maximum drive "
            f"({platform_max_drive:g}) or the drive that reaches the cap ({cap_drive:g})"
        )
    return FrequencyPoint(
        frequency_hz=frequency_hz,
        gain=gain,
        steps=steps,
        nonlinearity_percent=r.number("nonlinearity_percent", -100.0, 1e4),
        nonlinearity_u_percent=r.number("nonlinearity_u_percent", 0.0, 1e4),
        cap_drive=cap_drive,
        cap_drive_u=r.number("cap_drive_u", 0.0, 1e6),
        max_safe_drive=max_safe_drive,
        chi2_reduced=r.number("chi2_reduced", 0.0, 1e12),
    )


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


# ================================================================================================
# Files
# ================================================================================================

FILE_HEADER = """\
# livctl platform calibration (`livctl calibration show FILE` explains it).
# Accelerations are peak values in g (1 g = 9.80665 m/s^2); drive is a fraction of full scale
# (peak). Response at each frequency: peak_g = gain_g_per_drive * d + cubic_g * d^3.
# *_u_* are standard uncertainties (k = 1): about 95 % coverage is twice them.
"""


def calibration_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Where calibration files are: `explicit`, else the station's (livctl.records.config:
    $LIVCTL_CALIBRATION_DIR, else `calibration_dir` in a configuration file, else
    $XDG_DATA_HOME/livctl/calibration), never a folder that depends on where livctl is started."""
    if explicit:
        return Path(explicit).expanduser()
    from livctl.records.config import load_settings

    return load_settings()["calibration_dir"]


def calibration_path(platform_id: str, directory: str | os.PathLike[str] | None = None) -> Path:
    return calibration_dir(directory) / f"{platform_id}.toml"


def to_toml(cal: Calibration) -> str:
    import tomli_w

    return FILE_HEADER + tomli_w.dumps(cal.to_dict())


def load_calibration(path: str | os.PathLike[str], *, platform_id: str | None = None) -> Calibration:
    """Read and check a calibration file; CalibrationError (one line) when it cannot be used."""
    path = Path(path)
    table, _ = open_toml(path, "calibration file", error=CalibrationError, fix=REMEDY)
    cal = Calibration.from_table(table)
    if platform_id is not None and cal.platform_id != platform_id:
        raise CalibrationError(
            f"{path} is the calibration of platform {cal.platform_id!r}, not {platform_id!r}; "
            f"calibrate {platform_id!r} or move the file"
        )
    return cal


def find_calibration(platform_id: str, directory: str | os.PathLike[str] | None = None) -> Calibration | None:
    """The calibration of `platform_id` in the calibration directory, or None when it has none."""
    path = calibration_path(platform_id, directory)
    if not path.exists():
        return None
    return load_calibration(path, platform_id=platform_id)


def check_writable(platform_id: str, directory: str | os.PathLike[str] | None = None, *, force: bool = False) -> Path:
    """Where a new calibration of `platform_id` will go; CalibrationError if a file is there and not `force`.

    Called before a sweep, so an engineer does not calibrate for nothing."""
    path = calibration_path(platform_id, directory)
    if path.exists() and not force:
        raise CalibrationRefused(
            f"{path} already exists; pass {{force}} to replace it, or {{calibration_dir}} DIR to write elsewhere",
            "force", "calibration_dir",
        )
    if path.parent.exists() and not path.parent.is_dir():
        raise CalibrationRefused(f"{path.parent} is not a directory; choose another {{calibration_dir}}",
                                 "calibration_dir")
    return path


def save_calibration(cal: Calibration, directory: str | os.PathLike[str] | None = None, *, force: bool = False) -> Path:
    """Write `cal` to `<dir>/<platform-id>.toml` whole or not at all; never over a file unless `force`."""
    path = check_writable(cal.platform_id, directory, force=force)
    text = to_toml(cal)
    try:
        with atomic_output(path, replace=force) as f:
            f.write(text)
    except FileExistsError:
        raise CalibrationRefused(f"{path} appeared while calibrating; pass {{force}} to replace it",
                                 "force") from None
    return path


def session_calibration(
    platform: Platform,
    directory: str | os.PathLike[str] | None = None,
    *,
    frequency_hz: float,
    load_kg: float | None = None,
    max_age_days: float = DEFAULT_MAX_AGE_DAYS,
    now: datetime | None = None,
) -> tuple[Calibration | None, list[str]]:
    """The calibration a session on `platform` uses, and warnings about it.

    A real platform (not simulated) without a calibration, or with one made on a simulated platform,
    is refused (CalibrationError); the simulator runs without one. Warnings: older than `max_age_days`, made at another frequency, or
    at a load that differs from the stated `load_kg` by more than 20 %.
    """
    cal = find_calibration(platform.platform_id, directory)
    if cal is None:
        if not platform.simulated:
            raise CalibrationError(
                f"platform {platform.platform_id!r} has no calibration in {calibration_dir(directory)}; "
                f"run `livctl calibrate --device {platform.url}` first (or pass --calibration-dir DIR)"
            )
        return None, []
    if cal.simulated and not platform.simulated:
        raise CalibrationError(
            f"calibration {cal.calibration_id} was made on a simulated platform ({cal.device}); "
            f"platform {platform.platform_id!r} is real and needs its own: run `livctl calibrate --device {platform.url}`"
        )
    warnings = []
    age = cal.age_days(now)
    if age > max_age_days:
        warnings.append(
            f"calibration {cal.calibration_id} is {age:.0f} days old (older than {max_age_days:g}); recalibrate soon"
        )
    nearest = min(cal.points, key=lambda p: abs(p.frequency_hz - frequency_hz))
    if abs(nearest.frequency_hz - frequency_hz) > FREQUENCY_MATCH_HZ:
        made = ", ".join(f"{f:g}" for f in sorted(p.frequency_hz for p in cal.points))
        warnings.append(
            f"calibration {cal.calibration_id} was made at {made} Hz, not {frequency_hz:g} Hz; "
            f"calibrate at {frequency_hz:g} Hz"
        )
    if load_kg is not None and cal.load_kg is not None:
        reference = max(cal.load_kg, 1e-9)
        if abs(load_kg - cal.load_kg) > LOAD_MATCH_FRACTION * reference:
            warnings.append(
                f"calibration {cal.calibration_id} was made with {cal.load_kg:g} kg on the platform, "
                f"not {load_kg:g} kg; the response depends on the load"
            )
    return cal, warnings


def session_reference(cal: Calibration, *, frequency_hz: float, load_kg: float | None) -> tuple[Gain | None, float]:
    """What a session takes from its calibration: the response to expect, and the largest drive.

    The largest drive is the calibrated point's largest safe drive (the one nearest the session's
    frequency), never to be exceeded. The response is returned only when it applies: a point within
    1 Hz of the session's frequency, and the same load within 20 % when both state one.
    """
    nearest = min(cal.points, key=lambda p: abs(p.frequency_hz - frequency_hz))
    applies = abs(nearest.frequency_hz - frequency_hz) <= FREQUENCY_MATCH_HZ
    if load_kg is not None and cal.load_kg is not None:
        applies = applies and abs(load_kg - cal.load_kg) <= LOAD_MATCH_FRACTION * max(cal.load_kg, 1e-9)
    return (nearest.gain if applies else None), nearest.max_safe_drive


# ================================================================================================
# Fitting
# ================================================================================================


def fit_response(frequency_hz: float, steps: Sequence[Step]) -> tuple[Gain, float]:
    """Weighted least squares of peak = k1 d + k3 d^3 (k3 = 0 with fewer than 3 steps).

    Returns the gain and the reduced chi-square; the covariance is scaled by the latter when it is
    above 1 (the points scatter more than their standard errors say).
    """
    d = np.array([s.drive for s in steps], dtype=float)
    y = np.array([s.peak_mps2 for s in steps], dtype=float)
    u = np.array([s.peak_u_mps2 for s in steps], dtype=float)
    u = np.where(np.isfinite(u) & (u > 0), u, np.nanmax(np.where(np.isfinite(u), u, 0.0)) or 1.0)
    columns = [d, d**3] if len(steps) >= 3 else [d]
    design = np.column_stack(columns) / u[:, None]
    coef, *_ = np.linalg.lstsq(design, y / u, rcond=None)
    cov = np.linalg.pinv(design.T @ design)
    residual = (y - np.column_stack(columns) @ coef) / u
    dof = len(steps) - len(columns)
    chi2 = float(residual @ residual) / dof if dof > 0 else 1.0
    cov = cov * max(1.0, chi2)
    if len(columns) == 1:
        return Gain(frequency_hz, float(coef[0]), float(math.sqrt(cov[0, 0]))), chi2
    u1, u3 = math.sqrt(cov[0, 0]), math.sqrt(cov[1, 1])
    return (
        Gain(frequency_hz, float(coef[0]), u1, float(coef[1]), u3, float(cov[0, 1] / (u1 * u3)) if u1 * u3 > 0 else 0.0),
        chi2,
    )


def _cap_drive(gain: Gain, top_drive: float, cap_mps2: float) -> float:
    """The drive where the response reaches `cap_mps2`; see FrequencyPoint.cap_drive."""
    at_top = gain.accel_mps2(top_drive)
    if cap_mps2 <= at_top:
        lo, hi = 0.0, top_drive
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if gain.accel_mps2(mid) < cap_mps2 else (lo, mid)
        return 0.5 * (lo + hi)
    tangent = gain.mps2_per_drive + 3.0 * gain.cubic_mps2 * top_drive**2
    slope = max(tangent, at_top / top_drive)
    return top_drive + (cap_mps2 - at_top) / slope if slope > 0 else math.inf


def _propagate(fn: Callable[[Gain], float], gain: Gain) -> float:
    """Standard uncertainty of fn(gain) from the covariance of (k1, k3), by central differences."""
    grad = []
    for name, u in (("mps2_per_drive", gain.u_mps2_per_drive), ("cubic_mps2", gain.cubic_u_mps2)):
        h = u if u > 0 else 1e-9 * max(1.0, abs(getattr(gain, name)))
        up = fn(replace(gain, **{name: getattr(gain, name) + h}))
        down = fn(replace(gain, **{name: getattr(gain, name) - h}))
        grad.append((up - down) / (2 * h))
    j = np.array(grad)
    return float(math.sqrt(max(0.0, j @ gain.covariance @ j)))


def frequency_point(
    frequency_hz: float, steps: Sequence[Step], *, accel_cap_g: float, max_drive: float
) -> FrequencyPoint:
    """Fit the steps measured at one frequency and derive the limits."""
    steps = tuple(sorted(steps, key=lambda s: s.drive))
    gain, chi2 = fit_response(frequency_hz, steps)
    top = steps[-1].drive
    cap = g_to_mps2(accel_cap_g)

    def nonlinearity(g: Gain) -> float:
        return 100.0 * g.cubic_mps2 * top**2 / g.mps2_per_drive

    cap_drive = _cap_drive(gain, top, cap)
    cap_drive_u = _propagate(lambda g: _cap_drive(g, top, cap), gain) if math.isfinite(cap_drive) else 0.0
    return FrequencyPoint(
        frequency_hz=frequency_hz,
        gain=gain,
        steps=steps,
        nonlinearity_percent=nonlinearity(gain),
        nonlinearity_u_percent=_propagate(nonlinearity, gain),
        cap_drive=cap_drive,
        cap_drive_u=cap_drive_u,
        max_safe_drive=max(0.0, min(max_drive, cap_drive - 2.0 * cap_drive_u)),
        chi2_reduced=chi2,
    )
