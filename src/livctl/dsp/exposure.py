"""Human whole-body vibration exposure: the ISO 2631-1 / ISO 8041 weighting Wk and the daily A(8).

Wk weights vertical (z-axis) acceleration for health, comfort and perception of a seated,
standing or lying person. Its transfer function (ISO 8041, ISO 2631-1 Annex A) is the product of

    band limiting   H_h(p) = p^2 / (p^2 + w1 p / Q1 + w1^2)           high-pass, f1 = 0.4 Hz
                    H_l(p) = w2^2 / (p^2 + w2 p / Q2 + w2^2)          low-pass,  f2 = 100 Hz
    a-v transition  H_t(p) = (1 + p / w3) / (1 + p / (Q4 w4) + p^2 / w4^2)     f3 = f4 = 12.5 Hz
    upward step     H_s(p) = (p^2 + w5 p / Q5 + w5^2) / (p^2 + w6 p / Q6 + w6^2)   f5 = 2.37, f6 = 3.35 Hz

with p = j 2 pi f, w = 2 pi f_i, Q1 = Q2 = 1/sqrt(2), Q4 = 0.63, Q5 = Q6 = 0.91 and gain k = 1.
|Wk| is 0.426 at 30 Hz, 0.405 at 31.5 Hz, 0.108 at 90 Hz.

The weighted RMS of a window is |Wk(f)| times the RMS of its fundamental (livctl measures a pure
tone; harmonics at about 1 % THD change it by less than 0.01 %). Exposure adds energy: the daily
exposure is A(8) = sqrt(sum(a_w,i^2 T_i) / 8 h) over every window the person stood on the moving
plate that day (pre-check and ramps included). EU Directive 2002/44/EC: action value 0.5 m/s^2,
limit value 1.15 m/s^2. ISO 2631-1's health guidance covers 0.5-80 Hz only: windows outside it
(90 Hz work) are not weighted, and the exposure says how many seconds it left out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from livctl.units import g_to_mps2

WK_PARAMETERS = {
    "f1_hz": 0.4, "q1": 1 / math.sqrt(2),
    "f2_hz": 100.0, "q2": 1 / math.sqrt(2),
    "f3_hz": 12.5, "f4_hz": 12.5, "q4": 0.63,
    "f5_hz": 2.37, "q5": 0.91, "f6_hz": 3.35, "q6": 0.91,
    "k": 1.0,
}
"""ISO 8041 Table (weighting Wk): band limiting f1, f2; a-v transition f3, f4, Q4; upward step f5, Q5, f6, Q6."""

HEALTH_RANGE_HZ = (0.5, 80.0)
"""The frequency range of ISO 2631-1's health guidance."""
ACTION_VALUE_MPS2 = 0.5
"""EU Directive 2002/44/EC daily exposure action value, A(8), whole-body vibration."""
LIMIT_VALUE_MPS2 = 1.15
"""EU Directive 2002/44/EC daily exposure limit value, A(8), whole-body vibration."""
REFERENCE_S = 8 * 3600.0
"""A(8) is referred to an 8-hour day."""


def wk(frequency_hz: float) -> complex:
    """The Wk weighting's complex response at `frequency_hz`."""
    P = WK_PARAMETERS
    p = 2j * math.pi * frequency_hz
    w1, w2, w3, w4, w5, w6 = (2 * math.pi * P[k] for k in ("f1_hz", "f2_hz", "f3_hz", "f4_hz", "f5_hz", "f6_hz"))
    high_pass = p * p / (p * p + w1 * p / P["q1"] + w1 * w1)
    low_pass = w2 * w2 / (p * p + w2 * p / P["q2"] + w2 * w2)
    transition = (1 + p / w3) / (1 + p / (P["q4"] * w4) + p * p / (w4 * w4))
    step = (p * p + w5 * p / P["q5"] + w5 * w5) / (p * p + w6 * p / P["q6"] + w6 * w6)
    return P["k"] * high_pass * low_pass * transition * step


def wk_gain(frequency_hz: float) -> float:
    """|Wk(f)|: the factor a vertical acceleration at `frequency_hz` is weighted by."""
    return abs(wk(frequency_hz))


def in_health_range(frequency_hz: float) -> bool:
    return HEALTH_RANGE_HZ[0] <= frequency_hz <= HEALTH_RANGE_HZ[1]


def a8_mps2(energy_m2ps3: float) -> float:
    """Daily exposure A(8) from the day's weighted energy sum(a_w,rms^2 x T) in (m/s^2)^2 s."""
    return math.sqrt(energy_m2ps3 / REFERENCE_S)


@dataclass(frozen=True)
class Exposure:
    """Wk-weighted vibration energy of some windows (one session, or a day's sessions)."""

    energy_m2ps3: float = 0.0
    """sum(a_w,rms^2 x T) over the weighted windows, (m/s^2)^2 s."""
    weighted_s: float = 0.0
    """Seconds weighted (measured, within 0.5-80 Hz)."""
    outside_range_s: float = 0.0
    """Seconds of vibration outside ISO 2631-1's 0.5-80 Hz: not weighted, not in A(8)."""
    unmeasured_s: float = 0.0
    """Seconds whose window could not be measured: not in A(8)."""

    @property
    def a_w_rms_mps2(self) -> float | None:
        """Energy-equivalent Wk-weighted RMS acceleration over the weighted seconds."""
        return math.sqrt(self.energy_m2ps3 / self.weighted_s) if self.weighted_s > 0 else None

    @property
    def a8_mps2(self) -> float:
        return a8_mps2(self.energy_m2ps3)

    @property
    def complete(self) -> bool:
        """Every second of vibration was weighted."""
        return self.outside_range_s == 0 and self.unmeasured_s == 0

    def __add__(self, other: "Exposure") -> "Exposure":
        return Exposure(
            self.energy_m2ps3 + other.energy_m2ps3,
            self.weighted_s + other.weighted_s,
            self.outside_range_s + other.outside_range_s,
            self.unmeasured_s + other.unmeasured_s,
        )

    def to_dict(self) -> dict:
        return {
            "a_w_rms_mps2": self.a_w_rms_mps2,
            "a8_mps2": self.a8_mps2,
            "energy_m2ps3": self.energy_m2ps3,
            "weighted_s": self.weighted_s,
            "outside_range_s": self.outside_range_s,
            "unmeasured_s": self.unmeasured_s,
        }


def windows_exposure(levels: Iterable[tuple[float | None, float | None, float]]) -> Exposure:
    """Exposure of logged windows, given as (frequency_hz, rms_g of the fundamental, duration_s)
    (`DoseLog.window_levels`); a window without a measurement has None for both."""
    energy = weighted = outside = unmeasured = 0.0
    for f, rms_g, t in levels:
        if f is None or rms_g is None or not (math.isfinite(f) and math.isfinite(rms_g)):
            unmeasured += t
            continue
        if not in_health_range(f):
            outside += t
            continue
        a_w = wk_gain(f) * g_to_mps2(rms_g)
        energy += a_w * a_w * t
        weighted += t
    return Exposure(energy, weighted, outside, unmeasured)
