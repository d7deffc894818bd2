"""`livctl validate`: verdicts, JSON, the table, the figure, windows, and every kind of bad input."""

import json
import math

import numpy as np
import pytest
from scipy.io import wavfile

from conftest import run_livctl
from livctl.prescription import Prescription
from livctl.recordings import Recording
from livctl.validation import COHERENT, WINDOW_AVERAGE, validate
from synthetic import G, crlb_sd, effective_noise, platform_axes, tone

RATE = 1000.0
MEASUREMENT_KEYS = ("frequency_hz", "peak_g", "rms_g", "thd_percent", "snr_db", "sinad_db", "dc_g", "axis",
                    "off_axis_percent")


def _recording_csv(path, seconds=10.0, *, f=30.0, peak_g=0.3, harmonics=(), rate=RATE, seed=1, lsb_g=None,
                   noise=0.05) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    vertical = tone(t, frequency_hz=f, peak_mps2=peak_g * G, phase=rng.uniform(0, 6.28), harmonics=harmonics)
    accel = platform_axes(vertical, rng, noise_rms_mps2=noise, lsb_mps2=lsb_g * G if lsb_g else None)
    np.savetxt(path, np.column_stack([t, accel / G]), delimiter=",", header="time,x,y,z", comments="", fmt="%.9g")
    return accel


def test_json_has_the_whole_record_and_every_window(cli, tmp_path):
    path = tmp_path / "rec.csv"
    _recording_csv(path, 10.0, f=30.2)
    result = cli("validate", str(path), "--freq", "30", "--accel", "0.3", "--json")
    assert result.code == 0, result
    out = json.loads(result.out)
    for key in MEASUREMENT_KEYS + ("in_spec", "reasons", "in_spec_fraction", "windows"):
        assert key in out
    assert out["in_spec"] is True and out["reasons"] == [] and out["in_spec_fraction"] == 1.0
    assert out["axis"] == "z" and out["method"] == COHERENT
    assert out["frequency_hz"] == pytest.approx(30.2, abs=1e-3)
    assert out["peak_g"] == pytest.approx(0.3, rel=2e-3) and out["rms_g"] == pytest.approx(0.3 / math.sqrt(2), rel=2e-3)
    assert out["dc_g"] == pytest.approx(1.0, abs=1e-3)
    assert out["off_axis_percent"] == pytest.approx(100 * math.hypot(0.02, 0.01), rel=0.05)
    assert out["recording"]["rate_hz"] == pytest.approx(RATE) and out["recording"]["samples"] == 10_000
    assert set(out["axes"]) == {"x", "y", "z"} and out["axes"]["z"]["dc_g"] == pytest.approx(1.0, abs=1e-3)
    assert len(out["windows"]) == 10
    for w in out["windows"]:
        assert all(key in w for key in MEASUREMENT_KEYS) and w["in_spec"] is True and w["duration_s"] == 1.0


def test_out_of_spec_names_every_failing_criterion_and_exits_1(cli, tmp_path):
    path = tmp_path / "rec.csv"
    _recording_csv(path, 5.0, f=31.5, peak_g=0.36, harmonics=((0.15, 0.3),))
    result = cli("validate", str(path), "--freq", "30", "--accel", "0.3", "--json")
    assert result.code == 1, result
    out = json.loads(result.out)
    assert out["in_spec"] is False and out["in_spec_fraction"] == 0.0
    assert len(out["reasons"]) == 3
    assert "frequency 31.50 Hz" in out["reasons"][0]
    assert "+20.0 %" in out["reasons"][1]
    assert "THD 15.0 %" in out["reasons"][2]
    # tolerances are the user's to set
    loose = cli("validate", str(path), "--freq", "30", "--accel", "0.3", "--tol-freq", "2", "--tol-accel", "25",
                "--max-thd", "20", "--json")
    assert loose.code == 0 and json.loads(loose.out)["prescription"]["tolerance"]["accel_percent"] == 25.0


