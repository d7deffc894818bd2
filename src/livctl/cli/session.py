"""`livctl session`: deliver one prescription on one platform and log the measured dose."""

from __future__ import annotations

import argparse
import sys

from livctl.cli.helpformat import HelpFormatter
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
from livctl.ui.progress import ProgressDisplay
from livctl.ui.text import fit_line
from livctl.errors import UsageError
from livctl.units import peak_to_rms

DESCRIPTION = """\
Deliver one LIV bout: a pre-check at low level, a soft ramp up, the prescribed minutes with
every window (1 s) measured and checked against the prescription, a soft ramp down. Every
window and the session's outcome go to the dose log as measured.

Prescription: --freq and --accel (peak g), or --preset; defaults 30 Hz, 0.3 g peak, 10 min,
or the regimen of --subject, which also checks the bout (rest, daily count; see `livctl due`)
and refuses it unless --override-reason says why.
Device: --device URL, else $LIVCTL_DEVICE, else `device` in the configuration (`livctl config
show`); sim:// is the simulated platform. A real platform starts only after a yes on the
terminal (or --yes). Practice is never dose: a simulated platform for a registered subject runs
only with --practice, and practice is logged apart from every dose.
Ctrl-C or SIGTERM starts the ramp-down within 0.1 s and logs the partial dose (exit 130); a
second Ctrl-C cuts the drive at once."""

EPILOG = """\
examples:
  livctl session --device sim:// --minutes 20 --speed max
  livctl session --device 'sim://?load_kg=120' --preset human-30hz-0.4g --subject P-017
  livctl session --device sim:// --freq 90 --accel 0.3 --minutes 15 --json
  livctl session --minutes 20                     the configured device
  livctl session --device sim:// --subject P-017 --practice
  livctl session --subject P-017 --override-reason "make-up for Monday"

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
        formatter_class=HelpFormatter,
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
    dev.add_argument("--device", metavar="URL",
                     help="sim://, serial:///dev/ttyUSB0, audio://NAME (default $LIVCTL_DEVICE, else the configuration's)")
    dev.add_argument("--speed", type=speed_factor, metavar="N|max",
                     help="simulator only: run N times faster than real time, or max (default 1)")
    dev.add_argument("--window", type=positive_number("seconds"), metavar="S", default=1.0,
                     help="measurement window, seconds: 0.25 (and at least 4 cycles) to 10 (default 1)")
    dev.add_argument("--loop-gain", type=_loop_gain, metavar="K", default=None,
                     help="closed-loop speed: share of the level error corrected per window, 0-1 (default 1)")
    dev.add_argument("--profile", metavar="TOML",
                     help="platform safety profile: a [safety] table that tightens the default limits (default: the "
                     "configuration's safety_profile)")
    dev.add_argument("--load-kg", type=positive_number("kg"), metavar="KG",
                     help="the load on the platform (a warning when the calibration was made at another)")
    cal = p.add_argument_group("calibration (looked up by the platform's id; a real platform needs one)")
    add_calibration_dir_option(cal)
    cal.add_argument("--max-calibration-age", type=positive_number("days"), metavar="DAYS", default=30.0,
                     help="warn when the calibration is older than this (default 30 days)")
    rec = p.add_argument_group("record")
    rec.add_argument("--subject", metavar="ID", help="who or what is being vibrated")
    rec.add_argument("--operator", metavar="NAME",
                     help="who runs the session (default $LIVCTL_OPERATOR or the configuration's operator, else your "
                     "login unless the configuration requires a named operator)")
    rec.add_argument("--practice", action="store_true",
                     help="a practice session on a simulated platform: logged and marked, never counted as dose "
                     "(needed for a registered subject on a simulated platform)")
    rec.add_argument("--override-reason", metavar="TEXT",
                     help="run a bout the subject's regimen refuses (too soon, one too many today, another "
                     "signal); the reason and what was overridden are logged with the session")
    add_log_option(rec)
    out = p.add_argument_group("output")
    add_json_option(out, "the session summary")
    out.add_argument("--quiet", action="store_true", help="no progress display")
    out.add_argument("--yes", "-y", action="store_true",
                     help="start a real platform without asking (without a terminal it is required)")
    add_plot_options(out, default_on=False)
    p.set_defaults(run=run)


def build_prescription(args: argparse.Namespace, tolerance=None):
    """The prescription the options name (a preset, or --freq/--accel), or None: then the subject's
    regimen prescribes, or the defaults (30 Hz, 0.3 g peak, --minutes or 10)."""
    from livctl.prescription import DEFAULT_FREQUENCY_HZ, DEFAULT_MINUTES, DEFAULT_PEAK_G, DEFAULT_RAMP_S, Prescription

    tolerance = tolerance if tolerance is not None else tolerance_from(args)
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


def choose_device(args: argparse.Namespace, settings=None) -> str:
    """--device, else $LIVCTL_DEVICE, else the configuration's `device`; never a guess."""
    from livctl.cli.common import station

    url = (settings or station()).given("device", args.device, "--device")
    if not url:
        raise UsageError(
            "no device chosen: pass --device URL (sim:// for the simulated platform, serial:///dev/ttyUSB0, "
            "audio://NAME), set LIVCTL_DEVICE, or set device in the configuration (`livctl config show`)"
        )
    return url


