"""The public API's functions: a facade over the core for scripts and notebooks (see docs/api.md).

Every function here goes through the same core as the `livctl` command: a session is prepared by
`livctl.procedures.prepare.prepare_session` (the same refusals, in the same words, with the request's
field named where the command line names its option) and driven through the `MotionGuard`; a
calibration runs the same `Calibrator` and keeps its raw signal as the command does. Nothing here
can replace a step of a procedure's safety sequence: observers only watch, a stop only asks.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from livctl.errors import UsageError
from livctl.events import Reporter, method_of

if TYPE_CHECKING:
    import datetime as dt

    from livctl.offline.validation import Validation
    from livctl.platforms import Platform
    from livctl.prescription import Prescription
    from livctl.procedures.prepare import SessionPlan, SessionRequest
    from livctl.procedures.session import SessionResult
    from livctl.procedures.stopping import StopSignal
    from livctl.records.archive import ArchiveData
    from livctl.procedures.calibrate import SweepSettings
    from livctl.records.calibration import Calibration
    from livctl.records.doselog import DoseLog
    from livctl.study.report import StudyReport

FASTEST = math.inf
"""The simulator's speed as fast as it computes (`open_platform("sim://", speed=FASTEST)`)."""


def open_platform(url: str | None = None, *, speed: float | None = None) -> "Platform":
    """The platform a device URL names (sim://, serial:///dev/ttyUSB0, audio://NAME), not yet
    opened: use it in a `with` block. Without a URL: $LIVCTL_DEVICE, else the configuration's
    `device`. `speed` (simulator only): times faster than real time, or `FASTEST`."""
    from livctl.platforms import open_platform as build

    if url is None:
        from livctl.records.config import load_settings

        url = load_settings()["device"]
        if not url:
            raise UsageError("no device named: give a device URL (sim:// for the simulated platform), set "
                             "LIVCTL_DEVICE, or set device in the configuration (`livctl config show`)")
    return build(url, speed=speed)


def open_log(path: str | os.PathLike[str] | None = None, *, create: bool = True) -> "DoseLog":
    """The dose log at `path` (default: $LIVCTL_LOG, else the configuration's `log`, else the
    user's data directory); with `create`, made when missing. Use it in a `with` block, on the
    thread that opened it (an SQLite connection belongs to its thread)."""
    from livctl.records.doselog import DoseLog, default_log_path

    return DoseLog(Path(path).expanduser() if path is not None else default_log_path(), create=create)


def preset(name: str, **overrides: Any) -> "Prescription":
    """The prescription of a shipped protocol (`PRESETS`), with fields replaced by `overrides`
    (duration_s, ramp_s, tolerance)."""
    from livctl.prescription import get_preset

    return get_preset(name).prescription(**overrides)


def run_session(
    platform: "Platform",
    log: "DoseLog | None" = None,
    request: "SessionRequest | SessionPlan | None" = None,
    *,
    observer: Any = None,
    stop: "StopSignal | None" = None,
    loop_gain: float | None = None,
) -> "SessionResult":
    """Prepare (unless `request` is already a `SessionPlan` from `prepare_session`) and run one
    session on an open platform, logged to `log` when given. `observer` (any of `on_status`,
    `on_block`, `on_window`, `on_phase`) watches; `stop.request(reason)` from another thread starts the
    ramp-down within one control block. Returns the `SessionResult`; the log holds it too.

    Refusals raise before anything moves: `SessionRefused` (its `field` names the request field
    that lifts it), or another `UsageError`, with the command line's words."""
    from livctl.procedures.control import ControlSettings
    from livctl.procedures.prepare import SessionPlan, SessionRequest, prepare_session
    from livctl.procedures.session import Session
    from livctl.procedures.stopping import StopSignal

    plan = request if isinstance(request, SessionPlan) else prepare_session(
        platform, log, request if request is not None else SessionRequest())
    report = Reporter(observer)
    for text in (*plan.notices, *(f"warning: {w}" for w in plan.motion.warnings)):
        report.status(text)
    control = ControlSettings(loop_gain=loop_gain) if loop_gain is not None else ControlSettings()
    session = Session(plan, platform, log, control=control, stop=stop if stop is not None else StopSignal(),
                      observer=method_of(observer, "on_window"), sample_observer=method_of(observer, "on_block"),
                      phase_observer=method_of(observer, "on_phase"))
    result = session.run()
    report.status(f"session {result.session_id or '(not logged)'} {result.status}"
                  + (f": {result.reason}" if result.reason else ""))
    return result


