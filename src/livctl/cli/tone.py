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

DEFAULT_SECONDS = 10.0
MAX_SECONDS = 300.0
"""The tone always ends: a wiring check longer than five minutes is a mistake."""
STEP_S = 0.5
"""The tone is measured (when the platform has a sensor) and the stop request checked this often."""

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
    from livctl.platforms import open_platform
    from livctl.cli.session import choose_device
    from livctl.errors import UsageError
    from livctl.procedures.guard import MotionGuard, StopRequested
    from livctl.procedures.prepare import motion_calibration
    from livctl.procedures.safety import DEFAULT_ACCEL_CAP_G, Trip, drive_ceiling
    from livctl.procedures.sensorwatch import SensorUntrusted

    if 2 * args.ramp > args.seconds:
        raise UsageError(f"--seconds {args.seconds:g} leaves no room for two {args.ramp:g} s ramps")
    platform = open_platform(choose_device(args))
    progress = None if args.quiet else sys.stderr
    stop = StopEvent()
    with platform, stop_on_signals(stop):
        # looked up once open (a serial board's platform id is its identity, known only then); a
        # real platform without a calibration of its own is refused here, before anything moves
        motion = motion_calibration(platform, args.calibration_dir, frequency_hz=args.freq)
        for warning in motion.warnings:
            _say(progress, f"livctl: warning: {warning}")
        guard = MotionGuard(platform, ceiling=motion.drive_ceiling, stop=stop, ramp_s=args.ramp,
                            reference_gain_mps2_per_drive=motion.reference_gain_mps2_per_drive)
        gain = platform.open_loop_gain_mps2_per_drive  # no sensor to check the cap: the calibrated gain caps it
        ceiling = motion.drive_ceiling
        if gain:
            ceiling = min(ceiling, drive_ceiling(gain, DEFAULT_ACCEL_CAP_G, ceiling))
        level = min(args.level, ceiling)
        if level < args.level:
            _say(progress, f"level {args.level:g} capped at the platform's ceiling, {level:.4g} of full scale")
        _say(progress, f"playing {args.freq:g} Hz at {level:.4g} of full scale for {args.seconds:g} s on "
                       f"{platform.description}")
        tone = _Tone(guard, args.freq, level, progress)
        failure, ramped = None, False
        with guard:
            try:
                tone.play(args.seconds - args.ramp, args.ramp)
            except StopRequested:
                pass
            except SensorUntrusted as exc:
                failure, ramped = f"sensor check: {exc.reason}", True
            except Trip as trip:
                failure, ramped = trip.reason, not trip.cut
        health = platform.stream_health()

    summary = {
        "device": platform.url,
        "platform_id": platform.platform_id,
        "frequency_hz": args.freq,
        "level": level,
        "reached_level": tone.reached,
        "requested_level": args.level,
        "calibration_id": motion.calibration_id,
        "played_s": tone.played_s + args.ramp,
        "interrupted": stop.is_set(),
        "measured": tone.measured,
        "stream_health": health,
        "stopped": failure,
    }
    if args.json:
        print_json(summary)
    else:
        print(_render(summary))
    if failure is not None:
        from livctl.errors import LivctlError

        if ramped:
            raise LivctlError(f"{failure} (the tone was ramped down)")
        raise LivctlError(
            f"{failure}: drive cut; play a lower --level, or calibrate the platform so its largest safe drive "
            "caps the level"
        )
    return EXIT_INTERRUPTED if stop.is_set() else EXIT_OK


class _Tone:
    """Plays a tone through the guard: up to the level in steps the guard allows (the platform's
    response proven at each), then held, measured every STEP_S where there is a sensor."""

    APPROACH_RAMP_S = 0.2
    """Each step towards the level ramps this long: smooth enough not to ring the plate."""

    def __init__(self, guard, frequency_hz: float, level: float, progress):
        self.guard = guard
        self.frequency_hz = frequency_hz
        self.level = level
        self.progress = progress
        self.played_s = 0.0
        self.reached = 0.0
        self.measured: dict | None = None

    def play(self, duration_s: float, ramp_s: float) -> None:
        guard = self.guard
        guard.set_frequency(self.frequency_hz)
        has_sensor = guard.platform.has_sensor
        if has_sensor:
            guard.read_span(2 * guard.block_s)  # at rest first: the noise floor, and a sensor that answers
        while self.played_s < duration_s - 1e-9:
            length = min(STEP_S, duration_s - self.played_s)
            step = min(self.level, guard.allowed_drive())
            if step > self.reached * 1.001:  # the next step up, then long enough steady for the guard
                ramp = ramp_s if self.reached == 0 and step >= self.level else self.APPROACH_RAMP_S
                self.reached = guard.drive(step, ramp)
                length = min(ramp + 2 * guard.block_s, duration_s - self.played_s)
            block = guard.read_span(length)
            self.played_s += length  # the platform's time moved by `length`, whatever number of samples came
            measured = self._measure(block) if has_sensor else "not measured (no accelerometer input)"
            _say(self.progress, f"{self.played_s:6.1f} s  {measured}")

    def _measure(self, block) -> str:
        from livctl.dsp.estimator import AnalysisError, measure

        try:
            m = measure(block.accel_mps2, block.rate_hz, axis=self.guard.platform.vertical_axis,
                        search_hz=(0.5 * self.frequency_hz, 1.5 * self.frequency_hz))
        except AnalysisError as exc:
            return f"no measurement: {exc}"
        self.measured = {"frequency_hz": m.frequency_hz, "peak_g": m.peak_g, "rms_g": m.rms_g,
                         "thd_percent": m.thd_percent, "snr_db": m.snr_db}
        return f"{m.frequency_hz:7.2f} Hz  {m.peak_g:6.3f} g peak  THD {m.thd_percent:5.1f} %  drive {self.reached:.4g}"

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
    state = "stopped over the cap" if s["stopped"] else "interrupted" if s["interrupted"] else "done"
    reached = "" if s["reached_level"] >= s["level"] else f" (reached {s['reached_level']:.4g})"
    return (
        f"tone {state}: {s['frequency_hz']:g} Hz at {s['level']:.4g} of full scale{reached} for {s['played_s']:.1f} s "
        f"on {s['device']}\n  {measured}\n  stream faults: {faults}"
    )
