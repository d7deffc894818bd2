#!/usr/bin/env python3
"""The fault matrix: every fault, stop and interlock through real sessions, measured on the plate.

    python scripts/fault_matrix.py                 every case on sim://, each preset
    python scripts/fault_matrix.py --pty           and the key cases over a pty to firmware_sim (real time)
    python scripts/fault_matrix.py --only resonance-x5 --json

Each case runs a session on the three reference presets (30 Hz 0.4 g on a 70 kg person, 45 Hz
0.6 g and 90 Hz 0.7 g on a 0.5 kg cage or plate), injects its fault (or stop) in the delivery, and
reads what the plate really did from the simulator's truth file (firmware_sim.truth), never from
the log's own word. Per case it prints:

- `status`, and the reason the log gives;
- `over cap`: seconds the plate's cycle peaks were over the 1 g cap (the truth's `over_cap_s`);
- `react`: from the fault (or stop) to the block at which the session began to stop (its trip);
- `falls`: from the fault to the start of the first truth row (0.1 s) whose drive is under 90 %
  of the drive before it (the drive began to fall in that row at the latest);
- `rest`: from the fault until the plate's fundamental stays under 1 % of the prescription;
- `peak`: the plate's highest true peak after the fault, g;
- `lies`: delivery windows logged in spec while the plate was not: its true level (the mean over
  the window, or any tenth of a second past 1.5 times the tolerance) or its true frequency out of
  tolerance (must be 0 in every case);
- `f err`: the largest difference between a delivery window's logged frequency and the plate's
  true one, Hz;
- `limit`: the reaction time docs/safety.md promises for the interlock the case provokes.

tests/test_faults.py runs the same cases (importing this file) and asserts the limits.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO)]
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402

from firmware_sim.truth import read_truth  # noqa: E402
from livctl.platforms import open_platform  # noqa: E402
from livctl.procedures.control import ControlSettings  # noqa: E402
from livctl.records.doselog import DoseLog  # noqa: E402
from livctl.procedures.prepare import SessionRequest  # noqa: E402
from livctl.prescription import get_preset  # noqa: E402
from livctl.procedures.safety import SafetyLimits  # noqa: E402
from livctl.procedures.session import DELIVER, run_session  # noqa: E402
from livctl.procedures.stopping import StopSignal  # noqa: E402

PRESETS = (("human-30hz-0.4g", 70.0), ("mouse-45hz-0.6g", 0.5), ("cells-90hz-0.7g", 0.5))
"""The reference presets and the load each is run with."""
DELIVERY_S = 30.0
INTO_DELIVERY_S = 6.0
"""Faults and stops strike this long after the delivery started."""


THD_35_PERCENT = -1.0
"""A stand-in value: the actuator's quadratic term that gives 35 % THD at this preset's drive."""


@dataclass(frozen=True)
class Case:
    name: str
    fault: str | None = None
    value: float | None = None
    duration_s: float | None = None
    stop: bool = False
    second_stop_after_s: float | None = None
    window_s: float = 1.0
    profile: dict = field(default_factory=dict)
    control: dict = field(default_factory=dict)
    url: str = ""
    """Further sim:// options (of the platform: the fault-free reference run has them too)."""
    sensor_url: str = ""
    """sim:// options of the faulted run only (what makes its sensor lie: a clock, a scale...)."""
    sim_args: tuple[str, ...] = ()
    """The same, as `python -m firmware_sim` options, for the pty run."""
    load_kg: float | None = None
    """A load other than the preset's."""
    at_start: bool = False
    """The fault strikes when the platform starts (its sensor lies from the start)."""
    refused: bool = False
    """The session must end before its delivery (refused by the sensor checks)."""
    freq_err_limit_hz: float | None = None
    """The logged frequency must be this close to the plate's true one in every delivery window."""
    peak_g: float | None = None
    """A prescription other than the preset's (same frequency)."""
    expect: str = "aborted"
    says: str | tuple[str, ...] = ""
    """Words the log's reason must hold (or one of these)."""
    limit_s: float | None = None
    """The reaction time docs/safety.md states for what this case provokes (fault to trip)."""
    pty_limit_s: float | None = None
    """The same over a pty, where the host's reading adds the link's latency and the truth's rows round it."""
    over_cap_limit_s: float | None = None
    pty: bool = False
    """Also run over a pty to firmware_sim (--pty)."""
    presets: tuple[str, ...] | None = None
    """The presets the case means something on (a person steps off; a cage's removal is another matter)."""


