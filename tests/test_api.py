"""The public API: the same refusals as the command, enums that compare and store as strings, one
observer for sessions and calibrations, the device named by the environment when no URL is given."""

from __future__ import annotations

import json
import math

import pytest

import livctl
from livctl import Phase, SessionRequest, SessionStatus


def test_a_refusal_through_the_api_is_the_commands_refusal(cli, tmp_path):
    log_path = tmp_path / "doses.sqlite"
    with livctl.open_log(log_path) as log:
        log.add_subject("P-1", kind="human")
    with livctl.open_log(log_path) as log, livctl.open_platform("sim://", speed=math.inf) as platform:
        with pytest.raises(livctl.SessionRefused) as refused:
            livctl.run_session(platform, log, SessionRequest(subject="P-1", operator="A"))
    assert refused.value.field == "practice"
    result = cli("session", "--device", "sim://", "--speed", "max", "--subject", "P-1", "--operator", "A",
                 "--log", str(log_path), "--quiet")
    assert result.code == 2
    assert result.err.strip().splitlines()[-1] == f"livctl: error: {refused.value.worded('--practice')}"


def test_a_prescription_over_the_cap_is_refused_in_the_same_words(cli, tmp_path):
    with livctl.open_platform("sim://", speed=math.inf) as platform:
        with pytest.raises(livctl.UsageError) as refused:
            livctl.run_session(platform, None, SessionRequest(prescription=livctl.Prescription(30.0, 1.5, 60.0)))
    result = cli("session", "--device", "sim://", "--speed", "max", "--freq", "30", "--accel", "1.5",
                 "--minutes", "1", "--log", str(tmp_path / "doses.sqlite"), "--quiet")
    assert result.code == 2 and result.err.strip().splitlines()[-1] == f"livctl: error: {refused.value}"


def test_phases_and_statuses_are_enums_that_compare_and_store_as_strings(tmp_path):
    phases, entered = [], []

    class Phases:
        def on_window(self, progress):
            phases.append(progress.phase)

        def on_phase(self, phase, frequency_hz):
            entered.append((phase, frequency_hz))

    request = SessionRequest(prescription=livctl.Prescription(30.0, 0.3, 6.0), operator="A")
    with livctl.open_platform("sim://", speed=math.inf) as platform, livctl.open_log(tmp_path / "d.sqlite") as log:
        result = livctl.run_session(platform, log, request, observer=Phases())
        stored = log.find_session(result.session_id)
        windows = log.windows(result.session_id)
    assert result.status is SessionStatus.COMPLETED and result.status == "completed" == stored["status"]
    assert json.loads(json.dumps({"status": result.status})) == {"status": "completed"}
    assert all(isinstance(p, Phase) for p in phases) and Phase.DELIVER in phases
    assert {w["phase"] for w in windows} <= {p.value for p in Phase} and "deliver" in {w["phase"] for w in windows}
    # each phase told once, as the session enters it, in order, before its windows
    assert entered == [(p, 30.0) for p in (Phase.PRECHECK, Phase.RAMP_UP, Phase.DELIVER, Phase.RAMP_DOWN)]
    assert [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p] == [p for p, _ in entered]


def test_one_observer_serves_a_calibration(tmp_path):
    seen = {"status": 0, "block": 0, "window": [], "phase": []}

    class Watch:
        def on_status(self, text):
            seen["status"] += 1

        def on_block(self, block):
            seen["block"] += 1

        def on_window(self, progress):
            seen["window"].append(progress)

        def on_phase(self, phase, frequency_hz):
            seen["phase"].append((phase, frequency_hz))

    assert isinstance(Watch(), livctl.Observer)
    with livctl.open_platform("sim://?id=obs", speed=math.inf) as platform:
        cal = livctl.calibrate(platform, livctl.SweepSettings(steps=3, top_accel_g=0.5),
                               calibration_dir=tmp_path, observer=Watch())
    assert seen["status"] and seen["block"] > 10
    assert all(isinstance(s, livctl.CalibrationStep) and s.frequency_hz == 30.0 for s in seen["window"])
    assert seen["phase"] == [(Phase.SWEEP, 30.0)]
    assert len(seen["window"]) >= 3 and livctl.find_calibration("obs", tmp_path).calibration_id == cal.calibration_id


def test_a_stopped_calibration_writes_nothing(tmp_path):
    stop = livctl.StopSignal()

    class StopAtFirstStep:
        def on_window(self, progress):
            stop.request("enough")

    with livctl.open_platform("sim://?id=stopped", speed=math.inf) as platform:
        with pytest.raises(livctl.CalibrationInterrupted):
            livctl.calibrate(platform, calibration_dir=tmp_path, observer=StopAtFirstStep(), stop=stop)
    assert livctl.find_calibration("stopped", tmp_path) is None
    assert not any(tmp_path.rglob("*.h5"))


def test_without_a_url_the_device_comes_from_the_environment(monkeypatch):
    with pytest.raises(livctl.UsageError, match="no device named"):
        livctl.open_platform()
    monkeypatch.setenv("LIVCTL_DEVICE", "sim://?id=from-env")
    assert livctl.open_platform().platform_id == "from-env"


def test_a_speed_for_a_real_platform_names_the_parameter_and_the_command_its_option(cli):
    with pytest.raises(livctl.UsageError) as refused:
        livctl.open_platform("serial:///dev/ttyUSB0", speed=2.0)
    assert str(refused.value).startswith("speed applies to the simulator")
    result = cli("session", "--device", "serial:///dev/ttyUSB0", "--speed", "2")
    assert result.code == 2 and "livctl: error: --speed applies to the simulator (sim://) only" in result.err


def test_import_livctl_loads_nothing_heavy():
    import subprocess
    import sys

    from conftest import livctl_env

    heavy = "('numpy', 'livctl.api', 'livctl.procedures')"
    code = f"import sys, livctl; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=livctl_env(), check=True)
    assert out.stdout.strip() == "[]"
