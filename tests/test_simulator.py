"""The simulated platform's plant and sensor models, checked against independent references."""

import math

import numpy as np
import pytest
from scipy import signal

from firmware_sim import SENSORS, Accelerometer, Plant, PlantParams, SimConfig, SimulatedPlatform

RATE = 3200.0
G = 9.80665


def _reference_accel(params: PlantParams, force: np.ndarray) -> np.ndarray:
    """The same plant discretised by scipy (zero-order hold) and stepped sample by sample."""
    m, k, c = params.mass_kg, params.stiffness_n_per_m, params.damping_ns_per_m
    a = np.array([[0.0, 1.0], [-k / m, -c / m]])
    b = np.array([[0.0], [1.0 / m]])
    cm = np.array([[-k / m, -c / m]])
    d = np.array([[1.0 / m]])
    ad, bd, cd, dd, _ = signal.cont2discrete((a, b, cm, d), 1.0 / RATE, method="zoh")
    _, y, _ = signal.dlsim((ad, bd, cd, dd, 1.0 / RATE), force)
    return y[:, 0]


@pytest.mark.parametrize("load_kg", [0.0, 0.5, 70.0, 150.0])
def test_plant_matches_an_independent_discretisation(load_kg):
    params = PlantParams(load_kg=load_kg)
    plant = Plant(RATE, params)
    drive = np.random.default_rng(1).uniform(-1, 1, 9000)
    # in uneven blocks, to prove the state carries over exactly
    got = np.concatenate([plant.step(drive[:1234]), plant.step(drive[1234:5000]), plant.step(drive[5000:])])
    expected = _reference_accel(params, Plant(RATE, params).force_n(drive))
    assert np.max(np.abs(got - expected)) < 1e-9 * np.max(np.abs(expected))


def test_plant_steady_sine_matches_its_stated_response():
    plant = Plant(RATE, PlantParams(load_kg=70.0))
    t = np.arange(int(4 * RATE)) / RATE
    accel = plant.step(0.2 * np.sin(2 * np.pi * 30.0 * t))
    tail = accel[-int(RATE):]  # the resonance transient has died away
    t_tail = t[-int(RATE):]
    design = np.column_stack([np.cos(2 * np.pi * 30 * t_tail), np.sin(2 * np.pi * 30 * t_tail), np.ones_like(t_tail)])
    coef = np.linalg.lstsq(design, tail, rcond=None)[0]
    assert math.hypot(coef[0], coef[1]) == pytest.approx(plant.fundamental_peak_mps2(30.0, 0.2), rel=1e-3)


def test_heavier_load_gives_less_acceleration_per_drive_above_resonance():
    gains = [Plant(RATE, PlantParams(load_kg=kg)).fundamental_peak_mps2(30.0, 0.2) for kg in (50, 70, 120)]
    assert gains[0] > gains[1] > gains[2]
    # at least as much as the mass ratio: the lighter plate also sits nearer its resonance
    assert gains[0] / gains[2] > (12 + 120) / (12 + 50)


def test_resonance_drops_with_load():
    assert PlantParams(load_kg=0.5).resonance_hz > 40
    assert 14 < PlantParams(load_kg=70).resonance_hz < 22
    assert PlantParams(load_kg=120).resonance_hz < PlantParams(load_kg=70).resonance_hz


def test_actuator_non_linearity_makes_harmonics_that_grow_with_level():
    def thd(level: float) -> float:
        plant = Plant(RATE, PlantParams(load_kg=70.0))
        t = np.arange(int(4 * RATE)) / RATE
        a = plant.step(level * np.sin(2 * np.pi * 30.0 * t))[-int(RATE):]
        spectrum = np.abs(np.fft.rfft(a))
        return math.sqrt(sum(spectrum[30 * h] ** 2 for h in range(2, 6))) / spectrum[30]

    low, high = thd(0.05), thd(0.5)
    assert 0 < low < high < 0.2
    assert high > 3 * low


