"""audio:// on a real audio server: JACK with its dummy driver, the output routed back into the input.

What livctl plays through PortAudio is what the measurement engine reads back; the drive never
passes the calibrated ceiling; stream faults are counted and flag the session; bad devices, rates
and channels are one-line errors; a server that goes away mid-session ends the session cleanly.
"""

from __future__ import annotations

import io
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import tracemalloc

import numpy as np
import pytest

from conftest import livctl_env, run_livctl
import contextlib
from contextlib import contextmanager

from calibrations import write_calibration
from jackserver import JackServer, JackUnavailable, sensor_noise
from livctl.dsp.estimator import measure
from livctl.platforms import open_platform
from livctl.platforms.audio import AudioDeviceError, _Command, _InputCallback, _OutputCallback, _Trip, list_devices
from livctl.records.doselog import DoseLog
from livctl.errors import DeviceOpenError, DeviceTripped, UsageError
from livctl.procedures.prepare import SessionRequest, prepare_session
from livctl.prescription import Prescription
from livctl.cli.session import ProgressDisplay
from livctl.procedures.session import DELIVER, NOT_MEASURED, Session
from livctl.units import g_to_mps2
from livctl.dsp.waveform import SineSynth

RATE = 48000.0
IN_G_PER_FS = 2.0
LOOP = f"audio://system?in=1&max_level=0.5&in_g_per_fs={IN_G_PER_FS:g}"
"""The loopback platform: full-scale output reads back as 2 g, so drive level x 2 = peak g."""


@contextmanager
def _looped(jack, url: str = LOOP, *, noise: bool = False):
    """An open audio platform whose output is routed into its input; with `noise`, a sensor's
    noise floor (2 mg RMS here) is mixed in, as a session's sensor check requires."""
    with contextlib.ExitStack() as stack:
        mix_into = stack.enter_context(sensor_noise(jack)) if noise else None
        platform = open_platform(url)
        known = set(jack.ports())
        with platform:
            _, in_port = jack.loop_back(known)
            if mix_into:
                mix_into(in_port)
            yield platform


def _calibrated(directory, gain_g_per_drive: float = IN_G_PER_FS, frequencies_hz=(30.0, 45.0, 90.0)):
    """`directory` with a calibration of the loop platform (audio-system): a real platform runs
    nothing without one. The loop's own response is IN_G_PER_FS g per full scale."""
    write_calibration(directory, "audio-system", gain_g_per_drive=gain_g_per_drive, frequencies_hz=frequencies_hz)
    return directory


def _session(platform, log, rx: Prescription, calibration_dir, **options) -> Session:
    request = SessionRequest(prescription=rx, calibration_dir=calibration_dir, subject=options.pop("subject", None))
    return Session(prepare_session(platform, log, request), platform, log, **options)


def _assert_no_faults_but_the_servers(health: dict[str, int], jack, xruns_before: int) -> None:
    """Every stream fault livctl counted must be an xrun the server itself logged meanwhile.

    On a quiet machine (CI runs the suite alone) the server logs none and livctl must count none.
    Other test suites sharing the two cores can make the server late (it logs each such xrun), and
    PortAudio passes each on as an under-run and an over-run: those are counted, never hidden.
    """
    time.sleep(0.1)  # the server's log lines can trail its notifications
    server = jack.xrun_reports() - xruns_before
    assert set(health) == {"output_underruns", "input_overruns"}
    assert health["output_underruns"] <= server and health["input_overruns"] <= server, (
        f"livctl counted {health} but the server logged {server} xruns: {jack.log_tail()}"
    )


@contextmanager
def _route_when_ready(jack, *, noise: bool = False):
    """For a platform opened inside a command run in this process: route its output into its input
    (and mix in a sensor's noise floor) from a helper thread as soon as its ports appear."""
    errors: list[BaseException] = []
    with contextlib.ExitStack() as stack:
        mix_into = stack.enter_context(sensor_noise(jack)) if noise else None
        known = set(jack.ports())

        def route() -> None:
            try:
                _, in_port = jack.loop_back(known)
                if mix_into:
                    mix_into(in_port)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        thread = threading.Thread(target=route, daemon=True)
        thread.start()
        try:
            yield
        finally:
            thread.join(10)
    assert not errors, errors


# -- the callbacks, without a stream --------------------------------------------------------------


