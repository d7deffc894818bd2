#!/usr/bin/env python3
"""How fast a simulated 20-minute session runs, against real time and against baselines.

    python scripts/bench_session.py [--minutes 20] [--repeats 3]

Prints, for the session run in process (simulator + measurement of every window + dose log in a
real SQLite file + its raw-signal archive) and for the whole `livctl session ... --speed max`
command (interpreter start and imports included):
- the wall time (median and best of the repeats) and the speed-up over real time;
- the same session without its raw-signal archive, run alternately with it (shared machines
  drift): what keeping the signal costs, in wall time and in CPU time (the session's own thread,
  and the whole process with the archive's writer thread), and the archive's size;
- baselines measured in the same run: the bare simulator producing the same samples, and one
  numpy rfft per window over the same samples.
Targets (docs/benchmarks.md): a 20-minute session at least 600x faster than real time (< 2 s);
keeping the raw signal costs the session at most 10 % and its archive is at most 25 MB. The script
says whether each is met.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO)]
# the same BLAS threading as the livctl command (see livctl.cli._single_threaded_blas)
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402

from firmware_sim import SimConfig, SimulatedPlatform  # noqa: E402
from livctl.platforms import open_platform  # noqa: E402
from livctl.records.doselog import DoseLog  # noqa: E402
from livctl.procedures.prepare import SessionRequest, prepare_session  # noqa: E402
from livctl.prescription import Prescription  # noqa: E402
from livctl.procedures.session import Session  # noqa: E402


def session_in_process(minutes: float, log_path: Path, keep_signal: bool = True) -> tuple[float, float, float, object]:
    """Wall time, the session thread's CPU time, the whole process's CPU time (with the archive's
    writer thread), the result."""
    rx = Prescription(frequency_hz=30.0, peak_g=0.3, duration_s=minutes * 60.0)
    platform = open_platform("sim://", speed=math.inf)
    with DoseLog(log_path) as log, platform:
        plan = prepare_session(platform, log, SessionRequest(rx))
        process = time.process_time()
        thread = time.thread_time()
        start = time.perf_counter()
        result = Session(plan, platform, log, keep_signal=keep_signal).run()
        wall = time.perf_counter() - start
        return wall, time.thread_time() - thread, time.process_time() - process, result


def session_command(minutes: float, log_path: Path) -> float:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(REPO)]))
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "livctl", "session", "--device", "sim://", "--minutes", str(minutes),
         "--speed", "max", "--log", str(log_path), "--quiet", "--json"],
        check=True, capture_output=True, env=env,
    )
    return time.perf_counter() - start


def bare_simulator(windows: int) -> float:
    device = SimulatedPlatform(SimConfig())
    device.set_frequency(30.0)
    device.set_drive(0.2, 2.0)
    n = int(device.rate_hz)
    start = time.perf_counter()
    for _ in range(windows):
        device.advance(n)
    return time.perf_counter() - start


def bare_fft(windows: int) -> float:
    x = np.random.default_rng(0).standard_normal(3200)
    start = time.perf_counter()
    for _ in range(windows):
        np.fft.rfft(x)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    real_s = args.minutes * 60.0
    windows = int(real_s) + 10  # pre-check and ramps add about ten windows

    inproc, command, sim, fft = [], [], [], []
    kept, bare, sizes = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        session_in_process(0.1, Path(tmp) / "warm.sqlite")  # imports (h5py) and caches, once
        for i in range(args.repeats):
            without = session_in_process(args.minutes, Path(tmp) / f"bare-{i}.sqlite", keep_signal=False)
            wall, thread, process, result = session_in_process(args.minutes, Path(tmp) / f"in-{i}.sqlite")
            bare.append(without)
            kept.append((wall, thread, process))
            inproc.append(wall)
            archives = list((Path(tmp) / f"in-{i}.sqlite.archive").iterdir())
            sizes.append(archives[0].stat().st_size)
            command.append(session_command(args.minutes, Path(tmp) / f"cmd-{i}.sqlite"))
            sim.append(bare_simulator(windows))
            fft.append(bare_fft(windows))

    def line(name: str, values: list[float], note: str = "") -> None:
        med = statistics.median(values)
        print(f"{name:<34} median {med:7.3f} s  best {min(values):7.3f} s  {note}")

    print(f"simulated session: {args.minutes:g} min at 30 Hz, 0.3 g peak, sim:// (ADXL345 at 3200 Hz), "
          f"{args.repeats} repeats, {os.cpu_count()} CPUs")
    print(f"last in-process result: {result.status}, {result.delivered_s:.0f} s delivered, "
          f"{result.mean_frequency_hz:.4f} Hz, {result.mean_peak_g:.4f} g peak, {result.window_count} windows")
    med_in = statistics.median(inproc)
    med_cmd = statistics.median(command)
    line("session, in process", inproc, f"{real_s / med_in:6.0f}x real time")
    line("`livctl session --speed max`", command, f"{real_s / med_cmd:6.0f}x real time")
    line("baseline: bare simulator", sim, f"session / simulator = {med_in / statistics.median(sim):.2f}")
    line("baseline: one rfft per window", fft, f"session / rfft = {med_in / statistics.median(fft):.1f}")
    for name, median in (("the session (in process)", med_in), ("the whole command", med_cmd)):
        verdict = "met" if real_s / median >= 600 else "NOT met"
        print(f"target >= 600x real time, {name}: {verdict} ({real_s / median:.0f}x)")

    wall_with = statistics.median(k[0] for k in kept)
    wall_without = statistics.median(b[0] for b in bare)
    cpu_with = statistics.median(k[1] for k in kept)
    cpu_without = statistics.median(b[1] for b in bare)
    process_with = statistics.median(k[2] for k in kept)
    process_without = statistics.median(b[2] for b in bare)
    size_mb = statistics.median(sizes) / 1e6
    print()
    print(f"raw-signal archive (with and without it, alternately, {args.repeats} repeats each):")
    line("session without the archive", [b[0] for b in bare])
    line("session with the archive", [k[0] for k in kept], f"cost {100 * (wall_with / wall_without - 1):+5.1f} %")
    print(f"{'CPU time of the session thread':<34} median {cpu_without:7.3f} s without, {cpu_with:7.3f} s with "
          f"({100 * (cpu_with / cpu_without - 1):+.1f} %)")
    print(f"{'CPU time of the whole process':<34} median {process_without:7.3f} s without, {process_with:7.3f} s with "
          f"(the archive's writer thread: {process_with - cpu_with - process_without + cpu_without:+.3f} s)")
    print(f"{'archive of the session':<34} {size_mb:.1f} MB ({sizes[-1] / (real_s + 10) / 1e3:.1f} kB per second of signal)")
    cost = wall_with / wall_without - 1
    print(f"target archiving costs the session <= 10 %: {'met' if cost <= 0.10 else 'NOT met'} ({100 * cost:+.1f} % wall)")
    print(f"target archive <= 25 MB for 20 minutes: {'met' if size_mb * 20 / args.minutes <= 25 else 'NOT met'} "
          f"({size_mb * 20 / args.minutes:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
