"""Validating a recording against a prescription: the whole-record estimate and every window.

    recording ──► checks (rate, length, window) ──► windows, many at a time (analysis.measure_windows)
                                                 └► whole record, one fit (analysis.fit_record)
              ──► clipped sensor? ──► spec check of the whole record (the verdict) and of each window

The verdict comes from the whole-record estimate: one IEEE 1057 fit over every sample, whose
spread is the Cramer-Rao bound for the whole recording. That fit assumes one steady,
phase-continuous tone. When the recorded tone is not (its frequency wanders, or it stops and
starts), the fit's amplitude falls below the windows' by more than their noise explains; then
the whole-record figures are the windows' duration-weighted averages instead, and `method` says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from livctl.analysis import (
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
from livctl.recordings import Recording, RecordingError
from livctl.units import STANDARD_GRAVITY_MPS2 as G_MPS2

MIN_RATE_FACTOR = 2.5
"""The sample rate must be at least this many times the prescribed frequency."""
MIN_DETECTION_SNR = 100.0
"""A window's tone must stand 20 dB above the noise over the window (N times the per-sample SNR,
the periodogram's peak-to-noise ratio) to count as a vibration; white noise alone reaches that
with a chance of about e^-50 per bin, so a silent window is never read as a weak tone."""
COHERENT = "coherent fit"
WINDOW_AVERAGE = "window average"
CLIP_MIN_SHARE = 0.005
"""A rail holding at least this share of an axis's samples may be a clipped sensor..."""
CLIP_MIN_OVERSHOOT = 0.005
"""...when the fitted vibration reaches past it by more than this share of its amplitude (and more
than a quantisation step)."""


@dataclass(frozen=True)
class WindowReport:
    index: int
    t_s: float
    duration_s: float
    measurement: Measurement | None
    in_spec: bool
    reasons: tuple[str, ...]

    def to_dict(self) -> dict:
        d = {"index": self.index, "t_s": self.t_s}
        if self.measurement is not None:
            d.update(self.measurement.to_dict())
        else:
            d.update({k: None for k in _MEASUREMENT_KEYS})
        d.update(duration_s=self.duration_s, in_spec=self.in_spec, reasons=list(self.reasons))
        return d


_MEASUREMENT_KEYS = tuple(Measurement.__dataclass_fields__)


@dataclass(frozen=True)
class Validation:
    recording: Recording
    prescription: Prescription
    window_s: float
    measurement: Measurement
    """The whole record's figures (the verdict's basis)."""
    method: str
    coherence: float
    """Whole-record fundamental amplitude over the windows' mean amplitude: 1 for a steady tone."""
    axes: dict[str, ToneFit]
    """Whole-record fit of every recorded axis at the driven frequency."""
    windows: tuple[WindowReport, ...]
    reasons: tuple[str, ...]

    @property
    def in_spec(self) -> bool:
        return not self.reasons

    @property
    def in_spec_fraction(self) -> float:
        total = sum(w.duration_s for w in self.windows)
        return sum(w.duration_s for w in self.windows if w.in_spec) / total if total > 0 else 0.0

    def to_dict(self) -> dict:
        rec, rx = self.recording, self.prescription
        tol = rx.tolerance
        d = self.measurement.to_dict()
        d.update(
            in_spec=self.in_spec,
            reasons=list(self.reasons),
            in_spec_fraction=self.in_spec_fraction,
            method=self.method,
            coherence=self.coherence,
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
                "jitter_rms_s": rec.timing.jitter_rms_s,
                "jitter_max_s": rec.timing.jitter_max_s,
                "resampled": rec.timing.resampled,
            },
            axes={name: _axis_dict(fit) for name, fit in self.axes.items()},
            window_s=self.window_s,
            windows=[w.to_dict() for w in self.windows],
        )
        return d


def _axis_dict(fit: ToneFit) -> dict:
    return {
        "peak_g": fit.amplitude / G_MPS2,
        "rms_g": fit.amplitude / G_MPS2 / math.sqrt(2.0),
        "phase_rad": fit.phase_rad,
        "dc_g": fit.offset / G_MPS2,
        "thd_percent": 100.0 * fit.thd if fit.amplitude > 0 else None,
        "snr_db": fit.snr_db,
        "sinad_db": fit.sinad_db,
    }


