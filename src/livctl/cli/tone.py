"""`livctl tone`: play a test sine on a platform, for wiring and amplifier checks."""

from __future__ import annotations

import argparse
import math
import sys

from livctl.cli import EXIT_INTERRUPTED, EXIT_OK
from livctl.cli.common import (
    StopEvent,
    add_calibration_dir_option,
    add_json_option,
    fmt,
    positive_number,
    print_json,
    stop_on_signals,
)

DEFAULT_SECONDS = 10.0
MAX_SECONDS = 300.0
"""The tone always ends: a wiring check longer than five minutes is a mistake."""
MIN_FREQUENCY_HZ = 1.0
MAX_FREQUENCY_HZ = 1000.0
"""Shakers and their sensors work well below this (LIV uses 30-90 Hz)."""
STEP_S = 0.5
"""The tone is measured (when the platform has a sensor) and the stop request checked this often."""

DESCRIPTION = f"""\
Play a sine at a given frequency and level on a platform, with soft (raised-cosine) ramps, for
wiring and amplifier checks. The level is a fraction of full scale (peak), capped by the
platform's drive ceiling (audio: max_level) and, when the platform has a calibration, by its
largest safe drive at that frequency. With an accelerometer, every half second is measured and
printed, and a level above the 1.0 g peak safety cap cuts the drive at once (exit 1). The tone
stops by itself after --seconds (default {DEFAULT_SECONDS:g}, at most {MAX_SECONDS:g}); Ctrl-C ramps it down first
(exit 130)."""

EPILOG = """\
examples:
  livctl tone --device 'audio://system?max_level=0.2' --freq 30 --level 0.05
  livctl tone --device 'audio://USB%20Audio?in=1&max_level=0.3&in_g_per_fs=2' --level 0.1 --seconds 30
  livctl tone --device 'audio://system?max_level=0.2' --level 0.1 --json

exit codes: 0 played, 1 the platform failed or went over the safety cap, 2 bad usage or device, 130 interrupted"""


def _level(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / (100.0 if text.endswith("%") else 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a level; give a fraction of full scale such as 0.1") from None
    if not (math.isfinite(value) and 0 < value <= 1):
        raise argparse.ArgumentTypeError(f"level {text!r} must be above 0 and at most 1 (full scale)")
    return value


def _frequency(text: str) -> float:
    value = positive_number("Hz")(text)
    if not MIN_FREQUENCY_HZ <= value <= MAX_FREQUENCY_HZ:
        raise argparse.ArgumentTypeError(
            f"{text} Hz is outside {MIN_FREQUENCY_HZ:g}-{MAX_FREQUENCY_HZ:g} Hz, the range a test tone may use"
        )
    return value


def _seconds(text: str) -> float:
    value = positive_number("seconds")(text)
    if value > MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"{text} s is longer than a test tone may play ({MAX_SECONDS:g} s)")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tone",
        help="play a test sine on a platform (wiring and amplifier checks)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--device", metavar="URL", help="audio://NAME?max_level=..., sim:// (default $LIVCTL_DEVICE)")
    p.add_argument("--freq", type=_frequency, metavar="HZ", default=30.0,
                   help=f"frequency, Hz, {MIN_FREQUENCY_HZ:g}-{MAX_FREQUENCY_HZ:g} (default 30)")
    p.add_argument("--level", type=_level, metavar="FRACTION", default=0.05,
                   help="peak level, fraction of full scale or a percentage such as 5%% (default 0.05)")
    p.add_argument("--seconds", type=_seconds, metavar="S", default=DEFAULT_SECONDS,
                   help=f"how long to play, ramps included (default {DEFAULT_SECONDS:g}, at most {MAX_SECONDS:g})")
    p.add_argument("--ramp", type=positive_number("seconds"), metavar="S", default=0.5,
                   help="soft ramp up and down, seconds (default 0.5)")
    add_calibration_dir_option(p)
    add_json_option(p, "what was played and measured")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from livctl.backends import open_platform
    from livctl.calibration import find_calibration, session_reference
    from livctl.cli.session import choose_device
    from livctl.errors import UsageError
    from livctl.safety import DEFAULT_ACCEL_CAP_G, drive_ceiling

    if 2 * args.ramp > args.seconds:
        raise UsageError(f"--seconds {args.seconds:g} leaves no room for two {args.ramp:g} s ramps")
    platform = open_platform(choose_device(args))
    progress = None if args.quiet else sys.stderr
    stop = StopEvent()
    with platform, stop_on_signals(stop):
        # looked up once open: a serial board's platform id is its identity, known only then
        calibration = find_calibration(platform.platform_id, args.calibration_dir)
        if calibration is not None:
            _, max_drive = session_reference(calibration, frequency_hz=args.freq, load_kg=None)
            platform.max_drive = min(platform.max_drive, max_drive)
        gain = platform.open_loop_gain_mps2_per_drive
        ceiling = drive_ceiling(gain, DEFAULT_ACCEL_CAP_G, platform.max_drive) if gain else platform.max_drive
        level = min(args.level, ceiling)
        if level < args.level:
            _say(progress, f"level {args.level:g} capped at the platform's ceiling, {level:.4g} of full scale")
        _say(progress, f"playing {args.freq:g} Hz at {level:.4g} of full scale for {args.seconds:g} s on "
                       f"{platform.description}")
        try:
            platform.set_frequency(args.freq)
            platform.set_drive(level, args.ramp)
            played_s, measured = _play(platform, args.freq, args.seconds - args.ramp, stop, progress)
        finally:
            _ramp_down(platform, args.ramp)
        health = platform.stream_health()

    summary = {
        "device": platform.url,
        "platform_id": platform.platform_id,
        "frequency_hz": args.freq,
        "level": level,
        "requested_level": args.level,
        "calibration_id": calibration.calibration_id if calibration else None,
        "played_s": played_s + args.ramp,
        "interrupted": stop.is_set(),
        "measured": measured,
        "stream_health": health,
    }
    if args.json:
        print_json(summary)
    else:
        print(_render(summary))
    return EXIT_INTERRUPTED if stop.is_set() else EXIT_OK


