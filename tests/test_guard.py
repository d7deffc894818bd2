"""The motion guard, the one way a platform moves: its clamp, its first drive, its cap on every
block, its stop within one block; property tests over what any caller could throw at it.

Everything runs on the real simulator; what the plate did is read from its own truth (the
plate's true acceleration), never from what livctl measured."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livctl.platforms import open_platform
from livctl.platforms.sim import SimPlatform
from livctl.procedures.control import AmplitudeController, ControlSettings
from livctl.errors import DriveRequestError, PlatformError
from livctl.procedures.guard import (
    FIRST_DRIVE_GAIN_FACTOR,
    REFERENCE_GAIN_G_PER_DRIVE,
    DriveCut,
    MotionGuard,
    StopRequested,
)
from livctl.procedures.prepare import SessionRequest
from livctl.prescription import Prescription, Tolerance
from livctl.procedures.safety import Trip
from livctl.procedures.session import DELIVER, RAMP_DOWN, run_session
from livctl.procedures.stopping import StopSignal
from livctl.units import g_to_mps2

G = 9.80665


class Recording(SimPlatform):
    """sim:// that keeps every drive command that reaches its backend, with the ceiling then in force."""

    def _set_drive(self, level, ramp_s):
        self.sent.append((level, ramp_s, self.max_drive))
        super()._set_drive(level, ramp_s)


def _recording(url: str = "sim://") -> Recording:
    platform = open_platform(url, speed=math.inf)
    platform.__class__ = Recording
    platform.sent = []
    platform.device.record_truth()
    return platform


def _settles_to_rest(platform) -> bool:
    """After the guard is done, the board's drive is at zero and stays there (no ramp pending)."""
    device = platform.device
    device.advance(int(0.5 * device.rate_hz))
    return device.drive_level == 0.0 and not device.synth.ramping


def _true_peak_g(platform) -> float:
    return float(np.nanmax(np.abs(platform.device.true_accel_mps2()))) / G


# -- the clamp, written once ---------------------------------------------------------------------

