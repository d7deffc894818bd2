"""The simulated platform: signal generator, amplifier, plate and accelerometer in one object.

It behaves as a controller board's firmware would: the host sets a frequency and a drive level
(fraction of full scale, with a ramp time), the board synthesises the sine itself, and the
accelerometer produces samples at its output rate. Time only moves when `advance(n)` is called,
so the same model runs in virtual time (tests, accelerated sessions) or in real time (behind a
serial port). Everything random comes from one seeded generator: the same seed and the same
commands give the same samples, bit for bit.

A `Fault` (firmware_sim.faults) scheduled in the config strikes at its exact sample: the plant or
sensor changes, the sensor freezes, goes silent or turns out garbage, or the host link drops and
the board's watchdog ramps the drive down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from firmware_sim.faults import WATCHDOG_RAMP_S, WATCHDOG_S, Fault
from firmware_sim.plant import Plant, PlantParams
from firmware_sim.sensor import G_MPS2, SENSORS, Accelerometer, SensorParams
from livctl.waveform import SineSynth


@dataclass(frozen=True)
class SimConfig:
    seed: int = 0
    plant: PlantParams = field(default_factory=PlantParams)
    sensor: SensorParams = field(default_factory=lambda: SENSORS["adxl345"])
    fault: Fault | None = None


class SimulatedPlatform:
    def __init__(self, config: SimConfig | None = None):
        self.config = config or SimConfig()
        self._rng = np.random.default_rng(self.config.seed)
        self.sensor = Accelerometer(self.config.sensor, self._rng)
        self.rate_hz = self.sensor.rate_hz
        self.plant = Plant(self.rate_hz, self.config.plant)
        self.synth = SineSynth(self.rate_hz, frequency_hz=30.0)
        self.samples_done = 0
        self.fault = self.config.fault
        self._events = self._schedule(self.fault)
        self._last_reading = np.array([0.0, 0.0, G_MPS2])
        self.link_up = True
        self._truth: np.ndarray | None = None

    def record_truth(self) -> None:
        """From now on keep the plate's true vertical acceleration, for `true_accel_mps2`."""
        self._truth = np.full(max(1024, 2 * self.samples_done), np.nan)

    def true_accel_mps2(self) -> np.ndarray:
        """The plate's true vertical acceleration per sample since power-up (NaN before recording)."""
        if self._truth is None:
            raise RuntimeError("call record_truth() first")
        return self._truth[: self.samples_done].copy()

    @property
    def t_s(self) -> float:
        """Time of the next sample, seconds since power-up."""
        return self.samples_done / self.rate_hz

    # -- commands, as a controller board takes them --------------------------------------

    def set_frequency(self, frequency_hz: float) -> None:
        self.synth.set_frequency(frequency_hz)

    def set_drive(self, level: float, ramp_s: float) -> None:
        """Move the drive to `level` (fraction of full scale, peak) over `ramp_s` seconds."""
        self.synth.set_amplitude(min(max(level, 0.0), 1.0), ramp_s)

    def cut(self) -> None:
        self.synth.cut()

    @property
    def drive_level(self) -> float:
        return self.synth.amplitude

    # -- time -----------------------------------------------------------------------------

    def advance(self, n: int) -> np.ndarray:
        """Run `n` samples; return the accelerometer's readings, shape (m, 3), in m/s^2.

        m is n unless the sensor has been unplugged (then it delivers nothing after that).
        """
        if not self._events and self.fault is None:
            return self._run(n, self.samples_done)
        parts = []
        while n > 0:
            while self._events and self._events[0][0] <= self.samples_done:
                self._fire(self._events.pop(0)[1])
            until = self._events[0][0] - self.samples_done if self._events else n
            m = min(n, until)
            parts.append(self._run(m, self.samples_done))
            n -= m
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _run(self, n: int, first: int) -> np.ndarray:
        drive = self.synth.render(n)
        vertical = self.plant.step(drive)
        if self._truth is not None:
            if first + n > self._truth.shape[0]:
                grown = np.full(2 * (first + n), np.nan)
                grown[: self._truth.shape[0]] = self._truth
                self._truth = grown
            self._truth[first : first + n] = vertical
        self.samples_done += n
        fault = self.fault
        if fault is None or first / self.rate_hz < fault.at_s:
            readings = self.sensor.read(vertical)
        else:
            readings = self._faulty_reading(fault, vertical, first)
        if readings.shape[0]:
            self._last_reading = readings[-1].copy()
        return readings

    # -- faults ---------------------------------------------------------------------------

    def _schedule(self, fault: Fault | None) -> list[tuple[int, str]]:
        """Sample indices at which something changes, in order."""
        if fault is None:
            return []
        at = int(math.ceil(fault.at_s * self.rate_hz))
        events = [(at, "onset")]
        if math.isfinite(fault.length_s):
            events.append((int(math.ceil(fault.end_s * self.rate_hz)), "end"))
        if fault.name == "link_drop":
            events.append((at + int(round(WATCHDOG_S * self.rate_hz)), "watchdog"))
        return sorted(events)

    def _fire(self, event: str) -> None:
        fault = self.fault
        params = self.plant.params
        if event == "onset":
            if fault.name == "actuator_failure":
                self.plant.set_params(params.with_changes(actuator_n=1e-9 * params.actuator_n))
            elif fault.name == "resonance":
                self.plant.set_params(params.with_changes(actuator_n=fault.size * params.actuator_n))
            elif fault.name == "load_step":
                self.plant.set_params(params.with_changes(load_kg=fault.size * params.load_kg))
            elif fault.name == "step_off":
                self.plant.set_params(params.with_changes(load_kg=0.0))
            elif fault.name == "link_drop":
                self.link_up = False
        elif event == "watchdog":
            self.synth.set_amplitude(0.0, WATCHDOG_RAMP_S)
        elif event == "end":
            self.fault = None  # the burst is over; the sensor is healthy again

    def _faulty_reading(self, fault: Fault, vertical: np.ndarray, first: int) -> np.ndarray:
        name = fault.name
        n = vertical.shape[0]
        if name == "sensor_unplug":
            return np.empty((0, 3))
        if name == "sensor_stall":
            self.sensor.read(vertical)  # the sensor's clock still runs
            return np.tile(self._last_reading, (n, 1))
        if name == "noise_burst":
            return self.sensor.read(vertical, noise_scale=fault.size)
        if name == "drift":
            t = (first + np.arange(n)) / self.rate_hz - fault.at_s
            sensitivity = np.maximum(self.sensor.params.sensitivity * (1.0 + fault.size * t), 0.0)
            return self.sensor.read(vertical, sensitivity=sensitivity)
        readings = self.sensor.read(vertical)
        if name == "corrupt":
            readings = np.array(readings)
            hit = self._rng.random(n) < fault.size
            count = int(hit.sum())
            rail = self.sensor.params.range_g * G_MPS2
            garbage = self._rng.choice([np.nan, rail, -rail], size=(count, 3))
            readings[hit] = garbage
        return readings

    # -- saving and restoring the state (to undo speculative rendering) ------------------

    def snapshot(self) -> tuple:
        """Everything that evolves with time, so `restore` can return here exactly."""
        synth = self.synth
        return (
            self.samples_done,
            (synth.frequency_hz, synth._phase_cycles, synth._amp_from, synth._amp_to, synth._ramp_samples,
             synth._ramp_done),
            (self.plant._position_m, self.plant._velocity_mps, self.plant.params),
            self._rng.bit_generator.state,
            (self.fault, list(self._events), self.link_up, self._last_reading.copy()),
        )

    def restore(self, state: tuple) -> None:
        samples_done, synth, plant, rng, fault = state
        self.samples_done = samples_done
        s = self.synth
        s._frequency_hz, s._phase_cycles, s._amp_from, s._amp_to, s._ramp_samples, s._ramp_done = synth
        position, velocity, params = plant
        if params is not self.plant.params:
            self.plant.set_params(params)
        self.plant._position_m, self.plant._velocity_mps = position, velocity
        self._rng.bit_generator.state = rng
        self.fault, events, self.link_up, last = fault
        self._events = list(events)
        self._last_reading = last.copy()

    @property
    def link_lost_at(self) -> int | None:
        """Sample index at which the host link drops (a `link_drop` fault), if it does."""
        fault = self.config.fault
        if fault is None or fault.name != "link_drop":
            return None
        return int(math.ceil(fault.at_s * self.rate_hz))

    # -- ground truth, for tests and calibration checks -----------------------------------

    def true_peak_mps2(self, frequency_hz: float, drive_level: float) -> float:
        """The fundamental's peak acceleration the sensor reports for a steady drive."""
        return self.plant.fundamental_peak_mps2(frequency_hz, drive_level) * self.sensor.params.sensitivity
