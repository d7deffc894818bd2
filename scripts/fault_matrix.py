#!/usr/bin/env python3
"""Every simulator fault through a real session: how livctl reacts, measured on the plate.

    python scripts/fault_matrix.py [--at 20] [--minutes 1]

For each fault injected at `--at` seconds of platform time (the delivery starts about 6.5 s in),
prints the session's status and reason, the seconds delivered against the seconds before the
fault, the time from the fault until the plate's true acceleration is below 1 % of the target,
and the highest level of the 30 Hz fundamental after the fault (50 ms blocks). The link-drop case
includes the simulated board's own watchdog (the host cannot reach the board any more).
The figures are the ones docs/safety.md quotes; tests/test_faults.py asserts bounds on them.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO)]
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

from firmware_sim.faults import FAULTS  # noqa: E402
from livctl.analysis import block_levels  # noqa: E402
from livctl.backends import open_platform  # noqa: E402
from livctl.prescription import Prescription  # noqa: E402
from livctl.session import DELIVER, Session  # noqa: E402

G = 9.80665


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--at", type=float, default=20.0, help="fault time, s of platform time (default 20)")
    parser.add_argument("--minutes", type=float, default=1.0, help="prescribed minutes (default 1)")
    args = parser.parse_args()
    rx = Prescription(30.0, 0.3, args.minutes * 60.0)
    print(f"faults at {args.at:g} s into a {args.minutes:g}-minute session at 30 Hz, 0.3 g peak on sim:// (70 kg)")
    header = f"{'fault':<17} {'status':<10} {'delivered':>9} {'before':>7} {'to stop':>8} {'highest':>8}  reason"
    print(header)
    print("-" * len(header))
    for fault in FAULTS:
        platform = open_platform(f"sim://?fault={fault}&fault_at_s={args.at}", speed=math.inf)
        platform.device.record_truth()
        windows = []
        result = Session(rx, platform, observer=lambda p: windows.append(p.window)).run()
        platform.device.advance(int(3 * platform.device.rate_hz))  # the world goes on
        t, level = block_levels(platform.device.true_accel_mps2(), platform.device.rate_hz, 30.0, 0.05)
        level /= G
        after = t > args.at
        moving = after & (level > 0.01 * rx.peak_g)
        start = min(w.t_s for w in windows if w.phase == DELIVER)
        stop = f"{t[moving].max() - args.at:.2f} s" if result.status != "completed" else "-"
        print(
            f"{fault:<17} {result.status:<10} {result.delivered_s:>7.2f} s {args.at - start:>5.2f} s {stop:>8} "
            f"{level[after].max():>6.3f} g  {result.reason or ''}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
