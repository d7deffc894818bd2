"""Reading recordings: CSV in every common form, the firmware tooling's ADXL345 dumps, WAV; time
units, gaps, cut-short rows; the time stamps' wander and whether to believe them; every kind of
bad file."""

import math
import os
import struct
import wave

import numpy as np
import pytest
from scipy.io import wavfile

from livctl.offline.recordings import RecordingError, describe, parse_columns, read_recording, recording_from_samples
from synthetic import G, crlb_sd, drift, platform_axes, tone

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
    from livctl.dsp.estimator import measure

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



# -- the forms CSV files come in --------------------------------------------------------------------


def _rows(t: np.ndarray, accel_g: np.ndarray, sep: str = ",", decimal_comma: bool = False, extra: str = "") -> str:
    lines = []
    for ti, row in zip(t, accel_g):
        values = [f"{ti:.9g}"] + [f"{v:.9g}" for v in row]
        if decimal_comma:
            values = [v.replace(".", ",") for v in values]
        lines.append(sep.join(values) + extra)
    return "\n".join(lines) + "\n"


_T = np.arange(2000) / RATE
_ACCEL = platform_axes(tone(_T, frequency_hz=30.0, peak_mps2=0.3 * G, phase=0.2), np.random.default_rng(7),
                       noise_rms_mps2=0.02)
_FORMS = {
    # name: (text, format, units shown, time unit read)
    "plain": ("time,x,y,z\n" + _rows(_T, _ACCEL / G), "csv", "g", "s (from the steps)"),
    "quoted with units": ('"Time (s)","X (g)","Y (g)","Z (g)"\n' + _rows(_T, _ACCEL / G), "csv", "g",
                          "s (from the header)"),
    "semicolons": ("time;x;y;z\n" + _rows(_T, _ACCEL / G, ";"), "csv", "g", "s (from the steps)"),
    "semicolons, decimal commas": ("time;x;y;z\n" + _rows(_T, _ACCEL / G, ";", True), "csv", "g",
                                   "s (from the steps)"),
    "tabs": ("t\tax\tay\taz\n" + _rows(_T, _ACCEL / G, "\t"), "csv", "g", "s (from the steps)"),
    "spaces": ("time x y z\n" + _rows(_T, _ACCEL / G, " "), "csv", "g", "s (from the steps)"),
    "BOM, ms, m/s^2": ("\ufefftimestamp_ms,accel_x (m/s^2),accel_y (m/s^2),accel_z (m/s^2)\n"
                       + _rows(_T * 1e3, _ACCEL), "csv", "m/s2", "ms (from the header)"),
    "recorder (100g sensor)": ('"Time (s)","X (100g)","Y (100g)","Z (100g)"\n' + _rows(_T, _ACCEL / G), "csv", "g",
                               "s (from the header)"),
    "phone app with |a|": ('"Time (s)","Linear Acceleration x (m/s^2)","Linear Acceleration y (m/s^2)",'
                           '"Linear Acceleration z (m/s^2)","Absolute acceleration (m/s^2)"\n'
                           + _rows(_T, _ACCEL, extra=",9.9"), "csv", "m/s2", "s (from the header)"),
    "lines before the header": ("Device: bench logger\nSample rate: 1000\n\nTime,Acc X,Acc Y,Acc Z\n"
                                + _rows(_T, _ACCEL / G), "csv", "g", "s (from the steps)"),
    "mg in brackets": ("time [ms],X [mg],Y [mg],Z [mg]\n" + _rows(_T * 1e3, _ACCEL / G * 1e3), "csv", "mg",
                       "ms (from the header)"),
    "firmware dump": ("#time,accel_x,accel_y,accel_z\n" + _rows(_T, _ACCEL * 1e3), "firmware-csv", "mm/s2",
                      "s (from the steps)"),
    "firmware dump with ##drops": ("##drops=0,queue_ticks=1234,q=5\n#time,accel_x,accel_y,accel_z\n"
                                   + _rows(_T, _ACCEL * 1e3), "firmware-csv", "mm/s2", "s (from the steps)"),
    "ms from the steps": ("time,x,y,z\n" + _rows(_T * 1e3, _ACCEL / G), "csv", "g", "ms (from the steps)"),
    "us from the steps": ("time,x,y,z\n" + _rows(_T * 1e6, _ACCEL / G), "csv", "g", "us (from the steps)"),
}


