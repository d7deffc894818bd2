"""Validating a recording against a prescription: every window, the stretches of steady tone they
make up, and the figures of each stretch.

    recording ──► checks (rate, values, length, window) ──► windows of each run of samples
              (estimator.measure_windows, many at a time)
              ──► stretches: consecutive windows that hold one steady tone; quiet windows (no tone,
                  or a tone far below the delivery's) and short transitions (a ramp, a burst)
                  belong to none; stretches of the same tone join up
              ──► each stretch's figures: one IEEE 1057 fit over each contiguous part of it
                  (estimator.fit_record), or its windows' average when the tone is not steady enough
                  for one fit; uncertainty from the fit and the time base (timebase.Timing)
              ──► clipped sensor? ──► spec check of each stretch and window ──► the verdict

The verdict rests on the driven stretch: its figures, and its bounds, are the record's. A record
that holds more than one stretch (a stepped sine, a level step) is not one steady tone: the verdict
says so and lists each stretch with its figures, and the main figures are the longest stretch's.
Windows outside every stretch do not dilute any figure; they are named in the verdict, with the
--start/--end that would validate the stretch alone. Never is a figure a mean over quiet and
driven windows.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, replace

import numpy as np

from livctl.dsp.estimator import (
    MIN_CYCLES,
    AnalysisError,
    Measurement,
    RecordFit,
    ToneFit,
    check_spec,
    driven_axis,
    fit_record,
    measure,
    measure_windows,
)
from livctl.prescription import Prescription
from livctl.offline.recordings import Recording, RecordingError, check_magnitude
from livctl.units import STANDARD_GRAVITY_MPS2 as G_MPS2

__all__ = ["Validation", "WindowReport", "Stretch", "COVERAGE_FACTOR", "validate", "shortest_window_s"]

MIN_RATE_FACTOR = 2.5
"""The sample rate must be at least this many times the prescribed frequency."""
SEARCH_BAND = (0.5, 1.5)
"""The search band, as multiples of the prescribed frequency."""
MIN_DETECTION_SNR = 100.0
"""A window's tone must stand 20 dB above the noise over the window (N times the per-sample SNR,
the periodogram's peak-to-noise ratio) to count as a vibration; white noise alone reaches that
with a chance of about e^-50 per bin, so a silent window is never read as a weak tone."""
COHERENT = "coherent fit"
WINDOW_AVERAGE = "window average"
QUIET_SHARE = 0.1
"""A run of windows whose tone is below this share of the reference run's is quiet (the platform
at rest, hum, a neighbour's machine): it belongs to no stretch. The reference is the run of at
least MIN_STRETCH_WINDOWS windows nearest the prescription, so a loud burst (a resonance) does not
make the delivery itself look quiet."""
MIN_STRETCH_WINDOWS = 3
"""Fewer consecutive windows of one tone are a transition (a ramp, a burst), not a stretch."""
STEP_SIGMAS = 5.0
"""Two windows hold different tones when they differ by more than this many of their combined
standard uncertainties, and by more than half the tolerance (frequency, or peak)."""
COVERAGE_FACTOR = 2.0
"""The printed +- (and `u95`) is this many standard uncertainties: the customary k = 2 of the GUM
for about 95 % (95.4 % for a normal distribution), so that the stated interval holds the truth at
least 95 % of the time rather than about as often."""
CLIP_MIN_SHARE = 0.005
"""A rail holding at least this share of an axis's samples may be a clipped sensor..."""
CLIP_MIN_OVERSHOOT = 0.005
"""...when the fitted vibration reaches past it by more than this share of its amplitude (and more
than a quantisation step)."""


@dataclass(frozen=True)
class WindowReport:
    """One window of a validated recording: its measurement and verdict against the prescription."""

    index: int
    t_s: float
    """Start, seconds after the file's first sample."""
    duration_s: float
    measurement: Measurement | None
    in_spec: bool
    reasons: tuple[str, ...]
    start: int = 0
    """Index of the window's first sample in the recording."""
    n: int = 0
    stretch: int | None = None
    """The stretch the window belongs to (index into Validation.stretches), None outside all."""
    run: int = 0
    """The run of samples (between gaps) the window lies in."""

    def to_dict(self) -> dict:
        d = {"index": self.index, "t_s": self.t_s}
        if self.measurement is not None:
            d.update(self.measurement.to_dict())
        else:
            d.update({k: None for k in _MEASUREMENT_KEYS})
        d.update(duration_s=self.duration_s, in_spec=self.in_spec, reasons=list(self.reasons), stretch=self.stretch)
        return d


