"""Calibrating the simulated platform through the headless API: the fit, its uncertainty, safety,
every bad response, and the calibration file."""

import dataclasses
import math
import threading
from datetime import timedelta

import numpy as np
import pytest
import tomli_w

from livctl.cli import OPTIONS
from livctl.events import Phase
from livctl.platforms import open_platform, parse_device_url
from livctl.platforms.sim import SimPlatform
from livctl.records.calibration import (
    FORMAT_VERSION,
    CalibrationError,
    find_calibration,
    load_calibration,
    save_calibration,
    session_calibration,
    to_toml,
)
from livctl.procedures.calibrate import (
    CalibrationFailed,
    CalibrationInterrupted,
    Calibrator,
    SweepSettings,
)
from livctl.units import g_to_mps2


class FaultySim(SimPlatform):
    """The real simulator with a fault between it and livctl (in the drive, the frequency or the sensor)."""

    drive_map = staticmethod(lambda level: level)
    frequency_factor = 1.0
    sample_map = staticmethod(lambda accel: accel)

    @classmethod
    def build(cls, url="sim://", **faults):
        platform = cls.from_url(parse_device_url(url), speed=math.inf)
        for name, value in faults.items():
            setattr(platform, name, staticmethod(value) if callable(value) else value)
        return platform

    def set_frequency(self, frequency_hz):
        super().set_frequency(frequency_hz * self.frequency_factor)

    def _set_drive(self, level, ramp_s):  # below the platform's own check: a fault in the amplifier
        super()._set_drive(self.drive_map(level), ramp_s)

    def read(self, duration_s):
        block = super().read(duration_s)
        return dataclasses.replace(block, accel_mps2=self.sample_map(np.array(block.accel_mps2)))


class Recorder:
    """An observer (livctl.events.Observer) keeping status lines, steps and phases."""

    def __init__(self):
        self.steps, self.lines, self.phases = [], [], []

    def on_status(self, text):
        self.lines.append(text)

    def on_window(self, progress):
        self.steps.append((progress.frequency_hz, progress.step, progress.gain))

    def on_phase(self, phase, frequency_hz):
        self.phases.append((phase, frequency_hz))


def spy_drive(platform):
    """Record every drive command and cut the platform receives (the real calls still happen)."""
    calls = []
    set_drive, cut = platform.set_drive, platform.cut_drive

    def recording_set_drive(level, ramp_s):
        calls.append(("set", level, ramp_s))
        return set_drive(level, ramp_s)

    def recording_cut():
        calls.append(("cut", 0.0, 0.0))
        cut()

    platform.set_drive, platform.cut_drive = recording_set_drive, recording_cut
    return calls


def calibrate(url="sim://", settings=None, **kwargs):
    platform = open_platform(url, speed=math.inf)
    with platform:
        cal = Calibrator(platform, settings or SweepSettings(), **kwargs).run()
    return cal, platform


def small_signal_gain(platform, frequency_hz):
    """The simulator's true peak m/s^2 per unit drive at vanishing drive (its ground truth)."""
    return platform.device.true_peak_mps2(frequency_hz, 1e-4) / 1e-4


# -- the fit ------------------------------------------------------------------------------------


@pytest.mark.parametrize("load_kg, seed", [(40.0, 11), (120.0, 12)])
def test_fitted_gain_is_within_two_percent_of_the_truth_at_two_loads_and_its_uncertainty_covers_the_error(load_kg, seed):
    cal, platform = calibrate(f"sim://?load_kg={load_kg}&seed={seed}", load_kg=load_kg)
    gain = cal.gain_at(30.0)
    true = small_signal_gain(platform, 30.0)
    error = gain.mps2_per_drive - true
    assert abs(error) / true < 0.02
    # the stated standard uncertainty covers the error (k = 3: 99.7 % for an honest uncertainty)
    assert abs(error) <= 3 * gain.u_mps2_per_drive
    assert 0 < gain.u_mps2_per_drive / true < 0.01
    # the whole fitted curve follows the simulator's response, compression included
    for drive in (0.1, 0.3, 0.5):
        if drive <= cal.working_point.top_drive:
            truth = platform.device.true_peak_mps2(30.0, drive)
            assert gain.accel_mps2(drive) == pytest.approx(truth, rel=0.01)
    assert cal.load_kg == load_kg