def test_human_table_and_preset(cli, tmp_path):
    path = tmp_path / "mouse.csv"
    _recording_csv(path, 3.0, f=90.0, peak_g=0.3, rate=3200.0)
    result = cli("validate", str(path), "--preset", "mouse-90hz-0.3g")
    assert result.code == 0, result
    assert result.out.startswith("IN SPEC") and "preset mouse-90hz-0.3g" in result.out
    assert "frequency, Hz" in result.out and "90 +- 1" in result.out and "windows: 3 of 1 s" in result.out
    assert "reading" in result.err and "3200.00 Hz" in result.err
    both = cli("validate", str(path), "--preset", "mouse-90hz-0.3g", "--freq", "90")
    assert both.code == 2 and "not both" in both.err


def test_plot_writes_a_png_with_three_panels(cli, tmp_path):
    import matplotlib.image

    path, png = tmp_path / "rec.csv", tmp_path / "rec.png"
    _recording_csv(path, 5.0)
    result = cli("validate", str(path), "--freq", "30", "--accel", "0.3", "--plot", str(png))
    assert result.code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width = matplotlib.image.imread(png).shape[:2]
    assert (width, height) == (1000, 1100)


def test_whole_record_estimate_is_within_its_cramer_rao_bound(tmp_path):
    """Quantised, noisy, distorted, with gravity, off-bin, random phase; 40 recordings of 20 s
    at 1 kHz: the whole-record errors stay within 1.4 times the bound for 20000 samples (the RMS
    of 40 draws is known to about 11 %)."""
    rng = np.random.default_rng(12)
    rx = Prescription(frequency_hz=30.0, peak_g=0.3, duration_s=20.0)
    peak, noise, lsb = 0.3 * G, 0.2, 0.0039 * G
    t = np.arange(20_000) / RATE
    errors = []
    for _ in range(40):
        f = 30.0 + rng.uniform(-0.5, 0.5)
        vertical = tone(t, frequency_hz=f, peak_mps2=peak, phase=rng.uniform(0, 6.28),
                        harmonics=((0.05, rng.uniform(0, 6.28)), (0.02, rng.uniform(0, 6.28))))
        accel = platform_axes(vertical, rng, noise_rms_mps2=noise, lsb_mps2=lsb)
        result = validate(Recording(accel, RATE, ("x", "y", "z"), "synthetic", "memory", "m/s2"), rx)
        assert result.method == COHERENT
        errors.append((result.measurement.frequency_hz - f, result.measurement.peak_g * G - peak))
    e = np.array(errors)
    sd_f, sd_a = crlb_sd(peak, effective_noise(noise, lsb), t.size, RATE)
    assert np.sqrt(np.mean(e[:, 0] ** 2)) < 1.4 * sd_f
    assert np.sqrt(np.mean(e[:, 1] ** 2)) < 1.4 * sd_a


def test_a_wandering_frequency_falls_back_to_the_window_average(tmp_path):
    """A platform whose oscillator drifts +-0.05 Hz over a minute: one coherent sine over the
    record would read low; the windows' average reads the true amplitude."""
    rng = np.random.default_rng(3)
    t = np.arange(60_000) / RATE
    f = 30.0 + 0.05 * np.sin(2 * math.pi * t / 60.0)
    phase = 2 * math.pi * np.cumsum(f) / RATE
    accel = platform_axes(0.3 * G * np.cos(phase), rng, noise_rms_mps2=0.05)
    rec = Recording(accel, RATE, ("x", "y", "z"), "drift", "memory", "m/s2")
    result = validate(rec, Prescription(frequency_hz=30.0, peak_g=0.3, duration_s=60.0))
    assert result.method == WINDOW_AVERAGE and result.coherence < 0.99
    assert result.measurement.peak_g == pytest.approx(0.3, rel=2e-3)
    assert result.measurement.frequency_hz == pytest.approx(30.0, abs=0.01)


