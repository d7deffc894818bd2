"""`livctl session`: deliver one prescription on one platform and log the measured dose."""

from __future__ import annotations

import argparse
import getpass
import math
import os
import signal
import sys
import threading

from livctl.cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from livctl.cli.common import (
    add_json_option,
    add_log_option,
    fmt,
    log_path,
    minutes_seconds,
    percent,
    positive_number,
    print_json,
)
from livctl.errors import UsageError

DESCRIPTION = """\
Deliver one LIV bout: a pre-check at low level, a soft ramp up, the prescribed minutes with
every window (1 s) measured and checked against the prescription, a soft ramp down. Every
window and the session's outcome go to the dose log as measured.

Prescription: --freq and --accel (peak g), or --preset; defaults 30 Hz, 0.3 g peak, 10 min.
Device: --device URL or $LIVCTL_DEVICE; sim:// is the simulated platform.
Ctrl-C or SIGTERM ramps the platform down and logs the partial dose (exit 130)."""

EPILOG = """\
examples:
  livctl session --device sim:// --minutes 20 --speed max
  livctl session --device 'sim://?load_kg=120' --preset human-30hz-0.4g --subject P-017
  livctl session --device sim:// --freq 90 --accel 0.3 --minutes 15 --json

exit codes: 0 dose delivered in spec, 1 out of spec or aborted, 2 bad usage, 130 interrupted"""


def _speed(text: str) -> float:
    if text.lower() == "max":
        return math.inf
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a speed; give a factor such as 10, or max") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"speed must be a positive factor or max, not {text!r}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "session",
        help="deliver one LIV bout and log the measured dose",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rx = p.add_argument_group("prescription")
    rx.add_argument("--preset", metavar="NAME", help="a shipped protocol (see `livctl presets`)")
    rx.add_argument("--freq", type=positive_number("Hz"), metavar="HZ", help="frequency in Hz (default 30)")
    rx.add_argument("--accel", type=positive_number("g"), metavar="G", help="peak acceleration in g (default 0.3)")
    rx.add_argument("--minutes", type=positive_number("minutes"), metavar="M",
                    help="minutes at the prescribed level (default: the preset's, else 10)")
    rx.add_argument("--ramp", type=positive_number("seconds"), metavar="S", default=None,
                    help="soft ramp up and down, seconds (default 2)")
    tol = p.add_argument_group("tolerances (a window is in spec when all hold)")
    tol.add_argument("--tol-freq", type=positive_number("Hz"), metavar="HZ", help="+- Hz (default 1)")
    tol.add_argument("--tol-accel", type=percent, metavar="PCT", help="+- %% of the peak g (default 10)")
    tol.add_argument("--max-thd", type=percent, metavar="PCT", help="largest THD, %% (default 10)")
    tol.add_argument("--min-in-spec", type=percent, metavar="PCT",
                     help="share of windows in spec for the dose to count, %% (default 90)")
    dev = p.add_argument_group("platform")
    dev.add_argument("--device", metavar="URL", help="sim://, serial:///dev/ttyUSB0, audio://NAME (default $LIVCTL_DEVICE)")
    dev.add_argument("--speed", type=_speed, metavar="N|max",
                     help="simulator only: run N times faster than real time, or max (default 1)")
    dev.add_argument("--window", type=positive_number("seconds"), metavar="S", default=1.0,
                     help="measurement window, seconds (default 1)")
    rec = p.add_argument_group("record")
    rec.add_argument("--subject", metavar="ID", help="who or what is being vibrated")
    rec.add_argument("--operator", metavar="NAME", help="who runs the session (default $LIVCTL_OPERATOR, else your login)")
    add_log_option(rec)
    out = p.add_argument_group("output")
    add_json_option(out, "the session summary")
    out.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(run=run)


