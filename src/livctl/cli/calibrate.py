"""`livctl calibrate`: measure a platform's response and write its calibration file."""

from __future__ import annotations

import argparse
import sys

from livctl.cli.helpformat import HelpFormatter
from livctl.cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from livctl.cli.common import (
    StopEvent,
    add_calibration_dir_option,
    add_json_option,
    add_plot_options,
    operator_name,
    percent,
    plot_mode,
    positive_number,
    print_json,
    speed_factor,
    stop_on_signals,
)

DESCRIPTION = """\
Calibrate a platform before it doses anyone: a sensor check at rest (gravity near 1 g on the
vertical axis, noise floor), then a sweep of drive levels at the working frequency (and any
--also-at frequencies), each step ramped, settled and measured. From the steps: acceleration
per unit of drive, its linearity, THD against level, and the largest safe drive under the
1.0 g peak cap, each with its uncertainty. The result goes to DIR/<platform-id>.toml, which
sessions load by platform id (never over an existing file without --force).

The sweep probes from 1 % drive, never more than doubles the drive from one step to the next,
never commands a level whose acceleration predicted from the points so far could pass the cap,
and stops safely on a sensor that reads nothing or only noise, a platform that does not respond,
or a non-monotonic, clipped or off-frequency response. Ctrl-C, SIGTERM or closing the live
window ramps the platform down and writes nothing (exit 130).

Live plots (--plot, on when a display is available): the acceleration trace, its spectrum with
the target frequency and tolerance band, and acceleration against drive with the fit growing."""

EPILOG = """\
examples:
  livctl calibrate --device sim:// --speed max --no-plot
  livctl calibrate --device 'sim://?load_kg=70&id=bench-A' --load-kg 70 --also-at 28,32
  livctl calibrate --device sim:// --freq 90 --max-accel 0.5 --plot-png sweep.png --force
  livctl calibrate --device sim:// --levels 5,10,20,30 --json

calibration directory: --calibration-dir DIR, else $LIVCTL_CALIBRATION_DIR, else ./calibration
exit codes: 0 calibrated and written, 1 the platform or sensor failed a check (nothing written),
2 bad usage or input (nothing driven), 130 interrupted (ramped down, nothing written)"""


