"""A session: checks, ramp up, closed-loop delivery, ramp down, every window measured and logged.

    sensor check ──► pre-check ──► ramp up ──► deliver (closed loop) ──► ramp down ──► done
         │               │            │              │                       ▲
         └───────────────┴────────────┴──────────────┴─ abort / stop / trip ─┘

- The **sensor check** reads the platform at rest: samples must arrive, change, stay finite and
  within range, show gravity on the vertical axis (DC-coupled sensors) and a noise floor low
  enough to verify the prescription.
- The **pre-check** drives the platform gently, in steps, never past a fraction of the prescribed
  level, until its response at the prescribed frequency is measured precisely: the proof that the
  platform responds, and the drive level to start from.
- **Delivery** holds the measured level with `livctl.control.AmplitudeController`, on short
  control blocks (fast corrections of large errors) and whole windows (fine corrections), while
  `livctl.safety.Interlocks` watch every block and window.

The platform is read in control blocks (`block_s`, 0.25 s) gathered into measurement windows
(`window_s`, 1 s): every block is checked (data present and sane, level under the cap), every
window is measured by the full engine, checked against the prescription and logged.

Every way out of a session ramps the drive down (or cuts it at once when over-driving) and writes
the session's end to the dose log: status (completed, aborted, interrupted), the reason, and the
seconds actually delivered. The session never knows which backend it drives.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from livctl.analysis import AXES, AnalysisError, Measurement, amplitude_at, check_spec, measure
from livctl.backends import Platform, SampleBlock
from livctl.control import AmplitudeController, ControlSettings
from livctl.doselog import DoseLog, SessionStart
from livctl.errors import PlatformError, UsageError
from livctl.prescription import Prescription
from livctl.safety import DEFAULT_ACCEL_CAP_G, Interlocks, SafetyLimits, Trip, drive_ceiling
from livctl.units import STANDARD_GRAVITY_MPS2 as G_MPS2
from livctl.units import g_to_mps2

PRECHECK = "precheck"
RAMP_UP = "ramp_up"
DELIVER = "deliver"
RAMP_DOWN = "ramp_down"

REST_S = 0.5
"""How long the sensor check listens to the platform at rest."""
GRAVITY_RANGE_G = (0.8, 1.2)
"""A DC-coupled sensor's vertical axis must read this much at rest."""
PRECHECK_FIRST_DRIVE = 0.01
"""Drive level (fraction of full scale) of the first pre-check step."""
PRECHECK_STEP = 2.0
PRECHECK_MAX_DRIVE = 0.3
PRECHECK_MAX_SHARE = 0.6
"""The pre-check never drives past this share of the prescribed acceleration."""
PRECHECK_SETTLE_S = 0.25
PRECHECK_WINDOW_S = 1.0
PRECHECK_PRECISION = 0.004
"""Relative standard error of the measured response the pre-check aims for."""
PRECHECK_MAX_PRECISION = 0.05
"""The pre-check fails when the response cannot be measured better than this."""
NOT_MEASURED = "not measured: no accelerometer (open loop)"
DEFAULT_BLOCK_S = 0.25
"""Control block: how often the level is checked against the cap and the interlocks and, when far
off, corrected."""


class SessionAbort(Exception):
    """Stop the session: the platform cannot deliver the prescription safely."""


class _StopRequested(Exception):
    pass


@dataclass(frozen=True)
class WindowResult:
    index: int
    phase: str
    t_s: float
    duration_s: float
    drive: float
    """Commanded drive level (fraction of full scale, peak) at the end of the window."""
    measurement: Measurement | None
    in_spec: bool
    reasons: tuple[str, ...]

    def to_record(self) -> dict:
        record = {
            "idx": self.index,
            "phase": self.phase,
            "t_s": self.t_s,
            "duration_s": self.duration_s,
            "drive": self.drive,
            "in_spec": self.in_spec,
            "reasons": list(self.reasons),
        }
        if self.measurement is not None:
            record.update(self.measurement.to_dict())
            record["duration_s"] = self.duration_s
        return record


@dataclass(frozen=True)
class Progress:
    """What an observer sees after each window."""

    phase: str
    window: WindowResult
    delivered_s: float
    duration_s: float
    in_spec_fraction: float | None


