"""Safety limits and interlocks, on their own (the fault matrix runs them in whole sessions).

Blocks are 0.1 s; each test feeds block fits (livctl.dsp.blockfit.BlockFit) with the level, phase and
distortion it needs, and checks when the interlock trips, measured from the first bad block."""

import math

import pytest

from livctl.dsp.blockfit import BlockFit
from livctl.errors import UsageError
from livctl.prescription import Prescription
from livctl.procedures.safety import Interlocks, SafetyLimits, Trip, load_profile

G = 9.80665
RX = Prescription(frequency_hz=30.0, peak_g=0.3, duration_s=600.0)
TARGET = 0.3 * G
BLOCK = 0.1


def _fit(level=TARGET, *, phase=0.0, thd=0.01, noise=0.02 * G) -> BlockFit:
    return BlockFit(frequency_hz=30.0, fundamental_mps2=level, fundamental_se_mps2=noise * math.sqrt(2 / 320),
                    phase_rad=math.remainder(phase, 2 * math.pi), harmonics_mps2=(thd * level,), true_peak_mps2=level,
                    dc_mps2=G, noise_rms_mps2=noise, n=320)


def _armed(**limits) -> Interlocks:
    interlocks = Interlocks(SafetyLimits(**limits), RX)
    interlocks.arm(expected_drive=0.2)
    return interlocks


def _feed(interlocks, start_s, end_s, make, **kwargs) -> float:
    """Blocks from start_s to end_s; returns the block end at which an interlock tripped (or inf)."""
    t = start_s
    while t < end_s - 1e-9:
        try:
            interlocks.on_block(t, t + BLOCK, *make(t), **kwargs)
        except Trip:
            return round(t + BLOCK, 6)
        t += BLOCK
    return math.inf


def test_profiles_may_tighten_but_never_loosen():
    limits = SafetyLimits().tightened(accel_cap_g=0.8, over_level_s=0.25, open_loop_level_fraction=0.7)
    assert (limits.accel_cap_g, limits.over_level_s, limits.open_loop_level_fraction) == (0.8, 0.25, 0.7)
    with pytest.raises(UsageError, match="can only be tightened"):
        SafetyLimits().tightened(accel_cap_g=1.5)
    with pytest.raises(UsageError, match="can only be tightened"):
        SafetyLimits().tightened(open_loop_level_fraction=0.2)
    with pytest.raises(UsageError, match="unknown safety limit"):
        SafetyLimits().tightened(speed_limit=3)


def test_a_time_shorter_than_its_check_resolves_is_refused():
    with pytest.raises(UsageError, match="stale_s cannot be shorter than 0.2 s"):
        SafetyLimits().tightened(stale_s=0.05)
    with pytest.raises(UsageError, match="frequency_s cannot be shorter than 0.5 s"):
        SafetyLimits().tightened(frequency_s=0.3)
    with pytest.raises(UsageError, match="above 0 g"):
        SafetyLimits().tightened(accel_cap_g=0)


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


@pytest.mark.parametrize("old, new", [("over_level_margin", "over_level_fraction"),
                                      ("open_loop_level", "open_loop_level_fraction"),
                                      ("max_drive_rise", "max_drive_rise_ratio"),
                                      ("max_response_rise", "max_response_rise_ratio"),
                                      ("calibration_mismatch", "calibration_mismatch_fraction")])
def test_a_profile_with_a_dimensionless_limits_old_name_is_refused_with_the_new_one(tmp_path, old, new):
    profile = tmp_path / "platform.toml"
    profile.write_text(f"[safety]\n{old} = 0.2\n")
    with pytest.raises(UsageError, match=f"safety.{old} is now called safety.{new} .the same limit.; rename it"):
        load_profile(profile)
    assert set(SafetyLimits.__dataclass_fields__) >= {new}


@pytest.mark.parametrize("onset_s", [10.0, 10.03, 10.07])
def test_over_level_trips_within_its_time_of_the_first_bad_sample_and_cuts(onset_s):
    interlocks = _armed()

    def level(t):  # a block holding any of the over-level part reads over only if mostly over
        over = (t + BLOCK - onset_s) / BLOCK
        return (_fit(TARGET * (1.3 if over >= 0.5 else 1.0)), None)

    tripped = _feed(interlocks, 9.0, 12.0, level)
    assert onset_s + 0.5 - 0.2 - 1e-9 <= tripped <= onset_s + 0.5 + 1e-9
    with pytest.raises(Trip) as trip:
        interlocks.on_block(tripped, tripped + BLOCK, _fit(1.3 * TARGET), None)
    assert trip.value.cut and "stayed over 25 % above" in trip.value.reason