_MEASUREMENT_KEYS = Measurement.KEYS


@dataclass(frozen=True)
class Stretch:
    """Consecutive windows (with gaps or transitions between them at most) that hold one tone."""

    index: int
    from_s: float
    to_s: float
    """Bounds: the start of its first window and the end of its last (s after the file's first sample)."""
    windows: tuple[int, ...]
    measurement: Measurement
    method: str
    coherence: float
    """Fitted amplitude over the windows' mean amplitude: 1 for a steady tone."""
    axes: dict[str, ToneFit]
    """Fit of every recorded axis at the driven frequency, over the stretch's longest part."""
    part: tuple[int, int]
    """Sample range (start, stop) of that longest part."""
    frequency_timing_u_hz: float
    peak_timing_u_g: float
    reasons: tuple[str, ...] = ()

    @property
    def duration_s(self) -> float:
        return self.measurement.duration_s

    @property
    def in_spec(self) -> bool:
        return not self.reasons

    def to_dict(self) -> dict:
        m = self.measurement
        d = {"index": self.index, "from_s": self.from_s, "to_s": self.to_s, "windows": len(self.windows),
             "method": self.method, "coherence": self.coherence, "in_spec": self.in_spec, "reasons": list(self.reasons)}
        d.update(m.to_dict())
        d["uncertainty"] = _uncertainty_dict(m, self.frequency_timing_u_hz, self.peak_timing_u_g)
        return d


def _uncertainty_dict(m: Measurement, timing_f: float, timing_a: float) -> dict:
    model_f = math.sqrt(max(0.0, m.frequency_u_hz**2 - timing_f**2))
    model_a = math.sqrt(max(0.0, m.peak_u_g**2 - timing_a**2))
    return {
        "frequency_hz": {"u": m.frequency_u_hz, "model_u": model_f, "timing_u": timing_f,
                         "u95": COVERAGE_FACTOR * m.frequency_u_hz},
        "peak_g": {"u": m.peak_u_g, "model_u": model_a, "timing_u": timing_a, "u95": COVERAGE_FACTOR * m.peak_u_g},
    }


@dataclass(frozen=True)
class Validation:
    """A recording validated against a prescription: windows, stretches, the main stretch's figures with
    uncertainty, the verdict."""

    recording: Recording
    prescription: Prescription
    window_s: float
    measurement: Measurement
    """The main stretch's figures (the verdict's basis)."""
    method: str
    coherence: float
    axes: dict[str, ToneFit]
    """Fit of every recorded axis at the driven frequency (the main stretch's longest part)."""
    windows: tuple[WindowReport, ...]
    reasons: tuple[str, ...]
    stretches: tuple[Stretch, ...] = ()
    main: int = 0
    """Index of the main stretch: the longest."""
    notes: tuple[str, ...] = ()

    @property
    def in_spec(self) -> bool:
        return not self.reasons

    @property
    def in_spec_fraction(self) -> float:
        total = sum(w.duration_s for w in self.windows)
        return sum(w.duration_s for w in self.windows if w.in_spec) / total if total > 0 else 0.0

    @property
    def stretch(self) -> Stretch:
        return self.stretches[self.main]

    @property
    def steady(self) -> bool:
        """One stretch of one tone."""
        return len(self.stretches) == 1

    def to_dict(self) -> dict:
        rec, rx = self.recording, self.prescription
        tol = rx.tolerance
        main = self.stretch
        d = self.measurement.to_dict()
        d.update(
            in_spec=self.in_spec,
            reasons=list(self.reasons),
            in_spec_fraction=self.in_spec_fraction,
            method=self.method,
            coherence=self.coherence,
            steady=self.steady,
            from_s=main.from_s,
            to_s=main.to_s,
            uncertainty=_uncertainty_dict(self.measurement, main.frequency_timing_u_hz, main.peak_timing_u_g),
            prescription={
                "frequency_hz": rx.frequency_hz,
                "peak_g": rx.peak_g,
                "preset": rx.preset,
                "tolerance": {
                    "frequency_hz": tol.frequency_hz,
                    "accel_percent": 100.0 * tol.accel_fraction,
                    "max_thd_percent": 100.0 * tol.max_thd_fraction,
                },
            },
            recording={
                "file": rec.source,
                "format": rec.format,
                "units": rec.units,
                "axes": list(rec.axes),
                "samples": rec.samples,
                "rate_hz": rec.rate_hz,
                "duration_s": rec.duration_s,
                "start_s": rec.t0_s,
                "time_unit": rec.time_unit or None,
                "jitter_rms_s": rec.timing.jitter_rms_s,
                "jitter_max_s": rec.timing.jitter_max_s,
                "drift_rms_s": rec.timing.drift_rms_s,
                "resampled": rec.timing.resampled,
                "time_stamps": rec.timing.decision or None,
                "runs": [{"from_s": rec.t0_s + p.t0_s, "to_s": rec.t0_s + p.t0_s + p.n / rec.rate_hz}
                         for p in rec.piece_list],
                "notes": list(rec.notes),
            },
            stretches=[s.to_dict() for s in self.stretches],
            main_stretch=self.main,
            notes=list(self.notes),
            axes={name: _axis_dict(fit) for name, fit in self.axes.items()},
            window_s=self.window_s,
            windows=[w.to_dict() for w in self.windows],
        )
        return d


