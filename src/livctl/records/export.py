"""Flat rows for exporting the dose log: one per session, or one per measured window.

Column names carry their units (`_hz`, `_g` peak, `_s`, `_percent`); times are UTC (ISO 8601).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable

__all__ = ["SESSION_FIELDS", "WINDOW_FIELDS", "session_row", "window_row", "write_csv"]

SESSION_FIELDS = (
    "session_id", "subject", "status", "in_spec", "reason", "started_utc", "ended_utc",
    "delivered_s", "in_spec_s", "in_spec_fraction", "mean_frequency_hz", "mean_peak_g", "mean_thd_percent",
    "window_count", "prescribed_frequency_hz", "prescribed_peak_g", "prescribed_duration_s", "ramp_s", "preset",
    "tol_frequency_hz", "tol_accel_fraction", "max_thd_fraction", "min_in_spec_fraction", "window_s",
    "regimen", "deviation", "override_reason", "operator", "platform_id", "calibration_id", "device", "simulated",
    "practice",
    "time_base", "livctl_version", "host", "pid",
)
WINDOW_FIELDS = (
    "session_id", "subject", "platform_id", "session_started_utc", "idx", "phase", "t_s", "duration_s", "drive",
    "frequency_hz", "peak_g", "rms_g", "thd_percent", "snr_db", "sinad_db", "dc_g", "axis", "off_axis_percent",
    "in_spec", "reasons",
)


def session_row(s: dict) -> dict:
    """A session object (as `livctl log --json` prints it) flattened to SESSION_FIELDS."""
    rx = s["prescription"]
    tol = rx["tolerance"]
    row = {k: s.get(k) for k in SESSION_FIELDS}
    row.update(
        prescribed_frequency_hz=rx["frequency_hz"], prescribed_peak_g=rx["peak_g"],
        prescribed_duration_s=rx["duration_s"], ramp_s=rx["ramp_s"], preset=rx["preset"],
        tol_frequency_hz=tol["frequency_hz"], tol_accel_fraction=tol["accel_fraction"],
        max_thd_fraction=tol["max_thd_fraction"], min_in_spec_fraction=tol["min_in_spec_fraction"],
    )
    return row


def window_row(s: dict, w: dict) -> dict:
    row = {k: w.get(k) for k in WINDOW_FIELDS}
    row.update(session_id=s["session_id"], subject=s["subject"], platform_id=s["platform_id"],
               session_started_utc=s["started_utc"], reasons="; ".join(w["reasons"]))
    return row


def write_csv(stream, rows: Iterable[dict], fields: tuple[str, ...]) -> int:
    """CSV with a header row, written row by row; empty cells for missing values, booleans as
    true/false. Returns the number of rows."""
    writer = csv.DictWriter(stream, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    count = 0
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
        count += 1
    return count


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value
