"""A test backend: the simulated platform reporting itself as real hardware (`simulated` False).

Registered under a URL scheme by tests that check what livctl demands of real platforms."""

from livctl.backends.sim import SimPlatform


class RealishPlatform(SimPlatform):
    simulated = False


PLATFORM = RealishPlatform