def _axis_dict(fit: ToneFit) -> dict:
    full = len(fit.harmonics) >= 4
    return {
        "peak_g": fit.amplitude / G_MPS2,
        "rms_g": fit.amplitude / G_MPS2 / math.sqrt(2.0),
        "phase_rad": fit.phase_rad,
        "dc_g": fit.offset / G_MPS2,
        "thd_percent": 100.0 * fit.thd_fraction if fit.amplitude > 0 and full else None,
        "snr_db": fit.snr_db,
        "sinad_db": fit.sinad_db,
    }


def shortest_window_s(rate_hz: float, frequency_hz: float) -> float:
    """The shortest window that holds MIN_CYCLES cycles of `frequency_hz` (and 16 samples), rounded
    up to what `--window` shows (three significant digits)."""
    samples = max(16, math.ceil(MIN_CYCLES * rate_hz / frequency_hz - 1e-9))
    seconds = samples / rate_hz
    digits = 2 - int(math.floor(math.log10(seconds)))
    return math.ceil(seconds * 10**digits - 1e-9) / 10**digits


def validate(
    recording: Recording,
    prescription: Prescription,
    *,
    axis: str = "auto",
    window_s: float = 1.0,
) -> Validation:
    """Measure `recording` window by window and stretch by stretch, and check it against
    `prescription`.

    `axis` is "auto" (the axis with the most AC power), or x, y, z. Raises RecordingError for a
    recording that cannot prove anything (too slow, too short, values no sensor reads, no
    vibration, clipped sensor) and for a window length that some window could not be measured with.

    One piece, by choice: the checks, windows, stretches, figures and verdict are one sequence, each
    step using what the ones before found; the helpers it calls carry the arithmetic.
    """
    rec, rx = recording, prescription
    rate, f_rx = rec.rate_hz, rx.frequency_hz
    if not (math.isfinite(rate) and rate > 0):
        raise RecordingError(f"{rec.source}: the sample rate is {rate:g} Hz; expected a positive rate")
    if rate < MIN_RATE_FACTOR * f_rx:
        hint = ""
        if rec.time_unit:
            other = "" if "--time-unit" in rec.time_unit else "; if that is wrong, give --time-unit"
            hint = f" (the time stamps were read in {rec.time_unit_words}{other})"
        raise RecordingError(
            f"the sample rate {rate:g} Hz is below {MIN_RATE_FACTOR:g} x the prescribed {f_rx:g} Hz; "
            f"record at {MIN_RATE_FACTOR * f_rx:g} Hz or more{hint}"
        )
    accel = rec.accel_mps2
    for i in range(accel.shape[1]):
        if not np.isfinite(accel[:, i]).all():
            raise RecordingError(f"{rec.source}: the {rec.axes[i]} axis holds NaN or infinite values; expected numbers")
    check_magnitude(rec.source, accel)
    if axis == "auto":
        index = driven_axis(accel)
    elif axis in rec.axes:
        index = rec.axes.index(axis)
    else:
        raise RecordingError(f"axis {axis!r} is not in {rec.source}, which holds {', '.join(rec.axes)}")
    runs = rec.piece_list
    longest = max(p.n for p in runs)
    if longest / rate * f_rx < MIN_CYCLES:
        what = "the longest run between gaps" if len(runs) > 1 else "the recording"
        raise RecordingError(
            f"{what} lasts {longest / rate:.3g} s: {longest / rate * f_rx:.1f} cycles of {f_rx:g} Hz, "
            f"at least {MIN_CYCLES:g} are needed"
        )
    if longest < 16:
        what = "the longest run between gaps" if len(runs) > 1 else "the recording"
        raise RecordingError(f"{what} holds {longest} samples: at least 16 are needed to measure a vibration")
    window_n = _window_samples(window_s, rate, f_rx, longest)
    search_hz = (SEARCH_BAND[0] * f_rx, SEARCH_BAND[1] * f_rx)
    notes = []
    windows: list[WindowReport] = []
    short = [p for p in runs if p.n / rate * f_rx < MIN_CYCLES]
    if short:
        notes.append(f"{len(short)} run{'s' if len(short) > 1 else ''} between gaps ({sum(p.n for p in short) / rate:.3f} s, "
                     f"the first at {rec.t0_s + short[0].t0_s:.3f} s) too short to measure: left out")
    for k, p in enumerate(runs):
        if p.n / rate * f_rx < MIN_CYCLES:
            continue
        windows += [replace(w, run=k) for w in _windows(rec, p, window_n, index, search_hz, len(windows), f_rx)]
    measured = [w for w in windows if w.measurement is not None]
    if not measured:
        raise RecordingError(
            f"no vibration between {search_hz[0]:g} and {search_hz[1]:g} Hz in any window of {rec.source} "
            f"({windows[0].reasons[0]})"
        )
    groups, outside = _stretches(windows, rx)
    stretches = []
    for k, members in enumerate(groups):
        stretches.append(_stretch_figures(rec, k, members, windows, index, rx))
    member_of = {w: s.index for s in stretches for w in s.windows}
    windows = [_checked(replace(w, stretch=member_of.get(w.index)), rx) for w in windows]
    main = max(range(len(stretches)), key=lambda k: stretches[k].duration_s)
    reasons = _verdict(stretches, main, windows, outside, rx)
    m = stretches[main]
    return Validation(
        recording=rec,
        prescription=rx,
        window_s=window_n / rate,
        measurement=m.measurement,
        method=m.method,
        coherence=m.coherence,
        axes=m.axes,
        windows=tuple(windows),
        reasons=tuple(reasons),
        stretches=tuple(stretches),
        main=main,
        notes=tuple(notes),
    )


