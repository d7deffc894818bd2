"""`audio://DEVICE`: a sound card drives an audio power amplifier and a shaker; an analog
accelerometer may come back through one of the card's inputs.

    audio://system?out=1&in=1&max_level=0.5&in_g_per_fs=2     closed loop, accelerometer on input 1
    audio://system?out=1&max_level=0.3&g_per_fs=1.5          open loop from a calibrated gain

DEVICE is a PortAudio device: its name (exact, or a unique part of it; URL-encode spaces as %20) or
its index (`livctl devices` lists them). Options:

| option | meaning | default |
|---|---|---|
| `out` | output channel that feeds the amplifier (1 = first) | 1 |
| `in` | input channel that carries the accelerometer | none: open loop |
| `in2` | input channel of a second, independent accelerometer on the plate (same scale) | none |
| `rate` | sample rate, Hz | the device's default rate |
| `block` | frames per callback | 256 |
| `latency` | `low`, `high` or seconds | `high` |
| `api` | host API (part of its name: `alsa`, `jack`, ...) when a name is on several | any |
| `max_level` | largest output level, fraction of full scale (peak): the drive ceiling | none: refuses to drive |
| `in_g_per_fs` | accelerometer scale: peak g that gives a full-scale input | required with `in` |
| `g_per_fs` | open-loop gain: peak g per unit of drive at the working frequency (a calibration's gain wins) | none |
| `id` | platform id (calibrations and dose records refer to it) | `audio-<device name>` |

The output callback only synthesises the sine (`SineSynth`: phase-continuous, raised-cosine
ramps) into PortAudio's buffer. It never allocates sample memory, logs, locks or does I/O: commands
reach it through a one-writer record (`_Command`, an immutable tuple swapped in by the session
thread) that it reads once per block, and the drive ceiling is applied where a command is taken,
so no level above it can reach the synthesiser. The ceiling is `max_level`, lowered (never raised)
by `limit_drive` (a calibration's largest safe drive). The input callback copies the
accelerometer channel into a preallocated ring and, once the trip is armed (`arm_trip`), checks
each of its blocks against the threshold: a block with a sample over it latches a flag that the
next output callback obeys by cutting the sine at once, so the output stops within one callback
of the samples that exceeded the cap, whatever the host is doing. `read` turns the ring's samples
into m/s^2 and reports the trip (`DeviceTripped`).

With `in2`, a second accelerometer comes in on another input at the same scale: the callback copies
it into a ring of its own and trips on either; `read` returns it as the block's `second_mps2`, and
the sensor watch checks one against the other. The accelerometer is the vertical axis, z; x and y
are zero. Audio inputs are AC-coupled, so the
samples carry no gravity (the measurement uses the vertical axis's AC part only).

Stream faults (output under-runs, input over-runs) are counted by the callbacks and reported by
`stream_health()`; a device that stops delivering (unplugged, its audio server gone) raises
`PlatformError` from `read`/`wait`.
"""

from __future__ import annotations

import atexit
import math
import sys
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

import numpy as np

from livctl.platforms import DeviceURL, Platform, SampleBlock, platform_id_option, positive_float
from livctl.clock import RealClock
from livctl.errors import DeviceOpenError, DeviceTripped, DeviceURLError, PlatformError, UsageError
from livctl.inputs import Range, parse_number, parse_whole
from livctl.units import g_to_mps2, mps2_to_g
from livctl.dsp.waveform import SineSynth

COMMON_RATES_HZ = (8000, 11025, 16000, 22050, 32000, 44100, 48000, 88200, 96000, 176400, 192000)
"""Rates tried when a device refuses one, to say which it accepts."""
RING_S = 8.0
"""Seconds of accelerometer samples the input ring holds between two reads."""
STALL_S = 1.0
"""A stream whose callbacks stop for this long (beyond the wait expected) has lost its device."""
INPUT_SETTLE_S = 0.5
"""`open` lets the input run this long before the first sample is kept: converters start with
silence, and an AC-coupled input settles (a 5 Hz high-pass has a 32 ms time constant)."""
POLL_S = 0.005
SWITCH_INTERVAL_S = 0.0005
"""Python's thread switch interval while a stream runs: the callbacks need the interpreter within a
fraction of a block (256 frames at 48 kHz is 5.3 ms; the default interval is 5 ms)."""


