"""Safety limits and interlocks, on their own (the fault matrix runs them in whole sessions)."""

import pytest

from livctl.analysis import Measurement
from livctl.errors import UsageError
from livctl.prescription import Prescription
from livctl.safety import Interlocks, SafetyLimits, Trip, load_profile

G = 9.80665
RX = Prescription(frequency_hz=30.0, peak_g=0.3, duration_s=600.0)
TARGET = 0.3 * G


def _m(frequency_hz=30.0, peak_g=0.3, thd_percent=1.0, snr_db=20.0) -> Measurement:
    return Measurement(frequency_hz=frequency_hz, peak_g=peak_g, rms_g=peak_g / 2**0.5, thd_percent=thd_percent,
                       snr_db=snr_db, sinad_db=snr_db, dc_g=1.0, axis="z", off_axis_percent=1.0, duration_s=1.0)


def _armed(**limits) -> Interlocks:
    interlocks = Interlocks(SafetyLimits(**limits), RX)
    interlocks.arm(expected_drive=0.2)
    return interlocks


def test_profiles_may_tighten_but_never_loosen():
    limits = SafetyLimits().tightened(accel_cap_g=0.8, over_level_s=0.25, open_loop_level=0.7)
    assert (limits.accel_cap_g, limits.over_level_s, limits.open_loop_level) == (0.8, 0.25, 0.7)
    with pytest.raises(UsageError, match="can only be tightened"):
        SafetyLimits().tightened(accel_cap_g=1.5)
    with pytest.raises(UsageError, match="can only be tightened"):
        SafetyLimits().tightened(open_loop_level=0.2)
    with pytest.raises(UsageError, match="unknown safety limit"):
        SafetyLimits().tightened(speed_limit=3)


def test_profile_files(tmp_path):
    good = tmp_path / "platform.toml"
    good.write_text("[safety]\naccel_cap_g = 0.6\nstale_s = 0.25\n")
    assert load_profile(good).accel_cap_g == 0.6
    bad = tmp_path / "bad.toml"
    bad.write_text("[safety\n")
    with pytest.raises(UsageError, match="not valid TOML"):
        load_profile(bad)
    empty = tmp_path / "empty.toml"
    empty.write_text("x = 1\n")
    with pytest.raises(UsageError, match="no \\[safety\\] table"):
        load_profile(empty)
    with pytest.raises(UsageError, match="cannot read"):
        load_profile(tmp_path / "absent.toml")


def test_the_cap_cuts_at_once_even_before_delivery():
    interlocks = Interlocks(SafetyLimits(accel_cap_g=0.8), RX)  # not armed: ramping up
    interlocks.on_block(1.0, 0.7 * G, None)
    with pytest.raises(Trip, match="above the 0.8 g safety cap") as trip:
        interlocks.on_block(1.25, 0.81 * G, None)
    assert trip.value.cut


def test_over_level_needs_its_margin_for_its_time_and_cuts():
    interlocks = _armed()
    interlocks.on_block(1.00, 1.3 * TARGET, None)  # +30 %: over the 25 % margin
    interlocks.on_block(1.25, 1.3 * TARGET, None)
    interlocks.on_block(1.50, 1.2 * TARGET, None)  # back under: the timer restarts
    interlocks.on_block(1.75, 1.3 * TARGET, None)
    interlocks.on_block(2.00, 1.3 * TARGET, None)
    with pytest.raises(Trip, match="stayed over 25 % above") as trip:
        interlocks.on_block(2.25, 1.3 * TARGET, None)
    assert trip.value.cut


def test_stale_sensor_trips_after_its_time_and_says_why():
    interlocks = _armed()
    interlocks.on_block(1.00, TARGET, None)
    interlocks.on_block(1.25, None, "frozen (the sensor has stalled)")
    with pytest.raises(Trip, match="frozen .* for 0.5 s") as trip:
        interlocks.on_block(1.50, None, "frozen (the sensor has stalled)")
    assert not trip.value.cut


def test_frequency_thd_and_unverifiable_windows_need_their_time():
    interlocks = _armed()
    interlocks.on_window(1.0, _m(frequency_hz=31.5), 0.2, 1.0)
    with pytest.raises(Trip, match="frequency 31.50 Hz outside 30 \\+- 1 Hz"):
        interlocks.on_window(3.0, _m(frequency_hz=31.5), 0.2, 1.0)
    interlocks = _armed()
    interlocks.on_window(1.0, _m(thd_percent=30), 0.2, 1.0)
    interlocks.on_window(2.0, _m(thd_percent=5), 0.2, 1.0)  # resets
    interlocks.on_window(3.0, _m(thd_percent=30), 0.2, 1.0)
    with pytest.raises(Trip, match="THD 30.0 % above 25 %"):
        interlocks.on_window(5.0, _m(thd_percent=30), 0.2, 1.0)
    interlocks = _armed()
    interlocks.on_window(1.0, None, 0.2, 1.0)
    interlocks.on_window(3.0, _m(snr_db=-5), 0.2, 1.0)
    with pytest.raises(Trip, match="cannot be verified"):
        interlocks.on_window(4.0, None, 0.2, 1.0)


def test_open_loop_drive_at_its_cap_with_the_level_low():
    interlocks = _armed(max_drive_rise=10.0)
    interlocks.on_window(1.0, _m(peak_g=0.1), 0.9, 0.9)
    with pytest.raises(Trip, match="open loop"):
        interlocks.on_window(3.0, _m(peak_g=0.1), 0.9, 0.9)


def test_response_changes_beyond_their_limits_trip():
    interlocks = _armed()
    interlocks.on_drive_request(0.29)  # 1.45x: a heavier subject, held
    with pytest.raises(Trip, match="response fell"):
        interlocks.on_drive_request(0.31)
    interlocks.on_drive_request(0.12)  # 1.67x more response: held
    with pytest.raises(Trip, match="did the subject step off") as trip:
        interlocks.on_drive_request(0.11)
    assert trip.value.cut


def test_level_interlocks_wait_for_delivery():
    interlocks = Interlocks(SafetyLimits(), RX)
    for t in (1.0, 1.25, 1.5, 1.75):
        interlocks.on_block(t, 2.0 * TARGET, None)  # over the margin, but ramping: fine
    interlocks.on_window(5.0, None, 0.2, 0.2)
    interlocks.on_drive_request(10.0)
