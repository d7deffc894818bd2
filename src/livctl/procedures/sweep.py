"""A calibration's sweep at one frequency point (`FrequencySweep`), how a calibration sweeps
(`SweepSettings`) and the failed check that stops it (`CalibrationFailed`).

1. **The probe**, from the motion guard's first drive (livctl.procedures.guard: safe even for a
   platform 1000 times stronger than expected): quick steps of at most 4x until the response
   shows, then measured steps doubling until it is known to 2 %.
2. **The planned steps**: drive levels evenly spaced up to the top acceleration (default 0.8 g
   peak), or the levels given. A level whose acceleration, predicted from the steps so far, could
   pass the cap is never commanded; no step more than doubles the largest level measured.
3. **The checks of each step** (`check_step`): over the cap, off frequency, non-monotonic,
   clipped (THD, or a gain compressed below the small-signal gain).

Each step ramps, settles and is measured with `livctl.dsp.estimator.measure`; every drive and
read goes through the calibration's guard. The fit of the steps is
`livctl.records.calibration.fit_response` / `frequency_point`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from livctl.dsp.estimator import AnalysisError, Measurement, measure
from livctl.errors import LivctlError
from livctl.events import CalibrationStep, Phase, Reporter
from livctl.platforms import Platform, SampleBlock
from livctl.prescription import MAX_FREQUENCY_HZ, MIN_FREQUENCY_HZ
from livctl.procedures.safety import DEFAULT_ACCEL_CAP_G
from livctl.records.calibration import (
    MIN_SAFE_DRIVE,
    CalibrationError,
    CalibrationRefused,
    FrequencyPoint,
    Step,
    fit_response,
    frequency_point,
)
from livctl.units import g_to_mps2, mps2_to_g

if TYPE_CHECKING:
    from livctl.procedures.guard import MotionGuard

__all__ = ["FrequencySweep", "SweepSettings", "CalibrationFailed", "FREQUENCY_TOLERANCE_HZ"]

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


class CalibrationFailed(LivctlError):
    """The platform or its sensor failed a check: the calibration stopped, ramped down, wrote nothing.

    `kind` names the check: sensor, no-response, frequency, non-monotonic, clipped, cap.
    """

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


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


class FrequencySweep:
    """The sweep at one frequency point: `run()` probes, steps through the planned levels and
    returns the fitted `FrequencyPoint`, or raises `CalibrationFailed`.

    It drives only through the calibration's `MotionGuard` and reads through `read` (the
    calibration's guarded read, which shows every block to its observer); it reports each status
    line, measured step and its frequency to `report`."""

    def __init__(self, frequency_hz: float, settings: SweepSettings, platform: Platform, guard: "MotionGuard",
                 report: Reporter, read: Callable[[float], SampleBlock]):
        self.frequency_hz = frequency_hz
        self.settings = settings
        self.platform = platform
        self.guard = guard
        self.steps: list[Step] = []
        """The measured steps so far, in the order measured: the fit's data."""
        self._report = report
        self._read = read

    def run(self) -> FrequencyPoint:
        s, f = self.settings, self.frequency_hz
        if self.guard.drive_level > 0:  # from the previous frequency point: down first, then retune
            self._set_drive(0.0, s.ramp_s)
            self._read(s.ramp_s)
        self.guard.set_frequency(f)
        self._report.phase(Phase.SWEEP, f)
        self._report.status(f"{f:g} Hz: probing from {100 * self.guard.first_drive:.2g} % drive")
        self._probe()
        for level in self._planned_levels():
            if any(abs(level - st.drive) < 0.02 * level for st in self.steps):
                continue
            under_cap = True
            # never more than MAX_STEP_RATIO times the largest level measured so far
            while under_cap and level > MAX_STEP_RATIO * max(st.drive for st in self.steps):
                under_cap = self._next_step(MAX_STEP_RATIO * max(st.drive for st in self.steps))
            if not (under_cap and self._next_step(level)):
                break  # the next level could pass the cap: the sweep ends here
        point = frequency_point(f, self.steps, accel_cap_g=s.accel_cap_g, max_drive=self.platform.max_drive)
        if point.max_safe_drive < MIN_SAFE_DRIVE:  # never write a calibration no session may read
            raise CalibrationFailed(
                "cap",
                f"{f:g} Hz: the platform reaches the {s.accel_cap_g:g} g cap at "
                f"{100 * point.max_safe_drive:.2g} % of full drive, below the {100 * MIN_SAFE_DRIVE:g} % a dose can be "
                "set with; lower the amplifier's gain (or the drive's full scale) and calibrate again",
            )
        self._report.status(
            f"{f:g} Hz: gain {point.gain.g_per_drive:.4f} +- {point.gain.u_g_per_drive:.4f} g per full drive, "
            f"non-linearity {point.nonlinearity_percent:+.2f} % at {100 * point.top_drive:.0f} % drive, "
            f"largest safe drive {100 * point.max_safe_drive:.1f} %"
        )
        return point

    def _planned_levels(self) -> list[float]:
        """The levels given, lowest first; else `steps` levels evenly spaced up to the drive that the
        probe's highest step, taken PREDICTION_SIGMAS standard errors strong, says gives the top."""
        s = self.settings
        if s.levels is not None:
            return sorted(s.levels)
        best = max(self.steps, key=lambda st: st.drive)
        gain_high = best.peak_mps2 / best.drive * (1.0 + PREDICTION_SIGMAS * best.precision)
        top = min(self.platform.max_drive, g_to_mps2(s.top_accel_g) / gain_high)
        return [top * i / s.steps for i in range(1, s.steps + 1)]

    def _probe(self) -> None:
        """From the guard's first drive: quick steps (up to 4x, as the guard allows) until the
        response shows, then measured steps doubling until it is known to PROBE_PRECISION."""
        s = self.settings
        guard = self.guard
        level = guard.first_drive
        while True:  # quick steps: one short window each, not kept
            level = self._set_drive(min(level, PROBE_MAX_DRIVE, guard.allowed_drive()), QUICK_RAMP_S)
            self._read(QUICK_RAMP_S + s.settle_s / 2)
            quick = self._measure(self._read(QUICK_WINDOW_S))
            if quick is not None and quick.peak_u_g <= QUICK_PRECISION * quick.peak_g:
                break
            higher = min(4.0 * level, PROBE_MAX_DRIVE, guard.allowed_drive())
            if guard.gain_high_mps2_per_drive:
                higher = min(higher, g_to_mps2(s.top_accel_g) / guard.gain_high_mps2_per_drive)
            if higher <= 1.05 * level:
                raise self._no_response(level)
            level = higher
        while True:  # measured steps, kept in the fit
            step = self._measure_step(level)
            if step is not None:
                self._keep(step)
                if step.precision <= PROBE_PRECISION:
                    return
            predicted = (step.peak_mps2 if step else 0.0) * MAX_STEP_RATIO
            if level * MAX_STEP_RATIO > PROBE_MAX_DRIVE or predicted > g_to_mps2(s.top_accel_g):
                raise self._no_response(level)
            level *= MAX_STEP_RATIO

    def _no_response(self, level: float) -> CalibrationFailed:
        return CalibrationFailed(
            "no-response",
            f"the platform does not respond: no measurable {self.frequency_hz:g} Hz vibration at "
            f"{100 * level:.2g} % drive; check the amplifier, the actuator and the sensor",
        )

    def _next_step(self, level: float) -> bool:
        """Measure `level` if its predicted acceleration stays under the cap; False when it would not."""
        s, f = self.settings, self.frequency_hz
        predicted = self._predicted_high_mps2(level)
        if predicted > g_to_mps2(s.accel_cap_g):
            if s.levels is not None:
                raise CalibrationFailed(
                    "cap",
                    f"the sweep would exceed the cap: {100 * level:.1f} % drive at {f:g} Hz is predicted "
                    f"to give up to {mps2_to_g(predicted):.2f} g peak (cap {s.accel_cap_g:g} g); stopped before it",
                )
            self._report.status(
                f"{f:g} Hz: stopping before {100 * level:.1f} % drive, predicted "
                f"{mps2_to_g(predicted):.2f} g could pass the {s.accel_cap_g:g} g cap"
            )
            return False
        step = self._measure_step(level)
        if step is None:
            raise CalibrationFailed(
                "no-response",
                f"the response vanished at {100 * level:.1f} % drive ({f:g} Hz): no measurable vibration; "
                "check the sensor and the amplifier",
            )
        self._keep(step)
        return True

    def _keep(self, step: Step) -> None:
        """A measured step into the fit's data, checked, then shown with the fit so far (from two steps)."""
        self.steps.append(step)
        check_step(self.frequency_hz, step, self.steps, self.settings)
        gain = fit_response(self.frequency_hz, self.steps)[0] if len(self.steps) >= 2 else None
        self._report.window(CalibrationStep(self.frequency_hz, step, gain))

    def _predicted_high_mps2(self, level: float) -> float:
        """A high estimate of the acceleration at `level` from the steps so far: the larger of the fit
        and the straight line through the highest step, plus PREDICTION_SIGMAS standard errors."""
        highest = max(self.steps, key=lambda st: st.drive)
        scale = level / highest.drive
        secant = highest.peak_mps2 * scale
        spread = PREDICTION_SIGMAS * highest.peak_u_mps2 * scale
        if len(self.steps) >= 3:
            gain, _ = fit_response(self.frequency_hz, self.steps)
            model = gain.accel_mps2(level)
            spread = max(spread, PREDICTION_SIGMAS * gain.accel_u_mps2(level))
            return max(model, secant) + spread
        return secant + spread

    def _measure_step(self, level: float) -> Step | None:
        """Ramp to `level`, settle, measure `windows_per_step` windows; None when nothing is measurable."""
        s = self.settings
        level = self._set_drive(level, s.ramp_s)
        self._read(s.ramp_s + s.settle_s)
        measurements: list[Measurement] = []
        samples = 0
        for _ in range(s.windows_per_step):
            block = self._read(s.window_s)
            samples = block.n
            m = self._measure(block)
            if m is not None:
                measurements.append(m)
        if not measurements:
            return None
        step = averaged_step(level, measurements, samples)
        self._report.status(
            f"{self.frequency_hz:g} Hz, {100 * level:5.1f} % drive: {step.peak_g:.4f} g peak "
            f"+- {100 * step.precision:.2f} %, {step.frequency_hz:.2f} Hz, THD {step.thd_percent:.1f} %"
        )
        return step

    def _measure(self, block: SampleBlock) -> Measurement | None:
        try:
            return measure(block.accel_mps2, block.rate_hz, axis=self.platform.vertical_axis,
                           search_hz=(0.5 * self.frequency_hz, 1.5 * self.frequency_hz))
        except AnalysisError:
            return None

    def _set_drive(self, level: float, ramp_s: float) -> float:
        """Drive through the guard; returns the level commanded (the guard may allow less)."""
        return self.guard.drive(level, ramp_s)


