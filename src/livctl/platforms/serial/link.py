"""A serial port to a platform: opened by one program at a time, read by a thread, never blocking.

`open_port` opens the port with an exclusive lock (flock on the device, released by the kernel
when the holder dies); a port someone else holds is refused with the holder's process id and
command line, from /proc/locks. `SerialLink` runs a reader thread that decodes everything the
platform sends (`protocol.StreamDecoder`): frames go to a callback, answer lines to a
queue. Every write has a timeout, every wait has a deadline, and a port that fails (unplugged)
marks the link dead with the reason, so no call can hang.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import serial

from livctl.platforms.serial.protocol import Frame, StreamDecoder
from livctl.errors import DeviceOpenError, PlatformError

_log = logging.getLogger(__name__)

T = TypeVar("T")

READ_POLL_S = 0.05
WRITE_TIMEOUT_S = 0.5
BATCH_S = 0.02
"""The reader waits this long after the first byte of a batch; samples arrive at most this late."""


def port_holder(path: str) -> str | None:
    """The process holding the exclusive lock on a port, as 'process PID (COMMAND LINE)'."""
    try:
        st = os.stat(path)
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    wanted = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 4242 00:19:6 0 EOF"; waiting requests have "->" after the index
        if len(fields) < 6 or fields[1] != "FLOCK":
            continue
        try:
            major, minor, inode = fields[5].split(":")
            if (int(major, 16), int(minor, 16), int(inode)) != wanted:
                continue
            pid = int(fields[4])
        except ValueError:
            continue
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            command = ""
        if len(command) > 120:
            command = command[:117] + "..."
        return f"process {pid} ({command})" if command else f"process {pid}"
    return None


def open_port(path: str, baud: int) -> serial.Serial:
    """Open `path` exclusively, raw, with read and write timeouts; one-line errors a user can act on."""
    port = serial.Serial()
    port.port = path
    port.baudrate = baud
    port.timeout = READ_POLL_S
    port.write_timeout = WRITE_TIMEOUT_S
    port.exclusive = True
    try:
        port.open()
    except serial.SerialException as exc:
        code = exc.errno
        if code in (errno.EAGAIN, errno.EWOULDBLOCK):
            holder = port_holder(path) or "another program"
            raise DeviceOpenError(
                f"serial port {path} is in use by {holder}; one program drives a platform at a time: stop it first"
            ) from None
        if code == errno.ENOENT:
            raise DeviceOpenError(f"no serial port {path}; `livctl devices` lists the ports") from None
        if code in (errno.EACCES, errno.EPERM):
            raise DeviceOpenError(
                f"no permission to open {path}; add your user to the 'dialout' group and log in again"
            ) from None
        detail = exc.strerror or str(exc)
        raise DeviceOpenError(f"cannot open serial port {path}: {detail}") from None
    except (ValueError, OSError) as exc:
        raise DeviceOpenError(f"cannot open serial port {path} at {baud} baud: {exc}") from None
    return port


class SerialLink:
    """An open port: a reader thread decodes what arrives; `query` and `send` talk to the platform."""

    def __init__(self, port: serial.Serial, on_frame: Callable[[Frame], None] | None = None):
        self.port = port
        self.path = port.port
        self.on_frame = on_frame
        self.decoder = StreamDecoder()
        self.lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.dead: str | None = None
        """Why the link is unusable (the port failed), or None."""
        self._lost_reported = False
        self.heartbeat_period_s: float | None = None
        self.decode_cpu_s = 0.0
        """CPU time the reader thread spent decoding (frames, lines, the frame callback)."""
        self.reader_cpu_s = 0.0
        """CPU time of the whole reader thread, system calls included."""
        self._last_beat_s = -float("inf")
        self.arrived_s = time.monotonic()
        """When the bytes now being decoded came off the port (time.monotonic()): the frames' arrival."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read_loop, name=f"livctl serial reader {self.path}", daemon=True)
        self._thread.start()

    # -- the reader thread ---------------------------------------------------------------------

    def _deliver(self, data: bytes) -> None:
        t = time.thread_time()
        for item in self.decoder.feed(data):
            if isinstance(item, str):
                self.lines.put(item)
            elif self.on_frame is not None:
                self.on_frame(item)
        self.decode_cpu_s += time.thread_time() - t

    def _read_loop(self) -> None:
        cpu0 = time.thread_time()
        try:
            while not self._stop.is_set():
                data = self.port.read(max(1, self.port.in_waiting))
                if data:
                    # the frames complete in what came at once arrived now; then let a few more
                    # gather: one wake-up per batch, not two per frame
                    self.arrived_s = time.monotonic()
                    self._deliver(data)
                    time.sleep(BATCH_S)
                    more = self.port.read(self.port.in_waiting)
                    if more:
                        self.arrived_s = time.monotonic()
                        self._deliver(more)
                self.reader_cpu_s = time.thread_time() - cpu0
        except (serial.SerialException, OSError, TypeError) as exc:
            # TypeError: pyserial's read on a port closed under it
            if not self._stop.is_set():
                self._die(exc)
        except Exception as exc:  # a bug: report it rather than leave a silent link
            self.dead = f"livctl's serial reader failed: {type(exc).__name__}: {exc}"[:200]
        self.reader_cpu_s = time.thread_time() - cpu0

    # -- talking to the platform ---------------------------------------------------------------

    def send(self, text: str) -> None:
        """Send one line (LF added). Raises PlatformError when the port is dead or does not take it."""
        if self.dead:
            raise self.lost()
        try:
            self.port.write(text.encode("ascii") + b"\n")
        except serial.SerialTimeoutException:
            raise PlatformError(
                f"writing to {self.path} timed out after {WRITE_TIMEOUT_S:g} s: the platform is not reading"
            ) from None
        except (serial.SerialException, OSError) as exc:
            self._die(exc)
            raise self.lost() from None

    def query(self, text: str, parse: Callable[[str], T], *, timeout_s: float = 0.3, attempts: int = 3) -> T:
        """Send `text` and return `parse(answer)` for the first answer line `parse` accepts.

        Lines that `parse` rejects (ValueError) are stale or damaged and skipped; with no accepted
        answer within `timeout_s` the query is sent again, up to `attempts` times in all.
        """
        rejected = None
        for attempt in range(attempts):
            if attempt:
                _log.debug("%s: no valid answer to %r within %g s; asking again (attempt %d of %d)",
                           self.path, text, timeout_s, attempt + 1, attempts)
            self._drain_lines()
            self.send(text)
            deadline = time.monotonic() + timeout_s
            while (remaining := deadline - time.monotonic()) > 0:
                self.beat_if_due()
                try:
                    line = self.lines.get(timeout=min(remaining, 0.02))
                except queue.Empty:
                    if self.dead:
                        raise self.lost() from None
                    continue
                try:
                    return parse(line)
                except ValueError:
                    rejected = line
        detail = f"; the last line was {rejected[:60]!r}" if rejected else ""
        raise PlatformError(
            f"no valid answer to {text.split(';')[-1]!r} from {self.path} within {timeout_s:g} s, "
            f"{attempts} attempt{'s' if attempts > 1 else ''}{detail}"
        )

    def _die(self, exc: BaseException) -> None:
        if self.dead is None:
            detail = " ".join(str(exc).split())
            self.dead = f"serial link lost: {self.path} failed (unplugged?): {detail[:80]}"

    def lost(self) -> PlatformError:
        """The error for a dead link: the whole reason the first time, briefly after that."""
        if self._lost_reported:
            return PlatformError("serial link lost")
        self._lost_reported = True
        return PlatformError(self.dead)

    def beat_if_due(self) -> None:
        """Send a heartbeat (SYSTem:HEARtbeat) when one is due, so the platform's watchdog stays fed."""
        if self.heartbeat_period_s is None:
            return
        now = time.monotonic()
        if now - self._last_beat_s >= self.heartbeat_period_s:
            self._last_beat_s = now
            _log.debug("%s: heartbeat", self.path)
            self.send("SYST:HEAR")

    def _drain_lines(self) -> None:
        while True:
            try:
                self.lines.get_nowait()
            except queue.Empty:
                return

    def close(self) -> None:
        self.heartbeat_period_s = None
        self._stop.set()
        try:
            self.port.cancel_read()
        except (serial.SerialException, OSError):
            pass
        self._thread.join(timeout=2.0)
        try:
            self.port.close()
        except (serial.SerialException, OSError):
            pass