def _window_samples(window_s: float, rate: float, f_rx: float, longest: int) -> int:
    """Samples per window; a window that could not hold MIN_CYCLES cycles of the prescribed tone is
    refused here, naming the shortest that works, so that no window is refused one by one later. A
    window longer than the longest run is that run."""
    if not (window_s > 0 and math.isfinite(window_s)):
        raise RecordingError(f"--window {window_s:g}: expected a positive number of seconds")
    if window_s * rate >= longest:
        return longest
    window_n = max(1, int(round(window_s * rate)))
    if window_n < 16 or window_n / rate * f_rx < MIN_CYCLES - 1e-9:
        shortest = shortest_window_s(rate, f_rx)
        raise RecordingError(
            f"a {window_s:g} s window holds {window_n / rate * f_rx:.2f} cycles of {f_rx:g} Hz ({window_n} samples); "
            f"at least {MIN_CYCLES:g} are needed: use --window {shortest:g} or longer"
        )
    return window_n


def _windows(rec: Recording, run, window_n: int, axis: int, search_hz, first_index: int,
             f_rx: float) -> list[WindowReport]:
    """The windows of one run of samples: whole windows; a tail of more than half a window that
    holds MIN_CYCLES cycles of the prescribed tone stands alone, a shorter one joins the last
    window (as in a session). Every window holds MIN_CYCLES cycles of the prescription, so any tone
    in the search band holds at least MIN_CYCLES x its lower edge: no window is refused for its
    length. All whole windows are measured together."""
    rate = rec.rate_hz
    n = run.n
    accel = rec.accel_mps2[run.start : run.start + n]
    window_n = min(window_n, n)
    full = n // window_n
    tail = n - full * window_n
    spans = [(i * window_n, window_n) for i in range(full)]
    if tail > 0.5 * window_n and tail / rate * f_rx >= MIN_CYCLES:
        spans.append((full * window_n, tail))
    elif tail:
        spans[-1] = (spans[-1][0], window_n + tail)
    batch = sum(1 for _, length in spans if length == window_n)
    min_cycles = MIN_CYCLES * SEARCH_BAND[0]
    results: list[Measurement | AnalysisError] = []
    if batch:
        results = measure_windows(accel[: batch * window_n], rate, window_n, axis=axis, search_hz=search_hz,
                                  names=rec.axes, min_cycles=min_cycles)
    for start, length in spans[batch:]:
        try:
            m = measure(accel[start : start + length], rate, axis=axis, search_hz=search_hz, min_cycles=min_cycles)
        except AnalysisError as exc:
            results.append(exc)
        else:
            results.append(replace(m, axis=rec.axes[axis]))
    reports = []
    for i, ((start, length), result) in enumerate(zip(spans, results)):
        m = result if isinstance(result, Measurement) else None
        reasons = () if m is not None else (f"no measurement: {result}",)
        window_snr = length * 10.0 ** (m.snr_db / 10.0) if m is not None else 0.0
        if m is not None and not window_snr >= MIN_DETECTION_SNR:
            reasons = (f"no measurement: nothing between {search_hz[0]:g} and {search_hz[1]:g} Hz stands out of "
                       f"the noise (window SNR {10 * math.log10(max(window_snr, 1e-30)):.0f} dB)",)
            m = None
        if m is not None:
            f_u, a_u = rec.timing.uncertainty(run.start + start, run.start + start + length, m.frequency_hz,
                                                m.peak_g)
            m = replace(m, frequency_u_hz=math.hypot(m.frequency_u_hz, f_u),
                        peak_u_mps2=math.hypot(m.peak_u_mps2, a_u * G_MPS2))
        reports.append(WindowReport(first_index + i, rec.t0_s + run.t0_s + start / rate, length / rate, m, False,
                                    reasons, run.start + start, length))
    return reports