@pytest.mark.parametrize("seconds, windows, last_s", [(10.3, 10, 1.3), (10.7, 11, 0.7), (0.8, 1, 0.8)])
def test_a_short_tail_joins_the_last_window_and_a_long_one_stands_alone(tmp_path, seconds, windows, last_s):
    accel = platform_axes(tone(np.arange(int(seconds * RATE)) / RATE, frequency_hz=30.0, peak_mps2=0.3 * G, phase=0),
                          np.random.default_rng(0), noise_rms_mps2=0.05)
    rec = Recording(accel, RATE, ("x", "y", "z"), "tail", "memory", "m/s2")
    result = validate(rec, Prescription(frequency_hz=30.0, peak_g=0.3, duration_s=seconds))
    assert len(result.windows) == windows
    assert result.windows[-1].duration_s == pytest.approx(last_s)
    assert all(w.in_spec for w in result.windows)


def test_wav_channel_0_is_the_driven_axis_unless_told(cli, tmp_path):
    t = np.arange(16000) / 8000.0
    data = np.column_stack([0.15 * np.sin(2 * math.pi * 45 * t), 0.3 * np.sin(2 * math.pi * 45 * t)]) / 2.0
    path = tmp_path / "two.wav"
    wavfile.write(path, 8000, (data * 32767).astype(np.int16))
    first = json.loads(cli("validate", str(path), "--full-scale-g", "2", "--preset", "mouse-45hz-0.6g", "--json").out)
    assert first["axis"] == "x" and first["peak_g"] == pytest.approx(0.15, rel=1e-3)
    second = json.loads(cli("validate", str(path), "--full-scale-g", "2", "--freq", "45", "--accel", "0.3",
                            "--axis", "y", "--json").out)
    assert second["axis"] == "y" and second["peak_g"] == pytest.approx(0.3, rel=1e-3) and second["in_spec"]


def test_a_quantised_flat_topped_tone_is_not_mistaken_for_clipping(cli, tmp_path):
    path = tmp_path / "flat.csv"
    _recording_csv(path, 5.0, harmonics=((0.0, 0.0), (0.08, math.pi)), lsb_g=0.0039, noise=0.002)
    result = cli("validate", str(path), "--freq", "30", "--accel", "0.3")
    assert result.code == 0, result


def _clipped_csv(path):
    rng = np.random.default_rng(2)
    t = np.arange(5000) / RATE
    accel = platform_axes(tone(t, frequency_hz=30.0, peak_mps2=1.3 * G, phase=0.0), rng, noise_rms_mps2=0.02,
                          lsb_mps2=0.0039 * G)
    np.clip(accel, -2 * G, 2 * G, out=accel)  # a +-2 g sensor: gravity + 1.3 g runs into the rail
    np.savetxt(path, np.column_stack([t, accel / G]), delimiter=",", header="time,x,y,z", comments="", fmt="%.9g")


