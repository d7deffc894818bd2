"""`livctl tone`: play a test sine on a platform, for wiring and amplifier checks."""

from __future__ import annotations

import argparse
import sys

from livctl.cli.helpformat import HelpFormatter
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
from livctl.prescription import TONE_MAX_FREQUENCY_HZ as MAX_FREQUENCY_HZ
from livctl.prescription import TONE_MIN_FREQUENCY_HZ as MIN_FREQUENCY_HZ
from livctl.procedures.tone import MAX_DURATION_S as MAX_SECONDS

DEFAULT_SECONDS = 10.0

DESCRIPTION = f"""\
Play a sine at a given frequency and level on a platform, with soft (raised-cosine) ramps, for
wiring and amplifier checks. The level is a fraction of full scale (peak), capped by the
platform's drive ceiling (audio: max_level) and by its calibration's largest safe drive at that
frequency; a real platform without a calibration of its own is refused (exit 2, nothing moves).
With an accelerometer, the level is reached in steps of at most 4x, each proven safe on the
platform's measured response, every half second is measured and printed, and a level above the
1.0 g peak safety cap cuts the drive at once (exit 1). The tone stops by itself after --seconds
(default {DEFAULT_SECONDS:g}, at most {MAX_SECONDS:g}); Ctrl-C ramps it down first (exit 130), a second Ctrl-C cuts it."""

EPILOG = """\
examples:
  livctl tone --device 'audio://system?max_level=0.2' --freq 30 --level 0.05
  livctl tone --device 'audio://USB%20Audio?in=1&max_level=0.3&in_g_per_fs=2' --level 0.1 --seconds 30
  livctl tone --device 'audio://system?max_level=0.2' --level 0.1 --json

exit codes: 0 played, 1 the platform failed or went over the safety cap, 2 bad usage or device (or a real
platform without a calibration), 130 interrupted"""


def _level(text: str) -> float:
    """A drive level: a fraction of full scale (0.1) or a percentage (10%), above 0 and at most full scale."""
    from livctl.inputs import InputError, Range, parse_number

    percent = text.endswith("%")
    try:
        value = parse_number(text[:-1] if percent else text, Range(0.0, 100.0 if percent else 1.0, low_open=True),
                             "% of full scale" if percent else "", example="5%" if percent else "0.05")
    except InputError as exc:
        raise argparse.ArgumentTypeError(f"level {exc}") from None
    return value / 100.0 if percent else value


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
        formatter_class=HelpFormatter,
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
    from livctl import open_platform, play_tone
    from livctl.cli.session import choose_device
    from livctl.errors import LivctlError, UsageError
    from livctl.ui.progress import PrintStatus

    if 2 * args.ramp > args.seconds:
        raise UsageError(f"--seconds {args.seconds:g} leaves no room for two {args.ramp:g} s ramps")
    platform = open_platform(choose_device(args))
    stop = StopEvent()
    with platform, stop_on_signals(stop):
        result = play_tone(platform, args.freq, args.level, args.seconds, ramp_s=args.ramp,
                           calibration_dir=args.calibration_dir, stop=stop,
                           observer=PrintStatus(sys.stderr, quiet=args.quiet))
    summary = result.to_dict()
    if args.json:
        print_json(summary)
    else:
        print(_render(summary))
    if result.stopped is not None:
        if result.ramped_down:
            raise LivctlError(f"{result.stopped} (the tone was ramped down)")
        raise LivctlError(
            f"{result.stopped}: drive cut; play a lower --level, or calibrate the platform so its largest safe drive "
            "caps the level"
        )
    return EXIT_INTERRUPTED if result.interrupted else EXIT_OK


def _render(s: dict) -> str:
    m = s["measured"]
    measured = (
        f"measured {m['frequency_hz']:.3f} Hz, {m['peak_g']:.4f} g peak, THD {fmt(m['thd_percent'], '.2f')} %"
        if m else "not measured"
    )
    faults = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in s["stream_health"].items() if v) or "none"
    state = "stopped over the cap" if s["stopped"] else "interrupted" if s["interrupted"] else "done"
    reached = "" if s["reached_level"] >= s["level"] else f" (reached {s['reached_level']:.4g})"
    return (
        f"tone {state}: {s['frequency_hz']:g} Hz at {s['level']:.4g} of full scale{reached} for {s['played_s']:.1f} s "
        f"on {s['device']}\n  {measured}\n  stream faults: {faults}"
    )
