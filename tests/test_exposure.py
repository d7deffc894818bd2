"""ISO 2631-1 Wk weighting and A(8), checked against references computed independently: the ISO 8041
filter's poles and zeros (scipy.signal.freqs_zpk), and a time-domain filtering of a sampled sine."""

import math

import numpy as np
import pytest
from scipy import signal

from livctl.dsp.exposure import (
    ACTION_VALUE_MPS2,
    LIMIT_VALUE_MPS2,
    WK_PARAMETERS,
    a8_mps2,
    wk_gain,
    windows_exposure,
)

G = 9.80665

# ISO 8041 Wk parameters, typed in again here from the standard (not read from livctl)
F1, F2, F3, F4, Q4, F5, Q5, F6, Q6 = 0.4, 100.0, 12.5, 12.5, 0.63, 2.37, 0.91, 3.35, 0.91
Q1 = Q2 = 1 / math.sqrt(2)


def wk_zpk():
    """Wk as zeros, poles and gain of s: each ISO 8041 stage factored on its own."""
    w1, w2, w3, w4, w5, w6 = (2 * math.pi * f for f in (F1, F2, F3, F4, F5, F6))
    zeros, poles, gain = [], [], 1.0
    # high-pass s^2 / (s^2 + w1/Q1 s + w1^2)
    zeros += [0.0, 0.0]
    poles += list(np.roots([1, w1 / Q1, w1 ** 2]))
    # low-pass w2^2 / (s^2 + w2/Q2 s + w2^2)
    poles += list(np.roots([1, w2 / Q2, w2 ** 2]))
    gain *= w2 ** 2
    # a-v transition (1 + s/w3) / (1 + s/(Q4 w4) + s^2/w4^2) = (w4^2/w3) (s + w3) / (s^2 + w4/Q4 s + w4^2)
    zeros += [-w3]
    poles += list(np.roots([1, w4 / Q4, w4 ** 2]))
    gain *= w4 ** 2 / w3
    # upward step (s^2 + w5/Q5 s + w5^2) / (s^2 + w6/Q6 s + w6^2)
    zeros += list(np.roots([1, w5 / Q5, w5 ** 2]))
    poles += list(np.roots([1, w6 / Q6, w6 ** 2]))
    return np.array(zeros), np.array(poles), gain


def reference_gain(frequencies_hz):
    z, p, k = wk_zpk()
    _, h = signal.freqs_zpk(z, p, k, worN=2 * np.pi * np.asarray(frequencies_hz, dtype=float))
    return np.abs(h)


def test_parameters_are_the_iso_8041_ones():
    assert WK_PARAMETERS == pytest.approx(dict(f1_hz=F1, q1=Q1, f2_hz=F2, q2=Q2, f3_hz=F3, f4_hz=F4, q4=Q4, f5_hz=F5,
                                               q5=Q5, f6_hz=F6, q6=Q6, k=1.0))


def test_wk_matches_the_filter_poles_and_zeros_everywhere():
    frequencies = np.geomspace(0.1, 400, 400)
    reference = reference_gain(frequencies)
    ours = np.array([wk_gain(f) for f in frequencies])
    np.testing.assert_allclose(ours, reference, rtol=1e-9)


@pytest.mark.parametrize("frequency_hz, expected", [(30.0, 0.426), (31.5, 0.405), (90.0, 0.108), (1.0, 0.482),
                                                    (63.0, 0.186)])
def test_wk_published_values(frequency_hz, expected):
    assert wk_gain(frequency_hz) == pytest.approx(expected, abs=0.0006)
    assert reference_gain([frequency_hz])[0] == pytest.approx(expected, abs=0.0006)


def test_the_band_shifted_table_is_not_what_we_use():
    # copies of the table shifted by three third-octave bands give 0.186 at 31.5 Hz; that is 63 Hz's value
    assert abs(wk_gain(31.5) - 0.186) > 0.2


def test_weighted_rms_and_a8_match_a_time_domain_filtered_sine():
    """0.4 g peak at 30 Hz for 20 minutes a day: sample it, filter it with the discretised Wk
    filter, take the RMS; livctl's exposure from logged windows must agree."""
    fs = 10_000.0
    t = np.arange(int(12 * fs)) / fs
    accel = 0.4 * G * np.sin(2 * np.pi * 30.0 * t)
    z, p, k = wk_zpk()
    zd, pd, kd = signal.bilinear_zpk(z, p, k, fs)
    weighted = signal.sosfilt(signal.zpk2sos(zd, pd, kd), accel)
    a_w_reference = float(np.sqrt(np.mean(weighted[int(6 * fs):] ** 2)))  # after the 0.4 Hz high-pass settles
    windows = [(30.0, 0.4 / math.sqrt(2), 1.0)] * 1200
    exposure = windows_exposure(windows)
    assert exposure.a_w_rms_mps2 == pytest.approx(a_w_reference, rel=2e-3)
    assert exposure.a_w_rms_mps2 == pytest.approx(1.18, abs=0.005)  # DOMAIN.md's derivation
    a8_reference = a_w_reference * math.sqrt(1200 / (8 * 3600))
    assert exposure.a8_mps2 == pytest.approx(a8_reference, rel=2e-3)
    assert exposure.a8_mps2 == pytest.approx(0.24, abs=0.005)
    assert exposure.a8_mps2 < ACTION_VALUE_MPS2 < LIMIT_VALUE_MPS2 == 1.15
    assert exposure.weighted_s == 1200 and exposure.complete


def test_exposure_adds_energy_not_amplitude():
    one = windows_exposure([(30.0, 0.2, 600.0)])
    two = one + one
    assert two.a8_mps2 == pytest.approx(math.sqrt(2) * one.a8_mps2)
    assert two.a_w_rms_mps2 == pytest.approx(one.a_w_rms_mps2)
    assert a8_mps2(0.5 ** 2 * 8 * 3600) == pytest.approx(0.5)


def test_90_hz_and_unmeasured_windows_are_left_out_and_counted():
    windows = [(90.0, 0.2, 1.0)] * 5 + [(None, None, 1.0)] * 2
    exposure = windows_exposure(windows)
    assert exposure.weighted_s == 0 and exposure.outside_range_s == 5 and exposure.unmeasured_s == 2
    assert exposure.a_w_rms_mps2 is None and exposure.a8_mps2 == 0 and not exposure.complete


def test_a_real_session_is_weighted_whole_its_sensor_check_at_rest_is_no_vibration(log_path):
    from livctl.platforms import open_platform
    from livctl.records.doselog import DoseLog
    from livctl.procedures.prepare import SessionRequest
    from livctl.prescription import Prescription
    from livctl.procedures.session import run_session

    with DoseLog(log_path) as log, open_platform("sim://", speed=math.inf) as platform:
        result = run_session(platform, log, SessionRequest(Prescription(frequency_hz=30.0, peak_g=0.4, duration_s=20.0)))
        assert result.in_spec
        exposure = windows_exposure(log.window_levels(result.session_id))
        windows = log.windows(result.session_id)
    # the sensor check listens at rest first (its noise, and the platform's clock): no vibration there
    at_rest = [w for w in windows if w["phase"] == "precheck" and w["drive"] == 0.0 and w["rms_g"] is None]
    assert at_rest and windows[: len(at_rest)] == at_rest
    assert exposure.complete and exposure.unmeasured_s == 0  # no "windows without a measurement" note
    moving = sum(w["duration_s"] for w in windows[len(at_rest):])
    assert exposure.weighted_s == pytest.approx(moving)