CASES = (
    Case("resonance-x3", "resonance", 3.0, over_cap_limit_s=0.1, pty=True),
    Case("resonance-x5", "resonance", 5.0, says="", over_cap_limit_s=0.1, pty=True),
    Case("step-off", "step_off", over_cap_limit_s=0.1, presets=("human-30hz-0.4g",)),
    Case("sensor-stall", "sensor_stall", says="frozen", limit_s=0.5),
    Case("sensor-unplug", "sensor_unplug", says="absent", limit_s=0.5),
    Case("corrupt", "corrupt", says="over-acceleration trip", limit_s=0.1),
    Case("link-drop", "link_drop", says="link lost", limit_s=0.1),
    Case("actuator-failure", "actuator_failure", says="response fell", limit_s=0.3),
    Case("actuator-weaker", "resonance", 0.6, says="response fell", limit_s=1.5),
    Case("under-dose", "resonance", 0.75, says="under-dose", limit_s=3.0,
         profile={"accel_cap_g": "1.1x"}),
    Case("over-level", "resonance", 1.32, says="stayed over 25 %", limit_s=0.5, control={"closed_loop": False}),
    Case("frequency-shift", "frequency_shift", 2.0, says="outside", limit_s=2.0),
    Case("distortion", "distortion", THD_35_PERCENT, says="THD", limit_s=2.0),
    Case("unverifiable", "noise_burst", 10.0, 20.0, says="cannot be verified", limit_s=3.0, peak_g=0.15),
    Case("drift", "drift", -0.03, says="sensor check", limit_s=10.0),
    Case("drift-up", "drift", 0.03, says="sensor check", limit_s=10.0),
    Case("load-step", "load_step", 1.3, says="sensor check: the platform's response", limit_s=6.0,
         presets=("human-30hz-0.4g",)),
    Case("load-step-two-sensors", "load_step", 1.3, url="sensors=2", expect="completed"),
    # the clock is judged at rest, before any drive: nothing moves, so there is no reaction to time
    Case("clock-fast-3pct", sensor_url="clock_ppm=30000", sim_args=("--clock-ppm", "30000"), says="clock runs",
         refused=True, pty=True),
    Case("clock-slow-3pct", sensor_url="clock_ppm=-30000", sim_args=("--clock-ppm", "-30000"), says="clock runs",
         refused=True),
    Case("clock-0.2pct", sensor_url="clock_ppm=2000", sim_args=("--clock-ppm", "2000"), expect="completed",
         freq_err_limit_hz=0.02, pty=True),
    Case("replay", "replay", says="replaying", limit_s=5.0, pty=True),
    # the switch to the other plate is a glitch in the block it falls in: when that block reads low,
    # the response-fell interlock acts on it first (its reason names sensor drift among the causes)
    Case("foreign-sensor", "foreign_sensor", says=("does not see this platform", "response fell (sensor drift"),
         limit_s=5.0, pty=True),
    # on sim:// the other plate vibrates before this one starts (refused at rest); behind a pty the fault's
    # clock starts with the first OUTPut ON, so the other starts with the pre-check (refused there, by the
    # proportionality check or by the phase check, whichever sees it first)
    Case("foreign-from-start", "foreign_sensor", at_start=True,
         says=("while this platform is at rest", "the response does not follow the drive", "does not see this platform"),
         refused=True,
         pty=True),
    Case("scale-high-5pct", sensor_url="sensor_scale=1.05", sim_args=("--sensor-scale", "1.05"), says="scale",
         refused=True, pty=True),
    Case("scale-low-5pct", sensor_url="sensor_scale=0.95", sim_args=("--sensor-scale", "0.95"), says="scale",
         refused=True),
    Case("ac-coupled", url="coupling=ac", expect="completed"),
    Case("two-sensors-drift-first", "drift", 0.005, url="sensors=2", says="two accelerometers disagree",
         limit_s=15.0, pty=True),
    Case("two-sensors-drift-second", "drift", -0.005, url="sensors=2&fault_sensor=2",
         says="two accelerometers disagree", limit_s=15.0),
    Case("two-sensors-second-stalls", "sensor_stall", url="sensors=2&fault_sensor=2", says="second accelerometer",
         limit_s=0.6),
    Case("step-off-40kg", "step_off", load_kg=40.0, says="step off", limit_s=2.0, presets=("human-30hz-0.4g",),
         pty=True),
    # over a pty the reaction is read off the truth's 0.1 s rows, after the block's trip to the host
    Case("cage-removal", "step_off", url="load_cell=1", says="load cell", limit_s=0.2, pty_limit_s=0.3,
         presets=("mouse-45hz-0.6g", "cells-90hz-0.7g"), pty=True),
    Case("noise-burst", "noise_burst", expect="completed"),
    # sim:// only: a serial platform needs a calibration, and one this strong (the cap at 0.05 % of full
    # drive) cannot be calibrated (`livctl calibrate` fails: lower the amplifier's gain)
    Case("first-drive-strong", url="actuator_n=1000000", expect="completed", over_cap_limit_s=0.0),
    Case("stop-window-1", stop=True, expect="interrupted", limit_s=0.25, pty=True),
    Case("stop-window-5", stop=True, window_s=5.0, expect="interrupted", limit_s=0.25),
    Case("stop-window-10", stop=True, window_s=10.0, expect="interrupted", limit_s=0.25),
    Case("second-stop", stop=True, second_stop_after_s=0.5, expect="interrupted", says="drive cut at once",
         limit_s=0.25, pty=True),
)


