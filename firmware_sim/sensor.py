"""A 3-axis MEMS accelerometer bolted to the plate, z axis vertical.

What it reads, per axis, in m/s^2:

    reading = quantise(clip(sensitivity * (M @ (a_plate + gravity)) + noise))

with gravity as +1 g on z (an accelerometer at rest reads the specific force, +1 g upward), a
cross-axis matrix M that leaks a little of the vertical motion into x and y, white noise from the
noise density over the Nyquist band of the output rate, the LSB of the digital output and the
full-scale range. The numbers of the shipped models follow the ADXL345 and ADXL355 datasheets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

G_MPS2 = 9.80665


@dataclass(frozen=True)
class SensorParams:
    name: str
    rate_hz: float
    noise_density_g_per_rthz: tuple[float, float, float]
    lsb_g: float
    range_g: float
    cross_axis: tuple[float, float] = (0.010, 0.006)
    """Share of the vertical acceleration that appears on x and y."""
    sensitivity: float = 1.0
    """Gain of the sensor relative to its datasheet scale (a drifting sensor is not 1.0)."""

    def with_changes(self, **changes) -> "SensorParams":
        return replace(self, **changes)

    @property
    def noise_rms_g(self) -> np.ndarray:
        """Per-axis RMS noise of one sample (white over 0 .. rate/2)."""
        return np.asarray(self.noise_density_g_per_rthz) * math.sqrt(self.rate_hz / 2.0)


SENSORS: dict[str, SensorParams] = {
    # ADXL345, full resolution at +-16 g, 3200 Hz output rate; noise from the datasheet's
    # 0.75 / 1.1 LSB RMS (x,y / z) at 100 Hz output rate.
    "adxl345": SensorParams("ADXL345", 3200.0, (400e-6, 400e-6, 600e-6), 0.0039, 16.0),
    # ADXL355 at +-8 g, 4000 Hz output rate, 20-bit (15.6 ug/LSB), 25 ug/sqrt(Hz).
    "adxl355": SensorParams("ADXL355", 4000.0, (25e-6, 25e-6, 25e-6), 15.6e-6, 8.0),
}


class Accelerometer:
    def __init__(self, params: SensorParams, rng: np.random.Generator):
        self.params = params
        self._rng = rng
        cx, cy = params.cross_axis
        self._coupling = np.array([[1.0, 0.0, cx], [0.0, 1.0, cy], [0.0, 0.0, 1.0]])

    @property
    def rate_hz(self) -> float:
        return self.params.rate_hz

    def gravity_reading(self, ac_coupled: bool = False) -> np.ndarray:
        """What the sensor reads at rest, x y z in m/s^2 (noise aside): gravity through its cross-axis
        coupling and its sensitivity; nothing when the input is AC-coupled."""
        if ac_coupled:
            return np.zeros(3)
        return self._coupling[:, 2] * G_MPS2 * self.params.sensitivity

    def read(
        self,
        vertical_accel_mps2: np.ndarray,
        sensitivity: float | np.ndarray | None = None,
        noise_scale: float = 1.0,
    ) -> np.ndarray:
        """Sensor output (n, 3) in m/s^2 for the plate's vertical acceleration (n,).

        `sensitivity` (a number, or one per sample) overrides the sensor's own, and `noise_scale`
        multiplies its noise: both for simulating faults. The array is column-major: each axis
        is contiguous in memory.
        """
        p = self.params
        n = vertical_accel_mps2.shape[0]
        lsb = p.lsb_g * G_MPS2
        gain = p.sensitivity if sensitivity is None else sensitivity
        # axis-major, so every step below runs over contiguous memory; returned transposed
        out = self._rng.standard_normal((3, n))
        specific_force_lsb = (vertical_accel_mps2 + G_MPS2) * (gain / lsb)
        noise_lsb = p.noise_rms_g * (noise_scale * G_MPS2 / lsb)
        for axis in range(3):
            row = out[axis]
            row *= noise_lsb[axis]
            row += self._coupling[axis, 2] * specific_force_lsb
        np.rint(out, out=out)
        limit_lsb = math.floor(p.range_g / p.lsb_g)
        np.clip(out, -limit_lsb, limit_lsb, out=out)
        out *= lsb
        return out.T
