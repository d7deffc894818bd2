"""firmware_sim on a real serial port: a pseudo-terminal served in real time.

The server owns the pty's master side and runs the `Board` in real time: every few milliseconds
it advances the plant by the real time elapsed, sends the frames that became due, and passes
whatever the host wrote to the board's SCPI interpreter. Output goes through a bounded transmit
buffer, as through a USB-serial chip: when the host stops reading, frames are dropped (and the
board reports an overrun), answers are not.

Faults, for testing hosts (times are seconds after the output was first switched on):
- `drop_bytes`, `corrupt_bytes`: each byte, in both directions, is lost or altered with this
  probability (a noisy cable);
- `stall_at_s`: the accelerometer stops producing samples;
- `unplug_at_s`: the port vanishes (the pty and its link are closed); the board runs on until its
  watchdog has ramped the output to zero, then the simulator exits;
- `reboot_at_s`: the board resets: output cut, settings to defaults, streaming off, and for
  `BOOT_S` it hears nothing;
- `interlock_at_s`: the platform's interlock opens (output cut, driving refused);
- `hang_at_s`: the firmware freezes (no answers, no frames, the drive goes on as it was) until the
  microcontroller's independent hardware watchdog resets the board `HARDWARE_WATCHDOG_S` later;
- `device_fault`: one of the simulated platform's own faults (firmware_sim.faults, the vocabulary
  of `sim://?fault=`), struck `device_fault.at_s` seconds after the output first came on;
  `link_drop` silences the link both ways and leaves stopping to the board's watchdog.

With `truth`, the plate's true motion is written as it happens (firmware_sim.truth).
"""

from __future__ import annotations

import errno
import os
import select
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from firmware_sim.board import Board
from firmware_sim.faults import Fault


@dataclass(frozen=True)
class Faults:
    drop_bytes: float = 0.0
    corrupt_bytes: float = 0.0
    stall_at_s: float | None = None
    unplug_at_s: float | None = None
    reboot_at_s: float | None = None
    interlock_at_s: float | None = None
    hang_at_s: float | None = None
    seed: int = 0
    device_fault: Fault | None = None
    """A simulated platform fault; its at_s counts from the first OUTPut ON."""


@dataclass
class LinkStats:
    frames_sent: int = 0
    frames_damaged: int = 0
    """Frames sent with a byte of their CRC-checked block dropped or altered: the host must never accept them."""
    frames_dropped: int = 0
    """Frames never sent because the transmit buffer was full (the host was not reading)."""
    bytes_dropped: int = 0
    bytes_corrupted: int = 0
    damaged_seqs: list[int] = field(default_factory=list)
    dropped_seqs: list[int] = field(default_factory=list)


class ByteFaults:
    """Drops and alters bytes at random, each with its own probability per byte."""

    def __init__(self, drop: float, corrupt: float, rng: np.random.Generator, stats: LinkStats):
        self.drop = drop
        self.corrupt = corrupt
        self.rng = rng
        self.stats = stats

    def apply(self, data: bytes, checked: int | None = None) -> tuple[bytes, bool]:
        """The bytes after the faults, and whether any of the first `checked` (default: all) was
        altered or dropped. A frame's trailing LF lies outside its length-counted, CRC-checked
        block: the host skips a damaged one as noise and loses nothing, so it does not make the
        frame damaged."""
        if not data or not (self.drop or self.corrupt):
            return data, False
        arr = np.frombuffer(data, dtype=np.uint8).copy()
        checked = arr.size if checked is None else checked
        damaged = False
        if self.corrupt:
            hit = self.rng.random(arr.size) < self.corrupt
            count = int(hit.sum())
            if count:
                arr[hit] ^= self.rng.integers(1, 256, count, dtype=np.uint8)
                self.stats.bytes_corrupted += count
                damaged = bool(hit[:checked].any())
        if self.drop:
            keep = self.rng.random(arr.size) >= self.drop
            lost = arr.size - int(keep.sum())
            if lost:
                arr = arr[keep]
                self.stats.bytes_dropped += lost
                damaged = damaged or not bool(keep[:checked].all())
        return arr.tobytes(), damaged


def _seq_of(frame: bytes) -> int:
    """The sequence number in a frame's header (offset 8 of the payload)."""
    digits = frame[1] - 0x30
    start = 2 + digits + 8
    return int.from_bytes(frame[start : start + 4], "little")


