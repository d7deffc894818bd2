"""Measuring a vibration: frequency, peak acceleration, distortion, from accelerometer samples.

The estimator, per axis and window:

1. coarse: the peak of a Hann-windowed FFT, interpolated between bins from the ratio of the two
   largest bin magnitudes (exact for a pure tone under a periodic Hann window);
2. fine: an IEEE Std 1057 least-squares sine fit: the 3-parameter fit at the coarse frequency,
   Gauss-Newton steps of the 4-parameter fit on the fundamental, then joint steps of the whole
   model, DC, fundamental and the harmonics 2-5 below Nyquist, whose frequency derivatives are in
   the step, so distortion and gravity do not bias the fundamental and the fit ends at the
   model's least-squares minimum, within 5 % of the Cramer-Rao spread (`_gauss_newton`);
3. from the fit: the fundamental's peak amplitude, phase, the DC level (gravity on a vertical
   axis), every harmonic's peak amplitude and phase (THD; unverifiable when the sample rate
   hides a harmonic), the residual (noise: SNR; noise plus distortion: SINAD), and the
   covariance of frequency and amplitude (the standard uncertainties reported, `_u_` in names).

One Gauss-Newton driver fits one window (a session's), many windows at once (a recording's), and
a whole recording as one long window. What differs is how the normal equations are formed:
- one window (`_Window`): from its design columns, with one BLAS product for the Gram matrix;
- many windows (`_Windows`) and whole records (`_Record`): on a time grid centred on the window,
  every Gram entry has a closed form (sums of cosines over the grid: the Dirichlet kernel and its
  derivatives), so it costs nothing per sample; the projections of the samples on the columns,
  their Fourier transform at the harmonics, come from one matrix product of the samples, block by
  block, with short tables of phasors; a whole record adds its segments' projections, each turned
  by the phase of the segment's centre. No design matrix is formed, so a batch costs little more
  than reading its samples.

Inputs are in any one unit (m/s^2 inside livctl); `Measurement` reports g, peak and RMS labelled.
Knows nothing of devices or time.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from livctl.units import STANDARD_GRAVITY_MPS2 as G_MPS2

if TYPE_CHECKING:
    from livctl.prescription import Prescription

AXES = ("x", "y", "z")
N_HARMONICS = 5
MIN_CYCLES = 3.0
_MAX_NEWTON_STEPS = 6
_FLAT = 1e-12
"""A spectrum line below this share of the DC line is rounding, not vibration."""
_BATCH_SAMPLES = 1 << 18
"""Samples processed together in batched work: big enough to amortise numpy's call overhead,
small enough that the temporaries (a few complex arrays of this size) stay in cache-sized MBs."""


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
    rate_hz: float = math.nan
    harmonic_phases_rad: tuple[float, ...] = ()
    """Phases of harmonics 2, 3, ... at the first sample, for amplitude * cos(h 2 pi f t + phase)."""
    frequency_u_hz: float = math.nan
    """Standard uncertainty (k = 1) of the frequency (Hz): the least-squares covariance of the whole model
    (DC, fundamental, harmonics sharing its frequency) at the fit's residual noise. For a long
    window of a pure tone in white noise it is the Cramer-Rao bound."""
    amplitude_u: float = math.nan
    """Standard uncertainty (k = 1) of the fundamental's peak amplitude, likewise."""

    @property
    def thd_fraction(self) -> float:
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


# -- the time grid and the closed-form Gram matrix -------------------------------------------------


@lru_cache(maxsize=16)
def _hann(n: int) -> np.ndarray:
    """Periodic Hann window (the form the bin-interpolation formula assumes)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


@lru_cache(maxsize=16)
def _grid(n: int, rate_hz: float) -> np.ndarray:
    """Sample times of a window, centred on it (s): symmetric, so odd sums vanish."""
    return (np.arange(n) - 0.5 * (n - 1)) / rate_hz


def _first_time(n: int, rate_hz: float) -> float:
    """The time of a window's first sample on `_grid`."""
    return -0.5 * (n - 1) / rate_hz


def _kernel_sums(omega: np.ndarray, n: int, rate_hz: float, count: int):
    """The Dirichlet kernel D(u) = sin(n u) / sin(u) and its first two derivatives at
    u = k w / (2 fs) for k = 1 .. 2 count, for each row's w: three arrays (rows, 2 count).

    They give the sums over the centred grid t of n samples that the Gram matrix is made of:
    S0[k] = sum cos(k w t) = D, S1[k] = sum t sin(k w t) = -D' / (2 fs),
    S2[k] = sum t^2 cos(k w t) = -D'' / (4 fs^2); k = 0 takes the limits (n, 0, and
    n (n^2 - 1) / (12 fs^2)), which `_gram` adds. The arguments stay below pi: harmonics are kept
    under Nyquist.
    """
    k = _multiples(count, rate_hz)
    e1 = np.exp(np.multiply.outer(omega, k))
    en = np.exp(np.multiply.outer(omega, n * k))
    s, c = e1.imag, e1.real
    d0 = en.imag / s
    # D' = (n cos(n u) - D cos(u)) / sin(u); D'' = (1 - n^2) D - 2 D' cos(u) / sin(u)
    d1 = (n * en.real - d0 * c) / s
    d2 = (1.0 - n * n) * d0 - 2.0 * d1 * c / s
    return d0, d1, d2


@lru_cache(maxsize=8)
def _multiples(count: int, rate_hz: float) -> np.ndarray:
    return 1j * np.arange(1.0, 2 * count + 1) / (2.0 * rate_hz)


