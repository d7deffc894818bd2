"""Live plots of a running calibration or session (pyqtgraph), imported only when a plot is asked for.

    measuring thread ──► LiveFeed (latest samples, points, fits; under a lock) ◄── timer, 15 Hz ──► window

The measuring work runs on its own thread and only hands data to a `LiveFeed`; the window redraws
from the feed on a Qt timer at about 15 Hz, never per sample, so plotting cannot slow or stall
acquisition. Three panels: the vertical acceleration (gravity removed), its spectrum with the
target frequency and tolerance band, and either peak acceleration against drive level with the
fitted curve growing as points arrive (calibration) or peak acceleration per window against time
with the prescribed band (session). Closing the window asks the work to stop: it ramps the platform
down and ends as if interrupted.
"""

from __future__ import annotations

import html
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

import numpy as np  # noqa: E402
import pyqtgraph as pg  # noqa: E402
from pyqtgraph.Qt import QtCore, QtWidgets  # noqa: E402

from livctl.platforms import SampleBlock  # noqa: E402
from livctl.events import CalibrationStep, Phase, Reporter  # noqa: E402
from livctl.records.calibration import Gain, Step  # noqa: E402
from livctl.errors import UsageError  # noqa: E402
from livctl.units import mps2_to_g  # noqa: E402

REFRESH_HZ = 15.0
TRACE_S = 0.5
"""The trace panel shows the last half second of the vertical axis."""
SPECTRUM_S = 1.0
"""The spectrum is taken over the last second of samples (blocks arrive every 0.1 s)."""
SPECTRUM_PAD = 8
"""Zero-padding: the spectrum is evaluated on a grid this many times finer than its bins, so its
curve passes through the tone's true peak rather than the bins either side of it."""
FLATTOP = (0.21557895, 0.41663158, 0.277263158, 0.083578947, 0.006947368)
"""Flat-top window coefficients: a tone's peak reads within 0.01 dB wherever it falls between
bins (a Hann window under-reads by up to 15 %, a rectangular one by 36 %)."""
WINDOW_SIZE = (1200, 800)

TRACE_RGB = (0, 180, 255)
TARGET_RGB = (255, 70, 70)
SERIES_RGB = ((255, 200, 0), (0, 220, 120), (220, 90, 255), (255, 120, 40), (120, 200, 255))
"""Points and fitted curves, one colour per frequency point."""

_HEADLESS_PLATFORMS = ("offscreen", "minimal", "vnc", "linuxfb", "eglfs")


def qt_is_known_bad(pyside_version: str, python: tuple[int, int]) -> bool:
    """PySide6 6.12.0 drops a reference to None on every call that returns nothing; before Python 3.12
    (where None became immortal) the interpreter aborts after a few thousand drawing calls."""
    return pyside_version.startswith("6.12.0") and python < (3, 12)


