"""The fault matrix: every fault the simulator can inject, through the real `livctl session`.

For each fault the test reads the plate's true acceleration from the simulator and checks how
long the platform kept moving after the fault, the largest level it reached, what the dose log
says (status, reason, delivered seconds against the fault time) and the exit code. Then every
case of scripts/fault_matrix.py on each reference preset (its limits: time over the cap, the
reaction times docs/safety.md states, no window logged in spec while the plate was not), and its
key cases over a pty to firmware_sim in real time.
"""

import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import livctl.platforms
from conftest import livctl_env, run_livctl
from livctl.records.doselog import DoseLog

G = 9.80665
TARGET_G = 0.3
FAULT_AT_S = 20.0
"""Platform time of the fault: the delivery starts after the sensor check, pre-check and ramp."""

# fault: status, words in the reason, exit code, longest fault -> stopped (s), highest level after (g)
MATRIX = {
    "sensor_stall": ("aborted", "frozen", 1, 2.8, 0.32),
    "sensor_unplug": ("aborted", "absent", 1, 2.8, 0.32),
    # rail values in the board's own samples trip it within two cycles: it cannot tell them from motion
    "corrupt": ("aborted", "own over-acceleration trip", 1, 0.6, 0.32),  # cut, then the plate rings down
    "link_drop": ("aborted", "link lost", 1, 1.2, 0.32),
    "actuator_failure": ("aborted", "response fell", 1, 1.0, 0.32),
    # the gain trebles: 0.9 g, under the cap; the loop's request falls under 1/1.75 of the pre-check's
    "resonance": ("aborted", "step off", 1, 1.0, 0.999),
    "step_off": ("aborted", "step off", 1, 1.0, 0.999),
    # one sensor cannot tell its drift from the plate's: 4 s with the response moved 7 % stop it
    "drift": ("aborted", "sensor check: the platform's response", 1, 15.0, 0.34),
    "frequency_shift": ("aborted", "outside 30 +- 1 Hz", 1, 4.5, 0.33),
    "distortion": ("aborted", "THD", 1, 4.5, 0.5),
    "load_step": ("aborted", "sensor check: the platform's response", 1, 7.0, 0.32),
    # the sensor repeats the second before: stopped in the next block
    "replay": ("aborted", "replaying old data", 1, 2.8, 0.32),
    # a neighbour at 30.05 Hz, delivering what this plate did: its phase drifts from the drive
    "foreign_sensor": ("aborted", "does not see this platform", 1, 5.0, 0.32),
    "noise_burst": ("completed", None, 0, None, 0.32),
}


import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("fault_matrix", Path(__file__).resolve().parents[1] / "scripts" / "fault_matrix.py")
fault_matrix = importlib.util.module_from_spec(_spec)
sys.modules["fault_matrix"] = fault_matrix  # its dataclasses look their module up
_spec.loader.exec_module(fault_matrix)


@pytest.fixture
def captured(monkeypatch):
    """Keep the platform `livctl session` opens, recording its true acceleration."""
    platforms = []
    real_open = livctl.platforms.open_platform

    def open_and_record(url, **kwargs):
        platform = real_open(url, **kwargs)
        platform.device.record_truth()
        platforms.append(platform)
        return platform

    monkeypatch.setattr(livctl.platforms, "open_platform", open_and_record)
    return platforms


