"""Platform calibration: how much drive gives how much acceleration, how linear, how clean.

A calibration is run by an engineer before a platform doses anyone (`livctl calibrate`, or
`Calibrator` from a script, no Qt needed):

1. **Sensor check at rest** (drive cut): the mean of each axis (gravity, about +1 g on the
   vertical axis) and the noise floor. A sensor that reads nothing, only noise, or gravity on the
   wrong axis stops the calibration before anything moves.
2. **At each frequency point** (the working frequency, optionally a few around it): a probe from
   the motion guard's first drive (livctl.procedures.guard: safe even for a platform 1000 times stronger than
   expected), in quick steps of at most 4x until the response shows, then measured steps doubling
   until it is known to 2 %; then a sweep of drive levels up to the top acceleration (default
   0.8 g peak). Every drive goes through the guard: its cap check on every 0.1 s block, its stop
   within one block, its ramp-down on every way out. Each step ramps, settles and is measured with
   `livctl.dsp.estimator.measure`. The sweep never commands a level whose acceleration, predicted from
   the points so far, could pass the cap, never more than doubles the drive from one step to the
   next, and stops on a response that is non-monotonic, clipped, off frequency or over the cap.
3. **The fit**, per frequency: peak acceleration = k1 d + k3 d^3 (d the drive, fraction of full
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
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from livctl import __version__
from livctl.dsp.estimator import AnalysisError, Measurement, measure
from livctl.platforms import Platform, SampleBlock
from livctl.clock import utc_now
from livctl.errors import LivctlError, Refusal, UsageError
from livctl.records.files import atomic_output, read_toml
from livctl.inputs import EARLIEST_DATE, Range
from livctl.prescription import MAX_FREQUENCY_HZ, MIN_FREQUENCY_HZ
from livctl.procedures.safety import DEFAULT_ACCEL_CAP_G
from livctl.procedures.stopping import StopSignal
from livctl.units import g_to_mps2, mps2_to_g

FORMAT_VERSION = 1
"""Version of the calibration file format this livctl writes and reads."""

FREQUENCY_MATCH_HZ = 1.0
"""A calibration point serves a frequency within this distance of it."""
LOAD_MATCH_FRACTION = 0.2
"""A session's stated load may differ this much from the calibration's before a warning."""
DEFAULT_MAX_AGE_DAYS = 30.0

# -- the sweep's safety and acceptance limits ----------------------------------------------------
PROBE_MAX_DRIVE = 0.3
"""The probe (response still unknown) stays under this drive, as the session's pre-check does; it
starts from the motion guard's first drive (safe even for a platform 1000x stronger than expected)."""
QUICK_RAMP_S = 0.1
QUICK_WINDOW_S = 0.3
QUICK_PRECISION = 0.1
"""Quick probe steps (one short window each, not kept) climb until the response shows to this
relative standard error; measured steps take over from there."""
PROBE_PRECISION = 0.02
"""The probe ends once a step's peak is known to this relative standard error."""
MAX_STEP_RATIO = 2.0
"""No step drives more than this many times the largest level measured so far."""
PREDICTION_SIGMAS = 3.0
"""Predicted accelerations are taken this many standard errors high before comparing with the cap."""
MAX_COMPRESSION = 0.15
"""A step whose gain is this far below the small-signal gain is clipping or saturating."""
FREQUENCY_TOLERANCE_HZ = 1.0
"""The platform must vibrate within this of the commanded frequency."""
MAX_REST_NOISE_G = 0.1
"""RMS noise at rest above this is a sensor that reads only noise."""
GRAVITY_TOLERANCE_G = 0.15
HARMONICS_IN_THD = 4
"""estimator.measure reports THD over harmonics 2-5: four harmonics, each picking up noise."""


# ================================================================================================
# Errors
# ================================================================================================


class CalibrationError(UsageError):
    """A calibration file that cannot be used (missing, damaged, foreign, too new), or bad settings."""


class CalibrationRefused(Refusal, CalibrationError):
    """A calibration that will not run or be written as asked; its remedy names what to set."""