class _Status:
    """What PortAudio passes as `status`: falsy when nothing happened."""

    def __init__(self, underflow: bool = False, overflow: bool = False):
        self.output_underflow = underflow
        self.input_overflow = overflow

    def __bool__(self) -> bool:
        return self.output_underflow or self.input_overflow


def test_output_callback_allocates_no_sample_memory_and_applies_commands():
    synth = SineSynth(RATE, 30.0, max_block=256)
    callback = _OutputCallback(synth, channel=1, ceiling=0.4)
    out = np.empty((256, 2), dtype=np.float32)
    callback.command = _Command(30.0, 0.2, 0.05, 1)
    for _ in range(20):  # the first blocks set up cached views, and numpy its own caches
        callback(out, 256, None, None)
    tracemalloc.start()
    try:
        callback.command = _Command(45.0, 0.9, 0.05, 2)  # above the ceiling: held at 0.4
        for _ in range(200):
            callback(out, 256, None, None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024, f"the callback allocated {peak} bytes (a block of samples is 2048)"
    assert synth.frequency_hz == 45.0 and synth.target_amplitude == pytest.approx(0.4)
    blocks = []
    for _ in range(40):
        callback(out, 256, None, None)
        blocks.append(out.copy())
    played = np.concatenate(blocks)
    assert not played[:, 0].any()  # the other channel stays silent
    assert np.max(np.abs(played[:, 1])) == pytest.approx(0.4, rel=1e-3)
    callback(out, 256, None, _Status(underflow=True))
    assert callback.underruns == 1


def test_input_callback_fills_its_ring_across_the_wrap_without_allocating():
    callback = _InputCallback(channel=1, capacity=1000)
    block = np.empty((256, 2), dtype=np.float32)
    tracemalloc.start()
    try:
        for k in range(6):  # 1536 frames: wraps once
            block[:, 1] = np.float32(k)
            callback(block, 256, None, None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert callback.written == 1536
    expected = np.repeat(np.arange(6, dtype=np.float32), 256)[-1000:]
    np.testing.assert_array_equal(np.roll(callback.ring, -(1536 % 1000)), expected)
    assert peak < 4096  # the test's own block[:, 1] = k assignments included; no 1000-sample copy
    callback(block, 256, None, _Status(overflow=True))
    assert callback.overruns == 1


def test_the_input_callback_trips_the_output_within_one_callback_without_allocating():
    trip = _Trip()
    synth = SineSynth(RATE, 30.0, max_block=256)
    output = _OutputCallback(synth, channel=0, ceiling=1.0, trip=trip)
    source = _InputCallback(channel=0, capacity=4096, trip=trip)
    out = np.empty((256, 1), dtype=np.float32)
    block = np.zeros((256, 1), dtype=np.float32)
    output.command = _Command(30.0, 0.5, 0.0, 1)
    for _ in range(20):
        output(out, 256, None, None)
        source(block, 256, None, None)
    trip.threshold = 0.6  # input full-scale units: the cap plus its margin, through the input's scale
    block[:, 0] = 0.55
    source(block, 256, None, None)
    assert not trip.tripped  # under the threshold
    block[100, 0] = -0.7  # one sample over it
    tracemalloc.start()
    try:
        source(block, 256, None, None)
        output(out, 256, None, None)
        snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    assert trip.tripped and trip.peak == pytest.approx(0.7)
    assert np.all(out == 0.0) and synth.amplitude == 0.0  # the very next output block is silent
    callbacks = snapshot.filter_traces([tracemalloc.Filter(True, "*livctl*")])
    assert sum(stat.size for stat in callbacks.statistics("filename")) < 256  # a float or two, no samples


# -- on JACK --------------------------------------------------------------------------------------


def test_list_devices_shows_the_jack_device_with_its_channels_and_rate(jack):
    devices = list_devices(probe=True)
    system = [d for d in devices if d["name"] == "system"]
    assert len(system) == 1, devices
    d = system[0]
    assert d["host_api"] == "JACK Audio Connection Kit"
    assert (d["inputs"], d["outputs"], d["default_rate_hz"]) == (2, 2, 48000.0)
    assert d["rates_hz"] == [48000.0]  # a JACK server runs at one rate
    assert d["url"] == "audio://system" and d["backend"] == "audio"


def test_livctl_devices_lists_the_sound_cards(jack, cli):
    result = cli("devices", "--probe", "--json")
    assert result.code == 0, result
    audio = [d for d in json.loads(result.out)["devices"] if d["backend"] == "audio"]
    assert [d["url"] for d in audio] == ["audio://system"]
    assert audio[0]["description"] == "system (JACK Audio Connection Kit): 2 in, 2 out, 48000 Hz"
    assert audio[0]["status"] == "accepts 48000 Hz"
    text = cli("devices").out
    assert "audio://system" in text and "JACK Audio Connection Kit" in text


@pytest.mark.parametrize("frequency_hz, level", [(30.0, 0.25), (90.0, 0.1)])
def test_what_livctl_plays_is_what_the_measurement_reads(jack, frequency_hz, level):
    before = jack.xrun_reports()
    with _looped(jack) as platform:
        platform.set_frequency(frequency_hz)
        platform.set_drive(level, 0.1)
        platform.read(0.3)  # the ramp and the loop's latency
        block = platform.read(2.0)
        health = platform.stream_health()
    assert block.rate_hz == RATE and block.n == 96000
    assert np.all(block.accel_mps2[:, :2] == 0.0)  # one analog channel: the vertical axis
    m = measure(block.accel_mps2, block.rate_hz, axis="z")
    assert m.frequency_hz == pytest.approx(frequency_hz, abs=1e-4)
    assert m.peak_g == pytest.approx(level * IN_G_PER_FS, rel=1e-4)
    # a gap in the output (an under-run) would show as a step in the recording
    assert m.sinad_db > 100, f"the recording is not a clean sine: {health}; JACK log: {jack.log_tail()}"
    _assert_no_faults_but_the_servers(health, jack, before)


def test_the_drive_never_exceeds_the_calibrated_ceiling(jack):
    with _looped(jack, "audio://system?in=1&max_level=0.2&in_g_per_fs=1") as platform:
        assert platform.max_drive == 0.2
        platform.set_frequency(30.0)
        platform.set_drive(1.0, 0.2)  # five times the ceiling, ramped
        ramp = platform.read(0.4)
        platform.set_drive(0.9, 0.0)  # and as a step
        step = platform.read(0.4)
        platform.limit_drive(0.1)  # a calibration's largest safe drive lowers the ceiling at once
        lowered = platform.read(0.2)  # the drive ramps down to it
        platform.set_drive(0.9, 0.0)
        platform.read(0.05)
        after = platform.read(0.4)
        assert platform.limit_drive(0.9) == 0.1  # a ceiling is never raised
        assert platform.max_drive == 0.1
    peak_fs = np.max(np.abs(np.concatenate([ramp.accel_mps2[:, 2], step.accel_mps2[:, 2]]))) / g_to_mps2(1.0)
    assert 0.19 < peak_fs <= 0.2 * (1 + 1e-6)
    assert np.max(np.abs(lowered.accel_mps2[:, 2])) / g_to_mps2(1.0) <= 0.2 * (1 + 1e-6)
    assert 0.099 < np.max(np.abs(after.accel_mps2[:, 2])) / g_to_mps2(1.0) <= 0.1 * (1 + 1e-6)


def test_the_trip_in_the_callbacks_silences_the_output_on_a_real_server(jack):
    with _looped(jack) as platform:
        platform.set_frequency(30.0)
        assert platform.arm_trip(g_to_mps2(0.3))  # the loop reads 2 g per full scale: 0.25 gives 0.5 g
        platform.set_drive(0.25, 0.0)
        with pytest.raises(DeviceTripped, match=r"the audio input read 0\.[3-5]\d g, over the 0\.30 g trip"):
            for _ in range(20):
                platform.read(0.1)
        platform.read(0.1)  # what was in flight
        after = platform.read(0.3)
        assert platform._output.synth.amplitude == 0.0
    assert np.all(after.accel_mps2[:, 2] == 0.0)  # silent: the output callback cut it by itself


def test_the_drive_ramps_without_steps_and_cut_is_immediate(jack):
    with _looped(jack) as platform:
        platform.set_frequency(30.0)
        platform.read(0.1)
        platform.set_drive(0.4, 0.5)
        up = platform.read(1.0).accel_mps2[:, 2] / g_to_mps2(IN_G_PER_FS)
        platform.cut_drive()
        platform.read(0.05)  # the cut reaches the output within a block or two
        after = platform.read(0.2).accel_mps2[:, 2]
    # no sample-to-sample jump larger than the steepest slope of the full sine allows
    assert np.max(np.abs(np.diff(up))) <= 0.4 * 2 * math.pi * 30.0 / RATE * 1.01
    assert np.max(np.abs(up)) == pytest.approx(0.4, rel=1e-3)
    assert np.all(after == 0.0)


def test_a_short_session_over_audio_is_measured_and_logged(jack, log_path, tmp_path):
    rx = Prescription(frequency_hz=30.0, peak_g=0.3, duration_s=2.0, ramp_s=0.5)
    before = jack.xrun_reports()
    with DoseLog(log_path) as log, _looped(jack, noise=True) as platform:
        result = _session(platform, log, rx, _calibrated(tmp_path), subject="loop").run()
        windows = log.windows(result.session_id)
        record = log.find_session(result.session_id)
    assert result.status == "completed" and result.in_spec, result
    assert result.mean_frequency_hz == pytest.approx(30.0, abs=1e-3)
    assert result.mean_peak_g == pytest.approx(0.3, rel=0.01)
    assert result.delivered_s == pytest.approx(2.0)
    _assert_no_faults_but_the_servers(result.stream_health, jack, before)
    flagged = any(result.stream_health.values())
    assert (result.reason is None) != flagged and record["reason"] == result.reason
    assert record["platform_id"] == "audio-system" and not record["simulated"]
    deliver = [w for w in windows if w["phase"] == DELIVER]
    assert len(deliver) == 2 and all(w["in_spec"] for w in deliver)
    assert all(w["dc_g"] == pytest.approx(0.0, abs=1e-3) for w in deliver)  # AC-coupled: no gravity
    # the pre-check found the loop's gain (2 g per full scale) and drove 0.3 g / 2 = 15 %
    assert deliver[0]["drive"] == pytest.approx(0.15, rel=0.01)


TWO = f"audio://system?in=1&in2=2&max_level=0.5&in_g_per_fs={IN_G_PER_FS:g}"
"""The loopback platform with a second accelerometer on input 2."""


@contextmanager
def _looped_into(jack, inputs: tuple[int, ...]):
    """The two-input loop platform, its output routed into `inputs`, a sensor's noise on both."""
    with sensor_noise(jack) as mix_into:
        platform = open_platform(TWO)
        known = set(jack.ports())
        with platform:
            _, ports = jack.loop_back_into(known, inputs)
            for port in ports[:2]:
                mix_into(port)
            yield platform


def test_a_second_accelerometer_on_a_second_input_checks_the_first(jack, log_path, tmp_path):
    rx = Prescription(frequency_hz=30.0, peak_g=0.3, duration_s=3.0, ramp_s=0.5)
    with DoseLog(log_path) as log, _looped_into(jack, (1, 2)) as platform:
        assert platform.sensor_count == 2 and "a second on input 2" in platform.description
        block = platform.read(0.1)
        assert block.second_mps2 is not None and block.second_mps2.shape == (4800, 3)
        result = _session(platform, log, rx, _calibrated(tmp_path), subject="loop").run()
    assert result.status == "completed" and result.in_spec, result
    # the second input left with the noise only: it reads nothing while the first reads the drive
    with DoseLog(log_path) as log, _looped_into(jack, (1,)) as platform:
        result = _session(platform, log, rx, _calibrated(tmp_path), subject="loop").run()
        windows = log.windows(result.session_id)
    assert result.status == "aborted" and "the two accelerometers disagree" in result.reason, result
    assert result.reason.startswith("sensor check:") and not any(w["phase"] == DELIVER for w in windows)


def test_under_runs_are_counted_and_flag_the_session(jack, log_path, tmp_path):
    rx = Prescription(frequency_hz=30.0, peak_g=0.3, duration_s=2.0, ramp_s=0.5)
    with DoseLog(log_path) as log, _looped(jack, noise=True) as platform:
        synth = platform._output.synth
        render_into = synth.render_into

        def late_once(out):  # a block that misses its deadline (a stalled callback)
            synth.render_into = render_into
            time.sleep(0.03)
            render_into(out)

        stalled = []

        def stall_in_delivery(progress):
            if progress.phase == DELIVER and not stalled:
                stalled.append(progress.window.index)
                synth.render_into = late_once

        result = _session(platform, log, rx, _calibrated(tmp_path), observer=stall_in_delivery).run()
        record = log.find_session(result.session_id)
    assert result.stream_health["output_underruns"] >= 1
    assert "stream faults:" in result.reason and "output underruns" in result.reason
    assert record["reason"] == result.reason  # the flag is in the dose log too
    assert result.status == "completed"


def test_open_loop_session_without_an_accelerometer_says_the_dose_was_not_measured(jack, log_path, tmp_path):
    rx = Prescription(frequency_hz=30.0, peak_g=0.3, duration_s=2.0, ramp_s=0.5)
    platform = open_platform("audio://system?max_level=0.5&g_per_fs=1.5")
    assert not platform.has_sensor
    with DoseLog(log_path) as log, platform:
        result = _session(platform, log, rx, _calibrated(tmp_path, gain_g_per_drive=1.5)).run()
        windows = log.windows(result.session_id)
    assert result.status == "completed" and not result.in_spec
    assert result.reason.startswith("dose not measured: no accelerometer")
    assert result.delivered_s == pytest.approx(2.0) and result.mean_peak_g is None
    assert windows and all(w["reasons"] == [NOT_MEASURED] and w["peak_g"] is None for w in windows)
    # drive from the calibrated gain: 0.3 g / 1.5 g per full scale
    assert [w["drive"] for w in windows if w["phase"] == DELIVER] == [pytest.approx(0.2)] * 2


def test_open_loop_progress_says_each_window_was_not_measured(jack, tmp_path):
    rx = Prescription(frequency_hz=30.0, peak_g=0.3, duration_s=1.0, ramp_s=0.2)
    stream = io.StringIO()
    display = ProgressDisplay(stream)
    with open_platform("audio://system?max_level=0.5&g_per_fs=1.5") as platform:
        display.start(rx, platform)
        _session(platform, None, rx, _calibrated(tmp_path, gain_g_per_drive=1.5), observer=display.update).run()
    assert "open loop at 1.5 g per full scale" in stream.getvalue()
    assert NOT_MEASURED in stream.getvalue()


def test_calibrate_then_closed_and_open_loop_sessions_over_audio(jack, cli, log_path):
    """The whole workflow on one sound-card platform: calibrate it with its accelerometer, run a
    closed-loop session, then run open loop (accelerometer unplugged) from the calibration's gain."""
    with _route_when_ready(jack, noise=True):
        calibrated = cli("calibrate", "--device", LOOP, "--levels", "5,10", "--json", "--quiet")
    assert calibrated.code == 0, calibrated
    calibration = json.loads(calibrated.out)["calibration"]
    assert calibration["platform_id"] == "audio-system"
    point = calibration["points"][0]
    assert point["gain_g_per_drive"] == pytest.approx(IN_G_PER_FS, rel=1e-3)  # the loop: 2 g per full scale

    with _route_when_ready(jack, noise=True):
        closed = cli("session", "--yes", "--device", LOOP, "--minutes", "0.05", "--ramp", "0.5", "--log", str(log_path),
                     "--json", "--quiet")
    assert closed.code == 0, closed.out
    summary = json.loads(closed.out)
    assert summary["in_spec"] and summary["calibration_id"] == calibration["calibration_id"]
    assert summary["mean_peak_g"] == pytest.approx(0.3, rel=0.02)
    assert set(summary["stream_health"]) == {"output_underruns", "input_overruns"}

    opened = cli("session", "--yes", "--device", "audio://system?max_level=0.5", "--minutes", "0.05", "--ramp", "0.5",
                 "--log", str(log_path), "--json", "--quiet")
    assert opened.code == 1, opened
    summary = json.loads(opened.out)
    assert summary["status"] == "completed" and not summary["in_spec"]
    assert summary["reason"].startswith("dose not measured: no accelerometer, driven open loop from the calibrated gain (2 g")
    with DoseLog(log_path) as log:
        drives = [w["drive"] for w in log.windows(summary["session_id"]) if w["phase"] == DELIVER]
    assert drives == [pytest.approx(0.15, rel=1e-3)] * len(drives) and len(drives) == 3

    # a test tone obeys the calibration's largest safe drive too (1 g cap / 2 g per full scale)
    tone = cli("tone", "--device", LOOP, "--level", "0.9", "--seconds", "0.5", "--ramp", "0.1", "--json")
    assert tone.code == 0, tone
    played = json.loads(tone.out)
    assert played["calibration_id"] == calibration["calibration_id"]
    assert played["level"] == pytest.approx(point["max_safe_drive"]) and played["level"] < 0.5


def test_a_session_on_an_uncalibrated_audio_platform_is_refused(jack, cli, log_path):
    result = cli("session", "--yes", "--device", LOOP, "--minutes", "0.1", "--log", str(log_path))
    assert result.code == 2 and "platform 'audio-system' has no calibration" in result.err
    assert DoseLog(log_path).sessions() == []


def test_an_open_loop_session_without_a_gain_is_refused_before_anything_moves(jack, log_path, tmp_path):
    calibrated_at_90_hz_only = _calibrated(tmp_path, frequencies_hz=(90.0,))  # no gain that applies at 30 Hz
    with DoseLog(log_path) as log, open_platform("audio://system?max_level=0.5") as platform:
        rx = Prescription(frequency_hz=30.0, peak_g=0.3, duration_s=5.0)
        with pytest.raises(UsageError, match="no accelerometer and no calibrated gain"):
            _session(platform, log, rx, calibrated_at_90_hz_only)
        assert log.sessions() == []
        assert platform._output.command[1] == 0.0  # never driven


@pytest.mark.parametrize(
    "url, says",
    [
        ("audio://nosuchcard?max_level=0.1", ["no audio device 'nosuchcard'", "[0] system", "2 in, 2 out"]),
        ("audio://system?max_level=0.1&rate=44100", ["refuses rate=44100", "accepts 48000 Hz"]),
        ("audio://system?max_level=0.1&out=3", ["2 output channel(s); out=3", "choose 1-2"]),
        ("audio://system?max_level=0.1&in=5&in_g_per_fs=1", ["2 input channel(s); in=5"]),
        ("audio://system?max_level=0.1&in=1", ["needs its scale: in_g_per_fs"]),
        ("audio://system?max_level=0.1&in2=2&in_g_per_fs=1", ["give the first's as in=N too"]),
        ("audio://system?max_level=0.1&in=1&in2=1&in_g_per_fs=1", ["give the first's as in=N too"]),
        ("audio://system?max_level=0.1&in=1&in2=7&in_g_per_fs=1", ["in2=7 is not one"]),
        ("audio://system?max_level=0.1&api=asio", ["no host API matches api='asio'", "system"]),
        ("audio://system?max_level=1.5", ["max_level='1.5'", "a positive number (up to 1)"]),
        ("audio://system", ["no drive ceiling is known", "max_level=FRACTION"]),
        ("audio://system?max_level=0.1&loud=1", ["has no option loud", "known options"]),
    ],
)
def test_bad_audio_devices_are_one_line_usage_errors(jack, cli, url, says):
    result = cli("tone", "--device", url, "--seconds", "1", "--quiet")
    assert result.code == 2, result
    assert result.err.startswith("livctl: error: ") and len(result.err.strip().splitlines()) == 1
    for text in says:
        assert text in result.err


def test_a_stream_the_device_will_not_open_is_a_usage_error(jack):
    # as a serial port that cannot be opened: a one-line error, exit 2, nothing driven
    platform = open_platform("audio://system?max_level=0.1")
    platform.rate_hz = 44100.0  # past the URL's checks: the JACK server runs at 48000 only
    with pytest.raises(DeviceOpenError, match=r"cannot open audio device 'system': .*Invalid sample rate"):
        platform.open()
    assert platform._streams == []
    platform.close()


def test_tone_plays_and_measures_through_the_loop(jack, cli, tmp_path):
    _calibrated(tmp_path / "calibration")
    with _route_when_ready(jack):
        result = cli("tone", "--device", LOOP, "--freq", "45", "--level", "0.1", "--seconds", "3", "--ramp", "0.2",
                     "--json")
    assert result.code == 0, result
    summary = json.loads(result.out)
    assert summary["level"] == summary["reached_level"] == 0.1 and not summary["interrupted"]
    assert summary["measured"]["frequency_hz"] == pytest.approx(45.0, abs=1e-3)
    assert summary["measured"]["peak_g"] == pytest.approx(0.1 * IN_G_PER_FS, rel=1e-3)
    assert "g peak" in result.err  # a progress line for each half second


def test_tone_level_is_capped_by_the_ceiling(jack, cli, tmp_path):
    _calibrated(tmp_path / "calibration")
    result = cli("tone", "--device", "audio://system?max_level=0.05", "--level", "0.5", "--seconds", "0.5",
                 "--ramp", "0.1", "--json")
    assert result.code == 0, result
    assert json.loads(result.out)["level"] == 0.05
    assert "capped at the platform's ceiling" in result.err


def test_tone_ctrl_c_ramps_down_and_exits_130(jack, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "livctl", "tone", "--device", "audio://system?max_level=0.1", "--seconds", "60",
         "--ramp", "0.3", "--json", "--calibration-dir", str(_calibrated(tmp_path))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=livctl_env(),
    )
    try:
        _wait_for_line(proc.stderr, "0.5 s", timeout_s=30)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        stopped_s = time.monotonic() - started
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    summary = json.loads(out)
    assert summary["interrupted"] and summary["played_s"] < 10
    assert 0.3 <= stopped_s < 5  # the ramp down was played, then it stopped


def _wait_for_line(stream, text: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    seen = []
    while time.monotonic() < deadline:
        line = stream.readline()
        seen.append(line)
        if text in line:
            return line
        if not line:
            break
    raise AssertionError(f"never saw {text!r}; got {seen!r}")


_SESSION_UNTIL_THE_SERVER_GOES = """
import json, sys
from livctl.platforms import open_platform
from livctl.records.doselog import DoseLog
from livctl.procedures.prepare import SessionRequest
from livctl.prescription import Prescription
from livctl.procedures.session import run_session

rx = Prescription(frequency_hz=30.0, peak_g=0.3, duration_s=60.0, ramp_s=0.5)
with DoseLog(sys.argv[1]) as log, open_platform("audio://system?max_level=0.5&g_per_fs=1") as platform:
    result = run_session(platform, log, SessionRequest(rx, calibration_dir=sys.argv[2]),
                         observer=lambda p: print(p.phase, file=sys.stderr, flush=True))
print(json.dumps(dict(result.to_record(), session_id=result.session_id)))
"""


def test_a_server_that_goes_away_ends_the_session_with_the_reason(tmp_path):
    """The device disappears mid-session: the session stops, says why, the log is true, and the
    process exits normally (PortAudio would abort it closing a stream whose server has gone)."""
    log_path = tmp_path / "gone.sqlite"
    server = JackServer(f"livctl-test-gone-{os.getpid()}")
    try:
        server.start()
    except JackUnavailable as exc:
        pytest.fail(f"this test needs a JACK server: {exc}")
    proc = None
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", _SESSION_UNTIL_THE_SERVER_GOES, str(log_path),
             str(_calibrated(tmp_path / "calibration", gain_g_per_drive=1.0))],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=livctl_env(**server.env),
        )
        try:
            _wait_for_line(proc.stderr, "deliver", timeout_s=30)
        finally:
            server.stop()
        stopped = time.monotonic()
        out, err = proc.communicate(timeout=30)
        took_s = time.monotonic() - stopped
    finally:
        server.stop()
        if proc is not None and proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert summary["status"] == "aborted"
    assert "platform failure: audio device 'system' stopped delivering" in summary["reason"]
    assert 0 < summary["delivered_s"] < 60 and took_s < 5
    with DoseLog(log_path) as log:
        assert log.find_session(summary["session_id"])["status"] == "aborted"


def test_a_server_that_cannot_start_says_why():
    server = JackServer(f"livctl-test-broken-{os.getpid()}", driver="nosuchdriver")
    with pytest.raises(JackUnavailable, match="jackd did not start.*its log: .*nosuchdriver"):
        server.start()
    assert server.process is None


def test_without_portaudio_audio_urls_are_a_one_line_error_and_nothing_else_breaks(tmp_path):
    # PortAudio cannot be removed from this machine for one test; a sounddevice that fails to
    # load it the way the real one does (OSError at import) stands in for it.
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "sounddevice.py").write_text("raise OSError('PortAudio library not found')\n")
    env = livctl_env()
    env["PYTHONPATH"] = os.pathsep.join([str(fake), env["PYTHONPATH"]])
    tone = run_livctl("tone", "--device", "audio://system?max_level=0.1", env=env)
    assert tone.returncode == 2
    assert tone.stderr.strip().splitlines() == [
        "livctl: error: audio:// needs the PortAudio library (PortAudio library not found); install it "
        "(Debian/Ubuntu: apt install libportaudio2) or use sim://"
    ]
    sim = run_livctl("session", "--yes", "--device", "sim://", "--minutes", "0.1", "--speed", "max", "--quiet",
                     "--log", str(tmp_path / "log.sqlite"), env=env)
    assert sim.returncode == 0, sim.stderr
    listing = subprocess.run(
        [sys.executable, "-c", "from livctl.platforms.audio import list_devices; list_devices()"],
        capture_output=True, text=True, env=env,
    )
    assert "AudioDeviceError" in listing.stderr and "needs the PortAudio library" in listing.stderr


