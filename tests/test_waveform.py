import math

import numpy as np
import pytest

from livctl.dsp.waveform import SineSynth

RATE = 3200.0


def _chunks(total: int, rng: np.random.Generator) -> list[int]:
    sizes = []
    while total > 0:
        n = int(min(total, rng.integers(1, 700)))
        sizes.append(n)
        total -= n
    return sizes


def test_rendering_in_blocks_of_any_size_matches_one_block():
    rng = np.random.default_rng(4)
    whole = SineSynth(RATE, 30.0)
    whole.set_amplitude(0.5, ramp_s=0.7)
    pieces = SineSynth(RATE, 30.0)
    pieces.set_amplitude(0.5, ramp_s=0.7)
    expected = whole.render(8000)
    got = np.concatenate([pieces.render(n) for n in _chunks(8000, rng)])
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_steady_output_is_the_prescribed_sine():
    synth = SineSynth(RATE, 90.0)
    synth.set_amplitude(0.25, ramp_s=0.0)
    x = synth.render(3200)
    t = np.arange(3200) / RATE
    np.testing.assert_allclose(x, 0.25 * np.sin(2 * np.pi * 90.0 * t), atol=1e-9)


def test_frequency_change_keeps_the_phase_continuous():
    synth = SineSynth(RATE, 30.0)
    synth.set_amplitude(1.0, ramp_s=0.0)
    before = synth.render(1001)  # ends mid-cycle
    synth.set_frequency(45.0)
    after = synth.render(1000)
    joined = np.concatenate([before, after])
    # no sample-to-sample step larger than the steepest slope of the faster sine allows
    max_step = 2 * math.pi * 45.0 / RATE
    assert np.max(np.abs(np.diff(joined))) <= max_step * 1.0001
    # and the new segment is exactly the 45 Hz sine continuing from the old phase
    phase0 = 2 * math.pi * 30.0 * 1001 / RATE
    t = np.arange(1000) / RATE
    np.testing.assert_allclose(after, np.sin(phase0 + 2 * math.pi * 45.0 * t), atol=1e-9)


def test_ramp_is_a_raised_cosine_without_steps():
    synth = SineSynth(RATE, 30.0)
    synth.set_amplitude(0.8, ramp_s=2.0)
    n = int(2.0 * RATE)
    env = np.empty(n + 100)
    synth._fill_envelope(env, np.empty_like(env), np.arange(env.size, dtype=float))
    u = np.minimum(np.arange(env.size) / n, 1.0)
    np.testing.assert_allclose(env, 0.8 * (0.5 - 0.5 * np.cos(np.pi * u)), atol=1e-12)
    # flat at both ends: the first and last steps are far smaller than the mean step
    steps = np.diff(env[: n + 1])
    assert steps[0] < 1e-3 * steps.mean() and steps[-1] < 1e-3 * steps.mean()


def test_amplitude_change_mid_ramp_starts_from_where_the_envelope_is():
    synth = SineSynth(RATE, 30.0)
    synth.set_amplitude(1.0, ramp_s=1.0)
    synth.render(1600)  # half way up
    level = synth.amplitude
    assert level == pytest.approx(0.5, abs=1e-3)
    synth.set_amplitude(0.2, ramp_s=0.5)
    assert synth.amplitude == pytest.approx(level)
    # the envelope moves smoothly from `level` down to 0.2: no sample jumps by more than the
    # steepest point of either raised cosine allows
    env = np.empty(2000)
    synth._fill_envelope(env, np.empty_like(env), np.arange(2000, dtype=float))
    assert env[0] == pytest.approx(level)
    assert env[-1] == pytest.approx(0.2)
    assert np.max(np.abs(np.diff(env))) <= (level - 0.2) * math.pi / 2 / (0.5 * RATE) * 1.001


def test_cut_stops_at_once():
    synth = SineSynth(RATE, 30.0)
    synth.set_amplitude(0.5, ramp_s=0.0)
    synth.render(100)
    synth.cut()
    assert synth.amplitude == 0.0
    assert np.all(synth.render(500) == 0.0)


def test_render_into_fills_the_callers_buffer_without_new_sample_arrays():
    synth = SineSynth(RATE, 30.0, max_block=512)
    synth.set_amplitude(0.5, ramp_s=0.1)
    out = np.zeros(256)
    scratch_ids = (id(synth._index), id(synth._scratch), id(synth._envelope))
    for _ in range(50):
        synth.render_into(out)
    assert (id(synth._index), id(synth._scratch), id(synth._envelope)) == scratch_ids
    assert np.max(np.abs(out)) == pytest.approx(0.5, rel=1e-3)


def test_refuses_frequencies_at_or_above_nyquist_and_negative_amplitudes():
    synth = SineSynth(RATE)
    with pytest.raises(ValueError):
        synth.set_frequency(RATE / 2)
    with pytest.raises(ValueError):
        synth.set_amplitude(-0.1, ramp_s=1.0)