class CalibrationFailed(LivctlError):
    """The platform or its sensor failed a check: the calibration stopped, ramped down, wrote nothing.

    `kind` names the check: sensor, no-response, frequency, non-monotonic, clipped, cap.
    """

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class CalibrationInterrupted(LivctlError):
    """Stopped on request (Ctrl-C, SIGTERM, the live view closed): ramped down, nothing written."""

    exit_code = 130


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
        r = _Reader(doc, source)
        version = r.get("format", int)
        if version > FORMAT_VERSION:
            raise CalibrationError(
                f"{source} has format {version}, newer than this livctl reads ({FORMAT_VERSION}); upgrade livctl"
            )
        if version < 1:
            raise CalibrationError(f"{source}: format {version} is not a livctl calibration format")
        sensor = r.table("sensor")
        limits = r.table("limits")
        platform_max_drive = limits.number("platform_max_drive", 0.0, 1.0, low_open=True)
        points = tuple(_point_from(p, platform_max_drive) for p in r.tables("points"))
        if not points:
            raise CalibrationError(f"{source}: no frequency points")
        frequencies = [p.frequency_hz for p in points]
        if len(set(frequencies)) != len(frequencies):
            raise CalibrationError(f"{source}: two frequency points at the same frequency; recalibrate or restore the file")
        date = r.get("date_utc", datetime)
        if date.tzinfo is None:
            raise CalibrationError(f"{source}: date_utc must carry a UTC offset (write it as 2026-01-31T09:00:00Z)")
        date = date.astimezone(timezone.utc)
        latest = (now or utc_now()) + CLOCK_SKEW
        if date.date() < EARLIEST_DATE or date > latest:
            when = "in the future" if date > latest else f"before {EARLIEST_DATE.isoformat()}"
            raise CalibrationError(
                f"{source}: date_utc {date.isoformat()} is {when}; a calibration is dated when it was made "
                "(check the clock of the machine that made it, or recalibrate)"
            )
        axis = sensor.get("vertical_axis", str)
        if axis not in ("x", "y", "z"):
            raise CalibrationError(f"{source}: sensor.vertical_axis must be x, y or z, not {axis!r}")
        cal = cls(
            calibration_id=r.text("calibration_id"),
            platform_id=r.text("platform_id"),
            device=r.text("device"),
            simulated=r.get("simulated", bool),
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
                vertical_axis=axis,
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
MAX_STEPS = 10_000


def _raw_signal_from(r: "_Reader") -> dict[str, Any] | None:
    if "raw_signal" not in r.t:
        return None  # calibrated before livctl kept the sweep's signal
    t = r.table("raw_signal")
    return {"file": t.get("file", str), "sha256": t.get("sha256", str), "samples": t.get("samples", int),
            "complete": t.get("complete", bool)}


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


def _point_from(r: "_Reader", platform_max_drive: float = 1.0) -> FrequencyPoint:
    frequency_hz = r.number("frequency_hz", MIN_FREQUENCY_HZ, MAX_FREQUENCY_HZ)
    step_tables = r.tables("steps")
    if len(step_tables) > MAX_STEPS:
        raise CalibrationError(f"{r.source}: {r.prefix}steps has {len(step_tables):,} steps, more than a sweep makes")
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
        raise CalibrationError(f"{r.source}: a frequency point has no steps")
    gain = Gain(
        frequency_hz=frequency_hz,
        mps2_per_drive=g_to_mps2(r.number("gain_g_per_drive", 0.0, MAX_GAIN_G_PER_DRIVE, low_open=True)),
        u_mps2_per_drive=g_to_mps2(r.number("gain_u_g_per_drive", 0.0, MAX_GAIN_G_PER_DRIVE)),
        cubic_mps2=g_to_mps2(r.number("cubic_g", -MAX_GAIN_G_PER_DRIVE, MAX_GAIN_G_PER_DRIVE)),
        cubic_u_mps2=g_to_mps2(r.number("cubic_u_g", 0.0, MAX_GAIN_G_PER_DRIVE)),
        correlation=r.number("gain_cubic_correlation", -1.0, 1.0),
    )
    if not gain.mps2_per_drive > 0:
        raise CalibrationError(f"{r.source}: the gain at {frequency_hz:g} Hz must be positive")
    if not gain.u_mps2_per_drive < gain.mps2_per_drive:
        raise CalibrationError(
            f"{r.source}: the gain at {frequency_hz:g} Hz is not measured (its uncertainty is as large as the gain); "
            "recalibrate"
        )
    cap_drive = r.number("cap_drive", 0.0, 1e6, low_open=True)
    max_safe_drive = r.number("max_safe_drive", MIN_SAFE_DRIVE, 1.0)
    if max_safe_drive > min(platform_max_drive, cap_drive) * (1 + 1e-9):
        raise CalibrationError(
            f"{r.source}: {r.prefix}max_safe_drive {max_safe_drive:g} is above the platform's maximum drive "
            f"({platform_max_drive:g}) or the drive that reaches the cap ({cap_drive:g}); recalibrate or restore the file"
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


class _Reader:
    """Typed access to one TOML table, with one-line errors that name the field."""

    def __init__(self, table: dict[str, Any], source: str, prefix: str = ""):
        self.t, self.source, self.prefix = table, source, prefix

    def _missing(self, key: str) -> CalibrationError:
        return CalibrationError(f"{self.source}: missing field {self.prefix}{key}; recalibrate or restore the file")

    def get(self, key: str, kind: type, *, required: bool = True) -> Any:
        if key not in self.t:
            if required:
                raise self._missing(key)
            return None
        value = self.t[key]
        # bool is an int in Python; keep them apart
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise CalibrationError(
                f"{self.source}: {self.prefix}{key} should be {_KIND_NAMES.get(kind, kind.__name__)}, "
                f"not {type(value).__name__} {value!r}"
            )
        return value

    def number(self, key: str, low: float = -math.inf, high: float = math.inf, *, low_open: bool = False,
               required: bool = True) -> Any:
        """A number (a TOML integer or float) within `low`-`high`; NaN, and infinity unless `high`
        is infinite, are refused."""
        if key in self.t and isinstance(self.t[key], int) and not isinstance(self.t[key], bool):
            value = float(self.t[key])
        else:
            value = self.get(key, float, required=required)
        if value is None:
            return None
        if math.isnan(value):
            raise CalibrationError(f"{self.source}: {self.prefix}{key} is not a number; recalibrate or restore the file")
        self._check_range(key, value, low, high, low_open)
        return value

    def whole(self, key: str, low: int, high: int) -> int:
        value = self.get(key, int)
        self._check_range(key, value, low, high, False)
        return value

    def text(self, key: str, *, required: bool = True) -> Any:
        value = self.get(key, str, required=required)
        if value is not None and (len(value) > MAX_TEXT or not value.isprintable()):
            raise CalibrationError(
                f"{self.source}: {self.prefix}{key} is not a line of text (at most {MAX_TEXT} printable characters)"
            )
        return value

    def _check_range(self, key: str, value: float, low: float, high: float, low_open: bool) -> None:
        if (math.isinf(value) and not (math.isinf(high) and value > 0)) or not (
            (value > low if low_open else value >= low) and value <= high
        ):
            span = Range(None if math.isinf(low) else low, None if math.isinf(high) else high, low_open=low_open)
            if span.positive and value <= 0:
                raise CalibrationError(f"{self.source}: {self.prefix}{key} = {value!r} must be positive; "
                                       "recalibrate or restore the file")
            raise CalibrationError(
                f"{self.source}: {self.prefix}{key} = {value!r} is out of range: it must be {span.describe()}; "
                "recalibrate or restore the file"
            )

    def triple(self, key: str, low: float = -math.inf, high: float = math.inf) -> tuple[float, float, float]:
        values = self.get(key, list)
        if len(values) != 3 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise CalibrationError(f"{self.source}: {self.prefix}{key} should be three numbers (x, y, z)")
        for axis, v in zip("xyz", values):
            if math.isnan(v):
                raise CalibrationError(f"{self.source}: {self.prefix}{key} ({axis}) is not a number")
            self._check_range(f"{key} ({axis})", float(v), low, high, False)
        return tuple(float(v) for v in values)  # type: ignore[return-value]

    def table(self, key: str) -> "_Reader":
        return _Reader(self.get(key, dict), self.source, f"{self.prefix}{key}.")

    def tables(self, key: str) -> list["_Reader"]:
        items = self.get(key, list)
        if not all(isinstance(i, dict) for i in items):
            raise CalibrationError(f"{self.source}: {self.prefix}{key} should be a list of tables")
        return [_Reader(item, self.source, f"{self.prefix}{key}[{n}].") for n, item in enumerate(items)]


MAX_TEXT = 1000
"""Ids, device URLs, operators and model names are single lines shorter than this."""

_KIND_NAMES = {float: "a number", int: "an integer", str: "text", bool: "true or false", list: "a list",
               dict: "a table", datetime: "a date and time"}


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
    doc, _ = read_toml(path, "calibration file", error=CalibrationError)
    cal = Calibration.from_dict(doc, str(path))
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


# ================================================================================================
# Running a calibration
# ================================================================================================


@dataclass(frozen=True)
class SweepSettings:
    """How a calibration sweeps. Accelerations are peak g; drive levels are fractions of full scale."""

    frequency_hz: float = 30.0
    """The working frequency."""
    extra_frequencies_hz: tuple[float, ...] = ()
    """Further frequency points (a few around the working frequency), each swept the same way."""
    top_accel_g: float = 0.8
    """The sweep climbs to about this acceleration (or the platform's maximum drive)."""
    accel_cap_g: float = DEFAULT_ACCEL_CAP_G
    steps: int = 8
    """Steps of the planned sweep, evenly spaced in drive up to the top."""
    levels: tuple[float, ...] | None = None
    """Drive levels to measure instead of the planned ones (after the probe)."""
    ramp_s: float = 0.5
    settle_s: float = 0.5
    window_s: float = 1.0
    windows_per_step: int = 2
    rest_s: float = 2.0
    max_thd_percent: float = 10.0
    """A step whose THD (noise removed) is above this is clipped."""

    @property
    def frequencies_hz(self) -> tuple[float, ...]:
        return (self.frequency_hz, *self.extra_frequencies_hz)

    def validate(self, max_drive: float) -> "SweepSettings":
        for f in self.frequencies_hz:
            if not (math.isfinite(f) and MIN_FREQUENCY_HZ <= f <= MAX_FREQUENCY_HZ):
                raise CalibrationError(f"frequency {f:g} Hz is outside {MIN_FREQUENCY_HZ:g}-{MAX_FREQUENCY_HZ:g} Hz")
        if len(set(self.frequencies_hz)) != len(self.frequencies_hz):
            raise CalibrationError("each frequency point must be given once")
        if not 0 < self.accel_cap_g <= DEFAULT_ACCEL_CAP_G:
            raise CalibrationError(f"the acceleration cap must be above 0 and at most {DEFAULT_ACCEL_CAP_G:g} g peak")
        if not 0 < self.top_accel_g <= self.accel_cap_g:
            raise CalibrationRefused(
                f"the sweep's top {self.top_accel_g:g} g peak would exceed the {self.accel_cap_g:g} g safety cap; "
                f"choose {{top_accel_g}} at most {self.accel_cap_g:g}",
                "top_accel_g",
            )
        if not 2 <= self.steps <= 50:
            raise CalibrationError(f"steps must be between 2 and 50, not {self.steps}")
        if self.levels is not None:
            if not self.levels:
                raise CalibrationError("give at least one drive level")
            bad = [lv for lv in self.levels if not (math.isfinite(lv) and 0 < lv <= max_drive)]
            if bad:
                raise CalibrationError(
                    f"drive level {100 * bad[0]:g} % is outside 0-{100 * max_drive:g} % of full drive"
                )
        for name in ("ramp_s", "settle_s", "window_s", "rest_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0) or (name in ("window_s", "rest_s") and value <= 0):
                raise CalibrationError(f"{name} must be a positive number of seconds, not {value}")
        if self.windows_per_step < 1:
            raise CalibrationError("windows_per_step must be at least 1")
        if not 0 < self.max_thd_percent <= 100:
            raise CalibrationError("the THD limit must be between 0 and 100 %")
        return self


class CalibrationObserver:
    """Receives a calibration's progress, on the calibrating thread. Override what you need."""

    def status(self, text: str) -> None:
        """A line of progress for a person."""

    def samples(self, block: SampleBlock, frequency_hz: float, drive: float) -> None:
        """Every block read from the platform (settling and measuring, rest and ramps)."""

    def step(self, frequency_hz: float, step: Step, gain: Gain | None) -> None:
        """A measured step, and the fit of the steps at this frequency so far (None before 2 steps)."""


@dataclass
class Calibrator:
    """Calibrate one platform: `run()` returns the `Calibration` (not yet saved) or raises.

    Every way out (done, failed check, stop request, platform failure, a bug) ramps the drive to
    zero and cuts it; a measured acceleration over the cap cuts it at once.
    """

    platform: Platform
    settings: SweepSettings = field(default_factory=SweepSettings)
    operator: str | None = None
    load_kg: float | None = None
    sensor_model: str | None = None
    stop: StopSignal = field(default_factory=StopSignal)
    observer: CalibrationObserver = field(default_factory=CalibrationObserver)
    raw_signal: Any = None
    """A `livctl.records.archive.RawArchive` that keeps the sweep's raw signal (every block and command),
    or None."""

    def __post_init__(self) -> None:
        self.settings.validate(self.platform.max_drive)
        if self.load_kg is not None and not (math.isfinite(self.load_kg) and self.load_kg >= 0):
            raise CalibrationError(f"the load must be a number of kg >= 0, not {self.load_kg}")
        self._drive = 0.0
        self._frequency_hz = self.settings.frequency_hz

    @property
    def cap_mps2(self) -> float:
        return g_to_mps2(self.settings.accel_cap_g)

    def run(self) -> Calibration:
        from livctl.procedures.guard import MotionGuard, StopRequested
        from livctl.procedures.safety import Trip
        from livctl.procedures.sensorwatch import SensorUntrusted

        platform = self.platform if self.raw_signal is None else self.raw_signal.watch(self.platform)
        self.guard = MotionGuard(platform, accel_cap_g=self.settings.accel_cap_g, stop=self.stop,
                                 ramp_s=self.settings.ramp_s)
        with self.guard:
            try:
                sensor = self._sensor_check()
                points = tuple(self._calibrate_at(f) for f in self.settings.frequencies_hz)
            except StopRequested as exc:
                raise CalibrationInterrupted(
                    f"calibration stopped ({exc.reason}); the platform was "
                    f"{'cut' if exc.cut else 'ramped down'} and nothing was written"
                ) from None
            except SensorUntrusted as exc:
                raise CalibrationFailed("sensor", f"sensor check: {exc.reason}") from None
            except Trip as trip:
                if not trip.cut:  # a load that changed, a response that jumped: ramped down
                    raise CalibrationFailed("sensor", trip.reason) from None
                raise CalibrationFailed("cap", f"{trip.reason}: drive cut") from None
            except CalibrationFailed as exc:
                if exc.kind == "cap":
                    self.guard.cut(str(exc))  # over the cap: no ramp from there
                raise
        date = utc_now().replace(microsecond=0)
        return Calibration(
            calibration_id=f"{self.platform.platform_id}-{date:%Y%m%dT%H%M%SZ}",
            platform_id=self.platform.platform_id,
            device=self.platform.url,
            simulated=self.platform.simulated,
            date_utc=date,
            operator=self.operator,
            livctl_version=__version__,
            working_frequency_hz=self.settings.frequency_hz,
            load_kg=self.load_kg,
            accel_cap_g=self.settings.accel_cap_g,
            platform_max_drive=self.platform.max_drive,
            max_thd_percent=self.settings.max_thd_percent,
            sensor=sensor,
            points=points,
        )

    # -- at rest ------------------------------------------------------------------------------

    def _sensor_check(self) -> SensorCheck:
        p = self.platform
        block = self._read(self.settings.rest_s)
        accel = np.asarray(block.accel_mps2, dtype=float)
        if accel.shape[0] < 2:
            raise CalibrationFailed("sensor", "the sensor delivers no samples; check its cable and power")
        if not np.all(np.isfinite(accel)):
            raise CalibrationFailed("sensor", "the sensor returns values that are not numbers; check its connection")
        mean_g = accel.mean(axis=0) / g_to_mps2(1.0)
        noise_g = accel.std(axis=0) / g_to_mps2(1.0)
        axis = "xyz".index(p.vertical_axis)
        check = SensorCheck(
            rate_hz=block.rate_hz,
            vertical_axis=p.vertical_axis,
            gravity_g=tuple(float(v) for v in mean_g),  # type: ignore[arg-type]
            noise_rms_g=tuple(float(v) for v in noise_g),  # type: ignore[arg-type]
            model=self.sensor_model,
        )
        constant = not np.any(np.ptp(accel, axis=0) > 0)
        if constant and not np.any(accel[0] != 0):
            raise CalibrationFailed("sensor", "the sensor reads nothing (every sample is 0); check its cable and power")
        if constant:
            raise CalibrationFailed(
                "sensor", f"the sensor reads a constant ({mean_g[axis]:+.3f} g on {p.vertical_axis}): it is stalled"
            )
        if noise_g[axis] > MAX_REST_NOISE_G:
            raise CalibrationFailed(
                "sensor",
                f"the sensor reads only noise ({1000 * noise_g[axis]:.0f} mg RMS at rest on {p.vertical_axis}, "
                f"gravity {np.linalg.norm(mean_g):.2f} g); check its cable, grounding and mounting",
            )
        if p.gravity_on_vertical:  # an AC-coupled input (a sound card's) carries no gravity to check
            self._check_gravity(mean_g, axis)
        self.observer.status(
            f"sensor at rest: gravity {mean_g[axis]:+.3f} g on {p.vertical_axis}, noise "
            f"{1000 * noise_g[axis]:.1f} mg RMS ({1e6 * check.noise_density_g_per_rthz:.0f} ug/sqrt(Hz))"
        )
        return check

    def _check_gravity(self, mean_g: np.ndarray, axis: int) -> None:
        p = self.platform
        magnitude = float(np.linalg.norm(mean_g))
        if abs(magnitude - 1.0) > GRAVITY_TOLERANCE_G:
            raise CalibrationFailed(
                "sensor",
                f"the sensor reads {magnitude:.2f} g of gravity at rest, not 1 g; check its range and scale",
            )
        if abs(abs(mean_g[axis]) - 1.0) > GRAVITY_TOLERANCE_G:
            strongest = "xyz"[int(np.argmax(np.abs(mean_g)))]
            raise CalibrationFailed(
                "sensor",
                f"gravity is on the sensor's {strongest} axis, not {p.vertical_axis}: mount it with "
                f"{p.vertical_axis} vertical",
            )
        from livctl.procedures.sensorwatch import check_gravity

        scale = check_gravity(float(mean_g[axis]), sensor=f"the sensor's vertical axis ({p.vertical_axis})")
        if scale:  # the same check as every session's: a calibration with a mis-scaled sensor is no calibration
            raise CalibrationFailed("sensor", scale)

    # -- one frequency -------------------------------------------------------------------------

    def _calibrate_at(self, frequency_hz: float) -> FrequencyPoint:
        s = self.settings
        if self._drive > 0:  # from the previous frequency point: down first, then retune
            self._set_drive(0.0, s.ramp_s)
            self._read(s.ramp_s)
        self._frequency_hz = frequency_hz
        self.guard.set_frequency(frequency_hz)
        self.observer.status(f"{frequency_hz:g} Hz: probing from {100 * self.guard.first_drive:.2g} % drive")
        steps: list[Step] = []
        self._probe(frequency_hz, steps)
        top_mps2 = g_to_mps2(s.top_accel_g)
        if s.levels is not None:
            plan = sorted(s.levels)
        else:
            best = max(steps, key=lambda st: st.drive)
            gain_high = best.peak_mps2 / best.drive * (1.0 + PREDICTION_SIGMAS * best.precision)
            top = min(self.platform.max_drive, top_mps2 / gain_high)
            plan = [top * i / s.steps for i in range(1, s.steps + 1)]
        for level in plan:
            if any(abs(level - st.drive) < 0.02 * level for st in steps):
                continue
            under_cap = True
            # never more than MAX_STEP_RATIO times the largest level measured so far
            while under_cap and level > MAX_STEP_RATIO * max(st.drive for st in steps):
                under_cap = self._next_step(frequency_hz, steps, MAX_STEP_RATIO * max(st.drive for st in steps))
            if not (under_cap and self._next_step(frequency_hz, steps, level)):
                break  # the next level could pass the cap: the sweep ends here
        point = frequency_point(frequency_hz, steps, accel_cap_g=s.accel_cap_g, max_drive=self.platform.max_drive)
        self.observer.status(
            f"{frequency_hz:g} Hz: gain {point.gain.g_per_drive:.4f} +- {point.gain.u_g_per_drive:.4f} g per full drive, "
            f"non-linearity {point.nonlinearity_percent:+.2f} % at {100 * point.top_drive:.0f} % drive, "
            f"largest safe drive {100 * point.max_safe_drive:.1f} %"
        )
        return point

    def _probe(self, frequency_hz: float, steps: list[Step]) -> None:
        """From the guard's first drive: quick steps (up to 4x, as the guard allows) until the
        response shows, then measured steps doubling until it is known to PROBE_PRECISION."""
        s = self.settings
        guard = self.guard
        level = guard.first_drive
        while True:  # quick steps: one short window each, not kept
            level = self._set_drive(min(level, PROBE_MAX_DRIVE, guard.allowed_drive()), QUICK_RAMP_S)
            self._read(QUICK_RAMP_S + s.settle_s / 2)
            quick = self._measure(self._read(QUICK_WINDOW_S), frequency_hz)
            if quick is not None and quick.peak_sd_g <= QUICK_PRECISION * quick.peak_g:
                break
            higher = min(4.0 * level, PROBE_MAX_DRIVE, guard.allowed_drive())
            if guard.gain_high_mps2_per_drive:
                higher = min(higher, g_to_mps2(s.top_accel_g) / guard.gain_high_mps2_per_drive)
            if higher <= 1.05 * level:
                raise self._no_response(frequency_hz, level)
            level = higher
        while True:  # measured steps, kept in the fit
            step = self._measure_step(frequency_hz, level)
            if step is not None:
                steps.append(step)
                self._check_step(frequency_hz, step, steps)
                self.observer.step(frequency_hz, step, fit_response(frequency_hz, steps)[0] if len(steps) >= 2 else None)
                if step.precision <= PROBE_PRECISION:
                    return
            predicted = (step.peak_mps2 if step else 0.0) * MAX_STEP_RATIO
            if level * MAX_STEP_RATIO > PROBE_MAX_DRIVE or predicted > g_to_mps2(s.top_accel_g):
                raise self._no_response(frequency_hz, level)
            level *= MAX_STEP_RATIO

    @staticmethod
    def _no_response(frequency_hz: float, level: float) -> "CalibrationFailed":
        return CalibrationFailed(
            "no-response",
            f"the platform does not respond: no measurable {frequency_hz:g} Hz vibration at "
            f"{100 * level:.2g} % drive; check the amplifier, the actuator and the sensor",
        )

    def _measure(self, block: SampleBlock, frequency_hz: float) -> Measurement | None:
        try:
            return measure(block.accel_mps2, block.rate_hz, axis=self.platform.vertical_axis,
                           search_hz=(0.5 * frequency_hz, 1.5 * frequency_hz))
        except AnalysisError:
            return None

    def _next_step(self, frequency_hz: float, steps: list[Step], level: float) -> bool:
        """Measure `level` if its predicted acceleration stays under the cap; False when it would not."""
        s = self.settings
        predicted = self._predicted_high_mps2(frequency_hz, steps, level)
        if predicted > self.cap_mps2:
            if s.levels is not None:
                raise CalibrationFailed(
                    "cap",
                    f"the sweep would exceed the cap: {100 * level:.1f} % drive at {frequency_hz:g} Hz is predicted "
                    f"to give up to {mps2_to_g(predicted):.2f} g peak (cap {s.accel_cap_g:g} g); stopped before it",
                )
            self.observer.status(
                f"{frequency_hz:g} Hz: stopping before {100 * level:.1f} % drive, predicted "
                f"{mps2_to_g(predicted):.2f} g could pass the {s.accel_cap_g:g} g cap"
            )
            return False
        step = self._measure_step(frequency_hz, level)
        if step is None:
            raise CalibrationFailed(
                "no-response",
                f"the response vanished at {100 * level:.1f} % drive ({frequency_hz:g} Hz): no measurable vibration; "
                "check the sensor and the amplifier",
            )
        steps.append(step)
        self._check_step(frequency_hz, step, steps)
        self.observer.step(frequency_hz, step, fit_response(frequency_hz, steps)[0])
        return True

    def _predicted_high_mps2(self, frequency_hz: float, steps: list[Step], level: float) -> float:
        """A high estimate of the acceleration at `level` from the steps so far: the larger of the fit
        and the straight line through the highest step, plus PREDICTION_SIGMAS standard errors."""
        highest = max(steps, key=lambda st: st.drive)
        scale = level / highest.drive
        secant = highest.peak_mps2 * scale
        spread = PREDICTION_SIGMAS * highest.peak_u_mps2 * scale
        if len(steps) >= 3:
            gain, _ = fit_response(frequency_hz, steps)
            model = gain.accel_mps2(level)
            spread = max(spread, PREDICTION_SIGMAS * gain.accel_u_mps2(level))
            return max(model, secant) + spread
        return secant + spread

    def _check_step(self, frequency_hz: float, step: Step, steps: list[Step]) -> None:
        s = self.settings
        if step.peak_mps2 > self.cap_mps2:
            raise CalibrationFailed(
                "cap",
                f"measured {step.peak_g:.3f} g peak at {100 * step.drive:.1f} % drive, over the "
                f"{s.accel_cap_g:g} g cap: drive cut",
            )
        if step.precision > PROBE_PRECISION:
            return  # too noisy to judge frequency, linearity or distortion
        if abs(step.frequency_hz - frequency_hz) > FREQUENCY_TOLERANCE_HZ:
            raise CalibrationFailed(
                "frequency",
                f"the platform vibrates at {step.frequency_hz:.2f} Hz, not {frequency_hz:g} Hz "
                f"({100 * step.drive:.1f} % drive)",
            )
        below = [st for st in steps if st.drive < step.drive and st.precision <= PROBE_PRECISION]
        if below:
            lower = max(below, key=lambda st: st.drive)
            margin = PREDICTION_SIGMAS * math.hypot(step.peak_u_mps2, lower.peak_u_mps2)
            if step.peak_mps2 < lower.peak_mps2 - margin:
                raise CalibrationFailed(
                    "non-monotonic",
                    f"non-monotonic response: {100 * step.drive:.1f} % drive gave {step.peak_g:.3f} g peak, "
                    f"less than {lower.peak_g:.3f} g at {100 * lower.drive:.1f} %; check the amplifier and the mounting",
                )
        if step.thd_excess_percent > s.max_thd_percent:
            raise CalibrationFailed(
                "clipped",
                f"clipped response: THD {step.thd_excess_percent:.1f} % at {100 * step.drive:.1f} % drive "
                f"({step.peak_g:.3f} g peak) is above {s.max_thd_percent:g} %; lower the amplifier gain",
            )
        if below:
            small_signal = max(st.peak_mps2 / st.drive for st in below)
            compression = 1.0 - (step.peak_mps2 / step.drive) / small_signal
            if compression > MAX_COMPRESSION + PREDICTION_SIGMAS * step.precision:
                raise CalibrationFailed(
                    "clipped",
                    f"clipped or saturating response: at {100 * step.drive:.1f} % drive the platform gives "
                    f"{100 * compression:.0f} % less acceleration per unit drive than at low level",
                )

    def _measure_step(self, frequency_hz: float, level: float) -> Step | None:
        """Ramp to `level`, settle, measure `windows_per_step` windows; None when nothing is measurable."""
        s = self.settings
        level = self._set_drive(level, s.ramp_s)
        self._read(s.ramp_s + s.settle_s)
        measurements: list[Measurement] = []
        samples = 0
        for _ in range(s.windows_per_step):
            block = self._read(s.window_s)
            samples = block.n
            m = self._measure(block, frequency_hz)
            if m is not None:
                measurements.append(m)
        if not measurements:
            return None
        n = len(measurements)
        peaks = [g_to_mps2(m.peak_g) for m in measurements]
        errors = [g_to_mps2(m.peak_sd_g) for m in measurements]
        step = Step(
            drive=level,
            peak_mps2=sum(peaks) / n,
            peak_u_mps2=math.sqrt(sum(e * e for e in errors)) / n,
            frequency_hz=sum(m.frequency_hz for m in measurements) / n,
            thd_percent=sum(m.thd_percent for m in measurements) / n,
            snr_db=10.0 * math.log10(sum(10.0 ** (m.snr_db / 10.0) for m in measurements) / n)
            if all(math.isfinite(m.snr_db) for m in measurements) else math.inf,
            samples=samples,
        )
        self.observer.status(
            f"{frequency_hz:g} Hz, {100 * level:5.1f} % drive: {step.peak_g:.4f} g peak "
            f"+- {100 * step.precision:.2f} %, {step.frequency_hz:.2f} Hz, THD {step.thd_percent:.1f} %"
        )
        return step

    # -- the platform --------------------------------------------------------------------------

    def _set_drive(self, level: float, ramp_s: float) -> float:
        """Drive through the guard; returns the level commanded (the guard may allow less)."""
        self._drive = self.guard.drive(level, ramp_s)
        return self._drive

    def _read(self, duration_s: float) -> SampleBlock:
        return self.guard.read_span(
            duration_s, observe=lambda g: self.observer.samples(g.block, self._frequency_hz, g.drive) if g.block else None
        )
