"""Safety limits that no command may cross.

The acceleration cap is absolute: a prescription above it is refused, and the drive is never set
higher than the level that, by the platform's measured response, would reach it.
"""

from __future__ import annotations

import math

from livctl.units import g_to_mps2

DEFAULT_ACCEL_CAP_G = 1.0
"""Absolute ceiling on peak acceleration, g. LIV works well under 1 g."""


def drive_ceiling(gain_mps2_per_drive: float, accel_cap_g: float, max_drive: float) -> float:
    """The largest drive level allowed: the platform's own limit, or the level that reaches the cap.

    `gain_mps2_per_drive` is the measured peak acceleration per unit of drive.
    """
    if not (gain_mps2_per_drive > 0 and math.isfinite(gain_mps2_per_drive)):
        return 0.0
    return min(max_drive, g_to_mps2(accel_cap_g) / gain_mps2_per_drive)