@dataclass
class Outcome:
    case: str
    preset: str
    transport: str
    status: str
    reason: str
    over_cap_s: float
    react_s: float | None
    falls_s: float | None
    rest_s: float | None
    peak_g: float
    lies: int
    freq_err_hz: float | None
    delivered_s: float
    limit_s: float | None
    ok: bool
    problems: list[str]

    def row(self) -> str:
        def fmt(value, spec=".2f"):
            return "-" if value is None else format(value, spec)

        return (f"{self.case:<19} {self.preset:<16} {self.transport:<4} {self.status:<11} {self.over_cap_s:>6.3f} "
                f"{fmt(self.react_s):>6} {fmt(self.falls_s):>6} {fmt(self.rest_s):>6} {self.peak_g:>6.3f} "
                f"{self.lies:>4} {fmt(self.freq_err_hz, '.3f'):>6} {fmt(self.limit_s):>6}  {'ok' if self.ok else 'FAIL: ' + '; '.join(self.problems)}"
                f"  {self.reason[:70]}")


HEADER = (f"{'case':<19} {'preset':<16} {'via':<4} {'status':<11} {'over':>6} {'react':>6} {'falls':>6} {'rest':>6} "
          f"{'peak':>6} {'lies':>4} {'f err':>6} {'limit':>6}")


# -- one case on sim:// ------------------------------------------------------------------------------


def _prescription(preset_name: str, case: Case):
    rx = get_preset(preset_name).prescription(duration_s=DELIVERY_S)
    if case.peak_g is not None:
        from dataclasses import replace

        rx = replace(rx, peak_g=case.peak_g, preset=None)
    return rx


def _limits(case: Case, rx) -> SafetyLimits:
    profile = dict(case.profile)
    if profile.get("accel_cap_g") == "1.1x":  # a platform whose cap sits just above the dose
        profile["accel_cap_g"] = round(1.1 * rx.peak_g, 3)
    return SafetyLimits().tightened(**profile) if profile else SafetyLimits()