@dataclass(frozen=True)
class SessionResult:
    session_id: str | None
    status: str
    reason: str | None
    delivered_s: float
    in_spec_s: float
    in_spec_fraction: float | None
    mean_frequency_hz: float | None
    mean_peak_g: float | None
    mean_thd_percent: float | None
    in_spec: bool
    window_count: int
    stream_health: dict[str, int] = field(default_factory=dict)
    """The platform's stream fault counts (audio under-runs, ...); empty when it has no stream."""

    def to_record(self) -> dict:
        return {k: v for k, v in vars(self).items() if k not in ("session_id", "stream_health")}


@dataclass
class _Tally:
    delivered_s: float = 0.0
    in_spec_s: float = 0.0
    measured_s: float = 0.0
    frequency_s: float = 0.0
    peak_g_s: float = 0.0
    thd_s: float = 0.0

    def add(self, w: WindowResult) -> None:
        self.delivered_s += w.duration_s
        if w.in_spec:
            self.in_spec_s += w.duration_s
        if w.measurement is not None:
            self.measured_s += w.duration_s
            self.frequency_s += w.measurement.frequency_hz * w.duration_s
            self.peak_g_s += w.measurement.peak_g * w.duration_s
            self.thd_s += w.measurement.thd_percent * w.duration_s

    @property
    def in_spec_fraction(self) -> float | None:
        return self.in_spec_s / self.delivered_s if self.delivered_s > 0 else None

    def mean(self, total: float) -> float | None:
        return total / self.measured_s if self.measured_s > 0 else None


