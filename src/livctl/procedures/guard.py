"""The motion guard: the one way livctl moves a platform.

Sessions, calibrations, `livctl tone` and any script that drives a platform do it through a
`MotionGuard`; nothing else commands a drive. The guard holds, in one place:

- **The drive ceiling.** `Platform.set_drive` clamps every command to the platform's ceiling; the
  guard lowers that ceiling to the calibration's largest safe drive (`ceiling`) before anything
  moves, and the device is told and enforces it too (protocol 1.1 boards, the simulator, the audio
  callback). A ceiling only ever comes down.
- **The first drive.** Until the platform has shown how it responds, no drive goes above
  `first_drive`: half the cap even if the platform answered 1000 times more strongly than its
  calibration says (without one: than the simulator's default platform at its most responsive,
  20 g per full drive). From there a drive
  rises to at most `MAX_STEP_RATIO` times the largest level measured steady, and never to a level
  whose true peak, predicted from the latest steady response taken 3 standard errors high, would
  pass 95 % of the cap (`allowed_drive`).
- **The cap, on the signal.** Every block of samples (0.1 s at most) is fitted at the drive
  frequency with its harmonics (`livctl.dsp.blockfit`): a true peak of the vertical motion (all
  harmonics, gravity removed) over the cap cuts the drive at once. The device's own trip is armed
  `TRIP_MARGIN_G` above the cap, so a device that over-drives is cut by itself within two cycles
  even if the host has stopped reading.
- **Stopping.** A stop request (`StopSignal.request`: Ctrl-C, SIGTERM, a closed live window, a
  script) is honoured before the next block is read, so the ramp-down starts within one block;
  a second one (`request_cut`) cuts the drive at once. Every way out of the guard (done, stop,
  trip, platform failure, a bug) ramps the drive down while still checking the cap, or cuts it
  when the platform is over-driven, and ends with the drive cut: `with MotionGuard(...) as guard`
  leaves the platform stopped, whatever happens inside.

- **The sensor's truth.** Every block also goes to a `livctl.procedures.sensorwatch.SensorWatch` (`watch`):
  the platform's clock against this computer's, no replayed samples, a response whose phase
  follows the drive, a second accelerometer that agrees with the first, a load cell that reads the
  same load. A sensor that cannot be believed stops the procedure (`SensorUntrusted`, a ramp-down);
  with two accelerometers the cap is checked on the higher of the two.

The guard knows nothing of prescriptions, windows or logs: a session's own interlocks (over-level,
stale sensor, frequency...) judge the blocks the guard hands over.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass

import numpy as np

from livctl.platforms import Platform, SampleBlock
from livctl.dsp.blockfit import BlockFit, fit_block
from livctl.errors import DeviceTripped, DriveRequestError, PlatformError
from livctl.procedures.safety import DEFAULT_ACCEL_CAP_G, Trip
from livctl.procedures.sensorwatch import SensorWatch
from livctl.procedures.stopping import StopSignal
from livctl.units import g_to_mps2, mps2_to_g

_log = logging.getLogger(__name__)

MAX_BLOCK_S = 0.1
"""The longest block of samples the guard reads at once: the cap is checked, and a stop honoured,
at least this often."""
REFERENCE_GAIN_G_PER_DRIVE = 20.0
"""Peak g per unit of drive assumed, for its first drive, of a platform without a calibration: the
simulator's default platform answers at most 16.8 (empty, at its 49 Hz resonance; 1.5 with 70 kg
at 30 Hz), rounded up."""
FIRST_DRIVE_GAIN_FACTOR = 1000.0
"""The first drive is safe even for a platform this many times stronger than its reference."""
FIRST_DRIVE_CAP_SHARE = 0.5
"""...and reaches at most this share of the cap at that strength."""
MAX_STEP_RATIO = 4.0
"""A drive rises to at most this many times the largest level measured steady."""
PREDICTION_SIGMAS = 3.0
"""A response is taken this many standard errors high before predicting the next level's acceleration."""
PREDICTION_CAP_SHARE = 0.95
"""No drive is allowed whose predicted true peak passes this share of the cap."""
TRIP_MARGIN_G = 0.15
"""The device's own trip is armed this far above the cap: six times the vertical noise of an ADXL345
(24 mg RMS), so noise never trips it, while the host's fitted cap check acts below it."""


