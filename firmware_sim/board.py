"""A platform's controller board: the firmware that speaks the livctl platform protocol.

The board owns the drive (the `SimulatedPlatform`'s synthesiser, plate and accelerometer), a
sample FIFO, a watchdog and the SCPI command set of docs/protocol.md. It is pure logic on a time
the caller gives: `receive(data, now_s)` takes the host's bytes and returns the answers,
`tick(now_s)` runs the plant up to `now_s` and returns the frames due. The serial server
(`firmware_sim.server`) calls both in real time; tests call them in virtual time.

A microcontroller implementation follows the same shape: a sensor interrupt fills the FIFO, the
main loop parses lines, feeds the watchdog, and sends a frame whenever a block of samples is
ready.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Callable

import numpy as np

from firmware_sim.device import SimulatedPlatform
from firmware_sim.faults import WATCHDOG_RAMP_S, WATCHDOG_S
from firmware_sim.scpi import (
    Command,
    Interpreter,
    ScpiError,
    boolean,
    format_number,
    integer,
    no_params,
    number,
    optional_integer,
)
from firmware_sim.sensor import G_MPS2

PROTOCOL_VERSION = (1, 2)
FIRMWARE_VERSION = "1.2"
MANUFACTURER = "LIVCTL"
MODEL = "FWSIM"

# status bits: STATus:CONDition? and every frame's header (docs/protocol.md, "Status")
OUTPUT_ON = 1 << 0
RAMPING = 1 << 1
WATCHDOG = 1 << 2
INTERLOCK_OPEN = 1 << 3
SENSOR_FAULT = 1 << 4
OVERRUN = 1 << 5
STREAMING = 1 << 6
POWER_ON = 1 << 7
TEST_PATTERN = 1 << 8
TRIPPED = 1 << 9
LATCHED = WATCHDOG | OVERRUN | POWER_ON | TRIPPED
"""Bits that stay set until *CLS (the others follow the present state)."""

# device-specific errors (positive codes, SCPI convention)
ERR_WATCHDOG = 201
ERR_INTERLOCK = 202
ERR_SENSOR = 203
ERR_OVERRUN = 204
ERR_TRIP = 205
DEVICE_ERRORS = {
    ERR_WATCHDOG: "Watchdog expired; output ramped to zero",
    ERR_INTERLOCK: "Interlock open; output cut",
    ERR_SENSOR: "Sensor stalled; no samples",
    ERR_OVERRUN: "Frames dropped; host not reading",
    ERR_TRIP: "Over-acceleration; output cut",
}

FRAME_MAGIC = b"LIVS"
FRAME_HEADER = struct.Struct("<4sBBHIIHBBHHddf")
"""magic, version, header bytes, status, seq, first sample, n, axes, format, boot id, drive, rate, scale,
and (1.2) the load cell's reading in kg (NaN without one)."""
NO_READING = -(2**31)
"""A count that stands for no reading (a second accelerometer that gave none)."""
FRAME_CRC = struct.Struct("<I")
SAMPLE_INT32 = 1
AXES = 3

FREQUENCY_RANGE_HZ = (1.0, 1000.0)
LIMIT_RANGE = (0.0, 1.0)
TRIP_RANGE_G = (0.05, 16.0)
"""SENSe:TRIP takes 0 (off) or a threshold in this range, at most the sensor's range."""
RAMP_RANGE_S = (0.0, 60.0)
WATCHDOG_RANGE_S = (0.1, 10.0)
DEFAULT_WATCHDOG_S = WATCHDOG_S
WATCHDOG_RAMP_MAX_S = WATCHDOG_RAMP_S
"""The watchdog ramps the output down over the ramp time, but never slower than this (as sim://)."""
BLOCK_RANGE = (1, 1024)
FETCH_MAX = 4096
FIFO_S = 1.0
"""The FIFO holds this much of the newest samples; older unread ones make room."""


