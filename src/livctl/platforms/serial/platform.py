"""`serial://`: a platform whose controller board speaks the livctl platform protocol over serial.

    serial:///dev/ttyUSB0?baud=921600&watchdog_s=0.5&stall_s=1.0

Options: `baud` (921600), `watchdog_s` (0.5: the board ramps its output to zero when it hears no
heartbeat for this long; livctl sends one every fifth of it), `stall_s` (1.0: no valid samples
for this long ends the session). See docs/protocol.md for the protocol and docs/serial.md for
how this backend uses it.

Opening identifies the board (`*IDN?`), checks the protocol version (1.1 or later: a board that
cannot enforce a drive limit and an over-acceleration trip of its own is refused), resets it, and
starts the sample stream. The drive ceiling livctl sets (`limit_drive`) goes to the board as
`SOURce:LIMit`, the trip (`arm_trip`) as `SENSe:TRIP`, each read back. Samples arrive in checksummed frames; a lost or damaged frame becomes NaN samples
of its exact length (the session sets such a block aside), never acceleration. A fault the board reports (watchdog, interlock, restart), a silent link, a
dead port or a board driving above what livctl commanded raises PlatformError once. Reads return
by their deadline whatever happens (an empty block when no samples came), so the session's own
interlocks keep running and a ramp-down is still paced and logged. Every call has a deadline.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import queue
import time
from collections import deque

import numpy as np

from livctl.platforms import DeviceURL, Platform, SampleBlock
from livctl.platforms.serial.link import SerialLink, open_port
from livctl.platforms.serial.protocol import (
    AXES,
    HEADER,
    LOAD_MINOR,
    DecoderStats,
    POWER_ON,
    PROTOCOL_MAJOR,
    PROTOCOL_MINOR,
    SENSOR_FAULT,
    STREAMING,
    Fault,
    Frame,
    SampleAssembler,
    Samples,
)
from livctl.clock import RealClock
from livctl.errors import DeviceOpenError, DeviceTripped, DeviceURLError, PlatformError
from livctl.inputs import Range, parse_number, parse_whole
from livctl.units import g_to_mps2, mps2_to_g

_log = logging.getLogger(__name__)

DEFAULT_BAUD = 921600
MANUFACTURER = "LIVCTL"
"""The first field of a livctl platform's *IDN? (docs/protocol.md); the model names whose board it is."""
FRAMES_PER_S = 100
"""The stream's frame rate: samples per frame = sensor rate / 100 (10 ms of latency)."""
DRIVE_TOLERANCE = 0.002
"""How far (fraction of full scale) the drive a frame reports may exceed what livctl commanded."""
DRIVE_SETTLE_S = 0.5
"""After a change, the previous level stays allowed this long past the ramp (frames in flight)."""
LOSSY_GAPS = 3
LOSSY_SPAN_S = 5.0
"""A link with this many gaps within this span of samples is failing: most windows would be lost."""
READ_GRACE_S = 0.2
"""A read returns this long after its samples were due at the latest, with what came."""
DIAGNOSE_AFTER_S = 0.25
"""After this long without samples the board is asked why (STATus:CONDition?)."""


def _baud(text: str) -> int:
    """A baud rate such as 115200 or 921600."""
    return parse_whole(text, 300, 20_000_000, "baud")


def _watchdog_s(text: str) -> float:
    return parse_number(text, Range(0.1, 10.0), "s", example="1")


def _stall_s(text: str) -> float:
    return parse_number(text, Range(0.2, 60.0), "s", example="2")


def _baud_for(bytes_per_s: float) -> int:
    """The smallest common baud rate that carries `bytes_per_s` at 80 % of the line."""
    for baud in (115200, 230400, 460800, 921600, 1000000, 2000000, 3000000, 4000000, 12000000):
        if bytes_per_s <= 0.8 * baud / 10:
            return baud
    return 20_000_000


def _idn(line: str) -> list[str]:
    fields = [f.strip() for f in line.split(",")]
    if len(fields) != 4 or not all(fields[:2]):
        raise ValueError(line)
    return fields


def _version(line: str) -> tuple[int, int]:
    major, dot, minor = line.strip().partition(".")
    if not (dot and major.isdigit() and minor.isdigit()):
        raise ValueError(line)
    return int(major), int(minor)


