"""A test tone: a sine at one level for a fixed time, for wiring and amplifier checks.

The tone moves the platform like any procedure: through a `MotionGuard`, under the platform's
calibration (a real platform without one is refused before anything moves), its level capped by
the calibration's largest safe drive and, on a platform that cannot measure itself, by the cap on
its calibrated open-loop gain. With an accelerometer the level is reached in steps of at most 4x,
each proven safe on the measured response, and every `STEP_S` is measured; an acceleration over the
cap cuts the drive at once. A stop ramps down (a second stop cuts).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from livctl.errors import UsageError
from livctl.events import Phase, Reporter
from livctl.prescription import TONE_MAX_FREQUENCY_HZ, TONE_MIN_FREQUENCY_HZ

if TYPE_CHECKING:
    from livctl.platforms import Platform
    from livctl.procedures.guard import MotionGuard
    from livctl.procedures.stopping import StopSignal

__all__ = ["play_tone", "ToneResult", "MAX_DURATION_S"]

MAX_DURATION_S = 300.0
"""A tone always ends: a wiring check longer than five minutes is a mistake."""
STEP_S = 0.5
"""The tone is measured (when the platform has a sensor) and the stop request checked this often."""
APPROACH_RAMP_S = 0.2
"""Each step towards the level ramps this long: smooth enough not to ring the plate."""


@dataclass(frozen=True)
class ToneResult:
    """What a tone played and measured, and why it stopped early if it did."""

    device: str
    platform_id: str
    frequency_hz: float
    level: float
    """The level played to: the requested one, capped by the platform's ceiling (fraction of full scale, peak)."""
    reached_level: float
    requested_level: float
    calibration_id: str | None
    played_s: float
    interrupted: bool
    measured: dict | None
    """The last measurement (frequency_hz, peak_g, rms_g, thd_percent, snr_db), or None."""
    stream_health: dict
    stopped: str | None
    """Why the tone was stopped by a check (a sensor, an interlock, the cap), or None."""
    ramped_down: bool
    """Whether the stop ramped the drive down (False: cut at once, over-driving)."""

    def to_dict(self) -> dict:
        """The summary `livctl tone --json` prints (how the stop went is in `stopped`)."""
        summary = dataclasses.asdict(self)
        del summary["ramped_down"]
        return summary


def play_tone(
    platform: "Platform",
    frequency_hz: float,
    level: float,
    duration_s: float,
    *,
    ramp_s: float = 0.5,
    calibration_dir: str | os.PathLike[str] | None = None,
    stop: "StopSignal | None" = None,
    observer: Any = None,
) -> ToneResult:
    """Play `frequency_hz` at `level` (fraction of full scale, peak) for `duration_s`, ramps
    included, on an open platform. `observer` (a `livctl.events.Observer`) gets status lines
    (warnings start with "warning: ") and every block read. A refusal (bad values, a real
    platform without a calibration) raises `UsageError` before anything moves."""
    from livctl.procedures.guard import MotionGuard, StopRequested
    from livctl.procedures.prepare import motion_calibration
    from livctl.procedures.safety import DEFAULT_ACCEL_CAP_G, Trip, drive_ceiling
    from livctl.procedures.sensorwatch import SensorUntrusted
    from livctl.procedures.stopping import StopSignal

    _check(frequency_hz, level, duration_s, ramp_s)
    stop = stop if stop is not None else StopSignal()
    report = Reporter(observer)
    # looked up once open (a serial board's platform id is its identity, known only then); a real
    # platform without a calibration of its own is refused here, before anything moves
    motion = motion_calibration(platform, calibration_dir, frequency_hz=frequency_hz)
    for warning in motion.warnings:
        report.status(f"warning: {warning}")
    guard = MotionGuard(platform, ceiling=motion.drive_ceiling, stop=stop, ramp_s=ramp_s,
                        reference_gain_mps2_per_drive=motion.reference_gain_mps2_per_drive)
    gain = platform.open_loop_gain_mps2_per_drive  # no sensor to check the cap: the calibrated gain caps it
    ceiling = motion.drive_ceiling
    if gain:
        ceiling = min(ceiling, drive_ceiling(gain, DEFAULT_ACCEL_CAP_G, ceiling))
    played = min(level, ceiling)
    if played < level:
        report.status(f"level {level:g} capped at the platform's ceiling, {played:.4g} of full scale")
    report.status(f"playing {frequency_hz:g} Hz at {played:.4g} of full scale for {duration_s:g} s on "
                  f"{platform.description}")
    tone = _Tone(guard, frequency_hz, played, report)
    failure, ramped = None, False
    with guard:
        try:
            tone.play(duration_s - ramp_s, ramp_s)
        except StopRequested:
            pass
        except SensorUntrusted as exc:
            failure, ramped = f"sensor check: {exc.reason}", True
        except Trip as trip:
            failure, ramped = trip.reason, not trip.cut
    return ToneResult(
        device=platform.url, platform_id=platform.platform_id, frequency_hz=frequency_hz, level=played,
        reached_level=tone.reached, requested_level=level, calibration_id=motion.calibration_id,
        played_s=tone.played_s + ramp_s, interrupted=stop.is_set(), measured=tone.measured,
        stream_health=platform.stream_health(), stopped=failure, ramped_down=ramped,
    )


