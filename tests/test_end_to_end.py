"""Whole sessions through the real `livctl` process: a full 20 minutes, and interruptions."""

import json
import signal
import subprocess
import sys
import time

import pytest

from conftest import livctl_env, run_livctl
from livctl.records.doselog import DoseLog


def test_a_full_twenty_minute_session_delivers_the_prescribed_dose(log_path):
    result = run_livctl("session", "--device", "sim://", "--minutes", "20", "--speed", "max",
                        "--subject", "P-001", "--log", str(log_path), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "completed" and summary["in_spec"] is True
    assert summary["delivered_s"] == pytest.approx(1200.0)
    assert summary["mean_frequency_hz"] == pytest.approx(30.0, abs=0.05)
    assert summary["mean_peak_g"] == pytest.approx(0.3, rel=0.03)
    assert summary["in_spec_fraction"] == pytest.approx(1.0)
    # progress was shown while it ran: one line a minute when stderr is not a terminal
    assert result.stderr.count("delivering") >= 20

    with DoseLog(log_path, create=False) as log:
        (record,) = log.sessions()
        windows = log.windows(record["session_id"])
    assert record["session_id"] == summary["session_id"] and record["subject"] == "P-001"
    delivery = [w for w in windows if w["phase"] == "deliver"]
    assert len(delivery) == 1200
    assert all(w["in_spec"] for w in delivery)
    assert sum(w["peak_g"] for w in delivery) / 1200 == pytest.approx(summary["mean_peak_g"], rel=1e-9)


def _start_real_time_session(log_path, *extra):
    return subprocess.Popen(
        [sys.executable, "-m", "livctl", "session", "--device", "sim://", "--minutes", "5", "--speed", "1",
         "--log", str(log_path), "--json", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=livctl_env(),
    )


def _wait_for_delivery(proc, timeout_s=60.0):
    """Read progress lines until the session is delivering (pre-check and ramp-up are done)."""
    deadline = time.monotonic() + timeout_s
    lines = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("delivering"):
            return lines
    proc.kill()
    pytest.fail(f"session never started delivering: {''.join(lines)}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_real_time_session_ramps_down_and_logs_the_partial_dose(log_path, sig):
    proc = _start_real_time_session(log_path)
    _wait_for_delivery(proc)
    time.sleep(2.5)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    summary = json.loads(out)
    assert summary["status"] == "interrupted"
    assert summary["reason"] == f"stopped by {sig.name}"
    # about 3.5 s were delivered (the first delivery window, the sleep, the window in progress)
    assert 2.0 <= summary["delivered_s"] <= 6.0
    assert "ramping down" in err

    with DoseLog(log_path, create=False) as log:
        record = log.find_session(summary["session_id"])
        windows = log.windows(summary["session_id"])
    assert record["status"] == "interrupted" and record["delivered_s"] == summary["delivered_s"]
    delivered = sum(w["duration_s"] for w in windows if w["phase"] == "deliver")
    assert delivered == pytest.approx(summary["delivered_s"])
    ramp_down = [w for w in windows if w["phase"] == "ramp_down"]
    assert ramp_down and ramp_down[-1]["drive"] == 0.0
    # the ramp down took the platform's measured level towards zero
    assert ramp_down[-1]["peak_g"] is None or ramp_down[-1]["peak_g"] < 0.2


def test_interrupted_sessions_show_up_in_the_log_listing(log_path):
    proc = _start_real_time_session(log_path, "--subject", "P-2")
    _wait_for_delivery(proc)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    listing = run_livctl("log", "--log", str(log_path))
    assert listing.returncode == 0
    assert "interrupted" in listing.stdout and "P-2" in listing.stdout
