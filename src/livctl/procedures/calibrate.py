"""Running a calibration (`Calibrator`), and its sweep's raw signal kept beside the calibration
file as `livctl calibrate` and `livctl.calibrate` keep it.

1. **Sensor check at rest** (drive cut): the mean of each axis (gravity, about +1 g on the
   vertical axis) and the noise floor. A sensor that reads nothing, only noise, or gravity on the
   wrong axis stops the calibration before anything moves.
2. **At each frequency point** (the working frequency, optionally a few around it): the sweep
   (`livctl.procedures.sweep.FrequencySweep`): a probe from the motion guard's first drive
   (livctl.procedures.guard: safe even for a platform 1000 times stronger than expected), then a
   sweep of drive levels up to the top acceleration (default 0.8 g peak), every step checked.
   Every drive goes through the guard: its cap check on every 0.1 s block, its stop within one
   block, its ramp-down on every way out.
3. **The fit** of each frequency's steps (`livctl.records.calibration.fit_response`, with what a
   calibration holds and its file).

The raw signal: `sweep_archive` before the sweep, then `keep_sweep` (sealed and named after the
calibration) or `discard_sweep` (a calibration that wrote nothing keeps nothing).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from livctl import __version__
from livctl.clock import utc_now
from livctl.errors import LivctlError
from livctl.events import Reporter
from livctl.platforms import Platform, SampleBlock
from livctl.procedures.stopping import StopSignal
from livctl.procedures.sweep import FREQUENCY_TOLERANCE_HZ, CalibrationFailed, FrequencySweep, SweepSettings
from livctl.records.calibration import Calibration, CalibrationError, FrequencyPoint, SensorCheck
from livctl.units import g_to_mps2

if TYPE_CHECKING:
    from livctl.records.archive import RawArchive

__all__ = [
    "Calibrator", "SweepSettings", "CalibrationFailed", "CalibrationInterrupted", "FREQUENCY_TOLERANCE_HZ",
    "sweep_archive", "keep_sweep", "discard_sweep",
]

MAX_REST_NOISE_G = 0.1
"""RMS noise at rest above this is a sensor that reads only noise."""


class CalibrationInterrupted(LivctlError):
    """Stopped on request (Ctrl-C, SIGTERM, the live view closed): ramped down, nothing written."""

    exit_code = 130


@dataclass
class Calibrator:
    """Calibrate one platform: `run()` returns the `Calibration` (not yet saved) or raises.

    Every way out (done, failed check, stop request, platform failure, a bug) ramps the drive to
    zero and cuts it; a measured acceleration over the cap cuts it at once.
    """

    platform: Platform
    settings: SweepSettings = field(default_factory=SweepSettings)
    operator: str | None = None
    load_kg: float | None = None
    sensor_model: str | None = None
    stop: StopSignal = field(default_factory=StopSignal)
    observer: Any = None
    """A `livctl.events.Observer` (any of its methods): status lines, every block read, each measured
    step (`CalibrationStep`), the sweep's frequency as it changes (`Phase.SWEEP`)."""
    raw_signal: Any = None
    """A `livctl.records.archive.RawArchive` that keeps the sweep's raw signal (every block and command),
    or None."""

    def __post_init__(self) -> None:
        self.settings.validate(self.platform.max_drive)
        if self.load_kg is not None and not (math.isfinite(self.load_kg) and self.load_kg >= 0):
            raise CalibrationError(f"the load must be a number of kg >= 0, not {self.load_kg}")
        self._report = Reporter(self.observer)

    @property
    def cap_mps2(self) -> float:
        return g_to_mps2(self.settings.accel_cap_g)

    def run(self) -> Calibration:
        from livctl.procedures.guard import MotionGuard, StopRequested
        from livctl.procedures.safety import Trip
        from livctl.procedures.sensorwatch import SensorUntrusted

        self._report = Reporter(self.observer)  # the observer given now (it may have been set after construction)
        platform = self.platform if self.raw_signal is None else self.raw_signal.watch(self.platform)
        self.guard = MotionGuard(platform, accel_cap_g=self.settings.accel_cap_g, stop=self.stop,
                                 ramp_s=self.settings.ramp_s)
        with self.guard:
            try:
                sensor = self._sensor_check()
                points = tuple(self._sweep_at(f) for f in self.settings.frequencies_hz)
            except StopRequested as exc:
                raise CalibrationInterrupted(
                    f"calibration stopped ({exc.reason}); the platform was "
                    f"{'cut' if exc.cut else 'ramped down'} and nothing was written"
                ) from None
            except SensorUntrusted as exc:
                raise CalibrationFailed("sensor", f"sensor check: {exc.reason}") from None
            except Trip as trip:
                if not trip.cut:  # a load that changed, a response that jumped: ramped down
                    raise CalibrationFailed("sensor", trip.reason) from None
                raise CalibrationFailed("cap", f"{trip.reason}: drive cut") from None
            except CalibrationFailed as exc:
                if exc.kind == "cap":
                    self.guard.cut(str(exc))  # over the cap: no ramp from there
                raise
        date = utc_now().replace(microsecond=0)
        return Calibration(
            calibration_id=f"{self.platform.platform_id}-{date:%Y%m%dT%H%M%SZ}",
            platform_id=self.platform.platform_id,
            device=self.platform.url,
            simulated=self.platform.simulated,
            date_utc=date,
            operator=self.operator,
            livctl_version=__version__,
            working_frequency_hz=self.settings.frequency_hz,
            load_kg=self.load_kg,
            accel_cap_g=self.settings.accel_cap_g,
            platform_max_drive=self.platform.max_drive,
            max_thd_percent=self.settings.max_thd_percent,
            sensor=sensor,
            points=points,
        )

    # -- at rest ------------------------------------------------------------------------------

    def _sensor_check(self) -> SensorCheck:
        """The sensor read at rest (drive cut) for `rest_s`, judged by `sensor_at_rest`, then reported."""
        check = sensor_at_rest(self._read(self.settings.rest_s), self.platform, self.sensor_model)
        self._report.status(
            f"sensor at rest: gravity {check.vertical_gravity_g:+.3f} g on {check.vertical_axis}, noise "
            f"{1000 * check.vertical_noise_rms_g:.1f} mg RMS ({1e6 * check.noise_density_g_per_rthz:.0f} ug/sqrt(Hz))"
        )
        return check

    # -- each frequency and the platform --------------------------------------------------------

    def _sweep_at(self, frequency_hz: float) -> FrequencyPoint:
        """The sweep at one frequency point, through this calibration's guard and observer."""
        return FrequencySweep(frequency_hz, self.settings, self.platform, self.guard, self._report, self._read).run()

    def _read(self, duration_s: float) -> SampleBlock:
        return self.guard.read_span(
            duration_s, observe=lambda g: self._report.block(g.block) if g.block else None
        )


