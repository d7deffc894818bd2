"""The mechanical plant: a plate plus its load on a spring, pushed by an actuator.

    m x'' + c x' + k x = F(t),    m = plate_kg + load_kg,    F = actuator_n * nl(drive)

where `drive` is the amplifier input as a fraction of full scale (clipped to +-1) and
`nl(d) = d + quadratic d^2 + cubic d^3` is the actuator's mild non-linearity, the source of the
harmonics a real shaker makes. The plate's vertical acceleration is a = (F - c x' - k x) / m.

Above the plate's resonance (about 18 Hz with a 70 kg person, 46 Hz with a mouse cage) the
plate moves on its "mass line", so the acceleration per unit of drive falls as the load grows:
exactly the behaviour that makes a fixed drive deliver a load-dependent dose.

The simulation is exact for a force held constant over each sample (zero-order hold): the state
equations are diagonalised once, and each mode is advanced over a whole block with vectorised
cumulative sums, so no Python loop runs per sample. Changing the parameters between blocks keeps
the physical state (position, velocity), so load steps are continuous in motion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class PlantParams:
    plate_kg: float = 12.0
    load_kg: float = 70.0
    stiffness_n_per_m: float = 1.05e6
    damping_ns_per_m: float = 1500.0
    actuator_n: float = 800.0
    """Peak actuator force at full-scale drive, before the non-linearity."""
    quadratic: float = 0.08
    cubic: float = -0.05

    @property
    def mass_kg(self) -> float:
        return self.plate_kg + self.load_kg

    @property
    def resonance_hz(self) -> float:
        return math.sqrt(self.stiffness_n_per_m / self.mass_kg) / (2 * math.pi)

    @property
    def damping_ratio(self) -> float:
        return self.damping_ns_per_m / (2 * math.sqrt(self.stiffness_n_per_m * self.mass_kg))

    def with_changes(self, **changes) -> "PlantParams":
        return replace(self, **changes)

    def check(self) -> "PlantParams":
        for name in ("plate_kg", "stiffness_n_per_m", "damping_ns_per_m", "actuator_n"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be positive, got {value}")
        if not (math.isfinite(self.load_kg) and 0 <= self.load_kg <= 500):
            raise ValueError(f"load_kg must be between 0 and 500 kg, got {self.load_kg}")
        if self.damping_ratio >= 0.9:
            raise ValueError(f"the plate must be under-damped (damping ratio {self.damping_ratio:.2f} >= 0.9)")
        return self


class _Modes:
    """Zero-order-hold discretisation of the plant, in modal form.

    The plant is under-damped (PlantParams.check), so its two modes are complex conjugates and
    one complex coordinate q carries the whole motion: (x, v) = 2 Re(vec q), with
    q[n+1] = pole q[n] + gain F[n].
    """

    MAX_GROWTH = 30.0
    """A block's cumulative sum may grow by up to e^30 before it is split: the rounding error of
    the sum, scaled back by pole^j, stays near machine precision however large the growth."""

    def __init__(self, params: PlantParams, rate_hz: float):
        m = params.mass_kg
        k = params.stiffness_n_per_m
        c = params.damping_ns_per_m
        dt = 1.0 / rate_hz
        a = np.array([[0.0, 1.0], [-k / m, -c / m]], dtype=complex)
        b = np.array([0.0, 1.0 / m])
        lam, vec = np.linalg.eig(a)
        self.lam = complex(lam[0])
        self.vec = vec[:, 0]
        self.inv = np.linalg.inv(vec)[0]
        self.pole = complex(np.exp(self.lam * dt))
        self.gain = complex((self.pole - 1.0) / self.lam * (self.inv @ b))
        self.c_row = np.array([-k / m, -c / m])
        self.d = 1.0 / m
        # a = F/m + c_row (x, v) = F/m + Re(out q)
        self.out = complex(2.0 * (self.c_row @ self.vec))
        decay = -self.lam.real * dt
        self.chunk = int(np.clip(self.MAX_GROWTH / decay if decay > 0 else 1 << 15, 64, 1 << 15))
        j = np.arange(self.chunk)
        self.pow_pos = self.pole**j
        self.pow_neg = self.pole ** (-(j + 1.0))

    def to_physical(self, q: complex) -> tuple[float, float]:
        x, v = 2.0 * (self.vec * q).real
        return float(x), float(v)

    def from_physical(self, position_m: float, velocity_mps: float) -> complex:
        return complex(self.inv @ np.array([position_m, velocity_mps]))

    def response(self, frequency_hz: float, rate_hz: float) -> complex:
        """Acceleration per newton of force at `frequency_hz` (exact for this discretisation)."""
        z = np.exp(2j * math.pi * frequency_hz / rate_hz)
        modal = self.gain / (z - self.pole)
        conj_modal = np.conj(self.gain) / (z - np.conj(self.pole))
        state = self.vec * modal + np.conj(self.vec) * conj_modal
        return complex(self.c_row @ state + self.d)


class Plant:
    def __init__(self, rate_hz: float, params: PlantParams | None = None):
        self.rate_hz = float(rate_hz)
        self._position_m = 0.0
        self._velocity_mps = 0.0
        self.set_params(params or PlantParams())

    @property
    def params(self) -> PlantParams:
        return self._params

    def set_params(self, params: PlantParams) -> None:
        self._params = params.check()
        self._modes = _Modes(params, self.rate_hz)

    def force_n(self, drive: np.ndarray) -> np.ndarray:
        p = self._params
        d = np.clip(drive, -1.0, 1.0)
        return p.actuator_n * (d + p.quadratic * d * d + p.cubic * d * d * d)

    def step(self, drive: np.ndarray) -> np.ndarray:
        """Advance by len(drive) samples; return the plate's vertical acceleration (m/s^2)."""
        force = self.force_n(np.asarray(drive, dtype=np.float64))
        n = force.shape[0]
        modes = self._modes
        q0 = modes.from_physical(self._position_m, self._velocity_mps)
        q = np.empty(n, dtype=complex)  # the mode at the start of each sample
        start = 0
        while start < n:
            stop = min(n, start + modes.chunk)
            length = stop - start
            # q[start + j] = pole^j (q0 + sum_{i<j} pole^-(i+1) gain F[start + i])
            sums = np.cumsum(force[start:stop] * (modes.gain * modes.pow_neg[:length]))
            q[start] = q0
            q[start + 1 : stop] = modes.pow_pos[1:length] * (q0 + sums[:-1])
            q0 = modes.pole**length * (q0 + sums[-1])
            start = stop
        self._position_m, self._velocity_mps = modes.to_physical(q0)
        accel = (q * modes.out).real
        accel += force * modes.d
        return accel

    def accel_per_newton(self, frequency_hz: float) -> complex:
        return self._modes.response(frequency_hz, self.rate_hz)

    def fundamental_peak_mps2(self, frequency_hz: float, drive_peak: float) -> float:
        """Peak plate acceleration at the drive frequency for a steady sine of `drive_peak`.

        Includes the cubic term's contribution to the fundamental (3/4 cubic d^3); the quadratic
        term only makes DC and the second harmonic.
        """
        p = self._params
        d = min(abs(drive_peak), 1.0)
        force_peak = p.actuator_n * (d + 0.75 * p.cubic * d**3)
        return abs(self.accel_per_newton(frequency_hz)) * force_peak
