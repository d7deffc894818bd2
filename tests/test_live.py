"""The live view: drawn off screen with pytest-qt, and a real window under Xvfb."""

import json
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QTimer
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

from conftest import REPO, livctl_env
from livctl.ui import live
from livctl.platforms import open_platform
from livctl.procedures.calibrate import CalibrationInterrupted, Calibrator
from livctl.cli.common import StopEvent


def colour_count(image: QImage, rgb, box=(0.0, 0.0, 1.0, 1.0), tolerance=12) -> int:
    """Pixels within `tolerance` of `rgb` in the box (fractions of width and height: x0, y0, x1, y1)."""
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    w, h = image.width(), image.height()
    raw = np.frombuffer(image.constBits(), np.uint8, count=image.sizeInBytes())
    pixels = raw.reshape(h, image.bytesPerLine())[:, : 3 * w].reshape(h, w, 3).astype(int)
    x0, y0, x1, y1 = box
    part = pixels[int(y0 * h): int(y1 * h), int(x0 * w): int(x1 * w)]
    return int(np.all(np.abs(part - np.array(rgb)) <= tolerance, axis=2).sum())


def new_feed(**kwargs):
    defaults = dict(title="livctl calibrate: sim", frequency_hz=30.0, tolerance_hz=1.0, accel_cap_g=1.0)
    defaults.update(kwargs)
    return live.LiveFeed(**defaults)


def test_the_view_draws_trace_spectrum_and_a_fit_that_grows_with_the_points(qtbot):
    feed = new_feed()
    window = live.LiveWindow(feed)
    qtbot.addWidget(window)
    seen = []

    class Watch:
        def on_window(self, progress):
            window.refresh()
            scatter, curve = window._series[progress.frequency_hz]
            seen.append((len(scatter.getData()[0]), curve.getData()[0] is not None))

    platform = open_platform("sim://?seed=4", speed=math.inf)
    with platform:
        Calibrator(platform, observer=live.CalibrationFeed(feed, Watch())).run()
    counts = [n for n, _ in seen]
    assert counts == list(range(1, len(seen) + 1))  # one more point each step
    assert not seen[0][1] and seen[-1][1]  # the curve appears once there are two points to fit
    window.refresh()
    t, trace_g = window.trace_curve.getData()
    assert t[-1] == pytest.approx(0.5, abs=0.01) and 0.3 < np.max(np.abs(trace_g)) < 1.0
    freqs, amplitude = window.spectrum_curve.getData()
    assert freqs[np.argmax(amplitude)] == pytest.approx(30.0, abs=1.0)
    assert window.target_line.value() == 30.0 and window.band.getRegion() == (29.0, 31.0)
    image = window.grab().toImage()
    assert image.width() == live.WINDOW_SIZE[0] and image.height() == live.WINDOW_SIZE[1]
    assert colour_count(image, live.TRACE_RGB, (0, 0.05, 1, 0.5)) > 2000  # the trace
    assert colour_count(image, live.SERIES_RGB[0], (0.5, 0.5, 1, 1)) > 300  # points and fitted curve
    assert colour_count(image, live.TARGET_RGB, (0, 0.5, 0.5, 1)) > 100  # target frequency marked


def test_closing_the_window_stops_the_sweep_and_ramps_down(qtbot):
    platform = open_platform("sim://?seed=5", speed=20.0)
    stop = StopEvent()
    steps = []

    class Count:
        def on_window(self, progress):
            steps.append(progress.step)

    feed = new_feed()
    calibrator = Calibrator(platform, stop=stop, observer=live.CalibrationFeed(feed, Count()))

    def close_the_window():
        for widget in QApplication.topLevelWidgets():
            if isinstance(widget, live.LiveWindow) and widget.isVisible():
                widget.close()

    QTimer.singleShot(700, close_the_window)  # the sweep takes about 2 s at 20x
    started = time.monotonic()
    with platform, pytest.raises(CalibrationInterrupted, match="the live view was closed"):
        live.run_live(calibrator.run, feed, stop, mode="window")
    assert time.monotonic() - started < 10
    assert stop.reason == "the live view was closed"
    assert 0 < len(steps) < 9
    assert platform.device.drive_level == 0.0 and not platform.device.synth.ramping


def test_session_plot_watches_a_running_session_and_saves_its_view(cli, log_path, tmp_path, qapp):
    png = tmp_path / "session.png"
    result = cli("session", "--device", "sim://?seed=6", "--minutes", "0.2", "--speed", "max", "--quiet",
                 "--log", str(log_path), "--plot", "--plot-png", str(png), "--json")
    assert result.code == 0, result
    assert json.loads(result.out)["status"] == "completed"
    image = QImage(str(png))
    assert colour_count(image, live.TRACE_RGB, (0, 0.05, 1, 0.5)) > 2000
    assert colour_count(image, live.SERIES_RGB[1], (0.5, 0.5, 1, 1)) > 100  # in-spec windows, green


def test_display_problem_is_found_before_qt_starts():
    assert live.display_problem({}) == "no display available (DISPLAY is not set)"
    assert live.display_problem({"QT_QPA_PLATFORM": "offscreen"}) is None
    assert live.display_problem({"DISPLAY": ":4095"}) == "cannot open the display :4095"


# -- a real window on a real X server ------------------------------------------------------------


@pytest.fixture
def xvfb():
    """An X server of our own on a free display; yields its name (":N")."""
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1200x800x24", "-nolisten", "tcp"],
        pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    number = b""
    deadline = time.monotonic() + 30
    while not number.endswith(b"\n") and time.monotonic() < deadline:
        ready, _, _ = select.select([read_end], [], [], 1.0)
        if ready:
            chunk = os.read(read_end, 16)
            if not chunk:
                break
            number += chunk
    os.close(read_end)
    assert number.strip().isdigit(), "Xvfb did not report its display"
    try:
        yield f":{number.decode().strip()}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.slow