@pytest.mark.parametrize("form", list(_FORMS))
def test_every_common_csv_form_reads_the_same_samples(tmp_path, form):
    text, fmt, units, time_unit = _FORMS[form]
    path = tmp_path / "rec.csv"
    path.write_text(text, encoding="utf-8")
    rec = read_recording(path)
    assert (rec.format, rec.units, rec.time_unit, rec.axes) == (fmt, units, time_unit, ("x", "y", "z"))
    assert rec.rate_hz == pytest.approx(RATE, rel=1e-9)
    assert np.max(np.abs(rec.accel_mps2 - _ACCEL)) < 1e-6
    assert time_unit in describe(rec)


def test_older_firmware_dumps_say_when_they_dropped_samples(tmp_path):
    path = tmp_path / "dump.csv"
    path.write_text("##drops=12,queue_ticks=1,q=5\n#time,accel_x,accel_y,accel_z\n" + _rows(_T, _ACCEL * 1e3))
    rec = read_recording(path)
    assert rec.format == "firmware-csv" and rec.notes == ("the file says 12 samples were dropped while recording",)


def test_the_time_unit_can_be_named_and_a_rate_that_makes_no_sense_says_why(tmp_path):
    path = tmp_path / "rec.csv"
    path.write_text("time,x,y,z\n" + _rows(_T * 1e3, _ACCEL / G))
    assert read_recording(path, time_unit="ms").time_unit == "ms (as --time-unit says)"
    # the same file said to be in seconds: a 1 Hz rate is slow but possible, so it is read (and
    # `livctl validate` then says the rate is too low, naming the unit it was read in)
    assert read_recording(path, time_unit="s").rate_hz == pytest.approx(1.0)
    seconds = tmp_path / "seconds.csv"
    seconds.write_text("time,x,y,z\n" + _rows(_T, _ACCEL / G))
    with pytest.raises(RecordingError) as err:
        read_recording(seconds, time_unit="us")  # 1 GHz: no accelerometer has that
    message = str(err.value)
    assert "steps by 0.001 per sample: a rate of 1e+09 Hz read in us, which no accelerometer has" in message
    assert "(1000 Hz in s, 1e+06 Hz in ms, 1e+09 Hz in us); give --time-unit s, ms or us" in message
    # steps of 5 read in s would be 0.2 Hz: in ms they make 200 Hz, which is what they are taken for
    five = tmp_path / "five.csv"
    five.write_text("time,z\n" + "\n".join(f"{i * 5},{math.sin(i)}" for i in range(20)) + "\n")
    assert read_recording(five).time_unit == "ms (from the steps)"
    # steps that make no sense in any unit (a row counter times 1e7?) are refused, not guessed
    odd = tmp_path / "odd.csv"
    odd.write_text("time,z\n" + "\n".join(f"{i * 1e7:.0f},{math.sin(i)}" for i in range(20)) + "\n")
    with pytest.raises(RecordingError, match="a rate of 1e-07 Hz read in s, which no accelerometer has"):
        read_recording(odd)