def _different(a: Measurement, b: Measurement, rx: Prescription) -> bool:
    """Whether two windows hold different tones: apart by more than STEP_SIGMAS of their combined
    spread and by more than half the tolerance, in frequency or in peak."""
    tol = rx.tolerance
    df = abs(a.frequency_hz - b.frequency_hz)
    if df > max(0.5 * tol.frequency_hz, STEP_SIGMAS * math.hypot(a.frequency_u_hz, b.frequency_u_hz)):
        return True
    if not (a.peak_g > 0 and b.peak_g > 0):
        return True
    dlog = abs(math.log(a.peak_g / b.peak_g))
    spread = math.hypot(a.peak_u_g / a.peak_g, b.peak_u_g / b.peak_g)
    return dlog > max(math.log1p(0.5 * tol.accel_fraction), STEP_SIGMAS * spread)


def _stretches(windows: list[WindowReport], rx: Prescription) -> tuple[list[list[int]], list[int]]:
    """Window indices of each stretch (in time order), and of the windows outside every stretch.

    Runs of consecutive measured windows holding one tone (`_different`) are found first; a run
    whose median peak is below QUIET_SHARE of the reference run's (the long run nearest the
    prescription) is quiet; a run shorter than MIN_STRETCH_WINDOWS is a transition; the remaining
    runs are stretches, and neighbouring stretches of the same tone (their medians, by
    `_different`) are one stretch."""
    runs: list[list[WindowReport]] = []
    for w in windows:
        m = w.measurement
        if m is None:
            runs.append([])
            continue
        if runs and runs[-1] and not _different(runs[-1][-1].measurement, m, rx):
            runs[-1].append(w)
        else:
            runs.append([w])
    runs = [r for r in runs if r]
    shortest = min(MIN_STRETCH_WINDOWS, max(len(r) for r in runs))
    long_runs = [r for r in runs if len(r) >= shortest]
    def distance(r: list[WindowReport]) -> float:
        m = _median(r)
        return abs(math.log(max(m.peak_g, 1e-300) / rx.peak_g)) + abs(m.frequency_hz / rx.frequency_hz - 1.0)

    reference = _median(min(long_runs, key=distance)).peak_g
    stretches: list[list[WindowReport]] = []
    for r in long_runs:
        if statistics.median(w.measurement.peak_g for w in r) < QUIET_SHARE * reference:
            continue
        if stretches and not _different(_median(stretches[-1]), _median(r), rx):
            stretches[-1] = stretches[-1] + r
        else:
            stretches.append(r)
    inside = {w.index for s in stretches for w in s}
    outside = [w.index for w in windows if w.index not in inside]
    return [[w.index for w in s] for s in stretches], outside