anything = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(min_value=-10**6, max_value=10**6),
    st.just(None), st.booleans(), st.text(max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(level=anything, ramp=anything, ceiling=st.floats(min_value=0.0, max_value=1.0))
def test_no_drive_request_reaches_a_backend_above_the_ceiling_negative_or_not_finite(level, ramp, ceiling):
    platform = _recording()
    platform.limit_drive(ceiling)
    try:
        commanded = platform.set_drive(level, ramp)
    except DriveRequestError:
        assert platform.device.drive_level == 0.0  # refused, and the drive cut
    else:
        assert commanded == platform.sent[-1][0]
    for sent, ramp_s, in_force in platform.sent:
        assert math.isfinite(sent) and 0.0 <= sent <= in_force <= ceiling
        assert math.isfinite(ramp_s) and ramp_s >= 0


@settings(max_examples=100, deadline=None)
@given(ceilings=st.lists(st.floats(min_value=0.0, max_value=2.0), min_size=1, max_size=6))
def test_a_ceiling_only_ever_comes_down_and_the_device_enforces_it(ceilings):
    platform = _recording()
    lowest = 1.0
    for ceiling in ceilings:
        lowest = min(lowest, ceiling)
        assert platform.limit_drive(ceiling) == lowest
        assert platform.device.drive_limit == pytest.approx(lowest)
    platform.device.set_drive(1.0, 0.0)  # even a command that went around livctl: the board holds its limit
    assert platform.device.synth.target_amplitude == pytest.approx(lowest)


# -- the guard under any sequence of controller inputs, calibrations and stops ------------------

measurements = st.one_of(
    st.floats(min_value=-1.0, max_value=20.0), st.just(math.nan), st.just(math.inf), st.just(0.0), st.none()
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ceiling=st.floats(min_value=0.0, max_value=1.0),
    target_g=st.floats(min_value=0.05, max_value=1.0),
    start_drive=st.floats(min_value=0.0, max_value=1.5),
    inputs=st.lists(measurements, min_size=1, max_size=25),
    stop_at=st.integers(min_value=0, max_value=30),
    cut_at=st.integers(min_value=0, max_value=40),
    load_kg=st.sampled_from([0.5, 70.0, 120.0]),
)
def test_whatever_the_controller_is_fed_the_guard_keeps_every_drive_in_bounds_and_leaves_the_plate_still(
        ceiling, target_g, start_drive, inputs, stop_at, cut_at, load_kg):
    platform = _recording(f"sim://?load_kg={load_kg}")
    stop = StopSignal()
    controller = AmplitudeController(g_to_mps2(target_g), min(start_drive, 1.0), 1.0, ControlSettings())
    with platform:
        try:
            with MotionGuard(platform, ceiling=ceiling, stop=stop, ramp_s=0.2) as guard:
                guard.set_frequency(30.0)
                for i, value in enumerate(inputs * 2):
                    if i == stop_at:
                        stop.request("a script asked")
                    if i == cut_at:
                        stop.request_cut("a script insisted")
                    measured = None if value is None else g_to_mps2(value)
                    new = controller.on_block(measured) if i % 2 else controller.on_window(measured)
                    if new is not None:
                        guard.drive(new, 0.05)
                    guard.read(0.1)
        except (StopRequested, Trip, DriveCut, PlatformError):
            pass
        assert _settles_to_rest(platform)
    for level, ramp_s, in_force in platform.sent:
        assert math.isfinite(level) and 0.0 <= level <= in_force <= ceiling + 1e-12
    assert _true_peak_g(platform) <= 1.0


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    frequency_hz=st.sampled_from([30.0, 45.0, 90.0]),
    peak_g=st.floats(min_value=0.1, max_value=0.9),
    load_kg=st.sampled_from([0.5, 70.0]),
    actuator_n=st.sampled_from([200.0, 800.0, 1e5]),
    ceiling=st.floats(min_value=0.05, max_value=1.0),
    stop_at_s=st.floats(min_value=0.0, max_value=12.0),
)
def test_no_session_commands_past_its_ceiling_or_leaves_the_plate_moving(
        frequency_hz, peak_g, load_kg, actuator_n, ceiling, stop_at_s):
    platform = _recording(f"sim://?load_kg={load_kg}&actuator_n={actuator_n}")
    platform.limit_drive(ceiling)  # as a calibration's largest safe drive does
    stop = StopSignal()

    def stop_when(block):
        if block.t0_s >= stop_at_s:
            stop.request("stopped by the test")

    rx = Prescription(frequency_hz=frequency_hz, peak_g=peak_g, duration_s=4.0, ramp_s=0.5)
    with platform:
        result = run_session(platform, None, SessionRequest(rx, window_s=0.5), stop=stop, sample_observer=stop_when)
        assert _settles_to_rest(platform)
    assert result.status in ("completed", "aborted", "interrupted")
    for level, _, in_force in platform.sent:
        assert math.isfinite(level) and 0.0 <= level <= in_force <= ceiling + 1e-12
    assert _true_peak_g(platform) <= 1.0 + 1e-9


# -- the first drive ----------------------------------------------------------------------------


@pytest.mark.parametrize("actuator_n", [800.0, 1e6])  # the default plate, and one 1250 times stronger
def test_the_first_drive_is_safe_for_a_platform_1000_times_stronger_and_steps_are_bounded(actuator_n):
    platform = _recording(f"sim://?actuator_n={actuator_n}")
    rx = Prescription(frequency_hz=30.0, peak_g=0.4, duration_s=5.0)
    with platform:
        result = run_session(platform, None, SessionRequest(rx))
    first = platform.sent[0][0]
    assert first == pytest.approx(0.5 / (FIRST_DRIVE_GAIN_FACTOR * REFERENCE_GAIN_G_PER_DRIVE))
    driven = [level for level, _, _ in platform.sent if level > 0]
    assert all(b <= 4.0 * max(driven[: i + 1]) + 1e-12 for i, b in enumerate(driven[1:]))
    assert _true_peak_g(platform) < 1.0  # the strong platform never passed the cap, not even at first
    assert result.status == "completed" and result.in_spec


# -- stopping -------------------------------------------------------------------------------------


def _truth_rows(path):
    from firmware_sim.truth import read_truth

    return read_truth(path)


