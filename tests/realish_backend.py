"""A test backend: the simulated platform reporting itself as real hardware (`simulated` False).

Registered under a URL scheme by tests that check what livctl demands of real platforms (a
calibration, a confirmation, what practice may not be). It runs as fast as it can, so those tests
do not wait out whole sessions in real time."""

import math

from livctl.platforms.sim import SimPlatform


class RealishPlatform(SimPlatform):
    simulated = False

    @classmethod
    def from_url(cls, parsed, *, speed=None):
        return super().from_url(parsed, speed=math.inf if speed is None else speed)


PLATFORM = RealishPlatform