def _median(windows: list[WindowReport]) -> Measurement:
    """A stand-in measurement for a run: the median frequency and peak, the median spreads."""
    ms = [w.measurement for w in windows]
    first = ms[0]
    return replace(first, frequency_hz=statistics.median(m.frequency_hz for m in ms),
                   peak_mps2=statistics.median(m.peak_mps2 for m in ms),
                   frequency_u_hz=statistics.median(m.frequency_u_hz for m in ms),
                   peak_u_mps2=statistics.median(m.peak_u_mps2 for m in ms))


def _stretch_figures(rec: Recording, k: int, members: list[int], windows: list[WindowReport], axis: int,
                     rx: Prescription) -> Stretch:
    """A stretch's figures: each contiguous part of it (windows one after another within a run of
    samples) is fitted as one tone; a part whose fitted amplitude falls short of its windows' mean
    by more than their noise explains (the tone wanders) or that cannot be fitted gives its
    windows' average instead. Parts combine by duration."""
    rate = rec.rate_hz
    by_index = {w.index: w for w in windows}
    parts: list[list[WindowReport]] = []
    for i in members:
        w = by_index[i]
        last = parts[-1][-1] if parts else None
        if last is not None and last.index == i - 1 and last.run == w.run:
            parts[-1].append(w)
        else:
            parts.append([w])
    results = []
    for part in parts:
        start, stop = part[0].start, part[-1].start + part[-1].n
        measured = [w for w in part if w.measurement is not None]
        weights = np.array([w.duration_s for w in measured])
        mean_f = float(np.average([w.measurement.frequency_hz for w in measured], weights=weights))
        mean_peak = float(np.average([w.measurement.peak_g for w in measured], weights=weights))
        x = rec.accel_mps2[start:stop]
        record = None
        try:
            record = fit_record(x, rate, mean_f, axis=axis, names=rec.axes)
        except AnalysisError:
            pass
        if record is not None:
            _check_clipping(x, rec.axes, record)
            whole = record.measurement()
            coherence = whole.peak_g / mean_peak if mean_peak > 0 else 0.0
            steady = coherence >= 1.0 - _coherence_margin(measured, mean_peak) and math.isfinite(whole.frequency_hz)
        else:
            coherence, steady = 0.0, False
        if steady:
            method = COHERENT
        else:
            method = WINDOW_AVERAGE
            whole = _average(measured, weights, record.measurement() if record else measured[0].measurement, rec)
        results.append((part, start, stop, whole, method, coherence, record))
    durations = np.array([r[3].duration_s for r in results])
    longest = int(np.argmax(durations))
    part, start, stop, whole, method, coherence, record = results[longest]
    if len(results) > 1:
        whole = _combine([r[3] for r in results], durations)
        method = COHERENT if all(r[4] == COHERENT for r in results) else WINDOW_AVERAGE
        coherence = float(np.average([r[5] for r in results], weights=durations))
    first, last = by_index[members[0]], by_index[members[-1]]
    timing_f, timing_a = rec.timing.uncertainty(first.start, last.start + last.n, whole.frequency_hz,
                                                whole.peak_g)
    whole = replace(whole, frequency_u_hz=math.hypot(whole.frequency_u_hz, timing_f),
                    peak_u_mps2=math.hypot(whole.peak_u_mps2, timing_a * G_MPS2))
    axes_fit = dict(zip(rec.axes, record.tones)) if record is not None else {}
    stretch = Stretch(k, first.t_s, last.t_s + last.duration_s, tuple(members), whole, method, coherence, axes_fit,
                      (start, stop), timing_f, timing_a)
    return replace(stretch, reasons=tuple(check_spec(whole, rx)))


