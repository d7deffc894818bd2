"""`livctl validate FILE`: prove from an accelerometer recording what a platform delivered."""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import textwrap
from pathlib import Path

from livctl.cli.helpformat import HelpFormatter
from livctl.cli import EXIT_FAILED, EXIT_OK
from livctl.cli.common import (
    add_json_option,
    add_log_option,
    add_tolerance_options,
    chosen_preset,
    fmt,
    positive_number,
    print_json,
    table,
    tolerance_from,
)
from livctl.errors import UsageError

WIDTH = 80

DESCRIPTION = """\
Measure an accelerometer recording and check it against a prescription:
frequency, peak and RMS acceleration of the fundamental, THD (harmonics 2-5),
SNR, SINAD, gravity (DC), the driven axis and the off-axis share, with 95 %
uncertainties that include the time stamps' jitter and drift.

Every window (1 s) is measured; consecutive windows of one steady tone make a
stretch, and the figures are the driven stretch's (one fit over it), with its
bounds. Quiet windows (no tone, or one far below the driven level) and ramps
belong to no stretch: they fail the recording, and the verdict names the
--start/--end that validates the stretch alone. A record of several stretches
(a stepped sine) is not one steady tone: each is listed with its figures, and
the record fails.

Nothing unmeasurable passes: a THD whose harmonics the sample rate hides (any
rate below about 10x the frequency) is unverifiable and fails the THD limit;
so does any figure that is not a number.

Files (the format is recognised from the contents):
  CSV   a header row, then rows of numbers separated by , ; tab | or spaces,
        quoted or not (decimal commas with ; or tab). Columns by name: time,
        t, timestamp; x, ax, accel_x, "Acc X", "X-axis", ...; units in the
        names ("Time (s)", "X (g)", accel_x (m/s^2), time_ms); any other
        names with --columns. Values in g unless the header or --units says;
        time in s, ms or us from the header, --time-unit, or the steps.
        A gap (missing samples) splits the record into runs, each measured;
        a gap inside --start/--end is refused. A cut-short last row is left
        out with a note.
  dump  the ADXL345 dumps of 3D-printer firmware tooling
        (#time,accel_x,accel_y,accel_z in mm/s^2, with or without a first
        ##drops=... line)
  WAV   1-3 channels as x, y, z; --full-scale-g says what full scale means

Prescription: --freq and --accel (peak g), or --preset. Tolerances: +-1 Hz,
+-10 % of the peak g, THD at most 10 %, unless overridden.

A session of the dose log (--session ID) is checked against its own raw
signal: the archive's SHA-256 against the one the log chained, every logged
window measured again from its samples (its figures must come back), and the
delivery validated as above against the session's prescription."""