class AudioDeviceError(DeviceURLError):
    """An audio device, channel or rate that does not exist here, or no PortAudio at all."""


class DriveCeilingMissing(UsageError):
    """The drive ceiling is unknown: an audio platform never falls back to full scale."""


def sounddevice():
    """The sounddevice module, or a one-line error when PortAudio (or sounddevice) is missing."""
    try:
        import sounddevice as sd
    except OSError as exc:  # sounddevice raises OSError when libportaudio cannot be loaded
        raise AudioDeviceError(
            f"audio:// needs the PortAudio library ({exc}); install it (Debian/Ubuntu: apt install libportaudio2) "
            "or use sim://"
        ) from None
    except ImportError:
        raise AudioDeviceError("audio:// needs the Python package sounddevice; pip install sounddevice") from None
    return sd


# -- devices ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AudioDevice:
    """A PortAudio device as `livctl devices` lists it: index, name, host API, channels, default rate."""

    index: int
    name: str
    host_api: str
    inputs: int
    outputs: int
    default_rate_hz: float

    @property
    def label(self) -> str:
        return f"[{self.index}] {self.name} ({self.host_api}, {self.inputs} in, {self.outputs} out, {self.default_rate_hz:g} Hz)"


def _devices(sd) -> list[AudioDevice]:
    apis = [api["name"] for api in sd.query_hostapis()]
    return [
        AudioDevice(
            index=int(d["index"]),
            name=str(d["name"]),
            host_api=apis[d["hostapi"]],
            inputs=int(d["max_input_channels"]),
            outputs=int(d["max_output_channels"]),
            default_rate_hz=float(d["default_samplerate"]),
        )
        for d in sd.query_devices()
    ]


def _available(devices: list[AudioDevice]) -> str:
    if not devices:
        return "PortAudio finds no audio devices (is the sound card connected, or the audio server running?)"
    return "available: " + "; ".join(d.label for d in devices)


def find_device(devices: list[AudioDevice], query: str, api: str | None = None) -> AudioDevice:
    """The one device `query` names: an index, an exact name, or a unique part of a name."""
    pool = [d for d in devices if api is None or api.lower() in d.host_api.lower()]
    if api is not None and not pool:
        raise AudioDeviceError(f"audio:// no host API matches api={api!r}; {_available(devices)}")
    if query.isdigit():
        found = [d for d in pool if d.index == int(query)]
    else:
        text = query.lower()
        found = [d for d in pool if d.name.lower() == text] or [d for d in pool if text in d.name.lower()]
    if not found:
        raise AudioDeviceError(f"no audio device {query!r}; {_available(devices)}")
    if len(found) > 1:
        raise AudioDeviceError(
            f"audio device {query!r} is ambiguous: " + "; ".join(d.label for d in found)
            + "; give its index (audio://N), its full name, or api=..."
        )
    return found[0]


def list_devices(probe: bool = False) -> list[dict]:
    """Audio devices PortAudio sees, for `livctl devices`: URL (by name when the name is unique,
    else by index), name, channels in and out, default rate, host API.

    With `probe`, each device's accepted rates are tested too (PortAudio opens nothing, but asks
    the driver). Raises `AudioDeviceError` when PortAudio is missing.
    """
    sd = sounddevice()
    devices = _devices(sd)
    listing = []
    for d in devices:
        unique = sum(other.name.lower() == d.name.lower() for other in devices) == 1
        entry: dict[str, Any] = {
            "backend": "audio",
            "url": f"audio://{quote(d.name, safe='') if unique else d.index}",
            "description": f"{d.name} ({d.host_api}): {d.inputs} in, {d.outputs} out, {d.default_rate_hz:g} Hz",
            "name": d.name,
            "index": d.index,
            "host_api": d.host_api,
            "inputs": d.inputs,
            "outputs": d.outputs,
            "default_rate_hz": d.default_rate_hz,
        }
        if probe:
            entry["rates_hz"] = _accepted_rates(sd, d, out_channels=min(1, d.outputs), in_channels=min(1, d.inputs))
            entry["status"] = "accepts " + (", ".join(f"{r:g}" for r in entry["rates_hz"]) or "no common rate") + " Hz"
        listing.append(entry)
    return listing


