"""Safety limits and the interlocks that enforce them during a session.

The acceleration cap is absolute and lives in the motion guard (`livctl.procedures.guard`): a prescription
above it is refused, no drive goes above the level that would reach it, and a block whose true
peak is over it cuts the drive at once. The interlocks here watch a session's delivery, block by
block (0.1 s), and stop it with a reason when something is wrong for longer than its limit:

| interlock | trips when | then |
|---|---|---|
| stale sensor | no valid samples (absent, frozen, garbage) for `stale_s` | ramp down |
| over-level | the level exceeds the prescription by `over_level_fraction` for `over_level_s` | cut at once |
| open loop | drive at its ceiling while the level stays under `open_loop_level_fraction` of the prescription for `open_loop_s` | ramp down |
| under-dose | drive at its ceiling while the level stays under the prescription's tolerance for `underdose_s` | ramp down |
| frequency | the plate's frequency (from the phase of the last 0.5 s of blocks) is outside tolerance for `frequency_s` | ramp down |
| distortion | THD of the last 0.5 s above `max_thd_fraction` for `thd_s` | ramp down |
| unverifiable | the last 0.5 s cannot verify the dose (SNR under `min_snr_db`) for `unverifiable_s` | ramp down |
| response fell | holding the level would need more than `max_drive_rise_ratio` x the drive the pre-check found | ramp down |
| response rose | the drive needed falls under 1 / `max_response_rise_ratio` of the pre-check's | cut at once |

Each timed interlock measures from the first bad sample: its timer starts at the start of the
check that first shows the condition (for a block check, the block before it too, since a fault
that starts late in a block may show only in the next), and it trips once the condition has held
for its time. So an interlock trips within its time of the fault, and no sooner than 0.2 s (block
checks) or 0.5 s (checks over the last 0.5 s) before that: the reaction times docs/safety.md
states, whatever the measurement window.

Every default can be tightened (never loosened) by a platform profile: `SafetyLimits.tightened`.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass, replace

from livctl.dsp.blockfit import phase_drift_hz
from livctl.errors import UsageError
from livctl.units import g_to_mps2, mps2_to_g

__all__ = ["SafetyLimits", "Interlocks", "Trip", "DEFAULT_ACCEL_CAP_G", "BLOCK_S", "drive_ceiling", "load_profile"]

_log = logging.getLogger(__name__)

DEFAULT_ACCEL_CAP_G = 1.0
"""Absolute ceiling on peak acceleration, g. LIV works well under 1 g."""
BLOCK_S = 0.1
"""The control block: the level interlocks judge every block of this length."""
SPAN_S = 0.5
"""Frequency, distortion and verifiability are judged over the last this many seconds of blocks."""


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
    "over_level_fraction": True,
    "over_level_s": True,
    "stale_s": True,
    "frequency_s": True,
    "max_thd_fraction": True,
    "thd_s": True,
    "open_loop_level_fraction": False,
    "open_loop_s": True,
    "underdose_s": True,
    "max_drive_rise_ratio": True,
    "max_response_rise_ratio": True,
    "min_snr_db": False,
    "unverifiable_s": True,
    "calibration_mismatch_fraction": True,
    "response_moved_s": True,
}
_SHORTEST_S = {
    "over_level_s": 2 * BLOCK_S,
    "stale_s": 2 * BLOCK_S,
    "open_loop_s": 2 * BLOCK_S,
    "underdose_s": 2 * BLOCK_S,
    "frequency_s": SPAN_S,
    "thd_s": SPAN_S,
    "unverifiable_s": SPAN_S,
    "response_moved_s": 10 * BLOCK_S,
}
"""A timed limit cannot be shorter than what its check can resolve."""


@dataclass(frozen=True)
class SafetyLimits:
    """The limits a session runs under (defaults that a platform's safety profile can only tighten): the cap, and
    each interlock's threshold and how long it may hold."""

    accel_cap_g: float = DEFAULT_ACCEL_CAP_G
    over_level_fraction: float = 0.25
    over_level_s: float = 0.5
    stale_s: float = 0.5
    frequency_s: float = 2.0
    max_thd_fraction: float = 0.25
    thd_s: float = 2.0
    open_loop_level_fraction: float = 0.5
    open_loop_s: float = 2.0
    underdose_s: float = 3.0
    max_drive_rise_ratio: float = 1.5
    max_response_rise_ratio: float = 1.75
    min_snr_db: float = 0.0
    unverifiable_s: float = 3.0
    calibration_mismatch_fraction: float = 0.25
    """The pre-check refuses a platform whose response differs from its calibration by more."""
    response_moved_s: float = 4.0
    """With one accelerometer: how long the response per unit drive may stay moved from the
    delivery's first second (by more than 0.7 of the acceleration tolerance) before the session
    stops (livctl.procedures.responsewatch.RESPONSE_MOVED_SHARE)."""

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
            if value < _SHORTEST_S.get(name, 0.0):
                raise UsageError(
                    f"safety limit {name} cannot be shorter than {_SHORTEST_S[name]:g} s, what its check resolves"
                )
            if name == "accel_cap_g" and value <= 0:
                raise UsageError("safety limit accel_cap_g must be above 0 g")
        return replace(self, **profile)


class Trip(Exception):
    """An interlock fired: stop the session. `cut` means zero the drive at once (over-driving)."""

    def __init__(self, reason: str, *, cut: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.cut = cut


class _Timer:
    """How long a condition has held, in platform time, counted from the start of the check that
    first showed it (less a lookback for checks a fault may reach only one block late)."""

    def __init__(self, lookback_s: float = 0.0) -> None:
        self.lookback_s = lookback_s
        self.since: float | None = None

    def hold(self, condition: bool, start_s: float, end_s: float) -> float:
        if not condition:
            self.since = None
            return 0.0
        if self.since is None:
            self.since = start_s - self.lookback_s
        return end_s - self.since


@dataclass(frozen=True)
class _Span:
    """One control block's fit, as the interlocks keep it over their look-back span."""

    end_s: float
    phase_rad: float
    fundamental2: float
    harmonics2: float
    noise2: float
    phase_usable: bool


class Interlocks:
    """The running checks of one session's delivery. Raise `Trip` from `on_block` and `on_drive_request`."""

    def __init__(self, limits: SafetyLimits, prescription, *, block_s: float = BLOCK_S):
        self.limits = limits
        self.prescription = prescription
        self.tolerance_hz = prescription.tolerance.frequency_hz
        self.target_mps2 = prescription.peak_mps2
        self.expected_drive: float | None = None
        self.armed = False
        """The level interlocks watch the delivery only; the stale-sensor check is always on."""
        self._stale = _Timer(block_s)
        self._over = _Timer(block_s)
        self._open = _Timer(block_s)
        self._under = _Timer(block_s)
        self._freq = _Timer()
        self._thd = _Timer()
        self._quiet = _Timer()
        self._span: deque[_Span] = deque()
        self.tripped_at_s: float | None = None
        """Block end (sample time) at which an interlock tripped."""

    def arm(self, expected_drive: float) -> None:
        """Start watching the delivery; `expected_drive` is the level the pre-check found right."""
        self.expected_drive = expected_drive
        self.armed = True

    def on_block(self, start_s: float, end_s: float, fit, problem: str | None, *, drive: float = 0.0,
                 drive_cap: float = math.inf, saturated: bool = False) -> None:
        """One control block from `start_s` to `end_s` (sample time): its fit at the drive frequency
        (livctl.dsp.blockfit.BlockFit, None when unmeasurable), what is wrong with its samples (None
        when they are present, finite, changing and in range), the drive commanded, the drive's
        ceiling, and whether the controller wants more than the ceiling."""
        lim = self.limits
        if self._stale.hold(problem is not None, start_s, end_s) >= lim.stale_s - 1e-9:
            self._trip(end_s, f"sensor data {problem} for {lim.stale_s:g} s")
        if not self.armed:
            return
        level = fit.fundamental_mps2 if fit is not None and problem is None else None
        if level is not None:
            over = level > self.target_mps2 * (1.0 + lim.over_level_fraction)
            if self._over.hold(over, start_s, end_s) >= lim.over_level_s - 1e-9:
                self._trip(
                    end_s,
                    f"measured {mps2_to_g(level):.3f} g peak stayed over {100 * lim.over_level_fraction:g} % above "
                    f"the prescribed {self.prescription.peak_g:g} g for {lim.over_level_s:g} s",
                    cut=True,
                )
        share = 0.0 if level is None else level / self.target_mps2
        at_ceiling = drive >= drive_cap * (1 - 1e-9)
        if self._open.hold(at_ceiling and share < lim.open_loop_level_fraction, start_s, end_s) >= lim.open_loop_s - 1e-9:
            self._trip(
                end_s,
                f"drive at its limit ({100 * drive:.0f} % of full scale) while the level stays at "
                f"{100 * share:.0f} % of the prescription: actuator or sensor failure (open loop)",
            )
        low = share < 1.0 - self.prescription.tolerance.accel_fraction
        if self._under.hold(saturated and low, start_s, end_s) >= lim.underdose_s - 1e-9:
            self._trip(
                end_s,
                f"under-dose: at its drive ceiling ({100 * drive:.0f} % of full scale) the platform gives "
                f"{100 * share:.0f} % of the prescribed {self.prescription.peak_g:g} g for {lim.underdose_s:g} s; "
                "it cannot hold the prescription (a heavier load, a weaker actuator, or a drifting sensor)",
            )
        self._span_checks(end_s, fit if problem is None else None)

    def _span_checks(self, end_s: float, fit) -> None:
        """Frequency, distortion and verifiability over the last SPAN_S of blocks."""
        lim = self.limits
        span = self._span
        if fit is not None:
            # each fitted harmonic carries 4 sigma^2 / n of noise power (two coefficients, each
            # 2 sigma^2 / n): the distortion check judges what is left, so noise never passes for THD
            noise_part = len(fit.harmonics_mps2) * 4.0 * fit.noise_rms_mps2**2 / fit.n
            harmonics2 = max(0.0, sum(h * h for h in fit.harmonics_mps2) - noise_part)
            usable = fit.fundamental_mps2 > 5.0 * fit.fundamental_se_mps2
            span.append(_Span(end_s, fit.phase_rad, fit.fundamental_mps2**2, harmonics2, fit.noise_rms_mps2**2, usable))
        while span and span[0].end_s <= end_s - SPAN_S + 1e-9:
            span.popleft()
        start_s = end_s - SPAN_S
        fundamental2 = sum(b.fundamental2 for b in span)
        noise2 = sum(b.noise2 for b in span)
        quiet = not span or not (0.5 * fundamental2 > 10.0 ** (lim.min_snr_db / 10.0) * noise2)
        if self._quiet.hold(quiet, start_s, end_s) >= lim.unverifiable_s - 1e-9:
            self._trip(end_s, f"the dose cannot be verified: no clean measurement for {lim.unverifiable_s:g} s")
        phased = [b for b in span if b.phase_usable]
        offset_hz = phase_drift_hz([b.end_s for b in phased], [b.phase_rad for b in phased]) if len(phased) >= 3 else 0.0
        frequency_hz = self.prescription.frequency_hz + offset_hz
        off = abs(offset_hz) > self.tolerance_hz
        if self._freq.hold(off, start_s, end_s) >= lim.frequency_s - 1e-9:
            self._trip(
                end_s,
                f"frequency {frequency_hz:.2f} Hz outside {self.prescription.frequency_hz:g} +- "
                f"{self.tolerance_hz:g} Hz for {lim.frequency_s:g} s",
            )
        thd_fraction = math.sqrt(sum(b.harmonics2 for b in span) / fundamental2) if fundamental2 > 0 else 0.0
        distorted = thd_fraction > lim.max_thd_fraction
        if self._thd.hold(distorted, start_s, end_s) >= lim.thd_s - 1e-9:
            self._trip(end_s, f"THD {100 * thd_fraction:.1f} % above {100 * lim.max_thd_fraction:g} % for {lim.thd_s:g} s")

    @property
    def rise_limit_drive(self) -> float:
        """The highest drive the controller may use: `max_drive_rise_ratio` x the pre-check's level."""
        return math.inf if self.expected_drive is None else self.limits.max_drive_rise_ratio * self.expected_drive

    def on_drive_request(self, wanted_drive: float, end_s: float | None = None) -> None:
        """The controller asked for `wanted_drive` (before any clamping): judged on every update,
        whether the drive changed or sits at its ceiling."""
        if not self.armed:
            return
        if wanted_drive * self.limits.max_response_rise_ratio < self.expected_drive:
            self._trip(
                end_s,
                f"the platform's response rose {self.expected_drive / wanted_drive:.1f}x above the pre-check's "
                f"(limit {self.limits.max_response_rise_ratio:g}x): the load changed (did the subject step off?) or the "
                "platform resonates; check it",
                cut=True,  # until the correction lands, the platform is over-driven
            )
        if wanted_drive > self.rise_limit_drive * (1 + 1e-9):
            self._trip(
                end_s,
                f"holding the level would need {wanted_drive / self.expected_drive:.2f}x the drive the pre-check "
                f"found (limit {self.limits.max_drive_rise_ratio:g}x): the platform's response fell (sensor drift, "
                "actuator fault or a load change); check it",
            )

    def _trip(self, end_s: float | None, reason: str, *, cut: bool = False) -> None:
        self.tripped_at_s = end_s
        _log.debug("interlock trips at %s s (%s): %s", end_s, "cut" if cut else "ramp down", reason)
        raise Trip(reason, cut=cut)


RENAMED_LIMITS = {
    "over_level_margin": "over_level_fraction",
    "open_loop_level": "open_loop_level_fraction",
    "max_drive_rise": "max_drive_rise_ratio",
    "max_response_rise": "max_response_rise_ratio",
    "calibration_mismatch": "calibration_mismatch_fraction",
}
"""Limits whose names gained the suffix of what they are (a share, a ratio): a profile that still
uses the old name is refused, naming the new one (a profile is never read in part)."""


def load_profile(path) -> SafetyLimits:
    """The default limits tightened by a platform profile: a TOML file with a [safety] table (other
    tables are left to others), each limit a number >= 0 (`livctl.records.tomlfields`)."""
    from livctl.records.tomlfields import Field, open_toml

    root, _ = open_toml(path, "safety profile")
    table = root.raw("safety")
    if not isinstance(table, dict):
        raise root.fail("no [safety] table; give the limits to tighten in one")
    for old, new in RENAMED_LIMITS.items():
        if old in table:
            raise root.fail(f"safety.{old} is now called safety.{new} (the same limit); rename it in the file")
    values = root.table("safety").fields(tuple(Field(name, "number", low=0.0) for name in _SMALLER_IS_SAFER))
    try:
        return SafetyLimits().tightened(**values)
    except UsageError as exc:
        raise root.fail(str(exc)) from None