def build_prescription(args: argparse.Namespace):
    from livctl.prescription import (
        DEFAULT_FREQUENCY_HZ,
        DEFAULT_MINUTES,
        DEFAULT_PEAK_G,
        DEFAULT_RAMP_S,
        Prescription,
        Tolerance,
        get_preset,
    )

    defaults = Tolerance()
    tolerance = Tolerance(
        frequency_hz=args.tol_freq if args.tol_freq is not None else defaults.frequency_hz,
        accel_fraction=args.tol_accel if args.tol_accel is not None else defaults.accel_fraction,
        max_thd_fraction=args.max_thd if args.max_thd is not None else defaults.max_thd_fraction,
        min_in_spec_fraction=args.min_in_spec if args.min_in_spec is not None else defaults.min_in_spec_fraction,
    )
    ramp_s = args.ramp if args.ramp is not None else DEFAULT_RAMP_S
    if args.preset:
        if args.freq is not None or args.accel is not None:
            raise UsageError("a preset fixes the frequency and acceleration; give --preset or --freq/--accel, not both")
        preset = get_preset(args.preset)
        overrides = dict(ramp_s=ramp_s, tolerance=tolerance)
        if args.minutes is not None:
            overrides["duration_s"] = args.minutes * 60.0
        return preset.prescription(**overrides)
    return Prescription(
        frequency_hz=args.freq if args.freq is not None else DEFAULT_FREQUENCY_HZ,
        peak_g=args.accel if args.accel is not None else DEFAULT_PEAK_G,
        duration_s=(args.minutes if args.minutes is not None else DEFAULT_MINUTES) * 60.0,
        ramp_s=ramp_s,
        tolerance=tolerance,
    )


def choose_device(args: argparse.Namespace) -> str:
    url = args.device or os.environ.get("LIVCTL_DEVICE")
    if not url:
        raise UsageError(
            "no device chosen: pass --device URL (sim:// for the simulated platform, serial:///dev/ttyUSB0, "
            "audio://NAME) or set LIVCTL_DEVICE"
        )
    return url


def run(args: argparse.Namespace) -> int:
    from livctl.backends import open_platform, parse_device_url
    from livctl.doselog import DoseLog
    from livctl.safety import DEFAULT_ACCEL_CAP_G
    from livctl.session import Session

    prescription = build_prescription(args).validate(DEFAULT_ACCEL_CAP_G)
    url = choose_device(args)
    if args.speed is not None and parse_device_url(url).scheme != "sim":
        raise UsageError("--speed applies to the simulator (sim://) only; real platforms run in real time")
    operator = args.operator or os.environ.get("LIVCTL_OPERATOR") or getpass.getuser()
    path = log_path(args)

    with DoseLog(path) as log:
        platform = open_platform(url, speed=args.speed)
        stop = _StopEvent()
        display = None if args.quiet else ProgressDisplay(sys.stderr)
        session = Session(
            prescription,
            platform,
            log,
            subject=args.subject,
            operator=operator,
            window_s=args.window,
            accel_cap_g=DEFAULT_ACCEL_CAP_G,
            stop=stop,
            observer=display.update if display else None,
        )
        with platform, _stop_on_signals(stop, display):
            if display:
                display.start(prescription, platform)
            result = session.run()
        if display:
            display.finish()
        record = log.find_session(result.session_id)

    record["log"] = str(path)
    if result.stream_health:
        record["stream_health"] = result.stream_health
    if args.json:
        print_json(record)
    else:
        print(render_summary(record))
    if result.status == "interrupted":
        return EXIT_INTERRUPTED
    return EXIT_OK if result.in_spec else EXIT_FAILED


class _StopEvent(threading.Event):
    reason: str | None = None


class _stop_on_signals:
    """SIGINT and SIGTERM ask the session to ramp down and stop (the session decides when)."""

    def __init__(self, stop: _StopEvent, display: "ProgressDisplay | None"):
        self.stop = stop
        self.display = display
        self.previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        if self.stop.is_set():
            return
        self.stop.reason = f"stopped by {name}"
        self.stop.set()
        if self.display:
            self.display.note(f"{name}: ramping down, then stopping")

    def __enter__(self) -> "_stop_on_signals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


PHASE_LABELS = {
    "precheck": "pre-check",
    "ramp_up": "ramping up",
    "deliver": "delivering",
    "ramp_down": "ramping down",
}


