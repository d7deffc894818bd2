"""What must be decided before a platform moves, decided once, in the core.

`prepare_session` turns what a caller asks for (a `SessionRequest`: a prescription or none, a
subject, tolerances, where calibrations are...) into a frozen `SessionPlan`, the only thing a
`livctl.session.Session` runs. On the way it:

1. checks the request (the prescription against the safety cap, the window length);
2. closes, as interrupted, the sessions of livctl processes that died on this host;
3. applies the subject's regimen: its signal when none was asked for, and the admission check
   the session's start runs inside the log's write transaction (a refused bout is an error
   before anything moves);
4. looks the platform's calibration up (`motion_calibration`): a real platform without one, or
   with one made on a simulator, is refused; from it come the response the pre-check expects and
   the drive ceiling (the calibration's largest safe drive at this frequency).

`livctl session` and a script get the same refusals because both go through here; `livctl tone`
goes through `motion_calibration`. Refusals are `UsageError`s (exit 2 on the command line):
nothing was driven and nothing logged.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from livctl.errors import UsageError
from livctl.prescription import DEFAULT_FREQUENCY_HZ, DEFAULT_MINUTES, DEFAULT_PEAK_G, DEFAULT_RAMP_S
from livctl.prescription import Prescription, Tolerance
from livctl.safety import SafetyLimits

if TYPE_CHECKING:
    from livctl.backends import Platform
    from livctl.calibration import Calibration
    from livctl.doselog import DoseLog
    from livctl.regimen import Regimen

MIN_WINDOW_S = 0.25
MAX_WINDOW_S = 10.0
"""Measurement windows: long enough to hold a few cycles, short enough that a dose is seen as it goes."""
WINDOW_MIN_CYCLES = 4.0
"""A window holds at least this many cycles of the prescribed frequency."""


@dataclass(frozen=True)
class SessionRequest:
    """What a caller asks of a session. `prescription` None: the subject's regimen prescribes, or
    the defaults (30 Hz, 0.3 g peak, 10 minutes); `minutes`, `ramp_s` and `tolerance` then apply."""

    prescription: Prescription | None = None
    subject: str | None = None
    operator: str | None = None
    override_reason: str | None = None
    minutes: float | None = None
    ramp_s: float = DEFAULT_RAMP_S
    tolerance: Tolerance = field(default_factory=Tolerance)
    window_s: float = 1.0
    limits: SafetyLimits = field(default_factory=SafetyLimits)
    calibration_dir: str | os.PathLike[str] | None = None
    load_kg: float | None = None
    max_calibration_age_days: float = 30.0


@dataclass(frozen=True)
class MotionCalibration:
    """What a procedure that moves a platform takes from its calibration."""

    calibration: "Calibration | None"
    reference_gain_mps2_per_drive: float | None
    """The calibrated response at this frequency and load (None when it does not apply)."""
    drive_ceiling: float
    """The largest drive allowed (fraction of full scale, peak)."""
    warnings: tuple[str, ...]

    @property
    def calibration_id(self) -> str | None:
        return None if self.calibration is None else self.calibration.calibration_id


@dataclass(frozen=True)
class SessionPlan:
    """A session, decided: built by `prepare_session` only, run by `livctl.session.Session`."""

    prescription: Prescription
    subject: str | None
    operator: str | None
    window_s: float
    limits: SafetyLimits
    motion: MotionCalibration
    admit: Callable | None
    """The regimen's admission check, run inside the log's write transaction at the start."""
    regimen: "Regimen | None"
    closed_orphans: tuple[str, ...]
    """Sessions of dead livctl processes that preparing this one closed as interrupted."""

    @property
    def notices(self) -> tuple[str, ...]:
        """What a person should read before the platform moves (orphans closed; warnings are in
        `motion.warnings`)."""
        return tuple(orphan_notice(session_id) for session_id in self.closed_orphans)


def orphan_notice(session_id: str) -> str:
    return f"session {session_id} was left unfinished by a livctl process that died; it is now logged as interrupted"


def check_window(window_s: float, frequency_hz: float) -> float:
    """A measurement window every window of which can be measured, or a UsageError naming the range."""
    shortest = max(MIN_WINDOW_S, WINDOW_MIN_CYCLES / frequency_hz)
    if not (isinstance(window_s, (int, float)) and math.isfinite(window_s) and shortest <= window_s <= MAX_WINDOW_S):
        raise UsageError(
            f"a measurement window of {window_s:g} s cannot be used at {frequency_hz:g} Hz: give {shortest:.3g} to "
            f"{MAX_WINDOW_S:g} s"
        )
    return float(window_s)


def motion_calibration(
    platform: "Platform",
    calibration_dir: str | os.PathLike[str] | None,
    *,
    frequency_hz: float,
    load_kg: float | None = None,
    max_age_days: float = 30.0,
) -> MotionCalibration:
    """The calibration a procedure moving `platform` at `frequency_hz` must use; the platform must
    be open (a serial board's id is known only then). Refuses a real platform without a valid
    calibration of its own."""
    from livctl.calibration import session_calibration, session_reference

    calibration, warnings = session_calibration(
        platform, calibration_dir, frequency_hz=frequency_hz, load_kg=load_kg, max_age_days=max_age_days
    )
    if calibration is None:  # a simulator (a real platform without one was refused)
        return MotionCalibration(None, None, platform.max_drive, ())
    gain, max_safe_drive = session_reference(calibration, frequency_hz=frequency_hz, load_kg=load_kg)
    return MotionCalibration(
        calibration,
        gain.mps2_per_drive if gain is not None else None,
        min(platform.max_drive, max_safe_drive),
        tuple(warnings),
    )


def prepare_session(platform: "Platform", log: "DoseLog | None", request: SessionRequest) -> SessionPlan:
    """Decide a session on an open `platform` (see the module's text); UsageError when it must not run."""
    from livctl.recovery import close_orphans
    from livctl.schedule import session_gate

    limits = request.limits
    closed: list[str] = []
    admit = regimen = None
    if log is not None:
        closed = close_orphans(log)
        admit, regimen = session_gate(log, request.subject, request.override_reason)
    elif request.override_reason:
        raise UsageError("an override reason applies to a session logged for a subject with a regimen")
    prescription = request.prescription
    if prescription is None:
        if regimen is not None:
            minutes = request.minutes if request.minutes is not None else regimen.minutes_per_bout
            prescription = regimen.prescription(duration_s=minutes * 60.0, ramp_s=request.ramp_s,
                                                tolerance=request.tolerance)
        else:
            minutes = request.minutes if request.minutes is not None else DEFAULT_MINUTES
            prescription = Prescription(DEFAULT_FREQUENCY_HZ, DEFAULT_PEAK_G, minutes * 60.0, ramp_s=request.ramp_s,
                                        tolerance=request.tolerance)
    prescription.validate(limits.accel_cap_g)
    window_s = check_window(request.window_s, prescription.frequency_hz)
    motion = motion_calibration(
        platform, request.calibration_dir, frequency_hz=prescription.frequency_hz, load_kg=request.load_kg,
        max_age_days=request.max_calibration_age_days,
    )
    if not platform.has_sensor and not (motion.reference_gain_mps2_per_drive or platform.open_loop_gain_mps2_per_drive):
        raise UsageError(
            f"{platform.url} has no accelerometer and no calibrated gain (g per full scale), so the drive for "
            "the prescription is unknown; connect a sensor or calibrate the platform"
        )
    return SessionPlan(
        prescription=prescription,
        subject=request.subject,
        operator=request.operator,
        window_s=window_s,
        limits=limits,
        motion=motion,
        admit=admit,
        regimen=regimen,
        closed_orphans=tuple(closed),
    )