def pattern_counts(first_index: int, n: int) -> np.ndarray:
    """Counts of the link test pattern (SENSe:TEST ON) for samples first_index .. +n (u32 indices).

    x = i mod 2^31, y = -x, z = (40503 i) mod 2^31, with i the u32 sample index.
    """
    i = (np.arange(first_index, first_index + n, dtype=np.int64)) & 0xFFFFFFFF
    x = i & 0x7FFFFFFF
    return np.column_stack([x, -x, (i * 40503) & 0x7FFFFFFF]).astype("<i4")


class Board:
    def __init__(
        self,
        platform: SimulatedPlatform,
        *,
        serial: str = "0001",
        protocol: tuple[int, int] = PROTOCOL_VERSION,
        test_pattern_default: bool = False,
        log: Callable[[str], None] | None = None,
        now_s: float = 0.0,
    ):
        self.platform = platform
        self.serial = serial
        self.protocol = protocol
        self.rate_hz = platform.rate_hz
        self.scale_mps2 = platform.sensor.params.lsb_g * G_MPS2
        self.sensor_count = len(platform.sensors)
        self.clock_factor = platform.config.clock_factor
        """The board's crystal: true samples per nominal second, over the rate."""
        """m/s^2 per count of the samples the board sends."""
        self.range_g = platform.sensor.params.range_g
        self.test_pattern_default = test_pattern_default
        self._log = log or (lambda message: None)
        self.scpi = Interpreter(self._commands(), DEVICE_ERRORS)
        self.interlock_open = False
        self.first_output_on_s: float | None = None
        self.watchdog_trips = 0
        self.over_acceleration_trips = 0
        self.boot_id = 0
        self._t0_s = now_s
        self._produced = 0
        """Plant samples run since the simulation began (real time runs on through reboots)."""
        self._now_s = now_s
        self.power_on(now_s)

    # -- power and reset ---------------------------------------------------------------------

    def power_on(self, now_s: float) -> None:
        """Reset as the board does when it boots: output cut, everything at defaults."""
        self.boot_id = (self.boot_id + 1) & 0xFFFF
        self.sample_index = 0
        self.seq = 0
        self.sensor_stalled = False
        self.hung = False
        self._latched = POWER_ON
        self._fifo = np.empty((0, AXES * self.sensor_count), dtype="<i4")
        self.scpi.clear()
        self.scpi.reset_input()
        self._reset(now_s)

    def _reset(self, now_s: float) -> None:
        """*RST: output off at once, settings to their defaults, streaming off."""
        self.output = False
        self.platform.cut()
        self.frequency_hz = 30.0
        self.platform.set_frequency(self.frequency_hz)
        self.amplitude = 0.0
        self.limit = 1.0
        self.platform.set_drive_limit(self.limit)
        self.trip_g = 0.0
        self.platform.set_trip(float("inf"))
        self._trips_seen = self.platform.trips
        self.ramp_s = 1.0
        self.watchdog_s = DEFAULT_WATCHDOG_S
        self.streaming = False
        self.channels = 1
        self.block = max(1, round(self.rate_hz / 100))
        self.test_pattern = self.test_pattern_default
        self._last_heartbeat_s = now_s

    # -- the host's bytes --------------------------------------------------------------------

    def receive(self, data: bytes, now_s: float) -> bytes:
        """Take bytes from the host at `now_s`; return the answers to send back."""
        self._now_s = now_s
        if self.hung:
            return b""
        return b"".join(self.scpi.feed(data))

    # -- time ----------------------------------------------------------------------------------

    def tick(self, now_s: float) -> list[bytes]:
        """Run the plant up to `now_s`, watch the watchdog, return the frames now due."""
        self._now_s = now_s
        due = int((now_s - self._t0_s) * self.rate_hz * self.clock_factor + 1e-6) - self._produced
        if due > 0:
            accel = self.platform.advance(due)
            self._produced += due
            if not (self.sensor_stalled or self.hung):
                self._store(accel)
        if self.hung:  # the main loop is stuck: the drive goes on as it was, nothing else happens
            return []
        self._check_trip()
        self._check_watchdog(now_s)
        frames = []
        while self.streaming and self._fifo.shape[0] >= self.block:
            frames.append(self._frame(self.block) + b"\n")
        return frames

    def seconds_to_next_frame(self, now_s: float) -> float:
        """How long until the next streamed frame is complete (inf when not streaming): the server
        wakes then, as a board's UART sends a frame as soon as it is full."""
        if not self.streaming or self.hung:
            return math.inf
        missing = self.block - self._fifo.shape[0]
        if missing <= 0:
            return 0.0
        next_sample_s = self._t0_s + (self._produced + missing) / (self.rate_hz * self.clock_factor)
        return max(0.0, next_sample_s - now_s)

    def _store(self, accel_mps2: np.ndarray) -> None:
        n = accel_mps2.shape[0]
        if self.test_pattern:
            counts = np.tile(pattern_counts(self.sample_index, n), (1, self.sensor_count))
        else:
            scaled = accel_mps2 / self.scale_mps2
            counts = np.where(np.isfinite(scaled), np.rint(np.nan_to_num(scaled)), NO_READING).astype("<i4")
        self.sample_index = (self.sample_index + n) & 0xFFFFFFFF
        fifo = np.concatenate([self._fifo, counts]) if self._fifo.shape[0] else counts
        self._fifo = fifo[-int(FIFO_S * self.rate_hz) :]  # the newest second; a poller sees the jump

    def note_overrun(self) -> None:
        """Streamed frames were lost: the serial output was full (the host was not reading)."""
        if not self._latched & OVERRUN:
            self.scpi.push_error(ERR_OVERRUN)
        self._latched |= OVERRUN

    def _check_watchdog(self, now_s: float) -> None:
        silent_s = now_s - self._last_heartbeat_s
        if self.output and silent_s > self.watchdog_s:
            ramp_s = min(self.ramp_s, WATCHDOG_RAMP_MAX_S)
            self.output = False
            self.platform.set_drive(0.0, ramp_s)
            self._latched |= WATCHDOG
            self.watchdog_trips += 1
            self.scpi.push_error(ERR_WATCHDOG)
            self._log(f"watchdog: no heartbeat for {silent_s:.2f} s; ramping the output to zero over {ramp_s:g} s")

    def _check_trip(self) -> None:
        """The device cut its drive on over-acceleration: the output goes off and the host is told."""
        if self.platform.trips == self._trips_seen:
            return
        self._trips_seen = self.platform.trips
        self.output = False
        self._latched |= TRIPPED
        self.over_acceleration_trips += 1
        self.scpi.push_error(ERR_TRIP)
        self._log(f"over-acceleration: samples past the {self.trip_g:g} g trip; output cut")

    # -- faults the simulator injects --------------------------------------------------------

    def stall_sensor(self) -> None:
        self.sensor_stalled = True
        self.scpi.push_error(ERR_SENSOR)
        self._log("fault: the accelerometer stalled (no more samples)")

    def hang(self) -> None:
        """The firmware's main loop freezes: no answers, no frames, no watchdog; the drive goes on."""
        self.hung = True
        self._log("fault: the firmware hangs (no answers, no frames; the drive goes on)")

    def open_interlock(self) -> None:
        self.interlock_open = True
        if self.output:
            self.output = False
            self.platform.cut()
        self.scpi.push_error(ERR_INTERLOCK)
        self._log("fault: the interlock opened; output cut")

    # -- state ---------------------------------------------------------------------------------

    def status(self) -> int:
        bits = self._latched
        if self.output:
            bits |= OUTPUT_ON
        if self.platform.synth.ramping:
            bits |= RAMPING
        if self.interlock_open:
            bits |= INTERLOCK_OPEN
        if self.sensor_stalled:
            bits |= SENSOR_FAULT
        if self.streaming:
            bits |= STREAMING
        if self.test_pattern:
            bits |= TEST_PATTERN
        return bits

    def _frame(self, max_samples: int) -> bytes:
        """The oldest `max_samples` (or fewer) samples of the FIFO as one definite-length block."""
        counts = self._fifo[:max_samples]
        self._fifo = self._fifo[counts.shape[0]:]
        n = counts.shape[0]
        counts = counts[:, : AXES * self.channels]
        first = (self.sample_index - n - self._fifo.shape[0]) & 0xFFFFFFFF
        drive = round(min(max(self.platform.drive_level, 0.0), 1.0) * 65535)
        load = self.platform.load_reading_kg()
        header = FRAME_HEADER.pack(
            FRAME_MAGIC, self.protocol[0], FRAME_HEADER.size, self.status() & 0xFFFF, self.seq, first, n,
            AXES * self.channels, SAMPLE_INT32, self.boot_id, drive, self.rate_hz, self.scale_mps2,
            float("nan") if load is None else load,
        )
        body = header + np.ascontiguousarray(counts, dtype="<i4").tobytes()
        payload = body + FRAME_CRC.pack(zlib.crc32(body))
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        length = str(len(payload)).encode("ascii")
        return b"#" + str(len(length)).encode("ascii") + length + payload

    # -- the command set (docs/protocol.md) ----------------------------------------------------

    def _commands(self) -> list[Command]:
        def query(value: Callable[[], object]) -> Callable[[list[str]], str]:
            def read(params: list[str]) -> str:
                no_params(params)
                v = value()
                return format_number(v) if isinstance(v, (int, float)) else str(v)

            return read

        p = self.platform
        return [
            Command("*IDN", read=query(lambda: f"{MANUFACTURER},{MODEL},{self.serial},{FIRMWARE_VERSION}")),
            Command("*RST", write=self._rst),
            Command("*CLS", write=self._cls),
            Command("*OPC", read=query(lambda: 1)),
            Command("SYSTem:ERRor[:NEXT]", read=lambda params: (no_params(params), self.scpi.next_error())[1]),
            Command("SYSTem:PROTocol", read=query(lambda: f"{self.protocol[0]}.{self.protocol[1]}")),
            Command("SYSTem:WATChdog[:TIMeout]", write=self._set_watchdog, read=query(lambda: self.watchdog_s)),
            Command("SYSTem:HEARtbeat", write=self._heartbeat),
            Command("SYSTem:INTerlock", read=query(lambda: "OPEN" if self.interlock_open else "CLOSED")),
            Command("STATus:CONDition", read=query(self.status)),
            Command("[SOURce:]FREQuency", write=self._set_frequency, read=query(lambda: self.frequency_hz)),
            Command("[SOURce:]AMPLitude", write=self._set_amplitude, read=query(lambda: self.amplitude)),
            Command("[SOURce:]RAMP", write=self._set_ramp, read=query(lambda: self.ramp_s)),
            Command("[SOURce:]LIMit", write=self._set_limit, read=query(lambda: self.limit)),
            Command("OUTPut[:STATe]", write=self._set_output, read=query(lambda: int(self.output))),
            Command("OUTPut:LEVel", read=query(lambda: p.drive_level)),
            Command("SENSe:RATE", read=query(lambda: self.rate_hz)),
            Command("SENSe:SCALe", read=query(lambda: self.scale_mps2)),
            Command("SENSe:MODel", read=query(lambda: p.sensor.params.name)),
            Command("SENSe:RANGe", read=query(lambda: self.range_g)),
            Command("SENSe:TRIP", write=self._set_trip, read=query(lambda: self.trip_g)),
            Command("SENSe:SENSors", read=query(lambda: self.sensor_count)),
            Command("SENSe:CHANnels", write=self._set_channels, read=query(lambda: self.channels)),
            Command("SENSe:LOAD", read=query(lambda: -1 if p.load_reading_kg() is None else p.load_reading_kg())),
            Command("SENSe:TEST[:STATe]", write=self._set_test, read=query(lambda: int(self.test_pattern))),
            Command("FETCh", read=self._fetch),
            Command("STReam[:STATe]", write=self._set_stream, read=query(lambda: int(self.streaming))),
            Command("STReam:BLOCk", write=self._set_block, read=query(lambda: self.block)),
        ]

    def _rst(self, params: list[str]) -> None:
        no_params(params)
        self._reset(self._now_s)

    def _cls(self, params: list[str]) -> None:
        no_params(params)
        self.scpi.clear()
        self._latched = 0

    def _set_watchdog(self, params: list[str]) -> None:
        self.watchdog_s = number(params, *WATCHDOG_RANGE_S)

    def _heartbeat(self, params: list[str]) -> None:
        no_params(params)
        self._last_heartbeat_s = self._now_s

    def _set_frequency(self, params: list[str]) -> None:
        low, high = FREQUENCY_RANGE_HZ
        self.frequency_hz = number(params, low, min(high, 0.45 * self.rate_hz))
        self.platform.set_frequency(self.frequency_hz)

    def _set_amplitude(self, params: list[str]) -> None:
        amplitude = number(params, 0.0, 1.0)
        if amplitude > self.limit:
            raise ScpiError(-222, f"above the drive limit {format_number(self.limit)}")
        self.amplitude = amplitude
        if self.output:
            self.platform.set_drive(self.amplitude, self.ramp_s)

    def _set_limit(self, params: list[str]) -> None:
        limit = number(params, *LIMIT_RANGE)
        if limit > self.limit and self.output:
            raise ScpiError(-221, "the drive limit rises only with the output off")
        self.limit = limit
        self.amplitude = min(self.amplitude, limit)
        self.platform.set_drive_limit(limit)

    def _set_channels(self, params: list[str]) -> None:
        channels = integer(params, 1, self.sensor_count)
        if channels != self.channels:
            self._fifo = self._fifo[:0]  # never a frame that mixes one and two sensors' samples
        self.channels = channels

    def _set_trip(self, params: list[str]) -> None:
        threshold_g = number(params, 0.0, self.range_g)
        if 0 < threshold_g < TRIP_RANGE_G[0]:
            raise ScpiError(-222, f"give 0 (off) or {TRIP_RANGE_G[0]:g} to {self.range_g:g} g")
        self.trip_g = threshold_g
        self.platform.set_trip(threshold_g * G_MPS2 if threshold_g > 0 else float("inf"))

    def _set_ramp(self, params: list[str]) -> None:
        self.ramp_s = number(params, *RAMP_RANGE_S)

    def _set_output(self, params: list[str]) -> None:
        on = boolean(params)
        if on and self.interlock_open:
            raise ScpiError(-221, "interlock open")
        if on and not self.output:
            self.output = True
            self._last_heartbeat_s = self._now_s
            self.platform.set_drive(self.amplitude, self.ramp_s)
            if self.first_output_on_s is None:
                self.first_output_on_s = self._now_s
        elif not on:
            self.output = False
            self.platform.cut()

    def _set_test(self, params: list[str]) -> None:
        on = boolean(params)
        if on != self.test_pattern:
            self._fifo = self._fifo[:0]  # never a mix of acceleration and pattern in one frame
        self.test_pattern = on

    def _set_stream(self, params: list[str]) -> None:
        on = boolean(params)
        if on and not self.streaming:
            self._fifo = self._fifo[:0]
            self._latched &= ~OVERRUN
        self.streaming = on

    def _set_block(self, params: list[str]) -> None:
        self.block = integer(params, *BLOCK_RANGE)

    def _fetch(self, params: list[str]) -> bytes:
        if self.streaming:
            raise ScpiError(-221, "streaming is on")
        return self._frame(optional_integer(params, 1, FETCH_MAX, FETCH_MAX))
