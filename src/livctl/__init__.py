"""livctl: drive low-intensity vibration (LIV) platforms and prove the dose they delivered.

Units are SI inside the package (m/s^2, Hz, s). Accelerations given to or shown by users are in g
(1 g = 9.80665 m/s^2) and every name says whether it is a peak or an RMS value.
"""

__version__ = "0.1.0"


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