def _accepted_rates(sd, device: AudioDevice, *, out_channels: int, in_channels: int) -> list[float]:
    rates = []
    for rate in sorted(set(COMMON_RATES_HZ) | {int(device.default_rate_hz)}):
        if _rate_error(sd, device, rate, out_channels, in_channels) is None:
            rates.append(float(rate))
    return rates


def _rate_error(sd, device: AudioDevice, rate: float, out_channels: int, in_channels: int) -> str | None:
    try:
        if out_channels:
            sd.check_output_settings(device=device.index, channels=out_channels, samplerate=rate, dtype="float32")
        if in_channels:
            sd.check_input_settings(device=device.index, channels=in_channels, samplerate=rate, dtype="float32")
    except (sd.PortAudioError, ValueError) as exc:
        return str(exc) or type(exc).__name__
    return None


# -- options ------------------------------------------------------------------------------------


def _channel(text: str) -> int:
    """An input or output channel, numbered from 1."""
    return parse_whole(text, 1, MAX_CHANNEL)


def _block(text: str) -> int:
    return parse_whole(text, 16, 8192, "frames")


def _latency(text: str) -> str | float:
    if text.lower() in ("low", "high"):
        return text.lower()
    return parse_number(text, Range(0.0, 2.0, low_open=True), "s", example="low, high or 0.05")


def _level(text: str) -> float:
    """A fraction of full scale, above 0 and at most 1."""
    return parse_number(text, Range(0.0, 1.0, low_open=True), example="0.3")


MAX_CHANNEL = 1024
"""More channels than any sound card has: a larger number is a typing error."""


def default_platform_id(device_name: str) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in device_name.lower()).strip("-")
    return "audio-" + ("-".join(part for part in slug.split("-") if part) or "device")


@dataclass(frozen=True)
class AudioLimits:
    """What an audio platform must know before it drives, all from its calibration.

    `max_level`: the largest output level, fraction of full scale (peak), that the amplifier and
    shaker take safely; None means unknown, and then nothing is driven. `in_g_per_fs`: peak g at a
    full-scale input (the accelerometer's scale through the card's input). `g_per_fs`: peak g per
    unit of drive at the working frequency, for open-loop sessions without an accelerometer.
    """

    max_level: float | None = None
    in_g_per_fs: float | None = None
    g_per_fs: float | None = None


# -- the callbacks --------------------------------------------------------------------------------


class _Command(tuple):
    """What the drive should be: (frequency_hz, level, ramp_s, drive_seq). One writer (the session
    thread) swaps in a new record; the output callback reads the reference once per block. A new
    `drive_seq` means a new level command; frequency changes are taken as they come."""

    __slots__ = ()

    def __new__(cls, frequency_hz: float, level: float, ramp_s: float, drive_seq: int) -> "_Command":
        return tuple.__new__(cls, (frequency_hz, level, ramp_s, drive_seq))


class _Trip:
    """The over-acceleration trip shared by the two callbacks: the input one sets it, the output one
    obeys it. One writer each way (plain attributes, no lock)."""

    __slots__ = ("threshold", "tripped", "peak")

    def __init__(self) -> None:
        self.threshold = math.inf
        """Input full-scale units (peak); inf: not armed."""
        self.tripped = False
        self.peak = 0.0


