"""`livctl calibration show`: print a platform's calibration file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from livctl.cli.helpformat import HelpFormatter
from livctl.cli.common import add_calibration_dir_option, add_json_option, fmt, print_json, table
from livctl.ui.text import fit_line

if TYPE_CHECKING:
    from livctl.records.calibration import Calibration

DESCRIPTION = """\
Show a calibration: by platform id (looked up as DIR/<platform-id>.toml) or by file name.
Gains are peak g per unit of drive (drive: fraction of full scale, peak), with standard
uncertainties (k = 1; about 95 % coverage is twice them)."""

EPILOG = """\
examples:
  livctl calibration show sim
  livctl calibration show calibration/bench-A.toml --json
  livctl calibration show bench-A --calibration-dir /srv/lab/calibration

calibration directory: --calibration-dir DIR, else $LIVCTL_CALIBRATION_DIR, else ./calibration
exit codes: 0 shown, 2 no such calibration or a damaged file"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibration",
        help="show a platform's calibration",
        description="Platform calibration files (written by `livctl calibrate`).",
        epilog="examples:\n  livctl calibration show sim",
        formatter_class=HelpFormatter,
    )
    inner = p.add_subparsers(title="commands", metavar="COMMAND")
    show = inner.add_parser(
        "show",
        help="print one calibration",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    show.add_argument("which", metavar="PLATFORM_ID|FILE", help="a platform id, or the path of a .toml file")
    add_calibration_dir_option(show)
    add_json_option(show, "the calibration")
    show.set_defaults(run=run_show)


def run_show(args: argparse.Namespace) -> int:
    from livctl.records.calibration import CalibrationError, calibration_path, load_calibration

    given = Path(args.which).expanduser()
    if given.suffix == ".toml" or given.exists():
        path = given
        cal = load_calibration(path)
    else:
        path = calibration_path(args.which, args.calibration_dir)
        if not path.exists():
            raise CalibrationError(
                f"no calibration of platform {args.which!r} ({path} does not exist); "
                f"run `livctl calibrate` or pass --calibration-dir DIR"
            )
        cal = load_calibration(path, platform_id=args.which)
    if args.json:
        print_json(dict(calibration_json(cal), path=str(path)))
    else:
        print(render_calibration(cal, path, steps=True))
    return 0


def calibration_json(cal: "Calibration") -> dict[str, Any]:
    """The file's content as JSON (the date as ISO 8601 text)."""
    doc = cal.to_dict()
    doc["date_utc"] = cal.date_utc.isoformat().replace("+00:00", "Z")
    return doc


def raw_signal_state(cal: "Calibration", path: Path) -> str:
    """Whether the sweep's raw signal is there with the SHA-256 the calibration file holds."""
    from livctl.records.archive import sealed_problem

    problem = sealed_problem(Path(path).parent, cal.raw_signal)
    if problem is not None:
        return problem.upper() if "missing" in problem else f"CHANGED: {problem}"
    return "SHA-256 as recorded" + ("" if cal.raw_signal["complete"] else " (incomplete)")


def render_calibration(cal: "Calibration", path: Path, *, headline: str = "in", steps: bool = False) -> str:
    """A calibration for a person: who, when, sensor, and per frequency the fit and its limits."""
    from livctl.units import mps2_to_g

    s = cal.sensor
    load = f", {cal.load_kg:g} kg load" if cal.load_kg is not None else ""
    lines = [
        f"Calibration {cal.calibration_id} of platform {cal.platform_id} {headline} {path}",
        f"  made        {cal.date_utc:%Y-%m-%d %H:%M} UTC by {cal.operator or '-'} with livctl {cal.livctl_version}",
        f"  device      {cal.device}{' (simulated)' if cal.simulated else ''}{load}",
        f"  sensor      {s.model + ', ' if s.model else ''}{s.rate_hz:g} Hz; at rest {s.vertical_gravity_g:+.3f} g on "
        f"{s.vertical_axis}, noise {1000 * s.vertical_noise_rms_g:.1f} mg RMS "
        f"({1e6 * s.noise_density_g_per_rthz:.0f} ug/sqrt(Hz))",
        f"  limits      cap {cal.accel_cap_g:g} g peak; largest safe drive at {cal.working_frequency_hz:g} Hz "
        f"{100 * cal.max_safe_drive:.1f} % of full scale",
    ]
    if cal.raw_signal is not None:
        lines.append(f"  raw signal  {cal.raw_signal['file']}, {cal.raw_signal['samples']:,} samples: "
                     f"{raw_signal_state(cal, path)}")
    for p in cal.points:
        g = p.gain
        working = " (working)" if p.frequency_hz == cal.working_frequency_hz else ""
        top = p.top_step
        lines += [
            f"  {p.frequency_hz:g} Hz{working}",
            f"    gain            {g.g_per_drive:.4f} +- {g.u_g_per_drive:.4f} g peak per full drive "
            f"({100 * g.u_mps2_per_drive / g.mps2_per_drive:.2f} %)",
            f"    non-linearity   {p.nonlinearity_percent:+.2f} +- {p.nonlinearity_u_percent:.2f} % at "
            f"{100 * p.top_drive:.1f} % drive (cubic {mps2_to_g(g.cubic_mps2):+.4f} g)",
            f"    THD             {top.thd_percent:.2f} % at {100 * top.drive:.1f} % drive ({top.peak_g:.3f} g peak)",
            f"    cap reached at  {fmt(100 * p.cap_drive, '.1f')} +- {100 * p.cap_drive_u:.2f} % drive; "
            f"largest safe drive {100 * p.max_safe_drive:.1f} %",
            f"    fit             {len(p.steps)} steps, reduced chi-square {p.chi2_reduced:.2f}, largest residual "
            f"{max(abs(r) for r in p.residuals_mps2()) / max(abs(st.peak_mps2) for st in p.steps) * 100:.2f} % of full range",
        ]
        if steps:
            rows = [
                [f"{100 * st.drive:.1f}", f"{st.peak_g:.4f}", f"{mps2_to_g(st.peak_u_mps2):.4f}",
                 f"{mps2_to_g(r):+.4f}", f"{st.frequency_hz:.2f}", f"{st.thd_percent:.1f}", f"{st.snr_db:.1f}"]
                for st, r in zip(p.steps, p.residuals_mps2())
            ]
            header = ["drive %", "peak g", "u g", "residual g", "Hz", "THD %", "SNR dB"]
            lines += ["      " + line for line in table(rows, header).splitlines()]
    return "\n".join(fit_line(line) for line in lines)
