"""Phase-continuous sine synthesis with soft amplitude transitions.

The synthesiser keeps a running phase, so the sine never jumps when it is rendered in blocks of any
size or when its frequency changes. Amplitude changes (ramp up, ramp down, level corrections) follow
a raised-cosine curve: no step in the output and no step in its slope at either end of a ramp.

`render_into` writes into a caller's buffer using preallocated scratch arrays (and views of them
kept for the last block size), so an audio callback that renders blocks of one size allocates
nothing. Amplitudes are in drive units (fraction of full
scale, peak); the synthesiser knows nothing of devices.
"""

from __future__ import annotations

import math

import numpy as np


def raised_cosine(u: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """0 -> 1 transition shape for u in [0, 1]: 0.5 - 0.5 cos(pi u), flat slope at both ends."""
    out = np.multiply(u, math.pi, out=out)
    np.cos(out, out=out)
    out *= -0.5
    out += 0.5
    return out


class SineSynth:
    """A sine oscillator: `amplitude * sin(2 pi phase)` with a phase accumulator in cycles."""

    def __init__(self, rate_hz: float, frequency_hz: float = 30.0, max_block: int = 4096):
        if not rate_hz > 0:
            raise ValueError("rate_hz must be positive")
        self.rate_hz = float(rate_hz)
        self._frequency_hz = 0.0
        self.set_frequency(frequency_hz)
        self._phase_cycles = 0.0
        self._amp_from = 0.0
        self._amp_to = 0.0
        self._ramp_samples = 0
        self._ramp_done = 0
        self._alloc(max_block)

    def _alloc(self, n: int) -> None:
        self._index = np.arange(n, dtype=np.float64)
        self._scratch = np.empty(n, dtype=np.float64)
        self._envelope = np.empty(n, dtype=np.float64)
        self._views_n = -1

    def _views(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The scratch arrays cut to `n` samples; kept, so blocks of one size make no new views."""
        if n != self._views_n:
            if n > self._index.shape[0]:
                self._alloc(n)
            self._views_n = n
            self._view3 = (self._index[:n], self._envelope[:n], self._scratch[:n])
        return self._view3

    # -- commands ---------------------------------------------------------------------------

    @property
    def frequency_hz(self) -> float:
        return self._frequency_hz

    def set_frequency(self, frequency_hz: float) -> None:
        """Change the frequency from the next sample on; the phase carries on without a jump."""
        if not 0 <= frequency_hz < self.rate_hz / 2:
            raise ValueError(f"frequency {frequency_hz} Hz is not below Nyquist ({self.rate_hz / 2} Hz)")
        self._frequency_hz = float(frequency_hz)

    @property
    def amplitude(self) -> float:
        """The envelope value the next sample will start from."""
        if self._ramp_done >= self._ramp_samples:
            return self._amp_to
        u = self._ramp_done / self._ramp_samples
        return self._amp_from + (self._amp_to - self._amp_from) * (0.5 - 0.5 * math.cos(math.pi * u))

    @property
    def target_amplitude(self) -> float:
        return self._amp_to

    @property
    def ramping(self) -> bool:
        return self._ramp_done < self._ramp_samples

    def set_amplitude(self, amplitude: float, ramp_s: float) -> None:
        """Move the envelope from where it is now to `amplitude` over `ramp_s` seconds."""
        if not (amplitude >= 0 and math.isfinite(amplitude)):
            raise ValueError(f"amplitude must be a finite value >= 0, got {amplitude}")
        start = self.amplitude
        self._amp_from = start
        self._amp_to = float(amplitude)
        self._ramp_samples = max(0, int(round(ramp_s * self.rate_hz)))
        self._ramp_done = 0

    def cut(self) -> None:
        """Drop the amplitude to zero at once (emergency stop; this one is a step)."""
        self._amp_from = self._amp_to = 0.0
        self._ramp_samples = self._ramp_done = 0

    # -- rendering --------------------------------------------------------------------------

    def render(self, n: int) -> np.ndarray:
        out = np.empty(n, dtype=np.float64)
        self.render_into(out)
        return out

    def render_into(self, out: np.ndarray) -> None:
        """Fill `out` (1-D, float, any stride) with the next len(out) samples."""
        n = out.shape[0]
        index, envelope, scratch = self._view3 if n == self._views_n else self._views(n)

        ramping = self._ramp_done < self._ramp_samples
        if ramping:
            self._fill_envelope(envelope, scratch, index)

        step = self._frequency_hz / self.rate_hz
        np.multiply(index, 2.0 * math.pi * step, out=scratch)
        scratch += 2.0 * math.pi * self._phase_cycles
        np.sin(scratch, out=scratch)
        if ramping:
            scratch *= envelope
        else:  # steady: a constant envelope needs no array
            scratch *= self._amp_to
        # a copy casts into any float buffer (an audio card's float32 channel, say) without the
        # temporary that a ufunc writing across dtypes would allocate
        np.copyto(out, scratch, casting="same_kind")

        self._phase_cycles = (self._phase_cycles + n * step) % 1.0

    def _fill_envelope(self, envelope: np.ndarray, scratch: np.ndarray, index: np.ndarray) -> None:
        n = envelope.shape[0]
        remaining = self._ramp_samples - self._ramp_done
        if remaining <= 0:
            envelope.fill(self._amp_to)
            return
        # u = (done + k) / total, clipped to 1 past the end of the ramp
        np.add(index, self._ramp_done, out=scratch)
        scratch *= 1.0 / self._ramp_samples
        np.minimum(scratch, 1.0, out=scratch)
        raised_cosine(scratch, out=envelope)
        envelope *= self._amp_to - self._amp_from
        envelope += self._amp_from
        self._ramp_done = min(self._ramp_samples, self._ramp_done + n)
