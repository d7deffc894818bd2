"""Reading recordings: CSV, the firmware tooling's ADXL345 dumps, WAV; timing; every kind of bad file."""

import math
import wave

import numpy as np
import pytest
from scipy.io import wavfile

from livctl.recordings import RecordingError, read_recording
from synthetic import G, crlb_sd, platform_axes, tone

RATE = 1000.0


def _vertical(seconds: float, rate: float = RATE, peak_g: float = 0.3, f: float = 30.25) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return tone(t, frequency_hz=f, peak_mps2=peak_g * G, phase=0.4)


def _write_csv(path, header: str, rows: np.ndarray, fmt: str = "%.9g") -> None:
    np.savetxt(path, rows, delimiter=",", header=header, comments="", fmt=fmt)


def test_csv_with_time_in_g_is_read_in_mps2_with_the_rate_from_the_timestamps(tmp_path):
    accel = platform_axes(_vertical(4), np.random.default_rng(1), noise_rms_mps2=0.05)
    t = np.arange(accel.shape[0]) / RATE
    path = tmp_path / "rec.csv"
    _write_csv(path, "time,x,y,z", np.column_stack([t, accel / G]))
    rec = read_recording(path)
    assert rec.format == "csv" and rec.units == "g" and rec.axes == ("x", "y", "z")
    assert rec.rate_hz == pytest.approx(RATE, rel=1e-9)
    assert rec.accel_mps2 == pytest.approx(accel, abs=1e-6)
    assert rec.accel_mps2.flags.f_contiguous  # each axis contiguous, as the estimator reads them
    assert rec.timing.jitter_rms_s < 1e-9 and not rec.timing.resampled


@pytest.mark.parametrize("units, scale", [("m/s2", 1.0), ("mm/s2", 1000.0), ("g", 1 / G)])
def test_units_and_rate_override_for_a_csv_without_time(tmp_path, units, scale):
    z = _vertical(2) + G
    path = tmp_path / "z.csv"
    _write_csv(path, "z", (z * scale)[:, None])
    rec = read_recording(path, units=units, rate_hz=RATE)
    assert rec.axes == ("z",) and rec.rate_hz == RATE
    assert rec.accel_mps2[:, 0] == pytest.approx(z, rel=1e-7)
    with pytest.raises(RecordingError, match="--rate"):
        read_recording(path, units=units)


def test_firmware_dump_is_recognised_in_mm_per_s2_with_jittered_timestamps(tmp_path):
    """The tooling's timestamps are the sensor clock seen through the MCU: regular to about a
    microsecond. That is clock rounding, not sampling jitter: reported, not resampled."""
    rng = np.random.default_rng(2)
    rate = 3200.0
    accel = platform_axes(_vertical(3, rate), rng, noise_rms_mps2=0.2, lsb_mps2=0.0039 * G)
    t = 812.345678 + np.arange(accel.shape[0]) / 3199.2 + rng.normal(0, 1e-6, accel.shape[0])
    path = tmp_path / "adxl345.csv"
    _write_csv(path, "#time,accel_x,accel_y,accel_z", np.column_stack([t, accel * 1000.0]), fmt="%.6f")
    rec = read_recording(path)
    assert rec.format == "firmware-csv" and rec.units == "mm/s2"
    assert rec.rate_hz == pytest.approx(3199.2, rel=1e-6)
    assert 0.5e-6 < rec.timing.jitter_rms_s < 2e-6 and not rec.timing.resampled
    assert rec.accel_mps2 == pytest.approx(accel, abs=1e-5)