def validate(
    recording: Recording,
    prescription: Prescription,
    *,
    axis: str = "auto",
    window_s: float = 1.0,
) -> Validation:
    """Measure `recording` window by window and as a whole, and check it against `prescription`.

    `axis` is "auto" (the axis with the most AC power), or x, y, z. Raises RecordingError for a
    recording that cannot prove anything (too slow, too short, no vibration, clipped sensor).
    """
    rec, rx = recording, prescription
    rate, f_rx = rec.rate_hz, rx.frequency_hz
    if rate < MIN_RATE_FACTOR * f_rx:
        raise RecordingError(
            f"the sample rate {rate:g} Hz is below {MIN_RATE_FACTOR:g} x the prescribed {f_rx:g} Hz; "
            f"record at {MIN_RATE_FACTOR * f_rx:g} Hz or more"
        )
    if rec.duration_s * f_rx < MIN_CYCLES:
        raise RecordingError(
            f"the recording lasts {rec.duration_s:.3g} s: {rec.duration_s * f_rx:.1f} cycles of {f_rx:g} Hz, "
            f"at least {MIN_CYCLES:g} are needed"
        )
    if window_s * f_rx < MIN_CYCLES:
        raise RecordingError(
            f"a {window_s:g} s window holds {window_s * f_rx:.1f} cycles of {f_rx:g} Hz; "
            f"use --window {MIN_CYCLES / f_rx:.3g} or longer"
        )
    accel = rec.accel_mps2
    if axis == "auto":
        index = driven_axis(accel)
    elif axis in rec.axes:
        index = rec.axes.index(axis)
    else:
        raise RecordingError(f"axis {axis!r} is not in {rec.source}, which holds {', '.join(rec.axes)}")
    search_hz = (0.5 * f_rx, 1.5 * f_rx)
    windows = _windows(accel, rate, window_s, index, search_hz, rec.axes)
    measured = [w for w in windows if w.measurement is not None]
    if not measured:
        raise RecordingError(
            f"no vibration between {search_hz[0]:g} and {search_hz[1]:g} Hz in any window of {rec.source} "
            f"({windows[0].reasons[0]})"
        )
    weights = np.array([w.duration_s for w in measured])
    mean_f = float(np.average([w.measurement.frequency_hz for w in measured], weights=weights))
    try:
        record = fit_record(accel, rate, mean_f, axis=index, names=rec.axes)
    except AnalysisError as exc:
        raise RecordingError(str(exc)) from None
    _check_clipping(rec, record)
    whole = record.measurement()
    mean_peak_g = float(np.average([w.measurement.peak_g for w in measured], weights=weights))
    coherence = whole.peak_g / mean_peak_g if mean_peak_g > 0 else 0.0
    method = COHERENT
    if coherence < 1.0 - _coherence_margin(measured, mean_peak_g) or len(measured) < len(windows):
        method = WINDOW_AVERAGE
        whole = _average(measured, weights, whole)
    rx_windows = tuple(_checked(w, rx) for w in windows)
    return Validation(
        recording=rec,
        prescription=rx,
        window_s=window_s,
        measurement=whole,
        method=method,
        coherence=coherence,
        axes=dict(zip(rec.axes, record.tones)),
        windows=rx_windows,
        reasons=tuple(check_spec(whole, rx)) + _dead_spots(windows, rx),
    )


def _windows(accel: np.ndarray, rate: float, window_s: float, axis: int, search_hz, names) -> list[WindowReport]:
    """Windows of `window_s`; a tail of up to half a window joins the last one, a longer tail is a
    window of its own (as in a session). All whole windows are measured together."""
    n = accel.shape[0]
    window_n = max(1, int(round(window_s * rate)))
    full = n // window_n
    tail = n - full * window_n
    spans = [(i * window_n, window_n) for i in range(full)]
    if full == 0:
        spans = [(0, n)]
    elif tail > 0.5 * window_n:
        spans.append((full * window_n, tail))
    elif tail:
        spans[-1] = (spans[-1][0], window_n + tail)
    batch = sum(1 for _, length in spans if length == window_n)
    results: list[Measurement | AnalysisError] = []
    if batch:
        results = measure_windows(accel[: batch * window_n], rate, window_n, axis=axis, search_hz=search_hz,
                                  names=names)
    for start, length in spans[batch:]:
        try:
            m = measure(accel[start : start + length], rate, axis=axis, search_hz=search_hz)
        except AnalysisError as exc:
            results.append(exc)
        else:
            results.append(replace(m, axis=names[axis]))
    reports = []
    for i, ((start, length), result) in enumerate(zip(spans, results)):
        m = result if isinstance(result, Measurement) else None
        reasons = () if m is not None else (f"no measurement: {result}",)
        window_snr = length * 10.0 ** (m.snr_db / 10.0) if m is not None else 0.0
        if m is not None and window_snr < MIN_DETECTION_SNR:
            reasons = (f"no measurement: nothing between {search_hz[0]:g} and {search_hz[1]:g} Hz stands out of "
                       f"the noise (window SNR {10 * math.log10(max(window_snr, 1e-30)):.0f} dB)",)
            m = None
        reports.append(WindowReport(i, start / rate, length / rate, m, False, reasons))
    return reports


