"""Clocks: where a session's notion of time comes from.

`now()` is seconds of *platform time* since the clock started. A real platform runs on a
`RealClock`; the simulator runs on a `VirtualClock`, which advances only when someone sleeps on it
and, at `speed=N`, takes 1/N of a real second per virtual second (`speed=inf`: no waiting at all).
Wall-clock timestamps for the dose log always come from `utc_now()`, which is real time.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from datetime import datetime, timezone

__all__ = ["Clock", "RealClock", "VirtualClock", "utc_now"]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Clock(ABC):
    """A platform's time: `now()` in seconds since it started, `sleep_until(t_s)`; `virtual` when it runs apart
    from the wall clock."""

    virtual: bool = False

    @abstractmethod
    def now(self) -> float:
        """Platform time in seconds since the clock started."""

    @abstractmethod
    def sleep_until(self, t_s: float) -> None:
        """Return once platform time has reached `t_s`."""

    def sleep(self, duration_s: float) -> None:
        self.sleep_until(self.now() + duration_s)

    @property
    def description(self) -> str:
        return "real time"


class RealClock(Clock):
    """Real time (the monotonic clock), for real platforms; the simulator runs on a `VirtualClock`."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._t0

    def sleep_until(self, t_s: float) -> None:
        delay = t_s - self.now()
        if delay > 0:
            time.sleep(delay)


class VirtualClock(Clock):
    """Virtual time that runs `speed` times faster than real time (`math.inf`: as fast as possible)."""

    virtual = True

    def __init__(self, speed: float = math.inf) -> None:
        if not speed > 0:
            raise ValueError("speed must be positive")
        self.speed = float(speed)
        self._t_s = 0.0
        self._real_t0 = time.monotonic()

    def now(self) -> float:
        return self._t_s

    def sleep_until(self, t_s: float) -> None:
        if t_s <= self._t_s:
            return
        if math.isfinite(self.speed):
            # Deadlines are absolute, so rounding in time.sleep never accumulates into drift.
            delay = self._real_t0 + t_s / self.speed - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        self._t_s = t_s

    @property
    def description(self) -> str:
        if math.isinf(self.speed):
            return "virtual time, as fast as possible"
        if self.speed == 1.0:
            return "simulated in real time"
        return f"virtual time at {self.speed:g}x"