EPILOG = """\
examples:
  livctl validate plate.csv --freq 30 --accel 0.4
  livctl validate adxl345-20240512.csv --preset human-30hz-0.4g --json
  livctl validate cage.wav --full-scale-g 2 --preset mouse-90hz-0.3g \\
      --plot cage.png
  livctl validate values.csv --rate 3200 --units m/s2 --freq 90 --accel 0.3
  livctl validate session.csv --preset human-30hz-0.4g --start 2 --end 602
      (the delivery only)
  livctl validate logger.txt --columns "time=Zeit,z=Beschl Z" --time-unit ms \\
      --freq 30 --accel 0.3
  livctl validate --session s-1a2b3c      (a logged session, from its raw signal)

exit codes: 0 in spec; 1 out of spec, not one steady tone, or a figure that
cannot be measured (for a session: or a window whose figures do not come back
from its raw signal); 2 bad usage or an unusable recording (one line says what
was expected and what was found), or a session whose raw signal is missing or
altered"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate",
        help="check an accelerometer recording against a prescription",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument("file", metavar="FILE", nargs="?", help="the recording: CSV, firmware dump or WAV")
    logged = p.add_argument_group("a logged session")
    logged.add_argument("--session", metavar="ID",
                        help="check a session of the dose log against its raw signal (instead of FILE)")
    add_log_option(logged)
    rx = p.add_argument_group("prescription")
    rx.add_argument("--preset", metavar="NAME", help="a shipped protocol (see `livctl presets`)")
    rx.add_argument("--freq", type=positive_number("Hz"), metavar="HZ", help="prescribed frequency, Hz")
    rx.add_argument("--accel", type=positive_number("g"), metavar="G", help="prescribed peak acceleration, g")
    add_tolerance_options(p.add_argument_group("tolerances"))
    rec = p.add_argument_group("recording")
    rec.add_argument("--axis", choices=("x", "y", "z", "auto"), default=None,
                     help="the driven axis (default: auto, the axis with the most vibration; channel 0 for WAV)")
    rec.add_argument("--window", type=positive_number("seconds"), metavar="S", default=1.0,
                     help="window length, seconds (default 1; at least 3 cycles of the prescribed frequency)")
    rec.add_argument("--start", type=non_negative_seconds, metavar="S",
                     help="validate from S seconds after the recording's first sample (default: the start)")
    rec.add_argument("--end", type=positive_number("seconds"), metavar="S",
                     help="validate up to S seconds after the first sample (default: the end)")
    rec.add_argument("--units", choices=("g", "m/s2", "mm/s2"),
                     help="unit of a CSV's values (default: the header's, else g; mm/s2 for firmware dumps)")
    rec.add_argument("--time-unit", choices=("s", "ms", "us"),
                     help="unit of a CSV's time column (default: the header's, else from the steps)")
    rec.add_argument("--columns", metavar="MAP",
                     help="which CSV column is which, by name or 1-based number: time=Zeit,z=Acc Z or "
                          "time=1,z=4 (columns not named are ignored)")
    rec.add_argument("--rate", type=positive_number("Hz"), metavar="HZ",
                     help="sample rate of a CSV without a time column")
    rec.add_argument("--full-scale-g", type=positive_number("g"), metavar="G",
                     help="WAV only: the acceleration full scale stands for, g")
    out = p.add_argument_group("output")
    add_json_option(out, "the result (stretches, every window, uncertainties)")
    out.add_argument("--plot", metavar="PNG",
                     help="write a figure (a .png file in an existing folder): time trace, windows, spectrum, "
                          "with the tolerances")
    p.set_defaults(run=run)


def non_negative_seconds(text: str) -> float:
    from livctl.inputs import InputError, Range, parse_number

    try:
        return parse_number(text, Range(0.0, 1e7), "seconds", example="2")
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_prescription(args: argparse.Namespace, duration_s: float):
    from livctl.prescription import Prescription

    tolerance = tolerance_from(args)
    preset = chosen_preset(args)
    if preset is not None:
        return preset.prescription(duration_s=duration_s, tolerance=tolerance)
    if args.freq is None or args.accel is None:
        raise UsageError("say what the platform should deliver: --freq HZ --accel G (peak), or --preset NAME")
    return Prescription(frequency_hz=args.freq, peak_g=args.accel, duration_s=duration_s, tolerance=tolerance)


def plot_path(text: str | None) -> Path | None:
    """The figure's path, checked before anything is read: a .png name in a folder that exists."""
    if text is None:
        return None
    if not text.strip():
        raise UsageError("--plot needs a file name ending in .png; found an empty name")
    path = Path(text).expanduser()
    if path.is_dir():
        raise UsageError(f"--plot {text}: that is a folder; expected a file name ending in .png")
    if path.suffix.lower() != ".png":
        found = f"{path.suffix!r}" if path.suffix else "no extension"
        raise UsageError(f"--plot {text}: the figure is a PNG; expected a name ending in .png, found {found}")
    if not path.parent.is_dir():
        raise UsageError(f"--plot {text}: the folder {path.parent} does not exist; expected an existing folder")
    return path


def run(args: argparse.Namespace) -> int:
    import warnings

    if args.session is not None:
        return run_session_check(args)
    if args.file is None:
        raise UsageError("say what to validate: a recording FILE, or --session ID for a session of the dose log")
    if args.log is not None:
        raise UsageError("--log goes with --session; a recording FILE is validated on its own")
    build_prescription(args, 1.0)  # bad arguments fail before the file is read
    png = plot_path(args.plot)
    with warnings.catch_warnings():
        # numpy's floating-point warnings and library chatter are not for the person running livctl:
        # every figure is checked for being a number, and the readers turn what matters into notes
        warnings.simplefilter("ignore")
        return _run(args, png)


