"""One strict reader for typed numbers, counts and dates (livctl.inputs), as every option and
device-URL option uses it."""

import math
import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livctl.platforms import parse_device_url, positive_float
from livctl.errors import DeviceURLError
from livctl.inputs import (
    EARLIEST_DATE,
    LATEST_DATE,
    InputError,
    Range,
    parse_count,
    parse_date,
    parse_number,
    parse_percent,
    parse_speed,
    quantity,
)

FAST = settings(max_examples=150, deadline=None)


@FAST
@given(st.floats(min_value=1e-3, max_value=1e5, allow_nan=False))
def test_a_number_as_python_writes_it_reads_back_exactly(value):
    assert quantity("minutes").parse(repr(value)) == value


@FAST
@given(st.text(max_size=12))
def test_whatever_is_accepted_is_plain_ascii_decimal_and_finite(text):
    try:
        value = parse_number(text)
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    assert math.isfinite(value)
    assert text.isascii() and text == text.strip() and "_" not in text
    assert set(text) <= set("0123456789+-.eE")


@pytest.mark.parametrize("text, says", [
    ("3_0", "groups digits with '_'"),
    ("３０", "other than ASCII digits"),
    ("٣٠", "other than ASCII digits"),
    (" 30", "spaces"),
    ("30\n", "spaces"),
    ("3 0", "spaces"),
    ("0x1e", "not written in decimal"),
    ("nan", "not a finite number"),
    ("-inf", "not a finite number"),
    ("1e400", "too large"),
    ("1e-308", "too small"),
    ("4.9e-324", "too small"),
    ("1" * 100, "characters long"),
    ("", "not a number"),
    ("ten", "not a number"),
])
def test_lenient_spellings_that_float_would_take_are_refused(text, says):
    with pytest.raises(InputError, match=None) as caught:
        parse_number(text, Range(0.0, None, low_open=True))
    assert says in str(caught.value)


def test_ranges_are_stated_in_the_error():
    with pytest.raises(InputError, match=r"out of range: it must be a positive number of seconds \(0.001 to"):
        quantity("seconds").parse("0.0001")
    with pytest.raises(InputError, match="between 0 and 100"):
        parse_percent("150")
    assert parse_percent("10%") == pytest.approx(0.10)


def test_speed_is_a_bounded_factor_or_max():
    assert parse_speed("max") == math.inf and parse_speed("10") == 10.0
    for text in ("0", "1e-308", "1e9"):
        with pytest.raises(InputError, match="or max"):
            parse_speed(text)
    with pytest.raises(InputError, match="not a speed"):
        parse_speed("fast")


@FAST
@given(st.integers())
def test_counts_are_whole_numbers_within_their_bounds(n):
    text = str(n)
    if 1 <= n <= 10**9:
        assert parse_count(text) == n
    else:
        with pytest.raises(InputError, match="out of range"):
            parse_count(text)


@FAST
@given(st.dates())
def test_dates_outside_the_study_range_are_refused(day):
    text = day.isoformat()
    if EARLIEST_DATE <= day <= LATEST_DATE:
        assert parse_date(text) == day
    else:
        with pytest.raises(InputError, match="check the year"):
            parse_date(text)


def test_url_options_use_the_same_reader():
    assert positive_float("2.5") == 2.5
    for text in ("3_0", "１", " 1", "inf", "1e-320"):
        with pytest.raises(ValueError):
            positive_float(text)


@pytest.mark.parametrize("url, says", [
    ("sim://[::1", "not a well-formed URL"),
    ("sim://?load_kg=7_0", "load_kg='7_0'"),
    ("sim://?seed=1_0", "seed='1_0'"),           # the simulator's own parser would take it: int("1_0")
    ("sim://?seed=%EF%BC%91", "seed="),          # a full-width 1
    ("sim://?actuator_n=1e-320", "too small"),
    ("sim://?id=" + "x" * 300, "at most 64 characters"),   # it names the calibration file: ENAMETOOLONG
    ("sim://?id=..", "not . or .."),
])
def test_device_urls_with_lenient_numbers_are_usage_errors(url, says):
    from livctl.platforms import open_platform

    with pytest.raises(DeviceURLError) as caught:
        open_platform(url)
    assert says in str(caught.value) and "\n" not in str(caught.value)


def test_parse_device_url_on_an_unbalanced_bracket():
    with pytest.raises(DeviceURLError, match="not a well-formed URL"):
        parse_device_url("serial://[::1")


def _one_line_usage_error(result, *fragments):
    assert result.code == 2, result
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, result.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("args, says", [
    (["--minutes", "3_0"], "--minutes: '3_0' groups digits"),
    (["--minutes", "３０"], "--minutes"),
    (["--ramp", "1e-308"], "--ramp"),
    (["--ramp", "0.01"], "a shorter one is a step"),
    (["--freq", " 30"], "--freq"),
    (["--accel", "0x1"], "--accel"),
    (["--speed", "1e-308"], "--speed"),
    (["--tol-accel", "1_0"], "--tol-accel"),
    (["--device", "sim://[::1"], "not a well-formed URL"),
])
def test_session_options_are_read_strictly_and_nothing_is_logged(cli, log_path, args, says):
    base = {"--device": "sim://", "--speed": "max"}
    for name, value in zip(args[::2], args[1::2]):
        base[name] = value
    result = cli("session", "--minutes", "0.1", *[x for kv in base.items() for x in kv], *args,
                 "--log", str(log_path), "--quiet")
    _one_line_usage_error(result, says)
    assert not log_path.exists() or sqlite3.connect(log_path).execute("SELECT count(*) FROM sessions").fetchone()[0] == 0


def test_log_limit_is_a_bounded_count(cli, log_path):
    assert cli("session", "--device", "sim://", "--speed", "max", "--minutes", "0.05", "--log", str(log_path),
               "--quiet").code == 0
    _one_line_usage_error(cli("log", "--limit", "99999999999999999999", "--log", str(log_path)), "--limit", "out of range")
    _one_line_usage_error(cli("log", "--limit", "-1", "--log", str(log_path)), "--limit")
    assert cli("log", "--limit", "0", "--log", str(log_path), "--json").code == 0


@pytest.mark.parametrize("args", [["--weeks", "1_0"], ["--days", "99999999999999999999"], ["--start", "9999-12-31"],
                                  ["--start", "0001-01-01"], ["--start", "2026-3-2"]])
def test_subject_options_are_read_strictly(cli, log_path, args):
    result = cli("subject", "add", "P-1", "--kind", "human", "--regimen", "human-30hz-0.4g", *args,
                 "--log", str(log_path))
    _one_line_usage_error(result)
    assert not log_path.exists() or sqlite3.connect(log_path).execute("SELECT count(*) FROM subjects").fetchone()[0] == 0
