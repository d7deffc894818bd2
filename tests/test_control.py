"""The amplitude controller's decisions, on their own."""

import math

import pytest

from livctl.procedures.control import AmplitudeController, ControlSettings

TARGET = 2.94  # 0.3 g in m/s^2


def test_a_window_error_is_corrected_in_one_step():
    c = AmplitudeController(TARGET, drive=0.2, drive_cap=1.0)
    assert c.on_window(TARGET * 0.8) == pytest.approx(0.25)
    assert c.drive == pytest.approx(0.25)


def test_loop_gain_sets_the_share_of_the_error_corrected():
    c = AmplitudeController(TARGET, drive=0.2, drive_cap=1.0, settings=ControlSettings(loop_gain=0.5))
    assert c.on_window(TARGET * 0.64) == pytest.approx(0.2 * math.sqrt(1 / 0.64))


def test_small_errors_in_the_deadband_are_left_alone():
    c = AmplitudeController(TARGET, drive=0.2, drive_cap=1.0)
    assert c.on_window(TARGET * 1.001) is None
    assert c.drive == 0.2


def test_a_window_that_mixed_two_drive_levels_is_not_used():
    c = AmplitudeController(TARGET, drive=0.2, drive_cap=1.0)
    assert c.on_block(TARGET * 2.0) == pytest.approx(0.1)  # fast correction mid-window
    assert c.on_window(TARGET * 1.5) is None  # that window measured a mix
    assert c.on_window(TARGET * 1.1) == pytest.approx(0.1 / 1.1)  # the next one is clean


def test_the_fast_loop_acts_only_on_large_real_errors():
    c = AmplitudeController(TARGET, drive=0.2, drive_cap=1.0)
    assert c.on_block(TARGET * 1.03) is None  # within the 5 % threshold
    assert c.on_block(TARGET * 1.2, std_error_mps2=0.1 * TARGET) is None  # 20 % off, but within 4 sigma
    assert c.on_block(TARGET * 1.2, std_error_mps2=0.01 * TARGET) == pytest.approx(0.2 / 1.2)
    assert c.on_block(None) is None


def test_rises_are_rate_limited_falls_are_not():
    c = AmplitudeController(TARGET, drive=0.1, drive_cap=1.0)
    assert c.on_block(TARGET * 0.1) == pytest.approx(0.15)  # would be 10x; limited to 1.5x
    assert c.wanted == pytest.approx(0.15)
    assert c.on_block(TARGET * 10.0) == pytest.approx(0.015)  # a fall of 10x goes at once


def test_no_windup_at_the_cap():
    c = AmplitudeController(TARGET, drive=0.5, drive_cap=0.6)
    for _ in range(20):
        c.on_block(TARGET * 0.1)  # the actuator is gone: the loop asks for more and more
    assert c.drive == 0.6 and c.saturated
    assert c.wanted == pytest.approx(0.9)  # what it asked for last, for the interlocks to judge
    # the level comes back (too high at the cap): the very next correction starts from the cap
    assert c.on_block(TARGET * 1.2) == pytest.approx(0.5)
    assert not c.saturated


def test_open_loop_never_changes_the_drive():
    c = AmplitudeController(TARGET, drive=0.2, drive_cap=1.0, settings=ControlSettings(closed_loop=False))
    assert c.on_block(TARGET * 3) is None and c.on_window(TARGET * 0.5) is None and c.drive == 0.2


@pytest.mark.parametrize("field, value", [("loop_gain", 0.0), ("loop_gain", 1.5), ("fast_threshold_fraction", 1.0), ("max_rise_ratio", 1.0)])
def test_settings_refuse_nonsense(field, value):
    with pytest.raises(ValueError):
        ControlSettings(**{field: value})
