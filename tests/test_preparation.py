"""Session preparation lives in the core: a script gets exactly the refusals the command gets.

Each case is refused twice, by `livctl session` (exit 2, one line) and by
`livctl.procedures.prepare.prepare_session` from Python (UsageError), with the same message, and in
neither case does anything move or get logged."""

from __future__ import annotations

import math

import pytest

from fwsim import FirmwareSim
from livctl.platforms import open_platform
from livctl.records.doselog import DoseLog
from livctl.errors import UsageError
from livctl.procedures.prepare import SessionRequest, prepare_session
from livctl.prescription import Prescription
from livctl.procedures.safety import SafetyLimits


def _api_refusal(url: str, log_path, request: SessionRequest, *, speed=math.inf) -> str:
    with DoseLog(log_path) as log, open_platform(url, speed=speed) as platform:
        with pytest.raises(UsageError) as refused:
            prepare_session(platform, log, request)
        assert log.sessions() == []
        if platform.simulated:
            assert platform.device.drive_level == 0.0 and platform.device.samples_done < 4000  # nothing ran
    return str(refused.value)


def _cli_refusal(cli, *args: str) -> str:
    result = cli("session", *args)
    assert result.code == 2 and result.err.count("\n") == 1, result
    assert result.err.startswith("livctl: error: ")
    return result.err[len("livctl: error: "):].rstrip("\n")


@pytest.mark.parametrize(
    "args, request_fields",
    [
        (["--window", "20"], dict(window_s=20.0)),
        (["--window", "0.2", "--freq", "30", "--accel", "0.3"], dict(window_s=0.2, prescription=Prescription(30.0, 0.3, 600.0))),
        (["--freq", "10", "--accel", "0.3", "--window", "0.3"], dict(window_s=0.3, prescription=Prescription(10.0, 0.3, 600.0))),
        (["--override-reason", "make-up"], dict(override_reason="make-up")),
    ],
    ids=["window-too-long", "window-too-short", "window-under-four-cycles", "override-without-a-subject"],
)
def test_the_same_refusal_from_the_command_and_from_a_script(cli, log_path, args, request_fields):
    from_cli = _cli_refusal(cli, "--device", "sim://", "--speed", "max", "--log", str(log_path), *args)
    from_api = _api_refusal("sim://", log_path, SessionRequest(**request_fields))
    assert from_cli == from_api


def test_a_prescription_over_a_profiles_cap_is_refused_alike(cli, log_path, tmp_path):
    profile = tmp_path / "platform.toml"
    profile.write_text("[safety]\naccel_cap_g = 0.5\n")
    from_cli = _cli_refusal(cli, "--device", "sim://", "--speed", "max", "--log", str(log_path),
                            "--profile", str(profile), "--freq", "30", "--accel", "0.6")
    from_api = _api_refusal("sim://", log_path, SessionRequest(Prescription(30.0, 0.6, 600.0),
                                                               limits=SafetyLimits(accel_cap_g=0.5)))
    assert from_cli == from_api and "above the safety cap of 0.5 g peak" in from_api


def test_an_unknown_subject_is_refused_alike_once_the_log_holds_subjects(cli, log_path):
    assert cli("subject", "add", "P-017", "--kind", "human", "--log", str(log_path)).code == 0
    from_cli = _cli_refusal(cli, "--device", "sim://", "--speed", "max", "--log", str(log_path),
                            "--subject", "P-71")
    from_api = _api_refusal("sim://", log_path, SessionRequest(subject="P-71"))
    assert from_cli == from_api and "P-71" in from_api


def _refused_alike_on_a_board(cli, log_path, tmp_path, calibration_dir: str) -> str:
    """A real platform (firmware_sim on a pty) refused by the command and by a script; its output
    never came on."""
    sim = FirmwareSim(tmp_path / "board")
    try:
        from_cli = _cli_refusal(cli, "--device", sim.url(), "--log", str(log_path), "--calibration-dir", calibration_dir)
        from_api = _api_refusal(sim.url(), log_path, SessionRequest(calibration_dir=calibration_dir), speed=None)
    finally:
        stats = sim.stop()
    assert from_cli == from_api and stats["output_ever_on"] is False
    return from_api


def test_a_real_platform_without_a_calibration_is_refused_alike(cli, log_path, tmp_path):
    refusal = _refused_alike_on_a_board(cli, log_path, tmp_path, str(tmp_path / "none"))
    assert "platform 'FWSIM-0001' has no calibration" in refusal


def test_a_simulators_calibration_is_refused_for_a_real_platform_alike(cli, log_path, tmp_path):
    assert cli("calibrate", "--device", "sim://?id=FWSIM-0001", "--speed", "max", "--no-plot", "--quiet",
               "--calibration-dir", str(tmp_path / "cal")).code == 0
    refusal = _refused_alike_on_a_board(cli, log_path, tmp_path, str(tmp_path / "cal"))
    assert "was made on a simulated platform" in refusal


