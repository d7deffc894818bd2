"""Prescriptions (what a session must deliver), their tolerances, and the shipped presets.

Accelerations are *peak* values in g unless a name says otherwise. Knows nothing of hardware.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from livctl.errors import UsageError
from livctl.units import g_to_mps2

__all__ = [
    "Prescription", "Tolerance", "PRESETS", "get_preset", "DEFAULT_FREQUENCY_HZ", "DEFAULT_PEAK_G",
    "DEFAULT_MINUTES", "DEFAULT_RAMP_S", "MIN_FREQUENCY_HZ", "MAX_FREQUENCY_HZ", "TONE_MIN_FREQUENCY_HZ",
    "TONE_MAX_FREQUENCY_HZ",
]

MIN_FREQUENCY_HZ = 10.0
MAX_FREQUENCY_HZ = 200.0
"""A session's or a calibration's frequency: LIV uses about 30 Hz (people) to 90 Hz (mice, cells)."""
TONE_MIN_FREQUENCY_HZ = 1.0
TONE_MAX_FREQUENCY_HZ = 1000.0
"""A test tone's frequency (`livctl tone`, a wiring check): shakers and their sensors work well below this."""
MAX_DURATION_S = 60 * 60.0
"""No published LIV bout is longer than 20 minutes; anything past an hour is a typing error."""
DEFAULT_FREQUENCY_HZ = 30.0
DEFAULT_PEAK_G = 0.3
DEFAULT_MINUTES = 10.0
DEFAULT_RAMP_S = 2.0
MAX_RAMP_S = 30.0
MIN_RAMP_S = 0.1
"""A shorter ramp is a step (three cycles at 30 Hz): the click and jolt the ramp exists to avoid."""


@dataclass(frozen=True)
class Tolerance:
    """How far a measured window may stray from the prescription and still count as in spec."""

    frequency_hz: float = 1.0
    """Allowed deviation of the measured frequency, +- Hz."""
    accel_fraction: float = 0.10
    """Allowed deviation of the measured peak acceleration, +- fraction of the prescribed peak."""
    max_thd_fraction: float = 0.10
    """Largest total harmonic distortion (harmonics 2-5 over the fundamental, amplitude ratio)."""
    min_in_spec_fraction: float = 0.90
    """Share of delivery windows that must be in spec for the session's dose to be in spec."""

    def __post_init__(self) -> None:
        if not (self.frequency_hz > 0 and math.isfinite(self.frequency_hz)):
            raise UsageError(f"frequency tolerance must be a positive number of Hz, got {self.frequency_hz}")
        if not 0 < self.accel_fraction < 1:
            raise UsageError(
                f"acceleration tolerance must be between 0 and 100 %, got {self.accel_fraction * 100:g} %"
            )
        if not 0 < self.max_thd_fraction <= 1:
            raise UsageError(f"THD limit must be between 0 and 100 %, got {self.max_thd_fraction * 100:g} %")
        if not 0 <= self.min_in_spec_fraction <= 1:
            raise UsageError(
                f"required in-spec share must be between 0 and 100 %, got {self.min_in_spec_fraction * 100:g} %"
            )


@dataclass(frozen=True)
class Prescription:
    """One bout: a sinusoid at `frequency_hz` with `peak_g` peak acceleration for `duration_s`."""

    frequency_hz: float
    peak_g: float
    duration_s: float
    ramp_s: float = DEFAULT_RAMP_S
    tolerance: Tolerance = field(default_factory=Tolerance)
    preset: str | None = None

    @property
    def peak_mps2(self) -> float:
        return g_to_mps2(self.peak_g)

    @property
    def minutes(self) -> float:
        return self.duration_s / 60.0

    def validate(self, accel_cap_g: float) -> "Prescription":
        """Raise UsageError naming the first unusable field; return self when all are sane."""
        if not (math.isfinite(self.frequency_hz) and MIN_FREQUENCY_HZ <= self.frequency_hz <= MAX_FREQUENCY_HZ):
            raise UsageError(
                f"frequency {self.frequency_hz:g} Hz is outside {MIN_FREQUENCY_HZ:g}-{MAX_FREQUENCY_HZ:g} Hz; "
                "LIV uses about 30 Hz (people) or 90 Hz (mice, cells)"
            )
        if not (math.isfinite(self.peak_g) and self.peak_g > 0):
            raise UsageError(f"acceleration must be a positive peak value in g, got {self.peak_g:g}")
        if self.peak_g > accel_cap_g:
            raise UsageError(
                f"acceleration {self.peak_g:g} g peak is above the safety cap of {accel_cap_g:g} g peak; "
                "LIV is well under 1 g"
            )
        if not (math.isfinite(self.duration_s) and self.duration_s > 0):
            raise UsageError(f"minutes must be positive, got {self.minutes:g}")
        if self.duration_s > MAX_DURATION_S:
            raise UsageError(
                f"{self.minutes:g} minutes is longer than the {MAX_DURATION_S / 60:g}-minute limit of one bout; "
                "LIV bouts last 10-20 minutes"
            )
        if not (math.isfinite(self.ramp_s) and MIN_RAMP_S <= self.ramp_s <= MAX_RAMP_S):
            raise UsageError(
                f"ramp must be between {MIN_RAMP_S:g} and {MAX_RAMP_S:g} s, got {self.ramp_s:g} s; "
                "a shorter one is a step"
            )
        return self


@dataclass(frozen=True)
class Preset:
    """A published protocol shipped with livctl."""

    name: str
    subject: str
    frequency_hz: float
    peak_g: float
    minutes: float
    schedule: str
    source: str
    note: str = ""

    def prescription(self, **overrides) -> Prescription:
        values = dict(frequency_hz=self.frequency_hz, peak_g=self.peak_g, duration_s=self.minutes * 60.0)
        values.update(overrides)
        return Prescription(preset=self.name, **values)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("human-30hz-0.4g", "people", 30.0, 0.4, 10, "2 bouts a day, 12 months",
               "NCT03712813 (LivMD-style plate)", "the vendor's plate delivers 0.4 g at 30 Hz only"),
        Preset("human-30hz-0.3g", "people", 30.0, 0.3, 10, "1 bout a day, 12 months", "Gilsanz 2006"),
        Preset("human-35hz-0.3g", "people", 35.0, 0.3, 10, "2 bouts a day, 1 year",
               "Mogil 2016", "published range 32-37 Hz; 35 Hz is its middle"),
        Preset("human-30hz-0.1g", "people", 30.0, 0.1, 10, "2 bouts a day, 12 months",
               "Rubin 2004", "reported as 0.2 g peak-to-peak, which is 0.1 g peak"),
        Preset("mouse-90hz-0.3g", "mice", 90.0, 0.3, 15, "1 bout a day, 5 days a week",
               "Lynch 2010, Pagnotti 2016"),
        Preset("mouse-45hz-0.6g", "mice", 45.0, 0.6, 15, "1 bout a day, 5 days a week",
               "Garman 2007, Novotny 2014", "published bouts 15-20 minutes"),
        Preset("cells-90hz-0.7g", "cells", 90.0, 0.7, 20, "2-4 bouts a day, at least 1 h rest between bouts",
               "Sen 2011 (Uzer lab)", "two bouts less than 1 h apart lost the effect"),
    )
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise UsageError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)} (see `livctl presets`)") from None
