"""The time base of a recording whose rows carry time stamps: the sample rate, gaps, how the stamps
wander, whether to believe them, and what their wander adds to the uncertainty of a measurement.

    stamps ──► gaps (a step longer than 2.5 periods) split the record into pieces
           ──► one period fitted to every piece at once (least squares, one intercept per piece)
           ──► residual r = stamp - fitted grid: white jitter (sample to sample) + slow drift
           ──► believe the stamps? (`decide`): windows measured on the even grid move in
               frequency with the drift's local slope when the samples were taken at the stamped
               instants, and do not when only the stamps wander; and a window fits with less
               residual on the grid that is right
           ──► Timing: figures, the decision, and the drift curve for `Timing.uncertainty`

Two readings of the same stamps: either the sensor sampled evenly and the stamps wander (the host
stamped the rows when they arrived), or the sensor sampled at the stamped instants. A fit on the
wrong grid reads a window's frequency off by f times the drift's slope over the window and a
stretch's peak low by the phase wobble it adds; and even on the right grid, when the stamps are the
ones that wander, the fitted rate carries the drift's trend over the record. `Timing.uncertainty`
turns these into standard uncertainties of frequency and amplitude for any stretch of samples:
the wrong-grid terms unless the data decided, the trend term unless the stamps were found true.
The drift is modelled as a random walk for its trend, with its diffusion taken at the scale where
it is largest, so a drift that wanders more at long scales is not underestimated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

GAP_PERIODS = 2.5
"""A step between stamps longer than this many sample periods means samples are missing."""
DRIFT_BLOCK_S = 0.02
"""The drift curve is the stamps' residual averaged over blocks of about this length."""
JITTER_RESAMPLE_FRACTION = 0.01
"""When the data cannot tell, stamps whose RMS deviation from the fitted grid exceeds this share of
a period are believed (the samples resampled onto the grid); below it they are clock rounding."""
DECISION_WINDOW_S = 1.0
DECISIVE = 4.0
"""Standard errors by which one reading of the stamps must beat the other to be chosen."""
TREND_COVERAGE = 1.2
"""The drift's diffusion is estimated from the record itself; its estimate at the longest scales
rests on few increments, so the trend's standard uncertainty carries this factor."""


@dataclass(frozen=True)
class Piece:
    """A run of samples without a gap."""

    start: int
    """Index of its first sample in the recording's arrays."""
    n: int
    t0_s: float
    """Fitted time of its first sample, seconds after the recording's first sample."""


@dataclass(frozen=True)
class Gap:
    """A stretch of a stamped recording with samples missing."""

    after_s: float
    """Time of the last sample before the gap (s after the first sample)."""
    duration_s: float
    missing: int
    """About how many samples are missing."""
    row: int
    """Data row (1-based) of the last sample before the gap."""


