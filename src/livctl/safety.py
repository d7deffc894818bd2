"""Safety limits and the interlocks that enforce them during a session.

The acceleration cap is absolute: a prescription above it is refused, the drive is never set
higher than the level that, by the platform's measured response, would reach it, and a measured
level above it cuts the drive at once. The other interlocks watch the measurements as they arrive
and stop the session with a reason when something is wrong for longer than a short grace time:

| interlock | trips when | then |
|---|---|---|
| acceleration cap | a control block measures more than `accel_cap_g` | cut at once |
| over-level | the level exceeds the prescription by `over_level_margin` for `over_level_s` | cut at once |
| stale sensor | no valid samples (absent, frozen, garbage) for `stale_s` | ramp down |
| frequency | the measured frequency is outside tolerance for `frequency_s` | ramp down |
| distortion | THD above `max_thd_fraction` for `thd_s` | ramp down |
| open loop | drive at its ceiling while the level stays under `open_loop_level` of the prescription for `open_loop_s` | ramp down |
| response fell | holding the level would need more than `max_drive_rise` x the drive the pre-check found (sensor drift, actuator fault) | ramp down |
| response rose | the drive needed falls under 1 / `max_response_rise` of the pre-check's (the subject stepped off, a sudden resonance) | cut at once |
| unverifiable | the dose cannot be measured (SNR under `min_snr_db`) for `unverifiable_s` | ramp down |
| link lost | the platform stops answering | ramp down where possible; the board's watchdog does the rest |

Every default can be tightened (never loosened) by a platform profile: `SafetyLimits.tightened`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from livctl.errors import UsageError
from livctl.units import g_to_mps2, mps2_to_g

DEFAULT_ACCEL_CAP_G = 1.0
"""Absolute ceiling on peak acceleration, g. LIV works well under 1 g."""


def drive_ceiling(gain_mps2_per_drive: float, accel_cap_g: float, max_drive: float) -> float:
    """The largest drive level allowed: the platform's own limit, or the level that reaches the cap.

    `gain_mps2_per_drive` is the measured peak acceleration per unit of drive.
    """
    if not (gain_mps2_per_drive > 0 and math.isfinite(gain_mps2_per_drive)):
        return 0.0
    return min(max_drive, g_to_mps2(accel_cap_g) / gain_mps2_per_drive)


# For each limit: does a smaller value make the platform safer (True) or a larger one (False)?
_SMALLER_IS_SAFER = {
    "accel_cap_g": True,
    "over_level_margin": True,
    "over_level_s": True,
    "stale_s": True,
    "frequency_s": True,
    "max_thd_fraction": True,
    "thd_s": True,
    "open_loop_level": False,
    "open_loop_s": True,
    "max_drive_rise": True,
    "max_response_rise": True,
    "min_snr_db": False,
    "unverifiable_s": True,
    "calibration_mismatch": True,
}


@dataclass(frozen=True)
class SafetyLimits:
    accel_cap_g: float = DEFAULT_ACCEL_CAP_G
    over_level_margin: float = 0.25
    over_level_s: float = 0.5
    stale_s: float = 0.5
    frequency_s: float = 2.0
    max_thd_fraction: float = 0.25
    thd_s: float = 2.0
    open_loop_level: float = 0.5
    open_loop_s: float = 2.0
    max_drive_rise: float = 1.5
    max_response_rise: float = 1.75
    min_snr_db: float = 0.0
    unverifiable_s: float = 3.0
    calibration_mismatch: float = 0.25
    """The pre-check refuses a platform whose response differs from its calibration by more."""

    def tightened(self, **profile: float) -> "SafetyLimits":
        """These limits with a platform profile's values, each allowed only to make them stricter."""
        unknown = sorted(set(profile) - set(_SMALLER_IS_SAFER))
        if unknown:
            raise UsageError(f"unknown safety limit {', '.join(unknown)}; known: {', '.join(_SMALLER_IS_SAFER)}")
        for name, value in profile.items():
            current = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise UsageError(f"safety limit {name} must be a number >= 0, got {value!r}")
            looser = value > current if _SMALLER_IS_SAFER[name] else value < current
            if looser:
                raise UsageError(f"safety limit {name} can only be tightened: {value:g} is looser than {current:g}")
        return replace(self, **profile)