OPTIONS = {"practice": "--practice", "operator": "--operator"}
"""The option that sets each SessionRequest field a refusal can name."""


def run(args: argparse.Namespace) -> int:
    from livctl import (SafetyLimits, SessionRefused, SessionRequest, open_log, open_platform, prepare_session,
                        run_session)
    from livctl.prescription import DEFAULT_RAMP_S
    from livctl.procedures.safety import load_profile

    from livctl.cli.common import station

    settings = station()
    profile = settings.given("safety_profile", args.profile, "--profile")
    limits = load_profile(profile) if profile else SafetyLimits()
    tolerance = tolerance_from(args, settings.tolerance())
    prescription = build_prescription(args, tolerance)
    if prescription is not None:
        prescription.validate(limits.accel_cap_g)
    request = SessionRequest(
        prescription=prescription,
        subject=args.subject,
        operator=operator_name(args.operator, settings),
        override_reason=args.override_reason,
        minutes=args.minutes,
        ramp_s=args.ramp if args.ramp is not None else DEFAULT_RAMP_S,
        tolerance=tolerance,
        window_s=args.window,
        limits=limits,
        calibration_dir=settings.given("calibration_dir", args.calibration_dir, "--calibration-dir"),
        load_kg=args.load_kg,
        max_calibration_age_days=args.max_calibration_age,
        practice=args.practice,
        require_operator=settings["require_operator"],
    )
    platform = open_platform(choose_device(args, settings), speed=args.speed)  # built here, opened below
    path = log_path(args)
    mode = plot_mode(args, default_on=False)

    with open_log(path) as log:
        stop = StopEvent()
        display = None if args.quiet else ProgressDisplay(sys.stderr)
        with platform, stop_on_signals(stop, display):
            try:
                plan = prepare_session(platform, log, request)  # every refusal comes before anything moves
            except SessionRefused as exc:
                raise UsageError(exc.worded(OPTIONS[exc.field])) from None
            if not platform.simulated and not args.yes and not sys.stdin.isatty():
                raise UsageError(  # nobody to ask: --yes is the answer given in advance
                    f"{platform.url} is a real platform: it starts after a yes on a terminal, or give --yes to start "
                    "it without asking; nothing was driven"
                )
            say = display.note if display else lambda text: print(text, file=sys.stderr)
            for notice in plan.notices:
                say(f"livctl: {notice}")
            say(f"livctl: {calibration_note(platform, plan, request.calibration_dir)}")
            for warning in plan.motion.warnings:
                say(f"livctl: warning: {warning}")
            if not platform.simulated and not args.yes:
                confirm(platform, plan, log)  # a real platform moves only after a yes
            if display:
                display.start(plan.prescription, platform)
            view = _SessionView(display)
            if mode is None:
                result = run_session(platform, log, plan, observer=view, stop=stop, loop_gain=args.loop_gain)
            else:
                result = _run_with_plot(platform, path, plan, view, stop, args, mode)
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