class _OutputCallback:
    """Fills the output block with the sine on one channel and zeros on the others. Nothing else."""

    def __init__(self, synth: SineSynth, channel: int, ceiling: float, trip: _Trip | None = None):
        self.synth = synth
        self.channel = channel
        self.ceiling = ceiling
        self.trip = trip if trip is not None else _Trip()
        self.command = self._taken = _Command(synth.frequency_hz, 0.0, 0.0, 0)
        self.blocks = 0
        self.underruns = 0

    def __call__(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if status and status.output_underflow:
            self.underruns += 1
        command = self.command
        if command is not self._taken:
            self._take(command)
        if self.trip.tripped and self.synth.amplitude > 0:
            self.synth.cut()  # over the cap: silence at once, until a new level command after the trip
        if self.channel:  # the channels before the amplifier's stay silent
            outdata.fill(0.0)
        self.synth.render_into(outdata[:, self.channel])
        self.blocks += 1

    def _take(self, command: _Command) -> None:
        """Apply a new command record: a new frequency at once, a new level as a ramp, held under the ceiling."""
        frequency_hz, level, ramp_s, drive_seq = command
        synth = self.synth
        if frequency_hz != synth.frequency_hz:
            synth.set_frequency(frequency_hz)
        if drive_seq != self._taken[3]:
            synth.set_amplitude(level if level < self.ceiling else self.ceiling, ramp_s)
        self._taken = command


class _InputCallback:
    """Copies the accelerometer channel (and a second one's, if any) into preallocated rings and
    checks them against the trip."""

    def __init__(self, channel: int, capacity: int, trip: _Trip | None = None, max_block: int = 8192,
                 second: int | None = None):
        self.channels = (channel,) if second is None else (channel, second)
        self.rings = [np.zeros(capacity, dtype=np.float32) for _ in self.channels]
        self.written = 0
        """Frames written since the stream started (the rings hold the last `capacity`)."""
        self.overruns = 0
        self.trip = trip if trip is not None else _Trip()
        self._scratch = np.zeros(max_block, dtype=np.float32)

    @property
    def ring(self) -> np.ndarray:
        return self.rings[0]

    def __call__(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if status and status.input_overflow:
            self.overruns += 1
        capacity = self.rings[0].shape[0]
        start = self.written % capacity
        end = start + frames
        trip = self.trip
        check = trip.threshold < math.inf and frames <= self._scratch.shape[0]
        for ring, channel in zip(self.rings, self.channels):
            if end <= capacity:
                ring[start:end] = indata[:, channel]
            else:
                split = capacity - start
                ring[start:] = indata[:split, channel]
                ring[: end - capacity] = indata[split:, channel]
            if check:
                magnitude = np.abs(indata[:, channel], out=self._scratch[:frames])
                peak = float(magnitude.max())
                if peak > trip.threshold:  # AC-coupled: no gravity to remove
                    trip.peak = peak
                    trip.tripped = True
        self.written += frames


# -- the platform ---------------------------------------------------------------------------------


class AudioPlatform(Platform):
    """A sound card's output driving an amplifier and shaker, with the accelerometer (if any) on
    one of its inputs; the drive ceiling and the trip are enforced inside the audio callbacks."""

    kind = "audio"
    simulated = False
    gravity_on_vertical = False  # audio inputs are AC-coupled

    OPTIONS = {
        "out": _channel,
        "in": _channel,
        "in2": _channel,
        "rate": positive_float,
        "block": _block,
        "latency": _latency,
        "api": str,
        "max_level": _level,
        "in_g_per_fs": positive_float,
        "g_per_fs": positive_float,
        "id": platform_id_option,
    }
    DEFAULTS = {"out": 1, "in": None, "in2": None, "rate": None, "block": 256, "latency": "high", "api": None,
                "max_level": None, "in_g_per_fs": None, "g_per_fs": None, "id": None}

    def __init__(
        self,
        url: str,
        device: AudioDevice,
        *,
        rate_hz: float,
        out_channel: int,
        in_channel: int | None,
        block: int,
        in2_channel: int | None = None,
        latency: str | float,
        limits: AudioLimits,
        platform_id: str,
    ):
        super().__init__(url, RealClock())
        self.device = device
        self.rate_hz = float(rate_hz)
        self.out_channel = out_channel
        self.in_channel = in_channel
        self.in2_channel = in2_channel
        self.sensor_count = 2 if in2_channel is not None else 1
        self.block = block
        self.latency = latency
        self.limits = limits
        self._platform_id = platform_id
        self.has_sensor = in_channel is not None
        self.has_device_trip = self.has_sensor
        self._in_scale_mps2 = g_to_mps2(limits.in_g_per_fs) if limits.in_g_per_fs else None
        if self._in_scale_mps2:
            self.sensor_range_mps2 = self._in_scale_mps2  # a full-scale input is clipped
            self.sample_format = ("float32", self._in_scale_mps2)  # the card's float32 samples
        self.full_scale_drive = limits.max_level or 0.0
        self._trip = _Trip()
        self._trip_reported = False
        self._streams: list[Any] = []
        self._output: _OutputCallback | None = None
        self._input: _InputCallback | None = None
        self._read_pos: int | None = None
        self._frequency_hz = 30.0
        self._level = 0.0
        self._ramp_s = 0.0
        self._drive_seq = 0
        self._lost_reads = 0
        """Stretches of input lost because `read` fell behind the ring (the callback's own counter has one writer)."""
        self._gone: str | None = None
        self._switch_interval: float | None = None

    @classmethod
    def from_url(cls, parsed: DeviceURL, *, speed: float | None = None) -> "AudioPlatform":
        o = parsed.take(cls.OPTIONS, cls.DEFAULTS)
        query = unquote(parsed.location).strip("/")
        if o["in"] is not None and o["in_g_per_fs"] is None:
            raise DeviceURLError(
                "audio:// with an accelerometer input (in=N) needs its scale: in_g_per_fs=G "
                "(peak g at a full-scale input, from the platform's calibration)"
            )
        sd = sounddevice()
        devices = _devices(sd)
        if not query:
            raise AudioDeviceError(f"audio:// names no device; use audio://NAME or audio://INDEX; {_available(devices)}")
        device = find_device(devices, query, o["api"])
        if device.outputs < o["out"]:
            raise AudioDeviceError(
                f"audio device {device.name!r} has {device.outputs} output channel(s); out={o['out']} is not one "
                f"of them" + (f" (choose 1-{device.outputs})" if device.outputs else "")
            )
        if o["in2"] is not None and (o["in"] is None or o["in2"] == o["in"]):
            raise DeviceURLError(
                "audio:// in2=N is a second accelerometer's input: give the first's as in=N too, on another channel"
            )
        for name in ("in", "in2"):
            if o[name] is not None and device.inputs < o[name]:
                raise AudioDeviceError(
                    f"audio device {device.name!r} has {device.inputs} input channel(s); {name}={o[name]} is not one "
                    f"of them" + (f" (choose 1-{device.inputs})" if device.inputs else "")
                )
        rate = o["rate"] if o["rate"] is not None else device.default_rate_hz
        in_channels = max(o["in"] or 0, o["in2"] or 0)
        refused = _rate_error(sd, device, rate, o["out"], in_channels)
        if refused is not None:
            accepted = _accepted_rates(sd, device, out_channels=o["out"], in_channels=in_channels)
            listed = ", ".join(f"{r:g}" for r in accepted) or "none of the common rates"
            raise AudioDeviceError(
                f"audio device {device.name!r} refuses rate={rate:g} Hz ({refused}); it accepts {listed} Hz"
            )
        limits = AudioLimits(max_level=o["max_level"], in_g_per_fs=o["in_g_per_fs"], g_per_fs=o["g_per_fs"])
        return cls(
            parsed.url,
            device,
            rate_hz=rate,
            out_channel=o["out"],
            in_channel=o["in"],
            in2_channel=o["in2"],
            block=o["block"],
            latency=o["latency"],
            limits=limits,
            platform_id=o["id"] or default_platform_id(device.name),
        )

    # -- identity -------------------------------------------------------------------------------

    @property
    def platform_id(self) -> str:
        return self._platform_id

    @property
    def sensor_rate_hz(self) -> float:
        return self.rate_hz

    def _apply_drive_limit(self, ceiling: float) -> None:
        """The ceiling is `max_level` (full scale here), lowered by a calibration's largest safe drive."""
        if self._output is not None:
            self._output.ceiling = ceiling

    def _apply_trip(self, threshold_mps2: float) -> None:
        self._trip.threshold = threshold_mps2 / self._in_scale_mps2

    @property
    def open_loop_gain_mps2_per_drive(self) -> float | None:  # type: ignore[override]
        return g_to_mps2(self.limits.g_per_fs) if self.limits.g_per_fs else None

    @property
    def description(self) -> str:
        d = self.device
        ceiling = f"{100 * self.max_drive:g} % of full scale" if self.limits.max_level else "unknown"
        if self.has_sensor:
            sensor = f"accelerometer on input {self.in_channel} ({self.limits.in_g_per_fs:g} g per full scale)"
            if self.in2_channel is not None:
                sensor += f", a second on input {self.in2_channel}"
        elif self.limits.g_per_fs:
            sensor = f"no accelerometer: open loop at {self.limits.g_per_fs:g} g per full scale"
        else:
            sensor = "no accelerometer"
        return (
            f"audio device {d.name!r} ({d.host_api}), output {self.out_channel} at {self.rate_hz:g} Hz, "
            f"{self.block}-frame blocks, drive ceiling {ceiling}; {sensor}"
        )

    # -- streams --------------------------------------------------------------------------------

    def open(self) -> None:
        if not self.limits.max_level:
            raise DriveCeilingMissing(
                f"{self.url}: no drive ceiling is known for this audio platform, so it will not be driven; "
                "give max_level=FRACTION (largest safe output level, from its calibration)"
            )
        if self._streams:
            return
        sd = sounddevice()
        self._read_pos = None
        synth = SineSynth(self.rate_hz, self._frequency_hz, max_block=max(self.block, 4096))
        self._output = _OutputCallback(synth, self.out_channel - 1, self.max_drive, self._trip)
        if self.in_channel is not None:
            self._input = _InputCallback(self.in_channel - 1, int(RING_S * self.rate_hz), self._trip, max(self.block, 8192),
                                         second=None if self.in2_channel is None else self.in2_channel - 1)
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, SWITCH_INTERVAL_S))
        try:
            common = dict(device=self.device.index, samplerate=self.rate_hz, blocksize=self.block,
                          latency=self.latency, dtype="float32")
            self._streams.append(sd.OutputStream(channels=self.out_channel, callback=self._output, **common))
            if self._input is not None:
                channels = max(self.in_channel, self.in2_channel or 0)
                self._streams.append(sd.InputStream(channels=channels, callback=self._input, **common))
            for stream in self._streams:
                stream.start()
        except (sd.PortAudioError, ValueError) as exc:
            self._close_streams()
            raise DeviceOpenError(
                f"cannot open audio device {self.device.name!r}: {exc}; check that no other program holds it "
                "and that it takes these settings (`livctl devices --probe`)"
            ) from None
        if self._input is not None:
            source, settle = self._input, int(INPUT_SETTLE_S * self.rate_hz)
            try:
                self._wait_for(lambda: source.written >= settle, INPUT_SETTLE_S)
            except PlatformError:
                self.close()
                raise

    def close(self) -> None:
        if self._output is not None:
            self.cut_drive()
        self._close_streams()

    def _close_streams(self) -> None:
        streams, self._streams = self._streams, []
        if self._gone is None:
            for stream in streams:
                try:
                    stream.abort()
                    stream.close()
                except Exception:  # noqa: BLE001 - closing must not hide why the session ended
                    pass
        elif streams:
            # PortAudio's JACK host asserts (and kills the process) when it closes a stream whose
            # server has gone, at close() or in its own exit handler. Such a stream is dead anyway:
            # leave it to the operating system.
            sd = sys.modules.get("sounddevice")
            if sd is not None:
                atexit.unregister(sd._exit_handler)
        if self._switch_interval is not None:
            sys.setswitchinterval(self._switch_interval)
            self._switch_interval = None

    # -- drive ----------------------------------------------------------------------------------

    def set_frequency(self, frequency_hz: float) -> None:
        if not (math.isfinite(frequency_hz) and 0 < frequency_hz < 0.5 * self.rate_hz):
            raise UsageError(f"frequency {frequency_hz:g} Hz is outside 0-{0.5 * self.rate_hz:g} Hz at this rate")
        self._frequency_hz = float(frequency_hz)
        self._publish(self._level, self._ramp_s, self._drive_seq)

    def _set_drive(self, level: float, ramp_s: float) -> None:
        if level > 0 and not self.limits.max_level:
            raise PlatformError(f"{self.url}: no drive ceiling known; refusing to drive")
        if level > 0 and self._trip.tripped:  # a new level after a trip: the host has been told
            self._trip.tripped = self._trip_reported = False
        self._drive_seq += 1
        self._publish(level, ramp_s, self._drive_seq)

    def _cut_drive(self) -> None:
        self._drive_seq += 1
        self._publish(0.0, 0.0, self._drive_seq)

    def _publish(self, level: float, ramp_s: float, seq: int) -> None:
        self._level, self._ramp_s = level, ramp_s
        if self._output is not None:
            self._output.command = _Command(self._frequency_hz, level, ramp_s, seq)

    # -- samples --------------------------------------------------------------------------------

    def read(self, duration_s: float) -> SampleBlock:
        if self._input is None:
            raise PlatformError(f"{self.url} has no accelerometer input (in=N); it can only run open loop")
        source = self._input
        rate = self.rate_hz
        n = max(1, int(round(duration_s * rate)))
        if self._read_pos is None:
            self._read_pos = source.written  # samples from now on: nothing recorded before the first read
        start = self._read_pos
        self._wait_for(lambda: source.written >= start + n, n / rate)
        capacity = source.ring.shape[0]
        if source.written - start > capacity:
            # the reader fell behind by more than the ring: count the lost stretch and resume at the newest
            self._lost_reads += 1
            start = source.written - n
        first = start % capacity
        idx = (first + np.arange(n)) % capacity if first + n > capacity else slice(first, first + n)
        accel = np.zeros((n, 3), dtype=np.float64)
        np.multiply(source.rings[0][idx], self._in_scale_mps2, out=accel[:, 2])
        second = None
        if len(source.rings) > 1:
            second = np.zeros((n, 3), dtype=np.float64)
            np.multiply(source.rings[1][idx], self._in_scale_mps2, out=second[:, 2])
        self._read_pos = start + n
        if self._trip.tripped and not self._trip_reported:
            self._trip_reported = True
            raise DeviceTripped(
                f"the audio input read {mps2_to_g(self._trip.peak * self._in_scale_mps2):.2f} g, over the "
                f"{mps2_to_g(self.trip_mps2):.2f} g trip: the output was cut in the next audio block"
            )
        return SampleBlock(t0_s=start / rate, rate_hz=rate, accel_mps2=accel, second_mps2=second)

    def wait(self, duration_s: float) -> float:
        if self._input is not None:
            return self.read(duration_s).t0_s
        output = self._check_open()
        blocks = output.blocks
        t0 = output.blocks * self.block / self.rate_hz
        target = blocks + max(1, int(round(duration_s * self.rate_hz / self.block)))
        self._wait_for(lambda: output.blocks >= target, duration_s)
        return t0

    def _check_open(self) -> _OutputCallback:
        if self._output is None or not self._streams:
            raise PlatformError(f"{self.url} is not open")
        return self._output

    def _wait_for(self, ready, expected_s: float) -> None:
        """Sleep until `ready()`; a stream that stops, or stalls past `expected_s + STALL_S`, is a lost device."""
        self._check_open()
        deadline = time.monotonic() + expected_s + STALL_S
        while not ready():
            self._check_streams()
            if time.monotonic() > deadline:
                self._lost(f"no audio for {expected_s + STALL_S:.1f} s")
            time.sleep(POLL_S)

    def _check_streams(self) -> None:
        if self._gone is not None:
            raise PlatformError(self._gone)
        for stream in self._streams:
            if not stream.active:
                self._lost("its stream stopped")

    def _lost(self, detail: str) -> None:
        self._gone = (
            f"audio device {self.device.name!r} stopped delivering ({detail}): it was disconnected, "
            "or its audio server stopped"
        )
        raise PlatformError(self._gone)

    @property
    def stream_breaks(self) -> int:
        return (self._input.overruns if self._input else 0) + self._lost_reads

    def stream_health(self) -> dict[str, int]:
        return {
            "output_underruns": self._output.underruns if self._output else 0,
            "input_overruns": (self._input.overruns if self._input else 0) + self._lost_reads,
        }


PLATFORM = AudioPlatform
