"""A session: pre-check, ramp up, deliver, ramp down, with every window measured and logged.

    pre-check ──► ramp up ──► deliver (minutes, window by window) ──► ramp down ──► done
        │             │              │                                    ▲
        └─────────────┴──────────────┴── abort / stop request / fault ───┘

The pre-check drives the platform gently, in steps, never past a fraction of the prescribed level,
until the response at the prescribed frequency is measured precisely; from it comes the drive
level for the prescription and the proof that the platform and its sensor respond at all. Every
way out of a session ramps the drive down and writes the session's end to the dose log: status
(completed, aborted, interrupted), the reason, and the seconds actually delivered as measured.
The session never knows which backend it drives.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from livctl.analysis import AnalysisError, Measurement, check_spec, measure
from livctl.backends import Platform
from livctl.doselog import DoseLog, SessionStart
from livctl.errors import PlatformError, UsageError
from livctl.prescription import Prescription
from livctl.safety import DEFAULT_ACCEL_CAP_G, drive_ceiling
from livctl.units import g_to_mps2

PRECHECK = "precheck"
RAMP_UP = "ramp_up"
DELIVER = "deliver"
RAMP_DOWN = "ramp_down"

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
    stop: threading.Event = field(default_factory=threading.Event)
    observer: Callable[[Progress], None] | None = None

    def __post_init__(self) -> None:
        self.prescription.validate(self.accel_cap_g)
        gain = self.platform.open_loop_gain_mps2_per_drive
        if not self.platform.has_sensor and not (gain and gain > 0):
            raise UsageError(
                f"{self.platform.url} has no accelerometer and no calibrated gain (g per full scale), "
                "so the drive for the prescription is unknown; connect a sensor or give the gain"
            )
        self._unmeasured: str | None = None
        self._index = 0
        self._tally = _Tally()
        self._drive = 0.0
        self.session_id: str | None = None
        self.gain_mps2_per_drive: float | None = None

    # -- the whole session ----------------------------------------------------------------------

    def run(self) -> SessionResult:
        rx = self.prescription
        if self.log is not None:
            self.session_id = self.log.start_session(self._start_record())
        status, reason = "completed", None
        failure: BaseException | None = None
        try:
            self.platform.set_frequency(rx.frequency_hz)
            self._precheck()
            self._ramp_up()
            self._deliver()
        except _StopRequested as exc:
            status, reason = "interrupted", str(exc)
        except KeyboardInterrupt:
            status, reason = "interrupted", "interrupted by the operator"
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

    def _precheck(self) -> None:
        """Find the platform's response (peak m/s^2 per unit drive) at a safe, low level."""
        rx = self.prescription
        if not self.platform.has_sensor:
            gain = self.platform.open_loop_gain_mps2_per_drive
            self._unmeasured = (
                f"dose not measured: no accelerometer, driven open loop from the calibrated gain "
                f"({gain / g_to_mps2(1.0):.3g} g peak per full scale)"
            )
            self._set_target(gain)
            return
        limit_mps2 = PRECHECK_MAX_SHARE * rx.peak_mps2
        level = PRECHECK_FIRST_DRIVE
        while True:
            self._set_drive(level, PRECHECK_SETTLE_S)
            self._read(PRECHECK_SETTLE_S)
            window = self._window(PRECHECK, PRECHECK_WINDOW_S)
            self._notify(PRECHECK, window)
            m = window.measurement
            precision = _precision(m, self.platform.sensor_rate_hz) if m else math.inf
            on_frequency = m is not None and abs(m.frequency_hz - rx.frequency_hz) <= rx.tolerance.frequency_hz
            if on_frequency and precision <= PRECHECK_PRECISION:
                break
            next_level = level * PRECHECK_STEP
            predicted_mps2 = g_to_mps2(m.peak_g) * PRECHECK_STEP if m else 0.0
            if next_level <= PRECHECK_MAX_DRIVE and predicted_mps2 <= limit_mps2:
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
        self._set_target(g_to_mps2(m.peak_g) / level)

    def _set_target(self, gain: float) -> None:
        """The drive level for the prescription from the response `gain` (peak m/s^2 per unit drive)."""
        rx = self.prescription
        self.gain_mps2_per_drive = gain
        needed = rx.peak_mps2 / gain
        if needed > self.platform.max_drive:
            raise SessionAbort(
                f"the platform cannot reach {rx.peak_g:g} g peak at {rx.frequency_hz:g} Hz with this load: "
                f"it would need {100 * needed:.0f} % of full drive"
            )
        self._target_drive = min(needed, drive_ceiling(gain, self.accel_cap_g, self.platform.max_drive))

    def _ramp_up(self) -> None:
        self._set_drive(self._target_drive, self.prescription.ramp_s)
        self._phase(RAMP_UP, self.prescription.ramp_s)

    def _deliver(self) -> None:
        self._phase(DELIVER, self.prescription.duration_s)

    def _wind_down(self, reason: str | None) -> str | None:
        """Ramp the drive to zero, measuring as it goes; cut it if the platform stops answering."""
        try:
            self._set_drive(0.0, self.prescription.ramp_s)
            self._phase(RAMP_DOWN, self.prescription.ramp_s, stoppable=False)
        except (PlatformError, KeyboardInterrupt) as exc:
            detail = f"ramp-down incomplete: {exc}" if isinstance(exc, PlatformError) else "ramp-down cut short"
            reason = f"{reason}; {detail}" if reason else detail
        finally:
            try:
                self.platform.cut_drive()
            except PlatformError:
                pass
        return reason

    def _phase(self, phase: str, duration_s: float, *, stoppable: bool = True) -> None:
        """Run windows of `window_s` until `duration_s` is covered (a short tail joins the last)."""
        remaining = duration_s
        while remaining > 1e-9:
            length = self.window_s if remaining - self.window_s > 0.5 * self.window_s else remaining
            window = self._window(phase, length)
            if phase == DELIVER:
                self._tally.add(window)
            self._notify(phase, window)
            remaining -= window.duration_s
            if stoppable and self.stop.is_set():
                raise _StopRequested(getattr(self.stop, "reason", None) or "stop requested")

    # -- one window ---------------------------------------------------------------------------

    def _window(self, phase: str, duration_s: float) -> WindowResult:
        if not self.platform.has_sensor:
            t_s = self.platform.wait(duration_s)
            return self._record(phase, t_s, duration_s, None, (NOT_MEASURED,))
        block = self._read(duration_s)
        rx = self.prescription
        try:
            m = measure(
                block.accel_mps2,
                block.rate_hz,
                axis=self.platform.vertical_axis,
                search_hz=(0.5 * rx.frequency_hz, 1.5 * rx.frequency_hz),
            )
        except AnalysisError as exc:
            m, reasons = None, (f"no measurement: {exc}",)
        else:
            reasons = tuple(check_spec(m, rx))
        return self._record(phase, block.t0_s, block.duration_s, m, reasons)

    def _record(
        self, phase: str, t_s: float, duration_s: float, m: Measurement | None, reasons: tuple[str, ...]
    ) -> WindowResult:
        window = WindowResult(
            index=self._index,
            phase=phase,
            t_s=t_s,
            duration_s=duration_s,
            drive=self._drive,
            measurement=m,
            in_spec=m is not None and not reasons,
            reasons=reasons,
        )
        self._index += 1
        if self.log is not None and self.session_id is not None:
            self.log.add_window(self.session_id, window.to_record())
        return window

    def _read(self, duration_s: float):
        return self.platform.read(duration_s)

    def _set_drive(self, level: float, ramp_s: float) -> None:
        self._drive = level
        self.platform.set_drive(level, ramp_s)

    def _notify(self, phase: str, window: WindowResult) -> None:
        if self.observer is not None:
            t = self._tally
            self.observer(Progress(phase, window, t.delivered_s, self.prescription.duration_s, t.in_spec_fraction))


def _precision(m: Measurement, rate_hz: float) -> float:
    """Relative standard error of a fitted amplitude: 1 / sqrt(n * SNR) for white noise."""
    n = m.duration_s * rate_hz
    snr = 10.0 ** (m.snr_db / 10.0) if math.isfinite(m.snr_db) else math.inf
    return 1.0 / math.sqrt(n * snr) if snr > 0 else math.inf
