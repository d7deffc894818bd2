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

What a protocol 1.1 board enforces on its own, whatever its host does:
- a **drive limit** (`set_drive_limit`): no drive above it is produced; lowering it below the
  present level brings the drive down to it at once (over `LIMIT_RAMP_S`);
- an **over-acceleration trip** (`set_trip`): the board watches its own accelerometer's vertical
  samples, less the gravity it read at rest, and cuts the drive at the first sample over the
  threshold that comes in the cycle (of the drive frequency) after another cycle with a sample
  over it: a real over-drive, which peaks every cycle, trips within two cycles of its first
  sample over the threshold, while an isolated noise spike never does; a single sample over 1.5
  times the threshold (a gross over-drive, a transient) cuts at once. The cut lands on its exact
  sample (the block is rendered again from there).

`record_truth_to(path)` writes what the plate really did (firmware_sim.truth).

What can make the sensor lie, for the checks that must catch it (`SimConfig`):
- `clock_ppm`: the board's crystal runs fast (or slow): its sine and its sample clock with it, so
  the plate vibrates off the commanded frequency in true time while the samples, counted in the
  board's time, say it does not;
- a sensor's `sensitivity` (`sensor_scale`), and `ac_coupled` (an input that passes no gravity);
- `sensors=2`: a second, independent accelerometer on the same plate; sensor faults hit the one
  `fault_sensor` names (1 or 2);
- the `replay` fault (the sensor repeats a stretch it recorded, over and over) and the
  `foreign_sensor` fault (it reads another plate, driven by someone else at nearly the same
  frequency);
- `load_cell`: a load cell under the plate, reading what stands on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from firmware_sim.faults import WATCHDOG_RAMP_S, WATCHDOG_S, Fault
from firmware_sim.plant import Plant, PlantParams
from firmware_sim.sensor import G_MPS2, SENSORS, Accelerometer, SensorParams
from firmware_sim.truth import TruthRecorder
from livctl.dsp.waveform import SineSynth


@dataclass(frozen=True)
class SimConfig:
    seed: int = 0
    plant: PlantParams = field(default_factory=PlantParams)
    sensor: SensorParams = field(default_factory=lambda: SENSORS["adxl345"])
    fault: Fault | None = None
    clock_ppm: float = 0.0
    """The board's crystal runs this many parts per million fast (negative: slow)."""
    sensors: int = 1
    """Accelerometers on the plate (1 or 2); the second is the same model at its nominal scale."""
    fault_sensor: int = 1
    """The accelerometer a sensor fault hits (1 or 2)."""
    ac_coupled: bool = False
    """The inputs pass no DC: no gravity in the readings (a sound card's input)."""
    load_cell: bool = False
    """A load cell under the plate reads what stands on it (kg, to the gram)."""

    @property
    def clock_factor(self) -> float:
        """True seconds of the board's crystal per nominal second: samples come this much faster."""
        return 1.0 + 1e-6 * self.clock_ppm


SENSOR_FAULTS = frozenset({"sensor_stall", "sensor_unplug", "noise_burst", "corrupt", "drift", "replay",
                           "foreign_sensor"})
"""Faults of one accelerometer (`SimConfig.fault_sensor`); the others are the plate's or the link's."""
FOREIGN_DRIVE = 0.2
"""The drive of the plate a foreign sensor reads from the start: someone else's session (0.3 g with
70 kg at 30 Hz). A sensor that turns foreign mid-session reads a neighbour delivering what this
plate was delivering then."""
REPLAY_HISTORY_S = 5.0
"""How much of its own past a replaying sensor can repeat."""


LIMIT_RAMP_S = 0.1
"""A drive above a newly lowered limit comes down to it this fast."""
HARD_TRIP_FACTOR = 1.4
"""A single sample this many times over the trip threshold cuts at once."""
REST_TIME_CONSTANT_S = 0.25
"""The at-rest reading of gravity the trip subtracts follows the sensor this fast while the drive is off."""


