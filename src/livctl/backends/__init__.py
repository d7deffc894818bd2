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

from livctl.errors import DeviceURLError
from livctl.inputs import Range, is_plain_number, parse_number, parse_whole

POSITIVE = Range(0.0, None, low_open=True)
NON_NEGATIVE = Range(0.0, None)

if TYPE_CHECKING:
    import numpy as np

    from livctl.clock import Clock

BACKENDS: dict[str, str] = {
    "sim": "livctl.backends.sim",
    "serial": "livctl.backends.serial",
    "audio": "livctl.backends.audio",
}
"""URL scheme -> module holding a `Platform` subclass named `PLATFORM`."""


@dataclass(frozen=True)
class SampleBlock:
    """Accelerometer samples: `accel_mps2` is (n, 3) in m/s^2 (x, y, z), gravity included."""

    t0_s: float
    """Time of the first sample, seconds, counted on the sensor's own stream: consecutive blocks
    follow on without gaps, but the origin need not be the platform `clock`'s (a serial board or
    a sound card counts from when its stream started)."""
    rate_hz: float
    accel_mps2: "np.ndarray"

    @property
    def n(self) -> int:
        return int(self.accel_mps2.shape[0])

    @property
    def duration_s(self) -> float:
        return self.n / self.rate_hz


@dataclass(frozen=True)
class DeviceURL:
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
    """A vibration platform: signal generator, amplifier, actuator, accelerometer."""

    kind: str = "?"
    simulated: bool = False
    vertical_axis: str = "z"
    """The sensor axis aligned with the platform's motion."""
    max_drive: float = 1.0
    """Largest drive level (fraction of full scale) this platform may be commanded."""
    sensor_range_mps2: float = math.inf
    """The accelerometer's full scale: readings at it are clipped, not measurements."""
    gravity_on_vertical: bool = True
    """A DC-coupled sensor reads +1 g on its vertical axis at rest (an AC-coupled input does not)."""
    has_sensor: bool = True
    """False for a drive without an accelerometer: `read` has nothing to give, sessions run open loop."""
    open_loop_gain_mps2_per_drive: float | None = None
    """Calibrated peak acceleration per unit of drive, for open-loop sessions (None: unknown)."""

    def __init__(self, url: str, clock: "Clock"):
        self.url = url
        self.clock = clock

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

    @abstractmethod
    def set_frequency(self, frequency_hz: float) -> None: ...

    @abstractmethod
    def set_drive(self, level: float, ramp_s: float) -> None:
        """Move the drive to `level` (fraction of full scale, peak) over `ramp_s` seconds."""

    @abstractmethod
    def cut_drive(self) -> None:
        """Zero the drive at once (emergency stop)."""

    @abstractmethod
    def read(self, duration_s: float) -> SampleBlock:
        """The next `duration_s` of accelerometer samples; blocks (on the platform's clock) until they exist.

        A block may hold fewer samples than the duration implies when the sensor delivers fewer
        (a stalled or unplugged sensor); the platform's time still moves by `duration_s`.
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

    def __enter__(self) -> "Platform":
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_platform(url: str, *, speed: float | None = None) -> Platform:
    """Build the platform a URL names (not yet opened). `speed` applies to the simulator only."""
    parsed = parse_device_url(url)
    if speed is not None and parsed.scheme != "sim":
        raise DeviceURLError("--speed applies to the simulator (sim://) only; real platforms run in real time")
    module = importlib.import_module(BACKENDS[parsed.scheme])
    return module.PLATFORM.from_url(parsed, speed=speed)
