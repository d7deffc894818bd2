"""What must be decided before a platform moves, decided once, in the core.

`prepare_session` turns what a caller asks for (a `SessionRequest`: a prescription or none, a
subject, tolerances, where calibrations are...) into a frozen `SessionPlan`, the only thing a
`livctl.procedures.session.Session` runs. On the way it:

1. checks the request (the prescription against the safety cap, the window length) and who asks:
   a named operator where the station requires one;
2. closes, as interrupted, the sessions of livctl processes that died on this host;
3. checks the subject: once the log holds subjects, only those (an unknown id is refused with the
   nearest known ones); and practice is never dose: a simulated platform for a registered subject
   runs only as practice, and practice only on a simulated platform;
4. applies the subject's regimen (not to practice): its signal when none was asked for, and the admission check
   the session's start runs inside the log's write transaction (a refused bout is an error
   before anything moves);
5. looks the platform's calibration up (`motion_calibration`): a real platform without one, or
   with one made on a simulator, is refused; from it come the response the pre-check expects and
   the drive ceiling (the calibration's largest safe drive at this frequency).

`livctl session` and a script get the same refusals because both go through here; `livctl tone`
goes through `motion_calibration`. Refusals are `UsageError`s (exit 2 on the command line):
nothing was driven and nothing logged. A refusal the caller lifts by asking otherwise (practice, an
operator) is a `SessionRefused` naming the request's field, which the command line words as its
option.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from livctl.errors import UsageError
from livctl.prescription import DEFAULT_FREQUENCY_HZ, DEFAULT_MINUTES, DEFAULT_PEAK_G, DEFAULT_RAMP_S
from livctl.prescription import Prescription, Tolerance
from livctl.procedures.safety import SafetyLimits

if TYPE_CHECKING:
    from livctl.platforms import Platform
    from livctl.records.calibration import Calibration
    from livctl.records.doselog import DoseLog
    from livctl.study.regimen import Regimen

__all__ = [
    "SessionRequest", "SessionPlan", "SessionRefused", "MotionCalibration", "prepare_session", "motion_calibration",
    "orphan_notice",
]

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
    practice: bool = False
    """A practice session (simulated platforms only): logged and marked, never counted as dose."""
    require_operator: bool = False
    """The station requires a named operator (livctl.records.config's `require_operator`)."""


class SessionRefused(UsageError):
    """A refusal the caller can lift by asking otherwise: `field` is the SessionRequest field to
    set; `worded(name)` says it with another name for it (the command line's option)."""

    def __init__(self, problem: str, remedy: str, field: str):
        self.problem, self.remedy, self.field = problem, remedy, field
        super().__init__(self.worded(f"SessionRequest.{field}"))

    def worded(self, name: str) -> str:
        return f"{self.problem}; {self.remedy.format(name)}"


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
    """A session, decided: built by `prepare_session` only, run by `livctl.procedures.session.Session`."""

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
    practice: bool = False
    """Logged as practice: never dose (simulated platforms only)."""

    @property
    def notices(self) -> tuple[str, ...]:
        """What a person should read before the platform moves (orphans closed; warnings are in
        `motion.warnings`)."""
        return tuple(orphan_notice(session_id) for session_id in self.closed_orphans)


def orphan_notice(session_id: str) -> str:
    return f"session {session_id} was left unfinished by a livctl process that died; it is now logged as interrupted"


def nearest_ids(wanted: str, known: list[str], n: int = 3) -> list[str]:
    """Up to `n` of `known` that look most like `wanted` (a mistyped id), best first."""
    def likeness(candidate: str) -> float:
        return difflib.SequenceMatcher(None, wanted.casefold(), candidate.casefold()).ratio()

    ranked = sorted(known, key=lambda k: (-likeness(k), k))[:n]
    best = likeness(ranked[0]) if ranked else 0.0
    return [k for k in ranked if likeness(k) >= max(0.4, best - 0.15)]  # only the ones about as close as the best


def check_subject(log: "DoseLog", subject: str | None) -> bool:
    """Whether `subject` is registered in the log. A log without subjects takes any name (a bench,
    a cell lab: False); once it holds subjects, an unknown one is refused with the nearest ids."""
    from livctl.records.doselog import UnknownSubject

    if subject is None or not log.has_subjects():
        return False
    known = [s["subject_id"] for s in log.subjects()]
    if subject in known:
        return True
    close = nearest_ids(subject, known)
    hint = f"did you mean {', '.join(close[:-1]) + ' or ' if len(close) > 1 else ''}{close[-1]}? " if close else ""
    raise UnknownSubject(
        f"no subject {subject!r} in {log.path}; {hint}(`livctl subject list` shows them, `livctl subject add` "
        "registers a new one)"
    )


def check_operator(request: SessionRequest) -> None:
    if request.require_operator and not (request.operator and request.operator.strip()):
        raise SessionRefused(
            "this station requires a named operator for every session (the configuration's require_operator)",
            "give {} NAME", "operator",
        )


def check_practice(platform: "Platform", request: SessionRequest, registered: bool) -> None:
    """Practice is never dose: a simulated platform for a registered subject only as practice,
    practice only on a simulated platform."""
    if request.practice and not platform.simulated:
        raise UsageError(
            f"{platform.url} is a real platform: what it delivers is dose, so it cannot be logged as practice"
        )
    if request.practice and request.override_reason:
        raise UsageError("a practice session is not a bout of the regimen: it needs no override reason")
    if registered and platform.simulated and not request.practice:
        raise SessionRefused(
            f"{request.subject} is a registered subject and {platform.url} is a simulated platform: a simulated "
            "session is never a dose",
            "give {} to log it as practice (listed apart, counted in no compliance, minutes, exposure or due)",
            "practice",
        )


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
    from livctl.records.calibration import session_calibration, session_reference

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


def _preview_admission(admit, log, platform, request, prescription, window_s) -> None:
    """The regimen's refusal, now, before anything is shown or confirmed (the start runs the same
    check again inside its write transaction, where it decides)."""
    from livctl.records.doselog import SessionStart

    tol = prescription.tolerance
    admit(log, SessionStart(
        device=platform.url, platform_id=platform.platform_id, simulated=platform.simulated, time_base="",
        subject=request.subject, operator=request.operator, preset=prescription.preset,
        frequency_hz=prescription.frequency_hz, peak_g=prescription.peak_g, duration_s=prescription.duration_s,
        ramp_s=prescription.ramp_s, tol_frequency_hz=tol.frequency_hz, tol_accel_fraction=tol.accel_fraction,
        max_thd_fraction=tol.max_thd_fraction, min_in_spec_fraction=tol.min_in_spec_fraction, window_s=window_s,
    ))


def prepare_session(platform: "Platform", log: "DoseLog | None", request: SessionRequest) -> SessionPlan:
    """Decide a session on an open `platform` (see the module's text); UsageError when it must not run."""
    from livctl.records.recovery import close_orphans
    from livctl.study.schedule import session_gate

    limits = request.limits
    check_operator(request)
    closed: list[str] = []
    admit = regimen = None
    if log is not None:
        closed = close_orphans(log)
        registered = check_subject(log, request.subject)
        check_practice(platform, request, registered)
        admit, regimen = session_gate(log, request.subject, request.override_reason)
        if request.practice:
            admit = None  # practice is no bout: the regimen's rules do not apply (its signal does)
    else:
        check_practice(platform, request, False)
    if log is None and request.override_reason:
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
    if admit is not None:
        _preview_admission(admit, log, platform, request, prescription, window_s)
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
        practice=request.practice,
    )