def test_the_two_loads_give_different_gains_as_the_mass_line_says():
    light, _ = calibrate("sim://?load_kg=40&seed=1")
    heavy, _ = calibrate("sim://?load_kg=120&seed=1")
    ratio = light.gain_at(30).mps2_per_drive / heavy.gain_at(30).mps2_per_drive
    assert ratio > 2.0  # above resonance the response falls roughly as 1 / mass: (12+120)/(12+40) = 2.5


def test_the_stated_uncertainty_is_honest_over_many_seeds():
    z = []
    for seed in range(20):
        cal, platform = calibrate(f"sim://?seed={100 + seed}")
        gain = cal.gain_at(30.0)
        z.append((gain.mps2_per_drive - small_signal_gain(platform, 30.0)) / gain.u_mps2_per_drive)
    rms = math.sqrt(sum(v * v for v in z) / len(z))
    # for honest standard uncertainties z ~ N(0, 1): 20 rms^2 ~ chi2(20), within [0.6, 1.5] at 99.9 %
    assert 0.6 < rms < 1.5, z


def test_mouse_platform_at_90_hz_calibrates_under_its_low_cap_drive():
    cal, platform = calibrate("sim://?load_kg=0.5&seed=4", SweepSettings(frequency_hz=90.0, top_accel_g=0.5))
    point = cal.working_point
    true = small_signal_gain(platform, 90.0)
    assert point.gain.mps2_per_drive == pytest.approx(true, rel=0.02)
    assert abs(point.gain.mps2_per_drive - true) <= 3 * point.gain.u_mps2_per_drive
    # the largest safe drive reaches at most the cap, by the simulator's truth
    assert platform.device.true_peak_mps2(90.0, point.max_safe_drive) <= g_to_mps2(1.0)
    assert platform.device.true_peak_mps2(90.0, point.max_safe_drive) > g_to_mps2(0.95)


def test_linearity_thd_and_limits_are_reported_with_uncertainties():
    cal, platform = calibrate("sim://?seed=5")
    point = cal.working_point
    # the simulator's actuator compresses: 0.75 * cubic(-0.05) * d^2 of the linear response
    expected = 100 * 0.75 * -0.05 * point.top_drive**2
    assert point.nonlinearity_percent == pytest.approx(expected, abs=3 * point.nonlinearity_u_percent + 0.05)
    assert point.nonlinearity_u_percent > 0
    assert 0.5 < point.top_step.thd_percent < 5  # the quadratic term's second harmonic
    assert point.cap_drive == pytest.approx(_true_cap_drive(platform, 30.0), rel=0.01)
    assert 0 < point.cap_drive_u < 0.01
    assert point.max_safe_drive == pytest.approx(point.cap_drive - 2 * point.cap_drive_u)
    assert len(point.residuals_mps2()) == len(point.steps) >= 8
    assert point.chi2_reduced < 3
    assert cal.sensor.vertical_gravity_g == pytest.approx(1.0, abs=0.01)
    assert 0.015 < cal.sensor.vertical_noise_rms_g < 0.035  # ADXL345 z: 600 ug/sqrt(Hz) over 1600 Hz = 24 mg


def _true_cap_drive(platform, frequency_hz):
    lo, hi = 0.0, 1.0
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if platform.device.true_peak_mps2(frequency_hz, mid) < g_to_mps2(1.0) else (lo, mid)
    return lo


def test_gain_api_gives_the_drive_for_a_target_acceleration():
    cal, platform = calibrate("sim://?seed=6", SweepSettings(extra_frequencies_hz=(28.0, 32.0)))
    gain = cal.gain_at(30.2)  # within 1 Hz of the 30 Hz point
    assert gain.frequency_hz == 30.0
    drive = gain.drive_for(g_to_mps2(0.4))
    assert platform.device.true_peak_mps2(30.0, drive) == pytest.approx(g_to_mps2(0.4), rel=0.005)
    assert gain.accel_u_mps2(drive) > 0
    assert {p.frequency_hz for p in cal.points} == {28.0, 30.0, 32.0}
    assert cal.gain_at(28).mps2_per_drive > gain.mps2_per_drive > cal.gain_at(32).mps2_per_drive
    with pytest.raises(CalibrationError, match="no point near 35 Hz"):
        cal.gain_at(35.0)