def test_a_session_runs_only_a_prepared_plan():
    from livctl.procedures.session import Session

    with open_platform("sim://", speed=math.inf) as platform, pytest.raises(TypeError, match="SessionPlan"):
        Session(Prescription(30.0, 0.3, 60.0), platform)


def test_the_plan_carries_the_calibrations_ceiling_and_the_regimens_signal(cli, rig, log_path):
    # a regimen prescribes the signal when none is asked for; the calibration sets the ceiling
    url = rig("rig")
    assert cli("subject", "add", "M-3", "--kind", "animal", "--regimen", "mouse-90hz-0.3g", "--weeks", "4", "--log",
               str(log_path)).code == 0
    with DoseLog(log_path) as log, open_platform(url) as platform:
        plan = prepare_session(platform, log, SessionRequest(subject="M-3", override_reason="any day of the week"))
        assert (plan.prescription.frequency_hz, plan.prescription.peak_g) == (90.0, 0.3)
        assert plan.regimen is not None and plan.admit is not None
        # calibrated at 30 Hz only: no response that applies at 90 Hz, and a warning that says so
        assert plan.motion.reference_gain_mps2_per_drive is None
        assert any("not 90 Hz" in w for w in plan.motion.warnings)


# -- practice, subjects and operators: refusals of the core, worded with the options by the command --


def test_a_simulated_session_for_a_registered_subject_is_refused_unless_practice(cli, log_path):
    assert cli("subject", "add", "P-017", "--kind", "human", "--log", str(log_path)).code == 0
    from_cli = _cli_refusal(cli, "--device", "sim://?id=bench-A", "--speed", "max", "--log", str(log_path),
                            "--subject", "P-017")
    from_api = _api_refusal("sim://?id=bench-A", log_path, SessionRequest(subject="P-017"))
    problem = "P-017 is a registered subject and sim://?id=bench-A is a simulated platform: a simulated session is " \
              "never a dose"
    assert from_cli.startswith(problem) and "give --practice to log it as practice" in from_cli
    assert from_api.startswith(problem) and "give SessionRequest.practice" in from_api
    with DoseLog(log_path) as log, open_platform("sim://?id=bench-A", speed=math.inf) as platform:
        plan = prepare_session(platform, log, SessionRequest(subject="P-017", practice=True))
        assert plan.practice and plan.admit is None


def test_practice_on_a_real_platform_is_refused_alike(cli, rig, log_path):
    url = rig("rig-2")
    from_cli = _cli_refusal(cli, "--device", url, "--log", str(log_path), "--practice", "--yes")
    from_api = _api_refusal(url, log_path, SessionRequest(practice=True), speed=None)
    assert from_cli == from_api and "is a real platform: what it delivers is dose" in from_api


def test_an_unknown_subject_is_refused_with_the_nearest_ids(cli, log_path):
    for subject in ("P-017", "P-018", "S-9", "M-1"):
        assert cli("subject", "add", subject, "--kind", "human", "--log", str(log_path)).code == 0
    from_cli = _cli_refusal(cli, "--device", "sim://", "--speed", "max", "--log", str(log_path), "--subject", "S9-typo",
                            "--practice")
    from_api = _api_refusal("sim://", log_path, SessionRequest(subject="S9-typo", practice=True))
    assert from_cli == from_api and "no subject 'S9-typo'" in from_api and "did you mean S-9?" in from_api
    suggestion = _cli_refusal(cli, "--device", "sim://", "--speed", "max", "--log", str(log_path), "--subject", "P-01",
                              "--practice")
    assert "did you mean P-017 or P-018?" in suggestion


def test_a_station_that_requires_an_operator_refuses_a_session_without_one(cli, log_path, tmp_path, monkeypatch):
    config = tmp_path / "config" / "livctl" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("require_operator = true\n")
    from_cli = _cli_refusal(cli, "--device", "sim://", "--speed", "max", "--log", str(log_path))
    from_api = _api_refusal("sim://", log_path, SessionRequest(require_operator=True))
    assert from_cli.startswith("this station requires a named operator") and from_cli.endswith("give --operator NAME")
    assert from_api.startswith("this station requires a named operator")
    monkeypatch.setenv("LIVCTL_OPERATOR", "ana")  # named: never the login of a shared account
    ran = cli("session", "--device", "sim://", "--speed", "max", "--minutes", "0.1", "--quiet", "--json",
              "--log", str(log_path))
    assert ran.code == 0 and '"operator": "ana"' in ran.out
