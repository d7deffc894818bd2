"""Platforms, named by URL: `sim://`, `serial:///dev/ttyUSB0`, `audio://NAME`.

Every backend implements the small `Platform` interface: a drive (frequency, level with a ramp,
immediate cut) and an accelerometer (`read` returns the next stretch of samples, in m/s^2, axes
x, y, z). The session never knows which backend it drives. Backends are imported only when a URL
names them, so a missing optional system library (PortAudio, say) only matters to its own backend.
"""

from __future__ import annotations

import importlib
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import parse_qsl, urlsplit

from livctl.errors import DeviceURLError, DriveRequestError, Refusal
from livctl.inputs import Range, is_plain_number, parse_number, parse_whole

__all__ = [
    "Platform", "SampleBlock", "DeviceURL", "SpeedRefused", "BACKENDS", "open_platform", "parse_device_url",
    "platform_id_option", "positive_float", "non_negative_float", "whole_number_option",
]

POSITIVE = Range(0.0, None, low_open=True)
NON_NEGATIVE = Range(0.0, None)

if TYPE_CHECKING:
    import numpy as np

    from livctl.clock import Clock

BACKENDS: dict[str, str] = {
    "sim": "livctl.platforms.sim",
    "serial": "livctl.platforms.serial.platform",
    "audio": "livctl.platforms.audio",
}
"""URL scheme -> module holding a `Platform` subclass named `PLATFORM`."""


@dataclass(frozen=True)
class SampleBlock:
    """Accelerometer samples: `accel_mps2` is (n, 3) in m/s^2 (x, y, z), gravity included."""

    t0_s: float
    """Time of the first sample, seconds, counted on the sensor's own stream: consecutive blocks
    follow on without gaps, but the origin need not be the platform `clock`'s (a serial board or
    a sound card counts from when its stream started), nor its pace (the board's crystal)."""
    rate_hz: float
    accel_mps2: "np.ndarray"
    second_mps2: "np.ndarray | None" = None
    """The second accelerometer's samples at the same instants, (n, 3) m/s^2 (NaN where it gave
    none), on a platform that carries one; None otherwise."""
    load_kg: float | None = None
    """What the platform's load cell read over the block, kg; None without one."""
    arrived_s: float | None = None
    """When the block's last sample reached this computer (the platform `clock`), where the backend
    stamps arrivals (a serial link's reader thread); None: when `read` returned."""

    @property
    def n(self) -> int:
        return int(self.accel_mps2.shape[0])

    @property
    def duration_s(self) -> float:
        return self.n / self.rate_hz


@dataclass(frozen=True)
class DeviceURL:
    """A parsed device URL (scheme://location?options); `take` types and checks its options."""

    url: str
    scheme: str
    location: str
    options: dict[str, str] = field(default_factory=dict)

    def take(self, spec: dict[str, Callable[[str], Any]], defaults: dict[str, Any]) -> dict[str, Any]:
        """Typed option values: `spec` maps each known option to a parser, `defaults` fills gaps."""
        unknown = sorted(set(self.options) - set(spec))
        if unknown:
            raise DeviceURLError(
                f"{self.scheme}:// has no option {', '.join(unknown)}; known options: {', '.join(sorted(spec))}"
            )
        values = dict(defaults)
        for name, text in self.options.items():
            try:
                value = spec[name](text)
                if isinstance(value, (int, float)) and not isinstance(value, bool) and not is_plain_number(text):
                    # every number in a URL is read as the command line reads it (livctl.inputs)
                    parse_number(text)
            except (TypeError, ValueError, OverflowError) as exc:
                detail = str(exc) or "not understood"
                raise DeviceURLError(f"{self.scheme}:// option {name}={text!r}: {detail}") from None
            values[name] = value
        return values


def parse_device_url(url: str) -> DeviceURL:
    if "://" not in url:
        raise DeviceURLError(
            f"device {url!r} is not a URL; use sim:// (simulator), serial:///dev/ttyUSB0 or audio://NAME"
        )
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # an unbalanced IPv6 bracket, say
        raise DeviceURLError(f"device {url!r} is not a well-formed URL ({exc}); e.g. sim://?seed=3") from None
    scheme = parts.scheme.lower()
    if scheme not in BACKENDS:
        raise DeviceURLError(f"unknown device type {scheme!r} in {url!r}; known: {', '.join(f'{s}://' for s in BACKENDS)}")
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise DeviceURLError(f"cannot read the options of {url!r}; write them as ?name=value&name=value") from None
    options: dict[str, str] = {}
    for name, value in pairs:
        if name in options:
            raise DeviceURLError(f"option {name!r} is given twice in {url!r}")
        options[name] = value
    return DeviceURL(url=url, scheme=scheme, location=parts.netloc + parts.path, options=options)