def _run(args: argparse.Namespace, png: Path | None) -> int:
    from livctl.offline.recordings import describe, parse_columns, read_recording
    from livctl.offline.validation import validate

    columns = parse_columns(args.columns) if args.columns is not None else None
    recording = read_recording(args.file, units=args.units, rate_hz=args.rate, full_scale_g=args.full_scale_g,
                               columns=columns, time_unit=args.time_unit)
    if args.start is not None or args.end is not None:
        recording = recording.between(args.start, args.end)
    if not args.json:
        print(_wrap(f"reading {describe(recording)}", "", "  "), file=sys.stderr)
    for note in recording.notes:
        print(_wrap(f"livctl: note: {note}", "", "  "), file=sys.stderr)
    prescription = build_prescription(args, recording.duration_s)
    axis = args.axis or ("x" if recording.format == "wav" else "auto")
    result = validate(recording, prescription, axis=axis, window_s=args.window)
    if png is not None:
        from livctl.offline.plots import write_plot

        write_plot(result, png)
    if args.json:
        print_json(result.to_dict())
    else:
        print(render(result))
        if png is not None:
            print(f"figure: {png}")
    return EXIT_OK if result.in_spec else EXIT_FAILED


def _wrap(text: str, first: str, rest: str) -> str:
    return "\n".join(textwrap.wrap(text, WIDTH, initial_indent=first, subsequent_indent=rest,
                                   break_on_hyphens=False, break_long_words=False))


def _kind(reason: str) -> str:
    """What a reason is about, without its numbers: windows failing the same way are one line."""
    for kind in ("THD unverifiable", "peak unverifiable", "no measurement", "frequency", "peak", "THD"):
        if reason.startswith(kind):
            return kind
    return reason


def _grouped(windows) -> list[tuple]:
    """Consecutive windows that fail the same way: (first, last, count, the first one's reasons)."""
    groups: list[list] = []
    for w in windows:
        kinds = tuple(_kind(r) for r in w.reasons)
        if groups and groups[-1][3] == kinds and groups[-1][1].index == w.index - 1:
            groups[-1][1] = w
            groups[-1][2] += 1
        else:
            groups.append([w, w, 1, kinds, w.reasons])
    return [(g[0], g[1], g[2], g[4]) for g in groups]


def _thd_cell(m) -> str:
    return "unverifiable" if not m.thd_verifiable else fmt(m.thd_percent, ".2f")


