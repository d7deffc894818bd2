"""A session's checks before delivery, on a platform with a sensor.

- The **sensor check** reads the platform at rest: samples must arrive, change, stay finite and
  within range, show gravity on the vertical axis (DC-coupled sensors) and a noise floor low
  enough to verify the prescription; then it listens until the platform's clock is known.
- The **pre-check** drives the platform gently, from the guard's first drive (safe even for a
  platform 1000 times stronger than expected) up by at most 4x a step, never past a share of the
  prescribed level, until its response at the prescribed frequency is measured precisely: the
  proof that the platform responds, and the drive level to start from. The response must follow
  the drive (the same response per unit drive, at the same phase, at a second drive) and match
  the platform's calibration.

The checks drive and read through the session that runs them (`SessionWindows`), so every block
they read is judged like any other and every window they measure is logged.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from livctl.dsp.blockfit import fit_block
from livctl.dsp.estimator import AXES, Measurement
from livctl.events import Phase
from livctl.platforms import Platform
from livctl.procedures.guard import MotionGuard
from livctl.procedures.prepare import SessionPlan
from livctl.procedures.responsewatch import ResponseWatch
from livctl.procedures.sensorwatch import CLOCK_WAIT_S, SensorUntrusted, check_at_rest
from livctl.procedures.windows import SessionAbort, WindowLedger, WindowRead, WindowResult
from livctl.units import STANDARD_GRAVITY_MPS2 as G_MPS2

PRECHECK = Phase.PRECHECK

REST_S = 0.5
"""How long the sensor check listens to the platform at rest."""
PRECHECK_MAX_DRIVE = 0.3
"""The pre-check never drives past this fraction of full scale."""
PRECHECK_MAX_SHARE = 0.6
"""The pre-check never drives past this share of the prescribed acceleration."""
PRECHECK_AIM_SHARE = 0.45
"""Once the response is known roughly, the pre-check's precise step aims at this share."""
PRECHECK_MIN_SHARE = 0.3
"""The pre-check ends at this share of the prescription at least, so the ramp up from there is a
step the guard allows (at most 4x a level measured steady)."""
PRECHECK_SETTLE_S = 0.2
PROBE_WINDOW_S = 0.3
"""While the response is still unknown, each pre-check step is measured this long."""
PRECHECK_WINDOW_S = 1.0
PROBE_PRECISION = 0.05
"""A response known to this relative standard error is known roughly: aim the precise step."""
PRECHECK_PRECISION = 0.004
"""Relative standard error of the measured response the pre-check aims for."""
PRECHECK_MAX_PRECISION = 0.05
"""The pre-check fails when the response cannot be measured better than this."""
PROPORTION_STEP = 1.6
"""The pre-check confirms the response at two drives at least this far apart..."""
PROPORTION_PRECISION = 0.1
"""...each measured to this relative standard error..."""
PROPORTION_TOLERANCE = 0.15
"""...giving the same response per unit drive within this (and three standard errors)..."""
PROPORTION_PHASE_RAD = 0.5
"""...at the same phase against the drive within this: a real plant's response follows its drive."""

Step = tuple[float, Measurement, float | None]
"""A pre-check step measured on frequency: its drive, its measurement, its phase against the drive."""


class SessionWindows(Protocol):
    """What the checks use of the session that runs them: its drive and its windows."""

    def set_drive(self, level: float, ramp_s: float) -> float: ...

    def settle(self, phase: str, duration_s: float) -> None: ...

    def read_window(self, phase: str, duration_s: float, *, measured: bool = True) -> tuple[WindowResult, WindowRead]: ...

    def notify(self, phase: str, window: WindowResult) -> None: ...


