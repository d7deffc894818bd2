"""Closed-loop amplitude control: hold the measured peak acceleration at the prescription.

The plant is close to linear in the drive (acceleration = gain x drive), but the gain moves: with
the load (a 50 or a 120 kg person), with resonance, with the actuator warming up. The controller
works on the ratio target / measured, multiplicatively, so its behaviour is the same at 0.1 g and
at 0.7 g:

    drive <- drive x (target / measured) ** loop_gain

with `loop_gain` 1 a one-step (deadbeat) correction and smaller values a gentler loop (the
"compression" of industrial sine controllers). Two rates share that law:

- the **fine loop** runs once per measurement window (1 s) on the window's precise measurement,
  and only when the drive was steady for the whole window, so a correction is never computed from
  a window that mixed two drive levels;
- the **fast loop** runs on each short control block (0.25 s) but acts only when the block's
  error is large (a load step, a sudden resonance). The caller measures each block on its part
  after any correction ramp, so the loop never judges a level still in transition.

The drive state itself is clamped to [0, drive_cap], so there is no integrator to wind up: a
controller held at its cap resumes from the cap the moment the level comes back. A rise is rate
limited (at most `max_rise_ratio` per update); a fall is not, because falling is the safe direction.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ControlSettings:
    """The amplitude controller's knobs: loop gain, the fast loop's threshold, the largest rise per update, the
    deadband."""

    loop_gain: float = 1.0
    """Share of the (logarithmic) error corrected per update: 1 deadbeat, 0.5 half-way."""
    fast_threshold_fraction: float = 0.05
    """The fast loop acts when a block's level is off by more than this fraction."""
    max_rise_ratio: float = 1.5
    """Largest factor by which one update may raise the drive."""
    deadband_fraction: float = 0.002
    """Fine-loop errors smaller than this fraction are left alone (no command, no click)."""
    correction_ramp_s: float = 0.05
    """Raised-cosine ramp for each drive correction."""
    closed_loop: bool = True
    """False holds the pre-check's drive for the whole delivery (open loop)."""

    def __post_init__(self) -> None:
        if not 0 < self.loop_gain <= 1:
            raise ValueError(f"loop gain must be in (0, 1], got {self.loop_gain}")
        if not 0 < self.fast_threshold_fraction < 1:
            raise ValueError(f"fast threshold must be in (0, 1), got {self.fast_threshold_fraction}")
        if not self.max_rise_ratio > 1:
            raise ValueError(f"max rise must be above 1, got {self.max_rise_ratio}")


class AmplitudeController:
    """Drive-level decisions for one session. It never talks to the platform: it returns levels."""

    def __init__(self, target_peak_mps2: float, drive: float, drive_cap: float, settings: ControlSettings | None = None):
        if not (target_peak_mps2 > 0 and math.isfinite(target_peak_mps2)):
            raise ValueError("target must be a positive peak acceleration")
        self.target_peak_mps2 = target_peak_mps2
        self.settings = settings or ControlSettings()
        self.drive_cap = drive_cap
        self.drive = min(drive, drive_cap)
        self.saturated = self.drive >= drive_cap
        self.wanted = self.drive
        """The last level asked for before clamping to the cap (the safety interlocks watch it)."""
        self.updated = False
        """True when the last call computed a new `wanted` (even if the drive, at its cap, stayed)."""
        self._changed_in_window = False

    def _update(self, measured_peak_mps2: float, loop_gain: float) -> float | None:
        """The new drive for a measured level, or None to leave it."""
        if not self.settings.closed_loop or not (measured_peak_mps2 > 0 and math.isfinite(measured_peak_mps2)):
            return None
        self.updated = True
        ratio = self.target_peak_mps2 / measured_peak_mps2
        factor = min(ratio**loop_gain, self.settings.max_rise_ratio)
        wanted = self.drive * factor
        self.wanted = wanted
        new = min(wanted, self.drive_cap)
        self.saturated = wanted >= self.drive_cap
        if new == self.drive:
            return None
        _log.debug("controller: measured %.4g m/s^2 peak for %.4g; drive %.5f -> %.5f%s", measured_peak_mps2,
                   self.target_peak_mps2, self.drive, new, " (at its cap)" if self.saturated else "")
        self.drive = new
        self._changed_in_window = True
        return new

    def on_block(self, block_peak_mps2: float | None, std_error_mps2: float = 0.0) -> float | None:
        """A control block's level (and its standard error); returns a new drive when a large,
        real error needs fixing now. An error within four standard errors is noise: left alone."""
        self.updated = False
        if block_peak_mps2 is None:
            return None
        error = block_peak_mps2 / self.target_peak_mps2 - 1.0
        noise = 4.0 * std_error_mps2 / self.target_peak_mps2
        if abs(error) <= max(self.settings.fast_threshold_fraction, noise):
            return None
        return self._update(block_peak_mps2, 1.0)

    def on_window(self, window_peak_mps2: float | None) -> float | None:
        """A measurement window's precise level; returns a fine correction, or None.

        Windows during which the drive changed are skipped: they measure a mix of two levels.
        """
        self.updated = False
        steady = not self._changed_in_window
        self._changed_in_window = False
        if not steady or window_peak_mps2 is None:
            return None
        if abs(window_peak_mps2 / self.target_peak_mps2 - 1.0) <= self.settings.deadband_fraction:
            return None
        new = self._update(window_peak_mps2, self.settings.loop_gain)
        # a fine correction lands on the window boundary: the next window is steady but for its
        # first few tens of milliseconds
        self._changed_in_window = False
        return new
