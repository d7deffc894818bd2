"""Dates, instants, time zones and report ranges: years 0001 and 9999, a 5 000-character time zone
and a report over two centuries are one-line usage errors, answered at once."""

import time

import pytest


@pytest.fixture
def study_log(cli, tmp_path):
    log = tmp_path / "doses.sqlite"
    result = cli("subject", "add", "P-1", "--kind", "human", "--regimen", "human-30hz-0.4g", "--start", "2026-03-02",
                 "--tz", "Europe/Berlin", "--log", str(log))
    assert result.code == 0, result
    return log


def _one_line_usage_error(result, *fragments):
    assert result.code == 2, result
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1 and len(lines[0]) < 400, result.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("args, says", [
    (["log", "export", "--csv", "--to", "9999-12-31"], "check the year"),
    (["log", "export", "--csv", "--from", "0001-01-01"], "check the year"),
    (["log", "export", "--csv", "--tz", "x" * 5000], "unknown time zone"),
    (["log", "export", "--csv", "--tz", "Europe"], "unknown time zone"),
    (["subject", "assign", "P-1", "--regimen", "human-30hz-0.4g", "--start", "9999-12-31"], "check the year"),
    (["subject", "assign", "P-1", "--regimen", "human-30hz-0.4g", "--tz", "y" * 5000], "unknown time zone"),
    (["due", "--at", "9999-12-31T23:00-05:00"], "check the year"),
    (["due", "--at", "0001-01-01T00:00"], "check the year"),
    (["due", "--at", "2026-03-02T10:00" + " " * 5000], "not a date and time"),
    (["report", "--subject", "P-1", "--from", "1900-01-01", "--to", "2100-12-31", "--json"], "check the year"),
    (["report", "--subject", "P-1", "--from", "1971-01-01", "--to", "2199-12-31", "--json"], "more than the 3,660"),
    (["report", "--subject", "P-1", "--from", "1971-01-01", "--json"], "more than the 3,660"),
])
def test_out_of_range_dates_and_zones_are_usage_errors_answered_at_once(cli, study_log, args, says):
    started = time.monotonic()
    result = cli(*args, "--log", str(study_log))
    _one_line_usage_error(result, says)
    assert time.monotonic() - started < 5.0


def test_a_regimen_file_starting_in_year_9999_is_refused(cli, study_log, tmp_path):
    regimen = tmp_path / "far.toml"
    regimen.write_text('preset = "human-30hz-0.4g"\nbouts_per_day = 1\ndays_per_week = 7\nweeks = 4\n'
                       "start = 9999-12-31\n")
    _one_line_usage_error(cli("regimen", "show", str(regimen)), "start must be a date from 1970-01-01 to 2199-12-31")
    before = cli("subject", "show", "P-1", "--json", "--log", str(study_log)).out
    _one_line_usage_error(cli("subject", "assign", "P-1", "--regimen", str(regimen), "--log", str(study_log)))
    assert cli("subject", "show", "P-1", "--json", "--log", str(study_log)).out == before


def test_a_ten_year_report_still_runs(cli, study_log):
    result = cli("report", "--subject", "P-1", "--from", "2026-01-01", "--to", "2035-12-31", "--json",
                 "--log", str(study_log))
    assert result.code == 0, result