def test_columns_map_names_or_numbers_and_ignores_the_rest(tmp_path):
    path = tmp_path / "logger.csv"
    text = "Zeit;Temp;Beschl Z;Beschl X\n" + "\n".join(
        f"{t:.6f};21,5;{z:.9g};{x:.9g}".replace(".", ",") for t, z, x in zip(_T, _ACCEL[:, 2] / G, _ACCEL[:, 0] / G))
    path.write_text(text + "\n")
    with pytest.raises(RecordingError, match="unknown column 'Zeit'.*--columns"):
        read_recording(path)
    rec = read_recording(path, columns=parse_columns("time=Zeit, z=Beschl Z, x=4"))
    assert rec.axes == ("x", "z") and rec.rate_hz == pytest.approx(RATE)
    assert np.max(np.abs(rec.accel_mps2[:, 1] - _ACCEL[:, 2])) < 1e-6
    assert np.max(np.abs(rec.accel_mps2[:, 0] - _ACCEL[:, 0])) < 1e-6
    with pytest.raises(RecordingError, match="no such column.*'Zeit', 'Temp', 'Beschl Z', 'Beschl X'"):
        read_recording(path, columns=parse_columns("z=Accel"))
    # a file without a header row: by number only
    bare = tmp_path / "bare.csv"
    bare.write_text(_rows(_T, _ACCEL / G))
    with pytest.raises(RecordingError, match="no header row.*--columns time=1"):
        read_recording(bare)
    assert read_recording(bare, columns=parse_columns("time=1,z=4")).axes == ("z",)


@pytest.mark.parametrize("text, message", [
    ("z", "expected ROLE=COLUMN"), ("speed=3", "'speed' is not a role"), ("time=1", "names no axis"),
    ("z=1,z=2", "names z twice"), ("z=0", "start at 1"),
])
def test_a_bad_columns_map_says_what_was_expected(text, message):
    with pytest.raises(RecordingError, match=message):
        parse_columns(text)


def test_a_cut_short_last_row_is_left_out_with_a_note_and_a_bad_row_elsewhere_is_refused(tmp_path):
    path = tmp_path / "cut.csv"
    path.write_text("time,x,y,z\n" + _rows(_T, _ACCEL / G) + "2.001,0.0123,-0.")
    rec = read_recording(path)
    assert rec.samples == _T.size and rec.notes == ("the last row ('2.001,0.0123,-0.') is cut short: left out",)
    rows = _rows(_T, _ACCEL / G).splitlines()
    rows[700] = rows[700].rsplit(",", 1)[0]  # a row in the middle with a field missing
    bad = tmp_path / "bad.csv"
    bad.write_text("time,x,y,z\n" + "\n".join(rows) + "\n")
    with pytest.raises(RecordingError) as err:
        read_recording(bad)
    assert "data row 701 holds 3 fields where the header names 4; expected 4 on every row" in str(err.value)
    assert "usecols" not in str(err.value)


def test_a_gap_splits_the_record_into_runs_and_is_refused_only_inside_start_end(tmp_path):
    t = np.concatenate([_T[:800], _T[805:]])  # five samples missing after 0.799 s
    accel = np.concatenate([_ACCEL[:800], _ACCEL[805:]])
    path = tmp_path / "gap.csv"
    path.write_text("time,x,y,z\n" + _rows(t, accel / G))
    rec = read_recording(path)
    assert [(p.start, p.n) for p in rec.piece_list] == [(0, 800), (800, 1195)]
    assert rec.piece_list[1].t0_s == pytest.approx(0.805)
    assert len(rec.gaps) == 1 and rec.gaps[0].missing == 5 and rec.gaps[0].after_s == pytest.approx(0.799)
    assert rec.span_s == pytest.approx(2.0) and rec.duration_s == pytest.approx(1.995)
    assert "2 runs" in describe(rec) and "1 gap" in rec.notes[0]
    late = rec.between(1.0, 1.9)
    assert late.samples == 900 and late.t0_s == pytest.approx(1.0) and late.pieces == ()
    early = rec.between(None, 0.7)
    assert early.samples == 700 and early.t0_s == 0.0
    with pytest.raises(RecordingError) as err:
        rec.between(0.5, 1.5)
    assert "a gap of 6.0 ms after t = 0.799 s (about 5 samples missing) lies between --start 0.5 s and --end 1.5 s" \
        in str(err.value)
    assert "runs 0.000-0.800 s, 0.805-2.000 s" in str(err.value)
    with pytest.raises(RecordingError, match="leave nothing"):
        rec.between(1e308, None)
    with pytest.raises(RecordingError, match="fall inside a gap"):
        rec.between(0.8, 0.803)
    with pytest.raises(RecordingError, match="hold no sample"):
        rec.between(0.0, 1e-300)
    assert rec.between(0.9, 1e308).samples == 1100


