"""Unit conversions. SI inside; g only at the edges, always labelled peak or RMS."""

import math

__all__ = ["STANDARD_GRAVITY_MPS2", "g_to_mps2", "mps2_to_g", "peak_to_rms", "rms_to_peak", "displacement_peak_m"]

STANDARD_GRAVITY_MPS2 = 9.80665
"""1 g in m/s^2 (ISO 80000-3)."""

SQRT2 = math.sqrt(2.0)


def g_to_mps2(accel_g: float) -> float:
    return accel_g * STANDARD_GRAVITY_MPS2


def mps2_to_g(accel_mps2: float) -> float:
    return accel_mps2 / STANDARD_GRAVITY_MPS2


def peak_to_rms(peak: float) -> float:
    """RMS of a sinusoid from its peak value (same unit)."""
    return peak / SQRT2


def rms_to_peak(rms: float) -> float:
    """Peak of a sinusoid from its RMS value (same unit)."""
    return rms * SQRT2


def displacement_peak_m(accel_peak_mps2: float, frequency_hz: float) -> float:
    """Peak displacement of a sinusoidal motion with the given peak acceleration."""
    omega = 2.0 * math.pi * frequency_hz
    return accel_peak_mps2 / (omega * omega)