def run_sim_case(case: Case, preset_name: str, load_kg: float, workdir: Path) -> Outcome:
    """One case on sim:// in virtual time; the fault lands INTO_DELIVERY_S into the delivery."""
    rx = _prescription(preset_name, case)
    limits = _limits(case, rx)
    truth = workdir / f"{case.name}-{preset_name}.csv"
    # the delivery's start (and drive) are found by a first, fault-free run of the same platform
    load_kg = case.load_kg or load_kg
    start_s, drive = _delivery_start(rx, load_kg, case, limits)
    event_s = round(start_s + INTO_DELIVERY_S, 3) if (case.fault or case.stop) else 0.0
    if case.at_start or case.sensor_url:
        event_s = 0.0 if case.at_start else round(start_s, 3)  # a sensor that lies from the start: from the delivery
    value = _distortion_for(rx.frequency_hz, load_kg, drive) if case.value == THD_35_PERCENT else case.value
    options = [f"load_kg={load_kg}", f"truth={truth}"]
    for more in (case.url, case.sensor_url):
        if more:
            options.append(more)
    if case.fault:
        options += [f"fault={case.fault}", f"fault_at_s={0.0 if case.at_start else event_s}"]
        if value is not None:
            options.append(f"fault_value={value:.6g}")
        if case.duration_s is not None:
            options.append(f"fault_duration_s={case.duration_s}")
    platform = open_platform("sim://?" + "&".join(options), speed=math.inf)
    stop = StopSignal()

    def stop_when(block) -> None:
        end = block.t0_s + block.duration_s
        if case.stop and end >= event_s - 1e-9:
            stop.request("stopped by SIGINT")
        if case.second_stop_after_s is not None and end >= event_s + case.second_stop_after_s - 1e-9:
            stop.request_cut("a second SIGINT")

    log_path = workdir / f"{case.name}-{preset_name}.sqlite"
    control = ControlSettings(**case.control)
    with DoseLog(log_path) as log, platform:
        request = SessionRequest(rx, window_s=case.window_s, limits=limits)
        from livctl.procedures.prepare import prepare_session
        from livctl.procedures.session import Session

        session = Session(prepare_session(platform, log, request), platform, log, control=control, stop=stop,
                          sample_observer=stop_when)
        result = session.run()
        windows = log.windows(result.session_id)
    stopped_at = session.stopped_at_s
    if stopped_at is not None and "clock_ppm" in case.sensor_url:  # the session's stream time to the truth's
        stopped_at /= 1 + 1e-6 * float(case.sensor_url.split("clock_ppm=")[1].split("&")[0])
    return _outcome(case, preset_name, "sim", rx, result.status, result.reason or "", result.delivered_s,
                    read_truth(truth), windows, event_s, stopped_at)


def _delivery_start(rx, load_kg: float, case: Case, limits: SafetyLimits) -> tuple[float, float]:
    """When the delivery starts, and at what drive, on this platform without a fault."""
    extra = f"&{case.url}" if case.url else ""
    with open_platform(f"sim://?load_kg={load_kg}{extra}", speed=math.inf) as platform:
        seen: list[tuple[float, float]] = []

        def first_delivery(progress) -> None:
            if progress.phase == DELIVER and not seen:
                seen.append((progress.window.t_s, progress.window.drive))

        short = rx.__class__(rx.frequency_hz, rx.peak_g, 2.0, rx.ramp_s, rx.tolerance, rx.preset)
        run_session(platform, None, SessionRequest(short, window_s=case.window_s, limits=limits),
                    observer=first_delivery)
    return seen[0]


def _distortion_for(frequency_hz: float, load_kg: float, drive: float, thd: float = 0.35) -> float:
    """The actuator's quadratic term whose second harmonic is `thd` of the fundamental at `drive`:
    force q d^2 cos^2 holds (q d^2 / 2) cos 2wt, and the plate answers each frequency as it does."""
    from firmware_sim.plant import Plant, PlantParams

    plant = Plant(3200.0, PlantParams(load_kg=load_kg))
    ratio = abs(plant.accel_per_newton(frequency_hz)) / abs(plant.accel_per_newton(2 * frequency_hz))
    return 2.0 * thd * ratio / drive


# -- what the truth says -------------------------------------------------------------------------------


