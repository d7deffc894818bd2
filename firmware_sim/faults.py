"""Faults a simulated platform can suffer, scheduled in its own time.

A `Fault` names what goes wrong and when (`at_s`, seconds of platform time since power-up), with
an optional size (`value`) and length (`duration_s`). `SimulatedPlatform` applies it at the exact
sample, so a faulted run is as repeatable as a healthy one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

FAULTS: dict[str, str] = {
    "sensor_stall": "the accelerometer's readings freeze at their last value",
    "sensor_unplug": "the accelerometer stops delivering samples",
    "link_drop": "the host link goes silent; the board's watchdog ramps the drive down",
    "actuator_failure": "the actuator stops producing force",
    "resonance": "the plant's gain jumps by a factor (value, default 3)",
    "load_step": "the load changes by a factor (value, default 1.3: +30 %)",
    "step_off": "the subject steps off: the load drops to zero",
    "noise_burst": "sensor noise grows by a factor (value, default 8) for duration_s (default 2 s)",
    "corrupt": "a share of samples (value, default 0.05) turn to garbage (NaN, rail values) for duration_s (default 2 s)",
    "drift": "the sensor's sensitivity drifts by value per second (default -0.01: -1 %/s)",
    "frequency_shift": "the board's synthesiser runs value Hz off the commanded frequency (default +2 Hz)",
    "distortion": "the actuator's non-linearity grows: its quadratic term becomes value (default 4)",
    "replay": "the sensor repeats, over and over, the value seconds it recorded before (default 1 s)",
    "foreign_sensor": "the sensor reads another plate, driven value Hz off this one's frequency (default +0.05) at what "
                      "this one was delivering (from the start: at 0.2 of full scale)",
}

DEFAULT_VALUES = {"resonance": 3.0, "load_step": 1.3, "noise_burst": 8.0, "corrupt": 0.05, "drift": -0.01,
                  "frequency_shift": 2.0, "distortion": 4.0, "replay": 1.0, "foreign_sensor": 0.05}
DEFAULT_DURATIONS_S = {"noise_burst": 2.0, "corrupt": 2.0}
LONGEST_S = 1e6
"""Fault times and lengths beyond this (eleven days) are typing errors, not plans."""
VALUE_RANGES = {
    "resonance": (1e-3, 100.0), "load_step": (1e-3, 10.0), "noise_burst": (1e-3, 1e3), "corrupt": (1e-6, 1.0),
    "drift": (-1.0, 1.0), "frequency_shift": (-50.0, 50.0), "distortion": (0.0, 100.0), "replay": (0.01, 5.0),
    "foreign_sensor": (-5.0, 5.0),
}
"""What each fault's size may be: beyond these the simulated plant or sensor means nothing."""
WATCHDOG_S = 0.5
"""The simulated board's watchdog: with the host link silent this long, it ramps the drive down."""
WATCHDOG_RAMP_S = 0.5


@dataclass(frozen=True)
class Fault:
    name: str
    at_s: float
    value: float | None = None
    duration_s: float | None = None

    def __post_init__(self) -> None:
        if self.name not in FAULTS:
            raise ValueError(f"unknown fault {self.name!r}; known: {', '.join(FAULTS)}")
        if not (math.isfinite(self.at_s) and 0 <= self.at_s <= LONGEST_S):
            raise ValueError(f"fault time must be 0 to {LONGEST_S:g} s, got {self.at_s:g}")
        if self.value is not None and not math.isfinite(self.value):
            raise ValueError("fault value must be a finite number")
        if self.name in ("resonance", "load_step", "noise_burst") and self.value is not None and self.value <= 0:
            raise ValueError(f"{self.name} needs a positive factor")
        if self.name == "corrupt" and self.value is not None and not 0 < self.value <= 1:
            raise ValueError("corrupt needs a share of samples between 0 and 1")
        low, high = VALUE_RANGES.get(self.name, (-math.inf, math.inf))
        if self.value is not None and not low <= self.value <= high:
            raise ValueError(f"{self.name} takes a value from {low:g} to {high:g}, not {self.value:g}")
        if self.duration_s is not None and not (math.isfinite(self.duration_s) and 0 < self.duration_s <= LONGEST_S):
            raise ValueError(f"fault duration must be a positive number of seconds up to {LONGEST_S:g}")

    @property
    def size(self) -> float | None:
        return self.value if self.value is not None else DEFAULT_VALUES.get(self.name)

    @property
    def length_s(self) -> float:
        """How long the fault lasts (infinite for the permanent ones)."""
        if self.duration_s is not None:
            return self.duration_s
        return DEFAULT_DURATIONS_S.get(self.name, math.inf)

    @property
    def end_s(self) -> float:
        return self.at_s + self.length_s
