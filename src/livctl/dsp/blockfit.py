"""The fast measurement of one short block of samples at a known frequency: what a guard and a
controller act on, 10 times a second.

A window's measurement (`livctl.dsp.estimator.measure`) searches for the frequency and fits it to the
Cramer-Rao bound; a block is too short for that and needs no search: the drive's frequency is
known. So a block is fitted, by linear least squares, with DC plus cosine and sine at the drive
frequency and its harmonics 2-5 (those below Nyquist):

    x(t) = c + sum_h a_h cos(2 pi h f t) + b_h sin(2 pi h f t)

From the coefficients:
- the **fundamental**'s peak amplitude and its standard error (white noise: sigma sqrt(2 / n));
- its **phase** against absolute sample time, so consecutive blocks' phases can be compared: a
  plate that vibrates at f + df advances 2 pi df per second, a plate that follows the drive holds
  its phase;
- the **true peak** of the periodic motion, gravity removed: the largest |sum of the harmonics|
  over one period (evaluated on a grid of 64 phases), the peak the cap is about. The harmonics'
  noise makes it read a little high, never low;
- THD (harmonics 2-5 over the fundamental, amplitude ratio) and the residual noise (SNR).

The least-squares operator for a block length, rate and frequency is built once and cached, so a
block costs two small matrix products. Inputs in m/s^2; knows nothing of devices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

HARMONICS = 5
"""The fundamental and harmonics 2-5, as in the THD of livctl.dsp.estimator."""
PHASE_GRID = 64
"""Phases per period at which the true peak is evaluated (the largest error is under 0.2 %)."""
MIN_SAMPLES = 8
MIN_CYCLES = 0.5
"""A block shorter than half a cycle cannot be fitted: its cosine and sine are nearly one column,
and the least squares would turn noise into any amplitude."""


@dataclass(frozen=True)
class BlockFit:
    """One block, fitted at a known frequency. Accelerations are peak values in m/s^2."""

    frequency_hz: float
    """The frequency the block was fitted at (the drive's)."""
    fundamental_mps2: float
    fundamental_se_mps2: float
    """Standard error of `fundamental_mps2` (white noise)."""
    phase_rad: float
    """Phase of the fundamental, a cos(2 pi f t + phase), with t the absolute sample time."""
    harmonics_mps2: tuple[float, ...]
    """Peak amplitudes of harmonics 2, 3, ... below Nyquist (up to 5)."""
    true_peak_mps2: float
    """The largest excursion of the fitted periodic motion (all harmonics, DC removed)."""
    dc_mps2: float
    noise_rms_mps2: float
    """RMS of what the fit leaves."""
    n: int

    @property
    def thd_fraction(self) -> float:
        """Harmonics 2-5 over the fundamental (amplitude ratio); inf without a fundamental."""
        if self.fundamental_mps2 <= 0:
            return math.inf
        return math.sqrt(sum(h * h for h in self.harmonics_mps2)) / self.fundamental_mps2

    @property
    def snr_db(self) -> float:
        """Fundamental power over residual noise power."""
        if self.noise_rms_mps2 <= 0:
            return math.inf
        if self.fundamental_mps2 <= 0:
            return -math.inf
        return 10.0 * math.log10(0.5 * self.fundamental_mps2**2 / self.noise_rms_mps2**2)


@dataclass(frozen=True)
class _Operator:
    """The least-squares fit of one block length and rate, precomputed once and reused block after block."""

    count: int
    """Harmonics fitted (1 = the fundamental only)."""
    projection: np.ndarray
    """(1 + 2 count, n): coefficients from samples (least squares)."""
    gram: np.ndarray
    """(1 + 2 count, 1 + 2 count): design' design, for the residual energy."""
    centre_s: float
    """Time of the block's centre from its first sample: the basis's time origin."""
    grid: np.ndarray
    """(PHASE_GRID, 2 count): cos and sin of each harmonic over one period."""


def harmonic_count(frequency_hz: float, rate_hz: float) -> int:
    """Harmonics of `frequency_hz` (1..HARMONICS) that lie below 0.98 of Nyquist."""
    count = int(0.49 * rate_hz / frequency_hz) if frequency_hz > 0 else 0
    return max(1, min(HARMONICS, count))


@lru_cache(maxsize=16)
def _operator(n: int, rate_hz: float, frequency_hz: float) -> _Operator:
    count = harmonic_count(frequency_hz, rate_hz)
    centre_s = 0.5 * (n - 1) / rate_hz
    t = np.arange(n) / rate_hz - centre_s
    columns = [np.ones(n)]
    for h in range(1, count + 1):
        theta = 2.0 * math.pi * h * frequency_hz * t
        columns += [np.cos(theta), np.sin(theta)]
    design = np.column_stack(columns)
    phase = 2.0 * math.pi * np.arange(PHASE_GRID) / PHASE_GRID
    grid = np.column_stack([f(h * phase) for h in range(1, count + 1) for f in (np.cos, np.sin)])
    return _Operator(count, np.linalg.pinv(design), design.T @ design, centre_s, grid)


def fit_block(x: np.ndarray, rate_hz: float, frequency_hz: float, t0_s: float) -> BlockFit | None:
    """Fit one block `x` (1-D, m/s^2, finite) whose first sample is at `t0_s` (absolute sample
    time) at `frequency_hz`; None when it is too short to fit (fewer than MIN_SAMPLES samples or
    MIN_CYCLES cycles)."""
    n = x.shape[0]
    if n < MIN_SAMPLES or not frequency_hz > 0 or n * frequency_hz < MIN_CYCLES * rate_hz:
        return None
    op = _operator(n, float(rate_hz), round(float(frequency_hz), 3))
    coef = op.projection @ x
    residual = max(0.0, float(x @ x - coef @ (op.gram @ coef)))
    noise_rms = math.sqrt(residual / max(1, n - coef.shape[0]))
    a, b = float(coef[1]), float(coef[2])
    fundamental = math.hypot(a, b)
    # the basis is centred on the block: turn the phase to absolute time
    phase = math.atan2(-b, a) - 2.0 * math.pi * frequency_hz * (t0_s + op.centre_s)
    harmonics = tuple(math.hypot(float(coef[2 * h - 1]), float(coef[2 * h])) for h in range(2, op.count + 1))
    true_peak = float(np.max(np.abs(op.grid @ coef[1:])))
    return BlockFit(
        frequency_hz=frequency_hz,
        fundamental_mps2=fundamental,
        fundamental_se_mps2=noise_rms * math.sqrt(2.0 / n),
        phase_rad=math.remainder(phase, 2.0 * math.pi),
        harmonics_mps2=harmonics,
        true_peak_mps2=true_peak,
        dc_mps2=float(coef[0]),
        noise_rms_mps2=noise_rms,
        n=n,
    )


def phase_drift_hz(times_s: list[float], phases_rad: list[float]) -> float:
    """The frequency offset that a series of block phases (at their blocks' times) shows: the slope
    of the unwrapped phase over time, over 2 pi. Blocks 0.1 s apart tell offsets up to +-5 Hz.
    (A handful of blocks: plain Python is quicker here than numpy's per-call overhead.)"""
    n = len(phases_rad)
    if n < 2:
        return 0.0
    unwrapped = [phases_rad[0]]
    for phase in phases_rad[1:]:
        unwrapped.append(unwrapped[-1] + math.remainder(phase - unwrapped[-1], 2.0 * math.pi))
    t_mean = sum(times_s) / n
    p_mean = sum(unwrapped) / n
    spread = sum((t - t_mean) ** 2 for t in times_s)
    if spread <= 0:
        return 0.0
    slope = sum((t - t_mean) * (p - p_mean) for t, p in zip(times_s, unwrapped)) / spread
    return slope / (2.0 * math.pi)
