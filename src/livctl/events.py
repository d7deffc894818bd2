"""What procedures tell the world as they run: a session's phases, how it ended, and the one
observer protocol that sessions and calibrations both report to.

The enums are str-valued: a phase or a status compares equal to the string the dose log stores
("deliver", "completed"), and is stored as that string.
"""

from __future__ import annotations

import enum
from typing import Any, Protocol, runtime_checkable


class Phase(enum.StrEnum):
    """The phase a session's window belongs to (the sensor check at rest counts as the pre-check)."""

    PRECHECK = "precheck"
    RAMP_UP = "ramp_up"
    DELIVER = "deliver"
    RAMP_DOWN = "ramp_down"


class SessionStatus(enum.StrEnum):
    """How a session ended, as the dose log records it."""

    COMPLETED = "completed"
    """Ran to its end (in spec or not: `SessionResult.in_spec` says which)."""
    ABORTED = "aborted"
    """Stopped by a check, an interlock, the platform or the log; the reason says which."""
    INTERRUPTED = "interrupted"
    """Stopped on request (Ctrl-C, a stop signal, a closed live view), or its process died."""


@runtime_checkable
class Observer(Protocol):
    """Sees a procedure (a session or a calibration) as it runs, on the thread that runs it.

    Implement any of the three methods; the public API calls only those an observer has. None may
    block: `on_block` is called every control block (0.1 s) and should only copy what it needs.

    - `on_status(text)`: a line for a person (a calibration's progress, a session's notices and
      warnings before it moves, its end).
    - `on_block(block)`: every `SampleBlock` read from the platform (m/s^2, peak values).
    - `on_window(progress)`: a session's measured window (`livctl.procedures.session.Progress`:
      `phase`, `window`, `delivered_s`, `in_spec_fraction`) or a calibration's measured step
      (`CalibrationStep`).
    """

    def on_status(self, text: str) -> None: ...

    def on_block(self, block: Any) -> None: ...

    def on_window(self, progress: Any) -> None: ...