class Precheck:
    """The sensor check at rest, then the pre-check: the platform's response (peak m/s^2 per unit
    drive) found at a safe, low level, proven to follow the drive and to match the calibration."""

    def __init__(self, session: SessionWindows, plan: SessionPlan, platform: Platform, guard: MotionGuard,
                 responses: ResponseWatch, ledger: WindowLedger):
        self.session = session
        self.plan = plan
        self.prescription = plan.prescription
        self.platform = platform
        self.guard = guard
        self.responses = responses
        self.ledger = ledger
        self.axis = AXES.index(platform.vertical_axis)

    # -- the sensor check, at rest ------------------------------------------------------------

    def sensor_check(self) -> None:
        """Listen at rest: the sensor must deliver sane data quiet enough to verify the dose."""
        read = self.session.read_window(PRECHECK, REST_S, measured=False)[1]
        if read.problem:
            raise SessionAbort(f"sensor check: sensor data {read.problem}; check the sensor and its cable")
        vertical = read.samples[:, self.axis]
        self._check_still(vertical)
        if self.platform.gravity_on_vertical:  # the sensor's scale against gravity (AC inputs: the pre-check)
            self._check_at_rest(read.samples, read.second_samples)
        self._check_noise(vertical)
        self._await_clock()

    def _check_still(self, vertical: np.ndarray) -> None:
        """At rest, the sensor must not see the prescribed frequency: it would see another platform."""
        rx = self.prescription
        rest = fit_block(vertical, self.platform.sensor_rate_hz, rx.frequency_hz, 0.0)
        allowed_g = 0.5 * rx.tolerance.accel_fraction * rx.peak_g
        if rest is not None and rest.fundamental_mps2 > max(10.0 * rest.fundamental_se_mps2, allowed_g * G_MPS2):
            raise SensorUntrusted(
                f"the sensor reads {rest.fundamental_mps2 / G_MPS2:.3f} g at {rx.frequency_hz:g} Hz while this platform "
                f"is at rest (at most {allowed_g:.3g} g): it does not see this platform (is it another platform's?), or "
                "something else shakes it; check where it is mounted"
            )

    def _check_at_rest(self, samples: np.ndarray, second: np.ndarray | None) -> None:
        """Each accelerometer at rest, as every procedure checks it (livctl.procedures.sensorwatch.check_at_rest)."""
        calibration = self.plan.motion.calibration
        at_calibration = calibration.sensor.vertical_gravity_g if calibration is not None else None
        vertical = self.platform.vertical_axis
        problem = check_at_rest(samples.mean(axis=0) / G_MPS2, vertical, at_calibration)
        if problem is None and self.platform.sensor_count > 1:
            if second is None:
                problem = "the second accelerometer gives no usable samples at rest; check it and its cable"
            else:
                problem = check_at_rest(second.mean(axis=0) / G_MPS2, vertical, sensor="the second accelerometer")
        if problem:
            raise SensorUntrusted(problem)

    def _check_noise(self, vertical: np.ndarray) -> None:
        """The window's 1-sigma amplitude error from the noise at rest must stay under a tenth of the tolerance."""
        rx = self.prescription
        noise_g = float(vertical.std()) / G_MPS2
        n_window = self.plan.window_s * self.platform.sensor_rate_hz
        error_g = noise_g * math.sqrt(2.0 / n_window)
        allowed_g = 0.1 * rx.tolerance.accel_fraction * rx.peak_g
        if error_g > allowed_g:
            raise SessionAbort(
                f"sensor check: noise of {1000 * noise_g:.0f} mg RMS at rest is too high to verify "
                f"{rx.peak_g:g} g within {100 * rx.tolerance.accel_fraction:g} %"
            )

    def _await_clock(self) -> None:
        """Listen at rest until the platform's clock is known (livctl.procedures.sensorwatch: CLOCK_KNOWN_SE),
        so every window of the dose is logged in this computer's time; at most CLOCK_WAIT_S (a
        simulator's clock is known after 2 s of samples, a serial board's in a few more)."""
        clock = self.guard.watch.clock
        waited_s = 0.0
        while not clock.known and waited_s < CLOCK_WAIT_S:
            window = self.session.read_window(PRECHECK, PRECHECK_WINDOW_S, measured=False)[0]
            self.session.notify(PRECHECK, window)
            waited_s += window.duration_s

    # -- the pre-check, driven -----------------------------------------------------------------

    def measure_response(self) -> float:
        """The platform's response (peak m/s^2 per unit drive), found at a safe, low level.

        From the guard's first drive, each step is measured briefly until the response is known
        roughly, then one step aimed at PRECHECK_AIM_SHARE of the prescription is measured for a
        whole window; a step rises at most 4x (the guard) and never to a level predicted (3
        standard errors high) past PRECHECK_MAX_SHARE of the prescription. The response is then
        confirmed at a second drive (`_confirm_proportional`)."""
        rx = self.prescription
        guard = self.guard
        limit_mps2 = PRECHECK_MAX_SHARE * rx.peak_mps2
        top_level = min(PRECHECK_MAX_DRIVE, self.platform.max_drive)
        level = min(guard.first_drive, top_level)
        precise = False  # a whole window for the next step, or a short probe
        steps: list[Step] = []
        while True:
            window, level = self._step(min(level, top_level, guard.allowed_drive()),
                                       PRECHECK_WINDOW_S if precise else PROBE_WINDOW_S)
            m = window.measurement
            precision = m.peak_u_g / m.peak_g if m and m.peak_g > 0 else math.inf
            on_frequency = self._on_frequency(m)
            share = m.peak_g / rx.peak_g if m else 0.0
            if on_frequency:
                steps.append((level, m, self.responses.window_phase()))
            if on_frequency and precision <= PRECHECK_PRECISION and share >= PRECHECK_MIN_SHARE:
                break
            highest = min(level * 4.0, top_level, guard.allowed_drive())
            if guard.gain_high_mps2_per_drive:
                highest = min(highest, limit_mps2 / guard.gain_high_mps2_per_drive)
            if on_frequency and precision <= PROBE_PRECISION:
                aim = PRECHECK_AIM_SHARE / share * level  # known roughly: where the precise window goes
                if aim > highest and highest > level * 1.05:  # not yet within reach: on, with short probes
                    level, precise = highest, False
                    continue
                if aim <= highest and (not precise or aim > level * 1.05):
                    level, precise = max(level, aim), True
                    continue
            if highest > level * 1.05:  # not measurable yet, or not precise enough: higher, if safe
                level = highest
                continue
            if on_frequency and precision <= PRECHECK_MAX_PRECISION:
                break
            if m is not None and precision <= PRECHECK_MAX_PRECISION:
                raise SessionAbort(
                    f"pre-check: the platform vibrates at {m.frequency_hz:.2f} Hz, not {rx.frequency_hz:g} Hz"
                )
            raise SessionAbort(
                f"pre-check: no measurable {rx.frequency_hz:g} Hz response at {100 * level:.2g} % drive; "
                "check the amplifier, the actuator and the sensor"
            )
        self._confirm_proportional(steps, level, m)
        self.ledger.frequency_hz = m.frequency_hz
        return m.peak_g * G_MPS2 / level

    def match_calibration(self, gain: float) -> None:
        """The response `gain` must be the one the platform's calibration gives, within
        `SafetyLimits.calibration_mismatch_fraction`."""
        reference = self.plan.motion.reference_gain_mps2_per_drive
        if reference and abs(gain / reference - 1.0) > self.plan.limits.calibration_mismatch_fraction:
            raise SessionAbort(
                f"pre-check: the platform responds {gain / reference:.2f}x what its calibration says "
                f"({self.plan.motion.calibration_id or 'calibration'}); check the platform and its sensor, or recalibrate"
            )

    def _step(self, level: float, window_s: float) -> tuple[WindowResult, float]:
        """Drive at `level`, let it settle, measure one window of `window_s`; the window and the
        level the guard let through."""
        level = self.session.set_drive(level, PRECHECK_SETTLE_S)
        self.session.settle(PRECHECK, PRECHECK_SETTLE_S)
        window = self.session.read_window(PRECHECK, window_s)[0]
        self.session.notify(PRECHECK, window)
        return window, level

    def _on_frequency(self, m: Measurement | None) -> bool:
        rx = self.prescription
        return m is not None and abs(m.frequency_hz - rx.frequency_hz) <= rx.tolerance.frequency_hz

    def _confirm_proportional(self, steps: list[Step], level: float, m: Measurement) -> None:
        """The response must follow the drive: at a lower drive (PROPORTION_STEP apart) the same
        response per unit drive, at the same phase. A sensor that reads another platform, or
        anything but this plate, reads the same whatever this platform's drive."""
        lower = [s for s in steps[:-1] if _precise_below(s, level)]
        if not lower:  # one more step, down (always safe): a whole window, for precision
            window, low_level = self._step(level / PROPORTION_STEP, PRECHECK_WINDOW_S)
            low_m = window.measurement
            step = (low_level, low_m, self.responses.window_phase())
            if not (self._on_frequency(low_m) and _precise_below(step, level)):
                raise SensorUntrusted(
                    f"the pre-check could not confirm the response at a second drive ({100 * low_level:.2g} % of "
                    "full scale): the sensor may not see this platform; check the sensor, the amplifier and the actuator"
                )
            lower = [step]
        _, final_m, final_phase = steps[-1]
        final_gain = final_m.peak_g / level
        for s_level, s_m, s_phase in lower[-1:]:
            gain = s_m.peak_g / s_level
            se = math.hypot(s_m.peak_u_g / s_m.peak_g, final_m.peak_u_g / final_m.peak_g)
            moved = gain / final_gain - 1.0
            turned = None if s_phase is None or final_phase is None else math.remainder(s_phase - final_phase,
                                                                                         2 * math.pi)
            if abs(moved) > PROPORTION_TOLERANCE + 3.0 * se or (turned is not None and abs(turned) > PROPORTION_PHASE_RAD):
                what = (f"{s_m.peak_g:.3f} g at {100 * s_level:.2g} % drive and {final_m.peak_g:.3f} g at "
                        f"{100 * level:.2g} %")
                if turned is not None:
                    what += f", phases {abs(turned):.2f} rad apart"
                raise SensorUntrusted(
                    f"the response does not follow the drive ({what}): the sensor does not see this platform (is it "
                    "another platform's?); check where it is mounted"
                )


def _precise_below(step: Step, level: float) -> bool:
    """A step that can confirm the response at `level`: PROPORTION_STEP below it at least, and
    measured to PROPORTION_PRECISION."""
    s_level, s_m, _ = step
    return (s_level <= level / PROPORTION_STEP * (1 + 1e-9) and s_m.peak_g > 0
            and s_m.peak_u_g / s_m.peak_g <= PROPORTION_PRECISION)