def test_over_level_needs_its_whole_time():
    interlocks = _armed()
    # over for 0.3 s, under for one block (the timer restarts), then over for good
    tripped = _feed(interlocks, 10.0, 12.0, lambda t: (_fit(TARGET * (1.2 if round(t, 6) == 10.3 else 1.3)), None))
    assert tripped == pytest.approx(10.4 + 0.5 - 0.1)  # counted from the block before the first over block


@pytest.mark.parametrize("problem", ["frozen (the sensor has stalled)", "absent", "not finite (corrupted)"])
def test_a_stale_sensor_trips_within_its_time_always_and_says_why(problem):
    interlocks = Interlocks(SafetyLimits(), RX)  # not armed: the stale check is always on
    tripped = _feed(interlocks, 5.0, 8.0, lambda t: (None, problem) if t >= 6.0 - 1e-9 else (_fit(0.0), None))
    assert 6.0 + 0.5 - 0.2 - 1e-9 <= tripped <= 6.0 + 0.5 + 1e-9
    with pytest.raises(Trip, match=f"sensor data {problem.split(' ')[0]}") as trip:
        interlocks.on_block(tripped, tripped + BLOCK, None, problem)
    assert not trip.value.cut


def test_frequency_off_trips_within_two_seconds_from_the_phase_of_the_blocks():
    interlocks = _armed()
    onset = 20.0

    def drifting(t):  # the plate runs 1.5 Hz fast from the onset: its phase against the drive's walks
        phase = 2 * math.pi * 1.5 * max(0.0, t + BLOCK - onset)
        return (_fit(phase=phase), None)

    tripped = _feed(interlocks, 18.0, 25.0, drifting)
    assert onset + 2.0 - 0.5 - 1e-9 <= tripped <= onset + 2.0 + 1e-9
    with pytest.raises(Trip, match="frequency 31.50 Hz outside 30 \\+- 1 Hz for 2 s"):
        interlocks.on_block(tripped, tripped + BLOCK, *drifting(tripped))


def test_a_steady_phase_or_a_small_offset_never_trips_the_frequency_check():
    interlocks = _armed()
    assert _feed(interlocks, 0.0, 10.0, lambda t: (_fit(phase=1.0 + 2 * math.pi * 0.5 * t), None)) == math.inf


def test_distortion_and_an_unverifiable_dose_need_their_time():
    interlocks = _armed()
    tripped = _feed(interlocks, 0.0, 10.0, lambda t: (_fit(thd=0.3 if t >= 3.0 - 1e-9 else 0.01), None))
    assert 3.0 + 2.0 - 0.5 - 1e-9 <= tripped <= 3.0 + 2.0 + 1e-9
    interlocks = _armed()
    quiet = _fit(level=0.001 * G, noise=0.05 * G)  # SNR far under 0 dB
    tripped = _feed(interlocks, 0.0, 10.0, lambda t: (quiet if t >= 4.0 - 1e-9 else _fit(), None))
    assert 4.0 + 3.0 - 0.5 - 1e-9 <= tripped <= 4.0 + 3.0 + 1e-9


def test_open_loop_drive_at_its_cap_with_the_level_low():
    interlocks = _armed(max_drive_rise_ratio=10.0)
    tripped = _feed(interlocks, 0.0, 5.0, lambda t: (_fit(0.1 * G), None), drive=0.9, drive_cap=0.9)
    assert 2.0 - 0.2 - 1e-9 <= tripped <= 2.0 + 1e-9


def test_an_under_dose_at_the_ceiling_stops_within_three_seconds():
    interlocks = _armed(max_drive_rise_ratio=10.0)
    # 20 % short, drive at its ceiling, the controller asking for more: no open loop (80 % > 50 %)
    tripped = _feed(interlocks, 0.0, 6.0, lambda t: (_fit(0.8 * TARGET), None), drive=0.5, drive_cap=0.5,
                    saturated=True)
    assert 3.0 - 0.2 - 1e-9 <= tripped <= 3.0 + 1e-9
    with pytest.raises(Trip, match="under-dose: at its drive ceiling"):
        interlocks.on_block(tripped, tripped + BLOCK, _fit(0.8 * TARGET), None, drive=0.5, drive_cap=0.5, saturated=True)
    # within the tolerance (5 % short) at the ceiling is a dose, not an under-dose
    interlocks = _armed(max_drive_rise_ratio=10.0)
    assert _feed(interlocks, 0.0, 6.0, lambda t: (_fit(0.95 * TARGET), None), drive=0.5, drive_cap=0.5,
                 saturated=True) == math.inf


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
    assert _feed(interlocks, 0.0, 5.0, lambda t: (_fit(2.0 * TARGET, thd=0.5), None), drive=1.0, drive_cap=1.0,
                 saturated=True) == math.inf
    interlocks.on_drive_request(10.0)