@dataclass(frozen=True)
class Timing:
    """How regular the file's stamps were, what was made of them, and what they leave uncertain
    (None fields: the file had no stamps)."""

    jitter_rms_s: float | None = None
    """RMS deviation of the stamps from the fitted even grid (white jitter and drift together)."""
    jitter_max_s: float | None = None
    resampled: bool = False
    """The samples were interpolated onto the even grid (the stamps were believed)."""
    white_rms_s: float | None = None
    """The sample-to-sample part of the deviation."""
    drift_rms_s: float | None = None
    """The slow part: RMS of the deviation averaged over blocks of `DRIFT_BLOCK_S`."""
    decision: str = ""
    """"stamps" (the data showed the samples were taken at the stamped instants), "even" (the data
    showed even sampling with wandering stamps), or "undecided" (a rule of thumb chose)."""
    evidence: str = ""
    """One line on what decided."""
    drift_s: np.ndarray | None = field(default=None, repr=False, compare=False)
    """The deviation averaged over blocks of `drift_block` samples, one value per block, for every
    piece in order (a piece's last block may be shorter)."""
    drift_block: int = 1
    block_starts: np.ndarray | None = field(default=None, repr=False, compare=False)
    """Sample index of each block's first sample."""
    diffusion_s2_per_s: float = 0.0
    """The drift's random-walk diffusion (variance of the stamps' deviation per second)."""
    rate_hz: float = math.nan
    span_s: float = math.nan
    """Time from the first to the last stamp."""

    @property
    def has_stamps(self) -> bool:
        return self.jitter_rms_s is not None

    def between(self, start: int, stop: int) -> "Timing":
        """The same time base for samples start..stop of the recording (renumbered from 0)."""
        if self.drift_s is None or self.block_starts is None:
            return self
        keep = (self.block_starts >= start) & (self.block_starts < stop)
        return replace(self, drift_s=self.drift_s[keep], block_starts=self.block_starts[keep] - start)

    def uncertainty(self, start: int, stop: int, frequency_hz: float, amplitude: float) -> tuple[float, float]:
        """Standard uncertainties (frequency in Hz, amplitude in its own unit) that the time base
        adds to a tone of `frequency_hz` and `amplitude` measured on samples start..stop:

        - wrong grid (unless the data decided): f times the drift's least-squares slope over the
          stretch; and the peak lost to the drift's wobble about that slope, A w^2 var / 2;
        - the rate's trend (unless the stamps were found true): f times the standard deviation of
          the drift's slope over the whole record, for a random walk of the measured diffusion
          (6 q / (5 T), Brownian motion's least-squares slope), and of the white jitter's slope.
        """
        if not self.has_stamps or not (math.isfinite(frequency_hz) and math.isfinite(amplitude)):
            return 0.0, 0.0
        var_f = var_a = 0.0
        if self.decision != "stamps":
            n = max(1, stop - start)
            trend = 6.0 * self.diffusion_s2_per_s / (5.0 * self.span_s) if self.span_s > 0 else 0.0
            white = (self.white_rms_s or 0.0) ** 2 * 12.0 * self.rate_hz**2 / max(1.0, float(n) ** 3)
            var_f += frequency_hz**2 * (TREND_COVERAGE**2 * trend + white)
        if self.decision != "even" and self.drift_s is not None and self.block_starts is not None:
            inside = (self.block_starts >= start) & (self.block_starts + self.drift_block <= stop)
            d = self.drift_s[inside]
            if d.shape[0] >= 2:
                t = (self.block_starts[inside] + 0.5 * self.drift_block) / self.rate_hz
                t = t - t.mean()
                slope = float(np.dot(t, d - d.mean()) / np.dot(t, t))
                wobble = d - d.mean() - slope * t
                omega = 2.0 * math.pi * frequency_hz
                var_f += (frequency_hz * slope) ** 2
                var_a += (0.5 * amplitude * omega**2 * float(np.mean(wobble**2))) ** 2
        return math.sqrt(var_f), math.sqrt(var_a)


def pieces_and_gaps(t: np.ndarray, period_s: float) -> tuple[list[tuple[int, int]], list[int]]:
    """Index ranges (start, stop) of the runs without a gap, and the index of the last sample
    before each gap."""
    gaps = np.flatnonzero(np.diff(t) > GAP_PERIODS * period_s)
    bounds = [0, *(gaps + 1).tolist(), t.shape[0]]
    return [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)], gaps.tolist()


def rough_period(t: np.ndarray) -> float:
    """The median step between stamps: robust to gaps (the first guess of the period)."""
    return float(np.median(np.diff(t)))


def fit_period(t: np.ndarray, ranges: list[tuple[int, int]]) -> tuple[float, list[float]]:
    """Least-squares period shared by every piece, with one intercept per piece (the stamp at the
    piece's index 0): exact for a clean grid, robust to jitter."""
    num = den = 0.0
    for start, stop in ranges:
        m = stop - start
        if m < 2:
            continue
        i = np.arange(m, dtype=np.float64) - 0.5 * (m - 1)
        seg = t[start:stop]
        num += float(np.dot(i, seg - seg.mean()))
        den += float(np.dot(i, i))
    period = num / den if den > 0 else rough_period(t)
    intercepts = [float(np.mean(t[a:b] - period * np.arange(b - a))) for a, b in ranges]
    return period, intercepts


