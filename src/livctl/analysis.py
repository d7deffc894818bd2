"""Measuring a vibration: frequency, peak acceleration, distortion, from accelerometer samples.

The estimator, per axis:

1. coarse: the peak of a Hann-windowed FFT, interpolated between bins from the ratio of the two
   largest bin magnitudes (exact for a pure tone under a periodic Hann window);
2. fine: an IEEE Std 1057 style least-squares sine fit, 4-parameter (Gauss-Newton on the
   frequency) and extended with the harmonics 2-5 and a DC term, so distortion and gravity do not
   bias the fundamental;
3. from the fit: the fundamental's peak amplitude, phase, the DC level (gravity on a vertical
   axis), every harmonic's peak amplitude (THD), and the residual (noise: SNR; noise plus
   distortion: SINAD).

Inputs are in any one unit (m/s^2 inside livctl); `Measurement` reports g, peak and RMS labelled.
Knows nothing of devices or time.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from livctl.units import STANDARD_GRAVITY_MPS2 as G_MPS2

if TYPE_CHECKING:
    from livctl.prescription import Prescription

AXES = ("x", "y", "z")
N_HARMONICS = 5
MIN_CYCLES = 3.0
_MAX_NEWTON_STEPS = 6


class AnalysisError(ValueError):
    """The samples cannot give a measurement (too short, no tone, not finite)."""


@dataclass(frozen=True)
class ToneFit:
    """A sine fit of one channel. Amplitudes are peak values in the input's unit."""

    frequency_hz: float
    amplitude: float
    phase_rad: float
    """Phase of the fundamental at the first sample, for amplitude * cos(2 pi f t + phase)."""
    offset: float
    harmonics: tuple[float, ...]
    """Peak amplitudes of harmonics 2, 3, ... (those below Nyquist)."""
    noise_rms: float
    """RMS of what the fit leaves: noise without the harmonics."""
    n: int

    @property
    def thd(self) -> float:
        """Total harmonic distortion as an amplitude ratio (harmonics 2-5 over the fundamental)."""
        if self.amplitude <= 0:
            return math.inf
        return math.sqrt(sum(h * h for h in self.harmonics)) / self.amplitude

    @property
    def snr_db(self) -> float:
        """Fundamental power over noise power (harmonics excluded from both)."""
        return _db(0.5 * self.amplitude**2, self.noise_rms**2)

    @property
    def sinad_db(self) -> float:
        """Fundamental power over noise-plus-distortion power."""
        distortion = 0.5 * sum(h * h for h in self.harmonics)
        return _db(0.5 * self.amplitude**2, self.noise_rms**2 + distortion)


def _db(signal_power: float, noise_power: float) -> float:
    if noise_power <= 0:
        return math.inf
    if signal_power <= 0:
        return -math.inf
    return 10.0 * math.log10(signal_power / noise_power)


