"""`livctl validate FILE`: prove from an accelerometer recording what a platform delivered."""

from __future__ import annotations

import argparse
import math
import sys

from livctl.cli import EXIT_FAILED, EXIT_OK
from livctl.cli.common import (
    add_json_option,
    add_tolerance_options,
    chosen_preset,
    fmt,
    positive_number,
    print_json,
    table,
    tolerance_from,
)
from livctl.errors import UsageError

DESCRIPTION = """\
Measure an accelerometer recording and check it against a prescription: frequency, peak and
RMS acceleration of the fundamental, THD (harmonics 2-5), SNR, SINAD, gravity (DC), the driven
axis and the off-axis share. The verdict comes from one sine fit over the whole recording (the
most precise estimate the recording allows); every window (1 s) is measured and checked too.

Files: CSV with a header row (time in s, optional; x, y, z in g unless --units), the ADXL345
dumps of 3D-printer firmware tooling (#time,accel_x,accel_y,accel_z in mm/s^2, recognised
automatically), or WAV (1-3 channels as x, y, z; --full-scale-g says what full scale means).

Prescription: --freq and --accel (peak g), or --preset. Tolerances: +-1 Hz, +-10 % of the peak
g, THD at most 10 %, unless overridden."""

EPILOG = """\
examples:
  livctl validate plate.csv --freq 30 --accel 0.4
  livctl validate adxl345-20240512.csv --preset human-30hz-0.4g --json
  livctl validate cage.wav --full-scale-g 2 --preset mouse-90hz-0.3g --plot cage.png
  livctl validate values.csv --rate 3200 --units m/s2 --freq 90 --accel 0.3 --axis z
  livctl validate session.csv --preset human-30hz-0.4g --start 2 --end 602   the delivery only

exit codes: 0 in spec, 1 out of spec, 2 bad usage or an unusable recording"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate",
        help="check an accelerometer recording against a prescription",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", metavar="FILE", help="the recording: CSV or WAV")
    rx = p.add_argument_group("prescription")
    rx.add_argument("--preset", metavar="NAME", help="a shipped protocol (see `livctl presets`)")
    rx.add_argument("--freq", type=positive_number("Hz"), metavar="HZ", help="prescribed frequency, Hz")
    rx.add_argument("--accel", type=positive_number("g"), metavar="G", help="prescribed peak acceleration, g")
    add_tolerance_options(p.add_argument_group("tolerances"))
    rec = p.add_argument_group("recording")
    rec.add_argument("--axis", choices=("x", "y", "z", "auto"), default=None,
                     help="the driven axis (default: auto, the axis with the most vibration; channel 0 for WAV)")
    rec.add_argument("--window", type=positive_number("seconds"), metavar="S", default=1.0,
                     help="window length, seconds (default 1)")
    rec.add_argument("--start", type=non_negative_seconds, metavar="S",
                     help="validate from S seconds after the recording's first sample (default: the start)")
    rec.add_argument("--end", type=positive_number("seconds"), metavar="S",
                     help="validate up to S seconds after the first sample (default: the end)")
    rec.add_argument("--units", choices=("g", "m/s2", "mm/s2"),
                     help="unit of a CSV's values (default g; mm/s2 for firmware dumps)")
    rec.add_argument("--rate", type=positive_number("Hz"), metavar="HZ",
                     help="sample rate of a CSV without a time column")
    rec.add_argument("--full-scale-g", type=positive_number("g"), metavar="G",
                     help="WAV only: the acceleration full scale stands for, g")
    out = p.add_argument_group("output")
    add_json_option(out, "the result (whole record and every window)")
    out.add_argument("--plot", metavar="PNG", help="write a figure: time trace, windows, spectrum, with the tolerances")
    p.set_defaults(run=run)


def non_negative_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"{text!r} must be zero or a positive number of seconds")
    return value


def build_prescription(args: argparse.Namespace, duration_s: float):
    from livctl.prescription import Prescription

    tolerance = tolerance_from(args)
    preset = chosen_preset(args)
    if preset is not None:
        return preset.prescription(duration_s=duration_s, tolerance=tolerance)
    if args.freq is None or args.accel is None:
        raise UsageError("say what the platform should deliver: --freq HZ --accel G (peak), or --preset NAME")
    return Prescription(frequency_hz=args.freq, peak_g=args.accel, duration_s=duration_s, tolerance=tolerance)


def run(args: argparse.Namespace) -> int:
    from livctl.recordings import describe, read_recording
    from livctl.validation import validate

    build_prescription(args, 1.0)  # bad arguments fail before the file is read
    recording = read_recording(args.file, units=args.units, rate_hz=args.rate, full_scale_g=args.full_scale_g)
    if args.start is not None or args.end is not None:
        recording = recording.between(args.start, args.end)
    if not args.json:
        print(f"reading {describe(recording)}", file=sys.stderr)
    prescription = build_prescription(args, recording.duration_s)
    axis = args.axis or ("x" if recording.format == "wav" else "auto")
    result = validate(recording, prescription, axis=axis, window_s=args.window)
    if args.plot:
        from livctl.validation_plot import write_plot

        write_plot(result, args.plot)
    if args.json:
        print_json(result.to_dict())
    else:
        print(render(result))
        if args.plot:
            print(f"figure: {args.plot}")
    return EXIT_OK if result.in_spec else EXIT_FAILED


def render(result) -> str:
    """The human-readable report: a verdict, the whole record against the targets, the windows."""
    rx = result.prescription
    tol = rx.tolerance
    m = result.measurement
    measured = [w.measurement for w in result.windows if w.measurement is not None]
    verdict = "IN SPEC" if result.in_spec else "OUT OF SPEC"
    preset = f" (preset {rx.preset})" if rx.preset else ""
    lines = [
        f"{verdict}: {result.recording.source}",
        f"  prescribed {rx.frequency_hz:g} Hz, {rx.peak_g:g} g peak{preset}; driven axis {m.axis}; "
        f"whole record by {result.method}",
    ]
    lines += [f"  - {reason}" for reason in result.reasons]

    def spread(name: str, spec: str) -> list[str]:
        values = sorted(getattr(w, name) for w in measured)
        if not values:
            return ["-", "-", "-"]
        return [fmt(values[0], spec), fmt(values[len(values) // 2], spec), fmt(values[-1], spec)]

    def mark(ok: bool) -> str:
        return "ok" if ok else "FAIL"

    f_ok = abs(m.frequency_hz - rx.frequency_hz) <= tol.frequency_hz
    a_ok = abs(m.peak_g / rx.peak_g - 1.0) <= tol.accel_fraction
    thd_ok = m.thd_percent <= 100.0 * tol.max_thd_fraction
    rows = [
        ["frequency, Hz", f"{m.frequency_hz:.4f}", fmt(m.frequency_sd_hz, ".1e"), *spread("frequency_hz", ".3f"),
         f"{rx.frequency_hz:g} +- {tol.frequency_hz:g}", mark(f_ok)],
        ["peak, g", f"{m.peak_g:.4f}", fmt(m.peak_sd_g, ".1e"), *spread("peak_g", ".4f"),
         f"{rx.peak_g:g} +- {100 * tol.accel_fraction:g} %", mark(a_ok)],
        ["RMS, g", f"{m.rms_g:.4f}", "", *spread("rms_g", ".4f"), "", ""],
        ["THD, %", f"{m.thd_percent:.2f}", "", *spread("thd_percent", ".2f"),
         f"<= {100 * tol.max_thd_fraction:g}", mark(thd_ok)],
        ["SNR, dB", fmt(m.snr_db, ".1f"), "", *spread("snr_db", ".1f"), "", ""],
        ["SINAD, dB", fmt(m.sinad_db, ".1f"), "", *spread("sinad_db", ".1f"), "", ""],
        ["DC (gravity), g", f"{m.dc_g:+.4f}", "", *spread("dc_g", "+.4f"), "", ""],
        ["off-axis, %", f"{m.off_axis_percent:.2f}", "", *spread("off_axis_percent", ".2f"), "", ""],
    ]
    lines.append("")
    lines.append(table(rows, ["", "whole record", "+- (CRLB)", "window min", "median", "max", "target", ""]))
    share = 100.0 * result.in_spec_fraction
    out = [w for w in result.windows if not w.in_spec]
    lines.append("")
    lines.append(f"windows: {len(result.windows)} of {result.window_s:g} s, {share:.1f} % of the time in spec")
    for w in out[:10]:
        lines.append(f"  window {w.index} at {w.t_s:.1f} s: {'; '.join(w.reasons)}")
    if len(out) > 10:
        lines.append(f"  ... and {len(out) - 10} more windows out of spec (--json lists them all)")
    rec = result.recording
    if rec.timing.jitter_rms_s is not None:
        note = ", resampled onto a uniform grid" if rec.timing.resampled else ""
        lines.append(f"timing: {rec.rate_hz:.3f} Hz effective rate, timestamp jitter "
                     f"{rec.timing.jitter_rms_s * 1e6:.1f} us RMS, {rec.timing.jitter_max_s * 1e6:.1f} us max{note}")
    if result.method != "coherent fit":
        lines.append(f"note: the tone is not steady over the recording (coherence {result.coherence:.3f}); "
                     "the whole-record figures are the windows' averages")
    return "\n".join(lines)
