"""The one TOML reader: each kind of field takes what it says and nothing else, and every problem is
one line of the caller's error class naming the file and the dotted key."""

import datetime as dt
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livctl.errors import UsageError
from livctl.records.tomlfields import MAX_TEXT, Field, TomlTable, open_toml


class LabError(UsageError):
    """A caller's own error class."""


def table(doc, **more):
    return TomlTable(doc, "lab file x.toml", LabError, **more)


def refused(doc, read, *, fix=""):
    """The message `read(table)` fails with; it must be one line of the caller's class."""
    with pytest.raises(LabError) as caught:
        read(table(doc, fix=fix))
    message = str(caught.value)
    assert "\n" not in message and message.startswith("lab file x.toml: "), message
    return message


def test_numbers_are_floats_within_their_range_the_lower_end_optionally_open():
    t = table({"a": 3, "b": 0.5, "c": 0.0, "d": math.inf, "e": 10})
    assert t.number("a", 0, 10) == 3.0 and isinstance(t.number("a", 0, 10), float)
    assert t.number("b", 0, 1, low_open=True) == 0.5
    assert t.number("c", 0, 1) == 0.0
    assert t.number("d", -200, math.inf) == math.inf  # high=inf admits +infinity (an SNR with no noise)
    assert t.number("e", 0, 10) == 10.0  # both ends inclusive
    assert t.number("absent", required=False) is None
    assert "c must be a positive number (up to 1), not 0.0" in refused({"c": 0.0}, lambda t: t.number("c", 0, 1,
                                                                                                      low_open=True))
    assert "d must be a number between 0 and 1000000, not inf" in refused({"d": math.inf}, lambda t: t.number("d", 0, 1e6))
    assert "n must be a finite number, not nan" in refused({"n": math.nan}, lambda t: t.number("n"))
    assert "n must be a finite number, not true" in refused({"n": True}, lambda t: t.number("n"))
    assert "n must be a finite number, not '3'" in refused({"n": "3"}, lambda t: t.number("n"))


def test_whole_numbers_are_ints_and_take_floats_only_when_asked():
    assert table({"k": 7}).whole("k", 1, 10) == 7
    assert "k must be a positive whole number (1 to 10), not 7.0" in refused({"k": 7.0}, lambda t: t.whole("k", 1, 10))
    lenient = Field("k", "whole", integral_floats=True)
    got = table({"k": 7.0}).get(lenient)
    assert got == 7 and isinstance(got, int)
    assert "k must be a finite whole number, not 7.5" in refused({"k": 7.5}, lambda t: t.get(lenient))
    assert "k must be a finite whole number, not false" in refused({"k": False}, lambda t: t.get(lenient))


def test_text_is_one_printable_line_unless_said_otherwise():
    assert table({"s": "bench A"}).text("s") == "bench A"
    assert table({"s": ""}).text("s") == ""
    for bad in ("a\nb", "tab\there", "x" * (MAX_TEXT + 1)):
        assert "s must be one line of printable text" in refused({"s": bad}, lambda t: t.text("s"))
    assert table({"s": "two\nlines"}).text("s", line=False) == "two\nlines"
    stripped = Field("s", "text", strip=True)
    assert table({"s": "  sim://  "}).get(stripped) == "sim://"
    assert "s must be one line of printable text" in refused({"s": "   "}, lambda t: t.get(stripped))


def test_paths_are_relative_to_the_files_folder(tmp_path):
    path = tmp_path / "lab.toml"
    path.write_text('log = "doses.sqlite"\nabsolute = "/srv/x"\nhome = "~/y"\n')
    t, data = open_toml(path, "lab file", error=LabError)
    assert data == path.read_bytes()
    assert t.get(Field("log", "path")) == tmp_path / "doses.sqlite"
    assert t.get(Field("absolute", "path")) == Path("/srv/x")
    assert t.get(Field("home", "path")) == Path("~/y").expanduser()


def test_bool_choice_time_zone():
    t = table({"b": True, "c": "letter", "z": "Europe/Berlin"})
    assert t.boolean("b") is True and t.choice("c", ("a4", "letter")) == "letter"
    assert t.get(Field("z", "timezone")) == "Europe/Berlin"
    assert 'b must be true or false (no quotes), not \'yes\'' in refused({"b": "yes"}, lambda t: t.boolean("b"))
    assert 'c must be one of "a4", "letter", not \'A4\'' in refused({"c": "A4"}, lambda t: t.choice("c", ("a4", "letter")))
    for zone in ("Mars/Olympus", "Europe", "x" * 300):
        assert "is not a known time zone" in refused({"z": zone}, lambda t: t.get(Field("z", "timezone")))


def test_dates_and_instants():
    d = Field("start", "date")
    assert table({"start": dt.date(2026, 3, 2)}).get(d) == dt.date(2026, 3, 2)
    assert table({"start": "2026-03-02"}).get(d) == dt.date(2026, 3, 2)
    for bad in (dt.datetime(2026, 3, 2, 9), "March 2", dt.date(1900, 1, 1), 20260302):
        assert "start must be a date from 1970-01-01 to 2199-12-31" in refused({"start": bad}, lambda t: t.get(d))
    berlin = dt.datetime(2026, 1, 31, 10, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert table({"at": berlin}).instant("at") == dt.datetime(2026, 1, 31, 9, tzinfo=dt.timezone.utc)
    assert "at must be a date and time with its UTC offset" in refused({"at": dt.datetime(2026, 1, 31)},
                                                                       lambda t: t.instant("at"))
    far = dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=5)))  # before year 1 in UTC
    assert "at must be a date and time" in refused({"at": far}, lambda t: t.instant("at"))