def _play(platform, frequency_hz: float, duration_s: float, stop, progress) -> tuple[float, dict | None]:
    """Play until `duration_s` has passed or a stop is asked; the last measured step, if any.

    A step measured above the safety cap cuts the drive at once and ends the tone (exit 1)."""
    from livctl.analysis import AnalysisError, measure
    from livctl.errors import LivctlError
    from livctl.safety import DEFAULT_ACCEL_CAP_G

    played_s = 0.0
    measured = None
    while played_s < duration_s - 1e-9 and not stop.is_set():
        step = min(STEP_S, duration_s - played_s)
        if not platform.has_sensor:
            platform.wait(step)
            played_s += step
            line = "not measured (no accelerometer input)"
        else:
            block = platform.read(step)
            played_s += step  # the platform's time moved by `step`, whatever number of samples came
            try:
                m = measure(block.accel_mps2, block.rate_hz, axis=platform.vertical_axis,
                            search_hz=(0.5 * frequency_hz, 1.5 * frequency_hz))
            except AnalysisError as exc:
                line = f"no measurement: {exc}"
            else:
                if m.peak_g > DEFAULT_ACCEL_CAP_G:
                    platform.cut_drive()
                    raise LivctlError(
                        f"measured {m.peak_g:.2f} g peak, above the {DEFAULT_ACCEL_CAP_G:g} g safety cap: drive cut; "
                        "play a lower --level, or calibrate the platform so its largest safe drive caps the level"
                    )
                measured = {"frequency_hz": m.frequency_hz, "peak_g": m.peak_g, "rms_g": m.rms_g,
                            "thd_percent": m.thd_percent, "snr_db": m.snr_db}
                line = f"{m.frequency_hz:7.2f} Hz  {m.peak_g:6.3f} g peak  THD {m.thd_percent:5.1f} %"
        _say(progress, f"{played_s:6.1f} s  {line}")
    return played_s, measured


def _ramp_down(platform, ramp_s: float) -> None:
    from livctl.errors import PlatformError

    try:
        platform.set_drive(0.0, ramp_s)
        platform.wait(ramp_s)
    except PlatformError:
        pass  # the platform failed: cut below, and let the failure that stopped the tone be reported
    finally:
        platform.cut_drive()


def _say(stream, text: str) -> None:
    if stream is not None:
        stream.write(text + "\n")
        stream.flush()


def _render(s: dict) -> str:
    m = s["measured"]
    measured = (
        f"measured {m['frequency_hz']:.3f} Hz, {m['peak_g']:.4f} g peak, THD {fmt(m['thd_percent'], '.2f')} %"
        if m else "not measured"
    )
    faults = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in s["stream_health"].items() if v) or "none"
    state = "interrupted" if s["interrupted"] else "done"
    return (
        f"tone {state}: {s['frequency_hz']:g} Hz at {s['level']:.4g} of full scale for {s['played_s']:.1f} s "
        f"on {s['device']}\n  {measured}\n  stream faults: {faults}"
    )