@lru_cache(maxsize=8)
def _layout(count: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indices of cos and sin of harmonics 1..count in the model
    [DC, cos w t, sin w t, d/dw, cos 2 w t, sin 2 w t, ...] (the leading 3 and 4 columns are the
    classic 3- and 4-parameter IEEE 1057 fits)."""
    h = np.arange(1, count + 1)
    return np.where(h == 1, 1, 2 * h), np.where(h == 1, 2, 2 * h + 1)


@lru_cache(maxsize=8)
def _pair_indices(count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For harmonic orders g, h = 1..count (rows g, columns h): h + g, |h - g| and sign(h - g), the
    indices into the kernel sums (0 .. 2 count) that products of two harmonics fall on."""
    h = np.arange(1, count + 1)
    diff = h[None, :] - h[:, None]
    return h[None, :] + h[:, None], np.abs(diff), np.sign(diff).astype(np.float64)


def _gram(sums, a: np.ndarray, b: np.ndarray, count: int, n: int, rate_hz: float) -> np.ndarray:
    """Gram matrices (rows, p, p) of the model's columns on the centred grid, p = 2 count + 2,
    from the kernel sums at the rows' frequencies (`_kernel_sums`); `a` and `b` (rows, count) are
    the current cos and sin coefficients of harmonics 1..count.

    The derivative column is the whole model's derivative with respect to w at those coefficients,
    d = t sum_h h (b_h cos h w t - a_h sin h w t), so a step is a true Gauss-Newton step of the
    fundamental-plus-harmonics model and the fit ends at its least-squares minimum. Cosine columns
    are orthogonal to sine columns (odd sums vanish), which leaves these entries:
      1.1 = n, 1.cos_h = S0[h], cos_g.cos_h = (S0[|h-g|] + S0[h+g]) / 2,
      sin_g.sin_h = (S0[|h-g|] - S0[h+g]) / 2, 1.d = -sum_h h a_h S1[h],
      cos_g.d = -sum_h h a_h (S1[h+g] + sgn(h-g) S1[|h-g|]) / 2,
      sin_g.d = sum_h h b_h (S1[h+g] + sgn(g-h) S1[|g-h|]) / 2,
      d.d = sum_g,h g h (b_g b_h (S2[|h-g|] + S2[h+g]) + a_g a_h (S2[|h-g|] - S2[h+g])) / 2.
    """
    d0, d1, d2 = sums
    rows = a.shape[0]
    m = 2 * count + 1
    s0 = np.empty((rows, m))
    s0[:, 0] = n
    s0[:, 1:] = d0[:, : m - 1]
    s1 = np.empty((rows, m))
    s1[:, 0] = 0.0
    np.multiply(d1[:, : m - 1], -0.5 / rate_hz, out=s1[:, 1:])
    s2 = np.empty((rows, m))
    s2[:, 0] = n * (n * n - 1.0) / (12.0 * rate_hz**2)
    np.multiply(d2[:, : m - 1], -0.25 / rate_hz**2, out=s2[:, 1:])
    plus, minus, sign = _pair_indices(count)
    cos_idx, sin_idx = _layout(count)
    orders = _orders(count)
    ha, hb = a * orders, b * orders
    p = 2 * count + 2
    gram = np.zeros((rows, p, p))
    gram[:, 0, 0] = n
    gram[:, 0, cos_idx] = gram[:, cos_idx, 0] = s0[:, 1 : count + 1]
    cc = 0.5 * (s0[:, minus] + s0[:, plus])  # (rows, g, h)
    ss = 0.5 * (s0[:, minus] - s0[:, plus])
    gram[:, cos_idx[:, None], cos_idx[None, :]] = cc
    gram[:, sin_idx[:, None], sin_idx[None, :]] = ss
    cross = 0.5 * (s1[:, plus] + sign * s1[:, minus])  # (rows, g, h): sum t cos(g w t) sin(h w t)
    gram[:, 0, 3] = gram[:, 3, 0] = -np.einsum("rh,rh->r", ha, s1[:, 1 : count + 1])
    cos_d = -np.einsum("rgh,rh->rg", cross, ha)
    sin_d = np.einsum("rhg,rh->rg", cross, hb)
    gram[:, cos_idx, 3] = gram[:, 3, cos_idx] = cos_d
    gram[:, sin_idx, 3] = gram[:, 3, sin_idx] = sin_d
    tp = 0.5 * (s2[:, minus] + s2[:, plus])
    tm = 0.5 * (s2[:, minus] - s2[:, plus])
    gram[:, 3, 3] = np.einsum("rg,rgh,rh->r", hb, tp, hb) + np.einsum("rg,rgh,rh->r", ha, tm, ha)
    return gram


def _rhs(spectra: np.ndarray, weighted: np.ndarray, a: np.ndarray, b: np.ndarray, count: int) -> np.ndarray:
    """Projections (rows, p) of the (mean-removed) samples on the model's columns, from
    X_h = sum x exp(-i h w t) and Y_h = sum x t exp(-i h w t), h = 1..count (`weighted`), and the
    current coefficients a, b (rows, count) that shape the derivative column."""
    cos_idx, sin_idx = _layout(count)
    r = np.empty((spectra.shape[0], 2 * count + 2))
    r[:, 0] = 0.0
    r[:, cos_idx] = spectra[:, :count].real
    r[:, sin_idx] = -spectra[:, :count].imag
    orders = _orders(count)
    r[:, 3] = np.einsum("rh,rh->r", b * orders, weighted[:, :count].real) + np.einsum(
        "rh,rh->r", a * orders, weighted[:, :count].imag)
    return r


def _fundamental(spectrum: np.ndarray, sums, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The 3-parameter fit (DC, a cos w t + b sin w t) of mean-removed samples, from X_1: with
    the projection on DC zero and sin orthogonal to DC and cos, the normal equations solve in
    closed form: a = n Re X_1 / (n cc - S0[1]^2), b = -Im X_1 / ss."""
    d0 = sums[0]  # S0[k] for k = 1, 2, ...
    cc = 0.5 * (n + d0[:, 1])
    ss = n - cc
    return n * spectrum.real / (n * cc - d0[:, 0] ** 2), -spectrum.imag / ss


def _solve(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    try:
        if gram.shape[0] == 1:
            return np.linalg.solve(gram[0], rhs[0])[None]
        return np.linalg.solve(gram, rhs[..., None])[..., 0]
    except np.linalg.LinAlgError:
        return (np.linalg.pinv(gram) @ rhs[..., None])[..., 0]


# -- projections: the samples' Fourier transform at the harmonics of the fitted frequency ----------


@lru_cache(maxsize=16)
def _block_times(n: int, rate_hz: float) -> tuple[np.ndarray, np.ndarray, int]:
    """The centred grid split as t = T_b + t_i: block starts T_b and offsets t_i within a block
    (about sqrt(n) of each), and the padded length (blocks x block length >= n)."""
    root = int(math.isqrt(n))
    # a divisor of n near sqrt(n) when there is one, so the blocks tile the window without padding
    inner_n = next((size for size in range(root, max(8, root // 2), -1) if n % size == 0), max(8, root))
    outer_n = -(-n // inner_n)
    t0 = -0.5 * (n - 1) / rate_hz
    return t0 + np.arange(outer_n) * (inner_n / rate_hz), np.arange(inner_n) / rate_hz, outer_n * inner_n


def _phasors(omega: np.ndarray, n: int, rate_hz: float, count: int = 1) -> np.ndarray:
    """exp(-i h w t) on the centred grid for h = 1..count and each row's w: (rows, count, n),
    by angle addition (one outer product of two short tables per harmonic)."""
    outer_t, inner_t, padded = _block_times(n, rate_hz)
    rows = omega.shape[0]
    w = np.multiply.outer(omega, -1j * np.arange(1.0, count + 1))[:, :, None]
    outer = np.exp(w * outer_t)
    inner = np.exp(w * inner_t)
    out = np.empty((rows, count, outer_t.shape[0], inner_t.shape[0]), dtype=np.complex128)
    np.multiply(outer[:, :, :, None], inner[:, :, None, :], out=out)
    return out.reshape(rows, count, padded)[:, :, :n]


def _row_sums(x: np.ndarray) -> np.ndarray:
    return np.add.reduce(x, axis=1)


def _row_squares(x: np.ndarray) -> np.ndarray:
    if x.shape[0] == 1:
        return np.array([np.dot(x[0], x[0])])
    return np.einsum("ij,ij->i", x, x)


class _SineModel:
    """The design matrix of one window shape: DC + sum_h (a_h cos(h w t) + b_h sin(h w t)).

    Column-major so each column is written in place, in the layout of `_layout`: DC, cos(w t),
    sin(w t), the derivative of the fundamental with respect to w (for the Gauss-Newton step),
    then cos and sin of each harmonic 2..count; the leading 3 and 4 columns are the classic 3- and
    4-parameter IEEE 1057 fits.
    """

    def __init__(self, n: int, rate_hz: float, count: int):
        self.count = count
        self.n = n
        self.t = _grid(n, rate_hz)
        self.design = np.empty((n, 2 * count + 2), order="F")
        self.design[:, 0] = 1.0
        self.cos = self.design[:, 1]
        self.sin = self.design[:, 2]
        self.derivative = self.design[:, 3]
        # t = outer + inner: cos and sin of n angles from sqrt(n)-sized tables by angle addition
        self._t_outer, self._t_inner, padded = _block_times(n, rate_hz)
        blocks, block = self._t_outer.shape[0], self._t_inner.shape[0]
        if padded == n:  # write straight into the design's columns
            self._cos2d = self.cos.reshape(blocks, block)
            self._sin2d = self.sin.reshape(blocks, block)
        else:
            self._cos2d, self._sin2d = np.empty((2, blocks, block))
        self.omega = None
        self.gram = None
        self.gram_key = None
        """The Gram matrix of the columns at (omega, columns), reused while they stay the same."""

    def set_frequency(self, omega: float) -> None:
        """cos and sin of the fundamental at omega (the harmonics: `fill_harmonics`)."""
        self.omega = omega
        self.harmonics_filled = False
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

    def fill_harmonics(self) -> None:
        """cos(h w t), sin(h w t) for h = 2..count from the fundamental's, by angle addition."""
        if self.harmonics_filled:
            return
        self.harmonics_filled = True
        d = self.design
        prev_cos, prev_sin = self.cos, self.sin
        for h in range(2, self.count + 1):
            c, s = d[:, 2 * h], d[:, 2 * h + 1]
            np.multiply(prev_cos, self.cos, out=c)
            c -= prev_sin * self.sin
            np.multiply(prev_sin, self.cos, out=s)
            s += prev_cos * self.sin
            prev_cos, prev_sin = c, s

    def set_derivative(self, a: np.ndarray, b: np.ndarray) -> None:
        """t sum_h h (b_h cos h w t - a_h sin h w t): the derivative with respect to w of the
        fundamental and harmonics 2..len(a) at coefficients a, b (the harmonics' columns filled)."""
        a0, b0 = float(a[0]), float(b[0])
        np.multiply(self.cos, b0, out=self.derivative)
        self.derivative -= self.sin * a0
        if a.shape[0] > 1:
            cos_idx, sin_idx = _layout(a.shape[0])
            orders = _orders(a.shape[0])[1:]
            weights = np.empty(2 * (a.shape[0] - 1))
            weights[0::2] = orders * b[1:]
            weights[1::2] = -orders * a[1:]
            self.derivative += self.design[:, 4 : 2 * a.shape[0] + 2] @ weights
        self.derivative *= self.t


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


_PROJECTION_CYCLES = 20.0
"""From this many cycles a window's fundamental is seeded by projections, not a 3-column solve."""


class _Window:
    """One window whose normal equations are formed from its design columns, the classic way:
    for a single window, building a dozen columns of n samples and one BLAS product beats the
    closed forms' many small steps (batches and whole records, where those steps are shared by
    many windows, use `_Windows` and `_Record`). Same model, same Gauss-Newton steps, same numbers."""

    def __init__(self, x: np.ndarray, rate_hz: float, count: int, others: np.ndarray | None = None):
        self.n = x.shape[0]
        self.rate_hz = rate_hz
        self.x = x
        self.others = others
        self.mean = np.zeros(1)  # the DC column takes the mean
        self.other_spectra = None
        self.model = _model(self.n, rate_hz, count)  # its columns are functions of omega alone
        self._columns = 0
        self._rhs_key = None
        self._rhs = None

    def _design(self, omega: np.ndarray, count: int) -> np.ndarray:
        """The design's first 2 count + 2 columns at omega."""
        model = self.model
        w = float(omega[0])
        if model.omega != w:
            model.set_frequency(w)
        if count > 1:
            model.fill_harmonics()
        self._columns = 2 * count + 2
        return model.design[:, : self._columns]

    def fundamental(self, omega: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        """The fundamental's cos and sin coefficients at omega, to seed the derivative column."""
        d = self._design(omega, 1)
        cycles = float(omega[0]) * self.n / self.rate_hz / (2.0 * math.pi)
        if cycles < _PROJECTION_CYCLES:
            coef = np.linalg.solve(d[:, :3].T @ d[:, :3], d[:, :3].T @ self.x)
            return coef[1:2], coef[2:3]
        # over many cycles DC, cos and sin are orthogonal to within 1 / (2 pi cycles): plain
        # projections (the mean removed through the columns' sums) are exact enough to scale a
        # Gauss-Newton step, whose own coefficients are the ones reported
        x, n = self.x, self.n
        mean = float(x.sum()) / n
        cos, sin = d[:, 1], d[:, 2]
        a = 2.0 / n * (float(cos @ x) - mean * float(cos.sum()))
        b = 2.0 / n * (float(sin @ x) - mean * float(sin.sum()))
        return np.array([a]), np.array([b])

    def normal_equations(self, omega: np.ndarray, a: np.ndarray, b: np.ndarray, count: int):
        d = self._design(omega, count)
        model = self.model
        model.set_derivative(a[0], b[0])
        key = (model.omega, self._columns)
        if model.gram_key == key:
            # the same columns as the last window's but for the derivative: only its products change
            gram = model.gram.copy()
            products = d.T @ model.derivative
            gram[3, :] = products
            gram[:, 3] = products
        else:
            gram = d.T @ d
            model.gram, model.gram_key = gram, key
        self._gram = gram
        if self._rhs_key == key:  # the same columns: only the derivative's projection changes
            rhs = self._rhs.copy()
            rhs[3] = model.derivative @ self.x
        else:
            rhs = d.T @ self.x
            self._rhs_key, self._rhs = key, rhs
        return gram[None], rhs[None]

    def rss(self, step: np.ndarray, gram: np.ndarray, rhs: np.ndarray, least_squares: bool) -> np.ndarray:
        residual = self.x - self.model.design[:, : self._columns] @ step[0]
        return np.array([np.dot(residual, residual)])

    def others_power(self, fits: "_Fits") -> np.ndarray:
        """Sum over the other channels of a^2 + b^2, their fundamentals' 3-parameter fits at the
        last step's frequency (1,)."""
        d = self.model.design[:, :3]  # at the last step's frequency, like the last Gram matrix
        coef = np.linalg.solve(self._gram[:3, :3], d.T @ self.others)[1:]  # others: (n, channels)
        return np.array([np.vdot(coef, coef)])


class _ClosedForm:
    """Normal equations from the closed-form Gram matrix and the projections (`project`, `sums`
    and `xx`, the centred sum of squares, come from the subclass)."""

    n: int
    rate_hz: float
    xx: np.ndarray
    other_spectra: np.ndarray | None = None
    _projection = (None, 0, None)
    _sums = (None, 0, None)

    def sums(self, omega: np.ndarray, count: int):
        """Kernel sums at omega (cached for the last omega: a step and the off-axis share them)."""
        key = omega.tobytes()
        if self._sums[0] != key or self._sums[1] < count:
            self._sums = (key, count, _kernel_sums(omega, self.n, self.rate_hz, count))
        return self._sums[2]

    def _projected(self, omega: np.ndarray, count: int):
        key = omega.tobytes()
        if self._projection[0] != key or self._projection[1] < count:
            self._projection = (key, count, self.project(omega, count))
        return self._projection[2]

    def fundamental(self, omega: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        spectra, _ = self._projected(omega, count)
        return _fundamental(spectra[:, 0], self.sums(omega, count), self.n)

    def normal_equations(self, omega: np.ndarray, a: np.ndarray, b: np.ndarray, count: int):
        spectra, weighted = self._projected(omega, count)
        gram = _gram(self.sums(omega, count), a, b, count, self.n, self.rate_hz)
        return gram, _rhs(spectra, weighted, a, b, count)

    def rss(self, step: np.ndarray, gram: np.ndarray, rhs: np.ndarray, least_squares: bool) -> np.ndarray:
        """|x - D s|^2 = x.x - 2 s.r + s'G s, which is x.x - s.r for the least-squares step (G s = r):
        the residual sum of squares without forming the residual."""
        if least_squares:
            return self.xx - np.einsum("ri,ri->r", step, rhs)
        return self.xx + np.einsum("ri,ri->r", step, (gram @ step[:, :, None])[:, :, 0] - 2.0 * rhs)

    def others_power(self, fits: "_Fits") -> np.ndarray:
        """Sum over the other channels of a^2 + b^2, their fundamentals' 3-parameter fits where each
        row's last step was (rows,)."""
        a, b = _fundamental(fits.other_spectra.T, self.sums(fits.projected_omega, 1), self.n)
        return np.add.reduce(a * a + b * b, axis=0)


class _Windows(_ClosedForm):
    """Rows of samples, each its own window on the same centred grid, each with its own frequency.

    Projections are computed block by block, t = T_b + t_i: sum_t x exp(-i h w t) =
    sum_b exp(-i h w T_b) sum_i x[b, i] exp(-i h w t_i). The inner sums for every block, harmonic
    and channel are one real matrix product with a short table of phasors, so no phasor is ever
    formed for every sample. `others` are more channels of the same windows (the other axes):
    `project` also gives their projections on the fundamental (`other_spectra`), for the off-axis
    share, from the same product.
    """

    def __init__(self, x: np.ndarray, rate_hz: float, others: list[np.ndarray] = ()):
        self.n = n = x.shape[1]
        self.rate_hz = rate_hz
        self.outer_t, self.inner_t, padded = _block_times(n, rate_hz)
        self.minus_i_outer_t, self.minus_i_inner_t = -1j * self.outer_t, -1j * self.inner_t
        rows = x.shape[0]
        self.mean = _row_sums(x) / n
        # channels, means removed, zero-padded to whole blocks
        xs = (np.zeros if padded > n else np.empty)((rows, 1 + len(others), padded))
        np.subtract(x, self.mean[:, None], out=xs[:, 0, :n])
        for i, other in enumerate(others):
            np.subtract(other, (_row_sums(other) / n)[:, None], out=xs[:, 1 + i, :n])
        self.xx = _row_squares(xs[:, 0])
        self.blocks = xs.reshape(rows, -1, self.inner_t.shape[0])  # (rows, channels x blocks, block)

    def project(self, omega: np.ndarray, count: int, timed: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """X_h = sum x exp(-i h w t) and Y_h = sum x t exp(-i h w t) for h = 1..count, each
        (rows, count) (`timed` is for the interface: the product that gives X_h gives Y_h too).

        The inner table holds exp(-i h w t_i) for every channel and t_i exp(-i h w t_i) for the
        driven one; with the outer phases exp(-i h w T_b) they give X_h, and since t = T_b + t_i,
        Y_h = sum_b exp(-i h w T_b) (sum_i x t_i exp(-i h w t_i) + T_b sum_i x exp(-i h w t_i)).
        Two products and a few contractions give every column for every channel.
        """
        rows = omega.shape[0]
        inner_n, outer_n = self.inner_t.shape[0], self.outer_t.shape[0]
        # harmonics as powers of the fundamental's phasors (a running product: h rounding errors at most)
        e = np.exp(np.multiply.outer(omega, self.minus_i_inner_t))  # (rows, block)
        table = np.empty((rows, inner_n, count), dtype=np.complex128)
        np.cumprod(np.broadcast_to(e[:, :, None], (rows, inner_n, count)), axis=2, out=table)
        timed = table * self.inner_t[None, :, None]
        o = np.exp(np.multiply.outer(omega, self.minus_i_outer_t))  # (rows, blocks)
        outer = np.empty((rows, count, outer_n), dtype=np.complex128)
        np.cumprod(np.broadcast_to(o[:, None, :], (rows, count, outer_n)), axis=1, out=outer)
        inner = np.matmul(self.blocks, table.view(np.float64)).view(np.complex128)
        inner = inner.reshape(rows, -1, outer_n, count)  # (rows, channels, blocks, harmonics)
        inner_timed = np.matmul(self.blocks[:, :outer_n], timed.view(np.float64)).view(np.complex128)
        z = np.einsum("rhb,rcbh->rch", outer, inner)
        self.other_spectra = z[:, 1:, 0]
        weighted = np.einsum("rhb,rbh->rh", outer, inner_timed)
        weighted += np.einsum("rhb,rbh->rh", outer * self.outer_t, inner[:, 0])
        return z[:, 0, :count], weighted


class _Record(_ClosedForm):
    """One long window (a whole recording), held as consecutive segments of samples.

    Its projections at one frequency are the segments' projections, each turned by the phase of
    its centre: sum over the record of x exp(-i h w t) = sum_r exp(-i h w c_r) sum_j x exp(-i h w t_j)
    with t_j the segment's own centred grid and c_r its centre on the record's grid.
    """

    def __init__(self, x: np.ndarray, rate_hz: float, segment_n: int):
        self.rate_hz = rate_hz
        self.n = n = x.shape[0]
        self.segment_n = segment_n = min(segment_n, n)
        self.rows = n // segment_n
        self.x = x
        self.mean = np.array([_mean(x)])
        self.xx = np.array([_centred_square_sum(x, self.mean[0])])

    def _segments(self):
        """(samples, centre offset on the record's grid) of each run of whole segments, then the tail."""
        m = self.segment_n
        per_batch = max(1, _BATCH_SAMPLES // m)
        centre = 0.5 * (self.n - 1)
        for start in range(0, self.rows, per_batch):
            stop = min(self.rows, start + per_batch)
            block = self.x[start * m : stop * m].reshape(stop - start, m)
            offsets = (np.arange(start, stop) * m + 0.5 * (m - 1) - centre) / self.rate_hz
            yield block, offsets
        tail = self.n - self.rows * m
        if tail:
            offset = (self.rows * m + 0.5 * (tail - 1) - centre) / self.rate_hz
            yield self.x[self.rows * m :][None, :], np.array([offset])

    def project(self, omega: np.ndarray, count: int, timed: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """X_h and (when `timed`; zeros otherwise) Y_h, as `_Windows.project`, for the one row."""
        w = float(omega[0])
        spectra = np.zeros(count, dtype=np.complex128)
        weighted = np.zeros(count, dtype=np.complex128)
        basis = {}
        for block, offsets in self._segments():
            m = block.shape[1]
            if m not in basis:
                basis[m] = _segment_basis(w, m, self.rate_hz, count, timed)
            columns, sums = basis[m]
            proj = (block @ columns - self.mean[0] * sums).view(np.complex128)  # (segments, count or 2 count)
            turn = np.exp(np.multiply.outer(offsets, -1j * w * np.arange(1, count + 1)))
            spectra += np.einsum("rh,rh->h", proj[:, :count], turn)
            if timed:
                weighted += np.einsum("rh,rh->h", proj[:, count:] + offsets[:, None] * proj[:, :count], turn)
        return spectra[None, :], weighted[None, :]


def _segment_basis(omega: float, m: int, rate_hz: float, count: int, timed: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Columns (m, 4 count) holding re and im of exp(-i h w t) and (when `timed`) of
    t exp(-i h w t) for h = 1..count on a segment's centred grid, and their column sums (to
    remove the mean)."""
    k = 2 * count if timed else count
    cols = np.empty((k, m), dtype=np.complex128)
    cols[:count] = _phasors(np.array([omega]), m, rate_hz, count)[0]
    if timed:
        np.multiply(cols[:count], _grid(m, rate_hz), out=cols[count:])
    real = np.ascontiguousarray(cols.view(np.float64).reshape(k, m, 2).transpose(1, 0, 2)).reshape(m, -1)
    return real, real.sum(axis=0)


def _mean(x: np.ndarray) -> float:
    return float(np.add.reduce(x, dtype=np.float64)) / x.shape[0]


def _centred_square_sum(x: np.ndarray, mean: float) -> float:
    total = 0.0
    for start in range(0, x.shape[0], _BATCH_SAMPLES):
        chunk = x[start : start + _BATCH_SAMPLES] - mean
        total += float(np.dot(chunk, chunk))
    return total


# -- the fit ------------------------------------------------------------------------------------------


@dataclass
class _Fits:
    """Per-row results of the Gauss-Newton fit (arrays over rows)."""

    omega: np.ndarray
    coef: np.ndarray
    """(rows, 2 count + 2) in the model's layout; DC is relative to the row mean."""
    rss: np.ndarray
    count: int
    n: int
    mean: np.ndarray
    other_spectra: np.ndarray | None = None
    """X_1 of the other channels (`_Windows`), at `projected_omega`: where each row's last step was made."""
    projected_omega: np.ndarray | None = None
    var_omega: np.ndarray | None = None
    """Variance of the frequency (rad/s squared) from the last step's normal equations."""
    var_amplitude: np.ndarray | None = None
    """Variance of the fundamental's peak amplitude, likewise."""

    def tone(self, i: int, rate_hz: float, t_first: float, harmonic_phases: bool = True) -> ToneFit:
        """Row i as a ToneFit; `harmonic_phases=False` leaves the harmonics' phases out (a
        Measurement has no use for them, and a session measures every window)."""
        count = self.count if harmonic_phases else 1
        cos_idx, sin_idx = _layout(self.count)
        a = self.coef[i, cos_idx]
        b = self.coef[i, sin_idx]
        amplitudes = np.hypot(a, b)
        omega = float(self.omega[i])
        # a cos(w t) + b sin(w t) = A cos(w t + phi) with phi = atan2(-b, a); shift t to the first sample
        phases = [math.remainder(v, 2.0 * math.pi)
                  for v in (np.arctan2(-b[:count], a[:count]) + _orders(count) * (omega * t_first)).tolist()]
        dof = max(1, self.n - (2 * self.count + 2))
        return ToneFit(
            frequency_hz=omega / (2.0 * math.pi),
            amplitude=float(amplitudes[0]),
            phase_rad=phases[0],
            offset=float(self.coef[i, 0] + self.mean[i]),
            harmonics=tuple(amplitudes[1:].tolist()),
            noise_rms=math.sqrt(max(0.0, float(self.rss[i])) / dof),
            n=self.n,
            rate_hz=rate_hz,
            harmonic_phases_rad=tuple(phases[1:]),
            frequency_u_hz=math.sqrt(float(self.var_omega[i])) / (2.0 * math.pi) if self.var_omega is not None else math.nan,
            amplitude_u=math.sqrt(float(self.var_amplitude[i])) if self.var_amplitude is not None else math.nan,
        )


@lru_cache(maxsize=8)
def _orders(count: int) -> np.ndarray:
    return np.arange(1.0, count + 1)


def harmonics_observable(frequency_hz: float, rate_hz: float, n: int, n_harmonics: int = N_HARMONICS) -> int:
    """How many of harmonics 1..n_harmonics (the fundamental counts as 1) a window of n samples
    can measure: those at least one bin (rate / n) below the Nyquist frequency. Closer to it, a
    harmonic and its alias (mirrored about Nyquist) are no longer resolved in the window, and at
    or past it the samples cannot tell it from a lower tone at all. NaN counts as just the
    fundamental."""
    limit_hz = 0.5 * rate_hz - rate_hz / n
    if not (frequency_hz > 0 and math.isfinite(frequency_hz)):
        return 1
    return max(1, min(n_harmonics, int(limit_hz // frequency_hz)))


def _harmonic_count(frequency_hz: float, rate_hz: float, n: int, n_harmonics: int) -> int:
    return harmonics_observable(frequency_hz, rate_hz, n, n_harmonics)


def _gauss_newton(signal, omega_start: np.ndarray, count: int, max_shift: float, *, close: bool = False) -> _Fits:
    """IEEE 1057 fit of every row of `signal` (a _Windows or _Record), from the coarse frequencies.

    The 3-parameter fit at the coarse frequency gives the fundamental's coefficients. Gauss-Newton
    steps of the 4-parameter fit on the fundamental alone come next: cheap, and converging
    quadratically from the FFT estimate to a hundredth of a cycle over the window, usually in one
    step. Then joint steps of the whole model, DC, fundamental and harmonics with the frequency
    derivative of all of them, so that distortion neither biases the fundamental nor hides in the
    residual and the fit ends at the model's least-squares minimum, until what a step leaves is a
    small share of the noise-limited spread of the frequency (the CRLB, from the fit's own SNR;
    `_converged`). The first joint step knows no harmonic yet (its derivative column is the
    fundamental's), so on a distorted tone a second step follows.
    A row whose step would take it more than `max_shift` (one FFT bin) from its coarse estimate
    stays where it is. The last step's coefficients are reported, with the covariance of the
    frequency and the fundamental's amplitude from that step's normal equations and residual.
    `close` says the start is already within a hundredth of a cycle (a tracked frequency): the
    fundamental-only steps are skipped.

    One piece, by choice: the two kinds of step share their state (the rows still moving, their
    coefficients, the last step's normal equations), and their order is the algorithm, read top to
    bottom; tests/test_analysis.py and scripts/bench_estimator.py pin it against the CRLB.
    """
    n, rate = signal.n, signal.rate_hz
    duration_s = n / rate
    omega = omega_start
    rows = omega.shape[0]
    a, b = signal.fundamental(omega, 1)
    pending = np.ones(rows, dtype=bool) if rows > 1 else None
    for _ in range(0 if close else _MAX_NEWTON_STEPS):  # the fundamental alone, to a hundredth of a cycle
        step = _solve(*signal.normal_equations(omega, a[:, None], b[:, None], 1))
        d_omega = step[:, 3]
        if rows == 1:  # one window (a session's): the same tests on plain numbers, much quicker
            d = float(d_omega[0])
            if not abs(float(omega[0]) + d - float(omega_start[0])) <= max_shift:  # also NaN
                break
            omega, a, b = omega + d_omega, step[:, 1], step[:, 2]
            if abs(d) * duration_s < 1e-2:
                break
            continue
        move = pending & (np.abs(omega + d_omega - omega_start) <= max_shift)  # False for NaN
        if move.all():
            omega, a, b = omega + d_omega, step[:, 1], step[:, 2]
        else:
            omega = np.where(move, omega + d_omega, omega)
            a = np.where(move, step[:, 1], a)
            b = np.where(move, step[:, 2], b)
        pending = move & (np.abs(d_omega) * duration_s >= 1e-2)
        if not pending.any():
            break
    p = 2 * count + 2
    cos_idx, sin_idx = _layout(count)
    ca = np.zeros((rows, count))
    cb = np.zeros((rows, count))
    ca[:, 0], cb[:, 0] = a, b
    pending = np.ones(rows, dtype=bool) if rows > 1 else None
    result = rss = others = projected = grams = None
    dof = max(1, n - p)
    for iteration in range(_MAX_NEWTON_STEPS):
        gram, rhs = signal.normal_equations(omega, ca, cb, count)
        if iteration == 0 and count > 1:
            # the harmonics at the start, from the linear part of the same normal equations (the
            # projections are the same), so that the first step's derivative column has them too
            ca, cb = _linear_harmonics(gram, rhs, count)
            gram, rhs = signal.normal_equations(omega, ca, cb, count)
        step = _solve(gram, rhs)
        d_omega = step[:, 3]
        if rows == 1:  # one window: plain numbers, as above
            d = float(d_omega[0])
            moved = abs(float(omega[0]) + d - float(omega_start[0])) <= max_shift
            if not moved:
                d = 0.0
                step[:, 3] = 0.0
            result, rss, projected, grams = step, signal.rss(step, gram, rhs, moved), omega, gram
            others = signal.other_spectra
            omega, ca, cb = omega + d, step[:, cos_idx], step[:, sin_idx]
            amplitude2 = float(step[0, 1]) ** 2 + float(step[0, 2]) ** 2
            if not moved or _converged(abs(d) * duration_s, amplitude2, float(rss[0]), n, dof):
                break
            continue
        moved = np.abs(omega + d_omega - omega_start) <= max_shift  # False for NaN
        least_squares = bool(moved.all())
        if not least_squares:
            d_omega = np.where(moved, d_omega, 0.0)
            step[:, 3] = d_omega
        step_rss = signal.rss(step, gram, rhs, least_squares)
        current = signal.other_spectra
        if pending.all():  # every row moves: no masks needed
            result, rss, projected, others, grams = step, step_rss, omega, current, gram
            omega = omega + d_omega
            ca, cb = step[:, cos_idx], step[:, sin_idx]
        else:
            result = np.where(pending[:, None], step, result)
            rss = np.where(pending, step_rss, rss)
            projected = np.where(pending, omega, projected)
            grams = np.where(pending[:, None, None], gram, grams)
            if current is not None:
                others = np.where(pending[:, None], current, others)
            omega = np.where(pending, omega + d_omega, omega)
            ca = np.where(pending[:, None], step[:, cos_idx], ca)
            cb = np.where(pending[:, None], step[:, sin_idx], cb)
        amplitude2 = np.einsum("ri,ri->r", step[:, 1:3], step[:, 1:3])
        pending &= moved & ~_converged(np.abs(d_omega) * duration_s, amplitude2, step_rss, n, dof)
        if not pending.any():
            break
    var_omega, var_amplitude = _variances(grams, result, rss, dof, count)
    return _Fits(omega=omega, coef=result, rss=rss, count=count, n=n, mean=signal.mean,
                 other_spectra=others, projected_omega=projected, var_omega=var_omega,
                 var_amplitude=var_amplitude)


def _linear_harmonics(gram: np.ndarray, rhs: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The cos and sin coefficients (rows, count) of the linear fit at the current frequency: the
    normal equations without the derivative's row and column."""
    keep = _linear_columns(count)
    linear = np.zeros_like(rhs)
    linear[:, keep] = _solve(gram[:, keep[:, None], keep[None, :]], rhs[:, keep])
    cos_idx, sin_idx = _layout(count)
    return linear[:, cos_idx], linear[:, sin_idx]


@lru_cache(maxsize=8)
def _linear_columns(count: int) -> np.ndarray:
    """Every column of the model but the derivative's."""
    return np.r_[0:3, 4 : 2 * count + 2]


def _variances(grams: np.ndarray, coef: np.ndarray, rss: np.ndarray, dof: int, count: int = 1
               ) -> tuple[np.ndarray, np.ndarray]:
    """Variances of the frequency (rad/s, squared) and of the fundamental's peak amplitude, per
    row: the least-squares covariance s^2 G^-1 of the whole model (DC, fundamental, frequency,
    harmonics) at the last step, s^2 = rss / dof. With harmonics sharing the frequency and a window
    of few cycles (where the columns are far from orthogonal) this is the spread the fit really
    has, not the single-tone bound.

    The frequency's is corrected for the noise in the harmonics' coefficients (a pair's noise
    power is 4 s^2 / n), which shape the derivative column in proportion to their order h:
    - a harmonic fitted to noise alone still has an amplitude, and taken as signal it would lend
      the frequency information it does not carry: the information sum_h h^2 P_h (P_h = a_h^2 +
      b_h^2, h = 1 the fundamental) counts only the power beyond noise;
    - that noise also moves the fitted frequency: the variance grows by
      sum_{h >= 2} h^2 (4 s^2 / n) / P_1.
    At 0 dB per sample on 1000 samples they change the spread by -3 % and +5 %; at the SNRs
    sessions see, by nothing."""
    cos_idx, sin_idx = _layout(count)
    h2 = _orders(count) ** 2
    n = dof + 2 * count + 2
    if grams.shape[0] == 1:  # one window (a session's): plain numbers
        try:
            inverse = np.linalg.inv(grams[0])
        except np.linalg.LinAlgError:
            inverse = np.linalg.pinv(grams[0])
        s2 = max(float(rss[0]), 0.0) / dof
        a, b = float(coef[0, 1]), float(coef[0, 2])
        amplitude2 = a * a + b * b
        if not amplitude2 > 0:
            return np.array([math.inf]), np.array([math.inf])
        noise = 4.0 * s2 / n
        power = (coef[0, cos_idx] ** 2 + coef[0, sin_idx] ** 2).tolist()
        orders2 = h2.tolist()
        information = sum(p * h for p, h in zip(power, orders2))
        signal_information = amplitude2 + sum(max(p - noise, 0.0) * h for p, h in zip(power[1:], orders2[1:]))
        correction = information / signal_information * (1.0 + noise * sum(orders2[1:]) / amplitude2)
        var_amplitude = s2 * (a * a * inverse[1, 1] + 2 * a * b * inverse[1, 2] + b * b * inverse[2, 2]) / amplitude2
        return np.array([s2 * inverse[3, 3] * correction]), np.array([var_amplitude])
    with np.errstate(all="ignore"):
        try:
            inverse = np.linalg.inv(grams)
        except np.linalg.LinAlgError:
            inverse = np.linalg.pinv(grams)
        s2 = np.maximum(rss, 0.0) / dof
        a, b = coef[:, 1], coef[:, 2]
        amplitude2 = a * a + b * b
        noise = 4.0 * s2 / n
        power = coef[:, cos_idx] ** 2 + coef[:, sin_idx] ** 2
        information = power @ h2
        signal_information = amplitude2 + np.maximum(power[:, 1:] - noise[:, None], 0.0) @ h2[1:]
        correction = information / signal_information * (1.0 + noise * float(np.sum(h2[1:])) / amplitude2)
        var_omega = s2 * inverse[:, 3, 3] * correction
        var_amplitude = s2 * (a * a * inverse[:, 1, 1] + 2 * a * b * inverse[:, 1, 2] + b * b * inverse[:, 2, 2])
        var_amplitude = np.where(amplitude2 > 0, var_amplitude / amplitude2, np.inf)
        var_omega = np.where(amplitude2 > 0, var_omega, np.inf)
    return var_omega, var_amplitude


def _converged(phase_step, amplitude2, rss, n: int, dof: int):
    """Whether the frequency a joint step reached is final: what is left after the step is under
    5 % of the CRLB spread of the frequency at this SNR. `phase_step` is |dw| T (rad), the step as
    a phase across the window; numbers or arrays.

    What a Gauss-Newton step of the whole model leaves is a small share of the step itself: the
    noise bends the model away from its linearisation. That share, measured from 0 to 60 dB SNR
    per sample, stays under 0.1 / sqrt(snr) + 0.01 (the constants carry a margin). So the step is
    final when (0.1 / sqrt(snr) + 0.01) |dw| T < 0.05 sigma, sigma = sqrt(12 / (snr n)) being the
    CRLB of the phase across the window, with snr = (a^2 + b^2) / 2 / (rss / dof).
    """
    if isinstance(phase_step, float):  # one window: plain numbers
        if not (amplitude2 > 0 and rss > 0):
            return amplitude2 <= 0 or rss <= 0
        snr = 0.5 * amplitude2 * dof / rss
        return (0.1 / math.sqrt(snr) + 0.01) * phase_step < 0.05 * math.sqrt(12.0 / (snr * n))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        snr = 0.5 * amplitude2 * dof / np.maximum(rss, 1e-300)
        sigma = np.sqrt(12.0 / (snr * n))
        # no tone left to refine (zero amplitude): nothing more a step could find
        return ((0.1 / np.sqrt(snr) + 0.01) * phase_step < 0.05 * sigma) | (amplitude2 <= 0)


def _fixed_frequency_fit(signal, omega: np.ndarray, count: int) -> _Fits:
    """Linear fit of DC and harmonics 1..count at known frequencies (other axes of a recording)."""
    spectra, weighted = signal.project(omega, count, timed=False)
    zeros = np.zeros((omega.shape[0], count))
    keep = _linear_columns(count)
    gram = _gram(signal.sums(omega, count), zeros, zeros, count, signal.n, signal.rate_hz)[:, keep[:, None], keep[None, :]]
    rhs = _rhs(spectra, weighted, zeros, zeros, count)[:, keep]
    step = _solve(gram, rhs)
    rss = signal.xx - np.einsum("ri,ri->r", step, rhs)
    coef = np.zeros((omega.shape[0], 2 * count + 2))
    coef[:, keep] = step
    return _Fits(omega=omega, coef=coef, rss=rss, count=count, n=signal.n, mean=signal.mean)


def _coarse(x: np.ndarray, rate_hz: float, search_hz: tuple[float, float] | None) -> np.ndarray:
    """Coarse frequency of every row (Hz), NaN where a row is flat."""
    n = x.shape[1]
    bin_hz = rate_hz / n
    lo_bin = 2
    hi_bin = n // 2 - 1
    if search_hz is not None:
        lo_bin = max(lo_bin, int(math.floor(search_hz[0] / bin_hz)))
        hi_bin = min(hi_bin, int(math.ceil(search_hz[1] / bin_hz)))
    if hi_bin < lo_bin:
        raise AnalysisError("the window is too short to resolve the frequency band searched")
    # no need to remove the mean: a periodic Hann window confines DC to bins 0 and 1
    spectrum = np.fft.rfft(x * _hann(n))
    # flat: nothing in the band above the FFT's rounding of the DC (gravity) line
    floor = _FLAT * np.abs(spectrum[:, 0])
    spectrum = np.abs(spectrum[:, lo_bin - 1 : hi_bin + 2])
    if x.shape[0] == 1:  # one window (a session's): numbers, not arrays, are quicker
        k0 = int(np.argmax(spectrum[0, 1:-1])) + 1
        left, centre, right = spectrum[0, k0 - 1 : k0 + 2].tolist()
        if not centre > floor[0]:
            return np.array([np.nan])
        return np.array([(lo_bin - 1 + k0 + _peak_offset(left, centre, right)) * bin_hz])
    k = 1 + np.argmax(spectrum[:, 1:-1], axis=1)
    width = spectrum.shape[1]
    left, centre, right = np.take(spectrum, (k + np.arange(0, width * x.shape[0], width))[:, None] + (-1, 0, 1)).T
    flat = ~(centre > floor)
    frequency = (lo_bin - 1 + k + _peak_offset(left, np.where(flat, 1.0, centre), right)) * bin_hz
    if flat.any():
        frequency[flat] = np.nan
    return frequency


def _peak_offset(left, centre, right):
    """Offset (bins) of a tone from the largest bin k, from its neighbours: under a periodic Hann
    window a pure tone has |X[k+1]| / |X[k]| = (1 + d) / (2 - d). Numbers or arrays."""
    ratio = np.maximum(left, right) / centre
    return np.copysign((2.0 * ratio - 1.0) / (ratio + 1.0), right - left)


def _fit_rows(
    x: np.ndarray, rate_hz: float, search_hz: tuple[float, float] | None, n_harmonics: int, others=(),
    min_cycles: float = MIN_CYCLES,
) -> tuple[np.ndarray, list[tuple[np.ndarray, _Fits, "_Windows | _Window"]]]:
    """Fit every row of x (rows, n), each its own window. Returns the coarse frequencies (NaN for
    a flat row) and, for each group of rows that can measure the same harmonics (`_harmonic_count`
    of their own frequency), the rows' indices, their fits and the rows as a signal. A row with
    fewer than `min_cycles` cycles or no tone is fitted from a stand-in frequency: its caller must
    not report it."""
    n = x.shape[1]
    if n < 16:
        raise AnalysisError(f"{n} samples are too few to measure a vibration")
    coarse = _coarse(x, rate_hz, search_hz)
    duration_s = n / rate_hz
    ok = np.isfinite(coarse) & (coarse * duration_s >= min_cycles)
    start_hz = coarse if ok.all() else np.where(ok, coarse, np.max(coarse[ok]) if ok.any() else MIN_CYCLES / duration_s)
    counts = np.array([_harmonic_count(float(f), rate_hz, n, n_harmonics) for f in start_hz])
    groups = []
    for count in np.unique(counts):
        rows = np.flatnonzero(counts == count)
        if rows.shape[0] == x.shape[0]:
            fits, signal = _fit_from(x, rate_hz, start_hz, n_harmonics, others)
        else:
            fits, signal = _fit_from(x[rows], rate_hz, start_hz[rows], n_harmonics, [o[rows] for o in others])
        groups.append((rows, fits, signal))
    return coarse, groups


def _fit_from(x: np.ndarray, rate_hz: float, start_hz: np.ndarray, n_harmonics: int, others=(), close: bool = False):
    """The fine fit of every row from its coarse frequency: one window alone forms its normal
    equations from its design columns (`_Window`), several at once from the closed forms
    (`_Windows`); the Gauss-Newton steps are the same. `others` are the other channels: a list of
    arrays shaped like x, or for one window also an (n, channels) array."""
    n = x.shape[1]
    count = _harmonic_count(float(np.nanmax(start_hz)), rate_hz, n, n_harmonics)
    if x.shape[0] == 1:
        if isinstance(others, list):
            others = np.column_stack([o[0] for o in others]) if others else None
        signal = _Window(x[0], rate_hz, count, others)
    else:
        signal = _Windows(x, rate_hz, others)
    return _gauss_newton(signal, 2.0 * math.pi * start_hz, count, 2.0 * math.pi * rate_hz / n, close=close), signal


def _one_row(
    x: np.ndarray, rate_hz: float, search_hz, n_harmonics: int, others=(), hint_hz: float | None = None,
    min_cycles: float = MIN_CYCLES,
) -> tuple[_Fits, "_Window"]:
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    if n < 16:
        raise AnalysisError(f"{n} samples are too few to measure a vibration")
    if not np.isfinite(np.dot(x, x)):
        raise AnalysisError("the samples contain NaN or infinite values")
    if hint_hz is not None and hint_hz * n / rate_hz >= MIN_CYCLES:
        tracked = _tracked(x, rate_hz, hint_hz, n_harmonics, others)
        if tracked is not None:
            return tracked
    coarse = _coarse(x[None, :], rate_hz, search_hz)
    _raise_unmeasurable(float(coarse[0]), n / rate_hz, min_cycles)
    return _fit_from(x[None, :], rate_hz, coarse, n_harmonics, others)


def _tracked(x: np.ndarray, rate_hz: float, hint_hz: float, n_harmonics: int, others):
    """The fit started at a tracked frequency (the last window's), or None when the result does not
    show that the tone is still there: the fit must stay within a quarter of an FFT bin of the
    hint, and its fundamental must carry most of the window's AC power. Then the coarse FFT search,
    which this skips, could not have found a different tone."""
    n = x.shape[0]
    # a session's frequency barely moves: start where the last window's design was, when that is
    # within a thousandth of a cycle of the hint, and its columns are reused as they are
    model = _model(n, rate_hz, _harmonic_count(hint_hz, rate_hz, n, n_harmonics))
    if model.omega is not None and abs(model.omega / (2.0 * math.pi) - hint_hz) * n / rate_hz < 1e-3:
        hint_hz = model.omega / (2.0 * math.pi)
    fits, signal = _fit_from(x[None, :], rate_hz, np.array([hint_hz]), n_harmonics, others, close=True)
    moved_hz = abs(float(fits.omega[0]) / (2.0 * math.pi) - hint_hz)
    fundamental_power = 0.5 * (float(fits.coef[0, 1]) ** 2 + float(fits.coef[0, 2]) ** 2)
    mean = float(x.sum()) / n
    ac_power = float(np.dot(x, x)) / n - mean * mean
    if moved_hz <= 0.25 * rate_hz / n and fundamental_power >= 0.5 * ac_power:
        return fits, signal
    return None


def _raise_unmeasurable(coarse_hz: float, duration_s: float, min_cycles: float = MIN_CYCLES) -> None:
    if math.isnan(coarse_hz):
        raise AnalysisError("the signal is flat: no vibration in the samples")
    if coarse_hz * duration_s < min_cycles:
        raise AnalysisError(
            f"the window holds {coarse_hz * duration_s:.1f} cycles of {coarse_hz:.1f} Hz; "
            f"at least {min_cycles:g} are needed"
        )


def fit_tone(
    x: np.ndarray,
    rate_hz: float,
    *,
    search_hz: tuple[float, float] | None = None,
    n_harmonics: int = N_HARMONICS,
) -> ToneFit:
    """Fit a sine (with DC and harmonics) to `x`; see the module docstring for the method."""
    fits, _ = _one_row(x, rate_hz, search_hz, n_harmonics)
    return fits.tone(0, rate_hz, _first_time(fits.n, rate_hz))


# -- measurements -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    """What one window (or one recording) of accelerometer samples says about the vibration."""

    frequency_hz: float
    peak_mps2: float
    """Peak acceleration of the fundamental on the driven axis (gravity and harmonics excluded)."""
    thd_percent: float
    """Harmonics 2-5 over the fundamental (amplitude ratio, %). NaN when the sample rate hides any
    of them (`thd_harmonics` < 4): a harmonic that cannot be observed cannot be measured, so such
    a THD is unverifiable, never 0 %."""
    snr_db: float
    """Fundamental power over noise power, harmonics excluded (per sample)."""
    sinad_db: float
    """Fundamental power over noise-plus-distortion power (per sample)."""
    dc_mps2: float
    """The driven axis's DC level: +1 g of gravity on a vertical axis at rest."""
    axis: str
    off_axis_percent: float
    """Fundamental on the other axes (root-sum-square) over the driven axis's, in percent."""
    duration_s: float
    phase_rad: float = math.nan
    """Phase of the driven axis's fundamental at the first sample (cosine convention)."""
    frequency_u_hz: float = math.nan
    """Standard uncertainty (k = 1) of the frequency: the least-squares covariance of the whole model (DC,
    fundamental, harmonics) at the measured noise; for a window of many cycles of a tone in white
    noise, the Cramer-Rao bound."""
    peak_u_mps2: float = math.nan
    """Standard uncertainty (k = 1) of the peak acceleration, likewise."""
    rate_hz: float = math.nan
    """The sample rate the window was measured at."""
    thd_harmonics: int = N_HARMONICS - 1
    """How many of harmonics 2-5 lie at least one bin below the Nyquist frequency and were fitted."""
    thd_seen_percent: float = math.nan
    """THD over those harmonics only: the THD itself when all four were, a lower bound otherwise."""

    # g at the edges: what people read, the dose log stores and --json prints

    @property
    def peak_g(self) -> float:
        return self.peak_mps2 / G_MPS2

    @property
    def rms_g(self) -> float:
        """RMS of the fundamental (peak / sqrt 2), g."""
        return self.peak_mps2 / G_MPS2 / math.sqrt(2.0)

    @property
    def dc_g(self) -> float:
        return self.dc_mps2 / G_MPS2

    @property
    def peak_u_g(self) -> float:
        return self.peak_u_mps2 / G_MPS2

    @property
    def thd_verifiable(self) -> bool:
        return self.thd_harmonics >= N_HARMONICS - 1

    KEYS: ClassVar[tuple[str, ...]] = (
        "frequency_hz", "peak_g", "rms_g", "thd_percent", "snr_db", "sinad_db", "dc_g", "axis", "off_axis_percent",
        "duration_s", "phase_rad", "frequency_u_hz", "peak_u_g", "rate_hz", "thd_harmonics", "thd_seen_percent",
    )
    """What `to_dict` gives, in this order: accelerations in g."""

    def to_dict(self) -> dict:
        """The measurement in g, as the dose log and --json give it."""
        return {key: getattr(self, key) for key in self.KEYS}


def driven_axis(accel: np.ndarray) -> int:
    """Index of the axis with the most AC power (one axis at a time: no copy of the whole record)."""
    return int(np.argmax([np.var(accel[:, i]) for i in range(accel.shape[1])]))


def _as_axes(accel_mps2: np.ndarray) -> np.ndarray:
    accel = np.asarray(accel_mps2, dtype=np.float64)
    if accel.ndim == 1:
        accel = accel[:, None]
    if accel.ndim != 2 or accel.shape[1] > len(AXES) or accel.shape[1] == 0:
        raise AnalysisError(f"expected samples shaped (n, 1..3), got {accel.shape}")
    return accel


def axis_index(axis: str | int, accel: np.ndarray) -> int:
    """The driven axis's column: "auto" picks the one with the most AC power."""
    if axis == "auto":
        return driven_axis(accel)
    if isinstance(axis, str):
        if axis not in AXES[: accel.shape[1]]:
            raise AnalysisError(f"axis {axis!r} is not among the recorded axes {AXES[: accel.shape[1]]}")
        return AXES.index(axis)
    return int(axis)


def _measurement(fit: ToneFit, axis: str, off_axis: float, duration_s: float) -> Measurement:
    seen = min(len(fit.harmonics), N_HARMONICS - 1)
    seen_thd_percent = 100.0 * fit.thd_fraction
    return Measurement(
        frequency_hz=fit.frequency_hz,
        peak_mps2=fit.amplitude,
        thd_percent=seen_thd_percent if seen >= N_HARMONICS - 1 else math.nan,
        snr_db=fit.snr_db,
        sinad_db=fit.sinad_db,
        dc_mps2=fit.offset,
        axis=axis,
        off_axis_percent=100.0 * off_axis,
        duration_s=duration_s,
        phase_rad=fit.phase_rad,
        frequency_u_hz=fit.frequency_u_hz,
        peak_u_mps2=fit.amplitude_u,
        rate_hz=fit.rate_hz,
        thd_harmonics=seen,
        thd_seen_percent=seen_thd_percent,
    )


def _off_axis(signal, fits: _Fits) -> np.ndarray:
    """Fundamental amplitude on the other axes (root-sum-square) over the driven axis's, for each
    row: 3-parameter fits of the other axes at the frequency of the driven axis's last step."""
    driven2 = fits.coef[:, 1] ** 2 + fits.coef[:, 2] ** 2  # the fundamental's cos and sin columns
    return np.sqrt(signal.others_power(fits) / np.where(driven2 > 0, driven2, np.inf))


def measure(
    accel_mps2: np.ndarray,
    rate_hz: float,
    *,
    axis: str | int = "auto",
    search_hz: tuple[float, float] | None = None,
    hint_hz: float | None = None,
    min_cycles: float = MIN_CYCLES,
) -> Measurement:
    """Measure one window: `accel_mps2` is (n,) or (n, axes) in m/s^2, axes in x, y, z order.

    `hint_hz` tracks a tone measured before (a session's previous window): the fit starts there and
    skips the coarse FFT search when the result shows the tone is still there (`_tracked`); the
    numbers are the same as without the hint, to well within the estimator's own spread. A tone
    found with fewer than `min_cycles` cycles in the window is refused (AnalysisError).
    """
    accel = _as_axes(accel_mps2)
    index = axis_index(axis, accel)
    axes = accel.shape[1]
    # the other axes as one (n, k) array: a view when the driven axis is the first or the last
    others = accel[:, 1:] if index == 0 else accel[:, :-1] if index == axes - 1 else accel[:, [0, 2]]
    others = others if axes > 1 else None
    fits, signal = _one_row(accel[:, index], rate_hz, search_hz, N_HARMONICS, others, hint_hz, min_cycles)
    n = accel.shape[0]
    off_axis = float(_off_axis(signal, fits)[0]) if others is not None else 0.0
    return _measurement(fits.tone(0, rate_hz, _first_time(n, rate_hz), False), AXES[index], off_axis, n / rate_hz)


def measure_windows(
    accel_mps2: np.ndarray,
    rate_hz: float,
    window_n: int,
    *,
    axis: int,
    search_hz: tuple[float, float] | None = None,
    names: tuple[str, ...] = AXES,
    min_cycles: float = MIN_CYCLES,
) -> list[Measurement | AnalysisError]:
    """Measure consecutive windows of `window_n` samples, many at a time, with the same estimator
    as `measure` (one result per window, the same numbers `measure` gives it). `accel_mps2` is
    (n, axes) with n a multiple of `window_n`; axes are best stored column by column (F order),
    and `names` names them (x, y, z by default).
    A window without a measurable tone gives its AnalysisError instead of a Measurement."""
    accel = _as_axes(accel_mps2)
    n_windows = accel.shape[0] // window_n
    if n_windows * window_n != accel.shape[0]:
        raise ValueError("the samples must be a whole number of windows")
    duration_s = window_n / rate_hz
    t_first = _first_time(window_n, rate_hz)
    per_batch = max(1, _BATCH_SAMPLES // window_n)
    results: list[Measurement | AnalysisError] = []
    for start in range(0, n_windows, per_batch):
        stop = min(n_windows, start + per_batch)
        rows = [np.ascontiguousarray(accel[start * window_n : stop * window_n, i]).reshape(stop - start, window_n)
                for i in range(accel.shape[1])]
        others = [r for i, r in enumerate(rows) if i != axis]
        coarse, groups = _fit_rows(rows[axis], rate_hz, search_hz, N_HARMONICS, others, min_cycles)
        batch: list = [None] * (stop - start)
        for group_rows, fits, signal in groups:
            off_axis = _off_axis(signal, fits) if others else np.zeros(group_rows.shape[0])
            for j, i in enumerate(group_rows.tolist()):
                try:
                    _raise_unmeasurable(float(coarse[i]), duration_s, min_cycles)
                except AnalysisError as exc:
                    batch[i] = exc
                else:
                    batch[i] = _measurement(fits.tone(j, rate_hz, t_first, False), names[axis], float(off_axis[j]),
                                            duration_s)
        results.extend(batch)
    return results


@dataclass(frozen=True)
class RecordFit:
    """The whole-record fit: one tone (with harmonics and DC) over every sample, per axis."""

    tones: tuple[ToneFit, ...]
    """One fit per recorded axis at the driven axis's frequency (the driven one refined by
    Gauss-Newton over the whole record, the others linear fits at that frequency)."""
    axis: int
    names: tuple[str, ...] = AXES

    def measurement(self) -> Measurement:
        driven = self.tones[self.axis]
        others = [t.amplitude for i, t in enumerate(self.tones) if i != self.axis]
        off = math.sqrt(sum(a * a for a in others)) / driven.amplitude if driven.amplitude > 0 else 0.0
        return _measurement(driven, self.names[self.axis], off, driven.n / driven.rate_hz)


def fit_record(
    accel_mps2: np.ndarray,
    rate_hz: float,
    frequency_hz: float,
    *,
    axis: int,
    segment_n: int = 4096,
    n_harmonics: int = N_HARMONICS,
    names: tuple[str, ...] = AXES,
) -> RecordFit:
    """Fit one tone to the whole record, starting from `frequency_hz` (for example the mean of its
    windows' frequencies; it must be within one record-length bin, 1 / duration, for the fit to
    move). Memory: a few segments' worth beyond the samples themselves."""
    accel = _as_axes(accel_mps2)
    n = accel.shape[0]
    if not np.all(np.isfinite(frequency_hz)) or frequency_hz * n / rate_hz < MIN_CYCLES:
        raise AnalysisError("the recording holds too few cycles to measure")
    count = _harmonic_count(frequency_hz, rate_hz, n, n_harmonics)
    t_first = -0.5 * (n - 1) / rate_hz
    driven = _Record(np.ascontiguousarray(accel[:, axis]), rate_hz, segment_n)
    fits = _gauss_newton(driven, np.array([2.0 * math.pi * frequency_hz]), count, 2.0 * math.pi * rate_hz / n)
    tones = []
    for i in range(accel.shape[1]):
        if i == axis:
            tones.append(fits.tone(0, rate_hz, t_first))
        else:
            other = _fixed_frequency_fit(_Record(np.ascontiguousarray(accel[:, i]), rate_hz, segment_n), fits.omega, count)
            tones.append(other.tone(0, rate_hz, t_first))
    return RecordFit(tones=tuple(tones), axis=axis, names=names)


def folded_harmonics(frequency_hz: float, rate_hz: float, duration_s: float) -> list[int]:
    """Harmonics 2-5 above the Nyquist frequency whose alias falls within one bin (1 / duration)
    of the fundamental: at that sample rate they are indistinguishable from it, so they bias its
    peak by an amount no fit can know (a 30 Hz tone sampled at 120 Hz: the 3rd harmonic, 90 Hz,
    reads as 30 Hz)."""
    if not (math.isfinite(frequency_hz) and frequency_hz > 0 and rate_hz > 0 and duration_s > 0):
        return []
    folded = []
    for h in range(2, N_HARMONICS + 1):
        f = h * frequency_hz
        if f < 0.5 * rate_hz:
            continue
        alias = abs(f - round(f / rate_hz) * rate_hz)
        if abs(alias - frequency_hz) < 1.0 / duration_s:
            folded.append(h)
    return folded


def unverifiable_thd(m: Measurement) -> str:
    """Why a measurement's THD cannot be verified, in words (empty when it can)."""
    if m.thd_verifiable:
        return ""
    seen = m.thd_harmonics
    nyquist = f"the Nyquist frequency ({0.5 * m.rate_hz:g} Hz)" if math.isfinite(m.rate_hz) else "the Nyquist frequency"
    if seen == 0:
        where = f"none lies a bin below {nyquist}"
    else:
        share = f" ({m.thd_seen_percent:.1f} % from {'it' if seen == 1 else 'them'})" if math.isfinite(m.thd_seen_percent) else ""
        where = f"{'harmonic 2' if seen == 1 else f'harmonics 2-{seen + 1}'}{share}; the others lie above {nyquist}"
    return (f"THD unverifiable, {seen} of harmonics 2-5 seen: {where}; "
            f"record at more than {10 * m.frequency_hz:.0f} Hz")


def check_spec(m: Measurement, prescription: "Prescription") -> list[str]:
    """Every way `m` misses the prescription's tolerances, one readable reason each (empty: in spec).

    A figure that could not be measured fails: a frequency, peak or THD that is not a finite
    number, a THD whose harmonics the sample rate hides (`unverifiable_thd`), a peak that a hidden
    harmonic folds onto (`folded_harmonics`)."""
    rx = prescription
    tol = rx.tolerance
    reasons = []
    if not math.isfinite(m.frequency_hz):
        reasons.append("frequency could not be measured (the fit gave no finite number)")
    elif abs(m.frequency_hz - rx.frequency_hz) > tol.frequency_hz:
        reasons.append(f"frequency {m.frequency_hz:.2f} Hz is outside {rx.frequency_hz:g} +- {tol.frequency_hz:g} Hz")
    deviation = m.peak_g / rx.peak_g - 1.0
    if not math.isfinite(deviation):
        reasons.append("peak could not be measured (the fit gave no finite number)")
    elif abs(deviation) > tol.accel_fraction:
        reasons.append(
            f"peak {m.peak_g:.3f} g is {100 * deviation:+.1f} % from {rx.peak_g:g} g "
            f"(tolerance +-{100 * tol.accel_fraction:g} %)"
        )
    folded = folded_harmonics(m.frequency_hz, m.rate_hz, m.duration_s)
    if folded:
        names = ", ".join(str(h) for h in folded)
        reasons.append(
            f"peak unverifiable: at {m.rate_hz:g} Hz harmonic {names} of {m.frequency_hz:.2f} Hz folds onto the "
            "fundamental and cannot be told from it"
        )
    if not m.thd_verifiable:
        reasons.append(unverifiable_thd(m))
    elif not math.isfinite(m.thd_percent):
        reasons.append("THD could not be measured (the fit gave no finite number)")
    elif m.thd_percent > 100.0 * tol.max_thd_fraction:
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