def display_problem(environ: dict[str, str] | None = None) -> str | None:
    """Why no window can be shown here (None: one can). Checked before Qt starts, since Qt aborts
    the whole process when its platform plugin cannot connect to a display."""
    env = os.environ if environ is None else environ
    from importlib.metadata import PackageNotFoundError, version

    try:
        pyside_version = version("PySide6-Essentials")
    except PackageNotFoundError:
        return "PySide6-Essentials is not installed (pip install 'PySide6-Essentials<6.12')"
    if qt_is_known_bad(pyside_version, sys.version_info[:2]):
        return "PySide6-Essentials 6.12.0 crashes Python 3.11 while drawing; install PySide6-Essentials<6.12"
    platform = env.get("QT_QPA_PLATFORM", "").split(":")[0].strip().lower()
    if platform in _HEADLESS_PLATFORMS or sys.platform in ("win32", "darwin"):
        return None
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        return "no display available (DISPLAY is not set)"
    probe = "import sys\nfrom PySide6.QtGui import QGuiApplication\nQGuiApplication(sys.argv[:1])\n"
    try:
        result = subprocess.run([sys.executable, "-c", probe], env=dict(env), capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "the display did not answer"
    if result.returncode != 0:
        where = env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")
        return f"cannot open the display {where}"
    return None


# ================================================================================================
# The feed: written by the measuring thread, read by the window's timer
# ================================================================================================


class LiveFeed:
    """What the live view shows, kept up to date by the measuring thread."""

    def __init__(
        self,
        *,
        title: str,
        frequency_hz: float,
        tolerance_hz: float,
        accel_cap_g: float,
        vertical_axis: str = "z",
        mode: str = "calibration",
        target_g: float | None = None,
        tolerance_fraction: float | None = None,
    ):
        if mode not in ("calibration", "session"):
            raise ValueError(mode)
        self.title = title
        self.mode = mode
        self.tolerance_hz = tolerance_hz
        self.accel_cap_g = accel_cap_g
        self.target_g = target_g
        self.tolerance_fraction = tolerance_fraction
        self._axis = "xyz".index(vertical_axis)
        self._lock = threading.Lock()
        self.version = 0
        self._frequency_hz = frequency_hz
        self._block: np.ndarray | None = None
        self._rate_hz = 1.0
        self._points: dict[float, list[tuple[float, float]]] = {}
        self._fits: dict[float, Gain] = {}
        self._windows: list[tuple[float, float, bool]] = []
        self._status = "starting"
        self._readout = ""
        self._safe_drive: dict[float, float] = {}
        self._frozen = False

    # -- writers (any thread) -----------------------------------------------------------------

    def add_block(self, block: SampleBlock) -> None:
        """A block of samples (any length): the view keeps the last SPECTRUM_S of the vertical axis."""
        column = np.asarray(block.accel_mps2[:, self._axis], dtype=float)
        with self._lock:
            if self._frozen:
                return
            keep = int(SPECTRUM_S * block.rate_hz)
            previous = self._block if self._block is not None and self._rate_hz == block.rate_hz else column[:0]
            self._block = np.concatenate([previous, column])[-keep:]
            self._rate_hz = block.rate_hz
            self.version += 1

    def set_frequency(self, frequency_hz: float) -> None:
        """The drive frequency the spectrum marks (a calibration moves from one to the next)."""
        with self._lock:
            self._frequency_hz = frequency_hz
            self.version += 1

    def add_point(self, frequency_hz: float, drive: float, peak_g: float, gain: Gain | None) -> None:
        with self._lock:
            self._points.setdefault(frequency_hz, []).append((drive, peak_g))
            if gain is not None:
                self._fits[frequency_hz] = gain
            self.version += 1

    def add_window(self, t_s: float, peak_g: float, in_spec: bool) -> None:
        with self._lock:
            self._windows.append((t_s, peak_g, in_spec))
            self.version += 1

    def set_status(self, text: str) -> None:
        with self._lock:
            self._status = text
            self.version += 1

    def set_readout(self, text: str) -> None:
        """The large line of a session's view: time left, measured Hz and g, share in spec."""
        with self._lock:
            self._readout = text
            self.version += 1

    def set_safe_drive(self, frequency_hz: float, drive: float) -> None:
        """The largest safe drive at `frequency_hz` as the fit so far says (fraction of full scale)."""
        with self._lock:
            self._safe_drive[frequency_hz] = drive
            self.version += 1

    def freeze_samples(self) -> None:
        """Keep the trace and spectrum as they are (the delivery's last frame): later blocks (the
        ramp-down) are not shown."""
        with self._lock:
            self._frozen = True

    # -- reader (the window) ------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "version": self.version,
                "frequency_hz": self._frequency_hz,
                "block": self._block,
                "rate_hz": self._rate_hz,
                "points": {f: list(p) for f, p in self._points.items()},
                "fits": dict(self._fits),
                "windows": list(self._windows),
                "status": self._status,
                "readout": self._readout,
                "safe_drive": dict(self._safe_drive),
            }


class CalibrationFeed:
    """Feeds a calibration's progress to a LiveFeed, and on to another observer (text progress): an
    `livctl.events.Observer`."""

    def __init__(self, feed: LiveFeed, also: Any = None, max_drive: float = 1.0):
        self.feed = feed
        self.also = Reporter(also)
        self.max_drive = max_drive
        self._steps: dict[float, list[Step]] = {}

    def on_status(self, text: str) -> None:
        self.feed.set_status(text)
        self.also.status(text)

    def on_phase(self, phase: Phase, frequency_hz: float) -> None:
        self.feed.set_frequency(frequency_hz)
        self.also.phase(phase, frequency_hz)

    def on_block(self, block: SampleBlock) -> None:
        self.feed.add_block(block)
        self.also.block(block)

    def on_window(self, progress: CalibrationStep) -> None:
        from livctl.records.calibration import frequency_point

        frequency_hz, step = progress.frequency_hz, progress.step
        self.feed.add_point(frequency_hz, step.drive, step.peak_g, progress.gain)
        steps = self._steps.setdefault(frequency_hz, [])
        steps.append(step)
        if len(steps) >= 2:  # the limit the calibration file will state, from the steps so far
            point = frequency_point(frequency_hz, steps, accel_cap_g=self.feed.accel_cap_g, max_drive=self.max_drive)
            self.feed.set_safe_drive(frequency_hz, point.max_safe_drive)
        self.also.window(progress)


