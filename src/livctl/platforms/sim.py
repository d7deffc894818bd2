"""`sim://`: the simulated platform from firmware_sim, in-process, on a virtual clock.

Options (all optional): `seed` (int, 0), `load_kg` (70, a person; 0.5 is a mouse cage),
`sensor` (adxl345 or adxl355), `actuator_n` (peak force at full drive, 800), `id` (platform id,
"sim"), one fault to inject: `fault` (a name from firmware_sim.faults.FAULTS), `fault_at_s`
(seconds after the platform starts, 0), `fault_value` and `fault_duration_s` (the fault's size and
length where it has them; `fault_sensor`: which accelerometer a sensor fault hits, 1 or 2), `truth`
(a file for what the plate really did, firmware_sim.truth), and what can make a sensor lie:
`clock_ppm` (the board's crystal N ppm off: its sine and its samples), `sensor_scale` (the first
accelerometer reads this times the truth, gravity included), `coupling` (`dc`, or `ac`: no gravity),
`sensors` (1, or 2: a second, independent accelerometer) and `load_cell` (0 or 1: a load cell under
the plate). Example: `sim://?load_kg=120&fault=resonance&fault_at_s=30&fault_value=3&truth=run.csv`.

Like a protocol 1.1 board, the simulated device enforces the drive limit livctl sets and runs its
own over-acceleration trip on its sensor's samples; a trip is reported by `read` as `DeviceTripped`.

When the reader announces how much it is about to read (`prefetch`, one measurement window), the
simulator renders that stretch at once and rewinds exactly if a command changes its course
midway: a session reading short control blocks costs about what one reading whole windows does.
"""

from __future__ import annotations

import math

import numpy as np

from firmware_sim import SENSORS, PlantParams, SimConfig, SimulatedPlatform
from firmware_sim.faults import FAULTS, Fault
from firmware_sim.sensor import G_MPS2
from livctl.platforms import DeviceURL, Platform, SampleBlock, non_negative_float, platform_id_option, positive_float
from livctl.clock import VirtualClock
from livctl.errors import DeviceTripped, DeviceURLError, PlatformError
from livctl.inputs import parse_number, parse_whole
from livctl.units import g_to_mps2, mps2_to_g


def _sensor_name(text: str) -> str:
    name = text.lower()
    if name not in SENSORS:
        raise ValueError(f"choose one of {', '.join(SENSORS)}")
    return name


def _fault_name(text: str) -> str:
    if text not in FAULTS:
        raise ValueError(f"choose one of {', '.join(FAULTS)}")
    return text


def _seed(text: str) -> int:
    return parse_whole(text, 0, MAX_SEED)


def _finite(text: str) -> float:
    return parse_number(text)


MAX_SEED = 2**32 - 1
"""The simulator's seeds are 32-bit numbers, as most generators' are."""


TRUTH_TAIL_S = 1.0
"""With a truth file, the world goes on this long after the platform is closed (the plate settles)."""


def _choice(*names: str):
    def parse(text: str) -> str:
        if text not in names:
            raise ValueError(f"choose {' or '.join(names)}")
        return text

    return parse


def _ppm(text: str) -> float:
    value = _finite(text)
    if not -1e5 <= value <= 1e5:
        raise ValueError("must be within +-100000 ppm (10 %)")
    return value


def _scale(text: str) -> float:
    value = positive_float(text)
    if not 0.1 <= value <= 10:
        raise ValueError("must be from 0.1 to 10")
    return value


def _truth_path(text: str) -> str:
    if not text:
        raise ValueError("give a file name for the truth file")
    return text