def test_load_change_keeps_the_plate_moving_continuously():
    plant = Plant(RATE)
    t = np.arange(3200) / RATE
    a1 = plant.step(0.3 * np.sin(2 * np.pi * 30 * t))
    position_before = plant._position_m
    plant.set_params(PlantParams(load_kg=100.0))
    assert plant._position_m == position_before
    a2 = plant.step(0.3 * np.sin(2 * np.pi * 30 * (t + 1.0)))
    # the heavier plate accelerates less, without a jump bigger than the signal itself
    assert np.max(np.abs(a2[-800:])) < np.max(np.abs(a1[-800:]))
    assert abs(a2[0] - a1[-1]) < np.max(np.abs(a1))


def test_plant_refuses_unphysical_parameters():
    with pytest.raises(ValueError):
        PlantParams(load_kg=-1).check()
    with pytest.raises(ValueError):
        PlantParams(damping_ns_per_m=1e7).check()  # over-damped


def test_sensor_at_rest_reads_one_g_on_z_with_the_stated_noise():
    params = SENSORS["adxl345"]
    sensor = Accelerometer(params, np.random.default_rng(7))
    out = sensor.read(np.zeros(64000))
    assert out[:, 2].mean() / G == pytest.approx(1.0, abs=2e-3)
    assert abs(out[:, 0].mean()) / G < 0.015  # cross-axis share of gravity only
    expected_rms_g = params.noise_rms_g
    measured_rms_g = out.std(axis=0) / G
    # the standard error of an RMS estimate from 64000 samples is about 0.3 %; quantisation adds
    # lsb^2/12 of variance
    for axis in range(3):
        with_lsb = math.sqrt(expected_rms_g[axis] ** 2 + params.lsb_g**2 / 12)
        assert measured_rms_g[axis] == pytest.approx(with_lsb, rel=0.03)


def test_sensor_output_is_quantised_and_clipped_to_its_range():
    params = SENSORS["adxl345"]
    sensor = Accelerometer(params, np.random.default_rng(0))
    out = sensor.read(np.full(100, 40 * G))  # far past +-16 g
    lsb = params.lsb_g * G
    assert np.allclose(out / lsb, np.round(out / lsb))
    assert np.max(out[:, 2]) <= params.range_g * G + 1e-9
    assert np.max(out[:, 2]) > (params.range_g - 0.01) * G


def test_sensor_cross_axis_coupling_leaks_vertical_motion_into_x_and_y():
    params = SENSORS["adxl355"]  # low noise, so the leak stands out
    sensor = Accelerometer(params, np.random.default_rng(0))
    t = np.arange(4000) / params.rate_hz
    vertical = 3.0 * np.sin(2 * np.pi * 30 * t)
    out = sensor.read(vertical)
    design = np.column_stack([np.cos(2 * np.pi * 30 * t), np.sin(2 * np.pi * 30 * t), np.ones_like(t)])
    coef = np.linalg.lstsq(design, out, rcond=None)[0]
    amplitude = np.hypot(coef[0], coef[1])
    assert amplitude[0] / amplitude[2] == pytest.approx(params.cross_axis[0], rel=0.03)
    assert amplitude[1] / amplitude[2] == pytest.approx(params.cross_axis[1], rel=0.03)


def test_same_seed_same_samples_other_seed_other_samples():
    def run(seed: int) -> np.ndarray:
        device = SimulatedPlatform(SimConfig(seed=seed))
        device.set_frequency(30.0)
        device.set_drive(0.2, 0.5)
        return np.concatenate([device.advance(1000), device.advance(2200)])

    assert np.array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))


def test_true_peak_is_what_the_sensor_sees():
    device = SimulatedPlatform(SimConfig(seed=0, sensor=SENSORS["adxl355"]))
    device.set_frequency(30.0)
    device.set_drive(0.2, 0.1)
    device.advance(int(3 * RATE))
    z = device.advance(4000)[:, 2]
    t = np.arange(4000) / device.rate_hz
    design = np.column_stack([np.cos(2 * np.pi * 30 * t), np.sin(2 * np.pi * 30 * t), np.ones_like(t)])
    coef = np.linalg.lstsq(design, z, rcond=None)[0]
    assert math.hypot(coef[0], coef[1]) == pytest.approx(device.true_peak_mps2(30.0, 0.2), rel=2e-3)
