#!/usr/bin/env python3
"""How fast and how lean a whole-recording validation is, against one bare FFT pass.

    python scripts/bench_validate.py [--minutes 20] [--repeats 3]

Builds a 3-axis recording at 3200 Hz with the simulated platform (ADXL345: gravity, noise,
quantisation, cross-axis leakage, the actuator's harmonics), 20 minutes by default (11.5 M
samples), and prints:
- the wall time of `livctl.offline.validation.validate` on it (every 1 s window and the whole-record
  fit, spec check included), median and best of the repeats;
- the baseline measured in the same run: one `scipy.fft.rfft` over the same samples (each axis);
- their ratio (target: at most 4);
- the peak memory the validation allocates (tracemalloc, numpy included) over the size of the
  samples (target: at most 3);
- for information, the time to read the same recording back from a 32-bit float WAV file.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO)]
# the same BLAS threading as the livctl command (see livctl.cli._single_threaded_blas)
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402
import scipy.fft  # noqa: E402

from firmware_sim import SimConfig, SimulatedPlatform  # noqa: E402
from livctl.prescription import Prescription  # noqa: E402
from livctl.offline.recordings import Recording, read_recording  # noqa: E402
from livctl.offline.validation import validate  # noqa: E402

G = 9.80665


def simulated_recording(minutes: float, seed: int = 7) -> np.ndarray:
    """(n, 3) m/s^2, column-major: a platform driven at 30 Hz for about 0.3 g peak."""
    device = SimulatedPlatform(SimConfig(seed=seed))
    level = 0.3 * G / device.true_peak_mps2(30.0, 0.2) * 0.2
    device.set_frequency(30.0)
    device.set_drive(level, 0.05)
    device.advance(int(device.rate_hz))  # settle before the recording starts
    n = int(round(minutes * 60.0 * device.rate_hz))
    out = np.empty((n, 3), order="F")
    block = int(device.rate_hz) * 10
    for start in range(0, n, block):
        stop = min(n, start + block)
        out[start:stop] = device.advance(stop - start)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    accel = simulated_recording(args.minutes)
    rec = Recording(accel, 3200.0, ("x", "y", "z"), "simulated", "memory", "m/s2")
    rx = Prescription(frequency_hz=30.0, peak_g=0.3, duration_s=rec.duration_s)

    run_s, fft_s = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        result = validate(rec, rx)
        run_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        scipy.fft.rfft(accel, axis=0)
        fft_s.append(time.perf_counter() - start)

    tracemalloc.start()
    validate(rec, rx)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    with tempfile.TemporaryDirectory() as tmp:
        from scipy.io import wavfile

        path = Path(tmp) / "rec.wav"
        wavfile.write(path, 3200, (accel / (16 * G)).astype(np.float32))
        start = time.perf_counter()
        read_recording(path, full_scale_g=16.0)
        wav_s = time.perf_counter() - start

    m = result.measurement
    print(f"recording: {args.minutes:g} min, 3 axes at 3200 Hz, {accel.size / 1e6:.2f} M samples "
          f"({accel.nbytes / 1e6:.0f} MB), {len(result.windows)} windows, {os.cpu_count()} CPUs")
    print(f"whole record ({result.method}): {m.frequency_hz:.6f} Hz +- {m.frequency_u_hz:.1e}, "
          f"{m.peak_g:.5f} g peak +- {m.peak_u_g:.1e}, THD {m.thd_percent:.2f} %, SNR {m.snr_db:.1f} dB, "
          f"in spec {result.in_spec}, windows in spec {100 * result.in_spec_fraction:.1f} %")
    med, fft_med = statistics.median(run_s), statistics.median(fft_s)
    print(f"validate (windows + whole record)  median {med:7.3f} s  best {min(run_s):7.3f} s")
    print(f"baseline: one scipy.fft.rfft pass  median {fft_med:7.3f} s  best {min(fft_s):7.3f} s")
    ratio = med / fft_med
    print(f"validate / rfft = {ratio:.2f} (median), {min(run_s) / min(fft_s):.2f} (best); target <= 4: "
          f"{'met' if ratio <= 4 else 'NOT met'}")
    mem = peak / accel.nbytes
    print(f"peak memory allocated by validate: {peak / 1e6:.0f} MB = {mem:.2f} x the samples; target <= 3: "
          f"{'met' if mem <= 3 else 'NOT met'}")
    print(f"for information: reading the same recording from a float WAV file: {wav_s:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
