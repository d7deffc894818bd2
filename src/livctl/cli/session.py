"""`livctl session`: deliver one prescription on one platform and log the measured dose."""

from __future__ import annotations

import argparse
import math
import os
import sys

from livctl.cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from livctl.cli.common import (
    StopEvent,
    add_calibration_dir_option,
    add_json_option,
    add_log_option,
    add_plot_options,
    add_tolerance_options,
    chosen_preset,
    fmt,
    log_path,
    minutes_seconds,
    operator_name,
    percent,
    plot_mode,
    positive_number,
    print_json,
    speed_factor,
    stop_on_signals,
    tolerance_from,
)
from livctl.errors import UsageError
from livctl.units import peak_to_rms

DESCRIPTION = """\
Deliver one LIV bout: a pre-check at low level, a soft ramp up, the prescribed minutes with
every window (1 s) measured and checked against the prescription, a soft ramp down. Every
window and the session's outcome go to the dose log as measured.

Prescription: --freq and --accel (peak g), or --preset; defaults 30 Hz, 0.3 g peak, 10 min,
or the regimen of --subject, which also checks the bout (rest, daily count; see `livctl due`)
and refuses it unless --override-reason says why.
Device: --device URL or $LIVCTL_DEVICE; sim:// is the simulated platform.
Ctrl-C or SIGTERM starts the ramp-down within 0.1 s and logs the partial dose (exit 130); a
second Ctrl-C cuts the drive at once."""

EPILOG = """\
examples:
  livctl session --device sim:// --minutes 20 --speed max
  livctl session --device 'sim://?load_kg=120' --preset human-30hz-0.4g --subject P-017
  livctl session --device sim:// --freq 90 --accel 0.3 --minutes 15 --json
  livctl session --device sim:// --subject P-017 --override-reason "make-up for Monday"

exit codes: 0 dose delivered in spec, 1 out of spec or aborted, 2 bad usage, 130 interrupted"""


def _loop_gain(text: str) -> float:
    from livctl.inputs import InputError, Range, parse_number

    try:
        return parse_number(text, Range(0.01, 1.0), example="0.5")
    except InputError as exc:
        raise argparse.ArgumentTypeError(f"loop gain {exc}") from None


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
    add_tolerance_options(tol)
    tol.add_argument("--min-in-spec", type=percent, metavar="PCT",
                     help="share of windows in spec for the dose to count, %% (default 90)")
    dev = p.add_argument_group("platform")
    dev.add_argument("--device", metavar="URL", help="sim://, serial:///dev/ttyUSB0, audio://NAME (default $LIVCTL_DEVICE)")
    dev.add_argument("--speed", type=speed_factor, metavar="N|max",
                     help="simulator only: run N times faster than real time, or max (default 1)")
    dev.add_argument("--window", type=positive_number("seconds"), metavar="S", default=1.0,
                     help="measurement window, seconds: 0.25 (and at least 4 cycles) to 10 (default 1)")
    dev.add_argument("--loop-gain", type=_loop_gain, metavar="K", default=None,
                     help="closed-loop speed: share of the level error corrected per window, 0-1 (default 1)")
    dev.add_argument("--profile", metavar="TOML",
                     help="platform safety profile: a [safety] table that tightens the default limits")
    dev.add_argument("--load-kg", type=positive_number("kg"), metavar="KG",
                     help="the load on the platform (a warning when the calibration was made at another)")
    cal = p.add_argument_group("calibration (looked up by the platform's id; a real platform needs one)")
    add_calibration_dir_option(cal)
    cal.add_argument("--max-calibration-age", type=positive_number("days"), metavar="DAYS", default=30.0,
                     help="warn when the calibration is older than this (default 30 days)")
    rec = p.add_argument_group("record")
    rec.add_argument("--subject", metavar="ID", help="who or what is being vibrated")
    rec.add_argument("--operator", metavar="NAME", help="who runs the session (default $LIVCTL_OPERATOR, else your login)")
    rec.add_argument("--override-reason", metavar="TEXT",
                     help="run a bout the subject's regimen refuses (too soon, one too many today, another "
                     "signal); the reason and what was overridden are logged with the session")
    add_log_option(rec)
    out = p.add_argument_group("output")
    add_json_option(out, "the session summary")
    out.add_argument("--quiet", action="store_true", help="no progress display")
    add_plot_options(out, default_on=False)
    p.set_defaults(run=run)