class Server:
    TICK_S = 0.005
    TX_LIMIT_BYTES = 16384
    """The transmit buffer (a USB-serial chip holds a few kB): frames beyond it are dropped."""
    BOOT_S = 0.2
    HARDWARE_WATCHDOG_S = 2.0
    """A hung firmware is reset by the microcontroller's own watchdog after this long."""

    def __init__(self, board: Board, faults: Faults = Faults(), *, link: Path | None = None,
                 log: Callable[[str], None] | None = None):
        self.board = board
        self.faults = faults
        self.link = link
        self.stats = LinkStats()
        self._byte_faults = ByteFaults(faults.drop_bytes, faults.corrupt_bytes,
                                       np.random.default_rng(faults.seed), self.stats)
        self._log = log or (lambda message: None)
        self._pending = {
            name: at for name, at in (
                ("stall", faults.stall_at_s), ("unplug", faults.unplug_at_s),
                ("reboot", faults.reboot_at_s), ("interlock", faults.interlock_at_s),
                ("hang", faults.hang_at_s),
                ("device", faults.device_fault.at_s if faults.device_fault else None),
            ) if at is not None
        }
        self._tx = bytearray()
        self._master: int | None = None
        self._slave: int | None = None
        self._deaf_until_s = -1.0
        self._t0 = time.monotonic()
        self.stopping = False
        self.unplugged = False
        self.link_dropped = False
        self.path: str | None = None

    # -- the port --------------------------------------------------------------------------------

    def open(self) -> str:
        """Create the pty (and the link to it); return the path a host opens."""
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line editing: bytes pass as they are
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.path = os.ttyname(slave)
        if self.link is not None:
            if self.link.is_symlink():
                self.link.unlink()
            elif self.link.exists():
                self.close()
                raise FileExistsError(f"{self.link} exists and is not a link; choose another --link path")
            self.link.symlink_to(self.path)
        return str(self.link) if self.link is not None else self.path

    def close(self) -> None:
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None
        if self.link is not None and self.link.is_symlink():
            self.link.unlink()

    # -- the real-time loop ------------------------------------------------------------------------

    def serve(self) -> None:
        """Serve until `stopping` is set, or until the port was unplugged and the output is at zero."""
        self._t0 = time.monotonic()
        while not self.stopping:
            now = self.now()
            self._fire_faults(now)
            for frame in self.board.tick(now):
                self._send(frame, is_frame=True)
            self.board.platform.commit_truth()
            if self.unplugged:
                if not self.board.platform.synth.ramping and self.board.platform.drive_level == 0.0:
                    self._log("unplugged and the output is at zero; exiting")
                    return
                time.sleep(self.TICK_S)
                continue
            # wake when the next frame is full (a UART sends it then), at least every TICK_S
            self._io(min(self.TICK_S, self.board.seconds_to_next_frame(self.now()) + 0.0002))

    def now(self) -> float:
        return time.monotonic() - self._t0

    def _io(self, timeout_s: float) -> None:
        fd = self._master
        readable, writable, _ = select.select([fd], [fd] if self._tx else [], [], timeout_s)
        if readable:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                data = b""
            except OSError as exc:
                if exc.errno != errno.EIO:  # EIO: no host has the port open
                    raise
                data = b""
            if data and self.link_dropped:
                data = b""  # the link is silent both ways
            if data:
                data, _ = self._byte_faults.apply(data)
                now = self.now()
                if now >= self._deaf_until_s:
                    for frame in self.board.tick(now):  # commands act at the sample they arrive
                        self._send(frame, is_frame=True)
                    self._send(self.board.receive(data, now), is_frame=False)
        if self._tx:
            try:
                written = os.write(fd, self._tx)
            except BlockingIOError:
                written = 0
            del self._tx[:written]

    def _send(self, chunk: bytes, *, is_frame: bool) -> None:
        if not chunk or self.unplugged or self.link_dropped or self.now() < self._deaf_until_s:
            return
        if is_frame and len(self._tx) + len(chunk) > self.TX_LIMIT_BYTES:
            self.stats.frames_dropped += 1
            self.stats.dropped_seqs.append(_seq_of(chunk))
            self.board.note_overrun()
            return
        seq = _seq_of(chunk) if is_frame else None
        checked = len(chunk) - 1 if is_frame and chunk.endswith(b"\n") else None
        chunk, damaged = self._byte_faults.apply(chunk, checked)
        if is_frame:
            self.stats.frames_sent += 1
            if damaged:
                self.stats.frames_damaged += 1
                self.stats.damaged_seqs.append(seq)
        self._tx += chunk

    # -- scheduled faults ------------------------------------------------------------------------

    def _fire_faults(self, now: float) -> None:
        first_on = self.board.first_output_on_s
        if first_on is None or not self._pending:
            return
        for name, at in list(self._pending.items()):
            if now - first_on < at:
                continue
            del self._pending[name]
            if name == "stall":
                self.board.stall_sensor()
            elif name == "interlock":
                self.board.open_interlock()
            elif name == "hang":
                self.board.hang()
                self._pending["reset"] = now - first_on + self.HARDWARE_WATCHDOG_S
            elif name == "reboot":
                self._log("fault: the board reboots (output cut, settings reset, streaming off)")
                self._reboot(now)
            elif name == "reset":
                self._log("the hardware watchdog resets the hung board (output cut, settings reset, streaming off)")
                self._reboot(now)
            elif name == "device":
                self._device_fault(self.faults.device_fault)
            elif name == "unplug":
                self._log(f"fault: the port {self.path} vanishes (unplugged)")
                self.unplugged = True
                self._tx.clear()
                self.close()

    def _device_fault(self, fault: Fault) -> None:
        platform = self.board.platform
        self._log(f"fault: {fault.name} ({fault.value if fault.value is not None else 'default size'})")
        if fault.name == "link_drop":
            self.link_dropped = True
            self._tx.clear()
            return
        platform.inject(Fault(fault.name, platform.t_s, fault.value, fault.duration_s))

    def _reboot(self, now: float) -> None:
        self.board.power_on(now)
        self._tx.clear()
        self._deaf_until_s = now + self.BOOT_S

    def summary(self) -> dict:
        p = self.board.platform
        s = self.stats
        return {
            "frames_sent": s.frames_sent,
            "frames_damaged": s.frames_damaged,
            "frames_dropped": s.frames_dropped,
            "bytes_dropped": s.bytes_dropped,
            "bytes_corrupted": s.bytes_corrupted,
            "damaged_seqs": s.damaged_seqs,
            "dropped_seqs": s.dropped_seqs,
            "watchdog_trips": self.board.watchdog_trips,
            "over_acceleration_trips": self.board.over_acceleration_trips,
            "output_on": self.board.output,
            "output_ever_on": self.board.first_output_on_s is not None,
            "output_level": p.drive_level,
            "boot_id": self.board.boot_id,
        }
