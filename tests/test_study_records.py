"""Study-grade records, driven as a technician and a coordinator use livctl: `livctl ...` as a real
process against a real SQLite log and a real configuration file, and on a pseudo-terminal where a
person would be at one (the confirmation, the progress line).

Practice is never dose; subject ids are checked; a station is configured once; the lab's time zone
is explicit; a named operator where required; a real platform starts after a yes; the progress
line fits the terminal."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import sqlite3
import sys
from pathlib import Path

import pytest

from conftest import livctl_env, run_livctl
from terminal import Terminal, livctl_argv, screen_lines

TESTS = Path(__file__).parent


@pytest.fixture
def station(tmp_path):
    """A lab PC: its user configuration file (written by each test), its data directory, and the
    environment a livctl process sees there."""

    class Station:
        config = tmp_path / "config" / "livctl" / "config.toml"
        system = tmp_path / "system-config" / "livctl" / "config.toml"
        data = tmp_path / "xdg" / "livctl"
        log = data / "doses.sqlite"

        def env(self, **extra: str) -> dict[str, str]:
            return livctl_env(**extra)

        def write(self, text: str, system: bool = False) -> None:
            path = self.system if system else self.config
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)

        def run(self, *args: str, **kwargs):
            return run_livctl(*args, env=kwargs.pop("env", None) or self.env(), **kwargs)

    return Station()


def _one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("livctl: error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


# -- 1. practice is never dose --------------------------------------------------------------------


def test_practice_on_the_simulator_is_logged_apart_and_counts_toward_nothing(station):
    assert station.run("subject", "add", "P-017", "--kind", "human", "--regimen", "human-30hz-0.4g",
                       "--tz", "Europe/Berlin").returncode == 0
    refused = station.run("session", "--device", "sim://?id=bench-A", "--subject", "P-017", "--minutes", "0.1",
                          "--speed", "max")
    line = _one_error_line(refused)
    assert "P-017 is a registered subject and sim://?id=bench-A is a simulated platform" in line
    assert "give --practice" in line
    practice = station.run("session", "--device", "sim://?id=bench-A", "--subject", "P-017", "--minutes", "0.1",
                           "--speed", "max", "--practice", "--json", "--quiet")
    assert practice.returncode == 0, practice.stderr
    record = json.loads(practice.stdout)
    assert record["practice"] is True and record["simulated"] is True
    assert record["prescription"]["peak_g"] == 0.4 and record["regimen"] is None  # the regimen's signal, no bout of it
    listed = station.run("log")
    assert "practice" in listed.stdout.splitlines()[1] or "PRACTICE" in listed.stdout
    (due,) = json.loads(station.run("due", "--json").stdout)
    assert due["delivered_bouts"] == 0 and due["state"] == "due"
    (report,) = json.loads(station.run("report", "--subject", "P-017", "--json").stdout)
    assert report["delivered_bouts"] == 0 and report["in_spec_minutes"] == 0 and report["practice_sessions"] == 1
    assert report["max_daily_a8_mps2"] is None
    rows = list(csv.DictReader(io.StringIO(station.run("log", "export", "--csv").stdout)))
    assert [r["practice"] for r in rows] == ["true"]
    with sqlite3.connect(station.log) as db:
        assert db.execute("SELECT practice FROM sessions").fetchall() == [(1,)]
    assert station.run("log", "verify").returncode == 0


def test_practice_on_a_real_platform_is_refused(station, cli, rig):
    url = rig("plate-A")
    result = cli("session", "--device", url, "--practice", "--yes", "--minutes", "0.1")
    assert result.code == 2 and "is a real platform: what it delivers is dose" in result.err


# -- 2. subject ids are checked -------------------------------------------------------------------


def test_a_mistyped_subject_id_is_refused_with_the_nearest_ids(station):
    for subject in ("P-017", "P-018", "S9"):
        assert station.run("subject", "add", subject, "--kind", "human").returncode == 0
    line = _one_error_line(station.run("session", "--device", "sim://", "--subject", "S9-typo", "--practice",
                                       "--minutes", "0.1", "--speed", "max"))
    assert "no subject 'S9-typo'" in line and "did you mean S9?" in line
    line = _one_error_line(station.run("session", "--device", "sim://", "--subject", "P-01", "--practice",
                                       "--minutes", "0.1", "--speed", "max"))
    assert "did you mean P-017 or P-018?" in line
    with sqlite3.connect(station.log) as db:
        assert db.execute("SELECT count(*) FROM sessions").fetchone() == (0,)


def test_a_log_without_subjects_takes_any_name_and_reports_it(station):
    ran = station.run("session", "--device", "sim://", "--subject", "plate-3-well-B", "--minutes", "0.1",
                      "--speed", "max", "--quiet")
    assert ran.returncode == 0, ran.stderr
    (report,) = json.loads(station.run("report", "--subject", "plate-3-well-B", "--json").stdout)
    assert report["registered"] is False and report["delivered_bouts"] == 1 and report["prescribed_bouts"] == 0
    # every table and figure that lists the session says it was simulated
    assert "sim (simulated)" in station.run("log").stdout
    out = station.data.parent / "reports"
    assert station.run("report", "--subject", "plate-3-well-B", "--out", str(out)).returncode == 0
    page = (out / "report-plate-3-well-B.html").read_text()
    assert re.search(r"<td>sim</td><td>yes</td>", page)
    from livctl.study import report as rpt
    from livctl.records.doselog import DoseLog

    with DoseLog(station.log, create=False) as log:
        figure = rpt.charts_figure(rpt.build_subject_report(log, "plate-3-well-B"), ("peak",))
    assert any("(SIMULATED)" in c.get_label() for c in figure.axes[0].collections)
    unknown = _one_error_line(station.run("report", "--subject", "nobody"))
    assert "no subject 'nobody'" in unknown


# -- 3. a station is configured once ----------------------------------------------------------------


def test_config_show_says_where_each_value_comes_from(station):
    station.write('timezone = "Asia/Tokyo"\ndevice = "sim://?id=system-plate"\nreport_paper = "letter"\n', system=True)
    station.write('device = "sim://?id=bench-A"\n[tolerance]\naccel_percent = 12\n')
    shown = json.loads(station.run("config", "show", "--json", env=station.env(LIVCTL_LOG="/tmp/elsewhere.sqlite")).stdout)
    values = shown["values"]
    assert values["device"] == {"value": "sim://?id=bench-A", "source": f"user file {station.config}"}
    assert values["timezone"] == {"value": "Asia/Tokyo", "source": f"system file {station.system}"}
    assert values["report_paper"]["value"] == "letter"
    assert values["log"] == {"value": "/tmp/elsewhere.sqlite", "source": "environment LIVCTL_LOG"}
    assert values["tolerance.accel_percent"]["value"] == 12
    assert values["require_operator"] == {"value": False, "source": "default"}
    table = station.run("config", "show").stdout
    assert re.search(r"device\s+sim://\?id=bench-A\s+user file", table)


@pytest.mark.parametrize("text, key", [
    ("[tolerance]\naccel_percent = \"ten\"\n", "tolerance.accel_percent must be a positive number of % (0.1 to 99), not 'ten'"),
    ("timezone = \"Mars/Olympus\"\n", "timezone 'Mars/Olympus' is not a known time zone"),
    ("require_operator = \"yes\"\n", "require_operator must be true or false"),
    ("devcie = \"sim://\"\n", "unknown key devcie (did you mean device?)"),
    ("device = \n", "is not valid TOML"),
])
def test_a_bad_configuration_file_is_one_line_naming_the_key(station, text, key):
    station.write(text)
    for command in (["config", "show"], ["session", "--minutes", "1"], ["due"]):
        line = _one_error_line(station.run(*command))
        assert str(station.config) in line and key in line


def test_the_technicians_command_runs_on_the_configured_device_and_names_its_calibration(station, tmp_path):
    station.write('device = "sim://?id=bench-A"\n')
    # calibrated from one folder, found from another: the calibration directory is the station's
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert station.run("calibrate", "--speed", "max", "--quiet", "--no-plot", cwd=tmp_path / "a").returncode == 0
    assert (station.data / "calibration" / "bench-A.toml").exists() and not (tmp_path / "a" / "calibration").exists()
    shown = station.run("calibration", "show", "bench-A", cwd=tmp_path / "b")
    assert shown.returncode == 0 and "bench-A" in shown.stdout
    ran = station.run("session", "--minutes", "0.1", "--speed", "max", "--json", cwd=tmp_path / "b")
    assert ran.returncode == 0, ran.stderr
    record = json.loads(ran.stdout)
    assert record["device"] == "sim://?id=bench-A" and record["calibration_id"].startswith("bench-A-")
    assert f"calibration {record['calibration_id']} ({station.data / 'calibration' / 'bench-A.toml'}" in ran.stderr
    station.write('device = "sim://?id=bench-B"\n')
    other = station.run("session", "--minutes", "0.1", "--speed", "max", "--quiet")
    assert "no calibration for platform 'bench-B'" in other.stderr


def test_precedence_command_line_environment_user_system_defaults(station):
    station.write('device = "sim://?id=from-system"\n', system=True)
    ran = lambda *a, **e: json.loads(station.run("session", "--minutes", "0.05", "--speed", "max", "--json",
                                                 "--quiet", *a, env=station.env(**e)).stdout)["platform_id"]
    assert ran() == "from-system"
    station.write('device = "sim://?id=from-user"\n')
    assert ran() == "from-user"
    assert ran(LIVCTL_DEVICE="sim://?id=from-env") == "from-env"
    assert ran("--device", "sim://?id=from-cli", LIVCTL_DEVICE="sim://?id=from-env") == "from-cli"


def test_configured_tolerances_are_the_sessions_defaults(station):
    station.write("[tolerance]\nfrequency_hz = 0.5\naccel_percent = 5\nmin_in_spec_percent = 95\n")
    record = json.loads(station.run("session", "--device", "sim://", "--minutes", "0.05", "--speed", "max", "--json",
                                    "--quiet", "--tol-accel", "7").stdout)
    tol = record["prescription"]["tolerance"]
    assert (tol["frequency_hz"], tol["accel_fraction"], tol["min_in_spec_fraction"]) == (0.5, 0.07, 0.95)


# -- 4. the lab's time zone is explicit ---------------------------------------------------------------


def test_due_report_and_export_use_the_configured_zone_or_say_which_they_assumed(station):
    env = station.env(TZ="Asia/Tokyo")
    assert station.run("subject", "add", "C-1", "--kind", "cells", env=env).returncode == 0
    assert station.run("session", "--device", "sim://", "--subject", "C-1", "--practice", "--minutes", "0.05",
                       "--speed", "max", "--quiet", env=env).returncode == 0
    assumed = station.run("due", env=env)
    assert "assumed this computer's, Asia/Tokyo" in assumed.stderr
    exported = json.loads(station.run("log", "export", "--json", env=env).stdout)
    assert exported["filters"]["timezone"] == "Asia/Tokyo" and "assumed" in exported["filters"]["timezone_note"]
    station.write('timezone = "America/New_York"\n')
    configured = station.run("due", "--at", "2026-03-02T23:30", "--json", env=env)
    assert configured.stderr == "" and json.loads(configured.stdout)[0]["state"] == "no_regimen"
    exported = json.loads(station.run("log", "export", "--json", env=env).stdout)
    assert exported["filters"]["timezone"] == "America/New_York" and exported["filters"]["timezone_note"] is None
    (report,) = json.loads(station.run("report", "--subject", "C-1", "--json", env=env).stdout)
    assert report["timezone"] == "America/New_York" and report["timezone_note"] is None


def test_a_subjects_regimen_takes_the_configured_zone(station):
    station.write('timezone = "Europe/Lisbon"\n')
    added = json.loads(station.run("subject", "add", "P-1", "--kind", "human", "--regimen", "human-30hz-0.3g",
                                   "--json").stdout)
    assert added["assignments"][0]["regimen"]["timezone"] == "Europe/Lisbon"


# -- 5. a named operator ------------------------------------------------------------------------------


def test_a_shared_lab_pc_requires_a_named_operator(station):
    station.write("require_operator = true\n", system=True)
    line = _one_error_line(station.run("session", "--device", "sim://", "--minutes", "0.05", "--speed", "max"))
    assert "this station requires a named operator" in line and "--operator NAME" in line
    ran = station.run("session", "--device", "sim://", "--minutes", "0.05", "--speed", "max", "--operator", "ana",
                      "--json", "--quiet")
    assert ran.returncode == 0 and json.loads(ran.stdout)["operator"] == "ana"


# -- 6. confirm before a real platform moves ---------------------------------------------------------


def _rig_argv(*args: str) -> list[str]:
    return [sys.executable, str(TESTS / "livctl_rig.py"), *args]


def _rig_env(station, tmp_path) -> dict[str, str]:
    return station.env(PYTHONPATH=f"{TESTS}{os.pathsep}{livctl_env()['PYTHONPATH']}")


@pytest.fixture
def plate(station, tmp_path, cli, monkeypatch):
    """A "real" platform (rig://, the simulator reporting itself as real hardware), calibrated in
    the station's calibration directory, and a registered subject with a regimen."""
    from livctl import platforms

    monkeypatch.setitem(platforms.BACKENDS, "rig", "realish_backend")
    monkeypatch.setenv("LIVCTL_CALIBRATION_DIR", str(station.data / "calibration"))
    assert cli("calibrate", "--device", "rig://?id=plate-A", "--quiet", "--no-plot").code == 0
    assert cli("subject", "add", "P-017", "--kind", "human", "--regimen", "human-30hz-0.4g", "--log",
               str(station.log)).code == 0
    return "rig://?id=plate-A"


SESSION = ("session", "--subject", "P-017", "--minutes", "0.1", "--operator", "ana",
           "--override-reason", "a short bout for the test")


def test_a_real_platform_asks_on_the_terminal_and_starts_only_on_yes(station, tmp_path, plate):
    term = Terminal(_rig_argv(*SESSION, "--device", plate), env=_rig_env(station, tmp_path))
    term.expect("Start? [y/N]")
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", term.text)
    assert "About to drive a real platform" in screen
    assert "subject       P-017 (human), regimen human-30hz-0.4g" in screen
    assert "prescription  30 Hz, 0.4 g peak, 0:06" in screen
    assert "platform      plate-A (rig://?id=plate-A)" in screen
    assert re.search(r"calibration   plate-A-\d{8}T\d{6}Z", screen)
    term.send("y")
    assert term.finish() == 0
    assert "completed: dose delivered in spec" in term.text


def test_anything_but_yes_starts_nothing(station, tmp_path, plate):
    term = Terminal(_rig_argv(*SESSION, "--device", plate), env=_rig_env(station, tmp_path))
    term.expect("Start? [y/N]")
    term.send("")
    assert term.finish() == 2
    assert "not started: the start was not confirmed" in term.text
    with sqlite3.connect(station.log) as db:
        assert db.execute("SELECT count(*) FROM sessions").fetchone() == (0,)


def test_without_a_terminal_a_real_platform_needs_yes(station, tmp_path, plate):
    import subprocess

    argv = _rig_argv(*SESSION, "--device", plate, "--quiet")
    piped = subprocess.run(argv, input="y\n", capture_output=True, text=True, env=_rig_env(station, tmp_path),
                           timeout=120)
    line = _one_error_line(piped)
    assert "is a real platform: it starts after a yes on a terminal, or give --yes" in line
    yes = subprocess.run([*argv, "--yes"], capture_output=True, text=True, env=_rig_env(station, tmp_path),
                         stdin=subprocess.DEVNULL, timeout=120)
    assert yes.returncode == 0, yes.stderr


def test_a_simulated_platform_asks_nothing(station, tmp_path):
    term = Terminal(livctl_argv("session", "--device", "sim://", "--minutes", "0.05", "--speed", "max"),
                    env=station.env())
    assert term.finish() == 0
    assert "Start?" not in term.text


# -- 8. progress that fits the terminal ----------------------------------------------------------------


@pytest.mark.parametrize("columns", [80, 60])
def test_the_progress_line_never_wraps(station, columns):
    term = Terminal(livctl_argv("session", "--device", "sim://", "--minutes", "0.5", "--speed", "6"),
                    env=station.env(), columns=columns)
    assert term.finish() == 0
    rows = [row for row in screen_lines(term.text) if row.strip()]
    live = [row for row in rows if row.startswith(("pre-check", "ramping", "delivering"))]
    assert live, term.text
    stderr = [row for row in rows if not row.startswith(("Session ", "  "))]  # the summary is on stdout
    assert max(len(row) for row in stderr) <= columns, [row for row in stderr if len(row) > columns]
    delivering = [row for row in live if row.startswith("delivering")]
    now = dt.datetime.now()
    assert any(re.search(r"\d:\d\d left, ends \d\d:\d\d", row) for row in delivering), delivering
    assert any("in spec" in row and "g pk" in row for row in delivering), delivering
    if columns == 80:
        assert any("━" in row and " Hz " in row for row in delivering), delivering  # a bar and the frequency
    del now


def test_progress_is_plain_lines_when_stderr_is_not_a_terminal(station):
    ran = station.run("session", "--device", "sim://", "--minutes", "1.2", "--speed", "max")
    assert ran.returncode == 0
    assert "\x1b" not in ran.stderr and "\r" not in ran.stderr
    delivering = [line for line in ran.stderr.splitlines() if line.startswith("delivering")]
    assert len(delivering) == 2  # the phase change and the first delivered minute
    assert "1:12 left" in delivering[0] or "left" in delivering[0]


# -- 7. the report, fixed and fileable: a 4-week, 3-subject study ----------------------------------


@pytest.fixture(scope="module")
def four_weeks(tmp_path_factory):
    """The study of tests/studylog.build_four_week_study, built once; each test copies the log."""
    import pytest as _pytest

    from livctl.cli import main
    from studylog import build_four_week_study

    class Ran:
        def __init__(self, code: int):
            self.code = code

    directory = tmp_path_factory.mktemp("four-weeks")
    path = directory / "doses.sqlite"
    with _pytest.MonkeyPatch.context() as mp:
        for name in ("XDG_CONFIG_HOME", "XDG_CONFIG_DIRS"):
            mp.setenv(name, str(directory / name.lower()))
        ids = build_four_week_study(path, mp, lambda *args: Ran(main(list(args))))
    return path, ids


def _pdf_text(path: Path, *args: str) -> str:
    import subprocess

    text = subprocess.run(["pdftotext", *args, str(path), "-"], capture_output=True, text=True, check=True).stdout
    return " ".join(text.split())  # words as read, whatever line a table cell wrapped them onto


def _pdf_pages(path: Path) -> list[tuple[float, float]]:
    import subprocess

    info = subprocess.run(["pdfinfo", "-f", "1", "-l", "999", str(path)], capture_output=True, text=True,
                          check=True).stdout
    return [tuple(float(x) for x in m) for m in re.findall(r"Page\s+\d+ size:\s+([\d.]+) x ([\d.]+) pts", info)]


@pytest.mark.parametrize("paper, size", [("a4", (595.28, 841.89)), ("letter", (612.0, 792.0))])
def test_the_study_pdf_is_a_fileable_multi_page_document(station, four_weeks, tmp_path, paper, size):
    source, ids = four_weeks
    log = tmp_path / "doses.sqlite"
    log.write_bytes(source.read_bytes())
    out = tmp_path / "reports"
    ran = station.run("report", "--study", "--to", "2026-03-29", "--format", "pdf", "--paper", paper,
                      "--out", str(out), "--log", str(log))
    assert ran.returncode == 0, ran.stderr
    pdf = out / "report-study.pdf"
    pages = _pdf_pages(pdf)
    assert len(pages) >= 6 and all(abs(w - size[0]) < 1 and abs(h - size[1]) < 1 for w, h in pages)
    text = _pdf_text(pdf)
    head = json.loads(station.run("log", "verify", "--json", "--log", str(log)).stdout)
    # every session of every subject, with the ones a coordinator must see
    with sqlite3.connect(log) as db:
        every = [sid for (sid,) in db.execute("SELECT session_id FROM sessions")]
    assert len(every) == 51 + 1 + 2 + 19 + 18  # P-017: bouts (the override too) and a refused one; practice; P-018; M-01
    missing = [sid for sid in every if sid not in text]
    assert missing == []
    assert "Practice sessions (not dose)" in text and "Overrides and deviations" in text
    assert "make-up for the bout cut short on 11 March" in text and "stopped by SIGINT" in text
    assert "pre-check: the platform responds 0.62x" in text and "OUT OF SPEC" in text
    assert "Vibration exposure (ISO 2631-1 Wk" in text and "A(8)" in text
    assert head["head_hash"] in text and f"{head['records']} records checked" in text
    assert "Reviewed by (name)" in text and "Signature" in text
    assert f"page 1 of {len(pages)}" in text and f"page {len(pages)} of {len(pages)}" in text
    # a practice session is listed apart, never among the sessions
    practice_section = text[text.index("Practice sessions (not dose)"):text.index("Overrides and deviations")]
    assert all(sid in practice_section for sid in ids["practice"])
    # afternoon sessions at their local time (17:45 in Berlin; 14:00 in New York)
    assert "Mon 02 Mar 2026 17:45" in text and "Mon 02 Mar 2026 14:00" in text


def test_the_subject_html_holds_the_same_as_the_pdf(station, four_weeks, tmp_path):
    source, ids = four_weeks
    log = tmp_path / "doses.sqlite"
    log.write_bytes(source.read_bytes())
    ran = station.run("report", "--subject", "P-017", "--to", "2026-03-29", "--format", "pdf", "--out", str(tmp_path),
                      "--log", str(log))
    assert ran.returncode == 0, ran.stderr
    page = (tmp_path / "report-P-017.html").read_text()
    text = _pdf_text(tmp_path / "report-P-017.pdf")
    for fragment in (ids["aborted"], ids["interrupted"], ids["override"], ids["out_of_spec"], *ids["practice"],
                     "Practice sessions (not dose)", "Overrides and deviations", "Reviewed by (name)"):
        assert fragment in page and fragment in text
    assert "<th>reason</th>" in page and "<th>simu- lated</th>" in page
    assert "stopped by SIGINT" in page and "pre-check: the platform responds 0.62x" in page
    (summary,) = json.loads(station.run("report", "--subject", "P-017", "--to", "2026-03-29", "--json", "--log",
                                        str(log)).stdout)
    assert summary["practice_sessions"] == 2 and summary["deviations"] == 1
    # the practice bouts are in no number: 28 days x 2 prescribed, 2 days missed whole, 2 afternoons missed
    assert summary["prescribed_bouts"] == 56 and summary["delivered_bouts"] == 51


def test_figures_show_every_session_at_its_local_time_over_whole_days(four_weeks, tmp_path):
    """The per-session charts: every measured session is a point at its local start time inside
    the axis (none falls off at noon of the last day), two a day stay apart, the prescribed line
    and the band cover whole days from the first midnight to the last."""
    from matplotlib.dates import num2date

    from livctl.study import report as rpt
    from livctl.records.doselog import DoseLog

    source, _ = four_weeks
    with DoseLog(source, create=False) as log:
        report = rpt.build_subject_report(log, "P-017", last=dt.date(2026, 3, 29))
    fig = rpt.charts_figure(report, ("peak",))
    ax = fig.axes[0]
    left, right = ax.get_xlim()
    assert num2date(left).replace(tzinfo=None) == dt.datetime(2026, 3, 2)
    assert num2date(right).replace(tzinfo=None) == dt.datetime(2026, 3, 30)
    points = [p for c in ax.collections if hasattr(c, "get_offsets") for p in c.get_offsets()
              if c.get_label().startswith("measured")]
    measured = [s for s in report.sessions if s["mean_peak_g"] is not None]
    assert len(points) == len(measured) == 51
    xs = sorted(float(x) for x, _ in points)
    assert all(left < x < right for x in xs)
    assert min(b - a for a, b in zip(xs, xs[1:])) > 1.5 / 24  # the closest two bouts are hours apart on the axis
    line = [l for l in ax.lines if l.get_label() == "prescribed"]
    assert line and num2date(line[0].get_xdata()[0]).replace(tzinfo=None) == dt.datetime(2026, 3, 2)


def test_compliance_colours_follow_the_legend(four_weeks):
    from livctl.study import report as rpt

    assert rpt.study_compliance_colour(1.0) == rpt.DAY_COLOURS[rpt.FULL]
    assert rpt.study_compliance_colour(0.17) == rpt.DAY_COLOURS[rpt.PARTIAL]
    assert rpt.study_compliance_colour(0.0) == rpt.DAY_COLOURS[rpt.MISSED]
    assert rpt.study_compliance_colour(None) == rpt.DAY_COLOURS[rpt.NONE]
