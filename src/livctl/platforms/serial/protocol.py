"""The livctl platform protocol, host side, without I/O (docs/protocol.md).

A platform answers queries with text lines and sends accelerometer samples as IEEE 488.2
definite-length blocks (`#<digits><length><payload>`), each payload a frame: a 40-byte header
(rate, scale, sequence number, first sample index, status, drive level), int32 samples and a
CRC-32. `StreamDecoder` cuts whatever bytes arrive into frames and text lines; anything that is
not a whole, well-formed frame with a correct checksum is thrown away and counted, never decoded.
`SampleAssembler` turns frames into a gapless stream: a frame that went missing becomes NaN
samples of exactly its length (the sample index says how many), so lost data is never read as
acceleration, and status changes the platform reports become faults. A stream that goes astray (a
frame sent twice, a sequence number or a sample counter that goes back, a rate or scale that is not
a number or changes, a counter that leaps ahead, a new boot id) is stopped: nothing more is passed on.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

PROTOCOL_MAJOR = 1
PROTOCOL_MINOR = 1
"""This livctl needs a board of protocol 1.1 or later: the drive limit and the over-acceleration trip.
1.2 adds a second accelerometer (frames of 6 axes) and the load cell (a header field)."""
LOAD_MINOR = 2
"""The minor version from which frames carry the load cell and may carry two accelerometers."""
LOAD_FIELD = struct.Struct("<f")
"""1.2: the load cell's reading, kg (NaN without one), right after the 1.0 header."""
NO_READING = -(2**31)
"""A count that stands for no reading (a second accelerometer that gave none)."""

MAGIC = b"LIVS"
HEADER = struct.Struct("<4sBBHIIHBBHHdd")
"""magic, version, header bytes, status, seq, first sample, n, axes, format, boot id, drive, rate, scale."""
CRC_BYTES = 4
SAMPLE_INT32 = 1
AXES = 3
MAX_SAMPLES_PER_FRAME = 4096
MAX_PAYLOAD_BYTES = 255 + MAX_SAMPLES_PER_FRAME * 2 * AXES * 4 + CRC_BYTES
MAX_LINE_BYTES = 1024

# status bits (docs/protocol.md, "Status")
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

_HASH = 0x23
_NEWLINE = 0x0A
_PRINTABLE = frozenset(range(0x20, 0x7F)) - {_HASH}


@dataclass(frozen=True)
class Frame:
    """One frame of samples from the platform, decoded: sequence, first sample's index, status bits, drive,
    samples."""

    seq: int
    first_index: int
    """u32 index of the first sample since the platform powered up."""
    status: int
    boot_id: int
    drive: float
    """The drive level the platform was producing (fraction of full scale, peak)."""
    rate_hz: float
    scale_mps2: float
    counts: np.ndarray
    """(n, 3) int32 counts, x y z (or (n, 6): two accelerometers); multiply by `scale_mps2` for m/s^2."""
    load_kg: float = math.nan
    """The load cell's reading (1.2 headers), NaN without one."""

    @property
    def n(self) -> int:
        return int(self.counts.shape[0])


@dataclass
class DecoderStats:
    """What the stream decoder has seen: frames, damaged frames, stray bytes, answer lines."""

    frames: int = 0
    bad_frames: int = 0
    """Blocks that started like a frame but failed a check (length, header, checksum)."""
    noise_bytes: int = 0
    """Bytes that belonged to no frame and no answer line (damage, or a partial message)."""
    lines: int = 0