def averaged_step(level: float, measurements: list[Measurement], samples: int) -> Step:
    """One step from its windows' measurements: their mean peak, frequency and THD, the standard
    error of the mean peak, the SNR of their mean power ratio; `samples` of the last window."""
    n = len(measurements)
    peaks = [g_to_mps2(m.peak_g) for m in measurements]
    errors = [g_to_mps2(m.peak_u_g) for m in measurements]
    return Step(
        drive=level,
        peak_mps2=sum(peaks) / n,
        peak_u_mps2=math.sqrt(sum(e * e for e in errors)) / n,
        frequency_hz=sum(m.frequency_hz for m in measurements) / n,
        thd_percent=sum(m.thd_percent for m in measurements) / n,
        snr_db=10.0 * math.log10(sum(10.0 ** (m.snr_db / 10.0) for m in measurements) / n)
        if all(math.isfinite(m.snr_db) for m in measurements) else math.inf,
        samples=samples,
    )


def check_step(frequency_hz: float, step: Step, steps: list[Step], settings: SweepSettings) -> None:
    """Raise `CalibrationFailed` for a step over the cap, or, measured to PROBE_PRECISION, off
    frequency, lower than the step below it (non-monotonic), or clipped (THD, or its gain
    MAX_COMPRESSION below the small-signal gain of the steps below it); `steps` includes `step`."""
    s = settings
    if step.peak_mps2 > g_to_mps2(s.accel_cap_g):
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