# -- safety -------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["sim://?load_kg=0.5", "sim://?load_kg=70", "sim://?load_kg=300&actuator_n=400"])
def test_the_sweep_never_commands_more_than_the_cap_nor_more_than_four_times_the_last_level(url):
    platform = open_platform(url, speed=math.inf)
    calls = spy_drive(platform)
    with platform:
        calibrator = Calibrator(platform, SweepSettings(top_accel_g=1.0))
        cal = calibrator.run()
    levels = [level for kind, level, _ in calls if kind == "set" and level > 0]
    assert max(platform.device.true_peak_mps2(30.0, lv) for lv in levels) <= g_to_mps2(1.0)
    highest = 0.0
    for level in levels:
        assert highest == 0.0 or level <= 4.0 * highest + 1e-12
        highest = max(highest, level)
    # the first drive is safe even for a platform 1000x stronger than the simulator's default (1.5 g)
    assert levels[0] == pytest.approx(calibrator.guard.first_drive) and 1000 * 1.5 * levels[0] <= 0.5
    # it ends ramped down and cut
    assert calls[-2][:2] == ("set", 0.0) and calls[-2][2] > 0 and calls[-1][0] == "cut"
    assert platform.device.drive_level == 0.0
    assert cal.max_safe_drive <= 1.0


def test_explicit_levels_that_would_pass_the_cap_stop_before_it():
    platform = open_platform("sim://?seed=2", speed=math.inf)
    calls = spy_drive(platform)
    with platform, pytest.raises(CalibrationFailed) as failed:
        Calibrator(platform, SweepSettings(levels=(0.1, 0.3, 0.9))).run()
    assert failed.value.kind == "cap"
    assert "would exceed the cap: 90.0 % drive" in str(failed.value)
    commanded = [level for kind, level, _ in calls if kind == "set"]
    # 0.3 doubled (held a little lower by the guard, whose prediction with the harmonics passes 95 % of
    # the cap at 0.6), then stopped before 0.9
    assert 0.9 not in commanded and 0.55 < max(commanded) <= 0.6
    assert platform.device.drive_level == 0.0 and calls[-1][0] == "cut"


def test_a_response_over_the_cap_cuts_the_drive_at_once():
    # an amplifier whose gain jumps threefold above 30 % drive: the prediction cannot know it
    platform = FaultySim.build("sim://?seed=3", drive_map=lambda level: level * 3 if level > 0.3 else level)
    calls = spy_drive(platform)
    with platform, pytest.raises(CalibrationFailed) as failed:
        Calibrator(platform, SweepSettings(top_accel_g=1.0)).run()
    assert failed.value.kind == "cap"
    # the platform's own trip (within two cycles) or the guard's check of the block, whichever is first
    assert ("1 g safety cap" in str(failed.value) or "own over-acceleration trip" in str(failed.value))
    assert str(failed.value).endswith("drive cut")
    assert calls[-1][0] == "cut" and calls[-2][1] > 0.3  # no ramp down: cut straight from the level
    assert platform.device.drive_level == 0.0


@pytest.mark.parametrize("settings, message", [
    (SweepSettings(top_accel_g=1.5), "would exceed the 1 g safety cap"),
    (SweepSettings(levels=(0.1, 1.2)), "drive level 120 % is outside"),
    (SweepSettings(frequency_hz=500), "outside 10-200 Hz"),
    (SweepSettings(extra_frequencies_hz=(30.0,)), "given once"),
    (SweepSettings(steps=1), "steps must be between"),
])
def test_bad_settings_are_refused_before_anything_moves(settings, message):
    platform = open_platform("sim://", speed=math.inf)
    calls = spy_drive(platform)
    with pytest.raises(CalibrationError, match=message):
        Calibrator(platform, settings)
    assert calls == [] and platform.device.samples_done == 0


# -- bad responses stop safely and say which ------------------------------------------------------


@pytest.mark.parametrize("faults, kind, message", [
    (dict(sample_map=lambda a: a * 0.0), "sensor", "reads nothing"),
    # fresh noise in every block: the same noise again would be a replay, which the sensor watch stops
    (dict(sample_map=lambda a, rng=np.random.default_rng(1): rng.normal(0, 3.0, a.shape)), "sensor", "only noise"),
    (dict(sample_map=lambda a: np.full_like(a, 9.8)), "sensor", "stalled"),
    (dict(sample_map=lambda a: a[:, [2, 1, 0]]), "sensor", "gravity is on the sensor's x axis"),
    (dict(drive_map=lambda level: 0.0), "no-response", "does not respond"),
    (dict(frequency_factor=1.2), "frequency", "the platform vibrates at 3"),
    (dict(drive_map=lambda level: level if level <= 0.1 else max(0.0, 0.1 - 2 * (level - 0.1))),
     "non-monotonic", "non-monotonic response"),
    (dict(sample_map=lambda a: np.column_stack(
        [a[:, 0], a[:, 1], 9.80665 + np.clip(a[:, 2] - 9.80665, -2.5, 2.5)])), "clipped", "clipped"),
])
def test_a_bad_sensor_or_response_stops_the_calibration_and_says_which(faults, kind, message):
    platform = FaultySim.build("sim://?seed=7", **faults)
    calls = spy_drive(platform)
    with platform, pytest.raises(CalibrationFailed) as failed:
        Calibrator(platform).run()
    assert failed.value.kind == kind
    assert message in str(failed.value)
    assert "\n" not in str(failed.value)
    assert calls[-1][0] == "cut" and platform.device.drive_level == 0.0
    if kind == "sensor":  # found at rest: nothing was ever driven
        assert all(level == 0.0 for _, level, _ in calls)