def _numbers(count: int):
    def parse(line: str) -> list[float]:
        values = [float(v) for v in line.split(";")]
        if len(values) != count or not all(math.isfinite(v) for v in values):
            raise ValueError(line)
        return values

    return parse


def _model_and_range(line: str) -> tuple[str, float]:
    model, semicolon, range_g = line.rpartition(";")
    value = float(range_g)
    if not (semicolon and model and value > 0 and math.isfinite(value)):
        raise ValueError(line)
    return model, value


def _error(line: str) -> tuple[int, str]:
    code, comma, message = line.partition(",")
    if not comma or not message.startswith('"'):
        raise ValueError(line)
    return int(code), message.strip('"')


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(1.0, abs(b))


class SerialPlatform(Platform):
    """A controller board on a serial port (docs/protocol.md); time is the host's real time."""

    kind = "serial"
    has_device_trip = True

    OPTIONS = {"baud": _baud, "watchdog_s": _watchdog_s, "stall_s": _stall_s}
    DEFAULTS = {"baud": DEFAULT_BAUD, "watchdog_s": 0.5, "stall_s": 1.0}

    def __init__(self, url: str, port: str, *, baud: int, watchdog_s: float, stall_s: float):
        super().__init__(url, RealClock())
        self.port = port
        self.baud = baud
        self.watchdog_s = watchdog_s
        self.stall_s = stall_s
        self.identity: list[str] | None = None
        self.protocol: tuple[int, int] | None = None
        self.sensor_model = "?"
        self._rate_hz = 0.0
        self._scale = 0.0
        self._link: SerialLink | None = None
        self._assembler: SampleAssembler | None = None
        self._events: queue.SimpleQueue[Samples | Fault] = queue.SimpleQueue()
        self._pending: Samples | None = None
        self._cursor = 0
        self._failed = False
        self._last_samples_s = 0.0
        self._drive_target = 0.0
        self._drive_high = 0.0
        self._drive_high_until_s = 0.0
        self._overdrive_reported = False
        self._gaps: deque[int] = deque()
        self._asked_why = False
        self._bad_frames_at_samples = 0
        self._noise_at_samples = 0
        self._link_stats = DecoderStats()

    @classmethod
    def from_url(cls, parsed: DeviceURL, *, speed: float | None = None) -> "SerialPlatform":
        if not parsed.location:
            raise DeviceURLError("serial:// needs a port: serial:///dev/ttyUSB0 (`livctl devices` lists them)")
        o = parsed.take(cls.OPTIONS, cls.DEFAULTS)
        return cls(parsed.url, parsed.location, **o)

    # -- identity ----------------------------------------------------------------------------------

    @property
    def platform_id(self) -> str:
        if self.identity is None:
            return f"serial:{self.port}"
        return f"{self.identity[1]}-{self.identity[2]}"

    @property
    def sensor_rate_hz(self) -> float:
        return self._rate_hz

    @property
    def description(self) -> str:
        if self.identity is None:
            return self.url
        _, model, serial_number, firmware = self.identity
        major, minor = self.protocol
        return (
            f"{model} {serial_number} (firmware {firmware}, protocol {major}.{minor}), "
            f"{self.sensor_model} at {self._rate_hz:g} Hz, on {self.port}"
        )

    @property
    def link(self) -> SerialLink | None:
        return self._link

    @property
    def assembler(self) -> SampleAssembler | None:
        return self._assembler

    # -- open and close ------------------------------------------------------------------------------

    def open(self) -> None:
        link = SerialLink(open_port(self.port, self.baud), on_frame=self._on_frame)
        self._link_stats = link.decoder.stats
        try:
            self._start(link)
        except PlatformError as exc:
            link.close()
            raise DeviceOpenError(f"{self.port}: {exc}") from None
        except BaseException:
            link.close()
            raise
        self._link = link

    def _start(self, link: SerialLink) -> None:
        link.port.reset_input_buffer()
        link.send("")  # ends whatever partial line the board may hold
        try:
            self.identity = link.query("*IDN?", _idn, timeout_s=1.0, attempts=2)
        except PlatformError:
            raise DeviceOpenError(
                f"no answer to *IDN? from {self.port} at {self.baud} baud: is it a livctl platform, switched on, "
                "and set to this baud rate?"
            ) from None
        idn = ",".join(self.identity)
        if self.identity[0] != MANUFACTURER:
            raise DeviceOpenError(
                f"{self.port} is not a livctl platform: it identifies as {idn!r} (a livctl platform's *IDN? "
                f"names {MANUFACTURER} first, whatever protocol it claims)"
            )
        try:
            self.protocol = link.query("SYST:PROT?", _version, timeout_s=0.5, attempts=2)
            if self.protocol[0] != PROTOCOL_MAJOR:  # ask again: a damaged digit must not refuse a good board
                self.protocol = link.query("SYST:PROT?", _version, timeout_s=0.5, attempts=2)
        except PlatformError:
            raise DeviceOpenError(
                f"{self.port} is not a livctl platform: it identifies as {idn!r} but does not answer SYSTem:PROTocol?"
            ) from None
        major, minor = self.protocol
        if major != PROTOCOL_MAJOR:
            raise DeviceOpenError(
                f"{self.port} ({idn}) speaks livctl platform protocol {major}.{minor}; this livctl speaks "
                f"{PROTOCOL_MAJOR}.x: update livctl or the platform's firmware so they match"
            )
        if minor < PROTOCOL_MINOR:
            raise DeviceOpenError(
                f"{self.port} ({idn}) speaks protocol {major}.{minor}, which cannot enforce a drive limit or "
                f"cut its own output on over-acceleration; livctl drives only boards of protocol "
                f"{PROTOCOL_MAJOR}.{PROTOCOL_MINOR} or later: update the platform's firmware"
            )
        rate, scale = link.query("*RST;*CLS;:SENS:RATE?;SCAL?", _numbers(2), timeout_s=0.5)
        self.sensor_model, range_g = link.query("SENS:MOD?;RANG?", _model_and_range, timeout_s=0.5)
        self.sensor_range_mps2 = g_to_mps2(range_g)
        if not (rate > 0 and scale > 0):
            raise DeviceOpenError(f"{self.port} reports a sample rate of {rate:g} Hz and a scale of {scale:g}")
        sensors = link.query("SENS:SENS?", int, timeout_s=0.5) if minor >= LOAD_MINOR else 1
        self._check_bandwidth(rate, sensors)
        if link.query("SYST:INT?", str.strip, timeout_s=0.5).upper() != "CLOSED":
            raise DeviceOpenError(
                f"the interlock of {self.port} is open: close it (guard, lid, emergency stop) before a session"
            )
        self._rate_hz, self._scale = rate, scale
        if minor >= LOAD_MINOR:  # 1.2: a second accelerometer, and a load cell, where the board has them
            if sensors >= 2:
                self._set("SENS:CHAN 2", "SENS:CHAN?", [2], link=link)
                self.sensor_count = 2
            self.has_load_cell = link.query("SENS:LOAD?", float, timeout_s=0.5) >= 0
        self.sample_format = ("int16" if range_g / mps2_to_g(scale) < 2**15 - 1 else "int32", scale)  # frame counts
        self._send_limit(link, self.max_drive)
        if math.isfinite(self.trip_mps2):
            self._send_trip(link, self.trip_mps2)
        block = max(1, round(rate / FRAMES_PER_S))
        self._assembler = SampleAssembler(rate, scale)
        self._last_samples_s = time.monotonic()
        settings = link.query(
            f"SYST:WATC {self.watchdog_s:.9g};:STR:BLOC {block};:STR ON;:SYST:WATC?;:STR:BLOC?;:STR?",
            _numbers(3),
            timeout_s=0.5,
        )
        if not (_same(settings[0], self.watchdog_s) and settings[1] == block and settings[2] == 1):
            raise PlatformError(f"it did not take the stream settings (it reports {settings})")
        link.heartbeat_period_s = self.watchdog_s / 5

    def _check_bandwidth(self, rate_hz: float, sensors: int = 1) -> None:
        block = max(1, round(rate_hz / FRAMES_PER_S))
        frame_bytes = 2 + 3 + HEADER.size + 4 + block * sensors * AXES * 4 + 4 + 1
        needed = rate_hz / block * frame_bytes
        available = self.baud / 10  # 8 data bits, a start and a stop bit
        if needed > 0.8 * available:
            raise DeviceOpenError(
                f"{self.port} sends {rate_hz:g} Hz x {3 * sensors} axes, about {needed / 1000:.0f} kB/s, more than "
                f"{self.baud} baud carries ({available / 1000:.0f} kB/s); use baud={_baud_for(needed)} or faster"
            )

    def close(self) -> None:
        """Stop the output and the stream, and release the port (best effort: the board's watchdog
        stops the output anyway once the heartbeats end)."""
        link = self._link
        if link is None:
            return
        self._link = None
        if not link.dead:
            try:
                link.query("OUTP OFF;:STR OFF;:OUTP?", _numbers(1), timeout_s=0.3, attempts=2)
            except PlatformError:
                pass
        link.close()

    # -- drive -----------------------------------------------------------------------------------------

    def set_frequency(self, frequency_hz: float) -> None:
        self._set(f"SOUR:FREQ {frequency_hz:.9g}", "FREQ?", [frequency_hz])

    def _apply_drive_limit(self, ceiling: float) -> None:
        if self._link is not None:
            self._send_limit(self._link, ceiling)

    def _apply_trip(self, threshold_mps2: float) -> None:
        if self._link is not None:
            self._send_trip(self._link, threshold_mps2)

    def _send_limit(self, link: SerialLink, ceiling: float) -> None:
        self._set(f"SOUR:LIM {ceiling:.9g}", "LIM?", [float(f"{ceiling:.9g}")], link=link)

    def _send_trip(self, link: SerialLink, threshold_mps2: float) -> None:
        threshold_g = min(mps2_to_g(threshold_mps2), mps2_to_g(self.sensor_range_mps2))
        self._set(f"SENS:TRIP {threshold_g:.6g}", "TRIP?", [float(f"{threshold_g:.6g}")], link=link)

    def _set_drive(self, level: float, ramp_s: float) -> None:
        self._allow_drive(level, ramp_s)
        if level > 0:
            self._set(f"SOUR:RAMP {ramp_s:.9g};AMPL {level:.9g};:OUTP ON", "SOUR:RAMP?;AMPL?;:OUTP?", [ramp_s, level, 1])
        else:
            self._set(f"SOUR:RAMP {ramp_s:.9g};AMPL 0", "RAMP?;AMPL?", [ramp_s, 0.0])

    def _cut_drive(self) -> None:
        self._allow_drive(0.0, 0.0)
        self._set("OUTP OFF", "OUTP?", [0])

    def _set(self, command: str, query: str, expected: list[float], link: SerialLink | None = None) -> None:
        """Send a setting with its read-back; retry when the answer differs (a damaged command)."""
        link = link or self._require_link()
        reported = None
        for _ in range(3):
            reported = link.query(f"{command};{query}", _numbers(len(expected)))
            if all(_same(r, e) for r, e in zip(reported, expected)):
                return
            refusal = self._refusal(link)
            if refusal:
                raise PlatformError(f"the platform refused {command!r}: {refusal}")
            _log.debug("the platform read back %s for %r; sending it again", reported, command)
        raise PlatformError(f"the platform did not confirm {command!r}: it reports {reported}")

    @staticmethod
    def _refusal(link: SerialLink) -> str | None:
        """The first execution error (-2xx) in the board's error queue, if any."""
        for _ in range(20):
            code, message = link.query("SYST:ERR?", _error)
            if code == 0:
                return None
            if -299 <= code <= -200:
                return f'{code},"{message}"'
        return None

    def _allow_drive(self, level: float, ramp_s: float) -> None:
        now = time.monotonic()
        self._drive_high = max(self._drive_limit(now), level)
        self._drive_target = level
        self._drive_high_until_s = now + ramp_s + DRIVE_SETTLE_S

    def _drive_limit(self, now: float) -> float:
        return self._drive_high if now < self._drive_high_until_s else self._drive_target

    # -- samples -----------------------------------------------------------------------------------

    def _on_frame(self, frame: Frame) -> None:
        """Called in the reader thread for every valid frame."""
        assembler = self._assembler
        if assembler is None:
            return  # a frame from before this session started its stream
        now = time.monotonic()
        limit = self._drive_limit(now)
        if frame.drive > limit + DRIVE_TOLERANCE and not self._overdrive_reported:
            self._overdrive_reported = True
            self._events.put(Fault(
                f"the platform drives at {frame.drive:.3f} of full scale, above the {limit:.3f} livctl commanded",
                cut=True,
            ))
        for event in assembler.feed(frame):
            if isinstance(event, Samples):
                # when the frame came off the port, on the platform's clock: the clock check, free of read latency
                arrived_s = self.clock.now() - (time.monotonic() - self._link.arrived_s) if self._link else self.clock.now()
                event = dataclasses.replace(event, arrived_s=arrived_s)
                self._last_samples_s = now  # progress: what the stall check watches
                self._bad_frames_at_samples = self._link_stats.bad_frames
                self._noise_at_samples = self._link_stats.noise_bytes
            self._events.put(event)

    def read(self, duration_s: float) -> SampleBlock:
        """The next `duration_s` of samples, by its deadline: samples that went missing on the link
        are NaN; when none came at all (a silent sensor), the block is empty. Time moves on by
        `duration_s` either way."""
        link = self._require_link()
        rate = self._rate_hz
        first = self._cursor
        last = int(math.floor((first / rate + duration_s) * rate + 0.5))
        out = np.empty((last - first, AXES * self.sensor_count))
        loads: list[float] = []
        arrived_s: float | None = None
        deadline = time.monotonic() + duration_s + READ_GRACE_S
        try:
            while self._cursor < last:
                link.beat_if_due()
                if self._pending is None:
                    self._pending = self._next_samples(deadline)
                    if self._pending is None:  # due and not here
                        break
                    if self._pending.lost and not self._failed:
                        self._note_gap(self._pending.index)
                chunk = self._pending
                offset = self._cursor - chunk.index  # >= 0: the assembler's stream has no holes
                take = min(chunk.accel_mps2.shape[0] - offset, last - self._cursor)
                if take > 0:
                    out[self._cursor - first : self._cursor - first + take] = chunk.accel_mps2[offset : offset + take]
                    self._cursor += take
                    if not chunk.lost:
                        loads.append(chunk.load_kg)
                        arrived_s = chunk.arrived_s if math.isfinite(chunk.arrived_s) else None
                if offset + max(take, 0) >= chunk.accel_mps2.shape[0]:
                    self._pending = None
        except PlatformError:
            self._failed = True
            raise
        arrived = self._cursor - first
        if arrived < last - first:
            arrived_s = None  # the block's last samples never came: no arrival to time
        self._cursor = last
        if arrived == 0:
            out = out[:0]
        else:
            out[arrived:] = np.nan
        load = float(np.mean(loads)) if self.has_load_cell and loads else None
        if self.sensor_count == 2:
            return SampleBlock(t0_s=first / rate, rate_hz=rate, accel_mps2=out[:, :AXES], second_mps2=out[:, AXES:],
                               load_kg=load, arrived_s=arrived_s)
        return SampleBlock(t0_s=first / rate, rate_hz=rate, accel_mps2=out, load_kg=load, arrived_s=arrived_s)

    def _next_samples(self, deadline: float) -> Samples | None:
        """The next samples from the reader thread, or None once `deadline` has passed."""
        while True:
            try:
                event = self._events.get(timeout=0.02)
            except queue.Empty:
                link = self._require_link()
                if link.dead:
                    raise link.lost() from None
                if not self._failed:
                    self._check_silence()
                if time.monotonic() >= deadline:
                    return None
                link.beat_if_due()
                continue
            if isinstance(event, Fault):
                if event.cut:
                    self._cut_quietly()
                raise (DeviceTripped if event.tripped else PlatformError)(event.message)
            self._asked_why = False
            return event

    def _note_gap(self, index: int) -> None:
        self._gaps.append(index)
        while index - self._gaps[0] > LOSSY_SPAN_S * self._rate_hz:
            self._gaps.popleft()
        if len(self._gaps) >= LOSSY_GAPS:
            lost_s = self._assembler.stats.lost_samples / self._rate_hz
            raise PlatformError(
                f"the serial link is losing data: {len(self._gaps)} gaps within {LOSSY_SPAN_S:g} s of samples "
                f"({lost_s:.2f} s of samples lost so far); check the cable, its length and the baud rate"
            )

    def _check_silence(self) -> None:
        """Raise PlatformError when the samples stopped for a reason the board (or the link) gives,
        or for longer than `stall_s`; a short silence with the board streaming is left to the caller."""
        silent_s = time.monotonic() - self._last_samples_s
        if silent_s >= self.stall_s or (silent_s >= DIAGNOSE_AFTER_S and not self._asked_why):
            self._asked_why = True
            reason = self._diagnose_silence(silent_s)
            if reason is None and silent_s >= self.stall_s:
                d = self._require_link().decoder.stats
                reason = (
                    f"no valid samples for {silent_s:.1f} s ({d.bad_frames} damaged frames and {d.noise_bytes} "
                    "bytes of noise on the link so far)"
                )
            if reason is not None:
                raise PlatformError(reason)

    def _diagnose_silence(self, silent_s: float) -> str | None:
        """Why no samples came for `silent_s`, when it is clear; None when the board says all is well."""
        link = self._require_link()
        try:
            status = link.query("STAT:COND?", int, timeout_s=0.3, attempts=2)
        except PlatformError:
            if link.dead:
                return str(link.lost())
            return (
                f"the platform went silent: no samples and no answer for {silent_s + 0.6:.1f} s "
                "(link lost, or the platform hung)"
            )
        damaged = self._link_stats.bad_frames - self._bad_frames_at_samples
        noise = self._link_stats.noise_bytes - self._noise_at_samples
        if damaged or noise > 64:  # bytes keep coming, but no whole frame: the link, not the board
            return (
                f"the serial link is corrupting data: {damaged} damaged frames, {noise} bytes of noise and no valid "
                f"samples for {silent_s:.2f} s; check the cable, its length and the baud rate"
            )
        if status & POWER_ON:
            return "the platform restarted (power-on reset) during the session: its output is off"
        if status & SENSOR_FAULT:
            return f"the platform's accelerometer stalled: no samples for {silent_s:.2f} s"
        if not status & STREAMING:
            return "the platform stopped streaming samples"
        return None

    def _cut_quietly(self) -> None:
        try:
            self.cut_drive()
        except PlatformError:
            pass

    def _require_link(self) -> SerialLink:
        if self._link is None:
            raise PlatformError(f"{self.port} is not open")
        return self._link


