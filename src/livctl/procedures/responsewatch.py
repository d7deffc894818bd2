"""What a session watches of the platform's response, block by block, that needs its prescription.

The guard's sensor watch (livctl.procedures.sensorwatch) judges the sensor without knowing what was
prescribed. A session's `ResponseWatch` keeps, per window, the blocks' phases against the drive
(the pre-check's proof that the response follows the drive) and the two accelerometers' levels;
in delivery it follows the response per unit drive:

- with two accelerometers, a window whose two sensors disagree by more than half the tolerance
  is not logged in spec (a change both see is the plate's);
- with one, the delivery's first second is the reference (RESPONSE_BASELINE_BLOCKS): a window whose
  response moved more than RESPONSE_MOVED_SHARE of the tolerance from it is not logged in spec,
  and a response that stays moved `SafetyLimits.response_moved_s` stops the session.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from livctl.events import Phase
from livctl.prescription import Prescription
from livctl.procedures.guard import GuardedBlock
from livctl.procedures.safety import SafetyLimits
from livctl.procedures.sensorwatch import PHASE_USABLE_SNR, SensorUntrusted

DELIVER = Phase.DELIVER

RESPONSE_BASELINE_BLOCKS = 10
"""With one accelerometer the response per unit drive of the delivery's first second is its reference..."""
RESPONSE_MOVED_SHARE = 0.7
"""...and a window whose response moved more than this share of the acceleration tolerance from
it is not logged in spec: one sensor cannot tell its own drift from a change of the platform, and
a drift that large would put the true level near the tolerance's edge while the loop held the
reading on target."""
"""(How long it may stay moved before the session stops: `SafetyLimits.response_moved_s`.)"""


class ResponseWatch:
    """A session's watch on the response per unit drive and its phase, fed every block the
    interlocks judge (not the ramp-down's)."""

    def __init__(self, prescription: Prescription, limits: SafetyLimits, *, sensor_count: int, block_s: float):
        self.prescription = prescription
        self.limits = limits
        self.sensor_count = sensor_count
        self.block_s = block_s
        self.baseline_gain: float | None = None
        """One accelerometer: the delivery's first second's response per unit drive (m/s^2)."""
        self._baseline_gains: list[float] = []
        self._recent_gains: deque[tuple[float, float]] = deque()
        self._moved_since_s: float | None = None
        self._win_gains: list[float] = []
        """Response per unit drive of the current window's steady delivery blocks."""
        self._win_pair = [0.0, 0.0]
        """The current window's blocks' fundamentals, first and second accelerometer."""
        self._win_phases: list[float] = []

    def start_window(self) -> None:
        """A new window begins: forget the last one's blocks."""
        self._win_gains, self._win_pair, self._win_phases = [], [0.0, 0.0], []

    def on_block(self, phase: str, guarded: GuardedBlock, end_s: float) -> None:
        """The block's phase and two sensors' levels (for the window), and with one sensor, whether
        the response per unit drive has moved from the delivery's first second (RESPONSE_MOVED_SHARE,
        `SafetyLimits.response_moved_s`): `SensorUntrusted` when it stayed moved."""
        fit = guarded.fit
        if fit is None or guarded.problem is not None:
            return
        usable = fit.fundamental_mps2 > PHASE_USABLE_SNR * fit.fundamental_se_mps2
        if usable:
            self._win_phases.append(fit.phase_rad)
        second = guarded.second_fit
        if usable and second is not None and second.fundamental_mps2 > PHASE_USABLE_SNR * second.fundamental_se_mps2:
            self._win_pair[0] += fit.fundamental_mps2
            self._win_pair[1] += second.fundamental_mps2
        settled = guarded.settled_fit()
        if phase != DELIVER or not usable or settled is None or guarded.drive <= 0:
            return
        gain = settled.fundamental_mps2 / guarded.drive
        self._win_gains.append(gain)
        if self.sensor_count > 1:
            return  # two accelerometers check each other (the sensor watch); a change both see is the plate's
        if self.baseline_gain is None:
            self._baseline_gains.append(gain)
            if len(self._baseline_gains) >= RESPONSE_BASELINE_BLOCKS:
                self.baseline_gain = float(np.median(self._baseline_gains))
            return
        self._check_moved(gain, end_s)

    def _check_moved(self, gain: float, end_s: float) -> None:
        """One sensor: the last second's response against the baseline; stop once it stayed moved."""
        recent = self._recent_gains
        recent.append((end_s, gain))
        while recent and recent[0][0] <= end_s - 1.0 + 1e-9:
            recent.popleft()
        moved = sum(g for _, g in recent) / len(recent) / self.baseline_gain - 1.0
        if abs(moved) <= RESPONSE_MOVED_SHARE * self.prescription.tolerance.accel_fraction:
            self._moved_since_s = None
            return
        if self._moved_since_s is None:
            self._moved_since_s = end_s - self.block_s
        if end_s - self._moved_since_s >= self.limits.response_moved_s - 1e-9:
            raise SensorUntrusted(
                f"the platform's response (level per unit of drive) moved {100 * moved:+.0f} % from the delivery's "
                f"first second and stayed there {self.limits.response_moved_s:g} s: a drifting sensor or a changed load, which one "
                "accelerometer cannot tell apart; check the subject, the platform and the sensor"
            )

    def window_phase(self) -> float | None:
        """The circular mean of the window's block phases against the drive, or None."""
        phases = self._win_phases
        if len(phases) < 2:
            return None
        return math.atan2(sum(math.sin(p) for p in phases), sum(math.cos(p) for p in phases))

    def unverified(self) -> tuple[str, ...]:
        """Why a delivery window cannot be logged in spec though its measurement is: the two
        accelerometers disagree, or (one sensor) the response moved too far to be believed."""
        tol = self.prescription.tolerance.accel_fraction
        if self.sensor_count > 1:
            first, second = self._win_pair
            if first > 0 and abs(second / first - 1.0) > 0.5 * tol:
                return (f"unverifiable: the two accelerometers disagree by {100 * (second / first - 1):+.1f} % over "
                        f"this window (more than half the {100 * tol:g} % tolerance)",)
            return ()
        if self.baseline_gain and self._win_gains:
            moved = sum(self._win_gains) / len(self._win_gains) / self.baseline_gain - 1.0
            if abs(moved) > RESPONSE_MOVED_SHARE * tol:
                return (f"unverifiable with one accelerometer: the response per unit drive moved {100 * moved:+.1f} % "
                        "since the delivery began (a drifting sensor or a changed load)",)
        return ()
