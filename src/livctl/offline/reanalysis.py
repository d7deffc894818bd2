"""A session analysed again from its raw signal: does the archive give the dose log's figures?

    dose log: the session, its windows, its archive's seal ──► the archive (SHA-256 checked first)
        ──► every logged window measured again from its samples, exactly as the session did
            (`estimator.measure`, the same window, the same starting frequency): the log's figures
            must come back (frequency, peak, RMS, THD, SNR, SINAD, DC, off-axis) with the same
            spec check
        ──► the delivery as one recording (`validation.validate`): its driven stretch, its
            figures with 95 % uncertainties, its verdict against the session's prescription

An archive that is missing, altered (its SHA-256 is not the one the log chained) or unreadable
proves nothing: ArchiveError (exit 2). A window whose figures do not come back, or a delivery that
does not validate, fails the check (exit 1), with the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from livctl.records import archive as raw
from livctl.dsp.estimator import AXES, AnalysisError, Measurement, check_spec, measure
from livctl.prescription import Prescription, Tolerance
from livctl.offline.recordings import Recording, RecordingError, recording_from_samples
from livctl.offline.validation import Validation, validate

__all__ = ["reanalyse", "sealed_archive"]

FIGURES = ("frequency_hz", "peak_g", "rms_g", "thd_percent", "snr_db", "sinad_db", "dc_g", "off_axis_percent")
"""The measured figures a dose log keeps for each window."""
UNCERTAINTY_SHARE = 0.01
"""A frequency or peak comes back when it is within this share of its own standard uncertainty of
the logged one."""
TOLERANCE = {"thd_percent": 0.01, "snr_db": 0.01, "sinad_db": 0.01, "dc_g": 1e-5, "off_axis_percent": 0.01}
"""How far the other figures may move (percentage points, dB, g). Measured again in the session's
order, the figures come back bit for bit; these margins are for another machine's arithmetic or
one window measured on its own (the fit's start then differs in the last digits), and lie far
below anything a tolerance or a verdict turns on."""


@dataclass(frozen=True)
class WindowCheck:
    """One logged window, measured again from the archive."""

    index: int
    phase: str
    t_s: float
    logged: dict
    measurement: Measurement | None
    reasons: tuple[str, ...]
    """The spec check of the new measurement."""
    worst: tuple[str, float] | None
    """The figure that moved most, and by how much (relative), when the window was measured."""
    problem: str | None
    """Why the window's figures did not come back, or None."""

    @property
    def reproduced(self) -> bool:
        return self.problem is None

    def to_dict(self) -> dict:
        m = self.measurement
        return {"index": self.index, "phase": self.phase, "t_s": self.t_s, "reproduced": self.reproduced,
                "problem": self.problem, "measured": None if m is None else m.to_dict(),
                "largest_difference": None if self.worst is None else {"figure": self.worst[0],
                                                                        "relative": self.worst[1]}}


@dataclass(frozen=True)
class Reanalysis:
    """A logged session checked against its archive: the seal, every window measured again, the delivery
    validated."""

    session: dict
    archive: dict
    """The log's seal of the archive (file, sha256, bytes, samples, complete, note)."""
    path: Path
    data: raw.ArchiveData
    prescription: Prescription
    windows: tuple[WindowCheck, ...]
    validation: Validation | None
    """The delivery validated as one recording (None when no sample of it was delivered)."""
    reasons: tuple[str, ...]

    @property
    def in_spec(self) -> bool:
        return not self.reasons

    @property
    def measured(self) -> tuple[WindowCheck, ...]:
        return tuple(w for w in self.windows if w.logged.get("frequency_hz") is not None)

    def to_dict(self) -> dict:
        measured = self.measured
        worst = max((w.worst[1] for w in measured if w.worst), default=0.0)
        return {
            "session_id": self.session["session_id"],
            "in_spec": self.in_spec,
            "reasons": list(self.reasons),
            "archive": dict(self.archive, path=str(self.path), sha256_verified=True,
                            samples_read=int(self.data.accel_mps2.shape[0]), rate_hz=self.data.rate_hz),
            "windows": {"logged": len(self.windows), "measured": len(measured),
                        "reproduced": sum(w.reproduced for w in measured), "largest_relative_difference": worst,
                        "not_reproduced": [w.to_dict() for w in measured if not w.reproduced]},
            "delivery": None if self.validation is None else self.validation.to_dict(),
        }


def reanalyse(log, session_id: str) -> Reanalysis:
    """Check a logged session against its own raw signal (see the module's description)."""
    session, record, path = sealed_archive(log, session_id)
    session_id = session["session_id"]
    data = raw.read_archive(path)
    rx = _prescription(session)
    axis = AXES.index(str(data.attrs.get("vertical_axis", "z")))
    checks = tuple(_check_window(w, data, rx, axis) for w in log.windows(session_id))
    reasons = [f"window {w.index} ({w.phase}, {w.t_s:.1f} s): {w.problem}" for w in checks if w.problem]
    if len(reasons) > 5:
        reasons = reasons[:5] + [f"and {len(reasons) - 5} more windows whose figures did not come back"]
    validation = None
    try:
        recording = delivery_recording(data, log.windows(session_id), session_id)
        if recording is not None:
            validation = validate(recording, rx, axis=AXES[axis], window_s=session["window_s"])
            reasons += [f"delivery: {r}" for r in validation.reasons]
    except RecordingError as exc:  # NaN from a corrupted sensor, no vibration at all...
        reasons.append(f"delivery: it cannot be validated as a recording: {exc}")
    if not any(w.logged.get("frequency_hz") is not None for w in checks):
        reasons.append("the session measured no window (no accelerometer, or none that delivered samples): "
                       "there is no figure to reproduce")
    if not record["complete"]:
        reasons.append(f"the archive is incomplete: {record['note']}")
    return Reanalysis(session, record, path, data, rx, checks, validation, tuple(reasons))


def sealed_archive(log, session_id: str) -> tuple[dict, dict, Path]:
    """A logged session, its archive's seal in the log and the archive's path, once the file's
    SHA-256 has been checked against the chain; ArchiveError when the session has no archive,
    LogError when the archive proves nothing (missing, altered)."""
    from livctl.errors import LogError

    session = log.find_session(session_id)
    session_id = session["session_id"]
    records = log.archives(session_id)
    if not records:
        why = ("it is still running" if session["status"] == "running"
               else "it was run by an older livctl, or no raw signal could be kept")
        raise raw.ArchiveError(f"session {session_id} has no sealed raw signal to analyse: {why}")
    record = records[0]
    problem = raw.sealed_problem(log.path.parent, record)
    if problem is not None:
        raise LogError(f"session {session_id}'s raw signal proves nothing: {problem}")
    return session, record, log.path.parent / record["file"]


def _prescription(session: dict) -> Prescription:
    rx, tol = session["prescription"], session["prescription"]["tolerance"]
    return Prescription(frequency_hz=rx["frequency_hz"], peak_g=rx["peak_g"], duration_s=rx["duration_s"],
                        ramp_s=rx["ramp_s"], preset=rx["preset"],
                        tolerance=Tolerance(frequency_hz=tol["frequency_hz"], accel_fraction=tol["accel_fraction"],
                                            max_thd_fraction=tol["max_thd_fraction"],
                                            min_in_spec_fraction=tol["min_in_spec_fraction"]))


def _check_window(logged: dict, data: raw.ArchiveData, rx: Prescription, axis: int) -> WindowCheck:
    """Measure one logged window again, from the samples the session measured it on."""
    index, phase, t_s = logged["idx"], logged["phase"], logged["t_s"]

    def result(m=None, reasons=(), worst=None, problem=None) -> WindowCheck:
        return WindowCheck(index, phase, t_s, logged, m, tuple(reasons), worst, problem)

    row = data.window(index)
    was_measured = logged.get("frequency_hz") is not None
    if row is None:
        return result(problem="the archive holds no such window" if was_measured else None)
    if not was_measured:
        return result()  # nothing was measured, nothing to reproduce (the sensor check, a gap...)
    start, stop = int(row["start"]), int(row["stop"])
    samples = data.accel_mps2[start:stop]
    if stop > data.accel_mps2.shape[0] or samples.shape[0] == 0:
        return result(problem="its samples are not in the archive")
    hint = float(row["hint_hz"])
    try:
        m = measure(samples, data.rate_hz, axis=axis, search_hz=(0.5 * rx.frequency_hz, 1.5 * rx.frequency_hz),
                    hint_hz=hint if math.isfinite(hint) else None)
    except AnalysisError as exc:
        return result(problem=f"it cannot be measured from the archive ({exc})")
    reasons = check_spec(m, rx)
    worst: tuple[str, float] | None = None
    problem = None
    margins = dict(TOLERANCE, frequency_hz=UNCERTAINTY_SHARE * m.frequency_u_hz, peak_g=UNCERTAINTY_SHARE * m.peak_u_g,
                   rms_g=UNCERTAINTY_SHARE * m.peak_u_g / math.sqrt(2.0))
    for name in FIGURES:
        before, after = logged.get(name), getattr(m, name)
        before = math.nan if before is None else float(before)
        if math.isnan(before) and math.isnan(after):
            continue
        difference = abs(after - before) / max(abs(before), 1e-300) if math.isfinite(before) else math.inf
        if worst is None or difference > worst[1]:
            worst = (name, difference)
        if not abs(after - before) <= margins[name] and problem is None:
            problem = f"{name} {after:.9g} from the archive, {before:.9g} in the log"
    if problem is None and bool(logged["in_spec"]) != (not reasons):
        problem = f"in spec {'yes' if not reasons else 'no'} from the archive, {'yes' if logged['in_spec'] else 'no'} in the log"
    return result(m, reasons, worst, problem)


def delivery_recording(data: raw.ArchiveData, windows: list[dict], name: str) -> Recording | None:
    """The delivery phase (its logged windows, first to last) as a recording; None when the session
    delivered nothing measured."""
    rows = [data.window(w["idx"]) for w in windows if w["phase"] == "deliver"]
    rows = [r for r in rows if r is not None and int(r["stop"]) > int(r["start"])]
    if not rows:
        return None
    start, stop = int(rows[0]["start"]), min(int(rows[-1]["stop"]), data.accel_mps2.shape[0])
    accel = np.asfortranarray(data.accel_mps2[start:stop])
    source = f"session {name} (raw signal, delivery)"
    times = data.times_s()[start:stop]
    steps = np.diff(times)
    if steps.size and np.allclose(steps, 1.0 / data.rate_hz, rtol=1e-6, atol=0.0):
        return Recording(accel, data.rate_hz, AXES, source, "livctl raw signal", "m/s2", t0_s=float(times[0]))
    recording = recording_from_samples(times - times[0], accel, source=source, format="livctl raw signal")
    return replace(recording, t0_s=float(times[0]))  # times on the session's clock, as in the log