class StreamDecoder:
    """Splits the bytes a platform sends into `Frame`s and answer lines (`str`, without LF).

    Never raises on any input. A block that fails a check is skipped one byte at a time, so a
    frame that follows a damaged one is still found. Lines are kept only when they are whole
    (ended by LF, not cut short by a block) and printable.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self.stats = DecoderStats()

    def feed(self, data: bytes) -> list[Frame | str]:
        buf = self._buf
        buf += data
        out: list[Frame | str] = []
        pos = 0
        end = len(buf)
        while pos < end:
            if buf[pos] == _HASH:
                step = self._block(buf, pos, end, out)
                if step == 0:
                    break  # wait for more bytes
                pos += step
                continue
            newline = buf.find(b"\n", pos)
            block = buf.find(b"#", pos)
            stop = min(x for x in (newline, block, end) if x >= 0)
            if stop == end and end - pos <= MAX_LINE_BYTES:
                break  # an answer still arriving
            text = bytes(buf[pos:stop])
            if stop == newline and text and len(text) <= MAX_LINE_BYTES and all(b in _PRINTABLE for b in text.rstrip(b"\r")):
                out.append(text.rstrip(b"\r").decode("ascii"))
                self.stats.lines += 1
            elif text:
                self.stats.noise_bytes += len(text)
            pos = stop + 1 if stop == newline else stop
        del buf[:pos]
        return out

    def _block(self, buf: bytearray, pos: int, end: int, out: list) -> int:
        """Bytes consumed by the block at `pos` (1 when it is not a valid frame), or 0: need more."""
        if end - pos < 2:
            return 0
        digits = buf[pos + 1] - 0x30
        if not 1 <= digits <= 6:
            return self._reject(1, counted=False)
        start = pos + 2 + digits
        if end < start:
            return 0
        length_text = bytes(buf[pos + 2 : start])
        if not length_text.isdigit():
            return self._reject(1, counted=False)
        length = int(length_text)
        if not HEADER.size + CRC_BYTES <= length <= MAX_PAYLOAD_BYTES:
            return self._reject(1)
        if end < start + HEADER.size:
            return 0
        (magic, version, header_bytes, status, seq, first, n, axes, fmt, boot_id, drive, rate, scale) = (
            HEADER.unpack_from(buf, start)
        )
        if (
            magic != MAGIC
            or version != PROTOCOL_MAJOR
            or header_bytes < HEADER.size
            or axes not in (AXES, 2 * AXES)
            or fmt != SAMPLE_INT32
            or length != header_bytes + n * axes * 4 + CRC_BYTES
        ):
            return self._reject(1)
        if end < start + length:
            return 0
        payload = bytes(buf[start : start + length])
        (crc,) = struct.unpack_from("<I", payload, length - CRC_BYTES)
        if zlib.crc32(memoryview(payload)[: length - CRC_BYTES]) != crc:
            return self._reject(1)
        counts = np.frombuffer(payload, dtype="<i4", count=n * axes, offset=header_bytes).reshape(n, axes)
        load = LOAD_FIELD.unpack_from(payload, HEADER.size)[0] if header_bytes >= HEADER.size + LOAD_FIELD.size else math.nan
        out.append(Frame(seq, first, status, boot_id, drive / 65535.0, rate, scale, counts, load))
        self.stats.frames += 1
        return 2 + digits + length

    def _reject(self, step: int, *, counted: bool = True) -> int:
        if counted:
            self.stats.bad_frames += 1
        self.stats.noise_bytes += step
        return step


# -- frames -> a gapless sample stream ----------------------------------------------------------


@dataclass(frozen=True)
class Samples:
    """Samples `index .. index + n` (counted from the first sample of the stream), in m/s^2.

    Rows of NaN stand for samples that were lost on the way.
    """

    index: int
    accel_mps2: np.ndarray
    """(n, 3), or (n, 6) with a second accelerometer's three axes after the first's."""
    lost: bool = False
    """All NaN: a gap where frames went missing."""
    load_kg: float = math.nan
    """The load cell's reading with these samples (NaN without one)."""
    arrived_s: float = math.nan
    """When the frame carrying them arrived (the host's monotonic clock; NaN: not stamped)."""


@dataclass(frozen=True)
class Fault:
    """Something the platform reported, or the stream showed, that ends a session."""

    message: str
    cut: bool = False
    """Cut the drive at once (over-drive) instead of ramping down."""
    tripped: bool = False
    """The board's own over-acceleration trip cut its output."""


FLAG_FAULTS = (
    (WATCHDOG, "the platform's watchdog stopped the output: it heard no heartbeat from livctl in time"),
    (INTERLOCK_OPEN, "the platform's interlock opened and cut the output"),
    (SENSOR_FAULT, "the platform reports its accelerometer stalled"),
    (POWER_ON, "the platform restarted (power-on reset): its output is off"),
    (TRIPPED, "the platform's own over-acceleration trip cut its output"),
)


@dataclass
class AssemblerStats:
    """What the sample assembler has passed on and lost: samples, lost samples, gaps, missing frames."""

    samples: int = 0
    """Samples received and passed on."""
    lost_samples: int = 0
    """Samples replaced by NaN because their frame never arrived whole."""
    gaps: int = 0
    missing_seqs: list[int] = field(default_factory=list)
    """Sequence numbers of the frames that never arrived (the first 100 000)."""
    first_seq: int | None = None
    last_seq: int | None = None
    """The first and the latest frame received: missing_seqs covers the frames between them."""


