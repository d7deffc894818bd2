"""The figure `livctl validate --plot PNG` writes: what was recorded against what was prescribed.

Three panels, all in g: a few cycles of the driven axis with the fitted tone and the prescribed
peak band around gravity; every window's peak over the recording with the tolerance band; the
amplitude spectrum (peak g per line, flat-top window, so a tone reads its true peak) with the
prescribed frequency band and peak band. matplotlib is imported here only, with the Agg backend
(no display needed).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from livctl.errors import UsageError
from livctl.units import STANDARD_GRAVITY_MPS2 as G_MPS2

CYCLES_SHOWN = 6


def write_plot(result, path: str | Path) -> None:
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

    # a few cycles from the middle of the recording, with the whole-record fit over them
    span = min(rec.samples, int(math.ceil(CYCLES_SHOWN * rate / max(m.frequency_hz, 1e-9))))
    start = max(0, rec.samples // 2 - span // 2)
    t = (start + np.arange(span)) / rate
    trace.plot(t, x_g[start : start + span], ".", ms=3, color="0.35", label=f"recorded ({m.axis} axis)")
    tone = result.axes[m.axis]
    fitted = tone.offset / G_MPS2 + tone.amplitude / G_MPS2 * np.cos(2 * math.pi * tone.frequency_hz * t + tone.phase_rad)
    trace.plot(t, fitted, "-", color="tab:blue", lw=1.2, label=f"fitted fundamental: {m.peak_g:.3f} g peak")
    for sign in (1.0, -1.0):
        trace.axhspan(m.dc_g + sign * lo_g, m.dc_g + sign * hi_g, color="tab:green", alpha=0.15,
                      label="prescribed peak +- tolerance" if sign > 0 else None)
    trace.set_xlabel("time, s")
    trace.set_ylabel("acceleration, g")
    trace.set_title(f"time trace: {CYCLES_SHOWN} cycles from the middle of the recording")
    trace.legend(loc="upper right", fontsize=8)

    # every window's peak over the recording
    centres = np.array([w.t_s + 0.5 * w.duration_s for w in result.windows])
    peaks = np.array([w.measurement.peak_g if w.measurement else np.nan for w in result.windows])
    ok = np.array([w.in_spec for w in result.windows])
    windows.axhspan(lo_g, hi_g, color="tab:green", alpha=0.15, label="prescribed peak +- tolerance")
    windows.axhline(rx.peak_g, color="tab:green", lw=1)
    windows.plot(centres[ok], peaks[ok], ".", color="tab:blue", ms=4, label="window in spec")
    windows.plot(centres[~ok], peaks[~ok], "x", color="tab:red", ms=5, label="window out of spec")
    windows.axhline(m.peak_g, color="tab:blue", lw=1, ls="--", label=f"whole record: {m.peak_g:.4f} g")
    windows.set_xlabel("time, s")
    windows.set_ylabel("peak of the fundamental, g")
    windows.set_title(f"windows of {result.window_s:g} s: {100 * result.in_spec_fraction:.1f} % in spec")
    windows.legend(loc="best", fontsize=8)

    # amplitude spectrum: flat-top window, peak g per line
    nperseg = min(rec.samples, max(256, int(round(result.window_s * rate))))
    freqs, power = welch(x_g, fs=rate, window="flattop", nperseg=nperseg, scaling="spectrum", detrend="constant")
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
    spectrum.set_title(f"spectrum of the {m.axis} axis (flat-top, averaged over windows); THD {m.thd_percent:.2f} %")
    spectrum.legend(loc="upper right", fontsize=8)

    try:
        fig.savefig(path, dpi=100)
    except OSError as exc:
        raise UsageError(f"cannot write the figure {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
