"""Regimens: the shipped presets, TOML files (and every way one can be wrong), assigning them."""

import datetime as dt
import json

import pytest

from livctl.prescription import PRESETS
from livctl.study.regimen import REGIMEN_PRESETS, RegimenError, check_regimen, load_regimen_file, resolve_regimen

GOOD = """\
name = "abc-trial"
preset = "human-30hz-0.4g"
minutes_per_bout = 10
bouts_per_day = 2
min_rest_hours = 1
days_per_week = 5
weeks = 12
timezone = "Europe/Berlin"
"""


def test_presets_follow_the_published_schedules():
    assert set(REGIMEN_PRESETS) == set(PRESETS)
    for r in REGIMEN_PRESETS.values():
        check_regimen(r)
        signal = PRESETS[r.name]
        assert (r.frequency_hz, r.peak_g, r.minutes_per_bout) == (signal.frequency_hz, signal.peak_g, signal.minutes)
    livmd = REGIMEN_PRESETS["human-30hz-0.4g"]
    assert (livmd.bouts_per_day, livmd.days_per_week, livmd.days) == (2, 7, 52 * 7)
    assert REGIMEN_PRESETS["human-30hz-0.3g"].bouts_per_day == 1
    mouse = REGIMEN_PRESETS["mouse-90hz-0.3g"]
    assert mouse.weekdays == (0, 1, 2, 3, 4) and mouse.days is None  # 5 days a week, length chosen per study
    cells = REGIMEN_PRESETS["cells-90hz-0.7g"]
    assert cells.min_rest_minutes >= 60  # less than 1 h between bouts lost the effect (Sen 2011)


def test_a_complete_file(tmp_path):
    path = tmp_path / "abc.toml"
    path.write_text(GOOD)
    regimen, source = load_regimen_file(path)
    assert regimen.name == "abc-trial" and regimen.preset == "human-30hz-0.4g"
    assert (regimen.frequency_hz, regimen.peak_g, regimen.minutes_per_bout) == (30.0, 0.4, 10.0)
    assert regimen.min_rest_minutes == 60 and regimen.weekdays == (0, 1, 2, 3, 4) and regimen.days == 84
    assert regimen.start is None and regimen.timezone == "Europe/Berlin"
    assert source.startswith(f"file {path.resolve()} sha256 ")
    assert "2 x 10 min a day, at least 1 h apart, Mon-Fri, 12 weeks" in regimen.describe()


def test_a_file_with_its_own_signal_days_and_start(tmp_path):
    path = tmp_path / "cells.toml"
    path.write_text('frequency_hz = 90\npeak_g = 0.7\nminutes_per_bout = 20\nbouts_per_day = 3\nmin_rest_minutes = 90\n'
                    'weekdays = ["Monday", "wed", "FRI"]\ndays = 10\nstart = 2026-03-02\n')
    regimen, _ = load_regimen_file(path)
    assert regimen.name == "cells" and regimen.preset is None
    assert regimen.weekdays == (0, 2, 4) and regimen.days == 10 and regimen.start == dt.date(2026, 3, 2)
    assert regimen.end == dt.date(2026, 3, 12)


