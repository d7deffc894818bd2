"""Synthetic accelerometer signals with known truth, for the estimator's and the recordings' tests."""

from __future__ import annotations

import math

import numpy as np

G = 9.80665


def crlb_sd(amplitude: float, noise_rms: float, n: int, rate_hz: float) -> tuple[float, float]:
    """Cramer-Rao standard deviations of frequency (Hz) and amplitude for a tone in white noise."""
    eta = amplitude**2 / (2 * noise_rms**2)
    var_f = 12 * rate_hz**2 / ((2 * math.pi) ** 2 * eta * n * (n**2 - 1))
    return math.sqrt(var_f), math.sqrt(2 * noise_rms**2 / n)


def tone(
    t: np.ndarray,
    *,
    frequency_hz: float,
    peak_mps2: float,
    phase: float,
    harmonics: tuple[tuple[float, float], ...] = (),
) -> np.ndarray:
    """peak cos(2 pi f t + phase) plus harmonics given as (share of the peak, phase) for h = 2, 3, ..."""
    w = 2 * math.pi * frequency_hz
    x = peak_mps2 * np.cos(w * t + phase)
    for h, (share, h_phase) in enumerate(harmonics, start=2):
        x += share * peak_mps2 * np.cos(h * w * t + h_phase)
    return x


def platform_axes(
    vertical_mps2: np.ndarray,
    rng: np.random.Generator,
    *,
    noise_rms_mps2: float,
    lsb_mps2: float | None = None,
    cross: tuple[float, float] = (0.02, 0.01),
) -> np.ndarray:
    """(n, 3) column-major x, y, z as a sensor would read them: z vertical with +1 g of gravity,
    x and y carrying a share of the vertical motion, white noise on every axis, optional LSB."""
    n = vertical_mps2.shape[0]
    out = np.empty((n, 3), order="F")
    out[:, 0] = cross[0] * vertical_mps2
    out[:, 1] = cross[1] * vertical_mps2
    out[:, 2] = vertical_mps2 + G
    out += rng.normal(0.0, noise_rms_mps2, (n, 3))
    if lsb_mps2:
        np.round(out / lsb_mps2, out=out)
        out *= lsb_mps2
    return out


def effective_noise(noise_rms: float, lsb: float | None) -> float:
    """Noise RMS with the quantisation's (LSB / sqrt 12) added in power (white when the noise dithers)."""
    return math.sqrt(noise_rms**2 + ((lsb or 0.0) ** 2) / 12.0)


def drift(n: int, rms_s: float, rng: np.random.Generator) -> np.ndarray:
    """A slow random walk of the time stamps (s), its straight-line trend left in, scaled so that
    what is left after removing that trend has RMS `rms_s`: how a host's stamps wander."""
    walk = np.cumsum(rng.normal(0.0, 1.0, n))
    i = np.arange(n) - 0.5 * (n - 1)
    detrended = walk - walk.mean() - i * (np.dot(i, walk - walk.mean()) / np.dot(i, i))
    return walk * (rms_s / np.sqrt(np.mean(detrended**2)))
