"""A session's measurement windows: what one window read, and how it is closed.

A session reads its platform in control blocks (0.1 s) gathered into windows (`window_s`, 1 s).
`WindowRead` is what one window read; `WindowLedger.close` turns it into the `WindowResult` the
session keeps: measured by the full engine (`livctl.dsp.estimator.measure`) where it can be,
checked against the prescription, written to the dose log and noted in the raw-signal archive,
and, in delivery, added to the session's running sums (`Tally`).

A window is measured in the platform's stream time and logged in this computer's: the board's
clock, as the guard's sensor watch knows it, corrects the window's start, length and frequency.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from livctl.dsp.estimator import AXES, AnalysisError, Measurement, check_spec, measure
from livctl.errors import LogError
from livctl.events import Phase
from livctl.platforms import Platform
from livctl.prescription import Prescription
from livctl.records import archive as raw
from livctl.records.doselog import DoseLog

DELIVER = Phase.DELIVER

NOT_MEASURED = "not measured: no accelerometer (open loop)"


class SessionAbort(Exception):
    """Stop the session: the platform cannot deliver the prescription safely."""


class LogWriteFailed(Exception):
    """The dose log stopped taking records mid-session (a full disk, say): stop, and say so."""


@dataclass(frozen=True)
class WindowResult:
    """One measurement window of a session, as logged: its phase, drive, measurement and verdict."""

    index: int
    phase: Phase
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


@dataclass
class WindowRead:
    """What one window read through the guard, in the platform's stream time (s)."""

    phase: Phase
    t0_s: float
    """Sample time of the window's first block."""
    duration_s: float
    """How much of the window was read (all of it, unless a stop or a failure came midway)."""
    samples: np.ndarray
    """The usable blocks' samples, (n, 3) m/s^2."""
    problem: str | None
    """Why some blocks' samples could not be trusted (the first reason), or None."""
    measured: bool = True
    """False for a window at rest or settling: logged, never measured."""
    second_parts: list[np.ndarray] = field(default_factory=list)
    """The second accelerometer's usable blocks, (n, 3) m/s^2 each."""

    @property
    def second_samples(self) -> np.ndarray | None:
        """The second accelerometer's usable samples of the window, or None."""
        return join_blocks(self.second_parts) if self.second_parts else None


@dataclass
class Tally:
    """Running sums over a session's windows, for its result."""

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


class WindowLedger:
    """Closes a session's windows: each measured, checked, logged, noted in the archive and counted.

    `stream_per_host()` is the board's clock against this computer's (1.0 until it is known);
    `unverified()` says why a delivery window cannot be logged in spec though its measurement is
    (livctl.procedures.responsewatch)."""

    def __init__(
        self,
        prescription: Prescription,
        platform: Platform,
        *,
        stream_per_host: Callable[[], float],
        unverified: Callable[[], tuple[str, ...]],
    ):
        self.prescription = prescription
        self.platform = platform
        self.stream_per_host = stream_per_host
        self.unverified = unverified
        self.log: DoseLog | None = None
        self.session_id: str | None = None
        self.archive: raw.RawArchive | None = None
        self.axis = AXES.index(platform.vertical_axis)
        self.frequency_hz = prescription.frequency_hz
        """Where the next window's measurement looks first: the plate's frequency as last measured
        within tolerance (the prescribed one until then)."""
        self.count = 0
        """Windows closed so far (the next window's index)."""
        self.tally = Tally()
        """The delivery's windows, summed."""
        self.log_failed = False
        """True once the dose log refused a window: the rest of the session goes unlogged."""

    def record_to(self, log: DoseLog | None, session_id: str | None, archive: raw.RawArchive | None) -> None:
        """Where the windows go from now on: the session's dose log and id, its raw-signal archive
        (None: not kept)."""
        self.log, self.session_id, self.archive = log, session_id, archive

    def close(self, read: WindowRead, drive: float, *, failure_stops: bool) -> WindowResult:
        """Measure, check, log and count a window commanded at `drive`. With `failure_stops`, a log
        or archive that cannot take it stops the session (`LogWriteFailed`, `SessionAbort`);
        without, the session is stopping already and goes on unrecorded."""
        m, hint_hz, reasons = self._measure(read)
        ratio = self.stream_per_host()
        window = WindowResult(
            index=self.count,
            phase=read.phase,
            t_s=read.t0_s / ratio,
            duration_s=read.duration_s / ratio,
            drive=drive,
            measurement=m,
            in_spec=m is not None and not reasons,
            reasons=reasons,
        )
        self.count += 1
        if read.phase == DELIVER:
            self.tally.add(window)
        self._record(window, read, hint_hz, failure_stops)
        rx = self.prescription
        if m is not None and abs(m.frequency_hz - rx.frequency_hz) <= rx.tolerance.frequency_hz:
            self.frequency_hz = m.frequency_hz
        return window

    def _measure(self, read: WindowRead) -> tuple[Measurement | None, float | None, tuple[str, ...]]:
        """The window's measurement (None when there is none), the frequency its search started
        from, and every reason it is not in spec."""
        rx = self.prescription
        if read.problem:
            return None, None, (f"no measurement: sensor data {read.problem}",)
        if not self.platform.has_sensor:
            return None, None, (NOT_MEASURED,)
        if not read.measured:
            return None, None, ("not measured: the platform was at rest or settling",)
        hint_hz = self.frequency_hz
        try:
            m = measure(
                read.samples,
                self.platform.sensor_rate_hz,
                axis=self.axis,
                search_hz=(0.5 * rx.frequency_hz, 1.5 * rx.frequency_hz),
                hint_hz=hint_hz,
            )
        except AnalysisError as exc:
            return None, hint_hz, (f"no measurement: {exc}",)
        ratio = self.stream_per_host()  # the board's clock against this computer's
        if ratio != 1.0:
            m = replace(m, frequency_hz=m.frequency_hz * ratio, frequency_u_hz=m.frequency_u_hz * ratio,
                        duration_s=m.duration_s / ratio)
        reasons = tuple(check_spec(m, rx))
        if read.phase == DELIVER:
            reasons += self.unverified()
        return m, hint_hz, reasons

    def _record(self, window: WindowResult, read: WindowRead, hint_hz: float | None, failure_stops: bool) -> None:
        """The window into the dose log and the archive's table of windows."""
        if self.log is not None and self.session_id is not None and not self.log_failed:
            try:
                self.log.add_window(self.session_id, window.to_record())
            except LogError as exc:
                self.log_failed = True  # the ramp-down goes on unlogged
                if failure_stops:
                    raise LogWriteFailed(str(exc)) from None
        archive = self.archive
        if archive is not None:
            archive.add_window(window.index, read.phase, read.t0_s, read.duration_s,
                               measured=window.measurement is not None, hint_hz=hint_hz)
            if archive.failure and failure_stops:
                raise SessionAbort(f"the raw signal could not be written: {archive.failure}")


def join_blocks(parts: list[np.ndarray]) -> np.ndarray:
    """Blocks of samples as one (n, 3) array, column-major like the blocks (the estimator reads
    each axis as a contiguous column)."""
    if len(parts) == 1:
        return parts[0]
    out = np.empty((sum(p.shape[0] for p in parts), 3), order="F")
    if parts:
        np.concatenate(parts, axis=0, out=out)
    return out
