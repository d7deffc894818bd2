"""The `livctl` command: help, presets, sessions, the log, and every kind of bad input."""

import json
import sqlite3
import subprocess
import sys

import pytest

from conftest import livctl_env, run_livctl


def test_help_is_instant_and_imports_no_numerics():
    code = (
        "import sys\n"
        "from livctl.cli import build_parser\n"
        "build_parser().format_help()\n"
        "heavy = [m for m in ('numpy', 'scipy', 'sounddevice', 'pyqtgraph', 'PySide6', 'serial', 'matplotlib')\n"
        "         if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=livctl_env(), check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("command", [[], ["session"], ["validate"], ["tone"], ["presets"], ["log"], ["log", "show"], ["log", "verify"],
                                     ["log", "export"], ["regimen"], ["regimen", "show"], ["subject"],
                                     ["subject", "add"], ["subject", "assign"], ["due"], ["report"]])
def test_every_command_has_help_with_a_description(cli, command):
    result = cli(*command, "--help")
    assert result.code == 0
    assert "usage: livctl" in result.out and len(result.out.splitlines()) > 5


@pytest.mark.parametrize("command", [[], ["session"], ["calibrate"], ["validate"], ["report"], ["sync"], ["server"],
                                     ["log", "export"], ["subject", "assign"], ["config"]])
def test_help_fits_an_80_column_terminal(cli, command, monkeypatch):
    """At 80 columns (argparse fills to 78) no line of help runs past the edge for the terminal to
    break mid-word: prose paragraphs are refilled, long example lines wrap at a space."""
    monkeypatch.setenv("COLUMNS", "80")
    result = cli(*command, "--help")
    assert result.code == 0
    too_long = [line for line in result.out.splitlines() if len(line) > 80]
    assert not too_long, too_long


def test_python_dash_m_and_version():
    result = run_livctl("--version")
    assert result.returncode == 0 and result.stdout.startswith("livctl ")


def test_no_command_is_a_usage_error(cli):
    result = cli()
    assert result.code == 2 and "choose a command" in result.err


def test_presets_list_the_published_protocols(cli):
    result = cli("presets", "--json")
    presets = {p["name"]: p for p in json.loads(result.out)}
    assert presets["human-30hz-0.4g"]["frequency_hz"] == 30 and presets["human-30hz-0.4g"]["peak_g"] == 0.4
    assert presets["human-30hz-0.3g"]["minutes"] == 10
    assert presets["mouse-90hz-0.3g"]["minutes"] == 15
    assert presets["cells-90hz-0.7g"]["peak_g"] == 0.7 and presets["cells-90hz-0.7g"]["minutes"] == 20
    table = cli("presets").out
    assert "human-30hz-0.4g" in table and "peak-to-peak" in table


def test_session_json_summary_and_log_agree(cli, log_path):
    result = cli("session", "--device", "sim://?seed=3", "--minutes", "0.5", "--speed", "max",
                 "--subject", "M-4", "--operator", "bo", "--log", str(log_path), "--json", "--quiet")
    assert result.code == 0, result
    summary = json.loads(result.out)
    for key in ("session_id", "status", "delivered_s", "mean_frequency_hz", "mean_peak_g", "in_spec_fraction"):
        assert key in summary
    assert summary["status"] == "completed" and summary["delivered_s"] == pytest.approx(30.0)
    assert summary["subject"] == "M-4" and summary["operator"] == "bo"
    listed = json.loads(cli("log", "--log", str(log_path), "--json").out)
    assert len(listed) == 1
    assert {k: listed[0][k] for k in summary if k != "log"} == {k: v for k, v in summary.items() if k != "log"}
    shown = json.loads(cli("log", "show", summary["session_id"][:7], "--log", str(log_path), "--json").out)
    assert shown["session_id"] == summary["session_id"]
    assert sum(1 for w in shown["windows"] if w["phase"] == "deliver") == 30


def test_session_with_a_preset_and_human_output(cli, log_path):
    result = cli("session", "--device", "sim://?load_kg=0.5", "--preset", "mouse-90hz-0.3g", "--minutes", "0.2",
                 "--speed", "max", "--log", str(log_path))
    assert result.code == 0, result
    assert "completed: dose delivered in spec" in result.out
    assert "preset mouse-90hz-0.3g" in result.out
    assert "pre-check" in result.err and "delivering" in result.err  # progress goes to stderr
    shown = cli("log", "show", json.loads(cli("log", "--log", str(log_path), "--json").out)[0]["session_id"],
                "--windows", "--log", str(log_path))
    assert shown.code == 0 and "ramp_down" in shown.out


def test_aborted_session_exits_1_with_its_reason(cli, log_path):
    result = cli("session", "--device", "sim://?actuator_n=0.01", "--minutes", "1", "--speed", "max",
                 "--log", str(log_path), "--json", "--quiet")
    assert result.code == 1
    summary = json.loads(result.out)
    assert summary["status"] == "aborted" and summary["delivered_s"] == 0.0
    assert "no measurable" in summary["reason"]