def render(result) -> str:
    """The human-readable report, at most 80 columns: a verdict, the driven stretch against the
    targets, the stretches, the windows.

    One piece, by choice: it is the report's layout, written in the order it prints."""
    from livctl.offline.validation import COVERAGE_FACTOR

    rec = result.recording
    rx = result.prescription
    tol = rx.tolerance
    m = result.measurement
    main = result.stretch
    measured = [w.measurement for w in result.windows if w.measurement is not None]
    verdict = "IN SPEC" if result.in_spec else "OUT OF SPEC"
    preset = f" (preset {rx.preset})" if rx.preset else ""
    whole = len(result.stretches) == 1 and len(main.windows) == len(result.windows)
    start_s, end_s = rec.t0_s, rec.t0_s + rec.span_s
    if whole:
        where = f"the whole recording, {main.from_s:g}-{main.to_s:g} s"
    else:
        where = f"driven stretch {main.from_s:g}-{main.to_s:g} s of {start_s:g}-{end_s:g} s"
    lines = [
        f"{verdict}: {rec.source}",
        _wrap(f"prescribed {rx.frequency_hz:g} Hz, {rx.peak_g:g} g peak{preset}; driven axis {m.axis}", "  ", "  "),
        _wrap(f"figures from {where}, by {result.method}", "  ", "  "),
    ]
    lines += [_wrap(reason, "  - ", "    ") for reason in result.reasons]

    def spread(name: str, spec: str) -> list[str]:
        values = sorted(v for v in (getattr(w, name) for w in measured) if isinstance(v, float) and math.isfinite(v))
        if not values:
            return ["-", "-", "-"]
        return [fmt(values[0], spec), fmt(statistics.median(values), spec), fmt(values[-1], spec)]

    def mark(ok: bool) -> str:
        return "ok" if ok else "FAIL"

    f_ok = math.isfinite(m.frequency_hz) and abs(m.frequency_hz - rx.frequency_hz) <= tol.frequency_hz
    a_ok = math.isfinite(m.peak_g) and abs(m.peak_g / rx.peak_g - 1.0) <= tol.accel_fraction
    thd_ok = m.thd_verifiable and math.isfinite(m.thd_percent) and m.thd_percent <= 100.0 * tol.max_thd_fraction
    thd_windows = spread("thd_percent", ".2f") if all(w.thd_verifiable for w in measured) else ["-", "-", "-"]
    rows = [
        ["frequency Hz", fmt(m.frequency_hz, ".4f"), fmt(COVERAGE_FACTOR * m.frequency_u_hz, ".1e"),
         *spread("frequency_hz", ".3f"), f"{rx.frequency_hz:g} +- {tol.frequency_hz:g}", mark(f_ok)],
        ["peak g", fmt(m.peak_g, ".4f"), fmt(COVERAGE_FACTOR * m.peak_u_g, ".1e"), *spread("peak_g", ".4f"),
         f"{rx.peak_g:g} +- {100 * tol.accel_fraction:g} %", mark(a_ok)],
        ["RMS g", fmt(m.rms_g, ".4f"), "", *spread("rms_g", ".4f"), "", ""],
        ["THD %", _thd_cell(m), "", *thd_windows, f"<= {100 * tol.max_thd_fraction:g}", mark(thd_ok)],
        ["SNR dB", fmt(m.snr_db, ".1f"), "", *spread("snr_db", ".1f"), "", ""],
        ["SINAD dB", fmt(m.sinad_db, ".1f"), "", *spread("sinad_db", ".1f"), "", ""],
        ["DC g", fmt(m.dc_g, "+.4f"), "", *spread("dc_g", "+.4f"), "", ""],
        ["off-axis %", fmt(m.off_axis_percent, ".2f"), "", *spread("off_axis_percent", ".2f"), "", ""],
    ]
    lines.append("")
    column = "record" if whole else "stretch"
    lines.append(table(rows, ["", column, "+- 95 %", "win min", "median", "max", "target", ""]))
    lines.append(_wrap("+- 95 %: from the fit (noise, harmonics) and the time stamps' jitter and drift; "
                       "windows: min, median, max over the measured windows", "", "  "))
    if len(result.stretches) > 1:
        lines.append("")
        lines.append("stretches (not one steady tone):")
        for s in result.stretches:
            sm = s.measurement
            state = "in spec" if s.in_spec else "OUT"
            bounds = f"{s.from_s:.1f}-{s.to_s:.1f} s"
            lines.append(f"  {s.index + 1:>2}  {bounds:<16}{sm.frequency_hz:9.3f} Hz  {sm.peak_g:7.4f} g  "
                         f"THD {_thd_cell(sm):>6}  {state}")
    share = 100.0 * result.in_spec_fraction
    out = [w for w in result.windows if not w.in_spec]
    lines.append("")
    lines.append(f"windows: {len(result.windows)} of {result.window_s:.4g} s, {share:.1f} % of the time in spec")
    groups = _grouped(out)
    for first, last, count, reasons in groups[:8]:
        which = (f"window {first.index} at {first.t_s:.1f} s" if count == 1 else
                 f"windows {first.index}-{last.index} ({count}) from {first.t_s:.1f} s")
        lines.append(_wrap(f"{which}: {'; '.join(reasons)}", "  ", "    "))
    if len(groups) > 8:
        rest = sum(g[2] for g in groups[8:])
        lines.append(f"  ... and {rest} more windows out of spec (--json lists them all)")
    runs = rec.piece_list
    if len(runs) > 1:
        spans = ", ".join(f"{rec.t0_s + p.t0_s:.3f}-{rec.t0_s + p.t0_s + p.n / rec.rate_hz:.3f} s" for p in runs[:6])
        more = f" and {len(runs) - 6} more" if len(runs) > 6 else ""
        lines.append(_wrap(f"runs between gaps: {spans}{more}", "", "  "))
    for note in result.notes:
        lines.append(_wrap(f"note: {note}", "", "  "))
    timing = rec.timing
    if timing.has_stamps:
        believed = {"stamps": "the samples follow the stamps (resampled onto an even grid)",
                    "even": "even sampling, the stamps wander"}.get(timing.decision)
        if believed is None:
            believed = ("undecided: resampled onto an even grid" if timing.resampled
                        else "undecided: read as evenly sampled")
        lines.append(_wrap(
            f"timing: {rec.rate_hz:.3f} Hz fitted to the stamps (read in {rec.time_unit_words}); jitter "
            f"{timing.jitter_rms_s * 1e6:.1f} us RMS ({timing.jitter_max_s * 1e6:.1f} us max), drift "
            f"{(timing.drift_rms_s or 0.0) * 1e6:.1f} us RMS; {believed}", "", "  "))
    if result.method != "coherent fit":
        lines.append(_wrap(f"note: the tone is not steady enough for one fit (coherence {result.coherence:.3f}); "
                           "the figures are its windows' averages", "", "  "))
    return "\n".join(lines)


