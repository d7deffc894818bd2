"""`livctl calibrate`, `livctl calibration show`, and sessions that load calibrations."""

import json
import re
import signal
import subprocess
import sys
import time

import pytest
import tomli_w

from conftest import livctl_env, run_livctl
from livctl import platforms
from livctl.records.doselog import DoseLog


def calibrate(cli, tmp_path, *extra, device="sim://?seed=1"):
    return cli("calibrate", "--device", device, "--speed", "max", "--no-plot",
               "--calibration-dir", str(tmp_path / "cal"), *extra)


def test_calibrate_writes_the_file_and_prints_a_summary(cli, tmp_path):
    result = calibrate(cli, tmp_path, "--load-kg", "70", "--operator", "ana", "--sensor", "ADXL345 #3")
    assert result.code == 0, result
    path = tmp_path / "cal" / "sim.toml"
    assert path.exists()
    assert f"of platform sim written to {path}" in result.out
    assert "gain" in result.out and "g peak per full drive" in result.out and "largest safe drive" in result.out
    # progress on stderr: the sensor check and each step
    assert re.search(r"sensor at rest: gravity \+(1\.00|0\.99)\d g on z, noise \d+\.\d mg RMS", result.err)
    assert result.err.count("% drive:") >= 8
    shown = cli("calibration", "show", "sim", "--calibration-dir", str(tmp_path / "cal"))
    assert shown.code == 0, shown
    assert "operator" not in shown.err and "by ana" in shown.out and "ADXL345 #3" in shown.out
    assert "drive %" in shown.out and "residual g" in shown.out  # the step table


def test_calibrate_json_and_show_json_agree(cli, tmp_path):
    result = calibrate(cli, tmp_path, "--json", "--quiet", "--also-at", "28,32", device="sim://?seed=2&id=rig-2")
    assert result.code == 0, result
    assert result.err == ""
    out = json.loads(result.out)
    assert out["status"] == "completed" and out["path"].endswith("rig-2.toml")
    cal = out["calibration"]
    assert cal["platform_id"] == "rig-2" and [p["frequency_hz"] for p in cal["points"]] == [30.0, 28.0, 32.0]
    shown = json.loads(cli("calibration", "show", out["path"], "--json").out)
    assert shown["calibration_id"] == cal["calibration_id"] and shown["date_utc"].endswith("Z")
    assert shown["points"][0]["gain_g_per_drive"] == pytest.approx(cal["points"][0]["gain_g_per_drive"], rel=1e-12)


def test_an_existing_calibration_is_kept_unless_forced(cli, tmp_path):
    assert calibrate(cli, tmp_path, "--quiet").code == 0
    path = tmp_path / "cal" / "sim.toml"
    before = path.read_text()
    again = calibrate(cli, tmp_path, device="sim://?seed=5")
    assert again.code == 2 and "already exists; pass --force" in again.err
    assert "sensor at rest" not in again.err  # refused before the sweep
    assert path.read_text() == before
    forced = calibrate(cli, tmp_path, "--force", "--quiet", device="sim://?seed=5")
    assert forced.code == 0 and path.read_text() != before


@pytest.mark.parametrize("args, message", [
    (["--max-accel", "1.5"], "would exceed the 1 g safety cap"),
    (["--levels", "10,150"], "drive level 150 % is outside"),
    (["--freq", "5"], "outside 10-200 Hz"),
    (["--plot-png", "view.jpg"], "must end in .png"),
    (["--no-plot", "--plot-png", "view.png"], "drop --no-plot"),
])
def test_bad_calibrate_arguments_exit_2_before_anything_moves(cli, tmp_path, args, message):
    result = cli("calibrate", "--device", "sim://", "--speed", "max", "--calibration-dir", str(tmp_path), *args)
    assert result.code == 2 and message in result.err, result
    assert "sensor at rest" not in result.err and "Traceback" not in result.err
    assert list(tmp_path.iterdir()) == []


def test_calibrate_needs_a_device(cli):
    result = cli("calibrate", "--no-plot")
    assert result.code == 2 and "no device chosen" in result.err


def test_a_sweep_that_would_pass_the_cap_fails_with_exit_1_and_writes_nothing(cli, tmp_path):
    result = calibrate(cli, tmp_path, "--levels", "10,30,90", "--json")
    assert result.code == 1
    out = json.loads(result.out)
    assert out["status"] == "failed" and out["kind"] == "cap"
    assert "would exceed the cap" in result.err
    assert not (tmp_path / "cal" / "sim.toml").exists()