def _assert_usage_error(result, *fragments):
    assert result.code == 2, result
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, result.err  # one line, no traceback
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--minutes", "0"], "positive"),
        (["--minutes", "-3"], "positive"),
        (["--minutes", "600"], "limit of one bout"),
        (["--minutes", "ten"], "not a number"),
        (["--freq", "5"], "outside 10-200 Hz"),
        (["--freq", "500"], "outside 10-200 Hz"),
        (["--accel", "0"], "positive"),
        (["--accel", "1.5"], "safety cap"),
        (["--accel", "nan"], "positive"),
        (["--preset", "jumping"], "unknown preset"),
        (["--preset", "human-30hz-0.4g", "--freq", "35"], "not both"),
        (["--tol-accel", "150"], "between 0 and 100"),
        (["--speed", "fast"], "not a speed"),
        (["--speed", "0"], "positive"),
    ],
)
def test_bad_prescriptions_are_one_line_usage_errors_and_log_nothing(cli, log_path, args, fragment):
    result = cli("session", "--device", "sim://", "--speed", "max", "--log", str(log_path), *args)
    _assert_usage_error(result, fragment)
    assert not log_path.exists() or sqlite3.connect(log_path).execute("SELECT count(*) FROM sessions").fetchone()[0] == 0


@pytest.mark.parametrize(
    "device, fragment",
    [
        ("ttyUSB0", "not a URL"),
        ("bogus://x", "unknown device type 'bogus'"),
        ("sim://?loadkg=70", "no option loadkg; known options"),
        ("sim://?load_kg=heavy", "load_kg='heavy'"),
        ("sim://?load_kg=-5", "must be a number >= 0"),
        ("sim://?seed=1&seed=2", "given twice"),
        ("sim://?seed=-1", "seed='-1': '-1' is out of range: it must be a whole number between 0 and 4294967295"),
        ("sim://box", "takes only options"),
    ],
)
def test_bad_device_urls_are_one_line_usage_errors(cli, log_path, device, fragment):
    result = cli("session", "--device", device, "--speed", "max", "--minutes", "1", "--log", str(log_path))
    _assert_usage_error(result, fragment)
    assert not log_path.exists() or sqlite3.connect(log_path).execute("SELECT count(*) FROM sessions").fetchone()[0] == 0


def test_no_device_explains_how_to_choose_one_and_never_simulates(cli, log_path):
    result = cli("session", "--minutes", "1", "--log", str(log_path))
    _assert_usage_error(result, "no device chosen", "sim://")
    assert not log_path.exists()


def test_device_from_the_environment(cli, log_path, monkeypatch):
    monkeypatch.setenv("LIVCTL_DEVICE", "sim://?seed=9")
    result = cli("session", "--minutes", "0.1", "--speed", "max", "--log", str(log_path), "--json", "--quiet")
    assert result.code == 0 and json.loads(result.out)["device"] == "sim://?seed=9"


def test_unwritable_log_path_is_a_usage_error(cli, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = cli("session", "--device", "sim://", "--speed", "max", "--minutes", "1", "--log", str(blocker / "d.sqlite"))
    _assert_usage_error(result, "cannot open the dose log")


def test_default_log_lives_in_the_environment_chosen_place(cli, tmp_path, monkeypatch):
    target = tmp_path / "env-log.sqlite"
    monkeypatch.setenv("LIVCTL_LOG", str(target))
    assert cli("session", "--device", "sim://", "--speed", "max", "--minutes", "0.1", "--quiet").code == 0
    assert target.exists()
    monkeypatch.delenv("LIVCTL_LOG")
    assert cli("session", "--device", "sim://", "--speed", "max", "--minutes", "0.1", "--quiet").code == 0
    assert (tmp_path / "xdg" / "livctl" / "doses.sqlite").exists()


def test_log_commands_on_a_missing_or_foreign_file(cli, tmp_path):
    _assert_usage_error(cli("log", "--log", str(tmp_path / "none.sqlite")), "no dose log")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"\x00garbage" * 200)
    _assert_usage_error(cli("log", "--log", str(junk)), "not a usable dose log")


def test_log_show_unknown_id(cli, log_path):
    cli("session", "--device", "sim://", "--speed", "max", "--minutes", "0.1", "--quiet", "--log", str(log_path))
    _assert_usage_error(cli("log", "show", "s-nothere", "--log", str(log_path)), "no session 's-nothere'")


def test_empty_log_lists_nothing(cli, log_path):
    from livctl.records.doselog import DoseLog

    DoseLog(log_path).close()
    assert "no sessions" in cli("log", "--log", str(log_path)).out
    assert json.loads(cli("log", "--log", str(log_path), "--json").out) == []