def _levels(truth_mps2: np.ndarray, rate_hz: float, block_s: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """End time and peak g of the 30 Hz fundamental of consecutive short blocks."""
    n = int(block_s * rate_hz)
    k = truth_mps2.shape[0] // n
    blocks = np.nan_to_num(truth_mps2[: k * n]).reshape(k, n)
    t = np.arange(n) / rate_hz
    design = np.column_stack([np.ones(n), np.cos(2 * np.pi * 30 * t), np.sin(2 * np.pi * 30 * t)])
    coef = np.linalg.lstsq(design, blocks.T, rcond=None)[0]
    return (np.arange(k) + 1) * block_s, np.hypot(coef[1], coef[2]) / G


@pytest.mark.parametrize("fault", sorted(MATRIX))
def test_fault_matrix(fault, cli, captured, log_path):
    status, words, exit_code, stop_within_s, highest_g = MATRIX[fault]
    url = f"sim://?fault={fault}&fault_at_s={FAULT_AT_S}"
    result = cli("session", "--device", url, "--minutes", "1", "--speed", "max", "--log", str(log_path),
                 "--json", "--quiet")
    summary = json.loads(result.out)
    (platform,) = captured
    device = platform.device
    device.advance(int(3 * device.rate_hz))  # the world goes on for 3 s after livctl is done

    assert result.code == exit_code, result
    assert summary["status"] == status
    if words:
        assert words in summary["reason"]
    with DoseLog(log_path, create=False) as log:
        record = log.find_session(summary["session_id"])
        windows = log.windows(summary["session_id"])
    assert record["status"] == status and record["reason"] == summary["reason"]

    t, level = _levels(device.true_accel_mps2(), device.rate_hz)
    after = t > FAULT_AT_S
    assert level[after].max() <= highest_g
    delivery_start = min(w["t_s"] for w in windows if w["phase"] == "deliver")
    delivered_before_fault = FAULT_AT_S - delivery_start
    if stop_within_s is None:
        assert summary["delivered_s"] == pytest.approx(60.0)
        assert summary["in_spec"] is True
        return
    moving = after & (level > 0.01 * TARGET_G)
    stopped_after_s = (t[moving].max() if moving.any() else FAULT_AT_S) - FAULT_AT_S
    assert stopped_after_s <= stop_within_s
    # the log counts what was delivered up to the trip, no more: fault time plus the reaction
    assert delivered_before_fault - 0.5 <= summary["delivered_s"] <= delivered_before_fault + stop_within_s
    assert sum(w["duration_s"] for w in windows if w["phase"] == "deliver") == pytest.approx(summary["delivered_s"])


def test_a_lost_link_leaves_stopping_to_the_boards_watchdog(cli, captured, log_path):
    url = f"sim://?fault=link_drop&fault_at_s={FAULT_AT_S}"
    cli("session", "--device", url, "--minutes", "1", "--speed", "max", "--log", str(log_path), "--quiet")
    device = captured[0].device
    device.advance(int(3 * device.rate_hz))
    t, level = _levels(device.true_accel_mps2(), device.rate_hz)
    # no command reaches the board after the link drops: it keeps the level...
    held = (t > FAULT_AT_S + 0.05) & (t <= FAULT_AT_S + 0.45)
    assert level[held] == pytest.approx(TARGET_G, rel=0.02)
    # ...until its watchdog (0.5 s) ramps the drive down (0.5 s)
    assert level[t > FAULT_AT_S + 1.05].max() <= 0.01 * TARGET_G


def test_over_level_cuts_the_drive_at_once(cli, captured, log_path):
    # a platform profile without the response-rise interlock: the over-level check must act alone
    profile = log_path.parent / "profile.toml"
    profile.write_text("[safety]\nover_level_s = 0.25\n")
    url = f"sim://?fault=step_off&fault_at_s={FAULT_AT_S}"
    result = cli("session", "--device", url, "--minutes", "1", "--speed", "max", "--log", str(log_path),
                 "--profile", str(profile), "--loop-gain", "1", "--json", "--quiet")
    assert result.code == 1
    device = captured[0].device
    device.advance(int(3 * device.rate_hz))  # the world goes on
    t, level = _levels(device.true_accel_mps2(), device.rate_hz)
    # whichever interlock fired, the drive was cut: no 2 s ramp from an over-driven level
    assert level[t > FAULT_AT_S + 1.0].max() <= 0.01 * TARGET_G


def test_a_killed_session_is_closed_as_interrupted_by_the_next_livctl(log_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "livctl", "session", "--device", "sim://", "--minutes", "5", "--speed", "1",
         "--log", str(log_path), "--subject", "K-1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=livctl_env(),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if line.startswith("delivering"):
            break
    time.sleep(2.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)

    with DoseLog(log_path, create=False) as log:
        (running,) = log.sessions()
    assert running["status"] == "running"  # nobody could write its end

    listing = run_livctl("log", "--log", str(log_path), "--json")
    assert listing.returncode == 0
    (session,) = json.loads(listing.stdout)
    assert "left unfinished by a livctl process that died" in listing.stderr
    assert session["status"] == "interrupted"
    assert f"pid {proc.pid}" in session["reason"] and "last logged window" in session["reason"]
    with DoseLog(log_path, create=False) as log:
        windows = log.windows(session["session_id"])
    delivered = sum(w["duration_s"] for w in windows if w["phase"] == "deliver")
    assert delivered >= 1.0 and session["delivered_s"] == pytest.approx(delivered)
    # closing it is done once: a second look changes nothing
    again = run_livctl("log", "--log", str(log_path), "--json")
    assert json.loads(again.stdout) == [session] and again.stderr == ""


def test_a_running_session_of_a_live_process_is_left_alone(log_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "livctl", "session", "--device", "sim://", "--minutes", "5", "--speed", "1",
         "--log", str(log_path), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=livctl_env(),
    )
    try:
        deadline = time.monotonic() + 30
        sessions = []
        while time.monotonic() < deadline and not sessions:
            time.sleep(0.2)
            if os.path.exists(log_path):
                listing = run_livctl("log", "--log", str(log_path), "--json")
                sessions = json.loads(listing.stdout) if listing.returncode == 0 else []
        assert sessions and sessions[0]["status"] == "running"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)


@pytest.mark.parametrize(
    "url, fragment",
    [
        ("sim://?fault=meteor", "fault='meteor'"),
        ("sim://?fault_at_s=3", "need fault=NAME"),
        ("sim://?fault=corrupt&fault_value=2", "share of samples"),
        ("sim://?fault=resonance&fault_at_s=-1", "fault_at_s='-1'"),
        ("sim://?fault=sensor_stall&fault_at_s=1e308", "fault time must be 0 to 1e+06 s"),
        ("sim://?fault=link_drop&fault_at_s=1e308", "fault time must be 0 to 1e+06 s"),
        ("sim://?fault=resonance&fault_value=1e308", "resonance takes a value from 0.001 to 100"),
        ("sim://?fault=load_step&fault_value=1e308", "load_step takes a value from 0.001 to 10"),
    ],
)
def test_bad_fault_options_are_usage_errors(cli, log_path, url, fragment):
    result = cli("session", "--device", url, "--minutes", "1", "--speed", "max", "--log", str(log_path))
    assert result.code == 2 and fragment in result.err and len(result.err.strip().splitlines()) == 1


# -- scripts/fault_matrix.py: every case on each reference preset ------------------------------------

SIM_CASES = [
    pytest.param(case, preset, load, id=f"{case.name}-{preset}")
    for case in fault_matrix.CASES
    for preset, load in fault_matrix.PRESETS
    if not case.presets or preset in case.presets
]


@pytest.mark.parametrize("case, preset, load", SIM_CASES)
def test_each_case_of_the_fault_matrix_meets_its_limits_on_the_truth(case, preset, load, tmp_path):
    outcome = fault_matrix.run_sim_case(case, preset, load, tmp_path)
    assert outcome.ok, outcome.row()
    assert outcome.over_cap_s <= 0.1  # at most 0.1 s over the cap, on the plate's truth, in every case
    if case.name.startswith("resonance"):
        assert outcome.over_cap_s > 0 and outcome.peak_g > 1.0  # the fault really went over: the trip acted


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resonance-x5", "second-stop"])
def test_key_cases_over_a_pty_meet_their_limits_on_the_truth(name, tmp_path):
    case = next(c for c in fault_matrix.CASES if c.name == name)
    outcome = fault_matrix.run_pty_case(case, "human-30hz-0.4g", 70.0, tmp_path, tmp_path / "calibration")
    assert outcome.ok, outcome.row()