def _check(frequency_hz: float, level: float, duration_s: float, ramp_s: float) -> None:
    """A tone's values, refused in the domain's words before anything moves."""
    if not TONE_MIN_FREQUENCY_HZ <= frequency_hz <= TONE_MAX_FREQUENCY_HZ:
        raise UsageError(f"a tone's frequency must be {TONE_MIN_FREQUENCY_HZ:g}-{TONE_MAX_FREQUENCY_HZ:g} Hz, "
                         f"not {frequency_hz:g}")
    if not 0.0 < level <= 1.0:
        raise UsageError(f"a tone's level must be above 0 and at most 1 (full scale), not {level:g}")
    if not (math.isfinite(ramp_s) and ramp_s > 0):
        raise UsageError(f"a tone's ramp must be a positive number of seconds, not {ramp_s:g}")
    if not 0.0 < duration_s <= MAX_DURATION_S:
        raise UsageError(f"a tone plays above 0 and at most {MAX_DURATION_S:g} s, not {duration_s:g} s")
    if 2 * ramp_s > duration_s:
        raise UsageError(f"a tone of {duration_s:g} s leaves no room for two {ramp_s:g} s ramps")


class _Tone:
    """Plays a tone through the guard: up to the level in steps the guard allows (the platform's
    response proven at each), then held, measured every STEP_S where there is a sensor."""

    def __init__(self, guard: "MotionGuard", frequency_hz: float, level: float, report: Reporter):
        self.guard = guard
        self.frequency_hz = frequency_hz
        self.level = level
        self.report = report
        self.played_s = 0.0
        self.reached = 0.0
        self.measured: dict | None = None

    def play(self, duration_s: float, ramp_s: float) -> None:
        guard = self.guard
        guard.set_frequency(self.frequency_hz)
        self.report.phase(Phase.DELIVER, self.frequency_hz)
        has_sensor = guard.platform.has_sensor
        if has_sensor:
            self._read(2 * guard.block_s)  # at rest first: the noise floor, and a sensor that answers
        while self.played_s < duration_s - 1e-9:
            length = min(STEP_S, duration_s - self.played_s)
            step = min(self.level, guard.allowed_drive())
            if step > self.reached * 1.001:  # the next step up, then long enough steady for the guard
                ramp = ramp_s if self.reached == 0 and step >= self.level else APPROACH_RAMP_S
                self.reached = guard.drive(step, ramp)
                length = min(ramp + 2 * guard.block_s, duration_s - self.played_s)
            block = self._read(length)
            self.played_s += length  # the platform's time moved by `length`, whatever number of samples came
            measured = self._measure(block) if has_sensor else "not measured (no accelerometer input)"
            self.report.status(f"{self.played_s:6.1f} s  {measured}")

    def _read(self, duration_s: float):
        return self.guard.read_span(duration_s, observe=lambda g: self.report.block(g.block) if g.block else None)

    def _measure(self, block) -> str:
        from livctl.dsp.estimator import AnalysisError, measure

        try:
            m = measure(block.accel_mps2, block.rate_hz, axis=self.guard.platform.vertical_axis,
                        search_hz=(0.5 * self.frequency_hz, 1.5 * self.frequency_hz))
        except AnalysisError as exc:
            return f"no measurement: {exc}"
        self.measured = {"frequency_hz": m.frequency_hz, "peak_g": m.peak_g, "rms_g": m.rms_g,
                         "thd_percent": m.thd_percent, "snr_db": m.snr_db}
        return f"{m.frequency_hz:7.2f} Hz  {m.peak_g:6.3f} g peak  THD {m.thd_percent:5.1f} %  drive {self.reached:.4g}"