def test_a_platform_too_strong_to_set_a_dose_on_fails_and_writes_nothing(cli, tmp_path):
    """1250 times the simulator's default: the cap at 0.05 % of full drive. A calibration no session
    may read (its largest safe drive under 0.1 %) is a failure, not a file."""
    result = calibrate(cli, tmp_path, device="sim://?actuator_n=1000000")
    assert result.code == 1, result.err
    assert "calibration failed: 30 Hz: the platform reaches the 1 g cap at 0.05" in result.err
    assert "lower the amplifier's gain" in result.err
    assert not (tmp_path / "cal").exists() or not any((tmp_path / "cal").iterdir())


def test_a_platform_that_does_not_respond_fails_with_exit_1(cli, tmp_path):
    result = calibrate(cli, tmp_path, device="sim://?actuator_n=0.01")
    assert result.code == 1 and "calibration failed: the platform does not respond" in result.err
    assert not (tmp_path / "cal").exists() or not any((tmp_path / "cal").iterdir())


@pytest.mark.parametrize("content, message", [
    ("format = = 1\n", "is not valid TOML"),
    ("format = 1\n", "missing sensor; recalibrate or restore the file"),
    (None, "format 99, newer than this livctl reads"),
])
def test_calibration_show_reports_a_bad_file_in_one_line(cli, tmp_path, content, message):
    path = tmp_path / "cal" / "sim.toml"
    if content is None:
        assert calibrate(cli, tmp_path, "--quiet").code == 0
        content = path.read_text().replace("format = 1", "format = 99")
    path.parent.mkdir(exist_ok=True)
    path.write_text(content)
    result = cli("calibration", "show", "sim", "--calibration-dir", str(tmp_path / "cal"))
    assert result.code == 2 and message in result.err
    assert result.err.count("\n") == 1 and result.out == ""


def test_calibration_show_of_a_missing_platform_says_how_to_make_one(cli, tmp_path):
    result = cli("calibration", "show", "nowhere", "--calibration-dir", str(tmp_path))
    assert result.code == 2 and "no calibration of platform 'nowhere'" in result.err and "livctl calibrate" in result.err


def test_calibration_directory_comes_from_the_environment(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("LIVCTL_CALIBRATION_DIR", str(tmp_path / "env-cal"))
    result = cli("calibrate", "--device", "sim://", "--speed", "max", "--no-plot", "--quiet")
    assert result.code == 0, result
    assert (tmp_path / "env-cal" / "sim.toml").exists()
    assert cli("calibration", "show", "sim").code == 0


# -- sessions and calibrations ------------------------------------------------------------------


def test_a_session_records_the_calibration_it_used(cli, tmp_path, log_path):
    assert calibrate(cli, tmp_path, "--quiet", "--load-kg", "70").code == 0
    cal_id = json.loads(cli("calibration", "show", "sim", "--json", "--calibration-dir", str(tmp_path / "cal")).out)[
        "calibration_id"]
    result = cli("session", "--device", "sim://", "--minutes", "0.1", "--speed", "max", "--quiet", "--json",
                 "--log", str(log_path), "--calibration-dir", str(tmp_path / "cal"), "--load-kg", "72")
    assert result.code == 0, result
    assert json.loads(result.out)["calibration_id"] == cal_id
    assert "warning" not in result.err
    with DoseLog(log_path, create=False) as log:
        assert log.sessions()[0]["calibration_id"] == cal_id


def test_a_session_warns_about_a_calibration_made_at_another_frequency_load_or_age(cli, tmp_path, log_path):
    assert calibrate(cli, tmp_path, "--quiet", "--load-kg", "70").code == 0
    path = tmp_path / "cal" / "sim.toml"
    import tomllib

    doc = tomllib.loads(path.read_text())
    doc["date_utc"] = doc["date_utc"].replace(year=doc["date_utc"].year - 1)
    path.write_text(tomli_w.dumps(doc))
    result = cli("session", "--device", "sim://", "--freq", "35", "--minutes", "0.1", "--speed", "max", "--quiet",
                 "--log", str(log_path), "--calibration-dir", str(tmp_path / "cal"), "--load-kg", "120",
                 "--max-calibration-age", "90")
    assert result.code == 0, result
    warnings = [line for line in result.err.splitlines() if line.startswith("livctl: warning:")]
    assert len(warnings) == 3
    assert "days old (older than 90)" in warnings[0]
    assert "made at 30 Hz, not 35 Hz" in warnings[1]
    assert "with 70 kg on the platform, not 120 kg" in warnings[2]


def test_a_session_refuses_a_bad_calibration_file_before_logging_anything(cli, tmp_path, log_path):
    (tmp_path / "cal").mkdir()
    (tmp_path / "cal" / "sim.toml").write_text("platform_id = 'sim'\n")
    result = cli("session", "--device", "sim://", "--minutes", "0.1", "--speed", "max", "--quiet",
                 "--log", str(log_path), "--calibration-dir", str(tmp_path / "cal"))
    assert result.code == 2 and "missing format; recalibrate or restore the file" in result.err
    with DoseLog(log_path) as log:
        assert log.sessions() == []


def test_a_real_platform_without_a_calibration_is_refused(cli, tmp_path, log_path, monkeypatch):
    # a backend that is the simulator but reports itself as real hardware
    monkeypatch.setitem(platforms.BACKENDS, "rig", "realish_backend")
    result = cli("session", "--device", "rig://?id=rig-7", "--minutes", "0.1", "--quiet", "--log", str(log_path),
                 "--calibration-dir", str(tmp_path / "none"))
    assert result.code == 2
    assert "platform 'rig-7' has no calibration" in result.err and "livctl calibrate --device rig://" in result.err
    with DoseLog(log_path) as log:
        assert log.sessions() == []


# -- headless machines and signals ----------------------------------------------------------------


def test_without_a_display_calibrate_says_so_and_runs_headless(tmp_path):
    env = livctl_env()
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        env.pop(name, None)
    result = run_livctl("calibrate", "--device", "sim://", "--speed", "max", "--quiet",
                        "--calibration-dir", str(tmp_path), env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "livctl: no display available (DISPLAY is not set); running without the live plot"
    ]
    assert (tmp_path / "sim.toml").exists()


def test_without_a_display_plot_png_still_saves_the_view(tmp_path):
    env = livctl_env()
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        env.pop(name, None)
    png = tmp_path / "view.png"
    result = run_livctl("calibrate", "--device", "sim://", "--speed", "max", "--quiet", "--plot-png", str(png),
                        "--calibration-dir", str(tmp_path), env=env)
    assert result.returncode == 0, result.stderr
    assert "saving the view to the PNG only" in result.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_ctrl_c_ramps_down_and_writes_nothing(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "livctl", "calibrate", "--device", "sim://", "--speed", "2", "--no-plot",
         "--calibration-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=livctl_env(),
    )
    deadline = time.monotonic() + 60
    lines = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        lines.append(line)
        if "% drive:" in line or not line:
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, "".join(lines) + err
    assert "SIGINT: ramping down, then stopping" in err
    assert "calibration interrupted: calibration stopped (stopped by SIGINT)" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["calibrate"], ["calibration"], ["calibration", "show"]])
