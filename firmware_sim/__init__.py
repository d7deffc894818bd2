"""firmware_sim: a simulated LIV platform (plate, load, actuator, accelerometer) for livctl.

`SimulatedPlatform` is the whole device as its controller firmware sees it; livctl reaches it
in-process through the `sim://` backend. Seeded and vectorised, so simulated sessions repeat
exactly and run far faster than real time.
"""

from firmware_sim.device import SimConfig, SimulatedPlatform
from firmware_sim.plant import Plant, PlantParams
from firmware_sim.sensor import SENSORS, Accelerometer, SensorParams

__all__ = [
    "SENSORS",
    "Accelerometer",
    "Plant",
    "PlantParams",
    "SensorParams",
    "SimConfig",
    "SimulatedPlatform",
]