@pytest.mark.parametrize(
    "args, says",
    [
        (["--seconds", "400"], "longer than a test tone may play (300 s)"),
        (["--level", "2"], "out of range: it must be a positive number (up to 1)"),
        (["--level", "loud"], "level 'loud' is not a number"),
        (["--level", "3_0%"], "groups digits with '_'"),
        (["--level", "1e-308"], "too small to mean anything"),
        (["--freq", "5000"], "outside 1-1000 Hz"),
        (["--seconds", "1", "--ramp", "0.6"], "leaves no room for two 0.6 s ramps"),
    ],
)
def test_tone_refuses_bad_arguments_before_anything_plays(cli, args, says):
    result = cli("tone", "--device", "sim://", *args)
    assert result.code == 2 and says in result.err


def test_tone_works_on_any_platform_with_a_sensor(cli):
    # the level is reached in steps of at most 4x from the first, safe drive: 1.6 s here, then held
    result = cli("tone", "--device", "sim://?load_kg=0.5", "--freq", "90", "--level", "0.02", "--seconds", "3",
                 "--ramp", "0.2", "--json", "--quiet")
    assert result.code == 0, result
    summary = json.loads(result.out)
    assert summary["measured"]["frequency_hz"] == pytest.approx(90.0, abs=0.05)
    assert summary["measured"]["peak_g"] > 0 and summary["stream_health"] == {}