def _combine(ms: list[Measurement], durations: np.ndarray) -> Measurement:
    """Parts of one stretch (split by gaps or by windows outside it) as one: duration-weighted
    means; spreads as of a mean of independent parts."""
    w = durations / durations.sum()

    def mean(name: str) -> float:
        return float(np.dot(w, [getattr(m, name) for m in ms]))

    def mean_db(name: str) -> float:
        return float(10.0 * np.log10(np.dot(w, [10.0 ** (getattr(m, name) / 10.0) for m in ms])))

    seen = min(m.thd_harmonics for m in ms)
    return replace(
        ms[0],
        frequency_hz=mean("frequency_hz"),
        peak_mps2=mean("peak_mps2"),
        thd_percent=mean("thd_percent"),
        thd_seen_percent=mean("thd_seen_percent"),
        thd_harmonics=seen,
        snr_db=mean_db("snr_db"),
        sinad_db=mean_db("sinad_db"),
        dc_mps2=mean("dc_mps2"),
        off_axis_percent=mean("off_axis_percent"),
        duration_s=float(durations.sum()),
        phase_rad=math.nan,
        frequency_u_hz=math.sqrt(float(np.dot(w**2, [m.frequency_u_hz**2 for m in ms]))),
        peak_u_mps2=math.sqrt(float(np.dot(w**2, [m.peak_u_mps2**2 for m in ms]))),
    )


def _checked(w: WindowReport, rx: Prescription) -> WindowReport:
    if w.measurement is None:
        return w
    reasons = tuple(check_spec(w.measurement, rx))
    return replace(w, in_spec=not reasons, reasons=reasons)


def _verdict(stretches: list[Stretch], main: int, windows: list[WindowReport], outside: list[int],
             rx: Prescription) -> list[str]:
    reasons = []
    if len(stretches) > 1:
        listed = "; ".join(f"{s.from_s:.1f}-{s.to_s:.1f} s: {s.measurement.frequency_hz:.2f} Hz, "
                           f"{s.measurement.peak_g:.3f} g" for s in stretches[:6])
        more = f"; and {len(stretches) - 6} more" if len(stretches) > 6 else ""
        reasons.append(f"the record is not one steady tone: {len(stretches)} stretches ({listed}{more})")
        for s in stretches:
            reasons += [f"stretch {s.index + 1} ({s.from_s:.1f}-{s.to_s:.1f} s): {r}" for r in s.reasons]
    else:
        reasons += list(stretches[main].reasons)
    if outside:
        by_index = {w.index: w for w in windows}
        out = [by_index[i] for i in outside]
        seconds = sum(w.duration_s for w in out)
        quiet = all(w.measurement is None for w in out)
        what = (f"hold no measurable {rx.frequency_hz:g} Hz vibration" if quiet
                else "lie outside the driven stretch (no vibration, or not at its level and frequency)")
        s = stretches[main]
        hint = (f"; --start {s.from_s:g} --end {s.to_s:g} validates the driven stretch alone"
                if len(stretches) == 1 else "")
        reasons.append(f"{len(out)} of {len(windows)} windows ({seconds:.1f} s, the first at {out[0].t_s:.1f} s) "
                       f"{what}{hint}")
    return reasons