@pytest.mark.parametrize("window_s", [0.5, 1.0, 10.0])
def test_a_stop_starts_the_ramp_down_within_one_block_whatever_the_window(tmp_path, window_s):
    from livctl.records.doselog import DoseLog

    truth = tmp_path / "truth.csv"
    platform = open_platform(f"sim://?truth={truth}", speed=math.inf)
    stop = StopSignal()
    stop_at_s = 15.05  # in the delivery, mid-window for every window length here

    def stop_when(block):
        if block.t0_s + block.duration_s >= stop_at_s - 1e-9:
            stop.request("stopped by the test")

    rx = Prescription(frequency_hz=30.0, peak_g=0.4, duration_s=60.0)
    with DoseLog(tmp_path / "log.sqlite") as log, platform:
        result = run_session(platform, log, SessionRequest(rx, window_s=window_s), stop=stop, sample_observer=stop_when)
        windows = log.windows(result.session_id)
    assert result.status == "interrupted"
    rows = _truth_rows(truth)
    t, drive = rows["t_s"], rows["drive"]
    steady = drive[(t > stop_at_s - 1.0) & (t <= stop_at_s)].max()
    falling = t[(t > stop_at_s) & (drive < steady * 0.999)]
    assert falling.size and falling[0] - stop_at_s <= 0.25  # the ramp-down had begun within 0.25 s
    assert drive[t > stop_at_s + rx.ramp_s + 0.3].max() == 0.0  # and ran its 2 s course to zero
    # the log counts the delivery up to the block where the stop was honoured, no more
    delivery = [w for w in windows if w["phase"] == DELIVER]
    assert result.delivered_s == pytest.approx(stop_at_s - delivery[0]["t_s"], abs=0.11)
    assert windows[-1]["phase"] == RAMP_DOWN


def test_a_second_stop_cuts_the_drive_at_once(tmp_path):
    truth = tmp_path / "truth.csv"
    platform = open_platform(f"sim://?truth={truth}", speed=math.inf)
    stop = StopSignal()

    def stop_twice(block):
        end = block.t0_s + block.duration_s
        if end >= 15.0 - 1e-9:
            stop.request("stopped by SIGINT")
        if end >= 15.5 - 1e-9:
            stop.request_cut("a second SIGINT")

    rx = Prescription(frequency_hz=30.0, peak_g=0.4, duration_s=60.0, ramp_s=2.0)
    with platform:
        result = run_session(platform, None, SessionRequest(rx), stop=stop, sample_observer=stop_twice)
    assert result.status == "interrupted"
    assert "a second SIGINT: drive cut at once" in result.reason
    rows = _truth_rows(truth)
    # half-way down the 2 s ramp the drive drops to zero (within one block of the second stop)
    assert rows["drive"][(rows["t_s"] > 15.7)].max() == 0.0
    assert rows["drive"][(rows["t_s"] > 15.3) & (rows["t_s"] <= 15.5)].min() > 0.0


# -- the cap, on the signal ------------------------------------------------------------------------


def test_the_cap_acts_on_the_true_peak_harmonics_included():
    # held at 0.8 g, the actuator starts to distort 8 s in: its fundamental stays under the 1 g
    # cap, its true peak with the harmonics goes over it, and the guard cuts on the true peak
    platform = open_platform("sim://?fault=distortion&fault_at_s=8&fault_value=1.5", speed=math.inf)
    platform.device.record_truth()
    blocks = []
    with platform, pytest.raises(Trip) as trip:
        with MotionGuard(platform) as guard:
            guard.set_frequency(30.0)
            level = 0.8 / 1.5  # about 0.8 g on the default plate
            for _ in range(200):
                if guard.drive_level < level:
                    guard.drive(min(level, guard.allowed_drive()), 0.2)
                blocks.append(guard.read(0.1))
    assert trip.value.cut and "(fundamental and harmonics) above the 1 g safety cap" in trip.value.reason
    cut_s = blocks[-1].end_s + 0.1  # the block after the last one returned tripped
    assert 8.0 < cut_s <= 8.2 and platform.device.drive_level == 0.0
    # on the plate's truth, the block that tripped: fundamental under the cap, true peak over it
    from livctl.dsp.estimator import block_levels

    rate = platform.device.rate_hz
    truth = platform.device.true_accel_mps2()[int((cut_s - 0.1) * rate): int(cut_s * rate)]
    _, fundamental = block_levels(truth, rate, 30.0, 0.1)
    assert fundamental[0] < G < np.max(np.abs(truth))