@lru_cache(maxsize=16)
def _hann(n: int) -> np.ndarray:
    """Periodic Hann window (the form the bin-interpolation formula assumes)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def coarse_frequency(x: np.ndarray, rate_hz: float, search_hz: tuple[float, float] | None = None) -> float:
    """Frequency of the strongest tone: Hann-windowed FFT peak, interpolated between bins."""
    n = x.shape[0]
    # no need to remove the mean: a periodic Hann window confines DC to bins 0 and 1
    spectrum = np.abs(np.fft.rfft(x * _hann(n)))
    bin_hz = rate_hz / n
    lo_bin = 2
    hi_bin = spectrum.shape[0] - 2
    if search_hz is not None:
        lo_bin = max(lo_bin, int(math.floor(search_hz[0] / bin_hz)))
        hi_bin = min(hi_bin, int(math.ceil(search_hz[1] / bin_hz)))
    if hi_bin < lo_bin:
        raise AnalysisError("the window is too short to resolve the frequency band searched")
    k = lo_bin + int(np.argmax(spectrum[lo_bin : hi_bin + 1]))
    centre = spectrum[k]
    if centre <= 0:
        raise AnalysisError("the signal is flat: no vibration in the samples")
    left, right = spectrum[k - 1], spectrum[k + 1]
    # Hann window: for a pure tone |X[k+1]| / |X[k]| = (1 + d) / (2 - d), d the offset in bins
    if right >= left:
        ratio = right / centre
        delta = (2.0 * ratio - 1.0) / (ratio + 1.0)
    else:
        ratio = left / centre
        delta = -(2.0 * ratio - 1.0) / (ratio + 1.0)
    return float((k + delta) * bin_hz)


class _SineModel:
    """Least-squares model of one window: DC + sum_h (a_h cos(h w t) + b_h sin(h w t)).

    The design matrix is column-major so each column is written in place. Its columns are
    DC, cos(w t), sin(w t), the derivative of the fundamental with respect to w (for the
    Gauss-Newton frequency step), then cos and sin of each harmonic 2..count, so the leading 3
    and 4 columns are the classic 3- and 4-parameter IEEE 1057 fits.
    """

    def __init__(self, n: int, rate_hz: float, count: int):
        self.count = count
        self.n = n
        # time centred on the window keeps the frequency column well conditioned
        self.t = (np.arange(n) - 0.5 * (n - 1)) / rate_hz
        self.design = np.empty((n, 2 * count + 2), order="F")
        self.design[:, 0] = 1.0
        self.cos = self.design[:, 1]
        self.sin = self.design[:, 2]
        self.derivative = self.design[:, 3]
        # t = outer + inner: cos and sin of n angles from sqrt(n)-sized tables by angle addition
        block = _block_size(n)
        blocks = -(-n // block)
        self._t_outer = self.t[0] + np.arange(blocks) * (block / rate_hz)
        self._t_inner = np.arange(block) / rate_hz
        if blocks * block == n:  # write straight into the design's columns
            self._cos2d = self.cos.reshape(blocks, block)
            self._sin2d = self.sin.reshape(blocks, block)
        else:
            self._cos2d, self._sin2d = np.empty((2, blocks, block))

    def set_frequency(self, omega: float) -> None:
        outer = omega * self._t_outer
        inner = omega * self._t_inner
        co, so, ci, si = np.cos(outer), np.sin(outer), np.cos(inner), np.sin(inner)
        cos, sin = self._cos2d, self._sin2d
        np.multiply.outer(co, ci, out=cos)
        cos -= np.multiply.outer(so, si)
        np.multiply.outer(so, ci, out=sin)
        sin += np.multiply.outer(co, si)
        if cos.base is not self.design:
            self.cos[:] = cos.reshape(-1)[: self.n]
            self.sin[:] = sin.reshape(-1)[: self.n]

    def fit_fundamental(self, x: np.ndarray) -> np.ndarray:
        """3-parameter fit at the current frequency: DC, a, b."""
        return _solve(self.design[:, :3], x)

    def newton_step(self, x: np.ndarray, coef: np.ndarray, columns: int) -> np.ndarray:
        """A Gauss-Newton step on the first `columns` columns: updated DC, a, b, d_omega, harmonics."""
        np.multiply(self.cos, coef[2], out=self.derivative)
        self.derivative -= self.sin * coef[1]
        self.derivative *= self.t
        return _solve(self.design[:, :columns], x)

    def fill_harmonics(self) -> None:
        """cos(h w t), sin(h w t) for h = 2..count from the fundamental's, by angle addition."""
        d = self.design
        prev_cos, prev_sin = self.cos, self.sin
        for h in range(2, self.count + 1):
            c, s = d[:, 2 * h], d[:, 2 * h + 1]
            np.multiply(prev_cos, self.cos, out=c)
            c -= prev_sin * self.sin
            np.multiply(prev_sin, self.cos, out=s)
            s += prev_cos * self.sin
            prev_cos, prev_sin = c, s