SESSION_OPTIONS = ("preset", "freq", "accel", "tol_freq", "tol_accel", "max_thd", "axis", "start", "end", "units",
                   "time_unit", "columns", "rate", "full_scale_g")


def run_session_check(args: argparse.Namespace) -> int:
    """`livctl validate --session ID`: the session's raw signal against its dose log."""
    import warnings

    from livctl.cli.common import log_path
    from livctl.cli.log import open_log

    if args.file is not None:
        raise UsageError("give a recording FILE or --session ID, not both")
    given = [f"--{name.replace('_', '-')}" for name in SESSION_OPTIONS if getattr(args, name) is not None]
    if args.window != 1.0:
        given.append("--window")
    if given:
        raise UsageError(f"a session is checked against its own prescription, window and sensor; "
                         f"{', '.join(given)} does not apply with --session")
    png = plot_path(args.plot)
    log_path(args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from livctl.offline.reanalysis import reanalyse

        with open_log(args) as log:
            check = reanalyse(log, args.session)
    if png is not None and check.validation is not None:
        from livctl.offline.plots import write_plot

        write_plot(check.validation, png)
    if args.json:
        print_json(check.to_dict())
    else:
        print(render_session_check(check))
        if png is not None and check.validation is not None:
            print(f"figure: {png}")
    return EXIT_OK if check.in_spec else EXIT_FAILED


def render_session_check(check) -> str:
    """The session's check in at most 80 columns: the archive, the windows, then the delivery as
    `render` shows a recording."""
    s, a = check.session, check.archive
    measured = check.measured
    reproduced = sum(w.reproduced for w in measured)
    worst = max((w.worst for w in measured if w.worst), key=lambda pair: pair[1], default=None)
    verdict = "IN SPEC" if check.in_spec else "OUT OF SPEC"
    lines = [
        f"{verdict}: session {s['session_id']} ({s['status']}) from its raw signal",
        _wrap(f"archive {a['file']}: {a['samples']:,} samples at {check.data.rate_hz:g} Hz, SHA-256 as chained "
              f"in the log (record {a['seq']}){'' if a['complete'] else '; INCOMPLETE: ' + str(a['note'])}", "  ", "  "),
        _wrap(f"windows: {reproduced} of {len(measured)} measured windows reproduced"
              + (f" (largest difference {worst[1]:.1e} of the logged value, {worst[0]})" if worst else "")
              + f"; {len(check.windows) - len(measured)} logged without a measurement", "  ", "  "),
    ]
    lines += [_wrap(reason, "  - ", "    ") for reason in check.reasons if not reason.startswith("delivery: ")]
    if check.validation is not None:
        lines.append("")
        lines.append("the delivery, validated as a recording:")
        lines.append(render(check.validation))
    return "\n".join(lines)