def sensor_at_rest(block: SampleBlock, platform: Platform, sensor_model: str | None = None) -> SensorCheck:
    """What the sensor read at rest (`block`, drive cut) says of it: each axis's mean (gravity) and
    RMS noise; `CalibrationFailed` ("sensor") for a sensor that delivers nothing, numbers that are
    not, a constant, only noise (over MAX_REST_NOISE_G RMS on the vertical axis) or, DC-coupled
    (`gravity_on_vertical`), gravity that is not 1 g on the vertical axis
    (livctl.procedures.sensorwatch.check_at_rest, as every procedure checks it: a calibration with a
    mis-scaled or mis-mounted sensor is no calibration)."""
    from livctl.procedures.sensorwatch import check_at_rest

    accel = np.asarray(block.accel_mps2, dtype=float)
    if accel.shape[0] < 2:
        raise CalibrationFailed("sensor", "the sensor delivers no samples; check its cable and power")
    if not np.all(np.isfinite(accel)):
        raise CalibrationFailed("sensor", "the sensor returns values that are not numbers; check its connection")
    mean_g = accel.mean(axis=0) / g_to_mps2(1.0)
    noise_g = accel.std(axis=0) / g_to_mps2(1.0)
    axis = "xyz".index(platform.vertical_axis)
    check = SensorCheck(
        rate_hz=block.rate_hz,
        vertical_axis=platform.vertical_axis,
        gravity_g=tuple(float(v) for v in mean_g),  # type: ignore[arg-type]
        noise_rms_g=tuple(float(v) for v in noise_g),  # type: ignore[arg-type]
        model=sensor_model,
    )
    constant = not np.any(np.ptp(accel, axis=0) > 0)
    if constant and not np.any(accel[0] != 0):
        raise CalibrationFailed("sensor", "the sensor reads nothing (every sample is 0); check its cable and power")
    if constant:
        raise CalibrationFailed(
            "sensor", f"the sensor reads a constant ({mean_g[axis]:+.3f} g on {platform.vertical_axis}): it is stalled"
        )
    if noise_g[axis] > MAX_REST_NOISE_G:
        raise CalibrationFailed(
            "sensor",
            f"the sensor reads only noise ({1000 * noise_g[axis]:.0f} mg RMS at rest on {platform.vertical_axis}, "
            f"gravity {np.linalg.norm(mean_g):.2f} g); check its cable, grounding and mounting",
        )
    if platform.gravity_on_vertical:  # an AC-coupled input (a sound card's) carries no gravity to check
        problem = check_at_rest(mean_g, platform.vertical_axis)
        if problem:
            raise CalibrationFailed("sensor", problem)
    return check