def test_the_calibration_commands_have_help_with_examples(cli, command):
    result = cli(*command, "--help")
    assert result.code == 0 and "usage: livctl" in result.out and "livctl calibrat" in result.out.split("examples:")[1]


def test_ctrl_c_with_the_live_view_open_ramps_down_and_exits_130(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "livctl", "calibrate", "--device", "sim://", "--speed", "3", "--plot",
         "--calibration-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=livctl_env(QT_QPA_PLATFORM="offscreen"),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "% drive:" in line or not line:
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "calibration interrupted" in err and list(tmp_path.iterdir()) == []


def test_a_sessions_first_drive_is_safe_for_a_platform_1000_times_stronger_than_its_calibration(cli, tmp_path, log_path):
    assert calibrate(cli, tmp_path, "--load-kg", "70", "--quiet").code == 0
    from livctl.records.calibration import load_calibration

    gain_g = load_calibration(tmp_path / "cal" / "sim.toml").gain_at(30.0).g_per_drive
    result = cli("session", "--device", "sim://?seed=4", "--minutes", "0.1", "--speed", "max", "--quiet", "--json",
                 "--load-kg", "70", "--log", str(log_path), "--calibration-dir", str(tmp_path / "cal"))
    assert result.code == 0
    with DoseLog(log_path, create=False) as log:
        windows = log.windows(json.loads(result.out)["session_id"])
    driven = [w["drive"] for w in windows if w["phase"] == "precheck" and w["drive"] > 0]
    # half the 1 g cap at 1000x the calibrated response, then at most 4x a step
    assert driven[0] == pytest.approx(0.5 / (1000 * gain_g))
    assert all(b <= 4.0 * a + 1e-12 for a, b in zip(driven, driven[1:]))


def test_a_platform_that_no_longer_matches_its_calibration_is_refused(cli, tmp_path, log_path):
    # calibrated empty-handed at 70 kg; the session's plate carries 120 kg but nobody said so
    assert calibrate(cli, tmp_path, "--load-kg", "70", "--quiet").code == 0
    result = cli("session", "--device", "sim://?load_kg=120", "--minutes", "0.5", "--speed", "max", "--json",
                 "--quiet", "--log", str(log_path), "--calibration-dir", str(tmp_path / "cal"))
    assert result.code == 1
    summary = json.loads(result.out)
    assert summary["status"] == "aborted" and summary["delivered_s"] == 0.0
    assert re.search(r"responds 0\.\d\dx what its calibration says", summary["reason"])


def test_the_calibrations_largest_safe_drive_is_never_exceeded(cli, tmp_path, log_path):
    # a calibration whose largest safe drive is far below what 0.3 g needs on this platform
    assert calibrate(cli, tmp_path, "--quiet").code == 0
    path = tmp_path / "cal" / "sim.toml"
    import tomllib

    doc = tomllib.loads(path.read_text())
    for point in doc["points"]:
        point["max_safe_drive"] = 0.05
    path.write_text(tomli_w.dumps(doc))
    result = cli("session", "--device", "sim://", "--minutes", "0.5", "--speed", "max", "--json", "--quiet",
                 "--log", str(log_path), "--calibration-dir", str(tmp_path / "cal"))
    summary = json.loads(result.out)
    assert result.code == 1 and summary["status"] == "aborted"
    assert "cannot reach 0.3 g" in summary["reason"]
    with DoseLog(log_path, create=False) as log:
        windows = log.windows(summary["session_id"])
    assert max(w["drive"] for w in windows) <= 0.05


def test_a_sensor_that_delivers_nothing_fails_the_calibration_in_one_line(cli, tmp_path):
    result = cli("calibrate", "--device", "sim://?fault=sensor_unplug", "--speed", "max", "--no-plot", "--quiet",
                 "--calibration-dir", str(tmp_path))
    assert result.code == 1 and result.err.strip() == "livctl: calibration failed: the sensor delivers no samples; check its cable and power"
    assert list(tmp_path.iterdir()) == []


def test_steps_and_levels_are_read_strictly(cli, tmp_path):
    for args, says in ((["--steps", "3_0"], "groups digits with '_'"), (["--steps", "1"], "2 to 50"),
                       (["--levels", "5,,10"], "separated by commas")):
        result = cli("calibrate", "--device", "sim://", "--speed", "max", "--no-plot", *args)
        assert result.code == 2 and says in result.err and result.err.count("\n") == 1


def test_a_calibration_whose_probe_kept_a_step_at_the_guards_first_drives_reads_back(cli, tmp_path):
    """A 0.5 kg cage at 45 Hz sits at the plate's resonance: behind a serial link its response showed
    at 2.5e-5 of full scale, a step the calibration kept and its reader once refused (a file livctl
    wrote and could not read)."""
    from calibrations import write_calibration
    from livctl.records.calibration import load_calibration

    directory = tmp_path / "calibration"
    write_calibration(directory, "sim", gain_g_per_drive=15.5, frequencies_hz=(45.0,), device="sim://",
                      gravity_g=(0.01, 0.006, 1.0), drives=(2.5e-5, 1e-4, 4e-4, 1.6e-3, 6.4e-3))
    (path,) = directory.glob("*.toml")
    assert min(s.drive for p in load_calibration(path).points for s in p.steps) == 2.5e-05
    session = cli("session", "--device", "sim://?load_kg=0.5&sensor=adxl355", "--freq", "45", "--accel", "0.6",
                  "--minutes", "0.1", "--speed", "max", "--calibration-dir", str(directory),
                  "--log", str(tmp_path / "log.sqlite"), "--quiet")
    assert session.code == 0, session


def test_a_calibration_reads_whole_at_80_columns(cli, tmp_path, monkeypatch):
    """Progress lines and the summary fold at spaces under their value, never mid-word, within 80
    columns (a long path or figure line used to be cut by the terminal)."""
    monkeypatch.setenv("COLUMNS", "80")
    result = cli("calibrate", "--device", "sim://?id=a-platform-with-a-long-name-for-its-calibration-file",
                 "--speed", "max", "--calibration-dir", str(tmp_path / "a" / "deep" / "folder" / "of" / "calibrations"),
                 "--no-plot")
    assert result.code == 0, result.err
    lines = (result.out + result.err).splitlines()
    # a word longer than the width (a path) stands alone on its line; nothing else passes 80
    assert all(len(line) <= 80 or " " not in line.strip() or len(line.strip().split(" ")[-1]) > 60 for line in lines)
    assert sum(len(line) > 80 for line in lines) <= 3  # only the long paths
    out = result.out.splitlines()
    sensor = next(i for i, line in enumerate(out) if line.startswith("  sensor      "))
    assert out[sensor + 1].startswith(" " * 14) and out[sensor + 1].strip()  # continued under the value
    assert any(line.startswith("  30 Hz: gain") or line.startswith("  drive, largest safe drive")
               or "largest safe drive" in line for line in result.err.splitlines())