def test_a_real_window_under_xvfb_draws_the_sweep(tmp_path, xvfb):
    env = livctl_env(DISPLAY=xvfb)
    env.pop("QT_QPA_PLATFORM", None)
    cal_dir = tmp_path / "xdg" / "livctl" / "calibration"  # the default directory: the user's data directory
    proc = subprocess.Popen(
        [sys.executable, "-m", "livctl", "calibrate", "--device", "sim://?seed=3&id=bench-A", "--speed", "6",
         "--load-kg", "70", "--also-at", "28", "--json", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 120
        while not (cal_dir / "bench-A.toml").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[1]  # the window stays open after the sweep
        assert (cal_dir / "bench-A.toml").exists()
        time.sleep(1.0)  # a few more redraws
        shot = tmp_path / "screen.png"
        subprocess.run(["import", "-window", "root", str(shot)], env=env, check=True, timeout=30)
        proc.send_signal(signal.SIGTERM)  # after the sweep, a signal just closes the window
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert json.loads(out)["status"] == "completed"
    assert "no display" not in err
    image = QImage(str(shot))
    assert (image.width(), image.height()) == (1200, 800)
    assert colour_count(image, live.TRACE_RGB, (0, 0.05, 1, 0.5)) > 2000  # the acceleration trace
    assert colour_count(image, live.TRACE_RGB, (0, 0.5, 0.5, 1)) > 200  # the spectrum
    assert colour_count(image, live.SERIES_RGB[0], (0.5, 0.5, 1, 1)) > 300  # 30 Hz points and fit
    assert colour_count(image, live.SERIES_RGB[1], (0.5, 0.5, 1, 1)) > 300  # 28 Hz points and fit
    if os.environ.get("LIVCTL_UPDATE_DOCS_IMAGES"):
        shutil.copyfile(shot, Path(REPO) / "docs" / "images" / "calibrate-live.png")


def test_the_pyside6_release_that_crashes_python_311_is_refused():
    assert live.qt_is_known_bad("6.12.0", (3, 11))
    assert not live.qt_is_known_bad("6.12.0", (3, 12))
    assert not live.qt_is_known_bad("6.11.3", (3, 11))


# -- the session's window: time left, large readouts, the delivery's last frame, the true peak ------


@pytest.mark.parametrize("length_s, offset_hz", [(0.25, 0.0), (0.25, 2.0), (1.0, 0.5), (0.3, 1.7)])
def test_the_spectrum_reads_the_true_peak_wherever_the_tone_falls(length_s, offset_hz):
    """0.300 g at 30 Hz in a quarter-second window falls between 4 Hz bins: a Hann window read about
    255 mg; the flat-top window with zero-padding reads the tone's peak."""
    rate = 3200.0
    t = np.arange(int(length_s * rate)) / rate
    f = 30.0 + offset_hz
    samples = 0.300 * 9.80665 * np.cos(2 * np.pi * f * t + 0.4) + 9.80665
    freqs, amplitude = live.peak_spectrum(samples, rate)
    peak = np.argmax(amplitude)
    assert amplitude[peak] / 9.80665 == pytest.approx(0.300, rel=0.01)
    assert freqs[peak] == pytest.approx(f, abs=1 / length_s)  # within a bin: a short window cannot say more


def test_the_session_view_shows_time_left_and_large_readouts(qtbot):
    from types import SimpleNamespace

    feed = new_feed(title="livctl session: sim", mode="session", target_g=0.3, tolerance_fraction=0.1)
    window = live.LiveWindow(feed)
    qtbot.addWidget(window)
    m = SimpleNamespace(frequency_hz=30.012, peak_g=0.3021)
    progress = SimpleNamespace(phase="deliver", delivered_s=75.0, duration_s=600.0, in_spec_fraction=0.98,
                               window=SimpleNamespace(measurement=m, t_s=80.0, duration_s=1.0, in_spec=True))
    live.session_window(feed, progress)
    window.refresh()
    readout = window.readout.text
    assert readout == "8:45 left · 30.01 Hz · 0.302 g pk · in spec 98 %"
    assert "delivering: 1:15 of 10:00 delivered, 8:45 left" in window.label.text


def test_a_frozen_feed_keeps_the_deliverys_last_frame():
    from livctl.platforms import SampleBlock

    feed = new_feed(mode="session", target_g=0.3)
    delivery = np.zeros((320, 3))
    delivery[:, 2] = np.sin(np.arange(320) / 3)
    feed.add_block(SampleBlock(0.0, 3200.0, delivery))
    feed.freeze_samples()
    feed.add_block(SampleBlock(0.1, 3200.0, np.zeros((320, 3))))  # the ramp-down: not shown
    assert np.array_equal(feed.snapshot()["block"], delivery[:, 2])


def test_the_calibration_view_marks_the_largest_safe_drive(qtbot):
    feed = new_feed()
    window = live.LiveWindow(feed)
    qtbot.addWidget(window)
    platform = open_platform("sim://?seed=4", speed=math.inf)
    with platform:
        calibration = Calibrator(platform, observer=live.CalibrationFeed(feed)).run()
    window.refresh()
    (line,) = window._safe_lines.values()
    expected = calibration.points[0].max_safe_drive
    assert line.value() == pytest.approx(100 * expected, rel=1e-9)
    assert f"largest safe drive {100 * expected:.1f} %" in line.label.format