def _outcome(case: Case, preset: str, transport: str, rx, status: str, reason: str, delivered_s: float,
             truth: dict, windows: list[dict], event_s: float, stopped_at_s: float | None) -> Outcome:
    t = truth["t_s"]
    after = t > event_s + 1e-9
    target = rx.peak_g
    over_cap_s = float(truth["over_cap_s"][after].sum())
    falls_s = _descent_s(t, truth["drive"], event_s) if status != "completed" else None
    moving = t[after & (truth["fundamental_g"] > 0.01 * target)]
    rest_s = float(moving[-1] - event_s) if moving.size and status != "completed" else None
    if status != "completed" and not moving.size:
        rest_s = 0.0
    peak_g = float(truth["true_peak_g"][after].max()) if after.any() else 0.0
    react_s = None if stopped_at_s is None or status == "completed" else float(stopped_at_s - event_s)
    lies = _lies(windows, truth, rx)
    freq_err_hz = _frequency_error(windows, truth)
    delivered = any(w["phase"] == DELIVER for w in windows)
    problems = []
    if case.refused and delivered:
        problems.append("delivered: the session was not refused before its delivery")
    freq_err_limit_hz = case.freq_err_limit_hz
    if freq_err_limit_hz is not None and (freq_err_hz is None or freq_err_hz > freq_err_limit_hz):
        problems.append(f"logged frequency {freq_err_hz:.3f} Hz from the true one (at most {freq_err_limit_hz:g})")
    if status != case.expect:
        problems.append(f"status {status}, expected {case.expect}")
    says = (case.says,) if isinstance(case.says, str) else case.says
    if case.says and not any(words in reason for words in says):
        problems.append(f"reason lacks {' or '.join(repr(w) for w in says)}")
    if lies:
        problems.append(f"{lies} windows logged in spec while the plate was out of tolerance")
    if case.over_cap_limit_s is not None and over_cap_s > case.over_cap_limit_s + 1e-9:
        problems.append(f"over the cap {over_cap_s:.3f} s")
    limit_s = case.pty_limit_s if transport == "pty" and case.pty_limit_s is not None else case.limit_s
    if limit_s is not None and (react_s is None or react_s > limit_s + 1e-9):
        problems.append(f"reaction {react_s} s over its {limit_s:g} s")
    if over_cap_s > 0.1 + 1e-9:
        problems.append(f"over the cap {over_cap_s:.3f} s (at most 0.1 s)")
    return Outcome(case.name, preset, transport, status, reason, over_cap_s, react_s, falls_s, rest_s, peak_g, lies,
                   freq_err_hz, delivered_s, case.limit_s, not problems, problems)


def _descent_s(t: np.ndarray, drive: np.ndarray, event_s: float) -> float | None:
    """From the event to the start of the drive's last descent to zero: the first truth row after
    the last rise whose largest drive is lower than the row before (the fall began in that row)."""
    rows = np.flatnonzero(t > event_s + 1e-9)
    if rows.size == 0:
        return None
    rises = [i for i in rows[1:] if drive[i] > drive[i - 1] * (1 + 1e-9)]
    first = rises[-1] + 1 if rises else rows[0]
    for i in range(max(first, 1), len(drive)):
        if drive[i] < drive[i - 1] * 0.999:
            return max(0.0, float(t[i] - 0.1 - event_s))
    return None


def _inside(windows: list[dict], truth: dict):
    """Each logged delivery window with the truth rows inside it (a little in from its ends: over a
    pty the two clocks align to a row or two)."""
    t = truth["t_s"]
    for w in windows:
        if w["phase"] != DELIVER:
            continue
        inside = (t > w["t_s"] + 0.3 + 1e-9) & (t <= w["t_s"] + w["duration_s"] - 0.2 + 1e-9)
        if inside.any():
            yield w, inside


def _lies(windows: list[dict], truth: dict, rx) -> int:
    """Delivery windows logged in spec while the plate was not: its true level over the window (or
    any tenth of a second of it past 1.5 times the tolerance) or its true frequency out of tolerance."""
    count = 0
    tol = rx.tolerance
    for w, inside in _inside(windows, truth):
        if not w["in_spec"]:
            continue
        level = truth["fundamental_g"][inside] / rx.peak_g - 1.0
        frequency = float(truth["frequency_hz"][inside].mean())
        if (abs(level.mean()) > tol.accel_fraction or np.any(np.abs(level) > 1.5 * tol.accel_fraction)
                or abs(frequency - rx.frequency_hz) > tol.frequency_hz):
            count += 1
    return count


def _frequency_error(windows: list[dict], truth: dict) -> float | None:
    """The largest difference between a delivery window's logged frequency and the plate's true one."""
    errors = [abs(w["frequency_hz"] - float(truth["frequency_hz"][inside].mean()))
              for w, inside in _inside(windows, truth) if w.get("frequency_hz") is not None]
    return max(errors) if errors else None


# -- over a pty to firmware_sim --------------------------------------------------------------------------


_URL_TO_ARGS = {"actuator_n": "--actuator-n", "sensors": "--sensors", "fault_sensor": "--fault-sensor"}


