"""`sim://`: the simulated platform from firmware_sim, in-process, on a virtual clock.

Options (all optional): `seed` (int, 0), `load_kg` (70, a person; 0.5 is a mouse cage),
`sensor` (adxl345 or adxl355), `actuator_n` (peak force at full drive, 800), `id` (platform id,
"sim"). Example: `sim://?load_kg=120&seed=3`.
"""

from __future__ import annotations

import math

from firmware_sim import SENSORS, PlantParams, SimConfig, SimulatedPlatform
from livctl.backends import DeviceURL, Platform, SampleBlock, non_negative_float, positive_float
from livctl.clock import VirtualClock
from livctl.errors import DeviceURLError


def _sensor_name(text: str) -> str:
    name = text.lower()
    if name not in SENSORS:
        raise ValueError(f"choose one of {', '.join(SENSORS)}")
    return name


def _platform_id(text: str) -> str:
    if not text or not all(c.isalnum() or c in "-_." for c in text):
        raise ValueError("use letters, digits, '-', '_' or '.'")
    return text


class SimPlatform(Platform):
    kind = "sim"
    simulated = True

    OPTIONS = {
        "seed": int,
        "load_kg": non_negative_float,
        "sensor": _sensor_name,
        "actuator_n": positive_float,
        "id": _platform_id,
    }
    DEFAULTS = {"seed": 0, "load_kg": 70.0, "sensor": "adxl345", "actuator_n": 800.0, "id": "sim"}

    def __init__(self, url: str, config: SimConfig, platform_id: str, speed: float):
        super().__init__(url, VirtualClock(speed))
        self.device = SimulatedPlatform(config)
        self._platform_id = platform_id

    @classmethod
    def from_url(cls, parsed: DeviceURL, *, speed: float | None) -> "SimPlatform":
        if parsed.location:
            raise DeviceURLError(f"sim:// takes only options (sim://?load_kg=70), not {parsed.location!r}")
        o = parsed.take(cls.OPTIONS, cls.DEFAULTS)
        try:
            plant = PlantParams(load_kg=o["load_kg"], actuator_n=o["actuator_n"]).check()
        except ValueError as exc:
            raise DeviceURLError(f"sim:// {exc}") from None
        config = SimConfig(seed=o["seed"], plant=plant, sensor=SENSORS[o["sensor"]])
        return cls(parsed.url, config, o["id"], 1.0 if speed is None else speed)

    @property
    def platform_id(self) -> str:
        return self._platform_id

    @property
    def sensor_rate_hz(self) -> float:
        return self.device.rate_hz

    @property
    def description(self) -> str:
        p = self.device.config.plant
        return (
            f"simulated platform ({p.load_kg:g} kg load, resonance {p.resonance_hz:.1f} Hz, "
            f"{self.device.config.sensor.name} at {self.sensor_rate_hz:g} Hz; {self.clock.description})"
        )

    def set_frequency(self, frequency_hz: float) -> None:
        self.device.set_frequency(frequency_hz)

    def set_drive(self, level: float, ramp_s: float) -> None:
        self.device.set_drive(min(level, self.max_drive), ramp_s)

    def cut_drive(self) -> None:
        self.device.cut()

    def read(self, duration_s: float) -> SampleBlock:
        rate = self.device.rate_hz
        first = self.device.samples_done
        last = int(math.floor((first / rate + duration_s) * rate + 0.5))
        t0_s = first / rate
        self.clock.sleep_until(last / rate)
        return SampleBlock(t0_s=t0_s, rate_hz=rate, accel_mps2=self.device.advance(last - first))

    def close(self) -> None:
        self.device.cut()


PLATFORM = SimPlatform


def list_devices(probe: bool) -> list[dict]:
    """The simulated platform is always there (`probe` has nothing to ask it)."""
    sensor = SENSORS[SimPlatform.DEFAULTS["sensor"]]
    return [{
        "url": "sim://",
        "description": f"simulated platform ({SimPlatform.DEFAULTS['load_kg']:g} kg load, {sensor.name} at {sensor.rate_hz:g} Hz)",
    }]