@dataclass
class Session:
    """Run one prescription on one platform. `run()` returns how it went; the log holds it too."""

    prescription: Prescription
    platform: Platform
    log: DoseLog | None = None
    subject: str | None = None
    operator: str | None = None
    window_s: float = 1.0
    accel_cap_g: float = DEFAULT_ACCEL_CAP_G
    limits: SafetyLimits | None = None
    """Interlock limits; by default the defaults with `accel_cap_g` as the cap."""
    control: ControlSettings = field(default_factory=ControlSettings)
    block_s: float = DEFAULT_BLOCK_S
    stop: threading.Event = field(default_factory=threading.Event)
    observer: Callable[[Progress], None] | None = None
    calibration_id: str | None = None
    """The platform calibration in use (recorded in the dose log)."""
    sample_observer: Callable[[SampleBlock], None] | None = None
    """Sees every block of samples read (a live view); must not block."""
    reference_gain_mps2_per_drive: float | None = None
    """The calibration's response at this frequency and load (peak m/s^2 per unit drive): the
    pre-check starts from it and refuses a platform that no longer matches it."""
    admit: Callable[[DoseLog, SessionStart], SessionStart] | None = None
    """Checks the start record inside the log's write transaction (see `DoseLog.start_session`):
    may fill in the regimen fields, or raise to refuse the session before anything moves."""

    def __post_init__(self) -> None:
        if self.limits is None:
            self.limits = SafetyLimits(accel_cap_g=self.accel_cap_g)
        self.accel_cap_g = self.limits.accel_cap_g
        self.prescription.validate(self.accel_cap_g)
        self._unmeasured: str | None = None
        self.interlocks = Interlocks(self.limits, self.prescription)
        self.controller: AmplitudeController | None = None
        self._axis = AXES.index(self.platform.vertical_axis)
        self._frequency_hz = self.prescription.frequency_hz
        self._read_to_s = 0.0
        """Sample time of the end of the last block read: where a drive command takes effect."""
        self._steady_from_s = 0.0
        """Sample time after which the last drive command has finished ramping."""
        self._winding_down = False
        self._index = 0
        self._tally = _Tally()
        self._drive = 0.0
        self.session_id: str | None = None
        self.gain_mps2_per_drive: float | None = None

    # -- the whole session ----------------------------------------------------------------------

    def run(self) -> SessionResult:
        rx = self.prescription
        if not self.platform.has_sensor and not self._open_loop_gain():
            raise UsageError(
                f"{self.platform.url} has no accelerometer and no calibrated gain (g per full scale), "
                "so the drive for the prescription is unknown; connect a sensor or calibrate the platform"
            )
        if self.log is not None:
            self.session_id = self.log.start_session(self._start_record(), admit=self.admit)
        status, reason = "completed", None
        failure: BaseException | None = None
        try:
            self.platform.set_frequency(rx.frequency_hz)
            if self.platform.has_sensor:
                self._sensor_check()
                self._precheck()
            else:
                self._open_loop()
            self._ramp_up()
            self._deliver()
        except _StopRequested as exc:
            status, reason = "interrupted", str(exc)
        except KeyboardInterrupt:
            status, reason = "interrupted", "interrupted by the operator"
        except Trip as trip:
            status, reason = "aborted", f"interlock: {trip.reason}"
            if trip.cut:
                self._cut()
        except SessionAbort as exc:
            status, reason = "aborted", str(exc)
        except PlatformError as exc:
            status, reason = "aborted", f"platform failure: {exc}"
        except Exception as exc:  # a bug must still leave the platform stopped and the log true
            status, reason = "aborted", f"internal error: {type(exc).__name__}: {exc}"
            failure = exc
        reason = self._wind_down(reason)
        result = self._result(status, reason)
        if self.log is not None and self.session_id is not None:
            self.log.end_session(self.session_id, result.to_record())
        if failure is not None:
            raise failure
        return result

    def _start_record(self) -> SessionStart:
        rx = self.prescription
        tol = rx.tolerance
        return SessionStart(
            device=self.platform.url,
            platform_id=self.platform.platform_id,
            simulated=self.platform.simulated,
            time_base=self.platform.clock.description,
            subject=self.subject,
            operator=self.operator,
            preset=rx.preset,
            frequency_hz=rx.frequency_hz,
            peak_g=rx.peak_g,
            duration_s=rx.duration_s,
            ramp_s=rx.ramp_s,
            tol_frequency_hz=tol.frequency_hz,
            tol_accel_fraction=tol.accel_fraction,
            max_thd_fraction=tol.max_thd_fraction,
            min_in_spec_fraction=tol.min_in_spec_fraction,
            window_s=self.window_s,
            calibration_id=self.calibration_id,
        )

    def _result(self, status: str, reason: str | None) -> SessionResult:
        t = self._tally
        fraction = t.in_spec_fraction
        in_spec = (
            status == "completed"
            and fraction is not None
            and fraction >= self.prescription.tolerance.min_in_spec_fraction
        )
        if status == "completed" and not in_spec and reason is None:
            reason = self._unmeasured or (
                f"only {100 * (fraction or 0):.0f} % of the delivery was in spec "
                f"(at least {100 * self.prescription.tolerance.min_in_spec_fraction:.0f} % required)"
            )
        elif self._unmeasured:
            reason = f"{reason}; {self._unmeasured}" if reason else self._unmeasured
        health = self.platform.stream_health()
        faults = ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in health.items() if count)
        if faults:
            reason = f"{reason}; stream faults: {faults}" if reason else f"stream faults: {faults}"
        return SessionResult(
            session_id=self.session_id,
            status=status,
            reason=reason,
            delivered_s=t.delivered_s,
            in_spec_s=t.in_spec_s,
            in_spec_fraction=fraction,
            mean_frequency_hz=t.mean(t.frequency_s),
            mean_peak_g=t.mean(t.peak_g_s),
            mean_thd_percent=t.mean(t.thd_s),
            in_spec=in_spec,
            window_count=self._index,
            stream_health=health,
        )

    # -- phases -------------------------------------------------------------------------------

    def _sensor_check(self) -> None:
        """Listen at rest: the sensor must deliver sane data quiet enough to verify the dose."""
        window, samples, problem = self._window(PRECHECK, REST_S, measured=False)
        if problem:
            raise SessionAbort(f"sensor check: sensor data {problem}; check the sensor and its cable")
        vertical = samples[:, self._axis]
        if self.platform.gravity_on_vertical:
            gravity_g = float(vertical.mean()) / G_MPS2
            low, high = GRAVITY_RANGE_G
            if not low <= gravity_g <= high:
                raise SessionAbort(
                    f"sensor check: the vertical axis ({self.platform.vertical_axis}) reads {gravity_g:.2f} g at "
                    "rest, not 1 g; check the sensor's mounting and orientation"
                )
        # the window's 1-sigma amplitude error from this noise must stay under a tenth of the tolerance
        noise_g = float(vertical.std()) / G_MPS2
        n_window = self.window_s * self.platform.sensor_rate_hz
        error_g = noise_g * math.sqrt(2.0 / n_window)
        allowed_g = 0.1 * self.prescription.tolerance.accel_fraction * self.prescription.peak_g
        if error_g > allowed_g:
            raise SessionAbort(
                f"sensor check: noise of {1000 * noise_g:.0f} mg RMS at rest is too high to verify "
                f"{self.prescription.peak_g:g} g within {100 * self.prescription.tolerance.accel_fraction:g} %"
            )

    def _precheck(self) -> None:
        """Find the platform's response (peak m/s^2 per unit drive) at a safe, low level."""
        rx = self.prescription
        limit_mps2 = PRECHECK_MAX_SHARE * rx.peak_mps2
        top_level = min(PRECHECK_MAX_DRIVE, self.platform.max_drive)
        level = min(PRECHECK_FIRST_DRIVE, top_level)
        reference = self.reference_gain_mps2_per_drive
        if reference:
            # start where the calibration puts 45 % of the prescription: one step, and even a
            # calibration off by the 25 % it may be stays under the pre-check's 60 % share
            level = min(max(0.45 * rx.peak_mps2 / reference, PRECHECK_FIRST_DRIVE), top_level)
        while True:
            self._check_stop()  # the pre-check takes several seconds: a stop must not wait for it
            self._set_drive(level, PRECHECK_SETTLE_S)
            self._window(PRECHECK, PRECHECK_SETTLE_S, measured=False, logged=False)
            window = self._window(PRECHECK, PRECHECK_WINDOW_S)[0]
            self._notify(PRECHECK, window)
            m = window.measurement
            precision = m.peak_sd_g / m.peak_g if m and m.peak_g > 0 else math.inf
            on_frequency = m is not None and abs(m.frequency_hz - rx.frequency_hz) <= rx.tolerance.frequency_hz
            if on_frequency and precision <= PRECHECK_PRECISION:
                break
            next_level = level * PRECHECK_STEP
            predicted_mps2 = g_to_mps2(m.peak_g) * PRECHECK_STEP if m else 0.0
            if next_level <= top_level and predicted_mps2 <= limit_mps2:
                level = next_level
                continue
            if on_frequency and precision <= PRECHECK_MAX_PRECISION:
                break
            if m is not None and precision <= PRECHECK_MAX_PRECISION:
                raise SessionAbort(
                    f"pre-check: the platform vibrates at {m.frequency_hz:.2f} Hz, not {rx.frequency_hz:g} Hz"
                )
            raise SessionAbort(
                f"pre-check: no measurable {rx.frequency_hz:g} Hz response at {100 * level:.0f} % drive; "
                "check the amplifier, the actuator and the sensor"
            )
        self._frequency_hz = m.frequency_hz
        gain = g_to_mps2(m.peak_g) / level
        self.gain_mps2_per_drive = gain
        if reference and abs(gain / reference - 1.0) > self.limits.calibration_mismatch:
            raise SessionAbort(
                f"pre-check: the platform responds {gain / reference:.2f}x what its calibration says "
                f"({self.calibration_id or 'calibration'}); check the platform and its sensor, or recalibrate"
            )
        self._set_target(gain)

    def _open_loop(self) -> None:
        """No sensor: the drive comes from the calibrated gain, and the dose goes unmeasured."""
        gain = self._open_loop_gain()
        self._unmeasured = (
            f"dose not measured: no accelerometer, driven open loop from the calibrated gain "
            f"({gain / G_MPS2:.3g} g peak per full scale)"
        )
        self.gain_mps2_per_drive = gain
        self._set_target(gain)

    def _open_loop_gain(self) -> float | None:
        """Peak m/s^2 per unit drive without a sensor: the calibration's, else the platform's own."""
        gain = self.reference_gain_mps2_per_drive or self.platform.open_loop_gain_mps2_per_drive
        return gain if gain and gain > 0 and math.isfinite(gain) else None

    def _set_target(self, gain: float) -> None:
        """The drive level for the prescription from the response `gain` (peak m/s^2 per unit drive)."""
        rx = self.prescription
        needed = rx.peak_mps2 / gain
        if needed > self.platform.max_drive:
            allowed = "" if self.platform.max_drive >= 1.0 else f" (it may use {100 * self.platform.max_drive:.0f} %)"
            raise SessionAbort(
                f"the platform cannot reach {rx.peak_g:g} g peak at {rx.frequency_hz:g} Hz with this load: "
                f"it would need {100 * needed:.0f} % of full drive{allowed}"
            )
        self._target_drive = min(needed, drive_ceiling(gain, self.accel_cap_g, self.platform.max_drive))

    def _ramp_up(self) -> None:
        self._set_drive(self._target_drive, self.prescription.ramp_s)
        self._phase(RAMP_UP, self.prescription.ramp_s)

    def _deliver(self) -> None:
        if not self.platform.has_sensor:  # nothing measured: nothing to control or to watch
            self._phase(DELIVER, self.prescription.duration_s)
            return
        self.interlocks.arm(self._target_drive)
        ceiling = drive_ceiling(self.gain_mps2_per_drive, self.accel_cap_g, self.platform.max_drive)
        self.controller = AmplitudeController(
            self.prescription.peak_mps2,
            self._target_drive,
            min(ceiling, self.interlocks.rise_limit_drive),
            self.control,
        )
        self._phase(DELIVER, self.prescription.duration_s)

    def _wind_down(self, reason: str | None) -> str | None:
        """Ramp the drive to zero, measuring as it goes; cut it if the platform stops answering."""
        self._winding_down = True
        try:
            self._set_drive(0.0, self.prescription.ramp_s)
            self._phase(RAMP_DOWN, self.prescription.ramp_s, stoppable=False)
        except (PlatformError, KeyboardInterrupt) as exc:
            detail = f"ramp-down incomplete: {exc}" if isinstance(exc, PlatformError) else "ramp-down cut short"
            reason = f"{reason}; {detail}" if reason else detail
        finally:
            self._cut()
        return reason

    def _cut(self) -> None:
        self._drive = 0.0
        try:
            self.platform.cut_drive()
        except PlatformError:
            pass  # the link is gone: the board's watchdog stops the drive

    def _phase(self, phase: str, duration_s: float, *, stoppable: bool = True) -> None:
        """Run windows of `window_s` until `duration_s` is covered (a short tail joins the last).

        A stop request is honoured before each window: one that comes during the last window of a
        phase finds the phase done (a delivery that was complete is logged as completed)."""
        remaining = duration_s
        while remaining > 1e-9:
            if stoppable:
                self._check_stop()
            length = self.window_s if remaining - self.window_s > 0.5 * self.window_s else remaining
            window = self._window(phase, length)[0]
            self._notify(phase, window)
            remaining -= window.duration_s

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise _StopRequested(getattr(self.stop, "reason", None) or "stop requested")

    # -- one window of control blocks ------------------------------------------------------

    def _window(
        self, phase: str, duration_s: float, *, measured: bool = True, logged: bool = True
    ) -> tuple[WindowResult, np.ndarray, str | None]:
        """Read `duration_s` in control blocks; measure, check, log and count it as one window.

        If an interlock trips or the platform fails midway, the part read so far is still
        logged and counted before the exception goes on.
        """
        if not self.platform.has_sensor:
            t0_s = self.platform.wait(duration_s)
            window = self._close_window(phase, t0_s, duration_s, np.empty((0, 3)), None, False, react=False)
            return window, np.empty((0, 3)), None
        self.platform.prefetch(duration_s)
        parts: list[np.ndarray] = []
        problem: str | None = None
        t0_s: float | None = None
        done_s = 0.0
        failure: BaseException | None = None
        try:
            while duration_s - done_s > 1e-9:
                left = duration_s - done_s
                length = self.block_s if left - self.block_s > 0.5 * self.block_s else left
                block = self.platform.read(length)
                if self.sample_observer is not None:
                    self.sample_observer(block)
                if t0_s is None:
                    t0_s = block.t0_s
                done_s += length
                self._read_to_s = block.t0_s + length
                invalid = self._invalid(block)
                if invalid:
                    problem = problem or invalid
                else:
                    parts.append(block.accel_mps2)
                self._on_block(phase, block.t0_s + length, block, invalid)
        except BaseException as exc:
            if not logged or done_s == 0:
                raise
            failure = exc
        samples = _join(parts)
        window = None
        if logged:
            window = self._close_window(phase, t0_s, done_s, samples, problem, measured, react=failure is None)
        if failure is not None:
            raise failure
        return window, samples, problem

    def _close_window(
        self,
        phase: str,
        t0_s: float,
        duration_s: float,
        samples: np.ndarray,
        problem: str | None,
        measured: bool,
        react: bool,
    ) -> WindowResult:
        """Measure, check and log a window; when `react`, let the interlocks and controller act."""
        rx = self.prescription
        m = None
        if problem:
            reasons: tuple[str, ...] = (f"no measurement: sensor data {problem}",)
        elif not self.platform.has_sensor:
            reasons = (NOT_MEASURED,)
        elif not measured:
            reasons = ("not measured: the platform was at rest or settling",)
        else:
            try:
                m = measure(
                    samples,
                    self.platform.sensor_rate_hz,
                    axis=self._axis,
                    search_hz=(0.5 * rx.frequency_hz, 1.5 * rx.frequency_hz),
                    hint_hz=self._frequency_hz,
                )
            except AnalysisError as exc:
                reasons = (f"no measurement: {exc}",)
            else:
                reasons = tuple(check_spec(m, rx))
        window = WindowResult(
            index=self._index,
            phase=phase,
            t_s=t0_s,
            duration_s=duration_s,
            drive=self._drive,
            measurement=m,
            in_spec=m is not None and not reasons,
            reasons=reasons,
        )
        self._index += 1
        if phase == DELIVER:
            self._tally.add(window)
        if self.log is not None and self.session_id is not None:
            self.log.add_window(self.session_id, window.to_record())
        if m is not None and abs(m.frequency_hz - rx.frequency_hz) <= rx.tolerance.frequency_hz:
            self._frequency_hz = m.frequency_hz  # blocks are demodulated at the measured frequency
        if react and phase == DELIVER and not self._winding_down:
            self.interlocks.on_window(t0_s + duration_s, m, self._drive, self.controller.drive_cap)
            self._apply(self.controller.on_window(m.peak_g * G_MPS2 if m else None))
        return window

    def _invalid(self, block: SampleBlock) -> str | None:
        """Why a block's samples cannot be trusted, or None."""
        x = block.accel_mps2
        if x.shape[0] == 0:
            return "absent"
        if not math.isfinite(float(x.sum())):  # NaN and infinities propagate through the sum
            return "not finite (corrupted)"
        vertical = x[:, self._axis]
        low, high = float(vertical.min()), float(vertical.max())
        if max(-low, high) >= self.platform.sensor_range_mps2 * (1 - 1e-9):
            return "at the sensor's range limit (clipped or corrupted)"
        if vertical.shape[0] > 1 and low == high:
            return "frozen (the sensor has stalled)"
        return None

    def _on_block(self, phase: str, end_s: float, block: SampleBlock, invalid: str | None) -> None:
        peak, std_error = (None, 0.0) if invalid else self._block_peak(block)
        if self._winding_down:
            if peak is not None and peak > g_to_mps2(self.accel_cap_g):
                self._cut()
            return
        self.interlocks.on_block(end_s, peak, invalid)
        if phase == DELIVER:
            self._apply(self.controller.on_block(peak, std_error))

    def _block_peak(self, block: SampleBlock) -> tuple[float | None, float]:
        """The block's fundamental peak on the vertical axis and its standard error (m/s^2),
        judged after any ramp in progress."""
        x = block.accel_mps2[:, self._axis]
        skip = int(math.ceil((self._steady_from_s - block.t0_s) * block.rate_hz))
        if 0 < skip < x.shape[0] // 2:
            x = x[skip:]
        if x.shape[0] < 8:
            return None, 0.0
        return amplitude_at(x, block.rate_hz, self._frequency_hz)

    def _apply(self, new_drive: float | None) -> None:
        """Send the controller's new drive, past the interlocks: a lower drive (the safe way) goes
        out before they judge the request, a higher one only if they allow it."""
        if new_drive is None:
            return
        if new_drive < self._drive:
            self._set_drive(new_drive, self.control.correction_ramp_s)
            self.interlocks.on_drive_request(self.controller.wanted)
        else:
            self.interlocks.on_drive_request(self.controller.wanted)
            self._set_drive(new_drive, self.control.correction_ramp_s)

    def _set_drive(self, level: float, ramp_s: float) -> None:
        level = min(level, self.platform.max_drive)
        self._drive = level
        self.platform.set_drive(level, ramp_s)
        # in the blocks' time base, which a real platform's clock does not share (its samples
        # are counted from when its stream started)
        self._steady_from_s = self._read_to_s + ramp_s

    def _notify(self, phase: str, window: WindowResult) -> None:
        if self.observer is not None:
            t = self._tally
            self.observer(Progress(phase, window, t.delivered_s, self.prescription.duration_s, t.in_spec_fraction))


def _join(parts: list[np.ndarray]) -> np.ndarray:
    """Blocks of samples as one (n, 3) array, column-major like the blocks (the estimator reads
    each axis as a contiguous column)."""
    if len(parts) == 1:
        return parts[0]
    out = np.empty((sum(p.shape[0] for p in parts), 3), order="F")
    if parts:
        np.concatenate(parts, axis=0, out=out)
    return out