def positive_float(text: str) -> float:
    """A URL option: a positive number, written plainly (livctl.inputs)."""
    return parse_number(text, POSITIVE)


MAX_PLATFORM_ID = 64
"""A platform id names a calibration file (`<id>.toml`) and appears in every session record: a
name, not a paragraph (file names stop at 255 bytes)."""


def platform_id_option(text: str) -> str:
    """A platform id given in a URL (`id=`): letters, digits, '-', '_' or '.', at most 64 of them."""
    if not text or not all(c.isalnum() or c in "-_." for c in text):
        raise ValueError("use letters, digits, '-', '_' or '.'")
    if len(text) > MAX_PLATFORM_ID:
        raise ValueError(f"a platform id is at most {MAX_PLATFORM_ID} characters, not {len(text)}")
    if text in (".", ".."):
        raise ValueError("a platform id names a file: not . or ..")
    return text


def non_negative_float(text: str) -> float:
    """A URL option: a number >= 0, written plainly (livctl.inputs)."""
    return parse_number(text, NON_NEGATIVE)


def whole_number_option(low: int, high: int):
    """A URL option: a whole number `low`-`high`, written plainly (livctl.inputs)."""
    return lambda text: parse_whole(text, low, high)


class Platform(ABC):
    """A vibration platform: signal generator, amplifier, actuator, accelerometer.

    Every drive command goes through `set_drive` and `cut_drive`, written once here: a request that
    is not a finite level >= 0 with a finite ramp >= 0 cuts the drive and is refused
    (`DriveRequestError`); a level above the drive ceiling (`max_drive`) is clamped to it. Then
    the backend's `_set_drive` / `_cut_drive` carry it out. The ceiling starts at the platform's
    full scale (`full_scale_drive`) and can only be lowered (`limit_drive`): on platforms whose
    device enforces a limit of its own (a protocol 1.1 board, the simulator, the audio callback),
    the device is told too. Subclasses implement the underscored methods, never the public ones.
    """

    kind: str = "?"
    simulated: bool = False
    vertical_axis: str = "z"
    """The sensor axis aligned with the platform's motion."""
    full_scale_drive: float = 1.0
    """The largest drive level the platform's own hardware takes (fraction of full scale, peak)."""
    sensor_range_mps2: float = math.inf
    """The accelerometer's full scale: readings at it are clipped, not measurements."""
    gravity_on_vertical: bool = True
    """A DC-coupled sensor reads +1 g on its vertical axis at rest (an AC-coupled input does not)."""
    has_sensor: bool = True
    """False for a drive without an accelerometer: `read` has nothing to give, sessions run open loop."""
    open_loop_gain_mps2_per_drive: float | None = None
    """Calibrated peak acceleration per unit of drive, for open-loop sessions (None: unknown)."""
    has_device_trip: bool = False
    """True when the device cuts its own output on over-acceleration (`arm_trip`)."""
    sensor_count: int = 1
    """Accelerometers on the plate: 2 when a second, independent one checks the first."""
    has_load_cell: bool = False
    """True when the platform reads what stands on it (`SampleBlock.load_kg`)."""
    sample_format: tuple[str, float] = ("float64", 1.0)
    """How the samples `read` returns are stored without loss: a numpy type and the m/s^2 that one
    unit of it stands for (an ADXL345's counts: ("int16", 0.0383)). The raw-signal archive stores
    them so."""

    def __init__(self, url: str, clock: "Clock"):
        self.url = url
        self.clock = clock
        self._max_drive: float | None = None
        self.commanded_drive = 0.0
        """The level of the last drive command that went out (after clamping)."""
        self.trip_mps2 = math.inf
        """The device's over-acceleration trip (peak, gravity removed), once armed."""

    @property
    @abstractmethod
    def platform_id(self) -> str:
        """A stable name for this platform: calibrations and dose records refer to it."""

    @property
    @abstractmethod
    def sensor_rate_hz(self) -> float: ...

    @property
    def description(self) -> str:
        return self.url

    def open(self) -> None:
        """Connect and identify the platform (no motion)."""

    def close(self) -> None:
        """Leave the platform stopped and release it."""

    # -- the drive: checked and clamped here, once -----------------------------------------------

    @property
    def max_drive(self) -> float:
        """The drive ceiling (fraction of full scale, peak): no command goes above it."""
        return self.full_scale_drive if self._max_drive is None else self._max_drive

    def limit_drive(self, ceiling: float) -> float:
        """Lower the drive ceiling to `ceiling` (never raises it); the device enforces it too where
        it can. A drive already above it comes down to it. Returns the ceiling now in force."""
        if not (isinstance(ceiling, (int, float)) and math.isfinite(ceiling) and ceiling >= 0):
            raise DriveRequestError(f"a drive ceiling must be a finite level >= 0, not {ceiling!r}")
        self._max_drive = min(self.max_drive, float(ceiling))
        self._apply_drive_limit(self._max_drive)
        if self.commanded_drive > self._max_drive:
            self.set_drive(self._max_drive, CEILING_RAMP_S)
        return self._max_drive

    def arm_trip(self, threshold_mps2: float) -> bool:
        """Ask the device to cut its own output when its samples exceed `threshold_mps2` (peak,
        gravity removed). Returns whether the device has such a trip (`has_device_trip`)."""
        if not (math.isfinite(threshold_mps2) and threshold_mps2 > 0):
            raise DriveRequestError(f"a trip threshold must be a positive acceleration, not {threshold_mps2!r}")
        if not self.has_device_trip:
            return False
        self._apply_trip(threshold_mps2)
        self.trip_mps2 = threshold_mps2
        return True

    def set_drive(self, level: float, ramp_s: float) -> float:
        """Move the drive to `level` (fraction of full scale, peak) over `ramp_s` seconds, clamped to
        the ceiling; returns the level commanded. A request that is not a finite number >= 0 cuts
        the drive and raises `DriveRequestError`: a caller that computes nonsense is not trusted."""
        if not (_finite_at_least_zero(level) and _finite_at_least_zero(ramp_s)):
            self.cut_drive()
            raise DriveRequestError(
                f"refused a drive request of {level!r} over {ramp_s!r} s (not a finite level >= 0); drive cut"
            )
        level = min(float(level), self.max_drive)
        self._set_drive(level, float(ramp_s))
        self.commanded_drive = level
        return level

    def cut_drive(self) -> None:
        """Zero the drive at once (emergency stop)."""
        self.commanded_drive = 0.0
        self._cut_drive()

    @abstractmethod
    def set_frequency(self, frequency_hz: float) -> None: ...

    @abstractmethod
    def _set_drive(self, level: float, ramp_s: float) -> None:
        """Carry out a drive command already checked and clamped by `set_drive`."""

    @abstractmethod
    def _cut_drive(self) -> None:
        """Zero the drive at once."""

    def _apply_drive_limit(self, ceiling: float) -> None:
        """Tell the device its drive limit (platforms whose device enforces one)."""

    def _apply_trip(self, threshold_mps2: float) -> None:
        """Arm the device's own over-acceleration trip (platforms with `has_device_trip`)."""

    # -- samples -----------------------------------------------------------------------------------

    @abstractmethod
    def read(self, duration_s: float) -> SampleBlock:
        """The next `duration_s` of accelerometer samples; blocks (on the platform's clock) until they exist.

        A block may hold fewer samples than the duration implies when the sensor delivers fewer
        (a stalled or unplugged sensor); the platform's time still moves by `duration_s`. The
        array is the caller's: the platform never writes to it afterwards (a session's windows and
        its raw-signal archive keep blocks as they are). A device
        that cut its output on its own over-acceleration trip raises `DeviceTripped`.
        """

    def prefetch(self, duration_s: float) -> None:
        """A hint: the next `duration_s` will be read (in blocks) unless a command intervenes."""

    def wait(self, duration_s: float) -> float:
        """Let `duration_s` of platform time pass, driving as commanded; returns the time it started.

        For a platform without a sensor (open loop, test tones); raises `PlatformError` when the
        platform fails meanwhile. The default reads and discards the samples."""
        return self.read(duration_s).t0_s

    def stream_health(self) -> dict[str, int]:
        """Counts of stream faults since `open()` (e.g. audio under-runs); empty when there is no stream."""
        return {}

    @property
    def stream_breaks(self) -> int:
        """How many times samples were lost without their count being known (a sound card's input
        over-run): the samples' own time jumps there, which the clock check must not take for a
        clock error. A platform whose lost samples keep their place (numbered frames) has none."""
        return 0

    def __enter__(self) -> "Platform":
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


CEILING_RAMP_S = 0.1
"""A drive above a newly lowered ceiling comes down to it this fast."""


def _finite_at_least_zero(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


class SpeedRefused(Refusal, DeviceURLError):
    """A speed asked of a platform that runs in real time."""


def open_platform(url: str, *, speed: float | None = None) -> Platform:
    """Build the platform a URL names (not yet opened). `speed` applies to the simulator only."""
    parsed = parse_device_url(url)
    if speed is not None and parsed.scheme != "sim":
        raise SpeedRefused("{speed} applies to the simulator (sim://) only; real platforms run in real time", "speed")
    module = importlib.import_module(BACKENDS[parsed.scheme])
    return module.PLATFORM.from_url(parsed, speed=speed)