PLATFORM = SerialPlatform


# -- `livctl devices` -------------------------------------------------------------------------------


def list_devices(probe: bool) -> list[dict]:
    """Serial ports on this machine; with `probe`, each is asked `*IDN?` (0.5 s at most)."""
    from serial.tools import list_ports

    rows = []
    for info in sorted(list_ports.comports(), key=lambda p: p.device):
        description = info.description if info.description and info.description != "n/a" else "serial port"
        row = {"url": f"serial://{info.device}", "description": description}
        if info.hwid and info.hwid != "n/a":
            row["hardware_id"] = info.hwid
        if probe:
            row.update(probe_port(info.device))
        rows.append(row)
    return rows


def probe_port(path: str, baud: int = DEFAULT_BAUD, timeout_s: float = 0.5) -> dict:
    """Ask a port who it is, without changing anything on it: `identity`, `protocol`, `status`."""
    try:
        link = SerialLink(open_port(path, baud))
    except DeviceOpenError as exc:
        return {"identity": None, "protocol": None, "status": str(exc)}
    try:
        link.send("")
        identity = ",".join(link.query("*IDN?", _idn, timeout_s=timeout_s, attempts=1))
    except PlatformError:
        link.close()
        return {"identity": None, "protocol": None, "status": f"no answer to *IDN? at {baud} baud"}
    try:
        major, minor = link.query("SYST:PROT?", _version, timeout_s=timeout_s, attempts=1)
    except PlatformError:
        return {"identity": identity, "protocol": None, "status": "not a livctl platform"}
    finally:
        link.close()
    usable = major == PROTOCOL_MAJOR and minor >= PROTOCOL_MINOR
    status = (
        "livctl platform" if usable
        else f"livctl platform, protocol {major}.{minor} (this livctl drives {PROTOCOL_MAJOR}.{PROTOCOL_MINOR} or later)"
    )
    return {"identity": identity, "protocol": f"{major}.{minor}", "status": status}