@pytest.mark.parametrize(
    "text, fragment",
    [
        (GOOD.replace("bouts_per_day = 2\n", ""), "missing bouts_per_day"),
        (GOOD.replace('preset = "human-30hz-0.4g"\n', ""), "missing frequency_hz"),
        (GOOD.replace('preset = "human-30hz-0.4g"\n', "frequency_hz = 30\n"), "missing peak_g"),
        (GOOD + "frequency_hz = 35\n", "give preset or frequency_hz and peak_g, not both"),
        (GOOD.replace("min_rest_hours = 1\n", ""), "missing min_rest_minutes"),
        (GOOD + "min_rest_minutes = 60\n", "min_rest_minutes or min_rest_hours, not both"),
        (GOOD.replace("days_per_week = 5\n", ""), "missing days_per_week"),
        (GOOD + 'weekdays = ["mon", "wed", "fri"]\n', "days_per_week = 5 but weekdays lists 3 days"),
        (GOOD.replace("days_per_week = 5\n", 'weekdays = ["mon", "funday"]\n'), "'funday' is not a day of the week"),
        (GOOD.replace("days_per_week = 5\n", 'weekdays = ["mon", "monday"]\n'), "names a day twice"),
        (GOOD.replace("days_per_week = 5\n", "days_per_week = 8\n"), "days_per_week must be a positive whole number (1 to 7), not 8"),
        (GOOD.replace("weeks = 12\n", ""), "missing weeks"),
        (GOOD + "days = 80\n", "give weeks or days, not both"),
        (GOOD.replace("weeks = 12\n", "weeks = 1.5\n"), "weeks must be a finite whole number, not 1.5"),
        (GOOD.replace("min_rest_hours = 1\n", "min_rest_hours = 12\n").replace("bouts_per_day = 2", "bouts_per_day = 3"),
         "do not fit in a day"),
        (GOOD.replace("bouts_per_day = 2\n", "bouts_per_day = 0\n"), "bouts_per_day must be 1-12"),
        (GOOD.replace("bouts_per_day = 2\n", 'bouts_per_day = "two"\n'), "bouts_per_day must be a finite whole number, not 'two'"),
        (GOOD.replace('preset = "human-30hz-0.4g"\n', 'preset = "human-30hz"\n'), "unknown preset 'human-30hz'"),
        (GOOD + "bouts_a_day = 2\n", "unknown key bouts_a_day (did you mean bouts_per_day?)"),
        (GOOD + 'colour = "red"\n', "unknown key colour (known keys: name, preset, frequency_hz"),
        (GOOD + "bout_per_day = 2\n", "did you mean bouts_per_day?"),
        (GOOD.replace('timezone = "Europe/Berlin"', 'timezone = "Europe/Berln"'), "timezone 'Europe/Berln' is not a known time zone; give an IANA name"),
        (GOOD + "start = 2026-03-02T09:00:00\n", "start must be a date"),
        (GOOD + 'start = "March 2"\n', "start must be a date"),
        (GOOD.replace("minutes_per_bout = 10", "minutes_per_bout = 90"), "limit of one bout"),
        (GOOD.replace('preset = "human-30hz-0.4g"\n', "frequency_hz = 30\npeak_g = 1.5\n"), "safety cap"),
        ("bouts_per_day = [", "is not valid TOML"),
    ],
)
def test_bad_files_are_one_line_errors(cli, tmp_path, text, fragment):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(RegimenError, match=None) as error:
        load_regimen_file(path)
    assert fragment in str(error.value) and str(path) in str(error.value)
    result = cli("regimen", "show", str(path))
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert result.code == 2 and len(lines) == 1 and fragment in lines[0]


def test_assigning_fills_what_the_regimen_leaves_open_and_refuses_contradictions(tmp_path):
    now = dt.datetime(2026, 3, 2, 23, 30, tzinfo=dt.timezone.utc)
    regimen, source = resolve_regimen("mouse-90hz-0.3g", weeks=8, default_timezone="Asia/Tokyo", now=now)
    assert source == "preset mouse-90hz-0.3g" and regimen.days == 56
    assert regimen.timezone == "Asia/Tokyo" and regimen.start == dt.date(2026, 3, 3)  # already 3 March in Tokyo
    with pytest.raises(RegimenError, match="has no fixed length; give --weeks N or --days N"):
        resolve_regimen("mouse-90hz-0.3g")
    path = tmp_path / "fixed.toml"
    path.write_text(GOOD + "start = 2026-03-02\n")
    with pytest.raises(RegimenError, match="--start contradicts the regimen file"):
        resolve_regimen(str(path), start=dt.date(2026, 3, 9))
    with pytest.raises(RegimenError, match="--tz contradicts the regimen file"):
        resolve_regimen(str(path), timezone="UTC")
    same, _ = resolve_regimen(str(path), start=dt.date(2026, 3, 2), weeks=12)
    assert same.start == dt.date(2026, 3, 2)
    with pytest.raises(RegimenError, match="did you mean human-30hz-0.4g"):
        resolve_regimen("human-30hz-04g")