def test_a_tone_asked_past_the_cap_stops_short_of_it(cli, monkeypatch):
    # full drive on the default simulated plate gives about 1.5 g peak: the guard raises the drive
    # only as far as the measured response says stays under 95 % of the 1 g cap
    from livctl.platforms.sim import SimPlatform

    platforms = []
    original = SimPlatform.open

    def open_and_record(self):
        self.device.record_truth()
        platforms.append(self)
        original(self)

    monkeypatch.setattr(SimPlatform, "open", open_and_record)
    result = cli("tone", "--device", "sim://", "--level", "1", "--seconds", "4", "--ramp", "0.5", "--json", "--quiet")
    assert result.code == 0, result
    summary = json.loads(result.out)
    assert summary["level"] == 1.0 and 0.4 < summary["reached_level"] < 0.7
    assert 0.6 < summary["measured"]["peak_g"] < 1.0
    truth = platforms[0].device.true_accel_mps2()
    assert np.nanmax(np.abs(truth)) < g_to_mps2(1.0)  # never over the cap, harmonics included


def test_a_tone_that_goes_over_the_cap_is_cut_at_once(cli, monkeypatch):
    # the plant's gain trebles 3 s in: the platform's own trip cuts the drive within a few cycles,
    # and the tone ends (exit 1) at the block that reports it
    from livctl.platforms.sim import SimPlatform

    platforms = []
    original = SimPlatform.open

    def open_and_record(self):
        self.device.record_truth()
        platforms.append(self)
        original(self)

    monkeypatch.setattr(SimPlatform, "open", open_and_record)
    result = cli("tone", "--device", "sim://?fault=resonance&fault_at_s=3&fault_value=3", "--level", "0.4",
                 "--seconds", "10", "--ramp", "0.5")
    assert result.code == 1, result
    last = result.err.strip().splitlines()[-1]
    assert last.startswith("livctl: error: ") and last.endswith("drive cut; play a lower --level, or calibrate the "
                                                                "platform so its largest safe drive caps the level")
    assert "over-acceleration trip" in last or "safety cap" in last
    device = platforms[0].device
    device.advance(int(device.rate_hz))  # the world goes on a second after the tone ends
    truth = np.nan_to_num(device.true_accel_mps2())
    # the plate's half-cycles (30 Hz) whose peak passed the cap: at most 0.1 s of them in all
    half = int(device.rate_hz / 60)
    peaks = np.abs(truth[: truth.size // half * half]).reshape(-1, half).max(axis=1)
    assert 0 < np.count_nonzero(peaks > g_to_mps2(1.0)) * half / device.rate_hz <= 0.1
    assert np.nanmax(np.abs(truth[int(3.3 * device.rate_hz):])) < g_to_mps2(1.0)
    assert "   4.0 s" not in result.err  # nothing played after it


def test_a_tone_ends_on_time_when_its_sensor_goes_silent(cli):
    # an unplugged sensor delivers no samples: the tone must still stop after --seconds
    result = cli("tone", "--device", "sim://?fault=sensor_unplug&fault_at_s=0.6", "--seconds", "2", "--ramp", "0.2",
                 "--json", "--quiet")
    assert result.code == 0, result
    summary = json.loads(result.out)
    assert summary["played_s"] == pytest.approx(2.0) and not summary["interrupted"]