def _steps(text: str) -> int:
    from livctl.inputs import InputError, parse_whole

    try:
        return parse_whole(text, 2, 50, "steps")
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def number_list(unit: str, scale: float = 1.0):
    """An argparse type: comma-separated positive numbers (times `scale`)."""

    def parse(text: str) -> tuple[float, ...]:
        parse_one = positive_number(unit)
        parts = text.split(",")
        if not all(parts):
            raise argparse.ArgumentTypeError(f"{text!r}: give numbers separated by commas, e.g. 5,10,20")
        return tuple(parse_one(part[:-1] if part.endswith("%") else part) * scale for part in parts)

    return parse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate",
        help="measure a platform's response and write its calibration file",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    sweep = p.add_argument_group("sweep")
    sweep.add_argument("--freq", type=positive_number("Hz"), metavar="HZ", default=30.0,
                       help="working frequency in Hz (default 30)")
    sweep.add_argument("--also-at", type=number_list("Hz"), metavar="HZ[,HZ...]", default=(),
                       help="further frequency points to calibrate, e.g. 28,32")
    sweep.add_argument("--max-accel", type=positive_number("g"), metavar="G", default=0.8,
                       help="the sweep climbs to about this peak acceleration, g (default 0.8; at most the 1.0 g cap)")
    sweep.add_argument("--steps", type=_steps, metavar="N", default=8, help="steps of the sweep, 2-50 (default 8)")
    sweep.add_argument("--levels", type=number_list("percent", 0.01), metavar="PCT[,PCT...]",
                       help="measure these drive levels (percent of full drive) instead of the planned steps")
    sweep.add_argument("--max-thd", type=percent, metavar="PCT", default=0.10,
                       help="a step with more THD than this is clipped (default 10)")
    sweep.add_argument("--load-kg", type=positive_number("kg"), metavar="KG",
                       help="the load on the platform while calibrating (recorded; sessions warn at another load)")
    dev = p.add_argument_group("platform")
    dev.add_argument("--device", metavar="URL", help="sim://, serial:///dev/ttyUSB0, audio://NAME (default $LIVCTL_DEVICE)")
    dev.add_argument("--speed", type=speed_factor, metavar="N|max",
                     help="simulator only: run N times faster than real time, or max (default 1)")
    dev.add_argument("--sensor", metavar="TEXT", help="the accelerometer's model or serial number (recorded)")
    rec = p.add_argument_group("record")
    rec.add_argument("--operator", metavar="NAME", help="who calibrates (default $LIVCTL_OPERATOR, else your login)")
    add_calibration_dir_option(rec)
    rec.add_argument("--force", action="store_true", help="replace an existing calibration of this platform")
    out = p.add_argument_group("output")
    add_plot_options(out, default_on=True)
    add_json_option(out, "the result")
    out.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from livctl import CalibrationFailed, CalibrationInterrupted, SweepSettings, calibrate, open_platform
    from livctl.procedures.calibrate import FREQUENCY_TOLERANCE_HZ
    from livctl.records.calibration import check_writable
    from livctl.ui.progress import PrintStatus
    from livctl.cli.calibration import calibration_json, render_calibration
    from livctl.cli.session import choose_device

    settings = SweepSettings(
        frequency_hz=args.freq,
        extra_frequencies_hz=tuple(args.also_at),
        top_accel_g=args.max_accel,
        steps=args.steps,
        levels=args.levels,
        max_thd_percent=100.0 * args.max_thd,
    ).validate(max_drive=1.0)
    mode = plot_mode(args, default_on=True)
    platform = open_platform(choose_device(args), speed=args.speed)
    stop = StopEvent()
    progress = PrintStatus(sys.stderr, quiet=args.quiet)

    with platform, stop_on_signals(stop, progress):
        # refused before any window opens (calibrate checks it again before anything moves)
        path = check_writable(platform.platform_id, args.calibration_dir, force=args.force)

        def job(observer) -> int:
            """Calibrate, write, report; on the live view's worker thread when plotting."""
            try:
                cal = calibrate(platform, settings, calibration_dir=args.calibration_dir, force=args.force,
                                operator=operator_name(args.operator), load_kg=args.load_kg,
                                sensor_model=args.sensor, observer=observer, stop=stop)
            except CalibrationFailed as exc:
                _report_failure(args, "failed", str(exc), exc.kind)
                return EXIT_FAILED
            except CalibrationInterrupted as exc:
                _report_failure(args, "interrupted", str(exc), None)
                return EXIT_INTERRUPTED
            if args.json:
                print_json({"status": "completed", "path": str(path), "calibration": calibration_json(cal)})
            else:
                print(render_calibration(cal, path, headline="written to"))
            sys.stdout.flush()
            return EXIT_OK

        if mode is None:
            return job(progress)
        from livctl.ui import live

        feed = live.LiveFeed(
            title=f"livctl calibrate: {platform.platform_id}",
            frequency_hz=settings.frequency_hz,
            tolerance_hz=FREQUENCY_TOLERANCE_HZ,
            accel_cap_g=settings.accel_cap_g,
            vertical_axis=platform.vertical_axis,
        )
        observer = live.CalibrationFeed(feed, progress)
        return live.run_live(lambda: job(observer), feed, stop, mode=mode, png=args.plot_png)


def _report_failure(args: argparse.Namespace, status: str, reason: str, kind: str | None) -> None:
    if args.json:
        print_json({"status": status, "kind": kind, "reason": reason})
    print(f"livctl: calibration {status}: {reason}", file=sys.stderr)