def _coherence_margin(measured: list[WindowReport], mean_peak_g: float) -> float:
    """How far below 1 the coherence may fall by noise alone: five standard errors of the windows'
    mean amplitude (from each window's spread), and never less than 0.1 %."""
    us = [w.measurement.peak_u_g for w in measured if math.isfinite(w.measurement.peak_u_g)]
    if not us or mean_peak_g <= 0:
        return 1e-3
    standard_error = math.sqrt(sum(s * s for s in us)) / len(us)
    return max(1e-3, 5.0 * standard_error / mean_peak_g)


def _average(measured: list[WindowReport], weights: np.ndarray, whole: Measurement, rec: Recording) -> Measurement:
    """The windows' duration-weighted averages, for a tone that is not steady over a part (powers
    are averaged for SNR and SINAD; off-axis and THD are averaged as shares). The spreads are the
    windows' model spreads combined as independent (their time-base share is added for the whole
    stretch by the caller)."""

    def mean(name: str) -> float:
        return float(np.average([getattr(w.measurement, name) for w in measured], weights=weights))

    def mean_db(name: str) -> float:
        values = np.array([getattr(w.measurement, name) for w in measured])
        return float(10.0 * np.log10(np.average(10.0 ** (values / 10.0), weights=weights)))

    def model_u(w: WindowReport) -> tuple[float, float]:
        m = w.measurement
        f_t, a_t = rec.timing.uncertainty(w.start, w.start + w.n, m.frequency_hz, m.peak_g)
        return (math.sqrt(max(0.0, m.frequency_u_hz**2 - f_t**2)), math.sqrt(max(0.0, m.peak_u_g**2 - a_t**2)))

    k = len(measured)
    parts = [model_u(w) for w in measured]
    return replace(
        whole,
        frequency_hz=mean("frequency_hz"),
        peak_mps2=mean("peak_mps2"),
        thd_percent=mean("thd_percent"),
        thd_seen_percent=mean("thd_seen_percent"),
        thd_harmonics=min(w.measurement.thd_harmonics for w in measured),
        snr_db=mean_db("snr_db"),
        sinad_db=mean_db("sinad_db"),
        dc_mps2=mean("dc_mps2"),
        off_axis_percent=mean("off_axis_percent"),
        duration_s=float(np.sum(weights)),
        phase_rad=math.nan,
        frequency_u_hz=math.sqrt(sum(f * f for f, _ in parts)) / k,
        peak_u_mps2=math.sqrt(sum(a * a for _, a in parts)) / k * G_MPS2,
    )


def _check_clipping(accel: np.ndarray, names: tuple[str, ...], record: RecordFit) -> None:
    """A sensor stuck at a rail: many samples at exactly the extreme value, while the fitted
    vibration (fundamental and harmonics, with their phases) reaches past it by more than a
    quantisation step. (A quantised tone that is not clipped also sits at its extreme code for a
    while, but its fitted crest is within half a step of that code.)"""
    theta = np.linspace(0.0, 2.0 * math.pi, 1440, endpoint=False)
    for i, tone in enumerate(record.tones):
        x = accel[:, i]
        wave = tone.offset + tone.amplitude * np.cos(theta + tone.phase_rad)
        for h, (amplitude, phase) in enumerate(zip(tone.harmonics, tone.harmonic_phases_rad), start=2):
            wave += amplitude * np.cos(h * theta + phase)
        for sign in (1.0, -1.0):
            rail = float(np.max(x) if sign > 0 else np.min(x))
            share = float(np.count_nonzero(x == rail)) / x.shape[0]
            if share < CLIP_MIN_SHARE:
                continue
            inside = x[x != rail]
            step = abs(rail - (np.max(inside) if sign > 0 else np.min(inside))) if inside.size else 0.0
            crest = float(np.max(wave) if sign > 0 else np.min(wave))
            if (crest - rail) * sign > max(1.5 * step, CLIP_MIN_OVERSHOOT * tone.amplitude):
                raise RecordingError(
                    f"the {names[i]} axis is clipped: {100 * share:.1f} % of its samples sit at {rail / G_MPS2:+.3f} g "
                    f"while the vibration reaches {crest / G_MPS2:+.3f} g; the sensor saturated, so its readings "
                    "cannot prove the dose: record with a wider range or less drive"
                )