def test_triples_name_the_axis_at_fault():
    assert table({"g": [0, 0.5, 1]}).triple("g", -2, 2) == (0.0, 0.5, 1.0)
    assert "g (y) must be a number between -2 and 2, not nan" in refused({"g": [0, math.nan, 1]},
                                                                        lambda t: t.triple("g", -2, 2))
    assert "g must be three numbers (x, y, z)" in refused({"g": [0, 1]}, lambda t: t.triple("g", -2, 2))


def test_nested_tables_and_lists_of_tables_are_named_dotted():
    doc = {"points": [{"steps": [{"drive": 0.1}]}, {"steps": [{"drive": 0.1}, {"drive": "high"}]}],
           "sensor": {"rate_hz": 100.0}}
    t = table(doc)
    assert t.table("sensor").number("rate_hz", 0, 1e6) == 100.0
    message = refused(doc, lambda t: [s.number("drive", 0, 1) for p in t.tables("points") for s in p.tables("steps")],
                      fix="recalibrate")
    assert message.endswith(": points[1].steps[1].drive must be a number between 0 and 1, not 'high'; recalibrate")
    assert "missing sensor.model (the accelerometer)" in refused(
        doc, lambda t: t.table("sensor").get(Field("model", "text", "the accelerometer"), required=True))
    assert "sensor must be a table, not 3" in refused({"sensor": 3}, lambda t: t.table("sensor"))
    assert "points must be a list of tables ([[points]]), not a list" in refused({"points": [1]},
                                                                                 lambda t: t.tables("points"))


STATION = (Field("device", "text"), Field("report_paper", "choice", choices=("a4", "letter"), default="a4"),
           Field("tolerance.frequency_hz", "number", low=0.01, high=10.0, unit="Hz"))


def test_fields_reads_declared_keys_and_refuses_others_with_the_nearest():
    got = table({"device": "sim://", "tolerance": {"frequency_hz": 2}}).fields(STATION)
    assert got == {"device": "sim://", "tolerance.frequency_hz": 2.0}
    assert "unknown key devcie (did you mean device?)" in refused({"devcie": "x"}, lambda t: t.fields(STATION))
    assert "unknown key tolerance.frequncy_hz (did you mean tolerance.frequency_hz?)" in refused(
        {"tolerance": {"frequncy_hz": 1}}, lambda t: t.fields(STATION))
    assert "unknown key colour (known keys: device, report_paper, tolerance.frequency_hz, tolerance)" in refused(
        {"colour": "red"}, lambda t: t.fields(STATION))
    assert "tolerance.frequency_hz must be a positive number of Hz (0.01 to 10), not 20" in refused(
        {"tolerance": {"frequency_hz": 20}}, lambda t: t.fields(STATION))
    inner = table({"safety": {"stale_s": 1, "stael_s": 1}}).table("safety")
    with pytest.raises(LabError, match=r"unknown key safety.stael_s \(did you mean safety.stale_s\?\)"):
        inner.fields((Field("stale_s", "number"),))
    assert "unknown key bouts_per_dya (did you mean bouts_per_day?)" in refused({"bouts_per_dya": 1},
                                                                        lambda t: t.check_keys(["bouts_per_day"]))


# -- any value: a field returns it in range and of its type, or refuses it in one line --------------

_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**63), 2**63 - 1), st.booleans(),
    st.text(max_size=50), st.none(), st.lists(st.integers(), max_size=4), st.dates(), st.datetimes(),
    st.sampled_from([0, -0.0, 1e-308, 5e-324, 1.0, 2.0, 7, 7.0, "7", "Europe/Berlin", "2026-03-02", "a4"]),
)
_bounds = st.one_of(st.none(), st.floats(-1e6, 1e6), st.integers(-100, 100))


@st.composite
def _fields(draw):
    kind = draw(st.sampled_from(["number", "whole", "text", "bool", "choice", "timezone", "date", "triple"]))
    low, high = draw(_bounds), draw(_bounds)
    if low is not None and high is not None and low > high:
        low, high = high, low
    if kind == "number" and draw(st.booleans()):
        high = math.inf
    return Field("k", kind, low=low, high=high, low_open=draw(st.booleans()), choices=("a4", "letter"),
                 line=draw(st.booleans()), strip=draw(st.booleans()), integral_floats=draw(st.booleans()))


def _within(field, number):
    if field.low is not None and (number < field.low or (field.low_open and number == field.low)):
        return False
    return field.high is None or number <= field.high


@settings(max_examples=400, deadline=None)
@given(field=_fields(), value=_values)
def test_any_value_a_field_takes_is_in_range_and_of_its_type_and_anything_else_is_one_line(field, value):
    try:
        got = table({"k": value}).get(field, required=True) if value is not None else None
    except LabError as exc:
        message = str(exc)
        assert "\n" not in message and message.startswith("lab file x.toml: k ") and len(message) < 400, message
        return
    if value is None:
        return
    if field.kind == "number":
        assert type(got) is float and not math.isnan(got) and _within(field, got)
        assert math.isfinite(got) or (got == math.inf and field.high == math.inf)
    elif field.kind == "whole":
        assert type(got) is int and _within(field, got)
    elif field.kind == "triple":
        assert len(got) == 3 and all(type(v) is float and math.isfinite(v) and _within(field, v) for v in got)
    elif field.kind in ("text", "timezone", "choice"):
        assert type(got) is str and (not field.strip or got.strip() == got != "")
        assert not (field.kind == "text" and field.line) or (got.isprintable() and len(got) <= MAX_TEXT)
        assert field.kind != "choice" or got in field.choices
    elif field.kind == "bool":
        assert type(got) is bool
    elif field.kind == "date":
        assert type(got) is dt.date and dt.date(1970, 1, 1) <= got <= dt.date(2199, 12, 31)
