"""A session: checks, ramp up, closed-loop delivery, ramp down, every window measured and logged.

    sensor check ──► pre-check ──► ramp up ──► deliver (closed loop) ──► ramp down ──► done
         │               │            │              │                       ▲
         └───────────────┴────────────┴──────────────┴─ abort / stop / trip ─┘

A session runs a `SessionPlan` (livctl.procedures.prepare: the prescription, the regimen's admission,
the calibration and the drive ceiling, decided before anything moves), and every drive goes
through a `MotionGuard` (livctl.procedures.guard: the ceiling, the safe first drive, the cap on every block,
stopping within one block):

- The **sensor check** (at rest) and the **pre-check** (driven gently, from the guard's first
  drive) are a `Precheck`'s (livctl.procedures.precheck): the proof that the sensor sees this
  platform and that the platform responds, and the drive level to start from.
- **Delivery** holds the measured level with `livctl.procedures.control.AmplitudeController`, on control
  blocks of 0.1 s (fast corrections of large errors) and whole windows (fine corrections), while
  `livctl.procedures.safety.Interlocks` judge every block.

The platform is read in control blocks (`block_s`, 0.1 s) gathered into measurement windows
(`window_s`, 1 s): every block is checked (the guard's cap; data present and sane; the
interlocks; the response per unit drive, livctl.procedures.responsewatch), every window is
measured by the full engine, checked against the prescription and logged
(livctl.procedures.windows).

Every way out of a session ramps the drive down (or cuts it at once when over-driving) and writes
the session's end to the dose log: status (completed, aborted, interrupted), the reason, and the
seconds actually delivered. The session never knows which backend it drives.

A logged session keeps its raw signal (livctl.records.archive): the guard drives the platform through the
archive, which writes every block read and every command sent to `<log>.archive/<id>.h5`; each
logged window is noted there too, and the file's SHA-256 is chained with the session's end. An
archive that cannot be written stops the session safely, with the reason.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from livctl.records import archive as raw
from livctl.platforms import Platform, SampleBlock
from livctl.procedures.control import AmplitudeController, ControlSettings
from livctl.records.doselog import DoseLog, SessionStart
from livctl.errors import LogError, PlatformError, SessionNotRecorded
from livctl.events import Phase, SessionStatus
from livctl.procedures.guard import DriveCut, GuardedBlock, MotionGuard, StopRequested, StopSignal
from livctl.procedures.precheck import Precheck
from livctl.procedures.prepare import SessionPlan, SessionRequest, prepare_session
from livctl.procedures.responsewatch import ResponseWatch
from livctl.procedures.safety import BLOCK_S, Interlocks, Trip, drive_ceiling
from livctl.procedures.sensorwatch import SensorUntrusted
from livctl.procedures.windows import LogWriteFailed, SessionAbort, WindowLedger, WindowRead, WindowResult, join_blocks
from livctl.procedures.windows import NOT_MEASURED  # noqa: F401 - how a window without a sensor is logged
from livctl.units import STANDARD_GRAVITY_MPS2 as G_MPS2

_log = logging.getLogger(__name__)

PRECHECK = Phase.PRECHECK
RAMP_UP = Phase.RAMP_UP
DELIVER = Phase.DELIVER
RAMP_DOWN = Phase.RAMP_DOWN
COMPLETED, ABORTED, INTERRUPTED = SessionStatus.COMPLETED, SessionStatus.ABORTED, SessionStatus.INTERRUPTED

DEFAULT_BLOCK_S = BLOCK_S
"""Control block: how often the level is checked against the cap and the interlocks and, when far
off, corrected; how soon a stop request is honoured."""


@dataclass(frozen=True)
class Progress:
    """What an observer sees after each window."""

    phase: Phase
    window: WindowResult
    delivered_s: float
    duration_s: float
    in_spec_fraction: float | None


@dataclass(frozen=True)
class SessionResult:
    """How a session went: its end (status, reason) and what it delivered, as measured."""

    session_id: str | None
    status: SessionStatus
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
class Session:
    """Run one planned session on one platform. `run()` returns how it went; the log holds it too.

    Build the plan with `livctl.procedures.prepare.prepare_session` (or use `run_session`): the plan is
    where the refusals are, and a session runs nothing else.

    The session keeps the sequence (the phases, the drive, the closed loop, every way out) and hands
    out the rest: the checks before delivery to a `Precheck` (livctl.procedures.precheck), closing
    each window to its `WindowLedger` (livctl.procedures.windows), the response per unit drive to
    its `ResponseWatch` (livctl.procedures.responsewatch)."""

    plan: SessionPlan
    platform: Platform
    log: DoseLog | None = None
    control: ControlSettings = field(default_factory=ControlSettings)
    stop: StopSignal = field(default_factory=StopSignal)
    observer: Callable[[Progress], None] | None = None
    sample_observer: Callable[[SampleBlock], None] | None = None
    """Sees every block of samples read (a live view); must not block."""
    phase_observer: Callable[[Phase, float], None] | None = None
    """Told each phase as the session enters it (pre-check, ramp-up, delivery, ramp-down), with the
    prescribed frequency; must not block."""
    block_s: float = DEFAULT_BLOCK_S
    keep_signal: bool = True
    """Keep the raw signal beside the log (livctl.records.archive); False only to measure what that costs."""

    def __post_init__(self) -> None:
        if not isinstance(self.plan, SessionPlan):
            raise TypeError("a Session runs a SessionPlan from livctl.procedures.prepare.prepare_session")
        plan = self.plan
        self.prescription = plan.prescription
        self.limits = plan.limits
        self.accel_cap_g = plan.limits.accel_cap_g
        self.window_s = plan.window_s
        self.calibration_id = plan.motion.calibration_id
        self.reference_gain_mps2_per_drive = plan.motion.reference_gain_mps2_per_drive
        self.interlocks = Interlocks(self.limits, self.prescription, block_s=self.block_s)
        self.controller: AmplitudeController | None = None
        self.guard: MotionGuard | None = None
        self.responses = ResponseWatch(self.prescription, self.limits, sensor_count=self.platform.sensor_count,
                                       block_s=self.block_s)
        """The response per unit drive and its phase, block by block."""
        self.ledger = WindowLedger(self.prescription, self.platform, stream_per_host=self._stream_per_host,
                                   unverified=self.responses.unverified)
        """Every window closed: measured, checked, logged, counted."""
        self._drive = 0.0
        self._unmeasured: str | None = None
        self._target_drive = 0.0
        self._ceiling_drive = 0.0
        self.session_id: str | None = None
        self.archive: raw.RawArchive | None = None
        """The session's raw signal, while it is written (a logged session only)."""
        self.gain_mps2_per_drive: float | None = None
        self.stopped_at_s: float | None = None
        """Sample time of the block at which the session began to stop (a trip, a stop request)."""

    @property
    def baseline_gain(self) -> float | None:
        """One accelerometer: the delivery's first second's response per unit drive (m/s^2)."""
        return self.responses.baseline_gain

    # -- the whole session ----------------------------------------------------------------------

    def run(self) -> SessionResult:
        self._archive_problem = self._open_records()
        guard = MotionGuard(
            self.platform if self.archive is None else self.archive.watch(self.platform),
            accel_cap_g=self.accel_cap_g,
            ceiling=self.plan.motion.drive_ceiling,
            reference_gain_mps2_per_drive=self.reference_gain_mps2_per_drive,
            stop=self.stop,
            ramp_s=self.prescription.ramp_s,
            block_s=self.block_s,
        )
        self.guard = guard
        # a drift of the response's phase beyond the tolerance is the frequency interlock's to judge
        guard.watch.phase.drift_max_hz = self.interlocks.tolerance_hz
        failure: BaseException | None = None
        try:
            guard.__enter__()  # the drive ceiling and the device's trip, told to the platform
        except PlatformError as exc:  # gone before anything moved: the session still ends in the log
            guard.finish()
            status, reason = ABORTED, f"platform failure: {exc}"
        else:
            with _entered(guard):
                status, reason, failure = self._drive_through(guard)
        result = self._result(status, reason)
        _log.debug("session %s %s after %.1f s delivered%s", self.session_id, result.status, result.delivered_s,
                   f": {result.reason}" if result.reason else "")
        self._close_records(result, status, reason)
        if failure is not None:
            raise failure
        return result

    def _open_records(self) -> str | None:
        """The session's start in the log and its raw-signal archive opened (a logged session);
        why the raw signal cannot be kept, or None. An unwritable log or folder is refused here,
        before anything is logged."""
        archive_problem = None
        if self.log is not None and self.keep_signal:
            self.log.check_writable()  # a read-only log says so, before its raw-signal folder is made
            folder = raw.prepare_dir(self.log.path)  # an unwritable place is refused before anything is logged
        if self.log is not None:
            self.session_id = self.log.start_session(self._start_record(), admit=self.plan.admit)
        if self.log is not None and self.keep_signal:
            try:
                self.archive = raw.RawArchive.for_platform(
                    folder / f"{self.session_id}.h5", self.platform, kind="session", metadata=self._archive_metadata()
                )
            except raw.ArchiveError as exc:
                archive_problem = str(exc)
        self.ledger.record_to(self.log, self.session_id, self.archive)
        return archive_problem

    def _close_records(self, result: SessionResult, status: str, reason: str | None) -> None:
        """The archive sealed and the session's end in the log (a logged session); `status` and
        `reason` are how the platform was stopped, for the error when the log cannot take it."""
        if self.log is None or self.session_id is None:
            return
        seal = None
        if self.archive is not None:
            seal = self.archive.close(self.log.path.parent, status=result.status, reason=result.reason)
        try:
            self.log.end_session(self.session_id, result.to_record(), archive=seal.record() if seal else None)
        except LogError as exc:
            raise SessionNotRecorded(
                f"the platform was stopped ({status}: {reason or 'completed'}), but the dose log could not take "
                f"the session's end ({exc}); once the log can be written, the next livctl closes it as "
                "interrupted"
            ) from None

    def _drive_through(self, guard: MotionGuard) -> tuple[str, str | None, BaseException | None]:
        """Every phase, through the guard; how it ended (status, reason, a bug to re-raise)."""
        status, reason = COMPLETED, None
        failure: BaseException | None = None
        try:
            if self._archive_problem:
                raise SessionAbort(f"the raw signal cannot be kept: {self._archive_problem}")
            guard.set_frequency(self.prescription.frequency_hz)
            if self.platform.has_sensor:
                checks = Precheck(self, self.plan, self.platform, guard, self.responses, self.ledger)
                self._entering(PRECHECK)
                checks.sensor_check()
                self._precheck(checks)
            else:
                self._open_loop()
            self._ramp_up()
            self._deliver()
        except StopRequested as exc:
            status, reason = INTERRUPTED, exc.reason
        except KeyboardInterrupt:
            status, reason = INTERRUPTED, "interrupted by the operator"
        except SensorUntrusted as exc:
            status, reason = ABORTED, f"sensor check: {exc.reason}"
        except Trip as trip:
            status, reason = ABORTED, f"interlock: {trip.reason}"
            if trip.cut:
                guard.cut(trip.reason)
        except SessionAbort as exc:
            status, reason = ABORTED, str(exc)
        except LogWriteFailed as exc:
            status, reason = ABORTED, f"the dose log could not be written: {exc}"
        except PlatformError as exc:
            status, reason = ABORTED, f"platform failure: {exc}"
        except Exception as exc:  # a bug must still leave the platform stopped and the log true
            status, reason = ABORTED, f"internal error: {type(exc).__name__}: {exc}"
            failure = exc
        if status != COMPLETED and self.stopped_at_s is None:
            self.stopped_at_s = self._read_to_s
        reason = self._wind_down(reason)
        return status, reason, failure

    def _start_record(self) -> SessionStart:
        rx = self.prescription
        tol = rx.tolerance
        return SessionStart(
            device=self.platform.url,
            platform_id=self.platform.platform_id,
            simulated=self.platform.simulated,
            time_base=self.platform.clock.description,
            subject=self.plan.subject,
            operator=self.plan.operator,
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
            practice=self.plan.practice,
        )

    def _archive_metadata(self) -> dict:
        """What the raw signal needs to be analysed again: the session's start record, its id and
        log, its windows and blocks."""
        return dict(vars(self._start_record()), id=self.session_id, session_id=self.session_id,
                    log=str(self.log.path), window_s=self.window_s, block_s=self.block_s,
                    accel_cap_g=self.accel_cap_g, drive_ceiling=self.plan.motion.drive_ceiling)

    def _result(self, status: str, reason: str | None) -> SessionResult:
        t = self.ledger.tally
        fraction = t.in_spec_fraction
        in_spec = (
            status == COMPLETED
            and fraction is not None
            and fraction >= self.prescription.tolerance.min_in_spec_fraction
        )
        if status == COMPLETED and not in_spec and reason is None:
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
            status=SessionStatus(status),
            reason=reason,
            delivered_s=t.delivered_s,
            in_spec_s=t.in_spec_s,
            in_spec_fraction=fraction,
            mean_frequency_hz=t.mean(t.frequency_s),
            mean_peak_g=t.mean(t.peak_g_s),
            mean_thd_percent=t.mean(t.thd_s),
            in_spec=in_spec,
            window_count=self.ledger.count,
            stream_health=health,
        )

    # -- phases -------------------------------------------------------------------------------

    def _precheck(self, checks: Precheck) -> None:
        """The platform's response, measured at a low level and checked (livctl.procedures.precheck),
        sets the drive for the prescription."""
        gain = checks.measure_response()
        self.gain_mps2_per_drive = gain
        checks.match_calibration(gain)
        self._set_target(gain)

    def _open_loop(self) -> None:
        """No sensor: the drive comes from the calibrated gain, and the dose goes unmeasured."""
        gain = self.reference_gain_mps2_per_drive or self.platform.open_loop_gain_mps2_per_drive
        self._unmeasured = (
            f"dose not measured: no accelerometer, driven open loop from the calibrated gain "
            f"({gain / G_MPS2:.3g} g peak per full scale)"
        )
        self.gain_mps2_per_drive = gain
        self._set_target(gain)

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
        # the ceiling: where the fundamental would reach the cap, and (with a sensor) where the true
        # peak measured at the pre-check, harmonics included, would pass 95 % of it; a sensor that
        # drifts low can make the loop climb to this ceiling, never past it
        self._ceiling_drive = drive_ceiling(gain, self.accel_cap_g, self.platform.max_drive)
        if self.platform.has_sensor:
            self._ceiling_drive = min(self._ceiling_drive, self.guard.allowed_drive())
        self._target_drive = min(needed, self._ceiling_drive)

    def _ramp_up(self) -> None:
        if self._target_drive > self.guard.allowed_drive() * (1 + 1e-9):
            raise SessionAbort(
                f"pre-check: the response was proven only up to {100 * self.guard.proven_drive:.2g} % drive, too far "
                f"below the {100 * self._target_drive:.2g} % the prescription needs; check the platform"
            )
        self.set_drive(self._target_drive, self.prescription.ramp_s)
        self._phase(RAMP_UP, self.prescription.ramp_s)

    def _deliver(self) -> None:
        if not self.platform.has_sensor:  # nothing measured: nothing to control or to watch
            self._phase(DELIVER, self.prescription.duration_s)
            return
        self.interlocks.arm(self._target_drive)
        self.controller = AmplitudeController(
            self.prescription.peak_mps2,
            self._drive,
            min(self._ceiling_drive, self.interlocks.rise_limit_drive),
            self.control,
        )
        self._phase(DELIVER, self.prescription.duration_s)

    def _wind_down(self, reason: str | None) -> str | None:
        """Ramp the drive to zero, measuring as it goes (the guard still checks the cap), then cut;
        skipped when the drive was already cut at once."""
        guard = self.guard
        if guard.cut_reason is None and not guard.finished and guard.ever_driven:
            guard.begin_wind_down(self.prescription.ramp_s)
            self._drive = guard.drive_level
            try:
                self._phase(RAMP_DOWN, self.prescription.ramp_s)
            except DriveCut as exc:
                reason = _joined(reason, f"ramp-down cut short: {exc.reason}")
            except PlatformError as exc:
                reason = _joined(reason, f"ramp-down incomplete: {exc}")
            except KeyboardInterrupt:
                reason = _joined(reason, "ramp-down cut short")
        elif guard.cut_reason is not None and guard.cut_reason not in (reason or ""):
            reason = _joined(reason, guard.cut_reason)
        guard.finish()
        self._drive = guard.drive_level
        return reason

    def _entering(self, phase: Phase) -> None:
        if self.phase_observer is not None:
            self.phase_observer(phase, self.prescription.frequency_hz)

    def _phase(self, phase: str, duration_s: float) -> None:
        """Run windows of `window_s` until `duration_s` is covered (a short tail joins the last)."""
        self._entering(phase)
        remaining = duration_s  # in this computer's seconds (the windows' durations are corrected to it)
        while remaining > 0.01 * min(self.window_s, duration_s):  # less is the clock correction's rounding
            ratio = self._stream_per_host()
            length = self.window_s if remaining - self.window_s > 0.5 * self.window_s else remaining * ratio
            window = self.read_window(phase, length)[0]
            self.notify(phase, window)
            remaining -= window.duration_s

    # -- windows of control blocks (the checks before delivery read through these too) ----------

    def read_window(self, phase: str, duration_s: float, *, measured: bool = True) -> tuple[WindowResult, WindowRead]:
        """Read `duration_s` in control blocks through the guard and close it as one window
        (measured unless `measured` is False, checked, logged, counted); in delivery, the closed
        loop's fine correction follows.

        If a stop, a trip or a platform failure comes midway, the part read so far is still
        logged and counted before the exception goes on."""
        read, failure = self._read(phase, duration_s, measured=measured)
        stopping = failure is not None or self.guard.winding_down
        window = self.ledger.close(read, self._drive, failure_stops=not stopping)
        if not stopping and phase == DELIVER and self.controller is not None:
            m = window.measurement
            self._apply(self.controller.on_window(m.peak_g * G_MPS2 if m else None), read.t0_s + read.duration_s)
        if failure is not None:
            raise failure
        return window, read

    def settle(self, phase: str, duration_s: float) -> None:
        """Read `duration_s` in control blocks through the guard, every block judged, nothing
        measured or logged (a drive settling)."""
        failure = self._read(phase, duration_s, measured=False)[1]
        if failure is not None:
            raise failure

    def set_drive(self, level: float, ramp_s: float) -> float:
        """Move the drive towards `level` over `ramp_s` through the guard; the level commanded."""
        self._drive = self.guard.drive(level, ramp_s)
        if self.controller is not None and self._drive < self.controller.drive:
            self.controller.drive = self._drive  # the guard allowed less than asked
        return self._drive

    def notify(self, phase: str, window: WindowResult) -> None:
        """Tell the observer of a window closed."""
        if self.observer is not None:
            t = self.ledger.tally
            self.observer(Progress(phase, window, t.delivered_s, self.prescription.duration_s, t.in_spec_fraction))

    @property
    def _read_to_s(self) -> float | None:
        return None if self.guard is None else self.guard._read_to_s

    def _read(self, phase: str, duration_s: float, *, measured: bool) -> tuple[WindowRead, BaseException | None]:
        """Read `duration_s` in control blocks through the guard, each judged (`_on_block`). A stop,
        a trip or a failure midway ends the read: raised when nothing was read yet, else returned
        with the part read."""
        guard = self.guard
        if self.platform.has_sensor:
            guard.prefetch(duration_s)
        parts: list[np.ndarray] = []
        second_parts: list[np.ndarray] = []
        problem: str | None = None
        t0_s: float | None = None
        done_s = 0.0
        failure: BaseException | None = None
        blocks = guard.blocks(duration_s)
        self.responses.start_window()
        try:
            for k, length in enumerate(blocks, start=1):
                guarded = guard.read(length)
                block = guarded.block
                if t0_s is None:
                    t0_s = block.t0_s if block is not None else guard._read_to_s - length
                done_s = duration_s if k == len(blocks) else length * k  # no rounding creep in the tally
                if block is None:
                    continue
                if self.sample_observer is not None:
                    self.sample_observer(block)
                if guarded.problem:
                    problem = problem or guarded.problem
                else:
                    parts.append(block.accel_mps2)
                if block.second_mps2 is not None and guarded.second_problem is None:
                    second_parts.append(block.second_mps2)
                self._on_block(phase, guarded, length)
        except BaseException as exc:
            if isinstance(exc, (StopRequested, Trip, DriveCut)) and self.stopped_at_s is None:
                self.stopped_at_s = guard._read_to_s
            if done_s == 0:
                raise
            failure = exc
        return WindowRead(phase, t0_s, done_s, join_blocks(parts), problem, measured, second_parts), failure

    def _on_block(self, phase: str, guarded: GuardedBlock, length_s: float) -> None:
        """The interlocks judge every block; in delivery, the fast loop corrects large errors."""
        if self.guard.winding_down:
            return  # only the guard's cap watches a ramp-down
        end_s = guarded.block.t0_s + length_s
        controller = self.controller
        self.interlocks.on_block(
            guarded.block.t0_s, end_s, guarded.fit, guarded.problem,
            drive=self._drive,
            drive_cap=controller.drive_cap if controller else math.inf,
            saturated=controller.saturated if controller else False,
        )
        self.responses.on_block(phase, guarded, end_s)
        if phase == DELIVER and controller is not None:
            fit = guarded.settled_fit()
            new = controller.on_block(fit.fundamental_mps2, fit.fundamental_se_mps2) if fit else controller.on_block(None)
            self._apply(new, end_s)

    def _stream_per_host(self) -> float:
        return 1.0 if self.guard is None else self.guard.watch.clock.stream_per_host

    def _apply(self, new_drive: float | None, end_s: float) -> None:
        """Send the controller's new drive, past the interlocks, which judge every update (a drive
        at its ceiling included): a lower drive (the safe way) goes out before they judge the
        request, a higher one only if they allow it."""
        controller = self.controller
        if new_drive is not None and new_drive < self._drive:
            self.set_drive(new_drive, self.control.correction_ramp_s)
        if controller.updated:
            self.interlocks.on_drive_request(controller.wanted, end_s)
        if new_drive is not None and new_drive > self._drive:
            self.set_drive(new_drive, self.control.correction_ramp_s)


def run_session(platform: Platform, log: DoseLog | None, request: SessionRequest, **options) -> SessionResult:
    """Prepare (`livctl.procedures.prepare.prepare_session`: the same refusals as `livctl session`) and
    run one session on an open platform; `options` go to `Session` (control, stop, observer...)."""
    return Session(prepare_session(platform, log, request), platform, log, **options).run()


class _entered:
    """`with` for a guard already entered: its exit (the ramp-down or cut) runs however the block ends."""

    def __init__(self, guard: MotionGuard):
        self.guard = guard

    def __enter__(self) -> MotionGuard:
        return self.guard

    def __exit__(self, *exc_info) -> None:
        self.guard.__exit__(*exc_info)


def _joined(reason: str | None, more: str) -> str:
    return f"{reason}; {more}" if reason else more