PHASES = {"precheck": "pre-check", "ramp_up": "ramping up", "deliver": "delivering", "ramp_down": "ramping down"}


def _clock(seconds: float) -> str:
    whole = int(round(max(0.0, seconds)))
    return f"{whole // 60}:{whole % 60:02d}"


def session_window(feed: LiveFeed, progress: Any) -> None:
    """A session observer: each measured window as a point of peak g against time, the time left
    and the latest measured values in large type."""
    w = progress.window
    m = w.measurement
    if m is not None:
        feed.add_window(w.t_s + w.duration_s, m.peak_g, w.in_spec)
    left = progress.duration_s - progress.delivered_s
    if progress.phase != "ramp_down":  # the readout keeps the delivery's last figures, as the trace does
        share = "-" if progress.in_spec_fraction is None else f"{100 * progress.in_spec_fraction:.0f} %"
        measured = f"{m.frequency_hz:.2f} Hz · {m.peak_g:.3f} g pk" if m is not None else "no measurement"
        feed.set_readout(f"{_clock(left)} left · {measured} · in spec {share}")
    feed.set_status(f"{PHASES.get(progress.phase, progress.phase)}: {_clock(progress.delivered_s)} of "
                    f"{_clock(progress.duration_s)} delivered, {_clock(left)} left")


# ================================================================================================
# The window
# ================================================================================================


def _pen(rgb: tuple[int, int, int], width: float = 1.5, style: Any = None) -> Any:
    kwargs = {"color": rgb, "width": width}
    if style is not None:
        kwargs["style"] = style
    return pg.mkPen(**kwargs)