def calibration_note(platform, plan, directory) -> str:
    """Which calibration the session uses, or that it found none (and where it looked)."""
    from livctl.records.calibration import calibration_dir, calibration_path

    calibration = plan.motion.calibration
    if calibration is None:
        return (f"no calibration for platform {platform.platform_id!r} in {calibration_dir(directory)}; the simulated "
                "platform runs on its own model")
    age = calibration.age_days()
    return (f"calibration {calibration.calibration_id} ({calibration_path(platform.platform_id, directory)}, "
            f"{age:.0f} days old)")


def confirm(platform, plan, log) -> None:
    """Show what is about to move and wait for a yes on the terminal; anything else starts nothing."""
    rx = plan.prescription
    subject = plan.subject or "-"
    if plan.subject:
        try:
            kind = log.subject(plan.subject)["kind"]
        except UsageError:
            kind = "not registered"
        subject += f" ({kind})" + (f", regimen {plan.regimen.name}" if plan.regimen is not None else "")
    calibration = plan.motion.calibration
    lines = [
        "About to drive a real platform:",
        f"  subject       {subject}",
        f"  prescription  {rx.frequency_hz:g} Hz, {rx.peak_g:g} g peak, {minutes_seconds(rx.duration_s)} "
        f"(ramps of {rx.ramp_s:g} s)",
        f"  platform      {platform.platform_id} ({platform.url})",
        f"  calibration   {calibration.calibration_id if calibration else 'none'}",
        f"  operator      {plan.operator or '-'}",
    ]
    sys.stderr.write("\n".join(lines) + "\nStart? [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline()
    if answer.strip().lower() not in ("y", "yes"):
        raise UsageError("not started: the start was not confirmed; nothing was driven")


def report_orphans(session_ids: list[str]) -> None:
    from livctl.procedures.prepare import orphan_notice

    for session_id in session_ids:
        print(f"livctl: {orphan_notice(session_id)}", file=sys.stderr)


class _SessionView:
    """What the command shows of a running session (an `Observer`): each window on the progress
    line, and, with a live view, every block until the ramp-down begins (the view keeps the
    delivery's last frame)."""

    def __init__(self, display):
        self.display = display
        self.feed = None

    def on_window(self, progress) -> None:
        if self.feed is not None:
            from livctl.ui import live

            live.session_window(self.feed, progress)
        if self.display is not None:
            self.display.update(progress)

    def on_block(self, block) -> None:
        if self.feed is not None:
            self.feed.add_block(block)

    def on_phase(self, phase, frequency_hz: float) -> None:
        if self.feed is not None and phase == "ramp_down":
            self.feed.freeze_samples()


def _run_with_plot(platform, path, plan, view: _SessionView, stop: StopEvent, args: argparse.Namespace, mode: str):
    """The session on a worker thread, watched by the live view (closing it stops the session)."""
    from livctl import open_log, run_session
    from livctl.ui import live

    rx = plan.prescription
    view.feed = feed = live.LiveFeed(
        title=f"livctl session: {platform.platform_id}, {rx.frequency_hz:g} Hz, {rx.peak_g:g} g peak",
        frequency_hz=rx.frequency_hz,
        tolerance_hz=rx.tolerance.frequency_hz,
        accel_cap_g=plan.limits.accel_cap_g,
        vertical_axis=platform.vertical_axis,
        mode="session",
        target_g=rx.peak_g,
        tolerance_fraction=rx.tolerance.accel_fraction,
    )

    def finished():
        with open_log(path) as log:  # an SQLite connection belongs to the thread that opened it
            result = run_session(platform, log, plan, observer=view, stop=stop, loop_gain=args.loop_gain)
        feed.set_status(f"{result.status}" + ("" if result.reason is None else f": {result.reason}"))
        return result

    return live.run_live(finished, feed, stop, mode=mode, png=args.plot_png, hold=True, hold_after_stop=True)


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
    if r.get("practice"):
        lines.append("  PRACTICE     logged as practice: counted in no dose, compliance or exposure")
    lines.append(f"  device       {r['device']} ({kind})")
    who = ", ".join(x for x in (f"subject {r['subject']}" if r["subject"] else "", f"operator {r['operator']}") if x)
    lines.append(f"  record       {who}; log {r.get('log', '')}")
    return "\n".join(fit_line(line) if line.startswith("  ") else line for line in lines)
