"""The figure `livctl validate --plot PNG` writes: what was recorded against what was prescribed.

Three panels, all in g: a few cycles of the driven axis with the fitted tone and the prescribed
peak band around gravity; every window's peak over the recording with the tolerance band; the
amplitude spectrum (peak g per line, flat-top window, so a tone reads its true peak) with the
prescribed frequency band and peak band. matplotlib is imported here only, with the Agg backend
(no display needed).
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from livctl.records.files import write_atomic
from livctl.units import STANDARD_GRAVITY_MPS2 as G_MPS2

__all__ = ["write_plot"]

CYCLES_SHOWN = 6


def write_plot(result, path: str | Path) -> None:
    """Draw `result` (a `Validation`) to `path` (PNG): the trace, the windows' peaks, the spectrum.

    One piece, by choice: the three panels of one figure, drawn on shared scales and colours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.signal import welch

    rec, rx, m = result.recording, result.prescription, result.measurement
    tol = rx.tolerance
    axis = rec.axes.index(m.axis)
    x_g = rec.accel_mps2[:, axis] / G_MPS2
    rate = rec.rate_hz
    lo_g, hi_g = rx.peak_g * (1.0 - tol.accel_fraction), rx.peak_g * (1.0 + tol.accel_fraction)

    fig, (trace, windows, spectrum) = plt.subplots(3, 1, figsize=(10, 11), constrained_layout=True)
    verdict = "in spec" if result.in_spec else "OUT OF SPEC"
    fig.suptitle(f"{Path(rec.source).name}: {verdict} (prescribed {rx.frequency_hz:g} Hz, {rx.peak_g:g} g peak)")

    # a few cycles from the middle of the main stretch's longest part, with that part's fit over them
    part_start, part_stop = result.stretch.part
    run = next(p for p in rec.piece_list if p.start <= part_start < p.start + p.n)
    span = min(part_stop - part_start, int(math.ceil(CYCLES_SHOWN * rate / max(m.frequency_hz, 1e-9))))
    start = part_start + max(0, (part_stop - part_start) // 2 - span // 2)
    index = start + np.arange(span)
    t = rec.t0_s + run.t0_s + (index - run.start) / rate
    trace.plot(t, x_g[start : start + span], ".", ms=3, color="0.35", label=f"recorded ({m.axis} axis)")
    tone = result.axes.get(m.axis)
    if tone is not None:
        t_fit = (index - part_start) / rate
        fitted = tone.offset / G_MPS2 + tone.amplitude / G_MPS2 * np.cos(
            2 * math.pi * tone.frequency_hz * t_fit + tone.phase_rad)
        trace.plot(t, fitted, "-", color="tab:blue", lw=1.2, label=f"fitted fundamental: {tone.amplitude / G_MPS2:.3f} g peak")
    for sign in (1.0, -1.0):
        trace.axhspan(m.dc_g + sign * lo_g, m.dc_g + sign * hi_g, color="tab:green", alpha=0.15,
                      label="prescribed peak +- tolerance" if sign > 0 else None)
    trace.set_xlabel("time, s")
    trace.set_ylabel("acceleration, g")
    trace.set_title(f"time trace: {CYCLES_SHOWN} cycles from the middle of the driven stretch")
    trace.legend(loc="upper right", fontsize=8)

    # every window's peak over the recording
    centres = np.array([w.t_s + 0.5 * w.duration_s for w in result.windows])
    peaks = np.array([w.measurement.peak_g if w.measurement else np.nan for w in result.windows])
    ok = np.array([w.in_spec for w in result.windows])
    windows.axhspan(lo_g, hi_g, color="tab:green", alpha=0.15, label="prescribed peak +- tolerance")
    windows.axhline(rx.peak_g, color="tab:green", lw=1)
    windows.plot(centres[ok], peaks[ok], ".", color="tab:blue", ms=4, label="window in spec")
    windows.plot(centres[~ok], peaks[~ok], "x", color="tab:red", ms=5, label="window out of spec")
    for stretch in result.stretches:
        windows.axvspan(stretch.from_s, stretch.to_s, color="tab:blue", alpha=0.06,
                        label="stretches of steady tone" if stretch.index == 0 else None)
        if len(result.stretches) > 1:
            windows.annotate(f"{stretch.measurement.frequency_hz:.2f} Hz", (0.5 * (stretch.from_s + stretch.to_s), 1.0),
                             xycoords=("data", "axes fraction"), ha="center", va="bottom", fontsize=8)
    windows.axhline(m.peak_g, color="tab:blue", lw=1, ls="--", label=f"driven stretch: {m.peak_g:.4f} g")
    windows.set_xlabel("time, s")
    windows.set_ylabel("peak of the fundamental, g")
    windows.set_title(f"windows of {result.window_s:g} s: {100 * result.in_spec_fraction:.1f} % in spec")
    windows.legend(loc="best", fontsize=8)

    # amplitude spectrum: flat-top window, peak g per line
    stretch_x = x_g[part_start:part_stop]
    nperseg = min(stretch_x.shape[0], max(256, int(round(result.window_s * rate))))
    freqs, power = welch(stretch_x, fs=rate, window="flattop", nperseg=nperseg, scaling="spectrum", detrend="constant")
    amplitude = np.sqrt(2.0 * power)
    spectrum.semilogy(freqs, np.maximum(amplitude, 1e-9), color="0.3", lw=1)
    spectrum.axvspan(rx.frequency_hz - tol.frequency_hz, rx.frequency_hz + tol.frequency_hz, color="tab:green",
                     alpha=0.2, label=f"prescribed {rx.frequency_hz:g} +- {tol.frequency_hz:g} Hz")
    spectrum.axhspan(lo_g, hi_g, color="tab:green", alpha=0.15, label=f"{rx.peak_g:g} g +- {100 * tol.accel_fraction:g} %")
    spectrum.plot([m.frequency_hz], [m.peak_g], "o", color="tab:blue", mfc="none",
                  label=f"measured {m.frequency_hz:.3f} Hz, {m.peak_g:.3f} g")
    spectrum.set_xlim(0, min(rate / 2, max(6.0 * rx.frequency_hz, 2.0 * m.frequency_hz)))
    floor = float(np.median(amplitude[1:])) if amplitude.size > 1 else 1e-6
    spectrum.set_ylim(max(floor / 10, 1e-7), max(hi_g, float(amplitude.max())) * 3)
    spectrum.set_xlabel("frequency, Hz")
    spectrum.set_ylabel("amplitude, g peak")
    thd = f"THD {m.thd_percent:.2f} %" if m.thd_verifiable else f"THD unverifiable ({m.thd_harmonics} of harmonics 2-5 seen)"
    spectrum.set_title(f"spectrum of the {m.axis} axis over the driven stretch (flat-top, averaged); {thd}")
    spectrum.legend(loc="upper right", fontsize=8)

    image = io.BytesIO()
    try:
        fig.savefig(image, dpi=100, format="png")
    finally:
        plt.close(fig)
    write_atomic(path, image.getvalue())  # whole or not at all; a failure is a one-line UsageError