# -- the sweep's raw signal -------------------------------------------------------------------


def sweep_archive(platform: "Platform", target: Path, settings: "SweepSettings", *, operator: str | None,
                  load_kg: float | None, sensor: str | None) -> "RawArchive":
    """The sweep's raw signal, beside the calibration file `target` (<platform-id>.toml.archive/),
    under a name of its own until the calibration has its id."""
    from livctl.clock import utc_now
    from livctl.records.archive import RawArchive, prepare_dir

    folder = prepare_dir(target)
    metadata: dict[str, Any] = {f"sweep_{k}": v for k, v in dataclasses.asdict(settings).items()
                                if isinstance(v, (int, float, str))}
    metadata.update(operator=operator, load_kg=load_kg, sensor=sensor)
    return RawArchive.for_platform(folder / f"{platform.platform_id}-sweep-{utc_now():%Y%m%dT%H%M%S%fZ}.h5", platform,
                                   kind="calibration", metadata=metadata)


def discard_sweep(archive: "RawArchive") -> None:
    """A calibration that wrote nothing keeps no raw signal either (nor an empty folder for it)."""
    archive.discard()
    try:
        archive.path.parent.rmdir()
    except OSError:
        pass  # other calibrations' signals are there


def keep_sweep(cal: "Calibration", archive: "RawArchive", target: Path) -> tuple["Calibration", tuple[str, ...]]:
    """The calibration with its sweep's raw signal sealed and named after it, and the warnings a
    person should read (a signal that could not be kept, or only in part)."""
    seal = archive.close(target.parent, status="completed", rename_to=f"{cal.calibration_id}.h5",
                         calibration_id=cal.calibration_id, id=cal.calibration_id)
    if seal is None:
        return cal, (f"the sweep's raw signal could not be kept: {archive.failure}",)
    warnings = () if seal.complete else (f"the sweep's raw signal is incomplete: {seal.note}",)
    return dataclasses.replace(cal, raw_signal={"file": seal.file, "sha256": seal.sha256, "samples": seal.samples,
                                                "complete": seal.complete}), warnings
