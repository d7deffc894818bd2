"""What procedures tell the world as they run: a session's phases, how it ended, and the one
observer protocol that sessions and calibrations both report to (`Observer`, and `Reporter`, which
calls only the methods an observer has).

The enums are str-valued: a phase or a status compares equal to the string the dose log stores
("deliver", "completed"), and is stored as that string.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["Phase", "SessionStatus", "Observer", "CalibrationStep", "Reporter", "method_of"]


class Phase(enum.StrEnum):
    """The phase a session's window belongs to (the sensor check at rest counts as the pre-check),
    or a calibration's sweep at one frequency."""

    PRECHECK = "precheck"
    RAMP_UP = "ramp_up"
    DELIVER = "deliver"
    RAMP_DOWN = "ramp_down"
    SWEEP = "sweep"
    """A calibration measuring its steps at one frequency (never a dose log's phase)."""


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

    Implement any of the four methods; procedures call only those an observer has (`Reporter`).
    None may block: `on_block` is called every control block (0.1 s) and should only copy what it
    needs.

    - `on_status(text)`: a line for a person (a calibration's progress, a session's notices and
      warnings before it moves, its end).
    - `on_block(block)`: every `SampleBlock` read from the platform (m/s^2, peak values).
    - `on_window(progress)`: a session's measured window (`livctl.procedures.session.Progress`:
      `phase`, `window`, `delivered_s`, `in_spec_fraction`) or a calibration's measured step
      (`CalibrationStep`).
    - `on_phase(phase, frequency_hz)`: the procedure enters a `Phase` at a drive frequency: a
      session's pre-check, ramp-up, delivery and ramp-down; a calibration's sweep at each frequency.
    """

    def on_status(self, text: str) -> None: ...

    def on_block(self, block: Any) -> None: ...

    def on_window(self, progress: Any) -> None: ...

    def on_phase(self, phase: Phase, frequency_hz: float) -> None: ...


@dataclass(frozen=True)
class CalibrationStep:
    """A calibration's measured step, as an observer's `on_window` sees it."""

    frequency_hz: float
    step: Any
    """`livctl.records.calibration.Step`: the drive level and what it measured."""
    gain: Any
    """The fit of this frequency's steps so far (`Gain`), None before two steps."""


class Reporter:
    """An observer as a procedure calls it: each call goes to the observer's method of that name
    when it has one, and nowhere otherwise (None observes nothing)."""

    def __init__(self, observer: Any = None):
        self.observer = observer
        self._status = method_of(observer, "on_status")
        self._block = method_of(observer, "on_block")
        self._window = method_of(observer, "on_window")
        self._phase = method_of(observer, "on_phase")

    def status(self, text: str) -> None:
        if self._status is not None:
            self._status(text)

    def block(self, block: Any) -> None:
        if self._block is not None:
            self._block(block)

    def window(self, progress: Any) -> None:
        if self._window is not None:
            self._window(progress)

    def phase(self, phase: Phase, frequency_hz: float) -> None:
        if self._phase is not None:
            self._phase(phase, frequency_hz)


def method_of(observer: Any, name: str):
    """The observer's method `name`, or None when it has none."""
    return None if observer is None else getattr(observer, name, None)