def test_what_is_not_a_recording_file_is_refused_before_reading(tmp_path):
    with pytest.raises(RecordingError, match="is a directory"):
        read_recording(tmp_path)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(RecordingError, match="not a regular file"):
        read_recording(fifo)  # a pipe (or /dev/zero) would be read forever
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01\x02" * 100)
    with pytest.raises(RecordingError, match="neither text .CSV. nor WAV"):
        read_recording(junk)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("time,z\n0,1\n".encode() + "é".encode("latin-1") + b"\n")
    with pytest.raises(RecordingError, match="not UTF-8 text"):
        read_recording(latin)


def test_values_no_accelerometer_reads_are_refused(tmp_path):
    path = tmp_path / "huge.csv"
    path.write_text("time,z\n" + "\n".join(f"{i / 1000},{1e155 * math.sin(i)}" for i in range(100)) + "\n")
    with pytest.raises(RecordingError, match=r"values reach 1e\+155 g; expected at most 1e\+06 g"):
        read_recording(path)
    wav = tmp_path / "scaled.wav"
    wavfile.write(wav, 8000, (np.sin(np.arange(800) / 10) * 30000).astype(np.int16))
    with pytest.raises(RecordingError, match="values reach"):
        read_recording(wav, full_scale_g=1e160)


def _wav_header(rate: int, channels: int = 1, bits: int = 16, frames: int = 100) -> bytes:
    data = b"\x00\x01" * frames * channels
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * channels * bits // 8, channels * bits // 8, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_a_wav_whose_header_rate_is_zero_is_refused_and_wav_warnings_become_notes(tmp_path):
    zero = tmp_path / "zero.wav"
    zero.write_bytes(_wav_header(0))
    with pytest.raises(RecordingError, match="sample rate of 0 Hz; expected a positive rate"):
        read_recording(zero, full_scale_g=2.0)
    # an extra chunk scipy does not know: a WavFileWarning, turned into a note, not printed
    extra = tmp_path / "extra.wav"
    chunks = _wav_header(8000)[12:] + b"junk" + struct.pack("<I", 4) + b"abcd"
    extra.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec = read_recording(extra, full_scale_g=2.0)
    assert rec.samples == 100 and any(n.startswith("WAV: ") for n in rec.notes)


# -- time stamps: believe them or not -----------------------------------------------------------------


def test_samples_taken_at_drifting_stamps_are_resampled_and_drifting_stamps_of_even_samples_are_not():
    """The same stamps (a 300 us random walk over 60 s), two truths: the samples were taken at the
    stamped instants, or evenly while the stamps wander. The windows' frequencies follow the
    drift's slope in the first case only, and the reader tells them apart."""
    rng = np.random.default_rng(3)
    n = 60_000
    even = np.arange(n) / RATE
    stamps = even + drift(n, 300e-6, rng)
    for truth, decision in ((stamps, "stamps"), (even, "even")):
        accel = platform_axes(tone(truth, frequency_hz=30.0, peak_mps2=0.3 * G, phase=0.3), rng, noise_rms_mps2=0.02)
        rec = recording_from_samples(stamps, accel)
        assert rec.timing.decision == decision and rec.timing.resampled == (decision == "stamps")
        assert rec.timing.drift_rms_s == pytest.approx(300e-6, rel=0.05)
        # on the grid the reader chose, one tone fits the whole minute
        from livctl.dsp.estimator import fit_record

        fit = fit_record(rec.accel_mps2, rec.rate_hz, 30.0, axis=2).measurement()
        assert fit.peak_g == pytest.approx(0.3, rel=1e-3)
