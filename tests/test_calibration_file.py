"""A calibration file that makes no sense is refused when it is loaded: every field has a range."""

import datetime as dt
import math
import sqlite3

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livctl.records.calibration import MIN_SAFE_DRIVE, MIN_STEP_DRIVE, CalibrationError, load_calibration

UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def calibration_doc(tmp_path_factory):
    """A real calibration of the simulated platform (a sweep in virtual time), as its TOML table."""
    import tomllib

    from conftest import run_livctl

    folder = tmp_path_factory.mktemp("cal")
    result = run_livctl("calibrate", "--device", "sim://?seed=4", "--speed", "max", "--no-plot", "--quiet",
                        "--calibration-dir", str(folder))
    assert result.returncode == 0, result.stderr
    return tomllib.loads((folder / "sim.toml").read_text())


def _write(tmp_path, doc):
    path = tmp_path / "sim.toml"
    path.write_text(tomli_w.dumps(doc))
    return path


def _point(doc):
    return doc["points"][0]


@pytest.mark.parametrize("change, says", [
    (lambda d: _point(d).update(gain_g_per_drive=math.inf), "gain_g_per_drive must be a positive number (up to 10000), not inf"),
    (lambda d: _point(d).update(gain_g_per_drive=math.nan), "gain_g_per_drive must be a positive number (up to 10000), not nan"),
    (lambda d: _point(d).update(gain_u_g_per_drive=10.0), "is not measured"),
    (lambda d: _point(d).update(max_safe_drive=0.0), "max_safe_drive must be a positive number (0.001 to 1), not 0.0"),
    (lambda d: _point(d).update(max_safe_drive=-0.5), "max_safe_drive must be a positive number (0.001 to 1), not -0.5"),
    (lambda d: _point(d).update(max_safe_drive=1e-308), "max_safe_drive must be a positive number (0.001 to 1), not 1e-308"),
    (lambda d: _point(d).update(max_safe_drive=0.99, cap_drive=0.5), "is above the platform's maximum drive"),
    (lambda d: _point(d)["steps"][0].update(drive=1e-310), "steps[0].drive must be a positive number (1e-06 to 1), not 1e-310"),
    (lambda d: _point(d)["steps"][0].update(peak_g=math.nan), "steps[0].peak_g must be a number between 0 and 1000, not nan"),
    (lambda d: _point(d)["steps"][0].update(samples=0), "samples must be a positive whole number (1 to 1000000000), not 0"),
    (lambda d: _point(d).update(gain_cubic_correlation=2.0), "gain_cubic_correlation must be a number between -1 and 1, not 2.0"),
    (lambda d: _point(d).update(frequency_hz=5000.0), "points[0].frequency_hz must be a positive number (10 to 200), not 5000.0"),
    (lambda d: d.update(date_utc=dt.datetime(9999, 12, 31, tzinfo=UTC)), "is in the future"),
    (lambda d: d.update(date_utc=dt.datetime.now(UTC) + dt.timedelta(days=2)), "is in the future"),
    (lambda d: d.update(date_utc=dt.datetime(1, 1, 1, tzinfo=UTC)), "before 1970-01-01"),
    (lambda d: d["limits"].update(accel_cap_g=5.0), "limits.accel_cap_g must be a positive number (up to 1), not 5.0"),
    (lambda d: d["limits"].update(platform_max_drive=0.0), "limits.platform_max_drive must be a positive number (up to 1), not 0.0"),
    (lambda d: d["sensor"].update(gravity_g=[0.0, math.nan, 1.0]), "sensor.gravity_g (y) must be a number between -1000 and 1000, not nan"),
    (lambda d: d["sensor"].update(rate_hz=math.inf), "sensor.rate_hz must be a positive number (up to 1000000), not inf"),
    (lambda d: d.update(load_kg=-1.0), "load_kg must be a number between 0 and 10000, not -1.0"),
    (lambda d: d.update(operator="a\nb"), "operator must be one line of printable text (at most 1000 characters)"),
    (lambda d: d.update(points=[d["points"][0], d["points"][0]]), "two frequency points at the same frequency"),
])
def test_a_calibration_that_makes_no_sense_is_refused_on_load(tmp_path, calibration_doc, change, says):
    import copy

    doc = copy.deepcopy(calibration_doc)
    change(doc)
    with pytest.raises(CalibrationError) as caught:
        load_calibration(_write(tmp_path, doc))
    assert says in str(caught.value) and "\n" not in str(caught.value), str(caught.value)


def _numeric_paths(doc, prefix=()):
    """Every number in the document, as a path of keys and indexes."""
    if isinstance(doc, dict):
        items = doc.items()
    elif isinstance(doc, list):
        items = enumerate(doc)
    else:
        return [prefix] if isinstance(doc, (int, float)) and not isinstance(doc, bool) else []
    return [p for k, v in items for p in _numeric_paths(v, prefix + (k,))]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), value=st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-308, 5e-324, 1e308, -1.0, 2.0]),
    st.integers(-(2**63), 2**63 - 1),
))
def test_whatever_number_is_changed_a_loaded_calibration_is_sane(tmp_path, calibration_doc, data, value):
    import copy

    doc = copy.deepcopy(calibration_doc)
    path = data.draw(st.sampled_from(_numeric_paths(doc)))
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    try:
        cal = load_calibration(_write(tmp_path, doc))
    except CalibrationError as exc:
        assert "\n" not in str(exc)
        return
    for point in cal.points:
        assert math.isfinite(point.gain.mps2_per_drive) and point.gain.mps2_per_drive > 0
        assert MIN_SAFE_DRIVE <= point.max_safe_drive <= cal.platform_max_drive <= 1
        assert all(math.isfinite(s.peak_mps2) and s.drive >= MIN_STEP_DRIVE for s in point.steps)
    assert 0 < cal.accel_cap_g <= 1.0 and math.isfinite(cal.working_frequency_hz)
    assert cal.date_utc <= dt.datetime.now(UTC) + dt.timedelta(hours=1)


def test_a_session_refuses_a_calibration_with_no_safe_drive_before_anything_moves(cli, tmp_path, calibration_doc):
    import copy

    doc = copy.deepcopy(calibration_doc)
    for point in doc["points"]:
        point["max_safe_drive"] = 1e-308
    folder = tmp_path / "cal"
    folder.mkdir()
    _write(folder, doc)
    log = tmp_path / "doses.sqlite"
    result = cli("session", "--device", "sim://", "--speed", "max", "--minutes", "0.1", "--quiet",
                 "--calibration-dir", str(folder), "--log", str(log))
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert result.code == 2 and len(lines) == 1 and "max_safe_drive" in lines[0], result
    assert not log.exists() or sqlite3.connect(log).execute("SELECT count(*) FROM windows").fetchone()[0] == 0
    shown = cli("calibration", "show", str(folder / "sim.toml"))
    assert shown.code == 2 and "max_safe_drive" in shown.err