_models = threading.local()


def _model(n: int, rate_hz: float, count: int) -> _SineModel:
    """A model for this window shape, reused between calls (one per thread: models hold state)."""
    cache = getattr(_models, "cache", None)
    if cache is None:
        cache = _models.cache = {}
    key = (n, rate_hz, count)
    model = cache.get(key)
    if model is None:
        if len(cache) >= 8:
            cache.clear()
        model = cache[key] = _SineModel(n, rate_hz, count)
    return model


def _block_size(n: int) -> int:
    """A divisor of n near sqrt(n) when there is one (so blocks tile the window), else 64."""
    root = int(math.isqrt(n))
    for size in range(root, max(8, root // 2), -1):
        if n % size == 0:
            return size
    return 64


def _fit(
    x: np.ndarray, rate_hz: float, search_hz: tuple[float, float] | None, n_harmonics: int
) -> tuple[ToneFit, _SineModel]:
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    if n < 16:
        raise AnalysisError(f"{n} samples are too few to measure a vibration")
    if not np.all(np.isfinite(x)):
        raise AnalysisError("the samples contain NaN or infinite values")
    f0 = coarse_frequency(x, rate_hz, search_hz)
    duration_s = n / rate_hz
    if f0 * duration_s < MIN_CYCLES:
        raise AnalysisError(
            f"the window holds {f0 * duration_s:.1f} cycles of {f0:.1f} Hz; at least {MIN_CYCLES:g} are needed"
        )
    count = max(1, min(n_harmonics, int((0.5 * rate_hz * 0.98) // f0)))
    model = _model(n, rate_hz, count)
    omega_fft = omega = 2.0 * math.pi * f0
    max_shift = 2.0 * math.pi / duration_s  # one FFT bin
    model.set_frequency(omega)
    coef = model.fit_fundamental(x)
    # Gauss-Newton: the IEEE 1057 4-parameter fit. Its steps on the fundamental alone are cheap
    # and converge quadratically from the FFT estimate (usually one step).
    for _ in range(_MAX_NEWTON_STEPS):
        step = model.newton_step(x, coef, 4)
        d_omega = float(step[3])
        if not math.isfinite(d_omega) or abs(omega + d_omega - omega_fft) > max_shift:
            break  # the fit would wander more than a bin from the spectrum's peak: stay
        omega += d_omega
        model.set_frequency(omega)
        coef = step
        if abs(d_omega) * duration_s < 1e-2:
            break
    model.fill_harmonics()
    # Then joint steps with the harmonics in the model, so distortion neither biases the
    # fundamental nor hides in the residual, until a step is a small share of the noise-limited
    # spread of the frequency (the CRLB, from the fit's own SNR). The last step's coefficients are
    # the ones reported.
    columns = model.design.shape[1]
    for i in range(_MAX_NEWTON_STEPS):
        if i:
            model.set_frequency(omega)
            model.fill_harmonics()
        step = model.newton_step(x, coef, columns)
        d_omega = float(step[3])
        if not math.isfinite(d_omega) or abs(omega + d_omega - omega_fft) > max_shift:
            step[3] = 0.0  # the fit would wander more than a bin from the spectrum's peak: stay
            residual = x - model.design @ step
            break
        residual = x - model.design @ step
        omega += d_omega
        coef = step
        noise_power = float(np.dot(residual, residual)) / max(1, n - columns)
        snr = 0.5 * (step[1] ** 2 + step[2] ** 2) / noise_power if noise_power > 0 else math.inf
        if abs(d_omega) * duration_s * math.sqrt(snr * n / 12.0) < 0.05:
            break
    a = np.concatenate(([step[1]], step[4::2]))
    b = np.concatenate(([step[2]], step[5::2]))
    amplitudes = np.hypot(a, b)
    noise_rms = float(np.sqrt(np.dot(residual, residual) / max(1, n - columns)))
    # a cos(w t) + b sin(w t) = A cos(w t + phi) with phi = atan2(-b, a); shift t to the first sample
    phase = math.atan2(-b[0], a[0]) - omega * 0.5 * (n - 1) / rate_hz
    fit = ToneFit(
        frequency_hz=float(omega / (2.0 * math.pi)),
        amplitude=float(amplitudes[0]),
        phase_rad=math.remainder(phase, 2.0 * math.pi),
        offset=float(step[0]),
        harmonics=tuple(float(v) for v in amplitudes[1:]),
        noise_rms=noise_rms,
        n=n,
    )
    return fit, model


def fit_tone(
    x: np.ndarray,
    rate_hz: float,
    *,
    search_hz: tuple[float, float] | None = None,
    n_harmonics: int = N_HARMONICS,
) -> ToneFit:
    """Fit a sine (with DC and harmonics) to `x`; see the module docstring for the method."""
    return _fit(x, rate_hz, search_hz, n_harmonics)[0]


def _solve(design: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Least squares through the normal equations (the columns are near-orthogonal sinusoids)."""
    gram = design.T @ design
    try:
        return np.linalg.solve(gram, design.T @ x)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(design, x, rcond=None)[0]


@dataclass(frozen=True)
class Measurement:
    """What one window (or one recording) of accelerometer samples says about the vibration."""

    frequency_hz: float
    peak_g: float
    """Peak acceleration of the fundamental on the driven axis (gravity and harmonics excluded)."""
    rms_g: float
    """RMS of the same fundamental (peak / sqrt 2)."""
    thd_percent: float
    snr_db: float
    """Fundamental power over noise power, harmonics excluded (per sample)."""
    sinad_db: float
    """Fundamental power over noise-plus-distortion power (per sample)."""
    dc_g: float
    """The driven axis's DC level: +1 g of gravity on a vertical axis at rest."""
    axis: str
    off_axis_percent: float
    """Fundamental on the other axes (root-sum-square) over the driven axis's, in percent."""
    duration_s: float

    def to_dict(self) -> dict:
        return dict(vars(self))


def driven_axis(accel: np.ndarray) -> int:
    """Index of the axis with the most AC power."""
    return int(np.argmax(accel.var(axis=0)))


def measure(
    accel_mps2: np.ndarray,
    rate_hz: float,
    *,
    axis: str | int = "auto",
    search_hz: tuple[float, float] | None = None,
) -> Measurement:
    """Measure one window: `accel_mps2` is (n,) or (n, axes) in m/s^2, axes in x, y, z order."""
    accel = np.asarray(accel_mps2, dtype=np.float64)
    if accel.ndim == 1:
        accel = accel[:, None]
    if accel.ndim != 2 or accel.shape[1] > len(AXES) or accel.shape[1] == 0:
        raise AnalysisError(f"expected samples shaped (n, 1..3), got {accel.shape}")
    if axis == "auto":
        index = driven_axis(accel)
    elif isinstance(axis, str):
        if axis not in AXES[: accel.shape[1]]:
            raise AnalysisError(f"axis {axis!r} is not among the recorded axes {AXES[: accel.shape[1]]}")
        index = AXES.index(axis)
    else:
        index = int(axis)
    fit, model = _fit(accel[:, index], rate_hz, search_hz, N_HARMONICS)
    off_axis = 0.0
    if accel.shape[1] > 1 and fit.amplitude > 0:
        others = np.delete(accel, index, axis=1)
        # 3-parameter fit of the other axes at the driven axis's frequency
        coef = _solve(model.design[:, :3], others)
        off_axis = float(np.sqrt(np.sum(coef[1] ** 2 + coef[2] ** 2))) / fit.amplitude
    return Measurement(
        frequency_hz=fit.frequency_hz,
        peak_g=fit.amplitude / G_MPS2,
        rms_g=fit.amplitude / G_MPS2 / math.sqrt(2.0),
        thd_percent=100.0 * fit.thd,
        snr_db=fit.snr_db,
        sinad_db=fit.sinad_db,
        dc_g=fit.offset / G_MPS2,
        axis=AXES[index],
        off_axis_percent=100.0 * off_axis,
        duration_s=accel.shape[0] / rate_hz,
    )


def check_spec(m: Measurement, prescription: "Prescription") -> list[str]:
    """Every way `m` misses the prescription's tolerances, one readable reason each (empty: in spec)."""
    rx = prescription
    tol = rx.tolerance
    reasons = []
    if abs(m.frequency_hz - rx.frequency_hz) > tol.frequency_hz:
        reasons.append(f"frequency {m.frequency_hz:.2f} Hz is outside {rx.frequency_hz:g} +- {tol.frequency_hz:g} Hz")
    deviation = m.peak_g / rx.peak_g - 1.0
    if abs(deviation) > tol.accel_fraction:
        reasons.append(
            f"peak {m.peak_g:.3f} g is {100 * deviation:+.1f} % from {rx.peak_g:g} g "
            f"(tolerance +-{100 * tol.accel_fraction:g} %)"
        )
    if m.thd_percent > 100.0 * tol.max_thd_fraction:
        reasons.append(f"THD {m.thd_percent:.1f} % is above {100 * tol.max_thd_fraction:g} %")
    return reasons


@lru_cache(maxsize=8)
def _projection(n: int, rate_hz: float, frequency_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """For DC + cos + sin at a known frequency over n samples: the least-squares solution operator
    (3, n) and the Gram matrix (3, 3)."""
    t = (np.arange(n) - 0.5 * (n - 1)) / rate_hz
    theta = 2.0 * math.pi * frequency_hz * t
    design = np.column_stack((np.ones(n), np.cos(theta), np.sin(theta)))
    return np.linalg.pinv(design), design.T @ design


def amplitude_at(x: np.ndarray, rate_hz: float, frequency_hz: float) -> tuple[float, float]:
    """Peak amplitude of the component of `x` at a known frequency, and its standard error.

    A 3-parameter sine fit (IEEE 1057): exact for any number of cycles and blind to DC. The
    standard error is sqrt(2 / n) times the fit's residual RMS (white noise); the residual energy
    comes from the normal equations, |x|^2 - c.(G c), without forming the model. Fast for repeated
    blocks: the operators are cached per block length and frequency (rounded to 0.01 Hz, which
    moves the phase over a 0.25 s block by under 0.01 rad).
    """
    n = x.shape[0]
    projection, gram = _projection(n, rate_hz, round(frequency_hz, 2))
    coef = projection @ x
    amplitude = math.hypot(float(coef[1]), float(coef[2]))
    residual_energy = max(0.0, float(np.dot(x, x) - coef @ (gram @ coef)))
    noise_rms = math.sqrt(residual_energy / max(1, n - 3))
    return amplitude, noise_rms * math.sqrt(2.0 / n)


def block_levels(x: np.ndarray, rate_hz: float, frequency_hz: float, block_s: float) -> tuple[np.ndarray, np.ndarray]:
    """The peak amplitude at a known frequency in consecutive blocks of `block_s`: a level trace.

    Returns each block's end time (s, from the first sample) and its peak amplitude (unit of `x`);
    a NaN sample counts as zero. Vectorised over the blocks (one 3-parameter fit each).
    """
    n = int(round(block_s * rate_hz))
    k = x.shape[0] // n
    blocks = np.nan_to_num(np.asarray(x[: k * n], dtype=np.float64)).reshape(k, n)
    coef = blocks @ _projection(n, rate_hz, round(frequency_hz, 2))[0].T
    return (np.arange(k) + 1) * (n / rate_hz), np.hypot(coef[:, 1], coef[:, 2])