def _firmware_args(url_options: str) -> list[str]:
    """sim:// options as `python -m firmware_sim` options."""
    args: list[str] = []
    for item in filter(None, url_options.split("&")):
        name, _, value = item.partition("=")
        if name == "load_cell":
            args += ["--load-cell"] if value == "1" else []
        elif name in _URL_TO_ARGS:
            args += [_URL_TO_ARGS[name], value]
        else:
            raise ValueError(f"no firmware_sim option for {name}")
    return args


def run_pty_case(case: Case, preset_name: str, load_kg: float, workdir: Path, calibrations: Path) -> Outcome:
    """One case over a real pty: firmware_sim in real time with its truth file, `livctl session` as a
    process; stops are real SIGINTs, their moment found in the truth by the host clock."""
    rx = _prescription(preset_name, case)
    load_kg = case.load_kg or load_kg
    truth = workdir / f"pty-{case.name}-{preset_name}.csv"
    platform_args = ["--sensor", "adxl355", "--load-kg", str(load_kg), *_firmware_args(case.url)]
    sim_args = [sys.executable, "-m", "firmware_sim", "--pty", *platform_args, "--truth", str(truth)]
    start_after_on_s = _pty_delivery_start(rx)
    event_after_on_s = start_after_on_s + INTO_DELIVERY_S
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(REPO)]))
    # the board calibrated first, healthy, on a simulator of its own (the fault's clock starts at the
    # first OUTPut ON, which must be the session's); another platform is calibrated apart
    key = re.sub(r"[^A-Za-z0-9.=-]+", "-", f"{preset_name}-{load_kg:g}-{case.url}").strip("-")
    calibration_dir = calibrations / key
    _calibrate_once([sys.executable, "-m", "firmware_sim", "--pty", *platform_args], calibration_dir,
                    rx.frequency_hz, env, two_sensors="sensors=2" in case.url)
    sim_args += list(case.sim_args)
    if case.fault:
        at = 0.0 if case.at_start else event_after_on_s
        sim_args += ["--fault", case.fault, "--fault-at-s", f"{at:.3f}"]
        if case.value is not None:
            sim_args += ["--fault-value", str(case.value)]
    sim = subprocess.Popen(sim_args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        port = sim.stdout.readline().strip()
        log_path = workdir / f"pty-{case.name}-{preset_name}.sqlite"
        session = subprocess.Popen(
            [sys.executable, "-m", "livctl", "session", "--device", _serial_url(port, case), "--freq",
             f"{rx.frequency_hz:g}", "--accel", f"{rx.peak_g:g}", "--minutes", f"{DELIVERY_S / 60:g}",
             "--window", f"{case.window_s:g}", "--log", str(log_path), "--calibration-dir", str(calibration_dir),
             "--json", "--yes"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        signalled: list[float] = []
        if case.stop:
            _wait_for(session.stderr, "delivering")
            time.sleep(INTO_DELIVERY_S)
            signalled.append(time.monotonic())
            session.send_signal(signal.SIGINT)
            if case.second_stop_after_s is not None:
                time.sleep(case.second_stop_after_s)
                signalled.append(time.monotonic())
                session.send_signal(signal.SIGINT)
        out, err = session.communicate(timeout=120)
    finally:
        sim.send_signal(signal.SIGTERM)
        _, sim_log = sim.communicate(timeout=30)
    if not out.strip():
        raise RuntimeError(f"livctl session printed no summary: {err.strip()[-500:]}")
    summary = json.loads(out)
    rows = read_truth(truth)
    if case.stop:
        event_s = float(rows["t_s"][np.searchsorted(rows["host_s"], signalled[0])])
    elif case.fault and not case.at_start:
        found = re.search(r"(\d+\.\d+) s: fault: ", sim_log)
        event_s = float(found.group(1)) if found else math.nan
    else:  # a sensor that lies from the start: from the first drive
        event_s = float(rows["t_s"][np.argmax(rows["drive"] > 0)])
    with DoseLog(log_path, create=False) as log:
        windows = log.windows(summary["session_id"])
    stopped = None
    if summary["status"] != "completed":  # the trip, in board time: where the truth's drive began to fall
        descent = _descent_s(rows["t_s"], rows["drive"], event_s)
        stopped = None if descent is None else event_s + descent
    # windows are in the board's stream time, whose origin differs from the truth's: align on the first drive
    driven = [w["t_s"] for w in windows if w["drive"] > 0]
    offset = float(rows["t_s"][np.argmax(rows["drive"] > 0)]) - min(driven) if driven else 0.0
    shifted = [dict(w, t_s=w["t_s"] + offset) for w in windows]
    return _outcome(case, preset_name, "pty", rx, summary["status"], summary["reason"] or "", summary["delivered_s"],
                    rows, shifted, event_s, stopped)


def _serial_url(port: str, case: Case) -> str:
    """Two accelerometers need a faster link than one (docs/protocol.md, "Link")."""
    return f"serial://{port}" + ("?baud=2000000" if "sensors=2" in case.url else "")


def _pty_delivery_start(rx) -> float:
    """Seconds from the first OUTPut ON to the delivery, measured once on sim:// with the same sensor."""
    with open_platform("sim://?sensor=adxl355", speed=math.inf) as platform:
        seen: list[float] = []
        first_drive: list[float] = []

        def observe(progress) -> None:
            if progress.window.drive > 0 and not first_drive:
                first_drive.append(progress.window.t_s)
            if progress.phase == DELIVER and not seen:
                seen.append(progress.window.t_s)

        short = rx.__class__(rx.frequency_hz, rx.peak_g, 2.0, rx.ramp_s, rx.tolerance, rx.preset)
        run_session(platform, None, SessionRequest(short), observer=observe)
    return seen[0] - (first_drive[0] - 0.2)  # the first step settles 0.2 s before its window


def _calibrate_once(sim_args: list[str], directory: Path, frequency_hz: float, env: dict, *,
                    two_sensors: bool = False) -> None:
    """The board (FWSIM-0001) calibrated over the link into `directory` unless it is there, on a
    simulator started for it: a real platform runs nothing without its calibration."""
    if (directory / "FWSIM-0001.toml").exists():
        return
    sim = subprocess.Popen(sim_args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        port = sim.stdout.readline().strip()
        result = subprocess.run(
            [sys.executable, "-m", "livctl", "calibrate", "--device",
             f"serial://{port}" + ("?baud=2000000" if two_sensors else ""), "--freq", f"{frequency_hz:g}",
             "--steps", "4", "--max-accel", "0.8", "--no-plot", "--quiet", "--calibration-dir", str(directory)],
            capture_output=True, text=True, env=env, timeout=180,
        )
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.communicate(timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"calibrating the board failed: {result.stderr}")


def _wait_for(stream, text: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            raise RuntimeError(f"the session ended before {text!r}")
        if text in line:
            return
    raise RuntimeError(f"no {text!r} within {timeout_s:g} s")


# -- the command -------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pty", action="store_true", help="also run the key cases over a pty (real time, minutes)")
    parser.add_argument("--only", metavar="CASE", action="append", help="run only this case (repeatable)")
    parser.add_argument("--preset", metavar="NAME", action="append", help="only this preset (repeatable)")
    parser.add_argument("--json", action="store_true", help="print the outcomes as JSON")
    args = parser.parse_args(argv)
    cases = [c for c in CASES if not args.only or c.name in args.only]
    presets = [p for p in PRESETS if not args.preset or p[0] in args.preset]
    outcomes: list[Outcome] = []
    if not args.json:
        print(f"faults and stops {INTO_DELIVERY_S:g} s into the delivery; times in s; 'over' is time over the 1 g cap")
        print(HEADER)
        print("-" * len(HEADER))
    with tempfile.TemporaryDirectory(prefix="livctl-fault-matrix-") as tmp:
        workdir = Path(tmp)
        for case in cases:
            for preset, load in presets:
                if case.presets and preset not in case.presets:
                    continue
                outcome = run_sim_case(case, preset, load, workdir)
                outcomes.append(outcome)
                if not args.json:
                    print(outcome.row(), flush=True)
        if args.pty:
            calibrations = workdir / "calibration"
            for case in (c for c in cases if c.pty):
                for preset, load in presets:
                    if case.presets and preset not in case.presets:
                        continue
                    outcome = run_pty_case(case, preset, load, workdir, calibrations)
                    outcomes.append(outcome)
                    if not args.json:
                        print(outcome.row(), flush=True)
    if args.json:
        print(json.dumps([vars(o) for o in outcomes], indent=2))
    failed = [o for o in outcomes if not o.ok]
    if not args.json:
        print(f"{len(outcomes) - len(failed)} of {len(outcomes)} cases met their limits")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
