"""What the simulated plate really did, written as it happens: the ground truth safety is measured on.

A session's log says what livctl measured; the truth file says what the plate did, whatever the
sensor said. One CSV row per `ROW_S` (0.1 s) of platform time:

| column | meaning |
|---|---|
| `t_s` | platform time at the end of the row, s since the simulator started |
| `host_s` | the host's monotonic clock (`time.monotonic()`) when the row was written |
| `true_peak_g` | the plate's largest vertical acceleration in the row, all harmonics, gravity removed, g |
| `fundamental_g` | peak amplitude of the plate's acceleration at the drive frequency, g |
| `frequency_hz` | the frequency the plate is driven at (the board's synthesiser, in true time) |
| `drive` | the largest drive the amplifier produced in the row, fraction of full scale (peak) |
| `over_cap_s` | how long in the row the plate's cycle peaks were above the cap (`cap_g`, 1 g) |

`over_cap_s` counts each half-cycle whose peak is over the cap, so the total time over the cap is
its sum, to a sample, whatever the row boundaries. Rows are written (and flushed) as soon as the
platform time they cover is final: a simulator that renders ahead and rewinds (`sim://`) writes
only what really happened, and a killed process leaves every complete row behind.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

ROW_S = 0.1
G_MPS2 = 9.80665
COLUMNS = ("t_s", "host_s", "true_peak_g", "fundamental_g", "frequency_hz", "drive", "over_cap_s")


class TruthRecorder:
    """Collects the plate's true acceleration and drive per sample; writes a row per 0.1 s."""

    def __init__(self, path: str | Path, rate_hz: float, *, cap_g: float = 1.0, time_scale: float = 1.0):
        self.path = Path(path)
        self.rate_hz = float(rate_hz)
        self.cap_mps2 = cap_g * G_MPS2
        self.time_scale = time_scale
        """True seconds per board second (a board clock that runs slow or fast)."""
        self.row_n = max(1, int(round(ROW_S * self.rate_hz)))
        self._file = open(self.path, "w", buffering=1)
        self._file.write(",".join(COLUMNS) + "\n")
        self._start = 0
        """Sample index of the first sample not yet written as a row."""
        self._accel = np.empty(0)
        self._drive = np.empty(0)
        self._frequency = np.empty(0)
        self.rows = 0

    def add(self, first: int, accel_mps2: np.ndarray, drive: np.ndarray, frequency_hz: float) -> None:
        """Samples `first ..` of the plate's acceleration and the drive signal; anything already
        held from `first` on is replaced (the simulator rewound and ran again)."""
        if first < self._start:  # before what was written: rows are final, so keep them
            skip = self._start - first
            accel_mps2, drive, first = accel_mps2[skip:], drive[skip:], self._start
        keep = max(0, first - self._start)
        self._accel = np.concatenate([self._accel[:keep], accel_mps2])
        self._drive = np.concatenate([self._drive[:keep], drive])
        self._frequency = np.concatenate([self._frequency[:keep], np.full(accel_mps2.shape[0], frequency_hz)])

    def commit(self, upto: int) -> None:
        """Write every complete row that ends at or before sample `upto` (final from there back)."""
        while self._start + self.row_n <= upto and self._accel.shape[0] >= self.row_n:
            self._row(self._accel[: self.row_n], self._drive[: self.row_n], self._frequency[: self.row_n])
            self._accel = self._accel[self.row_n :]
            self._drive = self._drive[self.row_n :]
            self._frequency = self._frequency[self.row_n :]
            self._start += self.row_n

    def close(self) -> None:
        if not self._file.closed:
            self.commit(self._start + self._accel.shape[0])
            self._file.close()

    def _row(self, accel: np.ndarray, drive: np.ndarray, frequency: np.ndarray) -> None:
        n = accel.shape[0]
        f = float(frequency[-1])
        t = (self._start + np.arange(n)) / self.rate_hz
        if f > 0:
            basis = np.column_stack([np.ones(n), np.cos(2 * math.pi * f * t), np.sin(2 * math.pi * f * t)])
            coef = np.linalg.lstsq(basis, accel, rcond=None)[0]
            fundamental = math.hypot(coef[1], coef[2])
        else:
            fundamental = 0.0
        end_s = (self._start + n) / self.rate_hz * self.time_scale
        self._file.write(
            f"{end_s:.4f},{time.monotonic():.6f},{np.max(np.abs(accel)) / G_MPS2:.6f},"
            f"{fundamental / G_MPS2:.6f},{f / self.time_scale:.6f},{np.max(np.abs(drive)):.6f},"
            f"{self._over_cap_s(accel, frequency):.6f}\n"
        )
        self.rows += 1

    def _over_cap_s(self, accel: np.ndarray, frequency: np.ndarray) -> float:
        """Seconds of the row in half-cycles (at the drive frequency) whose peak is over the cap."""
        f = float(frequency[-1])
        index = self._start + np.arange(accel.shape[0])
        magnitude = np.abs(accel)
        if not np.any(magnitude > self.cap_mps2):
            return 0.0
        if f <= 0:
            return float(np.count_nonzero(magnitude > self.cap_mps2)) / self.rate_hz * self.time_scale
        half_cycle = np.floor(index * (2.0 * f / self.rate_hz)).astype(np.int64)
        edges = np.flatnonzero(np.diff(half_cycle)) + 1
        starts = np.concatenate([[0], edges])
        peaks = np.maximum.reduceat(magnitude, starts)
        lengths = np.diff(np.concatenate([starts, [accel.shape[0]]]))
        return float(lengths[peaks > self.cap_mps2].sum()) / self.rate_hz * self.time_scale


def read_truth(path: str | Path) -> dict[str, np.ndarray]:
    """A truth file's columns as arrays (for tests and the fault matrix)."""
    data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    return {name: data[:, i] for i, name in enumerate(COLUMNS)}