def analyse(t: np.ndarray) -> tuple[float, list[Piece], list[Gap], np.ndarray]:
    """Rate, pieces, gaps and the residual (stamp minus fitted grid) of increasing stamps `t`."""
    period = rough_period(t)
    ranges, gap_rows = pieces_and_gaps(t, period)
    period, intercepts = fit_period(t, ranges)
    residual = np.empty_like(t)
    pieces, gaps = [], []
    origin = intercepts[0]
    for (start, stop), intercept in zip(ranges, intercepts):
        residual[start:stop] = t[start:stop] - (intercept + period * np.arange(stop - start))
        pieces.append(Piece(start, stop - start, intercept - origin))
    for row in gap_rows:
        step = float(t[row + 1] - t[row])
        gaps.append(Gap(float(t[row] - origin), step, max(1, int(round(step / period)) - 1), row + 1))
    return 1.0 / period, pieces, gaps, residual


def drift_curve(residual: np.ndarray, pieces: list[Piece], block: int) -> tuple[np.ndarray, np.ndarray]:
    """The residual averaged over blocks of `block` samples within each piece: (values, block starts)."""
    values, starts = [], []
    for p in pieces:
        whole = p.n // block
        if whole:
            values.append(residual[p.start : p.start + whole * block].reshape(whole, block).mean(axis=1))
            starts.append(p.start + block * np.arange(whole))
        if p.n - whole * block:
            values.append(np.array([residual[p.start + whole * block : p.start + p.n].mean()]))
            starts.append(np.array([p.start + whole * block]))
    return np.concatenate(values), np.concatenate(starts)


def white_and_drift(residual: np.ndarray, pieces: list[Piece], drift: np.ndarray, block: int) -> tuple[float, float]:
    """RMS of the white (sample-to-sample) part, from the first differences within pieces
    (var(diff) = 2 white^2 for white jitter), and of the drift curve."""
    diffs = [np.diff(residual[p.start : p.start + p.n]) for p in pieces if p.n > 1]
    diff = np.concatenate(diffs) if diffs else np.zeros(1)
    white = math.sqrt(0.5 * float(np.mean(diff**2)))
    drift = math.sqrt(max(0.0, float(np.mean((drift - drift.mean()) ** 2)) - white**2 / block))
    return white, drift


def diffusion(drift: np.ndarray, starts: np.ndarray, pieces: list[Piece], block: int, rate_hz: float,
              white_rms_s: float) -> float:
    """The drift's random-walk diffusion q (s^2 per s): the structure function of the drift curve,
    E[(d(t + L) - d(t))^2] = q L + 2 white^2 / block, at scales L of 1, 2, 4, ... blocks with at
    least 16 increments within pieces; the largest q over the scales."""
    block_s = block / rate_hz
    floor = 2.0 * white_rms_s**2 / block
    best = 0.0
    lag = 1
    while True:
        increments = []
        for p in pieces:
            inside = (starts >= p.start) & (starts + block <= p.start + p.n)
            d = drift[inside]
            if d.shape[0] > lag:
                increments.append(d[lag:] - d[:-lag])
        count = sum(i.shape[0] for i in increments)
        if count < 16:
            break
        d2 = float(np.mean(np.concatenate(increments) ** 2))
        best = max(best, (d2 - floor) / (lag * block_s))
        lag *= 2
    return max(0.0, best)