@pytest.mark.parametrize(
    "make, args, message",
    [
        (lambda p: p.write_text(""), ("--freq", "30", "--accel", "0.3"), "is empty"),
        (lambda p: p.write_text("time,x,y,z\n"), ("--freq", "30", "--accel", "0.3"), "header but no samples"),
        (lambda p: p.write_text("time,x,pressure\n0,1,2\n"), ("--freq", "30", "--accel", "0.3"), "unknown column"),
        (lambda p: p.write_text("time,z\n0,1\n0.001,nan\n"), ("--freq", "30", "--accel", "0.3"), "NaN or infinite"),
        (lambda p: p.write_text("time,z\n0,1\n0.002,1\n0.001,1\n"), ("--freq", "30", "--accel", "0.3"), "backwards"),
        (lambda p: p.write_text("time,z\n0,1\n0,1\n"), ("--freq", "30", "--accel", "0.3"), "repeats"),
        (lambda p: _recording_csv(p, 0.08), ("--freq", "30", "--accel", "0.3"), "2.4 cycles of 30 Hz"),
        (lambda p: _recording_csv(p, 5.0, rate=70.0, f=20.0), ("--freq", "30", "--accel", "0.3"), "below 2.5 x"),
        (lambda p: _recording_csv(p, 5.0), ("--freq", "30", "--accel", "0.3", "--window", "0.05"), "--window 0.1"),
        (_clipped_csv, ("--freq", "30", "--accel", "1.3"), "the z axis is clipped"),
        (lambda p: p.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk"), ("--freq", "30", "--accel", "0.3",
                                                                    "--full-scale-g", "2"), "cannot read WAV"),
        (lambda p: _recording_csv(p, 2.0), (), "--freq HZ --accel G"),
        (lambda p: _recording_csv(p, 2.0), ("--preset", "nope"), "unknown preset"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, tmp_path, make, args, message):
    path = tmp_path / "input.csv"
    make(path)
    result = cli("validate", str(path), *args)
    assert result.code == 2, result
    errors = [line for line in result.err.splitlines() if line.startswith("livctl: error:")]
    assert len(errors) == 1 and message in errors[0] and result.err.endswith(errors[0] + "\n")
    assert result.out == ""


def test_as_a_real_process_bad_input_has_no_traceback(tmp_path):
    path = tmp_path / "rec.csv"
    path.write_text("time,x\n0,0.1\n0.001,0.1\n0.001,0.1\n")
    proc = run_livctl("validate", str(path), "--freq", "30", "--accel", "0.3")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("livctl: error:") and "repeats" in proc.stderr


def test_windows_without_vibration_fail_the_recording_and_start_end_trim_them(cli, tmp_path):
    """A platform that starts 3 s into the recording: those windows hold no vibration, which the
    verdict says; validating from 3 s on leaves only the delivery."""
    rng = np.random.default_rng(6)
    t = np.arange(12_000) / RATE
    vertical = tone(t, frequency_hz=30.0, peak_mps2=0.3 * G, phase=0.2) * (t >= 3.0)
    accel = platform_axes(vertical, rng, noise_rms_mps2=0.0)  # a sensor at rest reads a constant
    path = tmp_path / "late.csv"
    np.savetxt(path, np.column_stack([t, accel / G]), delimiter=",", header="time,x,y,z", comments="", fmt="%.9g")
    whole = json.loads(cli("validate", str(path), "--freq", "30", "--accel", "0.3", "--json").out)
    assert whole["in_spec"] is False and whole["in_spec_fraction"] == pytest.approx(0.75)
    assert any("3 of 12 windows (3.0 s, the first at 0.0 s) hold no measurable 30 Hz vibration" in r
               for r in whole["reasons"])
    trimmed = cli("validate", str(path), "--freq", "30", "--accel", "0.3", "--start", "3", "--json")
    assert trimmed.code == 0, trimmed
    out = json.loads(trimmed.out)
    assert out["recording"]["duration_s"] == pytest.approx(9.0) and len(out["windows"]) == 9
    assert out["peak_g"] == pytest.approx(0.3, rel=1e-3)
    nothing = cli("validate", str(path), "--freq", "30", "--accel", "0.3", "--start", "20")
    assert nothing.code == 2 and "leave nothing" in nothing.err


def test_a_window_of_sensor_noise_alone_is_not_read_as_a_weak_tone():
    rng = np.random.default_rng(9)
    t = np.arange(6_000) / RATE
    vertical = tone(t, frequency_hz=30.0, peak_mps2=0.3 * G, phase=0.2) * (t >= 2.0)
    accel = platform_axes(vertical, rng, noise_rms_mps2=0.05)
    result = validate(Recording(accel, RATE, ("x", "y", "z"), "noise", "memory", "m/s2"),
                      Prescription(frequency_hz=30.0, peak_g=0.3, duration_s=6.0))
    quiet = result.windows[:2]
    assert all(w.measurement is None and "stands out of the noise" in w.reasons[0] for w in quiet)
    assert all(w.in_spec for w in result.windows[2:])
    assert result.method == WINDOW_AVERAGE and result.measurement.peak_g == pytest.approx(0.3, rel=2e-3)
    assert not result.in_spec and "2 of 6 windows" in result.reasons[-1]
