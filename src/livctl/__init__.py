"""livctl: drive low-intensity vibration (LIV) platforms and prove the dose they delivered.

Units are SI inside the package (m/s^2, Hz, s). Accelerations given to or shown by users are in g
(1 g = 9.80665 m/s^2) and every name says whether it is a peak or an RMS value.
"""

__version__ = "0.1.0"

# The public API, imported when first used (`import livctl` stays light: the command starts fast).
_EXPORTS = {
    # platforms
    "open_platform": "livctl.api",
    "FASTEST": "livctl.api",
    "Platform": "livctl.platforms",
    "SampleBlock": "livctl.platforms",
    # prescriptions
    "Prescription": "livctl.prescription",
    "Tolerance": "livctl.prescription",
    "PRESETS": "livctl.prescription",
    "preset": "livctl.api",
    # the dose log
    "DoseLog": "livctl.records.doselog",
    "open_log": "livctl.api",
    # sessions
    "SessionRequest": "livctl.procedures.prepare",
    "SessionPlan": "livctl.procedures.prepare",
    "SessionRefused": "livctl.procedures.prepare",
    "prepare_session": "livctl.procedures.prepare",
    "run_session": "livctl.api",
    "SessionResult": "livctl.procedures.session",
    "Progress": "livctl.procedures.session",
    "SafetyLimits": "livctl.procedures.safety",
    "StopSignal": "livctl.procedures.stopping",
    "Phase": "livctl.events",
    "SessionStatus": "livctl.events",
    "Observer": "livctl.events",
    # calibrations
    "calibrate": "livctl.api",
    "CalibrationStep": "livctl.events",
    "SweepSettings": "livctl.procedures.calibrate",
    "Calibration": "livctl.records.calibration",
    "CalibrationFailed": "livctl.procedures.calibrate",
    "CalibrationInterrupted": "livctl.procedures.calibrate",
    "find_calibration": "livctl.records.calibration",
    # test tones
    "play_tone": "livctl.procedures.tone",
    "ToneResult": "livctl.procedures.tone",
    # recordings, validation, archives, reports
    "read_recording": "livctl.offline.recordings",
    "validate": "livctl.offline.validation",
    "validate_file": "livctl.api",
    "read_session_archive": "livctl.api",
    "reanalyse": "livctl.offline.reanalysis",
    "study_report": "livctl.api",
    # errors
    "LivctlError": "livctl.errors",
    "UsageError": "livctl.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'livctl' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def _guard_startup() -> None:
    """When this package is being started as the `livctl` command (`python -m livctl`, whose
    argv[0] is "-m" while the module is looked up, or the `livctl` script), a Ctrl-C before
    `livctl.__main__.run` takes over ends the process at once with exit 130 and one line, instead
    of a traceback from Python's import machinery. `run` puts Python's own handler back first
    thing. A program that imports livctl as a library is left alone."""
    import sys

    if not sys.argv or (sys.argv[0] != "-m" and not sys.argv[0].endswith(("/livctl", "\\livctl.exe"))):
        return
    import _signal  # the C module: `signal` would first import enum, long enough to be interrupted in
    import os

    def interrupted(signum, frame):
        os.write(2, b"livctl: interrupted\n")
        os._exit(130)

    try:
        _signal.signal(_signal.SIGINT, interrupted)
    except ValueError:  # not the main thread: not a command starting
        pass


_guard_startup()
