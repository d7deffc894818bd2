"""Running a calibration: the sweep that measures a platform's response (`Calibrator`), and its raw
signal kept beside the calibration file as `livctl calibrate` and `livctl.calibrate` keep it.

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
3. **The fit** of each frequency's steps (`livctl.records.calibration.fit_response`, with what a
   calibration holds and its file).

The raw signal: `sweep_archive` before the sweep, then `keep_sweep` (sealed and named after the
calibration) or `discard_sweep` (a calibration that wrote nothing keeps nothing).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from livctl import __version__
from livctl.clock import utc_now
from livctl.dsp.estimator import AnalysisError, Measurement, measure
from livctl.errors import LivctlError
from livctl.events import CalibrationStep, Phase, Reporter
from livctl.platforms import Platform, SampleBlock
from livctl.prescription import MAX_FREQUENCY_HZ, MIN_FREQUENCY_HZ
from livctl.procedures.safety import DEFAULT_ACCEL_CAP_G
from livctl.procedures.stopping import StopSignal
from livctl.records.calibration import (
    MIN_SAFE_DRIVE,
    Calibration,
    CalibrationError,
    CalibrationRefused,
    FrequencyPoint,
    Gain,
    SensorCheck,
    Step,
    fit_response,
    frequency_point,
)
from livctl.units import g_to_mps2, mps2_to_g

if TYPE_CHECKING:
    from livctl.records.archive import RawArchive

__all__ = [
    "Calibrator", "SweepSettings", "CalibrationFailed", "CalibrationInterrupted", "FREQUENCY_TOLERANCE_HZ",
    "sweep_archive", "keep_sweep", "discard_sweep",
]

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
    observer: Any = None
    """A `livctl.events.Observer` (any of its methods): status lines, every block read, each measured
    step (`CalibrationStep`), the sweep's frequency as it changes (`Phase.SWEEP`)."""
    raw_signal: Any = None
    """A `livctl.records.archive.RawArchive` that keeps the sweep's raw signal (every block and command),
    or None."""

    def __post_init__(self) -> None:
        self.settings.validate(self.platform.max_drive)
        if self.load_kg is not None and not (math.isfinite(self.load_kg) and self.load_kg >= 0):
            raise CalibrationError(f"the load must be a number of kg >= 0, not {self.load_kg}")
        self._drive = 0.0
        self._report = Reporter(self.observer)

    @property
    def cap_mps2(self) -> float:
        return g_to_mps2(self.settings.accel_cap_g)

    def run(self) -> Calibration:
        from livctl.procedures.guard import MotionGuard, StopRequested
        from livctl.procedures.safety import Trip
        from livctl.procedures.sensorwatch import SensorUntrusted

        self._report = Reporter(self.observer)  # the observer given now (it may have been set after construction)
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
            self._check_gravity(mean_g)
        self._report.status(
            f"sensor at rest: gravity {mean_g[axis]:+.3f} g on {p.vertical_axis}, noise "
            f"{1000 * noise_g[axis]:.1f} mg RMS ({1e6 * check.noise_density_g_per_rthz:.0f} ug/sqrt(Hz))"
        )
        return check

    def _check_gravity(self, mean_g: np.ndarray) -> None:
        """The sensor at rest, as every procedure checks it (livctl.procedures.sensorwatch.check_at_rest):
        a calibration with a mis-scaled or mis-mounted sensor is no calibration."""
        from livctl.procedures.sensorwatch import check_at_rest

        problem = check_at_rest(mean_g, self.platform.vertical_axis)
        if problem:
            raise CalibrationFailed("sensor", problem)

    # -- one frequency -------------------------------------------------------------------------

    def _calibrate_at(self, frequency_hz: float) -> FrequencyPoint:
        s = self.settings
        if self._drive > 0:  # from the previous frequency point: down first, then retune
            self._set_drive(0.0, s.ramp_s)
            self._read(s.ramp_s)
        self.guard.set_frequency(frequency_hz)
        self._report.phase(Phase.SWEEP, frequency_hz)
        self._report.status(f"{frequency_hz:g} Hz: probing from {100 * self.guard.first_drive:.2g} % drive")
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
        if point.max_safe_drive < MIN_SAFE_DRIVE:  # never write a calibration no session may read
            raise CalibrationFailed(
                "cap",
                f"{frequency_hz:g} Hz: the platform reaches the {s.accel_cap_g:g} g cap at "
                f"{100 * point.max_safe_drive:.2g} % of full drive, below the {100 * MIN_SAFE_DRIVE:g} % a dose can be "
                "set with; lower the amplifier's gain (or the drive's full scale) and calibrate again",
            )
        self._report.status(
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
            if quick is not None and quick.peak_u_g <= QUICK_PRECISION * quick.peak_g:
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
                self._step(frequency_hz, step, fit_response(frequency_hz, steps)[0] if len(steps) >= 2 else None)
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
            self._report.status(
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
        self._step(frequency_hz, step, fit_response(frequency_hz, steps)[0])
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
        errors = [g_to_mps2(m.peak_u_g) for m in measurements]
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
        self._report.status(
            f"{frequency_hz:g} Hz, {100 * level:5.1f} % drive: {step.peak_g:.4f} g peak "
            f"+- {100 * step.precision:.2f} %, {step.frequency_hz:.2f} Hz, THD {step.thd_percent:.1f} %"
        )
        return step

    # -- the platform --------------------------------------------------------------------------

    def _step(self, frequency_hz: float, step: Step, gain: Gain | None) -> None:
        self._report.window(CalibrationStep(frequency_hz, step, gain))

    def _set_drive(self, level: float, ramp_s: float) -> float:
        """Drive through the guard; returns the level commanded (the guard may allow less)."""
        self._drive = self.guard.drive(level, ramp_s)
        return self._drive

    def _read(self, duration_s: float) -> SampleBlock:
        return self.guard.read_span(
            duration_s, observe=lambda g: self._report.block(g.block) if g.block else None
        )


# -- the sweep's raw signal -------------------------------------------------------------------


def sweep_archive(platform: "Platform", target: Path, settings: "SweepSettings", *, operator: str | None,
                  load_kg: float | None, sensor: str | None) -> "RawArchive":
    """The sweep's raw signal, beside the calibration file `target` (<platform-id>.toml.archive/),
    under a name of its own until the calibration has its id."""
    from livctl.clock import utc_now
    from livctl.records.archive import RawArchive, prepare_dir

    folder = prepare_dir(target)
    metadata: dict[str, Any] = {f"sweep_{k}": v for k, v in dataclasses.asdict(settings).items()
                                if isinstance(v, (int, float, str))}
    metadata.update(operator=operator, load_kg=load_kg, sensor=sensor)
    return RawArchive.for_platform(folder / f"{platform.platform_id}-sweep-{utc_now():%Y%m%dT%H%M%S%fZ}.h5", platform,
                                   kind="calibration", metadata=metadata)


def discard_sweep(archive: "RawArchive") -> None:
    """A calibration that wrote nothing keeps no raw signal either (nor an empty folder for it)."""
    archive.discard()
    try:
        archive.path.parent.rmdir()
    except OSError:
        pass  # other calibrations' signals are there


def keep_sweep(cal: "Calibration", archive: "RawArchive", target: Path) -> tuple["Calibration", tuple[str, ...]]:
    """The calibration with its sweep's raw signal sealed and named after it, and the warnings a
    person should read (a signal that could not be kept, or only in part)."""
    seal = archive.close(target.parent, status="completed", rename_to=f"{cal.calibration_id}.h5",
                         calibration_id=cal.calibration_id, id=cal.calibration_id)
    if seal is None:
        return cal, (f"the sweep's raw signal could not be kept: {archive.failure}",)
    warnings = () if seal.complete else (f"the sweep's raw signal is incomplete: {seal.note}",)
    return dataclasses.replace(cal, raw_signal={"file": seal.file, "sha256": seal.sha256, "samples": seal.samples,
                                                "complete": seal.complete}), warnings