class SampleAssembler:
    """Turns frames into `Samples` (index-continuous, NaN over gaps) and `Fault`s."""

    MAX_GAP_S = 10.0
    """A forward jump longer than this is not a gap but a platform that restarted or went astray."""

    def __init__(self, rate_hz: float, scale_mps2: float):
        self.rate_hz = rate_hz
        self.scale_mps2 = scale_mps2
        self.stats = AssemblerStats()
        self._next_u32: int | None = None
        self._next_seq: int | None = None
        self._next_index = 0
        self._status = 0
        self._boot_id: int | None = None
        self._axes: int | None = None
        self.stopped = False
        """After a restart or a jump the stream cannot be trusted: nothing more is passed on."""

    def feed(self, frame: Frame) -> list[Samples | Fault]:
        if self.stopped:
            return []
        out: list[Samples | Fault] = []
        if not (math.isfinite(frame.rate_hz) and math.isfinite(frame.scale_mps2)):
            return self._stop("the platform sent a frame whose sample rate or scale is not a number")
        if self._boot_id is None:
            self._boot_id = frame.boot_id
            self._next_u32 = frame.first_index
            self._next_seq = frame.seq
        elif frame.boot_id != self._boot_id:
            return self._stop("the platform restarted during the session (its boot id changed): its output is off")
        if abs(frame.rate_hz - self.rate_hz) > 1e-9 * self.rate_hz or abs(frame.scale_mps2 - self.scale_mps2) > 1e-9 * self.scale_mps2:
            return self._stop(
                f"the platform changed its sample rate or scale mid-stream ({frame.rate_hz:g} Hz, "
                f"{frame.scale_mps2:g} m/s^2 per count)"
            )
        if self.stats.last_seq is not None and ((frame.seq - self._next_seq) & 0xFFFFFFFF) >= 1 << 31:
            # a sequence number already seen (a frame sent twice, a stuck counter) or gone back
            return self._stop(f"the platform sent frame {frame.seq} again, or went back: its stream cannot be trusted")
        ahead = (frame.first_index - self._next_u32) & 0xFFFFFFFF
        if ahead >= 1 << 31:
            return self._stop(
                f"the platform's sample counter went back {(1 << 32) - ahead} samples: its stream cannot be trusted"
            )
        raised = frame.status & ~self._status
        self._status = frame.status
        for bit, message in FLAG_FAULTS:
            if raised & bit:
                out.append(Fault(message, cut=bit == TRIPPED, tripped=bit == TRIPPED))
        self._count_missing_frames(frame.seq)
        counts = frame.counts
        if ahead > self.MAX_GAP_S * self.rate_hz:
            out.extend(self._stop(f"the platform's sample counter jumped ahead by {ahead} samples"))
            return out
        if self._axes is None:
            self._axes = counts.shape[1]
        elif counts.shape[1] != self._axes:
            out.extend(self._stop(f"the platform changed from {self._axes} to {counts.shape[1]} axes mid-stream"))
            return out
        if ahead:
            out.append(Samples(self._next_index, np.full((ahead, self._axes), np.nan), lost=True))
            self.stats.lost_samples += ahead
            self.stats.gaps += 1
            self._next_index += ahead
        n = counts.shape[0]
        if n:
            accel = counts * self.scale_mps2
            missing = counts == NO_READING
            if missing.any():
                accel[missing] = np.nan
            out.append(Samples(self._next_index, accel, load_kg=frame.load_kg))
            self.stats.samples += n
            self._next_index += n
        self._next_u32 = (frame.first_index + frame.n) & 0xFFFFFFFF
        return out

    def _count_missing_frames(self, seq: int) -> None:
        if self.stats.first_seq is None:
            self.stats.first_seq = seq
        self.stats.last_seq = seq
        missing = (seq - self._next_seq) & 0xFFFFFFFF
        if missing == 0:
            self._next_seq = (seq + 1) & 0xFFFFFFFF
        elif missing < 1 << 31:
            room = 100_000 - len(self.stats.missing_seqs)
            self.stats.missing_seqs.extend((self._next_seq + i) & 0xFFFFFFFF for i in range(min(missing, max(room, 0))))
            self._next_seq = (seq + 1) & 0xFFFFFFFF

    def _stop(self, message: str) -> list[Samples | Fault]:
        self.stopped = True
        return [Fault(message)]
