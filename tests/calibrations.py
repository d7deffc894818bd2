"""Calibration files with a known response, for tests that need a platform's calibration but are
not about calibrating (a real platform runs nothing without one)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from livctl import __version__
from livctl.records.calibration import Calibration, SensorCheck, Step, frequency_point, save_calibration
from livctl.units import g_to_mps2


def write_calibration(
    directory: Path,
    platform_id: str,
    *,
    gain_g_per_drive: float,
    frequencies_hz: tuple[float, ...] = (30.0,),
    max_drive: float = 1.0,
    device: str = "audio://system",
    rate_hz: float = 48000.0,
    gravity_g: tuple[float, float, float] = (0.0, 0.0, 0.0),
    drives: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2),
) -> Calibration:
    """A calibration of a linear platform (`gain_g_per_drive` peak g per unit drive at every
    frequency), saved as `<directory>/<platform_id>.toml`, made "on the platform" (not simulated)."""
    points = []
    for f in frequencies_hz:
        steps = [
            Step(drive=d, peak_mps2=g_to_mps2(gain_g_per_drive * d), peak_u_mps2=g_to_mps2(gain_g_per_drive * d) * 1e-3,
                 frequency_hz=f, thd_percent=0.5, snr_db=40.0, samples=int(rate_hz))
            for d in drives
        ]
        points.append(frequency_point(f, steps, accel_cap_g=1.0, max_drive=max_drive))
    calibration = Calibration(
        calibration_id=f"{platform_id}-test",
        platform_id=platform_id,
        device=device,
        simulated=False,
        date_utc=datetime.now(timezone.utc).replace(microsecond=0),
        operator="test",
        livctl_version=__version__,
        working_frequency_hz=frequencies_hz[0],
        load_kg=None,
        accel_cap_g=1.0,
        platform_max_drive=max_drive,
        max_thd_percent=10.0,
        sensor=SensorCheck(rate_hz=rate_hz, vertical_axis="z", gravity_g=gravity_g, noise_rms_g=(0.0, 0.0, 0.002)),
        points=tuple(points),
    )
    save_calibration(calibration, directory, force=True)
    return calibration