def test_regimen_commands(cli, tmp_path):
    listing = cli("regimen", "list")
    assert listing.code == 0 and "human-30hz-0.4g" in listing.out and "Mon-Fri" in listing.out
    presets = json.loads(cli("regimen", "list", "--json").out)
    assert {p["name"] for p in presets} == set(REGIMEN_PRESETS)
    path = tmp_path / "abc.toml"
    path.write_text(GOOD)
    shown = cli("regimen", "show", str(path))
    assert shown.code == 0 and "abc-trial: 30 Hz, 0.4 g peak, 2 x 10 min a day" in shown.out
    assert "chosen when assigned: start" in shown.out


def test_subject_commands(cli, log_path, tmp_path):
    path = tmp_path / "abc.toml"
    path.write_text(GOOD)
    added = cli("subject", "add", "P-017", "--kind", "human", "--regimen", str(path), "--start", "2026-03-02",
                "--note", "left-handed", "--operator", "ana", "--log", str(log_path), "--json")
    assert added.code == 0, added
    subject = json.loads(added.out)
    assert subject["kind"] == "human" and subject["note"] == "left-handed" and subject["operator"] == "ana"
    (assignment,) = subject["assignments"]
    assert assignment["regimen"]["name"] == "abc-trial" and assignment["regimen"]["start"] == "2026-03-02"
    assert assignment["source"].startswith("file ") and "sha256" in assignment["source"]
    reassigned = cli("subject", "assign", "P-017", "--regimen", "human-30hz-0.3g", "--start", "2026-04-06",
                     "--tz", "Europe/Berlin", "--log", str(log_path), "--json")
    assert [a["regimen_name"] for a in json.loads(reassigned.out)["assignments"]] == ["abc-trial", "human-30hz-0.3g"]
    listing = cli("subject", "list", "--log", str(log_path))
    assert "P-017" in listing.out and "human-30hz-0.3g" in listing.out
    shown = cli("subject", "show", "P-017", "--log", str(log_path))
    assert "abc-trial" in shown.out and "human-30hz-0.3g" in shown.out


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["add", "P-1", "--kind", "human", "--regimen", "nonsense"], "no regimen preset 'nonsense'"),
        (["add", "P-1", "--kind", "human", "--start", "2026-03-02"], "give --regimen too"),
        (["add", "P-1", "--kind", "human", "--regimen", "human-30hz-0.4g", "--tz", "Mars/Olympus"],
         "unknown time zone 'Mars/Olympus'"),
        (["add", "P-1", "--kind", "human", "--regimen", "human-30hz-0.4g", "--start", "2 March"], "is not a date"),
        (["add", "P-1", "--kind", "robot"], "invalid choice"),
        (["add", "P-1", "--kind", "human", "--regimen", "mouse-90hz-0.3g"], "give --weeks N or --days N"),
        (["add", "P-1", "--kind", "human", "--regimen", "/nowhere/x.toml"], "cannot read regimen file"),
        (["add", "P-0", "--kind", "human"], "already in"),
        (["assign", "P-9", "--regimen", "human-30hz-0.4g"], "no subject 'P-9'"),
        (["show", "P-9"], "no subject 'P-9'"),
    ],
)
def test_bad_subject_commands_are_one_line_errors(cli, log_path, args, fragment):
    assert cli("subject", "add", "P-0", "--kind", "human", "--log", str(log_path)).code == 0
    result = cli("subject", *args, "--log", str(log_path))
    lines = [line for line in result.err.splitlines() if line.strip() and not line.startswith("usage:")]
    assert result.code == 2 and len(lines) == 1 and fragment in lines[0], result
    subjects = json.loads(cli("subject", "list", "--log", str(log_path), "--json").out)
    assert [s["subject_id"] for s in subjects] == ["P-0"]  # nothing half-written