class StopRequested(Exception):
    """A stop was asked for: wind down (`cut` True: the drive was already cut at once)."""

    def __init__(self, reason: str, *, cut: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.cut = cut


class DriveCut(Exception):
    """During a ramp-down the drive had to be cut at once (over the cap, a second stop, a device trip)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class GuardedBlock:
    """One block read through the guard (at most `MAX_BLOCK_S`)."""

    block: SampleBlock | None
    """The samples (m/s^2, x y z); None on a platform without a sensor."""
    fit: BlockFit | None
    """The vertical axis fitted at the drive frequency (None when the samples cannot be trusted)."""
    problem: str | None
    """Why the samples cannot be trusted (absent, not finite, clipped, frozen), or None."""
    drive: float
    """The drive commanded while the block was read (fraction of full scale, peak)."""
    steady_from_s: float
    """Sample time from which the last drive command had finished ramping."""
    axis: int
    second_fit: BlockFit | None = None
    """The second accelerometer's vertical axis, fitted likewise (None without one, or unusable)."""
    second_problem: str | None = None
    """Why the second accelerometer's samples cannot be trusted, or None."""

    @property
    def end_s(self) -> float:
        return self.block.t0_s + self.block.duration_s if self.block is not None else math.nan

    @property
    def steady(self) -> bool:
        """True when the drive held one level over the whole block."""
        return self.block is not None and self.block.t0_s >= self.steady_from_s - 1e-12

    def settled_fit(self) -> BlockFit | None:
        """The fit of the part of the block after the last ramp (None when too little is left)."""
        if self.fit is None or self.steady:
            return self.fit
        b = self.block
        skip = int(math.ceil((self.steady_from_s - b.t0_s) * b.rate_hz))
        if b.n - skip < b.n // 2:
            return None
        return fit_block(b.accel_mps2[skip:, self.axis], b.rate_hz, self.fit.frequency_hz, b.t0_s + skip / b.rate_hz)


class MotionGuard:
    """Every drive of one procedure (a session, a calibration, a tone) goes through this guard.

    Use it as a context manager: inside, `set_frequency`, `drive` and `read` (blocks of at most
    0.1 s); on the way out the platform is ramped down (or cut) and left stopped.
    """

    def __init__(
        self,
        platform: Platform,
        *,
        accel_cap_g: float = DEFAULT_ACCEL_CAP_G,
        ceiling: float | None = None,
        reference_gain_mps2_per_drive: float | None = None,
        stop: "StopSignal | threading.Event | None" = None,
        ramp_s: float = 0.5,
        block_s: float = MAX_BLOCK_S,
    ):
        if not (math.isfinite(accel_cap_g) and 0 < accel_cap_g <= DEFAULT_ACCEL_CAP_G):
            raise ValueError(f"the cap must be above 0 and at most {DEFAULT_ACCEL_CAP_G:g} g, not {accel_cap_g!r}")
        if not 0 < block_s <= MAX_BLOCK_S:
            raise ValueError(f"guard blocks are at most {MAX_BLOCK_S:g} s, not {block_s!r}")
        self.platform = platform
        self.accel_cap_g = accel_cap_g
        self.cap_mps2 = g_to_mps2(accel_cap_g)
        self.ceiling = ceiling
        reference = reference_gain_mps2_per_drive or g_to_mps2(REFERENCE_GAIN_G_PER_DRIVE)
        self.first_drive = FIRST_DRIVE_CAP_SHARE * self.cap_mps2 / (FIRST_DRIVE_GAIN_FACTOR * reference)
        """The largest drive before the platform's response has been measured."""
        self.stop = stop if stop is not None else StopSignal()
        self.ramp_s = ramp_s
        self.block_s = block_s
        self.axis = "xyz".index(platform.vertical_axis)
        self.frequency_hz = 30.0
        self.drive_level = 0.0
        """The level of the last drive command (after every clamp)."""
        self.proven_drive = self.first_drive / MAX_STEP_RATIO
        """The largest level measured steady (so far)."""
        self.gain_high_mps2_per_drive: float | None = None
        """The latest steady true peak, 3 standard errors high, per unit drive (m/s^2)."""
        self.rest_fit: BlockFit | None = None
        """The latest block at rest (drive 0, not ramping): gravity and the noise floor."""
        self.device_trip = False
        """True when the device cuts its own output over the cap (`Platform.arm_trip`)."""
        self.cut_reason: str | None = None
        """Why the drive was cut at once, if it was."""
        self.winding_down = False
        self.finished = False
        self.ever_driven = False
        """True once any drive above zero was commanded: a platform never driven needs no ramp-down."""
        self._read_to_s = 0.0
        self._steady_from_s = 0.0
        self.watch = SensorWatch(platform.sensor_rate_hz if platform.has_sensor else 1.0,
                                 sensors=platform.sensor_count if platform.has_sensor else 1)
        """The checks that the sensor sees this platform (livctl.procedures.sensorwatch)."""

    # -- entering and leaving -------------------------------------------------------------------

    def __enter__(self) -> "MotionGuard":
        if self.ceiling is not None:
            self.platform.limit_drive(self.ceiling)
        if self.platform.has_sensor:
            self.device_trip = self.platform.arm_trip(g_to_mps2(self.accel_cap_g + TRIP_MARGIN_G))
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.finished:
            return
        over_driven = isinstance(exc, (Trip, DriveCut, DeviceTripped)) and getattr(exc, "cut", True)
        if over_driven or self.cut_reason is not None or getattr(self.stop, "cut_requested", False):
            self.finish()
        else:
            self.wind_down()

    # -- the drive ------------------------------------------------------------------------------

    def allowed_drive(self) -> float:
        """The highest drive the guard lets through now (fraction of full scale, peak)."""
        ceiling = self.platform.max_drive
        if not self.platform.has_sensor:
            return ceiling  # nothing to measure: the calibrated ceiling is all there is
        allowed = min(ceiling, MAX_STEP_RATIO * self.proven_drive)
        if self.gain_high_mps2_per_drive:
            allowed = min(allowed, PREDICTION_CAP_SHARE * self.cap_mps2 / self.gain_high_mps2_per_drive)
        return max(0.0, allowed)

    def set_frequency(self, frequency_hz: float) -> None:
        self.platform.set_frequency(frequency_hz)
        if frequency_hz != self.frequency_hz:
            self.watch.phase.reset()  # the response's phase is followed at one frequency
        self.frequency_hz = frequency_hz

    def drive(self, level: float, ramp_s: float) -> float:
        """Move the drive towards `level` over `ramp_s`, no higher than `allowed_drive()`; returns
        the level commanded. Refused (ValueError) while winding down or after a cut."""
        if self.winding_down or self.cut_reason is not None or self.finished:
            raise ValueError("the guard is winding down: no new drive")
        if isinstance(level, (int, float)) and math.isfinite(level) and level > 0:
            level = min(level, self.allowed_drive())
        try:
            commanded = self.platform.set_drive(level, ramp_s)  # refuses nonsense (and cuts), clamps
        except DriveRequestError as exc:
            self.cut_reason = str(exc)
            self.drive_level = 0.0
            raise
        self._commanded(commanded, ramp_s)
        if commanded > 0:
            self.ever_driven = True
        return commanded

    def _commanded(self, level: float, ramp_s: float) -> None:
        if level == self.drive_level:
            return  # the same level again: nothing changes, a steady drive stays steady
        self.drive_level = level
        # in the blocks' time base: a command takes effect where the reader is
        self._steady_from_s = self._read_to_s + ramp_s

    def cut(self, reason: str) -> None:
        """Zero the drive at once and remember why (once: after a cut the guard commands nothing)."""
        if self.cut_reason is not None:
            return
        _log.debug("drive cut: %s", reason)
        self.cut_reason = reason
        self.drive_level = 0.0
        try:
            self.platform.cut_drive()
        except PlatformError:
            pass  # the link is gone: the board's own watchdog stops it

    # -- reading --------------------------------------------------------------------------------

    def prefetch(self, duration_s: float) -> None:
        self.platform.prefetch(duration_s)

    def read(self, duration_s: float) -> GuardedBlock:
        """The next block of samples (at most `block_s`), after the stop check, with the cap and the
        sensor's truth checked.

        Raises `StopRequested` when a stop was asked for before the block, `Trip` (cut) when the
        block is over the cap or the device tripped, `SensorUntrusted` (or a `Trip`: the load
        changed) when the sensor cannot be believed; while winding down, only the cap is checked
        (`DriveCut`)."""
        if duration_s > self.block_s + 1e-9:
            raise ValueError(f"guard blocks are at most {self.block_s:g} s, not {duration_s:g}")
        self._check_stop()
        try:
            if not self.platform.has_sensor:
                t0_s = self.platform.wait(duration_s)
                self._read_to_s = t0_s + duration_s
                return GuardedBlock(None, None, None, self.drive_level, self._steady_from_s, self.axis)
            block = self.platform.read(duration_s)
        except DeviceTripped as exc:
            self._over(str(exc))
        host_s = self.platform.clock.now()
        self._read_to_s = block.t0_s + duration_s
        problem = invalid_samples(block, self.axis, self.platform.sensor_range_mps2)
        if problem is None:  # a block that came whole: when it arrived says how the platform's clock runs
            arrived_s = block.arrived_s if block.arrived_s is not None else host_s
            self.watch.on_arrival(block.t0_s + block.duration_s, arrived_s, self.platform.stream_breaks)
        fit = second_fit = second_problem = None
        if problem is None:
            fit = fit_block(block.accel_mps2[:, self.axis], block.rate_hz, self.frequency_hz, block.t0_s)
        if block.second_mps2 is not None:
            second = SampleBlock(block.t0_s, block.rate_hz, block.second_mps2)
            second_problem = invalid_samples(second, self.axis, self.platform.sensor_range_mps2)
            if second_problem is None:
                second_fit = fit_block(block.second_mps2[:, self.axis], block.rate_hz, self.frequency_hz, block.t0_s)
        guarded = GuardedBlock(block, fit, problem, self.drive_level, self._steady_from_s, self.axis,
                               second_fit, second_problem)
        peaks = [f.true_peak_mps2 for f in (fit, second_fit) if f is not None]
        if peaks and max(peaks) > self.cap_mps2:
            second_higher = fit is None or (second_fit is not None and second_fit.true_peak_mps2 > fit.true_peak_mps2)
            which = " (the second accelerometer)" if second_higher else ""
            self._over(
                f"measured {mps2_to_g(max(peaks)):.2f} g peak{which} (fundamental and harmonics) above the "
                f"{self.accel_cap_g:g} g safety cap"
            )
        if fit is not None:
            self._learn(guarded, fit, second_fit)
        if not self.winding_down:
            self.watch.check(block, fit, problem, second_fit, second_problem,
                             drive=self.drive_level, steady=guarded.steady)
        return guarded

    def read_span(self, duration_s: float, observe=None) -> SampleBlock:
        """Read `duration_s` in guarded blocks and join them (for procedures that measure whole
        windows); `observe(guarded_block)` sees each block."""
        self.prefetch(duration_s)
        parts: list[np.ndarray] = []
        t0_s: float | None = None
        rate_hz = self.platform.sensor_rate_hz
        for length in self.blocks(duration_s):
            guarded = self.read(length)
            if observe is not None:
                observe(guarded)
            if guarded.block is not None:
                if t0_s is None:
                    t0_s = guarded.block.t0_s
                parts.append(guarded.block.accel_mps2)
                rate_hz = guarded.block.rate_hz
        samples = np.concatenate(parts) if parts else np.empty((0, 3))
        return SampleBlock(t0_s=t0_s or 0.0, rate_hz=rate_hz, accel_mps2=samples)

    def blocks(self, duration_s: float) -> list[float]:
        """`duration_s` cut into equal blocks of at most `block_s`."""
        count = max(1, math.ceil(duration_s / self.block_s - 1e-9))
        return [duration_s / count] * count

    def _check_stop(self) -> None:
        stop = self.stop
        cut_reason = getattr(stop, "cut_reason", None)  # a plain threading.Event asks for a ramp-down only
        if cut_reason is not None and self.cut_reason is None:
            self.cut(f"{cut_reason}: drive cut at once")
            if self.winding_down:
                raise DriveCut(self.cut_reason)
            raise StopRequested(getattr(stop, "reason", None) or cut_reason, cut=True)
        if stop.is_set() and not self.winding_down:
            raise StopRequested(getattr(stop, "reason", None) or "stop requested")

    def _over(self, reason: str) -> None:
        """Over the cap (or the device tripped): cut at once and say so."""
        self.cut(reason)
        if self.winding_down:
            raise DriveCut(reason)
        raise Trip(reason, cut=True)

    def _learn(self, guarded: GuardedBlock, fit: BlockFit, second_fit: BlockFit | None = None) -> None:
        """What a steady block says of the platform: its response (the higher of two sensors'), or its rest."""
        if not guarded.steady:
            return
        if guarded.drive == 0.0:
            self.rest_fit = fit
        else:
            self.proven_drive = max(self.proven_drive, guarded.drive)
            high = max(f.true_peak_mps2 + PREDICTION_SIGMAS * f.fundamental_se_mps2
                       for f in (fit, second_fit) if f is not None)
            self.gain_high_mps2_per_drive = high / guarded.drive

    # -- winding down ---------------------------------------------------------------------------

    def begin_wind_down(self, ramp_s: float | None = None) -> None:
        """Start the ramp to zero (the caller keeps reading blocks, which the guard still checks)."""
        self.winding_down = True
        if self.cut_reason is None and not self.finished:
            _log.debug("ramping down from drive %.5f", self.drive_level)
            ramp = self.ramp_s if ramp_s is None else ramp_s
            try:
                self.platform.set_drive(0.0, ramp)
                self._commanded(0.0, ramp)
            except PlatformError:
                self.cut("the platform failed while ramping down")

    def wind_down(self, ramp_s: float | None = None) -> str | None:
        """Ramp to zero reading as it goes (the cap still checked), then cut. Returns why the ramp
        was cut short, or None."""
        if not self.ever_driven:  # nothing ever moved: nothing to ramp down
            self.finish()
            return None
        ramp = self.ramp_s if ramp_s is None else ramp_s
        self.begin_wind_down(ramp)
        short: str | None = None
        try:
            done_s = 0.0
            while self.cut_reason is None and ramp - done_s > 1e-9:
                length = min(self.block_s, ramp - done_s)
                self.read(length)
                done_s += length
        except DriveCut as exc:
            short = exc.reason
        except PlatformError as exc:
            short = f"ramp-down incomplete: {exc}"
        except KeyboardInterrupt:
            short = "ramp-down cut short"
        finally:
            self.finish()
        return short

    def finish(self) -> None:
        """Cut the drive (the end of every ramp-down): the platform is left stopped."""
        self.winding_down = True
        self.drive_level = 0.0
        if not self.finished:
            self.finished = True
            if self.cut_reason is not None:
                return  # cut already, and nothing commanded since
            try:
                self.platform.cut_drive()
            except PlatformError:
                pass  # the link is gone: the board's own watchdog stops it


def invalid_samples(block: SampleBlock, axis: int, sensor_range_mps2: float) -> str | None:
    """Why a block's samples cannot be trusted (absent, not finite, at the sensor's rail, frozen), or None."""
    x = block.accel_mps2
    if x.shape[0] == 0:
        return "absent"
    if not math.isfinite(float(x.sum())):  # NaN and infinities propagate through the sum
        return "not finite (corrupted)"
    vertical = x[:, axis]
    low, high = float(vertical.min()), float(vertical.max())
    if max(-low, high) >= sensor_range_mps2 * (1 - 1e-9):
        return "at the sensor's range limit (clipped or corrupted)"
    if vertical.shape[0] > 1 and low == high:
        return "frozen (the sensor has stalled)"
    return None