def test_a_platform_that_barely_moves_is_refused_as_not_responding():
    platform = open_platform("sim://?actuator_n=0.01", speed=math.inf)
    with platform, pytest.raises(CalibrationFailed, match="no measurable 30 Hz vibration at 30 % drive"):
        Calibrator(platform).run()
    assert platform.device.drive_level == 0.0


def test_a_stop_request_ramps_down_and_raises_interrupted():
    stop = threading.Event()
    stop.reason = "stopped by SIGINT"

    class StopAfterThreeSteps(Recorder):
        def on_window(self, progress):
            super().on_window(progress)
            if len(self.steps) == 3:
                stop.set()

    platform = open_platform("sim://", speed=math.inf)
    calls = spy_drive(platform)
    observer = StopAfterThreeSteps()
    with platform, pytest.raises(CalibrationInterrupted, match="stopped by SIGINT") as stopped:
        Calibrator(platform, stop=stop, observer=observer).run()
    assert stopped.value.exit_code == 130
    assert len(observer.steps) == 3
    assert calls[-2][:2] == ("set", 0.0) and calls[-2][2] > 0 and calls[-1][0] == "cut"
    assert platform.device.drive_level == 0.0


def test_the_observer_sees_every_step_with_the_fit_growing():
    observer = Recorder()
    cal, _ = calibrate("sim://?seed=8", observer=observer)
    assert len(observer.steps) == len(cal.working_point.steps)
    assert observer.steps[0][2] is None and observer.steps[-1][2] is not None
    assert observer.steps[-1][2].mps2_per_drive == pytest.approx(cal.gain_at(30).mps2_per_drive)
    assert any(line.startswith("sensor at rest: gravity +") and "g on z" in line for line in observer.lines)
    assert observer.phases == [(Phase.SWEEP, 30.0)]  # the one frequency swept, told once


# -- the file -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_calibration():
    cal, _ = calibrate("sim://?seed=9&id=bench-A", SweepSettings(extra_frequencies_hz=(28.0,)),
                       operator="ana", load_kg=70.0, sensor_model="ADXL345 #17")
    return cal


def test_a_calibration_survives_the_round_trip_through_its_file(tmp_path, sample_calibration):
    path = save_calibration(sample_calibration, tmp_path)
    assert path == tmp_path / "bench-A.toml"
    text = path.read_text()
    assert text.startswith("# livctl platform calibration")
    loaded = load_calibration(path, platform_id="bench-A")
    assert_same(loaded.to_dict(), sample_calibration.to_dict())
    assert_same(dataclasses.asdict(loaded.gain_at(30)), dataclasses.asdict(sample_calibration.gain_at(30)))
    assert loaded.operator == "ana" and loaded.sensor.model == "ADXL345 #17" and loaded.load_kg == 70.0
    assert find_calibration("bench-A", tmp_path).calibration_id == sample_calibration.calibration_id
    assert find_calibration("other", tmp_path) is None
    for field in ("platform_id", "calibration_id", "date_utc", "operator", "livctl_version", "working_frequency_hz"):
        assert field in text
    assert "[[points.steps]]" in text and "gain_u_g_per_drive" in text and "residual_g" in text


def test_a_calibration_is_never_overwritten_silently(tmp_path, sample_calibration):
    path = save_calibration(sample_calibration, tmp_path)
    before = path.read_text()
    newer = dataclasses.replace(sample_calibration, calibration_id="bench-A-newer")
    with pytest.raises(CalibrationError, match="already exists; pass force") as refused:
        save_calibration(newer, tmp_path)
    assert "pass --force to replace it, or --calibration-dir DIR" in refused.value.worded(OPTIONS)
    assert path.read_text() == before
    save_calibration(newer, tmp_path, force=True)
    assert load_calibration(path).calibration_id == "bench-A-newer"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench-A.toml"]  # no temporary files left