class ProgressDisplay:
    """Live progress on a terminal (one line, redrawn), or a line a minute when not a terminal."""

    REDRAW_S = 0.1

    def __init__(self, stream):
        import time

        self._time = time.monotonic
        self.stream = stream
        self.tty = stream.isatty()
        self._last_draw = -math.inf
        self._last_phase = None
        self._next_minute_s = 60.0
        self._width = 0

    def start(self, prescription, platform) -> None:
        rx = prescription
        self._line(
            f"{rx.frequency_hz:g} Hz, {rx.peak_g:g} g peak, {minutes_seconds(rx.duration_s)} "
            f"on {platform.description}"
        )

    def note(self, text: str) -> None:
        self._line(text)

    def update(self, progress) -> None:
        phase_changed = progress.phase != self._last_phase
        self._last_phase = progress.phase
        if self.tty:
            now = self._time()
            if phase_changed or now - self._last_draw >= self.REDRAW_S:
                self._last_draw = now
                self._draw(self._status(progress))
        elif phase_changed or progress.delivered_s >= self._next_minute_s - 1e-9:
            if progress.delivered_s >= self._next_minute_s - 1e-9:
                self._next_minute_s += 60.0
            self._line(self._status(progress))

    def finish(self) -> None:
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0

    def _status(self, progress) -> str:
        w = progress.window
        m = w.measurement
        measured = (
            f"{m.frequency_hz:6.2f} Hz  {m.peak_g:5.3f} g pk  THD {m.thd_percent:4.1f} %" if m
            else (w.reasons[0] if w.reasons else "no measurement")
        )
        share = fmt(None if progress.in_spec_fraction is None else 100 * progress.in_spec_fraction, "3.0f")
        return (
            f"{PHASE_LABELS.get(progress.phase, progress.phase):<12} "
            f"{minutes_seconds(progress.delivered_s)} / {minutes_seconds(progress.duration_s)}  "
            f"remaining {minutes_seconds(progress.duration_s - progress.delivered_s)}  "
            f"{measured}  in spec {share} %"
        )

    def _draw(self, text: str) -> None:
        pad = max(0, self._width - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._width = len(text)

    def _line(self, text: str) -> None:
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        self.stream.write(text + "\n")
        self.stream.flush()


def render_summary(r: dict) -> str:
    rx = r["prescription"]
    status = r["status"]
    if status == "completed" and r["in_spec"]:
        headline = "completed: dose delivered in spec"
    elif status == "completed":
        headline = "completed but OUT OF SPEC"
    else:
        headline = status.upper()
    lines = [f"Session {r['session_id']} {headline}"]
    if r["reason"]:
        lines.append(f"  reason       {r['reason']}")
    preset = f" (preset {rx['preset']})" if rx["preset"] else ""
    lines.append(
        f"  prescribed   {rx['frequency_hz']:g} Hz, {rx['peak_g']:g} g peak, {minutes_seconds(rx['duration_s'])}{preset}"
    )
    rms = None if r["mean_peak_g"] is None else r["mean_peak_g"] / math.sqrt(2)
    lines.append(
        f"  delivered    {minutes_seconds(r['delivered_s'])} of {minutes_seconds(rx['duration_s'])}"
        f" at {fmt(r['mean_frequency_hz'], '.2f')} Hz, {fmt(r['mean_peak_g'], '.3f')} g peak"
        f" ({fmt(rms, '.3f')} g RMS), THD {fmt(r['mean_thd_percent'], '.1f')} %"
    )
    share = None if r["in_spec_fraction"] is None else 100 * r["in_spec_fraction"]
    lines.append(
        f"  in spec      {fmt(share, '.1f')} % of the delivered time ({minutes_seconds(r['in_spec_s'])}); "
        f"needs {100 * rx['tolerance']['min_in_spec_fraction']:g} %"
    )
    kind = "simulated, " + r["time_base"] if r["simulated"] else r["time_base"]
    lines.append(f"  device       {r['device']} ({kind})")
    who = ", ".join(x for x in (f"subject {r['subject']}" if r["subject"] else "", f"operator {r['operator']}") if x)
    lines.append(f"  record       {who}; log {r.get('log', '')}")
    return "\n".join(lines)