def test_truly_irregular_sampling_is_resampled_and_still_measured_within_the_bound(tmp_path):
    """Samples taken at jittered instants (5 % of a period RMS), with the instants recorded: the
    spline puts them back on a uniform grid, and the amplitude comes out within five CRLB
    standard deviations plus the spline's own error (below 1e-4 at 30 Hz on a 1 kHz grid)."""
    from livctl.analysis import measure

    rng = np.random.default_rng(3)
    n = 10_000
    t = np.arange(n) / RATE + rng.normal(0, 0.05 / RATE, n)
    f, peak, noise = 30.25, 0.3 * G, 0.05
    z = tone(t, frequency_hz=f, peak_mps2=peak, phase=0.4) + G + rng.normal(0, noise, n)
    path = tmp_path / "irregular.csv"
    _write_csv(path, "time,z", np.column_stack([t, z / G]), fmt="%.10g")
    rec = read_recording(path)
    assert rec.timing.resampled
    assert rec.timing.jitter_rms_s == pytest.approx(0.05 / RATE, rel=0.1)
    m = measure(rec.accel_mps2, rec.rate_hz, axis=0)
    sd_f, sd_a = crlb_sd(peak, noise, n, RATE)
    assert abs(m.peak_g * G - peak) < 5 * sd_a + 1e-4 * peak
    assert abs(m.frequency_hz - f) < 5 * sd_f + 1e-5


def _write_wav_24bit(path, data: np.ndarray, rate: int) -> None:
    ints = np.clip(np.round(data * 2**23), -(2**23), 2**23 - 1).astype("<i4")
    raw = ints.reshape(-1, 1).view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(data.shape[1])
        w.setsampwidth(3)
        w.setframerate(rate)
        w.writeframes(raw)


@pytest.mark.parametrize("kind", ["int16", "int24", "int32", "float32", "mono-float64"])
def test_wav_full_scale_maps_to_g(tmp_path, kind):
    full_scale_g = 4.0
    accel = platform_axes(_vertical(2, 8000.0), np.random.default_rng(4), noise_rms_mps2=0.0)
    if kind.startswith("mono"):
        accel = accel[:, 2:]
    scaled = accel / G / full_scale_g  # in [-1, 1)
    path = tmp_path / f"{kind}.wav"
    if kind == "int24":
        _write_wav_24bit(path, scaled, 8000)
        step = 2.0**-23
    elif kind.startswith("int"):
        bits = int(kind[3:])
        wavfile.write(path, 8000, np.round(scaled * 2 ** (bits - 1)).astype(f"int{bits}"))
        step = 2.0 ** -(bits - 1)
    else:
        wavfile.write(path, 8000, scaled.astype(kind.split("-")[-1]))
        step = 1e-7
    rec = read_recording(path, full_scale_g=full_scale_g)
    assert rec.format == "wav" and rec.rate_hz == 8000.0 and rec.axes == ("x", "y", "z")[: accel.shape[1]]
    assert np.max(np.abs(rec.accel_mps2 - accel)) <= step * full_scale_g * G


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "is empty"),
        ("time,x,y,z\n", "header but no samples"),
        ("time,x,speed\n0,1,2\n", "unknown column 'speed'"),
        ("time,z\n0,1\n0.001,nan\n", "row 2 holds a NaN or infinite"),
        ("time,z\n0,1\n0.001,inf\n", "row 2 holds a NaN or infinite"),
        ("time,z\n0,1\n0.001,1\n0.0005,1\n", "goes backwards"),
        ("time,z\n0,1\n0.001,1\n0.001,1\n", "repeats"),
        ("time,z\n0,1\n0.001,1\n0.002,1\n0.010,1\n0.011,1\n", "a gap of 8.0 ms"),
        ("time,z\n0,1\n0.001,abc\n", "could not convert"),
        ("time,z,z\n0,1,1\n", "appears twice"),
        ("time\n0\n", "names no axis"),
    ],
)
def test_bad_csv_files_give_one_line_that_names_the_problem(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(RecordingError, match=message) as err:
        read_recording(path)
    assert "\n" not in str(err.value)


def test_bad_wav_files_and_options(tmp_path):
    path = tmp_path / "broken.wav"
    path.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00garbage")
    with pytest.raises(RecordingError, match="cannot read WAV"):
        read_recording(path, full_scale_g=2.0)
    good = tmp_path / "good.wav"
    wavfile.write(good, 8000, np.zeros((100, 4), dtype=np.int16))
    with pytest.raises(RecordingError, match="4 channels"):
        read_recording(good, full_scale_g=2.0)
    with pytest.raises(RecordingError, match="--full-scale-g"):
        read_recording(good)
    with pytest.raises(RecordingError, match="does not apply to WAV"):
        read_recording(good, units="g", full_scale_g=2.0)
    with pytest.raises(RecordingError, match="cannot read"):
        read_recording(tmp_path / "missing.csv")