class SimulatedPlatform:
    def __init__(self, config: SimConfig | None = None):
        self.config = config = config or SimConfig()
        if config.sensors not in (1, 2) or config.fault_sensor not in range(1, config.sensors + 1):
            raise ValueError(f"sensors must be 1 or 2 and fault_sensor one of them, not {config.sensors}, "
                             f"{config.fault_sensor}")
        self._rng = np.random.default_rng(config.seed)
        second = config.sensor.with_changes(sensitivity=1.0)
        self.sensors = [Accelerometer(config.sensor, self._rng)] + (
            [Accelerometer(second, self._rng)] if config.sensors == 2 else []
        )
        self.sensor = self.sensors[0]
        self.rate_hz = self.sensor.rate_hz
        """The board's sample rate, in its own (crystal's) seconds."""
        self.true_rate_hz = self.rate_hz * config.clock_factor
        """Samples per true second: the plant runs in true time."""
        self.plant = Plant(self.true_rate_hz, config.plant)
        self.synth = SineSynth(self.rate_hz, frequency_hz=30.0)
        self.commanded_frequency_hz = 30.0
        self.samples_done = 0
        self.fault = config.fault
        self._events = self._schedule(self.fault)
        self._last_readings = [s.gravity_reading(config.ac_coupled) for s in self.sensors]
        self._foreign: tuple[Plant, SineSynth] | None = None
        self._history: np.ndarray | None = None
        self._load_change: tuple[int, float] | None = None
        """(sample, factor): from that sample the load cell reads the load times the factor."""
        self.prepare_for(config.fault)
        self.link_up = True
        self._truth: np.ndarray | None = None
        self._recorder: TruthRecorder | None = None
        self.drive_limit = 1.0
        """The largest drive the board produces (fraction of full scale, peak)."""
        self.trip_mps2 = math.inf
        """Over-acceleration trip threshold (peak, gravity removed); inf: not armed."""
        self.trips = 0
        self.trip_sample: int | None = None
        """Sample index of the last trip's cut."""
        self._over_cycle: int | None = None
        """The last cycle (of the drive frequency) that held a sample over the trip threshold."""
        self._rest_mps2 = np.array([r[2] for r in self._last_readings])
        """What each sensor's vertical axis reads at rest (gravity), learnt while the drive is off."""

    def prepare_for(self, fault: Fault | None) -> None:
        """Make ready for a fault to come (at start, or by `inject`): a replaying sensor needs what it
        recorded before, a foreign one the other plate, running already."""
        if fault is None:
            return
        if fault.name == "foreign_sensor" and self._foreign is None:
            synth = SineSynth(self.rate_hz, frequency_hz=self.commanded_frequency_hz + fault.size)
            synth.set_amplitude(FOREIGN_DRIVE, 0.0)
            self._foreign = (Plant(self.true_rate_hz, PlantParams()), synth)
        if fault.name == "replay" and self._history is None:
            self._history = np.zeros((int(REPLAY_HISTORY_S * self.rate_hz), 3))

    def inject(self, fault: Fault) -> None:
        """Schedule `fault` (its `at_s` in this platform's time) on a running platform."""
        self.prepare_for(fault)
        self.fault = fault
        self._events = sorted(self._events + self._schedule(fault))

    def record_truth_to(self, path, *, cap_g: float = 1.0) -> TruthRecorder:
        """Write the plate's true motion to `path` as it happens (firmware_sim.truth), in true time;
        the caller commits what is final (`commit_truth`) and closes it."""
        self._recorder = TruthRecorder(path, self.rate_hz, cap_g=cap_g, time_scale=1.0 / self.config.clock_factor)
        return self._recorder

    def commit_truth(self, upto: int | None = None) -> None:
        """Rows of the truth file up to sample `upto` (default: everything run) are final."""
        if self._recorder is not None:
            self._recorder.commit(self.samples_done if upto is None else upto)

    def close_truth(self) -> None:
        if self._recorder is not None:
            self._recorder.close()

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
        self.commanded_frequency_hz = frequency_hz
        self.synth.set_frequency(frequency_hz + self._frequency_shift_hz())
        if self._foreign is not None:  # the neighbour runs the same protocol, nearly in step
            self._foreign[1].set_frequency(frequency_hz + (self.fault.size if self.fault else 0.05))

    def _frequency_shift_hz(self) -> float:
        fault = self.fault
        return fault.size if fault is not None and fault.name == "frequency_shift" and self.t_s >= fault.at_s else 0.0

    def set_drive(self, level: float, ramp_s: float) -> None:
        """Move the drive to `level` (fraction of full scale, peak) over `ramp_s` seconds; never
        above the drive limit."""
        self.synth.set_amplitude(min(max(level, 0.0), self.drive_limit), ramp_s)

    def set_drive_limit(self, limit: float) -> None:
        """The largest drive the board will produce; a drive above a new, lower limit comes down to it."""
        self.drive_limit = min(max(float(limit), 0.0), 1.0)
        if self.synth.target_amplitude > self.drive_limit or self.synth.amplitude > self.drive_limit:
            self.synth.set_amplitude(self.drive_limit, LIMIT_RAMP_S)

    def set_trip(self, threshold_mps2: float) -> None:
        """Arm the over-acceleration trip at `threshold_mps2` (peak, gravity removed); inf disarms it."""
        self.trip_mps2 = float(threshold_mps2)
        self._over_cycle = None

    def cut(self) -> None:
        self.synth.cut()

    @property
    def drive_level(self) -> float:
        return self.synth.amplitude

    def load_reading_kg(self, sample: int | None = None) -> float | None:
        """What the load cell reads at `sample` (default: now), to the gram; None without one."""
        if not self.config.load_cell:
            return None
        load = self.config.plant.load_kg
        sample = self.samples_done if sample is None else sample
        if self._load_change is not None and sample >= self._load_change[0]:
            load *= self._load_change[1]
        return round(load, 3)

    # -- time -----------------------------------------------------------------------------

    def advance(self, n: int) -> np.ndarray:
        """Run `n` samples; return the accelerometer's readings, shape (m, 3), in m/s^2.

        m is n unless the sensor has been unplugged (then it delivers nothing after that).
        """
        if n <= 0:
            return np.empty((0, 3 * len(self.sensors)))
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
        at_rest = self.synth.amplitude == 0 and not self.synth.ramping
        armed = math.isfinite(self.trip_mps2) and not at_rest
        motion = self._motion_state() if armed else None
        vertical = self._move(n, first)
        readings = self._sense(vertical, first)
        if armed:
            trip = self._trip_index(readings, first)
            if trip is not None:  # run again from the block's start, cut at the tripping sample
                self._restore_motion(motion)
                self.samples_done = first
                self._move(trip + 1, first)
                self.synth.cut()
                self.trips += 1
                self.trip_sample = first + trip + 1
                self._over_cycle = None
                tail = self._move(n - trip - 1, first + trip + 1)
                if tail[0].shape[0]:
                    readings = np.concatenate([readings[: trip + 1], self._sense(tail, first + trip + 1)])
        elif at_rest and readings.shape[0]:
            self._learn_rest(readings[:, 2::3])
        return readings

    def _move(self, n: int, first: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Run the synthesiser and the plant over `n` samples: the plate's true vertical acceleration
        (and that of the plate a foreign sensor reads, if one does)."""
        frequency_hz = self.synth.frequency_hz
        drive = self.synth.render(n)
        vertical = self.plant.step(drive)
        foreign = None
        if self._foreign is not None:
            plant, synth = self._foreign
            foreign = plant.step(synth.render(n))
        if self._truth is not None:
            if first + n > self._truth.shape[0]:
                grown = np.full(2 * (first + n), np.nan)
                grown[: self._truth.shape[0]] = self._truth
                self._truth = grown
            self._truth[first : first + n] = vertical
        if self._recorder is not None:
            self._recorder.add(first, vertical, drive, frequency_hz)
        self.samples_done = first + n
        return vertical, foreign

    def _sense(self, motion: tuple[np.ndarray, np.ndarray | None], first: int) -> np.ndarray:
        """What the accelerometers read of that motion (faults included): (n, 3) per sensor, side
        by side. A single sensor that is unplugged delivers no rows; one of two gives NaN."""
        vertical, foreign = motion
        fault = self.fault
        active = fault is not None and first / self.rate_hz >= fault.at_s and fault.name in SENSOR_FAULTS
        parts = []
        for k, sensor in enumerate(self.sensors):
            if active and k == self.config.fault_sensor - 1:
                readings = self._faulty_reading(k, fault, vertical, foreign, first)
            else:
                readings = sensor.read(vertical)
                if self.config.ac_coupled:
                    readings -= sensor.gravity_reading(False)
                if self._history is not None and k == self.config.fault_sensor - 1:
                    self._history[(first + np.arange(readings.shape[0])) % self._history.shape[0]] = readings
            if readings.shape[0] == 0 and len(self.sensors) > 1:
                readings = np.full((vertical.shape[0], 3), np.nan)  # one of two is gone
            if readings.shape[0]:
                self._last_readings[k] = readings[-1].copy()
            parts.append(readings)
        return parts[0] if len(parts) == 1 else np.column_stack(parts)

    def _learn_rest(self, vertical_readings: np.ndarray) -> None:
        """(n, sensors) vertical readings at rest: what each sensor reads of gravity."""
        weight = 1.0 - math.exp(-vertical_readings.shape[0] / (REST_TIME_CONSTANT_S * self.rate_hz))
        mean = np.nanmean(vertical_readings, axis=0) if np.isfinite(vertical_readings).any() else self._rest_mps2
        self._rest_mps2 = self._rest_mps2 + weight * (np.nan_to_num(mean, nan=0.0) - self._rest_mps2)

    def _trip_index(self, readings: np.ndarray, first: int) -> int | None:
        """The sample (index into `readings`) at which the trip cuts, or None: the first sample over
        the threshold in the cycle after a cycle that had one, or any sample over HARD_TRIP_FACTOR
        times the threshold (a gross over-drive, never noise), whichever comes first."""
        if readings.shape[0] == 0:
            return None
        deviation = np.nanmax(np.abs(readings[:, 2::3] - self._rest_mps2), axis=1) if len(self.sensors) > 1 else (
            np.abs(readings[:, 2] - self._rest_mps2[0]))
        over = np.flatnonzero(deviation > self.trip_mps2)
        if over.size == 0:
            return None
        hard = np.flatnonzero(deviation[over] > HARD_TRIP_FACTOR * self.trip_mps2)
        hard_index = int(over[hard[0]]) if hard.size else None
        cycles = np.floor((first + over) * (self.synth.frequency_hz / self.rate_hz)).astype(np.int64)
        previous = self._over_cycle
        for i, cycle in enumerate(cycles):
            if hard_index is not None and over[i] >= hard_index:
                return hard_index
            if previous is not None and cycle == previous + 1:
                return int(over[i])
            previous = int(cycle)
        self._over_cycle = previous
        return hard_index

    def _motion_state(self) -> tuple:
        foreign = None
        if self._foreign is not None:
            foreign = (_synth_state(self._foreign[1]), _plant_state(self._foreign[0]))
        return _synth_state(self.synth), _plant_state(self.plant), foreign

    def _restore_motion(self, state: tuple) -> None:
        synth, plant, foreign = state
        _restore_synth(self.synth, synth)
        _restore_plant(self.plant, plant)
        if foreign is not None:
            _restore_synth(self._foreign[1], foreign[0])
            _restore_plant(self._foreign[0], foreign[1])

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
                self._load_change = (self.samples_done, fault.size)
            elif fault.name == "step_off":
                self.plant.set_params(params.with_changes(load_kg=0.0))
                self._load_change = (self.samples_done, 0.0)
            elif fault.name == "distortion":
                self.plant.set_params(params.with_changes(quadratic=fault.size))
            elif fault.name == "link_drop":
                self.link_up = False
            elif fault.name == "frequency_shift":
                self.synth.set_frequency(self.commanded_frequency_hz + fault.size)
            elif fault.name == "foreign_sensor" and self.synth.amplitude > 0:
                # the neighbour delivers what this plate was delivering: the same prescription
                plant, synth = self._foreign
                true_hz = synth.frequency_hz * self.config.clock_factor
                level = self.plant.fundamental_peak_mps2(self.synth.frequency_hz * self.config.clock_factor,
                                                         self.synth.amplitude)
                synth.set_amplitude(min(1.0, level / plant.fundamental_peak_mps2(true_hz, 1.0)), 0.0)
        elif event == "watchdog":
            self.synth.set_amplitude(0.0, WATCHDOG_RAMP_S)
        elif event == "end":
            self.fault = None  # the burst is over; the sensor is healthy again

    def _faulty_reading(self, k: int, fault: Fault, vertical: np.ndarray, foreign: np.ndarray | None,
                        first: int) -> np.ndarray:
        name = fault.name
        n = vertical.shape[0]
        sensor = self.sensors[k]
        gravity = sensor.gravity_reading(False) if self.config.ac_coupled else 0.0
        if name == "sensor_unplug":
            return np.empty((0, 3))
        if name == "sensor_stall":
            sensor.read(vertical)  # the sensor's clock still runs
            return np.tile(self._last_readings[k], (n, 1))
        if name == "replay":  # the stretch of `size` seconds before the fault, over and over
            onset = int(math.ceil(fault.at_s * self.rate_hz))
            length = max(1, min(int(round(fault.size * self.rate_hz)), self._history.shape[0]))
            source = onset - length + (first + np.arange(n) - onset) % length
            sensor.read(vertical)
            return self._history[source % self._history.shape[0]].copy()
        if name == "foreign_sensor":
            return sensor.read(foreign) - gravity
        if name == "noise_burst":
            return sensor.read(vertical, noise_scale=fault.size) - gravity
        if name == "drift":
            t = (first + np.arange(n)) / self.rate_hz - fault.at_s
            sensitivity = np.maximum(sensor.params.sensitivity * (1.0 + fault.size * t), 0.0)
            return sensor.read(vertical, sensitivity=sensitivity) - gravity
        readings = sensor.read(vertical) - gravity
        if name == "corrupt":
            readings = np.array(readings)
            hit = self._rng.random(n) < fault.size
            count = int(hit.sum())
            rail = sensor.params.range_g * G_MPS2
            garbage = self._rng.choice([np.nan, rail, -rail], size=(count, 3))
            readings[hit] = garbage
        return readings

    # -- saving and restoring the state (to undo speculative rendering) ------------------

    def snapshot(self) -> tuple:
        """Everything that evolves with time, so `restore` can return here exactly."""
        return (
            self.samples_done,
            self._motion_state(),
            self._rng.bit_generator.state,
            (self.fault, list(self._events), self.link_up, [r.copy() for r in self._last_readings]),
            (self.drive_limit, self.trip_mps2, self.trips, self.trip_sample, self._over_cycle, self._rest_mps2.copy()),
        )

    def restore(self, state: tuple) -> None:
        samples_done, motion, rng, fault, guard = state
        self.samples_done = samples_done
        self._restore_motion(motion)
        self._rng.bit_generator.state = rng
        self.fault, events, self.link_up, last = fault
        self._events = list(events)
        self._last_readings = [r.copy() for r in last]
        self.drive_limit, self.trip_mps2, self.trips, self.trip_sample, self._over_cycle, self._rest_mps2 = guard

    @property
    def link_lost_at(self) -> int | None:
        """Sample index at which the host link drops (a `link_drop` fault), if it does."""
        fault = self.config.fault
        if fault is None or fault.name != "link_drop":
            return None
        return int(math.ceil(fault.at_s * self.rate_hz))

    # -- ground truth, for tests and calibration checks -----------------------------------

    def true_peak_mps2(self, frequency_hz: float, drive_level: float) -> float:
        """The fundamental's peak acceleration the sensor reports for a steady drive at the commanded
        `frequency_hz` (the plate vibrates at it times the clock factor)."""
        true_hz = frequency_hz * self.config.clock_factor
        return self.plant.fundamental_peak_mps2(true_hz, drive_level) * self.sensor.params.sensitivity


def _synth_state(synth: SineSynth) -> tuple:
    return (synth.frequency_hz, synth._phase_cycles, synth._amp_from, synth._amp_to, synth._ramp_samples,
            synth._ramp_done)


def _restore_synth(synth: SineSynth, state: tuple) -> None:
    synth._frequency_hz, synth._phase_cycles, synth._amp_from, synth._amp_to, synth._ramp_samples, synth._ramp_done = state


def _plant_state(plant: Plant) -> tuple:
    return plant._position_m, plant._velocity_mps, plant.params


def _restore_plant(plant: Plant, state: tuple) -> None:
    position, velocity, params = state
    if params is not plant.params:
        plant.set_params(params)
    plant._position_m, plant._velocity_mps = position, velocity
