"""The simulated platform: signal generator, amplifier, plate and accelerometer in one object.

It behaves as a controller board's firmware would: the host sets a frequency and a drive level
(fraction of full scale, with a ramp time), the board synthesises the sine itself, and the
accelerometer produces samples at its output rate. Time only moves when `advance(n)` is called,
so the same model runs in virtual time (tests, accelerated sessions) or in real time (behind a
serial port). Everything random comes from one seeded generator: the same seed and the same
commands give the same samples, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from firmware_sim.plant import Plant, PlantParams
from firmware_sim.sensor import SENSORS, Accelerometer, SensorParams
from livctl.waveform import SineSynth


@dataclass(frozen=True)
class SimConfig:
    seed: int = 0
    plant: PlantParams = field(default_factory=PlantParams)
    sensor: SensorParams = field(default_factory=lambda: SENSORS["adxl345"])


class SimulatedPlatform:
    def __init__(self, config: SimConfig | None = None):
        self.config = config or SimConfig()
        self._rng = np.random.default_rng(self.config.seed)
        self.sensor = Accelerometer(self.config.sensor, self._rng)
        self.rate_hz = self.sensor.rate_hz
        self.plant = Plant(self.rate_hz, self.config.plant)
        self.synth = SineSynth(self.rate_hz, frequency_hz=30.0)
        self.samples_done = 0

    @property
    def t_s(self) -> float:
        """Time of the next sample, seconds since power-up."""
        return self.samples_done / self.rate_hz

    # -- commands, as a controller board takes them --------------------------------------

    def set_frequency(self, frequency_hz: float) -> None:
        self.synth.set_frequency(frequency_hz)

    def set_drive(self, level: float, ramp_s: float) -> None:
        """Move the drive to `level` (fraction of full scale, peak) over `ramp_s` seconds."""
        self.synth.set_amplitude(min(max(level, 0.0), 1.0), ramp_s)

    def cut(self) -> None:
        self.synth.cut()

    @property
    def drive_level(self) -> float:
        return self.synth.amplitude

    # -- time -----------------------------------------------------------------------------

    def advance(self, n: int) -> np.ndarray:
        """Run `n` sensor samples; return the accelerometer's readings, shape (n, 3), in m/s^2."""
        drive = self.synth.render(n)
        vertical = self.plant.step(drive)
        self.samples_done += n
        return self.sensor.read(vertical)

    # -- ground truth, for tests and calibration checks -----------------------------------

    def true_peak_mps2(self, frequency_hz: float, drive_level: float) -> float:
        """The fundamental's peak acceleration the sensor reports for a steady drive."""
        return self.plant.fundamental_peak_mps2(frequency_hz, drive_level) * self.sensor.params.sensitivity