def calibrate(
    platform: "Platform",
    settings: "SweepSettings | None" = None,
    *,
    calibration_dir: str | os.PathLike[str] | None = None,
    save: bool = True,
    force: bool = False,
    operator: str | None = None,
    load_kg: float | None = None,
    sensor_model: str | None = None,
    observer: Any = None,
    stop: "StopSignal | None" = None,
) -> "Calibration":
    """Calibrate an open platform as `livctl calibrate` does (sensor check, safe sweep, fit) and,
    with `save`, write it to `calibration_dir` (default: $LIVCTL_CALIBRATION_DIR, else the
    configuration's) as <platform-id>.toml with the sweep's raw signal beside it; an existing file
    is replaced only with `force`. Raises `CalibrationFailed` (a check failed) or
    `CalibrationInterrupted` (a stop); either way the platform was stopped and nothing written."""
    from livctl.procedures.calibrate import Calibrator, SweepSettings, discard_sweep, keep_sweep, sweep_archive
    from livctl.procedures.stopping import StopSignal
    from livctl.records.calibration import check_writable, save_calibration

    settings = (settings if settings is not None else SweepSettings()).validate(max_drive=1.0)
    calibrator = Calibrator(platform, settings, operator=operator, load_kg=load_kg, sensor_model=sensor_model,
                            stop=stop if stop is not None else StopSignal(), observer=observer)
    if not save:
        return calibrator.run()
    target = check_writable(platform.platform_id, calibration_dir, force=force)
    calibrator.raw_signal = sweep_archive(platform, target, settings, operator=operator, load_kg=load_kg,
                                          sensor=sensor_model)
    try:
        cal = calibrator.run()
    except BaseException:
        discard_sweep(calibrator.raw_signal)
        raise
    cal, warnings = keep_sweep(cal, calibrator.raw_signal, target)
    report = Reporter(observer)
    for warning in warnings:
        report.status(f"warning: {warning}")
    path = save_calibration(cal, calibration_dir, force=force)
    report.status(f"calibration {cal.calibration_id} written to {path}")
    return cal


def validate_file(
    path: str | os.PathLike[str],
    prescription: "Prescription",
    *,
    axis: str = "auto",
    window_s: float = 1.0,
    **reading: Any,
) -> "Validation":
    """A recording file (CSV, WAV, firmware dump) against a prescription, as `livctl validate
    FILE` checks it; `reading` goes to `read_recording` (units, rate_hz, full_scale_g, columns,
    time_unit). `RecordingError` for a file that cannot prove anything."""
    from livctl.offline.recordings import read_recording
    from livctl.offline.validation import validate

    recording = read_recording(path, **reading)
    if axis == "auto" and recording.format == "wav":
        axis = "x"  # as the command: a WAV file's first channel
    return validate(recording, prescription, axis=axis, window_s=window_s)


def read_session_archive(log: "DoseLog", session_id: str) -> "ArchiveData":
    """A logged session's raw signal (every block read and command sent, each window's rows),
    after its SHA-256 has been checked against the log's chain. `ArchiveError` when the session
    kept none, `LogError` when the file is missing or altered."""
    from livctl.offline.reanalysis import sealed_archive
    from livctl.records.archive import read_archive

    return read_archive(sealed_archive(log, session_id)[2])


def study_report(
    log: "DoseLog",
    subjects: list[str] | None = None,
    *,
    first: "dt.date | None" = None,
    last: "dt.date | None" = None,
    verify: bool = True,
    timezone: str | None = None,
) -> "StudyReport":
    """The compliance report `livctl report` files, for `subjects` (default: every registered
    subject) from `first` to `last` (default: each regimen's span up to today), on a verified log
    (`verify`). `timezone` defaults to the configuration's, else this computer's. Its `summary()`
    is the JSON the command prints; `livctl.study.report` draws its figures and HTML."""
    from livctl.clock import utc_now
    from livctl.records.config import load_settings
    from livctl.study.report import StudyReport, build_subject_report

    note = None
    if timezone is None:
        timezone, note = load_settings().timezone()
    ids = [s["subject_id"] for s in log.subjects()] if subjects is None else list(subjects)
    for subject_id in ids:  # an unknown subject is an error before any work
        if not log.sessions(subjects=[subject_id], limit=1):
            log.subject(subject_id)
    check = log.verified() if verify else None
    now = utc_now()
    reports = [build_subject_report(log, s, first=first, last=last, now=now, check=check, timezone=timezone,
                                    timezone_note=note) for s in ids]
    generated = reports[0].generated_utc if reports else now.isoformat()
    return StudyReport(reports, check, str(log.path.resolve()), generated)
