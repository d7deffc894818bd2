"""The sensor watch: proof, block by block, that the accelerometer sees this platform, now.

Every safety check and every dose figure rests on the accelerometer. A sensor can lie in ways its
samples alone do not show: its board's clock runs off (the plate at 28.5 Hz, the samples saying
30), it repeats a stretch it recorded (0 g delivered, 0.4 g logged), it sits on the neighbouring
platform, its scale drifts. The `MotionGuard` feeds every block it reads to a `SensorWatch`,
which checks what a real plant guarantees and a lying sensor cannot fake:

- **The clock.** The samples' own time (their count over the nominal rate) against this
  computer's clock: the lower envelope of (host time - stream time) over half-second bins, fitted
  by least squares, gives the platform's clock error free of read latency. Beyond
  `CLOCK_LIMIT_FRACTION` (0.5 %) the sensor is not trusted; below it the session corrects its
  logged frequency and durations by the measured ratio.
- **No replay.** A real sensor's noise never repeats: every run of `KEY_ROWS` samples (all axes)
  is hashed and remembered for `REPLAY_MEMORY_S`; `REPLAY_MATCHES` runs that repeat earlier ones
  at one and the same distance mean the sensor is sending old data.
- **The phase follows the drive.** The drive's frequency is known exactly in the samples' time
  (the board makes both from one crystal), so a real plant's response holds a fixed phase against
  it, block after block. A sensor on another platform, driven nearly in step, shows a steady
  phase drift (`PHASE_DRIFT_MIN_HZ` and more, over two seconds); the platform's own response
  changing at once (a phase step of `PHASE_STEP_RAD`, between two steady stretches) means its
  load changed: a subject stepping off.
- **A second accelerometer** (where the platform has one): it must give valid samples, and its
  fundamental agree with the first's within `SENSORS_AGREE_FRACTION` (5 %) over each second.
- **A load cell** (where the platform has one): the load must stay within `LOAD_CHANGE_FRACTION` of
  what it read when the procedure began.
- **Gravity** (`check_gravity`, at rest, before anything moves): a DC-coupled sensor's vertical
  reading is its scale's only reference: within `GRAVITY_TOLERANCE` of 1 g and within
  `GRAVITY_VS_CALIBRATION` of what the same sensor read at its calibration.

A failed check raises `SensorUntrusted` (the sensor cannot be believed: stop) or, for a load
change, a `Trip`; the guard then ramps the platform down. The watch knows nothing of
prescriptions or logs.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from livctl.procedures.safety import Trip

CLOCK_LIMIT_FRACTION = 0.005
"""The platform's clock may run this far from this computer's (0.5 %); beyond it the samples' own
time cannot be believed (a crystal is good to 0.01 %: more is a broken board)."""
CLOCK_BIN_S = 0.5
"""The clock check keeps the earliest arrival of each half second of samples."""
CLOCK_MIN_SPAN_S = 2.0
"""...and judges once it has this much."""
CLOCK_WARMUP_S = 0.25
"""Samples of the first quarter second are not used (the stream's start is buffered)."""
CLOCK_SIGMAS = 4.0
CLOCK_KNOWN_SE = 2e-4
"""The clock's rate is known once its standard error is at most this (0.02 Hz at 100 Hz): from then
on the log is corrected by it (a session listens at rest for it before anything moves, `CLOCK_WAIT_S`)."""
CLOCK_WAIT_S = 15.0
"""How long a session's sensor check listens at rest for the clock to become known, at most."""
CLOCK_CORRECT_MIN_FRACTION = 1e-4
"""Clock errors from this (100 ppm: twice a common crystal's tolerance) up to the limit are
corrected in the log, once known beyond CLOCK_CORRECT_SIGMAS standard errors; smaller ones change
90 Hz by under 0.01 Hz and are left alone."""
CLOCK_WORSE_RATIO = 2.0
"""A new fit whose standard error is over twice the best so far is not taken: the arrivals' delay
has just shifted (a pty's when the drive starts: 6 ms), and the fit holds the shift's first bins
until it can split them off (3 s). On 13 recordings of a pty to firmware_sim this took the 0.2 %
clock's largest error over the delivery from 4.0e-4 (0.036 Hz at 90 Hz) to 0.9e-4 (0.008 Hz)."""
CLOCK_CORRECT_SIGMAS = 4.0
"""A known rate is taken once it lies this many standard errors from 1. Not fewer: where the
host reads late in bursts (a loaded machine, an audio server's periods) the fit's standard error is
optimistic, and at two a JACK loopback's exact clock was "corrected" by 0.03 %. An error left alone
is then at most 4 standard errors of 0.02 %: the logged frequency stays within 0.1 % of the truth
(0.03 Hz at 30 Hz, against a tolerance of 1 Hz)."""

KEY_ROWS = 6
"""Samples in each hashed run (all axes): 18 numbers, which noise never repeats."""
ANCHOR_EVERY = 4
"""Every fourth run is remembered; every run is looked up."""
REPLAY_MEMORY_S = 30.0
"""How far back a repeat is looked for."""
REPLAY_MATCHES = 8
"""Runs repeating earlier ones at the same distance (38 samples, 12 ms at 3200 Hz) that prove a replay."""
REPLAY_MIN_NOISE_MPS2 = 1e-5
"""A signal with less noise than this (1 ug RMS, a thousand times below the quietest accelerometer
livctl knows) is no sensor's: a digital loopback, which repeats exactly every few cycles. It is not
checked for replays."""

PHASE_USABLE_SNR = 10.0
"""A block's phase is used when its fundamental is this many standard errors (phase error < 0.1 rad)."""
PHASE_DRIFT_SPAN_S = 2.0
PHASE_DRIFT_MIN_HZ = 0.02
"""A steady drift of the response's phase this fast (7 degrees a second) is not a real plant's."""
PHASE_DRIFT_HOLD = 3
"""...seen in this many blocks in a row."""
PHASE_STEP_RAD = 0.5
"""The response's phase jumping this far between two steady seconds: the load changed."""
PHASE_STEP_SPAN_S = 1.0
PHASE_STEP_GAP_S = 0.3
"""The blocks this long before the last second are in neither stretch: a block that straddles the
change mixes the two responses (and the plate rings for a moment)."""

SENSORS_AGREE_FRACTION = 0.05
"""Two accelerometers on one plate must agree this well over each second (5 %: twice what their
scale checks against gravity allow, 3 % each, and well clear of their noise)."""
SENSORS_AGREE_SPAN_S = 1.0
SENSOR_MIN_SNR = 20.0
"""A block's fundamentals are compared when one of them is this many standard errors (5 % precision)."""
SECOND_STALE_S = 0.5
"""The second accelerometer's data may be unusable this long."""

LOAD_CHANGE_FRACTION = 0.5
"""The load may change by this share of what it was when the procedure began..."""
LOAD_CHANGE_MIN_KG = 0.05
"""...and by at least this much (a mouse is 25 g; its cage with bedding 0.5 kg)."""

GRAVITY_TOLERANCE = 0.03
"""A DC-coupled sensor at rest must read 1 g within 3 %: local gravity varies 0.3 %, a level
platform's tilt 0.5 %, and an accelerometer in its specification (once its offset is trimmed) the
rest; a sensor further off makes every dose figure off by as much."""
GRAVITY_VS_CALIBRATION = 0.015
"""...and within 1.5 % of what it read of gravity at its calibration (the same sensor, the same
place: more means its scale has changed)."""


GRAVITY_MAGNITUDE_TOLERANCE = 0.15
"""Before the vertical axis is judged to 3 %, gravity over all three axes must be 1 g within
0.15 g and lie on the vertical axis within as much: a sensor outside that is mis-scaled, on the
wrong range, or mounted on its side, and the message says which."""


class SensorUntrusted(Trip):
    """The sensor cannot be believed (a clock off, a replay, another platform's signal, two sensors
    that disagree): stop, ramping down."""

    def __init__(self, reason: str):
        super().__init__(reason, cut=False)


def check_at_rest(mean_g: Sequence[float], vertical_axis: str, calibration_g: float | None = None, *,
                  sensor: str = "the sensor") -> str | None:
    """Why a DC-coupled sensor's mean reading at rest (g, on x y z) discredits it, or None: the one
    check at rest of every procedure that moves a platform (a calibration, a session). Gravity must
    be 1 g in magnitude and on the vertical axis (`GRAVITY_MAGNITUDE_TOLERANCE`), and the vertical
    axis must read it within 3 % of 1 g and 1.5 % of what it read at its calibration
    (`check_gravity`)."""
    values = [float(v) for v in mean_g]
    if not all(math.isfinite(v) for v in values):
        return f"{sensor} reads no number for gravity at rest"
    axis = "xyz".index(vertical_axis)
    magnitude = math.sqrt(sum(v * v for v in values))
    if abs(magnitude - 1.0) > GRAVITY_MAGNITUDE_TOLERANCE:
        return f"{sensor} reads {magnitude:.2f} g of gravity at rest, not 1 g; check its range and scale"
    if abs(abs(values[axis]) - 1.0) > GRAVITY_MAGNITUDE_TOLERANCE:
        strongest = "xyz"[max(range(len(values)), key=lambda i: abs(values[i]))]
        if strongest != vertical_axis:
            return f"gravity is on {sensor}'s {strongest} axis, not {vertical_axis}: mount it with {vertical_axis} vertical"
        return (f"{sensor} is tilted: its vertical axis ({vertical_axis}) reads {values[axis]:+.2f} g of the "
                f"{magnitude:.2f} g of gravity; mount it with {vertical_axis} vertical")
    return check_gravity(values[axis], calibration_g, sensor=f"{sensor}'s vertical axis ({vertical_axis})")


def check_gravity(vertical_g: float, calibration_g: float | None = None, *, sensor: str = "the sensor") -> str | None:
    """Why a DC-coupled sensor's at-rest vertical reading `vertical_g` (g) discredits its scale, or None."""
    if not math.isfinite(vertical_g):
        return f"{sensor} reads no number for gravity at rest"
    off = vertical_g - 1.0
    if abs(off) > GRAVITY_TOLERANCE:
        return (
            f"{sensor} reads {vertical_g:.3f} g of gravity at rest, {100 * off:+.1f} % from 1 g (at most "
            f"{100 * GRAVITY_TOLERANCE:g} %): its scale is off; check its mounting and level, or replace it"
        )
    if calibration_g is not None and math.isfinite(calibration_g) and calibration_g > 0:
        change = vertical_g / calibration_g - 1.0
        if abs(change) > GRAVITY_VS_CALIBRATION:
            return (
                f"{sensor} reads {vertical_g:.3f} g of gravity at rest, {100 * change:+.1f} % from the "
                f"{calibration_g:.3f} g it read at its calibration (at most {100 * GRAVITY_VS_CALIBRATION:g} %): its "
                "scale has changed; check it and recalibrate"
            )
    return None


# -- the clock ------------------------------------------------------------------------------------


class ClockWatch:
    """The platform's clock against this computer's, from when blocks of samples arrive.

    Each half second of samples keeps its earliest arrival (the least delayed); a least-squares line
    through those, less the ones that came late all the same (over 3 robust standard deviations
    above it), gives the clock's rate. Where the platform lost samples without counting them
    (`Platform.stream_breaks`), the samples' time jumps: the fit starts a new stretch there, with an
    offset of its own and the same slope."""

    def __init__(self) -> None:
        self._origin: tuple[float, float] | None = None
        self._bin: int | None = None
        self._best: tuple[float, float] | None = None
        """The current bin's earliest arrival: (stream s, host - stream s)."""
        self._points: list[tuple[float, float, int]] = []
        """Finished bins: (stream s, host - stream s, stretch)."""
        self._breaks = 0
        self._stretch = 0
        self._fit: tuple[float, float] | None = None
        self._fitted_n = 0
        self._ratio = 1.0
        """The last ratio taken from a known fit: it holds while a newer fit is much less sure."""
        self._ratio_se = math.inf
        """The smallest standard error of a fit taken so far."""

    def add(self, stream_s: float, host_s: float, breaks: int = 0) -> None:
        """A block whose last sample is at `stream_s` (the samples' own time) arrived at `host_s`;
        `breaks` counts the platform's stream breaks so far."""
        if breaks != self._breaks:
            self._breaks = breaks
            self._best = None  # the bin in progress straddles the break: dropped
            self._bin = None
            self._stretch += 1
        if self._origin is None:
            self._origin = (stream_s, host_s)
            return
        s = stream_s - self._origin[0]
        if s < CLOCK_WARMUP_S:
            return
        lag = (host_s - self._origin[1]) - s
        k = int(s // CLOCK_BIN_S)
        if k != self._bin:
            if self._best is not None:
                self._points.append((*self._best, self._stretch))
            self._best = None
            self._bin = k
        if self._best is None or lag < self._best[1]:
            self._best = (s, lag)

    @property
    def span_s(self) -> float:
        """Seconds of samples the fit holds (its stretches' spans together)."""
        spans: dict[int, tuple[float, float]] = {}
        for s, _, stretch in self._points:
            low, high = spans.get(stretch, (s, s))
            spans[stretch] = (min(low, s), max(high, s))
        return sum(high - low for low, high in spans.values())

    def fit(self) -> tuple[float, float] | None:
        """(host seconds per stream second - 1, its standard error), or None before two seconds."""
        if len(self._points) - self._fitted_n >= max(1, self._fitted_n // 16):  # refit as it grows by 6 %
            self._fitted_n = len(self._points)
            self._fit = self._refit() if self._fitted_n >= 4 and self.span_s >= CLOCK_MIN_SPAN_S else None
        return self._fit

    def _refit(self) -> tuple[float, float] | None:
        points = np.asarray(self._points)
        s, lag, stretch = points[:, 0], points[:, 1], points[:, 2].astype(int)
        first = _pooled_slope(s, lag, stretch)
        if first is None:
            return None
        stretch = _split_at_shifts(s, lag - first[0] * s, stretch)
        keep = np.ones(s.size, dtype=bool)
        for _ in range(2):  # once, and again without the bins that came late all the same
            fitted = _pooled_slope(s[keep], lag[keep], stretch[keep])
            if fitted is None:
                return None
            slope, offsets = fitted
            residual = lag - slope * s - offsets[stretch]
            spread = 1.4826 * float(np.median(np.abs(residual[keep] - np.median(residual[keep])))) + 1e-6
            keep = residual <= 3.0 * spread
        fitted = _pooled_slope(s[keep], lag[keep], stretch[keep])
        if fitted is None:
            return None
        slope, offsets = fitted
        residual = (lag - slope * s - offsets[stretch])[keep]
        k = int(keep.sum())
        groups = len(set(stretch[keep].tolist()))
        sxx = _pooled_sxx(s[keep], stretch[keep])
        se = math.sqrt(float(residual @ residual) / max(1, k - groups - 1) / sxx) if sxx > 0 else math.inf
        return slope, se

    @property
    def stream_per_host(self) -> float:
        """Stream seconds per host second: 1.002 for a board whose crystal runs 0.2 % fast; 1 until
        the rate is known (CLOCK_KNOWN_SE) and off by at least CLOCK_CORRECT_MIN_FRACTION beyond
        CLOCK_CORRECT_SIGMAS standard errors (a good crystal's error is left alone: correcting it
        would add the estimate's noise)."""
        fitted = self.fit()
        if fitted is not None and fitted[1] <= min(CLOCK_KNOWN_SE, CLOCK_WORSE_RATIO * self._ratio_se):
            slope, se = fitted  # known, and not much less sure than the best fit so far
            self._ratio_se = min(self._ratio_se, se)
            small = abs(slope) < CLOCK_CORRECT_MIN_FRACTION or abs(slope) < CLOCK_CORRECT_SIGMAS * se
            self._ratio = 1.0 if small else 1.0 / (1.0 + slope)
        return self._ratio

    @property
    def known(self) -> bool:
        """True once the clock's rate is known to CLOCK_KNOWN_SE."""
        fitted = self.fit()
        return fitted is not None and fitted[1] <= CLOCK_KNOWN_SE

    def problem(self) -> str | None:
        fitted = self.fit()
        if fitted is None:
            return None
        slope, se = fitted
        error = 1.0 / (1.0 + slope) - 1.0  # how much faster the platform's clock runs
        if abs(error) > CLOCK_LIMIT_FRACTION and abs(slope) - CLOCK_LIMIT_FRACTION > CLOCK_SIGMAS * se:
            return (
                f"the platform's clock runs {100 * abs(error):.2f} % {'fast' if error > 0 else 'slow'} against this "
                f"computer's (at most {100 * CLOCK_LIMIT_FRACTION:g} %): its samples' time, and the frequency they "
                "show, cannot be believed; have the board's crystal checked"
            )
        return None


SHIFT_MIN_S = 0.0005
"""A lasting shift of the arrivals' delay this large (and eight times their scatter) starts a new stretch."""
SHIFT_SIDE_BINS = 6
"""...judged on the medians of the six bins (3 s) after a point and the six before it."""


def _split_at_shifts(s: np.ndarray, residual: np.ndarray, stretch: np.ndarray) -> np.ndarray:
    """Stretch labels with a new stretch wherever the arrivals' delay shifts and stays (a host
    that got busier at one moment, a link that changed its rhythm): the bins after a point against
    the bins before it (SHIFT_SIDE_BINS), beyond eight times the bin-to-bin scatter. A steady clock error
    shows as no shift at all; a stretch cut where none was costs precision, never bias."""
    labels = stretch.copy()
    next_label = int(labels.max()) + 1 if labels.size else 0
    pending = [np.flatnonzero(stretch == g) for g in np.unique(stretch)]
    side = SHIFT_SIDE_BINS
    while pending:
        idx = pending.pop()
        if idx.size < 2 * side:
            continue
        r = residual[idx]
        steps = np.diff(r)
        scatter = 1.4826 * float(np.median(np.abs(steps - np.median(steps)))) / math.sqrt(2.0) + 1e-5
        medians = np.median(np.lib.stride_tricks.sliding_window_view(r, side), axis=1)  # of r[j : j + side]
        shifts = medians[side:] - medians[:-side]  # at j = side .. n - side: after against before
        k = int(np.argmax(np.abs(shifts)))  # the first of equals, as a scan from the start finds
        best_j, best_d = side + k, float(shifts[k])
        if abs(best_d) > max(SHIFT_MIN_S, 8.0 * scatter):
            labels[idx[best_j:]] = next_label
            next_label += 1
            pending += [idx[:best_j], idx[best_j:]]
    return labels


def _pooled_sxx(s: np.ndarray, stretch: np.ndarray) -> float:
    total = 0.0
    for g in np.unique(stretch):
        x = s[stretch == g]
        total += float(((x - x.mean()) ** 2).sum())
    return total


def _pooled_slope(s: np.ndarray, lag: np.ndarray, stretch: np.ndarray) -> tuple[float, np.ndarray] | None:
    """One slope through every stretch, each with its own offset (indexed by stretch number)."""
    sxx = sxy = 0.0
    means: dict[int, tuple[float, float]] = {}
    for g in np.unique(stretch):
        m = stretch == g
        x, y = s[m], lag[m]
        means[int(g)] = (float(x.mean()), float(y.mean()))
        sxx += float(((x - x.mean()) ** 2).sum())
        sxy += float(((x - x.mean()) * (y - y.mean())).sum())
    if sxx <= 0:
        return None
    slope = sxy / sxx
    offsets = np.zeros(int(stretch.max()) + 1 if stretch.size else 1)
    for g, (x_mean, y_mean) in means.items():
        offsets[g] = y_mean - slope * x_mean
    return slope, offsets


# -- replays --------------------------------------------------------------------------------------


REPLAY_TABLE_BITS = 18
"""The remembered runs live in a table of 2^18 slots (4 MB), indexed by their hash's low bits."""


class ReplayWatch:
    """Exact repeats of earlier samples: what a sensor replaying an old buffer sends.

    Every run of KEY_ROWS rows is hashed (vectorised, modulo 2^64) from the numbers' exact bits;
    every ANCHOR_EVERY-th is remembered in a table indexed by the hash's low bits (a newer run takes
    the slot of an older), and every run is looked up in it, all in numpy: a healthy block costs
    a few tens of microseconds. Runs older than REPLAY_MEMORY_S are not matched."""

    def __init__(self, rate_hz: float, *, memory_s: float = REPLAY_MEMORY_S):
        rng = np.random.default_rng(0x5EED)
        self._axis_weights = [np.uint64(w) for w in rng.integers(1, 2**63, size=3, dtype=np.uint64) | np.uint64(1)]
        self._row_weights = [np.uint64(w) for w in rng.integers(1, 2**63, size=KEY_ROWS, dtype=np.uint64) | np.uint64(1)]
        self._memory = max(1, int(memory_s * rate_hz))
        self._mask = np.uint64((1 << REPLAY_TABLE_BITS) - 1)
        self._keys = np.zeros(1 << REPLAY_TABLE_BITS, dtype=np.uint64)
        self._where = np.full(1 << REPLAY_TABLE_BITS, -(2**62), dtype=np.int64)
        """Per slot: the run's hash and the sample number of its first row (never: far in the past)."""
        self._tail = np.empty(0, dtype=np.uint64)
        self._next = 0
        """Sample number (since the watch began) of the next row."""
        self.noiseless = False
        """Set once the signal showed no noise (REPLAY_MIN_NOISE_MPS2): it is not checked any more."""

    def skip(self, n: int) -> None:
        """`n` rows that are not looked at (unusable samples): runs do not span them."""
        self._next += n
        self._tail = self._tail[:0]

    def add(self, rows_mps2: np.ndarray) -> tuple[int, int] | None:
        """Look at `rows_mps2` (n, 3); returns (how many samples back, how many repeated runs) for a
        replay, else None."""
        n = rows_mps2.shape[0]
        bits = np.asarray(rows_mps2, dtype=np.float64).view(np.uint64)  # the numbers' exact bits
        a0, a1, a2 = self._axis_weights
        row = bits[:, 0] * a0  # one number per row, then one per run of rows: wrapping modulo 2^64
        row += bits[:, 1] * a1
        row += bits[:, 2] * a2
        joined = np.concatenate([self._tail, row]) if self._tail.shape[0] else row
        start = self._next - self._tail.shape[0]  # sample number of joined[0]
        self._next += n
        m = joined.shape[0] - KEY_ROWS + 1
        self._tail = joined[-(KEY_ROWS - 1):] if joined.shape[0] >= KEY_ROWS - 1 else joined
        if m <= 0:
            return None
        keys = joined[:m] * self._row_weights[0]
        for j in range(1, KEY_ROWS):
            keys += joined[j : j + m] * self._row_weights[j]
        slots = (keys & self._mask).astype(np.intp)
        back = np.arange(start, start + m, dtype=np.int64) - self._where[slots]
        seen = (self._keys[slots] == keys) & (back >= KEY_ROWS) & (back <= self._memory)
        found = None
        if np.count_nonzero(seen) >= REPLAY_MATCHES:  # a run overlapping itself is a frozen sensor's: not counted
            distances, counts = np.unique(back[seen], return_counts=True)
            best = int(np.argmax(counts))
            if counts[best] >= REPLAY_MATCHES:
                found = (int(distances[best]), int(counts[best]))
        first = (-start) % ANCHOR_EVERY
        anchors = slots[first::ANCHOR_EVERY]
        self._keys[anchors] = keys[first::ANCHOR_EVERY]
        self._where[anchors] = np.arange(start + first, start + m, ANCHOR_EVERY, dtype=np.int64)
        return found


# -- the response's phase -------------------------------------------------------------------------


def _slope(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares slope of (t, y) and its standard error."""
    n = len(points)
    t_mean = sum(t for t, _ in points) / n
    y_mean = sum(y for _, y in points) / n
    sxx = sum((t - t_mean) ** 2 for t, _ in points)
    if sxx <= 0:
        return 0.0, math.inf
    slope = sum((t - t_mean) * (y - y_mean) for t, y in points) / sxx
    residual = sum((y - y_mean - slope * (t - t_mean)) ** 2 for t, y in points)
    return slope, math.sqrt(residual / max(1, n - 2) / sxx)


class PhaseWatch:
    """The response's phase at the drive frequency, block by block (absolute sample time)."""

    def __init__(self) -> None:
        self._points: deque[tuple[float, float]] = deque()
        """(block centre s, unwrapped phase rad) of usable blocks."""
        self._drifting = 0
        self.drift_max_hz = 5.0
        """Drifts faster than this are left to the frequency check (a session sets its tolerance)."""

    def reset(self) -> None:
        self._points.clear()
        self._drifting = 0

    def still(self) -> None:
        """The phase did not move: no drift is building up."""
        self._drifting = 0

    def add(self, t_s: float, phase_rad: float) -> None:
        points = self._points
        if points and t_s - points[-1][0] > 0.5:  # a gap: the phase cannot be followed across it
            self.reset()
        if points:
            phase_rad = points[-1][1] + math.remainder(phase_rad - points[-1][1], 2.0 * math.pi)
        points.append((t_s, phase_rad))
        keep_from = t_s - max(PHASE_DRIFT_SPAN_S, 3 * PHASE_STEP_SPAN_S + PHASE_STEP_GAP_S) - 1e-9
        while points and points[0][0] < keep_from:
            points.popleft()

    def moved(self) -> bool:
        """Whether the phase moved at all (0.1 rad) between its last half second and the half second
        1.5 s before: if not, there is neither drift nor step to look for (the quick test a healthy
        block takes)."""
        points = self._points
        if len(points) < 12:
            return False
        recent = [p for _, p in list(points)[-5:]]
        end = points[-1][0]
        older = [p for t, p in points if end - 2.0 < t <= end - 1.5]
        if not older:
            older = [p for _, p in list(points)[:5]]
        return abs(sum(recent) / len(recent) - sum(older) / len(older)) > 0.1

    def drift_hz(self) -> float | None:
        """A steady drift of the phase over the last two seconds (Hz), else None."""
        end = self._points[-1][0] if self._points else 0.0
        span = [p for p in self._points if p[0] > end - PHASE_DRIFT_SPAN_S]
        if len(span) < 12 or span[-1][0] - span[0][0] < 0.8 * PHASE_DRIFT_SPAN_S:
            self._drifting = 0
            return None
        half = len(span) // 2
        whole, se = _slope(span)
        first, _ = _slope(span[:half])
        second, _ = _slope(span[half:])
        low = 2.0 * math.pi * PHASE_DRIFT_MIN_HZ
        high = 2.0 * math.pi * self.drift_max_hz
        steady = (
            low < abs(whole) <= high and abs(whole) > 4.0 * se
            and all(low < abs(s) <= high and s * whole > 0 for s in (first, second))
            and max(abs(first), abs(second)) < 2.0 * min(abs(first), abs(second))
        )
        self._drifting = self._drifting + 1 if steady else 0
        return whole / (2.0 * math.pi) if self._drifting >= PHASE_DRIFT_HOLD else None

    def step_rad(self) -> float | None:
        """A jump of the phase between two steady stretches (the last second, and the two seconds
        before it but for a gap of PHASE_STEP_GAP_S where the jump's own blocks fall), else None."""
        points = self._points
        if not points:
            return None
        end = points[-1][0]
        recent = [p for p in points if p[0] > end - PHASE_STEP_SPAN_S]
        last_before = end - PHASE_STEP_SPAN_S - PHASE_STEP_GAP_S
        before = [p for p in points if last_before - 2 * PHASE_STEP_SPAN_S < p[0] <= last_before]
        if len(recent) < 6 or len(before) < 6:
            return None
        flat = 2.0 * math.pi * PHASE_DRIFT_MIN_HZ
        means = []
        for part in (recent, before):
            slope, _ = _slope(part)
            mean = sum(p for _, p in part) / len(part)
            # steady: no drift (a drift is the other check's), and every block near the stretch's mean
            if abs(slope) > flat or max(abs(p - mean) for _, p in part) > 0.5 * PHASE_STEP_RAD:
                return None
            means.append(mean)
        jump = means[0] - means[1]
        return jump if abs(jump) > PHASE_STEP_RAD else None


# -- a second accelerometer ----------------------------------------------------------------------


@dataclass
class _Pair:
    """One block's fundamentals from the two accelerometers, with their variances."""

    t_s: float
    first: float
    second: float
    first_var: float
    second_var: float


class PairWatch:
    """Two accelerometers' fundamentals, block by block, over the last second."""

    def __init__(self) -> None:
        self._pairs: deque[_Pair] = deque()
        self.last_ratio: float | None = None

    def add(self, t_s: float, first, second) -> tuple[float, float] | None:
        """The blocks' fits (livctl.dsp.blockfit.BlockFit); returns the second's level over the first's
        over the last second, and that ratio's standard error, once it is known, else None."""
        pairs = self._pairs
        if first is not None and second is not None and (  # either clearly moving: one that reads nothing disagrees
            first.fundamental_mps2 > SENSOR_MIN_SNR * first.fundamental_se_mps2
            or second.fundamental_mps2 > SENSOR_MIN_SNR * second.fundamental_se_mps2
        ):
            pairs.append(_Pair(t_s, first.fundamental_mps2, second.fundamental_mps2,
                               first.fundamental_se_mps2**2, second.fundamental_se_mps2**2))
        while pairs and pairs[0].t_s <= t_s - SENSORS_AGREE_SPAN_S + 1e-9:
            pairs.popleft()
        if len(pairs) < 5:
            return None
        total_first = sum(p.first for p in pairs)
        ratio = sum(p.second for p in pairs) / total_first
        se = math.sqrt(sum(p.second_var for p in pairs) + ratio**2 * sum(p.first_var for p in pairs)) / total_first
        self.last_ratio = ratio
        return ratio, se


# -- all of it ------------------------------------------------------------------------------------


class SensorWatch:
    """Every check above, fed one guarded block at a time (see the module's text)."""

    def __init__(self, rate_hz: float, *, sensors: int = 1):
        self.clock = ClockWatch()
        self.replay = ReplayWatch(rate_hz)
        self.second_replay = ReplayWatch(rate_hz) if sensors > 1 else None
        self.phase = PhaseWatch()
        self.pair = PairWatch() if sensors > 1 else None
        self._second_bad_since: float | None = None
        self.load_at_start_kg: float | None = None

    def on_arrival(self, stream_end_s: float, host_s: float, breaks: int = 0) -> None:
        self.clock.add(stream_end_s, host_s, breaks)

    def check(
        self, block, fit, problem: str | None, second_fit, second_problem: str | None, *, drive: float, steady: bool
    ) -> None:
        """Judge one block (raises `SensorUntrusted`, or `Trip` for a load change)."""
        end_s = block.t0_s + block.duration_s
        reason = self.clock.problem()
        if reason:
            raise SensorUntrusted(reason)
        self._replay(self.replay, block.accel_mps2, problem, fit, "the sensor")
        if self.second_replay is not None and block.second_mps2 is not None:
            self._replay(self.second_replay, block.second_mps2, second_problem, second_fit, "the second accelerometer")
        if block.load_kg is not None and math.isfinite(block.load_kg):
            self._load(block.load_kg)
        if self.pair is not None:
            self._second(end_s, fit, problem, second_fit, second_problem)
        if fit is not None and drive > 0 and fit.fundamental_mps2 > PHASE_USABLE_SNR * fit.fundamental_se_mps2:
            self.phase.add(block.t0_s + 0.5 * block.duration_s, fit.phase_rad)
            if not self.phase.moved():
                self.phase.still()
                return
            drift = self.phase.drift_hz()
            if drift is not None:
                raise SensorUntrusted(
                    f"the vibration the sensor reads drifts {abs(drift):.3f} Hz from the drive (its phase slips "
                    f"{abs(drift) * 360:.0f} degrees a second; a platform's own response holds it): the sensor does not "
                    "see this platform (is it another platform's?), or the board's synthesiser is off"
                )
            step = self.phase.step_rad()
            if step is not None:
                raise Trip(
                    f"the platform's response changed at once (its phase moved {abs(step):.2f} rad): the load changed "
                    "(did the subject step off?) or the sensor came loose; check both"
                )

    def _replay(self, watch: ReplayWatch, rows, problem: str | None, fit, name: str) -> None:
        if fit is not None and fit.noise_rms_mps2 < REPLAY_MIN_NOISE_MPS2:
            watch.noiseless = True  # no sensor's: from now on, nothing to tell a replay by
        if problem is not None or watch.noiseless or rows.shape[0] == 0 or not np.isfinite(rows).all():
            watch.skip(rows.shape[0])
            return
        found = watch.add(rows)
        if found is not None:
            distance, runs = found
            raise SensorUntrusted(
                f"{name} repeats, sample for sample, what it sent {distance} samples before: it is replaying old "
                "data, not measuring; check the sensor and its board"
            )

    def _load(self, load_kg: float) -> None:
        if self.load_at_start_kg is None:
            self.load_at_start_kg = load_kg
            return
        start = self.load_at_start_kg
        change = load_kg - start
        if abs(change) > max(LOAD_CHANGE_MIN_KG, LOAD_CHANGE_FRACTION * start):
            what = "did the subject step off, or was the cage removed?" if change < 0 else "was something put on it?"
            raise Trip(
                f"the load cell reads {load_kg:.2f} kg, {start:.2f} kg when this began: the load changed ({what})"
            )

    def _second(self, end_s: float, fit, problem, second_fit, second_problem) -> None:
        if second_problem is not None:
            if self._second_bad_since is None:
                self._second_bad_since = end_s
            if end_s - self._second_bad_since >= SECOND_STALE_S - 1e-9:
                raise SensorUntrusted(
                    f"the second accelerometer's data are {second_problem}: the first cannot be checked against it; "
                    "check the second sensor and its cable"
                )
            return
        self._second_bad_since = None
        if problem is not None:
            return
        compared = self.pair.add(end_s, fit, second_fit)
        if compared is None:
            return
        ratio, se = compared
        off = abs(ratio - 1.0)
        if off > SENSORS_AGREE_FRACTION and off - SENSORS_AGREE_FRACTION > 3.0 * se:  # beyond the noise too
            raise SensorUntrusted(
                f"the two accelerometers disagree: the second reads {100 * (ratio - 1):+.1f} % against the first over "
                f"the last second (at most {100 * SENSORS_AGREE_FRACTION:g} %): one of them is failing; check both"
            )