class SimPlatform(Platform):
    """`sim://`: the simulated platform (firmware_sim's plate, actuator and accelerometer) on a real or virtual
    clock, rendering a window ahead and rewinding exactly when a command lands midway."""

    kind = "sim"
    simulated = True
    has_device_trip = True

    OPTIONS = {
        "seed": _seed,
        "load_kg": non_negative_float,
        "sensor": _sensor_name,
        "actuator_n": positive_float,
        "id": platform_id_option,
        "fault": _fault_name,
        "fault_at_s": non_negative_float,
        "fault_value": _finite,
        "fault_duration_s": positive_float,
        "truth": _truth_path,
        "clock_ppm": _ppm,
        "sensor_scale": _scale,
        "coupling": _choice("dc", "ac"),
        "sensors": _choice("1", "2"),
        "fault_sensor": _choice("1", "2"),
        "load_cell": _choice("0", "1"),
    }
    DEFAULTS = {
        "seed": 0, "load_kg": 70.0, "sensor": "adxl345", "actuator_n": 800.0, "id": "sim",
        "fault": None, "fault_at_s": 0.0, "fault_value": None, "fault_duration_s": None, "truth": None,
        "clock_ppm": 0.0, "sensor_scale": 1.0, "coupling": "dc", "sensors": "1", "fault_sensor": "1",
        "load_cell": "0",
    }

    def __init__(self, url: str, config: SimConfig, platform_id: str, speed: float, truth: str | None = None):
        super().__init__(url, VirtualClock(speed))
        self.device = SimulatedPlatform(config)
        self._platform_id = platform_id
        sensor = config.sensor
        self.sensor_range_mps2 = g_to_mps2(sensor.range_g)
        self.gravity_on_vertical = not config.ac_coupled
        self.sensor_count = config.sensors
        self.has_load_cell = config.load_cell
        self._columns = 3 * config.sensors
        steps = sensor.range_g / sensor.lsb_g
        self.sample_format = ("int16" if steps < 2**15 - 1 else "int32", sensor.lsb_g * G_MPS2)  # the sensor's counts
        self._link_lost_at = self.device.link_lost_at
        # samples rendered ahead: rows for sample indices [_buf_start, _buf_start + len(_buf))
        self._pos = 0
        self._buf = np.empty((0, self._columns))
        self._buf_start = 0
        self._rendered_to = 0
        self._snapshot = None
        self._snapshot_at = 0
        self._trips_reported = 0
        self.truth_path = truth
        if truth is not None:
            try:
                self.device.record_truth_to(truth)
            except OSError as exc:
                raise DeviceURLError(f"sim:// truth={truth!r}: {exc.strerror or exc}") from None

    @classmethod
    def from_url(cls, parsed: DeviceURL, *, speed: float | None) -> "SimPlatform":
        if parsed.location:
            raise DeviceURLError(f"sim:// takes only options (sim://?load_kg=70), not {parsed.location!r}")
        o = parsed.take(cls.OPTIONS, cls.DEFAULTS)
        fault_options = ("fault_at_s", "fault_value", "fault_duration_s")
        if o["fault"] is None and any(name in parsed.options for name in fault_options):
            raise DeviceURLError("sim:// fault_at_s, fault_value and fault_duration_s need fault=NAME")
        try:
            plant = PlantParams(load_kg=o["load_kg"], actuator_n=o["actuator_n"]).check()
            fault = None
            if o["fault"] is not None:
                fault = Fault(o["fault"], o["fault_at_s"], o["fault_value"], o["fault_duration_s"])
        except ValueError as exc:
            raise DeviceURLError(f"sim:// {exc}") from None
        if o["fault_sensor"] == "2" and o["sensors"] != "2":
            raise DeviceURLError("sim:// fault_sensor=2 needs sensors=2")
        config = SimConfig(
            seed=o["seed"], plant=plant, sensor=SENSORS[o["sensor"]].with_changes(sensitivity=o["sensor_scale"]),
            fault=fault, clock_ppm=o["clock_ppm"], sensors=int(o["sensors"]), fault_sensor=int(o["fault_sensor"]),
            ac_coupled=o["coupling"] == "ac", load_cell=o["load_cell"] == "1",
        )
        return cls(parsed.url, config, o["id"], 1.0 if speed is None else speed, truth=o["truth"])

    @property
    def platform_id(self) -> str:
        return self._platform_id

    @property
    def sensor_rate_hz(self) -> float:
        return self.device.rate_hz

    @property
    def description(self) -> str:
        p = self.device.config.plant
        fault = self.device.config.fault
        injected = f", fault {fault.name} at {fault.at_s:g} s" if fault else ""
        return (
            f"simulated platform ({p.load_kg:g} kg load, resonance {p.resonance_hz:.1f} Hz, "
            f"{self.device.config.sensor.name} at {self.sensor_rate_hz:g} Hz{injected}; {self.clock.description})"
        )

    # -- commands: each one first brings the board to the reader's time -------------------

    def _command(self) -> SimulatedPlatform:
        if self._link_lost_at is not None and self._pos >= self._link_lost_at:
            raise PlatformError("link lost: the platform does not answer")
        self._rewind()
        return self.device

    def set_frequency(self, frequency_hz: float) -> None:
        self._command().set_frequency(frequency_hz)

    def _set_drive(self, level: float, ramp_s: float) -> None:
        self._command().set_drive(level, ramp_s)

    def _cut_drive(self) -> None:
        self._command().cut()

    def _apply_drive_limit(self, ceiling: float) -> None:
        self._command().set_drive_limit(ceiling)

    def _apply_trip(self, threshold_mps2: float) -> None:
        self._command().set_trip(threshold_mps2)

    def close(self) -> None:
        if self._link_lost_at is None or self._pos < self._link_lost_at:
            self._rewind()
            self.device.cut()
        if self.truth_path is not None:
            self._rewind()
            self.device.advance(int(TRUTH_TAIL_S * self.device.rate_hz))  # the plate settles
            self.device.close_truth()

    # -- samples ----------------------------------------------------------------------------

    def read(self, duration_s: float) -> SampleBlock:
        rate = self.device.rate_hz
        first = self._pos
        last = int(math.floor((first / rate + duration_s) * rate + 0.5))
        if last > self._rendered_to:
            self._render(last - self._rendered_to)
        self.clock.sleep_until(last / self.device.true_rate_hz)  # the host's time: the crystal may be off
        self._pos = last
        self.device.commit_truth(last)
        if self._link_lost_at is not None and last > self._link_lost_at:
            raise PlatformError(f"link lost: no data from the platform since {self._link_lost_at / rate:.2f} s")
        device = self.device
        if device.trips > self._trips_reported and device.trip_sample is not None and device.trip_sample <= last:
            self._trips_reported = device.trips
            raise DeviceTripped(
                f"the platform's own over-acceleration trip cut its output at {device.trip_sample / rate:.3f} s "
                f"(its samples passed {mps2_to_g(device.trip_mps2):.2f} g)"
            )
        # rows exist up to the end of the buffer (an unplugged sensor delivers none after that)
        stop = min(last, self._buf_start + self._buf.shape[0])
        rows = self._buf[max(0, first - self._buf_start) : max(0, stop - self._buf_start)]
        second = None
        if self._columns == 6:
            rows, second = rows[:, :3], rows[:, 3:]
        load = self.device.load_reading_kg(first) if self.has_load_cell else None
        return SampleBlock(t0_s=first / rate, rate_hz=rate, accel_mps2=rows, second_mps2=second, load_kg=load)

    def prefetch(self, duration_s: float) -> None:
        rate = self.device.rate_hz
        last = int(math.floor((self._pos / rate + duration_s) * rate + 0.5))
        if last > self._rendered_to:
            self._render(last - self._rendered_to)

    def _render(self, n: int) -> None:
        """Run the board `n` samples beyond what is rendered, remembering where it started."""
        self._snapshot = self.device.snapshot()
        self._snapshot_at = self._rendered_to
        keep = self._buf[max(0, self._pos - self._buf_start) :]
        new = self.device.advance(n)
        self._buf_start = max(self._buf_start, self._pos)
        self._buf = new if keep.shape[0] == 0 else np.concatenate([keep, new])
        self._rendered_to += n

    def _rewind(self) -> None:
        """Undo rendering past the reader's position, so a command takes effect exactly there."""
        if self._rendered_to <= self._pos:
            return
        self.device.restore(self._snapshot)
        self.device.advance(self._pos - self._snapshot_at)
        self._rendered_to = self._pos
        end = self._pos - self._buf_start
        self._buf = self._buf[: max(0, end)]


PLATFORM = SimPlatform


def list_devices(probe: bool) -> list[dict]:
    """The simulated platform is always there (`probe` has nothing to ask it)."""
    sensor = SENSORS[SimPlatform.DEFAULTS["sensor"]]
    return [{
        "url": "sim://",
        "description": f"simulated platform ({SimPlatform.DEFAULTS['load_kg']:g} kg load, {sensor.name} at {sensor.rate_hz:g} Hz)",
    }]