def _checked(w: WindowReport, rx: Prescription) -> WindowReport:
    if w.measurement is None:
        return w
    reasons = tuple(check_spec(w.measurement, rx))
    return replace(w, in_spec=not reasons, reasons=reasons)


def _dead_spots(windows: list[WindowReport], rx: Prescription) -> tuple[str, ...]:
    """A recording with windows that hold no measurable vibration did not deliver the dose
    throughout: say how much of it, and where the first such window is (--start/--end trim a
    recording to the delivery)."""
    dead = [w for w in windows if w.measurement is None]
    if not dead:
        return ()
    seconds = sum(w.duration_s for w in dead)
    return (
        f"{len(dead)} of {len(windows)} windows ({seconds:.1f} s, the first at {dead[0].t_s:.1f} s) hold no "
        f"measurable {rx.frequency_hz:g} Hz vibration",
    )


def _coherence_margin(measured: list[WindowReport], mean_peak_g: float) -> float:
    """How far below 1 the coherence may fall by noise alone: five standard errors of the windows'
    mean amplitude (from each window's Cramer-Rao spread), and never less than 0.1 %."""
    sd = [w.measurement.peak_sd_g for w in measured if math.isfinite(w.measurement.peak_sd_g)]
    if not sd or mean_peak_g <= 0:
        return 1e-3
    standard_error = math.sqrt(sum(s * s for s in sd)) / len(sd)
    return max(1e-3, 5.0 * standard_error / mean_peak_g)


def _average(measured: list[WindowReport], weights: np.ndarray, whole: Measurement) -> Measurement:
    """The windows' duration-weighted averages, for a tone that is not steady over the record
    (powers are averaged for SNR and SINAD; off-axis and THD are averaged as shares)."""

    def mean(name: str) -> float:
        return float(np.average([getattr(w.measurement, name) for w in measured], weights=weights))

    def mean_db(name: str) -> float:
        values = np.array([getattr(w.measurement, name) for w in measured])
        return float(10.0 * np.log10(np.average(10.0 ** (values / 10.0), weights=weights)))

    peak_g = mean("peak_g")
    k = len(measured)
    return Measurement(
        frequency_hz=mean("frequency_hz"),
        peak_g=peak_g,
        rms_g=peak_g / math.sqrt(2.0),
        thd_percent=mean("thd_percent"),
        snr_db=mean_db("snr_db"),
        sinad_db=mean_db("sinad_db"),
        dc_g=mean("dc_g"),
        axis=whole.axis,
        off_axis_percent=mean("off_axis_percent"),
        duration_s=float(np.sum(weights)),
        phase_rad=math.nan,
        frequency_sd_hz=math.sqrt(sum(w.measurement.frequency_sd_hz**2 for w in measured)) / k,
        peak_sd_g=math.sqrt(sum(w.measurement.peak_sd_g**2 for w in measured)) / k,
    )


def _check_clipping(rec: Recording, record: RecordFit) -> None:
    """A sensor stuck at a rail: many samples at exactly the extreme value, while the fitted
    vibration (fundamental and harmonics, with their phases) reaches past it by more than a
    quantisation step. (A quantised tone that is not clipped also sits at its extreme code for a
    while, but its fitted crest is within half a step of that code.)"""
    theta = np.linspace(0.0, 2.0 * math.pi, 1440, endpoint=False)
    for i, tone in enumerate(record.tones):
        x = rec.accel_mps2[:, i]
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
                    f"the {rec.axes[i]} axis is clipped: {100 * share:.1f} % of its samples sit at {rail / G_MPS2:+.3f} g "
                    f"while the vibration reaches {crest / G_MPS2:+.3f} g; the sensor saturated, so its readings "
                    "cannot prove the dose: record with a wider range or less drive"
                )