class LiveWindow(pg.GraphicsLayoutWidget):
    """The three panels; `refresh()` redraws from the feed (the timer calls it)."""

    def __init__(self, feed: LiveFeed, on_close: Callable[[], None] | None = None):
        super().__init__()
        self.feed = feed
        self.on_close = on_close
        self._version = -1
        self.setWindowTitle(feed.title)
        self.resize(*WINDOW_SIZE)
        self.label = self.addLabel(feed.title, row=0, col=0, colspan=2, size="10pt")
        self.readout = None
        if feed.mode == "session":  # what a technician reads from across the room
            self.readout = self.addLabel("", row=1, col=0, colspan=2, size="22pt", bold=True)
        top = 1 if self.readout is None else 2

        self.trace = self.addPlot(row=top, col=0, colspan=2, title="vertical acceleration (gravity removed)")
        self.trace.setLabel("left", "acceleration", units="g")
        self.trace.setLabel("bottom", "time", units="s")
        self.trace_curve = self.trace.plot(pen=_pen(TRACE_RGB))

        self.spectrum = self.addPlot(row=top + 1, col=0, title="spectrum (peak g, flat-top window)")
        self.spectrum.setLogMode(y=True)
        self.spectrum.setLabel("left", "amplitude", units="g")
        self.spectrum.setLabel("bottom", "frequency", units="Hz")
        self.spectrum_curve = self.spectrum.plot(pen=_pen(TRACE_RGB))
        self.band = pg.LinearRegionItem(movable=False, brush=pg.mkBrush(*TARGET_RGB, 50), pen=_pen(TARGET_RGB, 0.5))
        self.target_line = pg.InfiniteLine(angle=90, movable=False, pen=_pen(TARGET_RGB, 1.5, QtCore.Qt.PenStyle.DashLine))
        self.spectrum.addItem(self.band)
        self.spectrum.addItem(self.target_line)

        if feed.mode == "calibration":
            self.response = self.addPlot(row=top + 1, col=1, title="peak acceleration against drive, with the fit")
            self.response.setLabel("bottom", "drive", units="% of full scale")
            self.response.addLegend(offset=(10, 10))
        else:
            self.response = self.addPlot(row=top + 1, col=1, title="peak acceleration per window")
            self.response.setLabel("bottom", "platform time", units="s")
            if feed.target_g is not None:
                self.response.addItem(pg.InfiniteLine(feed.target_g, angle=0, movable=False, pen=_pen(TARGET_RGB, 1)))
                if feed.tolerance_fraction:
                    lo, hi = feed.target_g * (1 - feed.tolerance_fraction), feed.target_g * (1 + feed.tolerance_fraction)
                    self.response.addItem(
                        pg.LinearRegionItem((lo, hi), orientation="horizontal", movable=False,
                                            brush=pg.mkBrush(*TARGET_RGB, 40), pen=_pen(TARGET_RGB, 0.5))
                    )
        self.response.setLabel("left", "peak acceleration", units="g")
        self.response.addItem(
            pg.InfiniteLine(feed.accel_cap_g, angle=0, movable=False, label=f"cap {feed.accel_cap_g:g} g",
                            labelOpts={"position": 0.92, "color": TARGET_RGB},
                            pen=_pen(TARGET_RGB, 1, QtCore.Qt.PenStyle.DotLine))
        )
        self._series: dict[float, tuple[Any, Any]] = {}
        self._safe_lines: dict[float, Any] = {}
        self._window_points = self.response.plot(pen=None, symbol="o", symbolSize=8, symbolPen=None)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 (Qt's name)
        if self.on_close is not None:
            self.on_close()
        super().closeEvent(event)

    def refresh(self) -> bool:
        """Redraw from the feed if it changed; returns whether it did."""
        snap = self.feed.snapshot()
        if snap["version"] == self._version:
            return False
        self._version = snap["version"]
        self.label.setText(f"<b>{html.escape(self.feed.title)}</b><br>{html.escape(snap['status'])}")
        if self.readout is not None:
            self.readout.setText(html.escape(snap["readout"]), size="22pt", bold=True)
        self._draw_samples(snap)
        if self.feed.mode == "calibration":
            self._draw_response(snap)
        else:
            self._draw_windows(snap)
        return True

    def _draw_samples(self, snap: dict[str, Any]) -> None:
        f0 = snap["frequency_hz"]
        self.target_line.setValue(f0)
        self.band.setRegion((f0 - self.feed.tolerance_hz, f0 + self.feed.tolerance_hz))
        block, rate = snap["block"], snap["rate_hz"]
        if block is None or block.size < 16:
            return
        g = mps2_to_g(1.0)
        tail = block[-int(TRACE_S * rate):]
        self.trace_curve.setData(np.arange(tail.size) / rate, (tail - tail.mean()) * g)
        freqs, amplitude = peak_spectrum(block, rate)
        amplitude = amplitude * g
        keep = (freqs > 0) & (freqs <= max(4.0 * f0, 50.0))
        self.spectrum_curve.setData(freqs[keep], np.maximum(amplitude[keep], 1e-7))

    def _draw_response(self, snap: dict[str, Any]) -> None:
        for frequency, points in snap["points"].items():
            if frequency not in self._series:
                rgb = SERIES_RGB[len(self._series) % len(SERIES_RGB)]
                scatter = self.response.plot(pen=None, symbol="o", symbolSize=8, symbolBrush=rgb, symbolPen=None,
                                             name=f"{frequency:g} Hz")
                curve = self.response.plot(pen=_pen(rgb, 2))
                self._series[frequency] = (scatter, curve)
            scatter, curve = self._series[frequency]
            drives = np.array([p[0] for p in points])
            scatter.setData(100 * drives, [p[1] for p in points])
            safe = snap["safe_drive"].get(frequency)
            if safe is not None:
                if frequency not in self._safe_lines:
                    rgb = SERIES_RGB[(len(self._series) - 1) % len(SERIES_RGB)]
                    line = pg.InfiniteLine(angle=90, movable=False, pen=_pen(rgb, 1.5, QtCore.Qt.PenStyle.DashLine),
                                           label="largest safe drive",
                                           labelOpts={"position": 0.5, "color": rgb, "rotateAxis": (1, 0)})
                    self.response.addItem(line)
                    self._safe_lines[frequency] = line
                self._safe_lines[frequency].setValue(100 * safe)
                self._safe_lines[frequency].label.setFormat(f"largest safe drive {100 * safe:.1f} % ({frequency:g} Hz)")
            gain = snap["fits"].get(frequency)
            if gain is not None:
                d = np.linspace(0.0, drives.max() * 1.1, 100)
                curve.setData(100 * d, [mps2_to_g(gain.accel_mps2(x)) for x in d])

    def _draw_windows(self, snap: dict[str, Any]) -> None:
        windows = snap["windows"]
        if not windows:
            return
        brushes = [pg.mkBrush(*(SERIES_RGB[1] if ok else TARGET_RGB)) for _, _, ok in windows]
        self._window_points.setData([w[0] for w in windows], [w[1] for w in windows], symbolBrush=brushes)

    def save_png(self, path: str | os.PathLike[str]) -> None:
        self.refresh()
        if not self.grab().save(str(path)):
            raise UsageError(f"cannot write the PNG {path}; check the path")


def peak_spectrum(samples: np.ndarray, rate_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies in Hz, peak amplitude) of `samples`: a flat-top window, zero-padded SPECTRUM_PAD
    times, so a tone's peak reads its true amplitude wherever it falls between bins."""
    n = samples.size
    k = np.arange(n)
    phase = 2.0 * np.pi * k / max(1, n - 1)
    window = sum((-1) ** i * a * np.cos(i * phase) for i, a in enumerate(FLATTOP))
    size = 1 << int(np.ceil(np.log2(SPECTRUM_PAD * n)))
    amplitude = 2.0 * np.abs(np.fft.rfft((samples - samples.mean()) * window, size)) / window.sum()
    return np.fft.rfftfreq(size, 1.0 / rate_hz), amplitude


def run_live(
    job: Callable[[], Any],
    feed: LiveFeed,
    stop: Any,
    *,
    mode: str = "window",
    png: str | os.PathLike[str] | None = None,
    hold: bool = True,
    hold_after_stop: bool = False,
) -> Any:
    """Run `job` on a worker thread while the live view shows `feed`; return its result (or raise its error).

    `mode` "window" shows the window; "offscreen" renders without one (for `png`). `stop` is a
    livctl.cli.common.StopEvent (or any event with `request(reason)`): closing the window requests
    a stop. With `hold`, a shown window stays open after the job ends until it is closed (or
    a stop is requested, e.g. Ctrl-C); a job that was stopped holds it open only with
    `hold_after_stop` (a session: its final state stays up until the window is closed or a second
    Ctrl-C comes).

    One piece, by choice: the worker thread, the Qt timer and the window's close handler share the
    state they pass between threads (`outcome`), kept in one place so its hand-offs can be read whole.
    """
    if mode == "offscreen" and QtWidgets.QApplication.instance() is None:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([sys.argv[0] if sys.argv else "livctl"])
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["result"] = job()
        except BaseException as exc:  # handed to the caller on the main thread
            outcome["error"] = exc

    worker = threading.Thread(target=work, name="livctl-measure", daemon=True)
    loop = QtCore.QEventLoop()
    state = {"done": False, "closed": False}

    def on_close() -> None:
        state["closed"] = True  # pyqtgraph clears a closed view's scene: draw nothing more
        if worker.is_alive():
            stop.request("the live view was closed")
        loop.quit()

    window = LiveWindow(feed, on_close=on_close)
    # nobody can close a window that is not on a screen: never hold one open there
    holding = hold and mode == "window" and app.platformName() not in _HEADLESS_PLATFORMS

    def tick() -> None:
        if state["closed"]:
            return
        window.refresh()
        if not state["done"] and not worker.is_alive():
            state["done"] = True
            if png is not None:
                window.save_png(png)
            state["stopped"] = stop.is_set()
            if holding and (hold_after_stop or not stop.is_set()):
                feed.set_status(feed.snapshot()["status"] + " (close the window to exit)")
                return
            loop.quit()
        elif state["done"] and (getattr(stop, "cut_requested", False) if state["stopped"] else stop.is_set()):
            loop.quit()

    timer = QtCore.QTimer()
    timer.setInterval(int(1000 / REFRESH_HZ))
    timer.timeout.connect(tick)
    if mode == "window":
        window.move(0, 0)
        window.show()
    worker.start()
    timer.start()
    try:
        loop.exec()
    finally:
        timer.stop()
        if worker.is_alive():
            stop.request("the live view was closed")
            worker.join()
        if png is not None and not state["done"] and not state["closed"]:
            window.save_png(png)
        window.on_close = None
        window.close()
        window.deleteLater()
        app.processEvents()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