def decide(accel: np.ndarray, rate_hz: float, pieces: list[Piece], residual: np.ndarray,
           stamps: np.ndarray, white_rms_s: float) -> tuple[str, str]:
    """Which reading of the stamps the samples support: "stamps", "even" or "undecided", and why.

    Two tests on the axis with the most vibration, each a z-score:
    - drift: windows measured on the even grid; their frequencies move, window to window, with f
      times the local slope of the stamps' drift (beta = 1) when the samples were taken at the
      stamped instants, and not at all (beta = 0) when only the stamps wander. beta from the
      windows' frequency changes against the predicted ones, weighted by the windows' own
      spread; pairs across a change of tone (a step) are left out.
    - jitter: up to 8 windows fitted on both grids (the stamped one by a local cubic spline); the
      right grid leaves less residual. Skipped when the white jitter's noise, (w jitter)^2 A^2 / 2,
      is under 1 % of the windows' own (then either grid fits as well).
    """
    from livctl.dsp.estimator import AnalysisError, measure, measure_windows

    axis = int(np.argmax([np.var(accel[:, i]) for i in range(accel.shape[1])]))
    longest = max(p.n for p in pieces)
    window_n = int(min(round(DECISION_WINDOW_S * rate_hz), max(16, longest // 8)))
    f, u, slope, piece_of, spans, snr = [], [], [], [], [], []
    for k, p in enumerate(pieces):
        count = p.n // window_n
        if count == 0:
            continue
        x = accel[p.start : p.start + count * window_n]
        try:
            results = measure_windows(np.asfortranarray(x), rate_hz, window_n, axis=axis)
        except AnalysisError:
            continue
        for j, m in enumerate(results):
            if isinstance(m, AnalysisError) or not math.isfinite(m.frequency_u_hz) or m.snr_db < 0:
                continue
            a = p.start + j * window_n
            r = residual[a : a + window_n]
            tt = np.arange(window_n) / rate_hz
            tt = tt - tt.mean()
            f.append(m.frequency_hz)
            u.append(m.frequency_u_hz)
            slope.append(float(np.dot(tt, r - r.mean()) / np.dot(tt, tt)))
            piece_of.append(k)
            spans.append(a)
            snr.append(10.0 ** (m.snr_db / 10.0))
    z_drift, beta, se = _drift_test(f, u, slope, piece_of)
    z_jitter = 0.0
    audible = bool(spans) and (2.0 * math.pi * float(np.median(f)) * white_rms_s) ** 2 * float(np.median(snr)) >= 0.01
    if audible:
        from scipy.interpolate import make_interp_spline

        chosen = [spans[i] for i in np.linspace(0, len(spans) - 1, min(8, len(spans))).round().astype(int)]
        even = stamped = 0.0
        for a in dict.fromkeys(chosen):
            lo, hi = max(0, a - 8), min(accel.shape[0], a + window_n + 8)
            grid = stamps[a] - residual[a] + (np.arange(a, a + window_n) - a) / rate_hz
            spline = make_interp_spline(stamps[lo:hi], accel[lo:hi, axis], k=3)
            try:
                on_even = measure(accel[a : a + window_n, axis], rate_hz)
                on_stamps = measure(spline(grid), rate_hz)
            except AnalysisError:
                continue
            even += _residual_power(on_even)
            stamped += _residual_power(on_stamps)
        if even > 0 and stamped > 0:
            total_n = window_n * len(dict.fromkeys(chosen))
            z_jitter = (even - stamped) / min(even, stamped) / math.sqrt(2.0 / total_n)
    drift_text = f"drift test beta {beta:.2f} +- {se:.2f}" if math.isfinite(beta) else "drift test: too little drift"
    text = f"{drift_text}, jitter test " + (f"z {z_jitter:+.1f}" if audible else "skipped: jitter below the noise")
    votes = [v for v in (_vote(z_drift), _vote(z_jitter)) if v]
    if votes and all(v == votes[0] for v in votes):
        return votes[0], text
    return "undecided", text


def _drift_test(f: list[float], u: list[float], slope: list[float], piece_of: list[int]) -> tuple[float, float, float]:
    """The drift test (see `decide`): z-score, beta and its standard error from consecutive windows'
    frequencies `f` (their standard uncertainties `u`), the stamps' local drift `slope` under each and
    the piece each belongs to; (0, nan, inf) with fewer than 3 windows or no drift to test."""
    z_drift, beta, se = 0.0, math.nan, math.inf
    if len(f) >= 3:
        f, u, slope, piece_of = map(np.asarray, (f, u, slope, piece_of))
        predicted = f * slope
        same = piece_of[1:] == piece_of[:-1]
        df, dp = np.diff(f), np.diff(predicted)
        var = u[1:] ** 2 + u[:-1] ** 2
        steady = same & (np.abs(df) <= 6.0 * np.sqrt(var) + 2.0 * np.abs(dp))
        w = 1.0 / var[steady]
        info = float(np.sum(w * dp[steady] ** 2))
        if info > 0:
            beta = float(np.sum(w * dp[steady] * df[steady])) / info
            se = 1.0 / math.sqrt(info)
            z_drift = (beta - 0.5) / se
    return z_drift, beta, se


def _residual_power(m) -> float:
    """Noise power left by a window's fit, from its peak and SNR (g^2)."""
    return 0.5 * m.peak_g**2 / 10.0 ** (m.snr_db / 10.0)


def _vote(z: float) -> str:
    if z > DECISIVE:
        return "stamps"
    if z < -DECISIVE:
        return "even"
    return ""
