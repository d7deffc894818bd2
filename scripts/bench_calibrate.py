#!/usr/bin/env python3
"""How fast a calibration runs, and what the live view costs, against baselines from the same run.

    python scripts/bench_calibrate.py [--repeats 5]

Prints:
- a whole calibration of `sim://` in virtual time (sensor check, probe, 8-step sweep, fit), its
  speed-up over the platform time it covers, and two baselines measured on the same samples: the
  bare simulator producing them, and `estimator.measure` on the same windows;
- the live view (off screen): the cost of one redraw from the feed, and the share of a core that
  redraws take at the 15 Hz refresh rate;
- a calibration paced at 10x real time with and without the live view: acquisition is decoupled
  from plotting, so the ratio should be close to 1.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO)]
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


from firmware_sim import SimConfig, SimulatedPlatform  # noqa: E402
from livctl.dsp.estimator import measure  # noqa: E402
from livctl.platforms import open_platform  # noqa: E402
from livctl.procedures.calibrate import Calibrator  # noqa: E402
from livctl.cli.common import StopEvent  # noqa: E402


def calibration(speed: float, observer=None):
    platform = open_platform("sim://", speed=speed)
    with platform:
        start = time.perf_counter()
        cal = Calibrator(platform, observer=observer).run()
        return time.perf_counter() - start, cal, platform


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    calibration(math.inf)  # warm-up: imports, caches
    runs = [calibration(math.inf) for _ in range(args.repeats)]
    times = [t for t, _, _ in runs]
    _, cal, platform = runs[0]
    covered_s = platform.clock.now()
    samples = platform.device.samples_done
    windows = sum(len(p.steps) for p in cal.points) * 2
    rate = platform.sensor_rate_hz

    def bare_simulator():
        device = SimulatedPlatform(SimConfig(seed=1))
        device.set_drive(0.3, 0.5)
        for _ in range(samples // int(rate)):
            device.advance(int(rate))

    steady = SimulatedPlatform(SimConfig(seed=1))
    steady.set_drive(0.3, 0.0)
    window = steady.advance(int(rate))

    def measure_windows():
        for _ in range(windows):
            measure(window, rate, axis="z", search_hz=(15.0, 45.0))

    sim_times = timed(bare_simulator, args.repeats)
    measure_times = timed(measure_windows, args.repeats)
    med = statistics.median(times)
    print(f"calibration of sim:// ({len(cal.working_point.steps)} steps, {covered_s:.0f} s of platform time, "
          f"{samples} samples, {windows} measured windows), {args.repeats} repeats")
    print(f"  in process, virtual time    median {med * 1000:7.1f} ms  best {min(times) * 1000:7.1f} ms  "
          f"{covered_s / med:7.0f}x real time")
    print(f"  baseline: bare simulator    median {statistics.median(sim_times) * 1000:7.1f} ms  "
          f"calibration / simulator = {med / statistics.median(sim_times):.1f}")
    print(f"  baseline: measure() windows median {statistics.median(measure_times) * 1000:7.1f} ms  "
          f"calibration / measure = {med / statistics.median(measure_times):.1f}")

    from pyqtgraph.Qt import QtWidgets

    from livctl.ui import live

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["bench"])
    feed = live.LiveFeed(title="bench", frequency_hz=30.0, tolerance_hz=1.0, accel_cap_g=1.0)
    calibration(math.inf, live.CalibrationFeed(feed))
    view = live.LiveWindow(feed)
    view.show()
    redraws = []
    for _ in range(20 * args.repeats):
        feed.set_status("redraw")  # a new version: refresh redraws everything
        start = time.perf_counter()
        view.refresh()
        view.repaint()
        app.processEvents()
        redraws.append(time.perf_counter() - start)
    redraw = statistics.median(redraws)
    print(f"live view (off screen, {live.WINDOW_SIZE[0]}x{live.WINDOW_SIZE[1]}): one full redraw median "
          f"{redraw * 1000:.1f} ms, best {min(redraws) * 1000:.1f} ms; at {live.REFRESH_HZ:g} Hz that is "
          f"{100 * redraw * live.REFRESH_HZ:.0f} % of one core")
    view.close()

    paced = 10.0
    headless = [calibration(paced)[0] for _ in range(2)]
    with_view = []
    for _ in range(2):
        feed = live.LiveFeed(title="bench", frequency_hz=30.0, tolerance_hz=1.0, accel_cap_g=1.0)
        platform = open_platform("sim://", speed=paced)
        stop = StopEvent()
        calibrator = Calibrator(platform, stop=stop, observer=live.CalibrationFeed(feed))
        with platform:
            start = time.perf_counter()
            live.run_live(calibrator.run, feed, stop, mode="window", hold=False)
            with_view.append(time.perf_counter() - start)
    print(f"paced at {paced:g}x real time ({covered_s / paced:.1f} s expected): headless best "
          f"{min(headless):.2f} s, with the live view best {min(with_view):.2f} s, "
          f"ratio {min(with_view) / min(headless):.3f}")


if __name__ == "__main__":
    main()