def assert_same(a, b, where="calibration"):
    """Equal structures, numbers equal up to the rounding of the g <-> m/s^2 conversion."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for n, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{n}]")
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-15), where
    else:
        assert a == b, where


def _write_doc(path, doc):
    path.write_text(tomli_w.dumps(doc))
    return path


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("platform_id"), "missing platform_id; recalibrate or restore the file"),
    (lambda d: d["points"][0].pop("gain_g_per_drive"), "missing points[0].gain_g_per_drive"),
    (lambda d: d["points"][0]["steps"][1].update(drive="high"), "points[0].steps[1].drive must be a positive number"),
    (lambda d: d.update(format=FORMAT_VERSION + 1), "newer than this livctl reads"),
    (lambda d: d["sensor"].update(vertical_axis="w"), 'sensor.vertical_axis must be one of "x", "y", "z"'),
    (lambda d: d["points"][0].update(gain_g_per_drive=-1.0), "gain_g_per_drive must be a positive number"),
    (lambda d: d.update(working_frequency_hz=45.0), "no point near 45 Hz"),
])
def test_a_damaged_file_is_a_one_line_error(tmp_path, sample_calibration, change, message):
    doc = sample_calibration.to_dict()
    change(doc)
    path = _write_doc(tmp_path / "bench-A.toml", doc)
    with pytest.raises(CalibrationError, match=message.replace("[", r"\[").replace("]", r"\]")) as bad:
        load_calibration(path)
    assert "\n" not in str(bad.value) and bad.value.exit_code == 2


def test_syntax_errors_and_foreign_platforms_are_refused(tmp_path, sample_calibration):
    path = tmp_path / "bench-A.toml"
    path.write_text(to_toml(sample_calibration).replace("format = 1", "format = = 1"))
    with pytest.raises(CalibrationError, match="is not valid TOML"):
        load_calibration(path)
    save_calibration(sample_calibration, tmp_path, force=True)
    (tmp_path / "bench-B.toml").write_text(path.read_text())
    with pytest.raises(CalibrationError, match="calibration of platform 'bench-A', not 'bench-B'"):
        find_calibration("bench-B", tmp_path)


# -- sessions -----------------------------------------------------------------------------------


class RealishSim(SimPlatform):
    """The simulator posing as real hardware (`simulated` False), for the policy on real platforms."""

    simulated = False


def test_a_real_platform_without_a_calibration_is_refused_and_the_simulator_runs_without(tmp_path):
    real = RealishSim.from_url(parse_device_url("sim://?id=rig-1"), speed=math.inf)
    with pytest.raises(CalibrationError, match="platform 'rig-1' has no calibration"):
        session_calibration(real, tmp_path, frequency_hz=30.0)
    sim = open_platform("sim://?id=rig-1", speed=math.inf)
    assert session_calibration(sim, tmp_path, frequency_hz=30.0) == (None, [])


def test_sessions_warn_about_age_frequency_and_load(tmp_path, sample_calibration):
    sample_calibration = dataclasses.replace(sample_calibration, simulated=False)  # as if made on the rig
    save_calibration(sample_calibration, tmp_path)
    platform = RealishSim.from_url(parse_device_url("sim://?id=bench-A"), speed=math.inf)
    cal, warnings = session_calibration(platform, tmp_path, frequency_hz=30.3, load_kg=75.0)
    assert cal.calibration_id == sample_calibration.calibration_id and warnings == []
    later = sample_calibration.date_utc + timedelta(days=45)
    _, warnings = session_calibration(platform, tmp_path, frequency_hz=35.0, load_kg=120.0,
                                      max_age_days=30, now=later)
    assert len(warnings) == 3
    assert "is 45 days old (older than 30)" in warnings[0]
    assert "made at 28, 30 Hz, not 35 Hz" in warnings[1]
    assert "made with 70 kg on the platform, not 120 kg" in warnings[2]
    assert session_calibration(platform, tmp_path, frequency_hz=30, max_age_days=60, now=later)[1] == []


def test_a_real_platform_refuses_a_calibration_made_on_the_simulator(tmp_path, sample_calibration):
    save_calibration(sample_calibration, tmp_path)  # made on sim://
    platform = RealishSim.from_url(parse_device_url("sim://?id=bench-A"), speed=math.inf)
    with pytest.raises(CalibrationError, match="made on a simulated platform .* is real and needs its own"):
        session_calibration(platform, tmp_path, frequency_hz=30.0)