def build_prescription(args: argparse.Namespace):
    """The prescription the options name (a preset, or --freq/--accel), or None: then the subject's
    regimen prescribes, or the defaults (30 Hz, 0.3 g peak, --minutes or 10)."""
    from livctl.prescription import DEFAULT_FREQUENCY_HZ, DEFAULT_MINUTES, DEFAULT_PEAK_G, DEFAULT_RAMP_S, Prescription

    tolerance = tolerance_from(args)
    ramp_s = args.ramp if args.ramp is not None else DEFAULT_RAMP_S
    preset = chosen_preset(args)
    if preset is not None:
        overrides = dict(ramp_s=ramp_s, tolerance=tolerance)
        if args.minutes is not None:
            overrides["duration_s"] = args.minutes * 60.0
        return preset.prescription(**overrides)
    if args.freq is None and args.accel is None:
        return None
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
    from livctl.backends import open_platform
    from livctl.control import ControlSettings
    from livctl.doselog import DoseLog
    from livctl.preparation import SessionRequest, prepare_session
    from livctl.prescription import DEFAULT_RAMP_S
    from livctl.safety import SafetyLimits, load_profile
    from livctl.session import Session

    limits = load_profile(args.profile) if args.profile else SafetyLimits()
    control = ControlSettings(loop_gain=args.loop_gain) if args.loop_gain is not None else ControlSettings()
    prescription = build_prescription(args)
    if prescription is not None:
        prescription.validate(limits.accel_cap_g)
    request = SessionRequest(
        prescription=prescription,
        subject=args.subject,
        operator=operator_name(args.operator),
        override_reason=args.override_reason,
        minutes=args.minutes,
        ramp_s=args.ramp if args.ramp is not None else DEFAULT_RAMP_S,
        tolerance=tolerance_from(args),
        window_s=args.window,
        limits=limits,
        calibration_dir=args.calibration_dir,
        load_kg=args.load_kg,
        max_calibration_age_days=args.max_calibration_age,
    )
    platform = open_platform(choose_device(args), speed=args.speed)  # built here, opened below
    path = log_path(args)
    mode = plot_mode(args, default_on=False)

    with DoseLog(path) as log:
        stop = StopEvent()
        display = None if args.quiet else ProgressDisplay(sys.stderr)
        with platform, stop_on_signals(stop, display):
            plan = prepare_session(platform, log, request)  # every refusal comes before anything moves
            for notice in plan.notices:
                print(f"livctl: {notice}", file=sys.stderr)
            for warning in plan.motion.warnings:
                print(f"livctl: warning: {warning}", file=sys.stderr)
            session = Session(plan, platform, log, control=control, stop=stop,
                              observer=display.update if display else None)
            if display:
                display.start(plan.prescription, platform)
            result = session.run() if mode is None else _run_with_plot(session, stop, mode, args.plot_png)
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


def report_orphans(session_ids: list[str]) -> None:
    from livctl.preparation import orphan_notice

    for session_id in session_ids:
        print(f"livctl: {orphan_notice(session_id)}", file=sys.stderr)


def _run_with_plot(session, stop: StopEvent, mode: str, png: str | None):
    """The session on a worker thread, watched by the live view (closing it stops the session)."""
    from livctl import live
    from livctl.doselog import DoseLog

    rx, platform = session.prescription, session.platform
    feed = live.LiveFeed(
        title=f"livctl session: {platform.platform_id}, {rx.frequency_hz:g} Hz, {rx.peak_g:g} g peak",
        frequency_hz=rx.frequency_hz,
        tolerance_hz=rx.tolerance.frequency_hz,
        accel_cap_g=session.accel_cap_g,
        vertical_axis=platform.vertical_axis,
        mode="session",
        target_g=rx.peak_g,
        tolerance_fraction=rx.tolerance.accel_fraction,
    )
    text = session.observer

    def observe(progress) -> None:
        live.session_window(feed, progress)
        if text is not None:
            text(progress)

    session.observer = observe
    session.sample_observer = feed.add_block

    def job():
        with DoseLog(session.log.path) as log:  # an SQLite connection belongs to the thread that opened it
            session.log = log
            return session.run()

    return live.run_live(job, feed, stop, mode=mode, png=png, hold=False)


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
    rms = None if r["mean_peak_g"] is None else peak_to_rms(r["mean_peak_g"])
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
    if r.get("regimen") or r.get("override_reason"):
        lines.append(f"  regimen      {r.get('regimen') or '-'}")
    if r.get("deviation"):
        lines.append(f"  OVERRIDDEN   {r['deviation']}")
    if r.get("override_reason"):
        lines.append(f"  because      {r['override_reason']}")
    kind = "simulated, " + r["time_base"] if r["simulated"] else r["time_base"]
    lines.append(f"  device       {r['device']} ({kind})")
    who = ", ".join(x for x in (f"subject {r['subject']}" if r["subject"] else "", f"operator {r['operator']}") if x)
    lines.append(f"  record       {who}; log {r.get('log', '')}")
    return "\n".join(lines)
