"""The fast per-block level at a known frequency, used by the control loop and the interlocks."""

import math

import numpy as np
import pytest

from livctl.dsp.estimator import amplitude_at, block_levels

RATE = 3200.0


def test_block_amplitude_is_exact_for_any_number_of_cycles_and_ignores_dc():
    for n in (320, 800, 1001):
        t = np.arange(n) / RATE
        x = 9.80665 + 2.5 * np.cos(2 * np.pi * 30.0 * t + 1.0)
        amplitude, std_error = amplitude_at(x, RATE, 30.0)
        assert amplitude == pytest.approx(2.5, rel=1e-9)
        assert std_error == pytest.approx(0.0, abs=1e-6)


def test_its_standard_error_matches_the_spread_it_claims():
    rng = np.random.default_rng(3)
    t = np.arange(800) / RATE
    estimates, errors = [], []
    for _ in range(1000):
        x = 2.9 * np.cos(2 * np.pi * 30.0 * t + rng.uniform(0, 2 * np.pi)) + rng.normal(0, 0.24, t.size)
        amplitude, std_error = amplitude_at(x, RATE, 30.0)
        estimates.append(amplitude)
        errors.append(std_error)
    expected = 0.24 * math.sqrt(2 / t.size)  # the Cramer-Rao bound for the amplitude
    assert np.mean(errors) == pytest.approx(expected, rel=0.02)
    # 1000 draws: the sample spread is within about 4.5 % (2 sigma) of the truth
    assert np.std(estimates) == pytest.approx(expected, rel=0.07)


def test_block_levels_trace_a_step_in_amplitude():
    t = np.arange(int(2 * RATE)) / RATE
    x = np.where(t < 1.0, 1.0, 3.0) * np.sin(2 * np.pi * 30.0 * t)
    ends, levels = block_levels(x, RATE, 30.0, 0.1)
    assert ends[0] == pytest.approx(0.1) and len(ends) == 20
    assert levels[:10] == pytest.approx(np.ones(10), rel=1e-6)
    assert levels[10:] == pytest.approx(3 * np.ones(10), rel=1e-6)