class Trip(Exception):
    """An interlock fired: stop the session. `cut` means zero the drive at once (over-driving)."""

    def __init__(self, reason: str, *, cut: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.cut = cut


class _Timer:
    """How long a condition has held, in platform time."""

    def __init__(self) -> None:
        self.since: float | None = None

    def hold(self, condition: bool, now_s: float) -> float:
        if not condition:
            self.since = None
            return 0.0
        if self.since is None:
            self.since = now_s
        return now_s - self.since


class Interlocks:
    """The running checks of one session. Raises Trip from `on_block` / `on_window`."""

    def __init__(self, limits: SafetyLimits, prescription):
        self.limits = limits
        self.prescription = prescription
        self.tolerance_hz = prescription.tolerance.frequency_hz
        self.cap_mps2 = g_to_mps2(limits.accel_cap_g)
        self.target_mps2 = prescription.peak_mps2
        self.expected_drive: float | None = None
        self.armed = False
        """The level interlocks (over-level, open loop, drift, frequency...) watch the delivery only;
        the cap and the stale-sensor check are always on."""
        self._over = _Timer()
        self._freq = _Timer()
        self._thd = _Timer()
        self._open = _Timer()
        self._quiet = _Timer()
        self._last_valid_s: float | None = None

    def arm(self, expected_drive: float) -> None:
        """Start watching the delivery; `expected_drive` is the level the pre-check found right."""
        self.expected_drive = expected_drive
        self.armed = True

    def on_block(self, end_s: float, peak_mps2: float | None, problem: str | None) -> None:
        """One control block: its measured fundamental peak (None if unmeasurable) and what is
        wrong with its samples (None when they are present, finite, changing and in range)."""
        valid = problem is None
        lim = self.limits
        if valid or self._last_valid_s is None:
            self._last_valid_s = end_s
        if end_s - self._last_valid_s >= lim.stale_s - 1e-9:
            raise Trip(f"sensor data {problem} for {lim.stale_s:g} s")
        if peak_mps2 is None:
            return
        if peak_mps2 > self.cap_mps2:
            raise Trip(
                f"measured {mps2_to_g(peak_mps2):.2f} g peak is above the {lim.accel_cap_g:g} g safety cap",
                cut=True,
            )
        if not self.armed:
            return
        over = peak_mps2 > self.target_mps2 * (1.0 + lim.over_level_margin)
        if self._over.hold(over, end_s) >= lim.over_level_s - 1e-9:
            raise Trip(
                f"measured {mps2_to_g(peak_mps2):.3f} g peak stayed over {100 * lim.over_level_margin:g} % above "
                f"the prescribed {self.prescription.peak_g:g} g for {lim.over_level_s:g} s",
                cut=True,
            )

    def on_window(self, end_s: float, measurement, drive: float, drive_cap: float) -> None:
        """One measurement window (measurement None when it could not be measured)."""
        if not self.armed:
            return
        lim = self.limits
        rx = self.prescription
        m = measurement
        quiet = m is None or not (m.snr_db >= lim.min_snr_db)
        if self._quiet.hold(quiet, end_s) >= lim.unverifiable_s - 1e-9:
            raise Trip(f"the dose cannot be verified: no clean measurement for {lim.unverifiable_s:g} s")
        if m is not None:
            off = abs(m.frequency_hz - rx.frequency_hz) > self.tolerance_hz
            if self._freq.hold(off, end_s) >= lim.frequency_s - 1e-9:
                raise Trip(
                    f"frequency {m.frequency_hz:.2f} Hz outside {rx.frequency_hz:g} +- {self.tolerance_hz:g} Hz "
                    f"for {lim.frequency_s:g} s"
                )
            distorted = m.thd_percent > 100.0 * lim.max_thd_fraction
            if self._thd.hold(distorted, end_s) >= lim.thd_s - 1e-9:
                raise Trip(f"THD {m.thd_percent:.1f} % above {100 * lim.max_thd_fraction:g} % for {lim.thd_s:g} s")
        level = 0.0 if m is None else m.peak_g / rx.peak_g
        stuck = drive >= drive_cap * (1 - 1e-9) and level < lim.open_loop_level
        if self._open.hold(stuck, end_s) >= lim.open_loop_s - 1e-9:
            raise Trip(
                f"drive at its limit ({100 * drive:.0f} % of full scale) while the level stays at "
                f"{100 * level:.0f} % of the prescription: actuator or sensor failure (open loop)"
            )

    @property
    def rise_limit_drive(self) -> float:
        """The highest drive the controller may use: `max_drive_rise` x the pre-check's level."""
        return math.inf if self.expected_drive is None else self.limits.max_drive_rise * self.expected_drive

    def on_drive_request(self, wanted_drive: float) -> None:
        """The controller asked for `wanted_drive` (before any clamping)."""
        if not self.armed:
            return
        if wanted_drive * self.limits.max_response_rise < self.expected_drive:
            raise Trip(
                f"the platform's response rose {self.expected_drive / wanted_drive:.1f}x above the pre-check's "
                f"(limit {self.limits.max_response_rise:g}x): the load changed (did the subject step off?) or the "
                "platform resonates; check it",
                cut=True,  # until the correction lands, the platform is over-driven
            )
        if wanted_drive > self.rise_limit_drive * (1 + 1e-9):
            raise Trip(
                f"holding the level would need {wanted_drive / self.expected_drive:.2f}x the drive the pre-check "
                f"found (limit {self.limits.max_drive_rise:g}x): the platform's response fell (sensor drift, "
                "actuator fault or a load change); check it"
            )


def load_profile(path) -> SafetyLimits:
    """The default limits tightened by a platform profile: a TOML file with a [safety] table."""
    from livctl.files import read_toml

    data, _ = read_toml(path, "safety profile")
    table = data.get("safety")
    if not isinstance(table, dict):
        raise UsageError(f"safety profile {path} has no [safety] table")
    return SafetyLimits().tightened(**table)
