"""The raw signal of a session or a calibration, kept as evidence in an HDF5 file.

Every accelerometer sample a platform returns (all axes) and every command sent to it are written,
as the procedure runs, to one HDF5 file beside the record it belongs to: a session's beside its
dose log (`<log>.archive/<session-id>.h5`), a calibration's beside its file
(`<platform-id>.toml.archive/<calibration-id>.h5`). HDF5 is read by h5py, MATLAB (`h5read`),
R (rhdf5, hdf5r), Julia and HDFView without livctl; the file holds what is needed to analyse it
again (rate, sensor, platform, calibration, prescription, time base) as attributes.

Layout (format "livctl raw signal", version 1):

    /               attributes: format, format_version, kind ("session", "calibration"), id, the
                    platform and its sensor, the prescription, the time base, ...; written at the
                    end: status, reason, ended_utc, samples, duration_s, complete (1)
    /accel          (n, 3) samples x, y, z, in the sensor's own units (int16 or int32 counts,
                    float32 or float64); m/s^2 = value * attribute `scale_factor`; gravity
                    included; chunks of one second per axis, counts packed by HDF5's scale-offset
                    filter (lossless for integers), floats by shuffle + deflate; integers hold
                    `missing_value` where a sample was not a number
    /blocks         one row per read: t0_s (sensor time of its first sample), start (its first
                    row in /accel), n, drive (the level last commanded when it was read)
    /commands       one row per command sent: t_s (sensor time: the end of the last block read;
                    NaN before the first), kind (drive, cut, frequency, ceiling), frequency_hz,
                    level (fraction of full scale, peak, after every clamp), ramp_s
    /windows        one row per measured window of a session: index (the dose log's `idx`),
                    phase, t_s, duration_s, start, stop (its rows in /accel), hint_hz (where the
                    session's fit started), measured (1 when the session measured it), commands
                    (how many rows of /commands had been sent when it was measured: the drive the
                    log gives the window is the last of those)

Sample time: row r of a block is at t0_s + (r - start) / rate_hz. A block with fewer rows than its
duration holds (a stalled sensor) shows as a jump in the next block's t0_s.

Writing: the procedure copies each block into a buffer and hands each second of signal (with the
tables' new rows) over a pipe to a writer process of its own, a fresh interpreter, so that neither
the disk nor the packing ever holds the procedure up. The writer packs the counts (HDF5's
scale-offset filter; floats: shuffle + deflate), appends them and flushes the file in HDF5's
single-writer mode (SWMR), within a quarter of a second, so the file on disk is always readable.
If livctl is killed, the writer still writes everything it was handed and closes the file: a crash
loses less than the last second of signal. (If the writer is killed too, the file holds what it
had flushed; it opens with `h5py.File(path, "r", swmr=True)`, or after HDF5's `h5clear -s`;
livctl's readers do that by themselves.) At the end the writer adds the final attributes, makes
the file durable (fsync) and returns its SHA-256 (`Seal`), which the dose log chains.

A write that fails (a full disk) never raises inside the motion path: the archive stops and says
so in `failure`, which the session checks after each window (it then stops safely and logs why).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import select
import signal
import struct
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from livctl.errors import DriveRequestError, UsageError

FORMAT = "livctl raw signal"
FORMAT_VERSION = 1
SUFFIX = ".archive"
"""A record's archives live in the folder named after its file plus this."""
CHUNK_S = 1.0
"""Signal per chunk: the writer is handed the samples in pieces this long, as soon as each is
whole. What it was handed it writes even if livctl is killed: a crash loses less than this."""
PUMP_INTERVAL_S = 0.05
"""Chunks go to the writer at most this often (wall time): in real time every chunk goes at once;
a simulated session run faster than real time hands them over in batches."""
DEFLATE_LEVEL = 1
"""zlib level for samples that are not counts (floats): 1 compresses nearly as well as 9, several
times faster. Counts are packed by HDF5's scale-offset filter instead (smaller and faster still)."""
WRITE_TIMEOUT_S = 5.0
"""A writer that takes nothing for this long (a disk that hangs) stops the archive: the procedure
is told, rather than held up."""
TABLE_CHUNK_ROWS = 256
PHASE_BYTES = 10

BLOCK_DTYPE = np.dtype([("t0_s", "<f8"), ("start", "<i8"), ("n", "<i4"), ("drive", "<f8")])
COMMAND_DTYPE = np.dtype([("t_s", "<f8"), ("kind", "S10"), ("frequency_hz", "<f8"), ("level", "<f8"),
                          ("ramp_s", "<f8")])
WINDOW_DTYPE = np.dtype([("index", "<i4"), ("phase", f"S{PHASE_BYTES}"), ("t_s", "<f8"), ("duration_s", "<f8"),
                         ("start", "<i8"), ("stop", "<i8"), ("hint_hz", "<f8"), ("measured", "i1"),
                         ("commands", "<i4")])
_STORABLE = ("int16", "int32", "float32", "float64")
_ROWS = {b"B": struct.Struct("<dqid"), b"C": struct.Struct(f"<d{COMMAND_DTYPE['kind'].itemsize}sddd"),
         b"W": struct.Struct(f"<i{PHASE_BYTES}sddqqdbi")}
"""Each table's row as bytes, laid out as its numpy type (packed, little-endian)."""


class ArchiveError(UsageError):
    """A raw-signal archive that cannot be written or read as asked (one line)."""


def archive_dir(owner: str | os.PathLike[str]) -> Path:
    """The folder that holds the archives of the record file `owner` (a dose log, a calibration)."""
    owner = Path(owner)
    return owner.with_name(owner.name + SUFFIX)


def prepare_dir(owner: str | os.PathLike[str]) -> Path:
    """`archive_dir(owner)`, created and checked writable; ArchiveError (exit 2) when it is not."""
    folder = archive_dir(owner)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArchiveError(f"cannot create {folder} for the raw signal: {_reason(exc)}; choose another place") from None
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ArchiveError(f"cannot write the raw signal to {folder}: not a writable folder; choose another place")
    return folder


@dataclass(frozen=True)
class Seal:
    """A closed archive: where it is, what it holds, and the SHA-256 of its bytes."""

    file: str
    """Path relative to the folder of the record it belongs to (the dose log's, the calibration's)."""
    sha256: str
    bytes: int
    samples: int
    complete: bool
    """False when the file was not closed by its writer (a crash, a failed write)."""
    note: str | None = None

    def record(self) -> dict:
        return {"file": self.file, "sha256": self.sha256, "bytes": self.bytes, "samples": self.samples,
                "complete": self.complete, "note": self.note}


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for piece in iter(lambda: f.read(1 << 20), b""):
            digest.update(piece)
    return digest.hexdigest()


def seal_as_found(path: Path, base: Path, note: str, samples: int | None = None) -> Seal | None:
    """The seal of an archive its writer never closed (the process died), as the file is now:
    nothing in it is changed. None when there is no file."""
    try:
        size = path.stat().st_size
        sha = file_sha256(path)
    except OSError:
        return None
    if samples is None:
        samples = 0
        try:
            with open_hdf5(path) as f:
                samples = int(f["accel"].shape[0])
        except Exception:  # unreadable after the crash: the seal still pins what is there
            pass
    return Seal(_relative(path, base), sha, size, samples, False, note)


def sealed_problem(base: str | os.PathLike[str], record: dict) -> str | None:
    """What is wrong with a sealed archive (`record`: a dose log's `archives` row, `file` relative
    to `base`), in a few words, or None when the file is there with the SHA-256 it was sealed with."""
    path = Path(base) / record["file"]
    try:
        sha = file_sha256(path)
    except FileNotFoundError:
        return f"{record['file']} is missing"
    except OSError as exc:
        return f"{record['file']} cannot be read ({_reason(exc)})"
    if sha != record["sha256"]:
        return f"{record['file']} was changed after it was sealed: its SHA-256 is {sha[:16]}..., the log's record says {record['sha256'][:16]}..."
    return None


def writer_mark(path: Path) -> Path:
    """The file a writer keeps beside its archive while it writes (its process id inside)."""
    return path.with_name(path.name + ".writing")


def seal_left_behind(path: Path, base: Path, *, timeout_s: float = 60.0) -> Seal | None:
    """The seal of the archive of a session whose livctl process died: once its writer has
    finished (it writes what it was handed and closes the file), the file as it is. None when
    there is no file."""
    mark = writer_mark(path)
    deadline = time.monotonic() + timeout_s
    while mark.exists() and time.monotonic() < deadline:
        try:
            pid = int(mark.read_text().strip() or 0)
            os.kill(pid, 0)
        except (OSError, ValueError):
            break  # the writer is gone too: the file is as it left it
        time.sleep(0.05)
    note = "the livctl process ended without closing the session: sealed as found"
    if mark.exists():
        note += " (its writer had not finished writing)"
    return seal_as_found(path, base, note)


def open_hdf5(path: str | os.PathLike[str]):
    """An archive opened for reading; one whose writer died is opened in SWMR mode, which reads
    what the writer had flushed."""
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as exc:
        if "already open for write" not in str(exc) and "consistency flags" not in str(exc):
            raise
    return h5py.File(path, "r", swmr=True)


class _Encoder:
    """Samples in m/s^2 as the stored type (counts, float32...), counting those not stored exactly."""

    def __init__(self, dtype: str, scale: float):
        self.dtype = np.dtype(dtype)
        self.scale = float(scale)
        self.inverse = 1.0 / self.scale
        self.integer = self.dtype.kind == "i"
        self.missing = int(np.iinfo(self.dtype).min) if self.integer else None
        self.nonfinite = 0
        self.inexact = 0

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        if self.dtype == np.float64 and self.scale == 1.0:
            return np.array(rows)
        scaled = rows * self.inverse if self.integer else rows / self.scale
        with np.errstate(invalid="ignore", over="ignore"):
            if self.integer:
                np.rint(scaled, out=scaled)
            stored = scaled.astype(self.dtype)
        back = np.multiply(stored, self.scale, dtype=np.float64)
        if np.array_equal(back, rows):
            return stored  # every sample exact: the usual case, checked at once
        finite = np.isfinite(rows)
        self.nonfinite += int(np.count_nonzero(~finite))
        if self.integer:
            info = np.iinfo(self.dtype)
            fits = finite & (scaled > info.min) & (scaled <= info.max)
            stored[~fits] = self.missing
            back = np.multiply(stored, self.scale, dtype=np.float64)
        self.inexact += int(np.count_nonzero(finite & (back != rows)))
        return stored


class RawArchive:
    """One procedure's raw signal, written as it runs. Create it before anything moves, hand the
    platform to the motion guard through `watch(platform)`, note each measured window with
    `add_window`, and `close` it at the end (or `discard` it).

    The file is written by a writer process of its own (a fresh interpreter started here): the
    procedure only copies each block into a buffer and, every `CHUNK_S` of signal, hands the
    buffer over a pipe (kept in memory while the writer starts). The writer encodes, packs and
    appends it and flushes the file whenever the pipe is empty. So the procedure never waits for
    the disk or for the packing, and if livctl is killed the writer still writes everything it was
    handed and closes the file."""

    def __init__(self, path: str | os.PathLike[str], *, kind: str, rate_hz: float,
                 sample_format: tuple[str, float] = ("float64", 1.0), metadata: dict[str, Any] | None = None):
        self.path = Path(path)
        dtype, scale = sample_format
        if dtype not in _STORABLE or not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"cannot store samples as {sample_format!r}")
        self.rate_hz = float(rate_hz)
        self.failure: str | None = None
        """Why the archive stopped writing (a full disk, a writer that died), or None."""
        self.samples = 0
        self._chunk_rows = max(1, int(round(CHUNK_S * self.rate_hz)))
        self._encode = _Encoder(dtype, scale)
        self._buffer = np.empty((self._chunk_rows, 3))
        self._fill = 0
        self._handed = 0
        self._blocks: list[tuple] = []
        self._command_count = 0
        self._tables = {b"C": bytearray(), b"W": bytearray()}
        """Rows of the commands and windows tables not yet handed over, as bytes."""
        self._recent: deque = deque(maxlen=4096)
        self._closed = False
        self._status = b""
        self._ready = False
        self._backlog: deque = deque()
        """Bytes waiting for the writer's pipe."""
        self._gone = False
        """True once the writer cannot be reached (its pipe broke, or it took nothing for too long)."""
        self._last_pump = -math.inf
        self._waiting_since: float | None = None
        spec = {"path": str(self.path), "kind": kind, "rate_hz": self.rate_hz, "dtype": dtype, "scale": float(scale),
                "chunk_rows": self._chunk_rows, "reserve_bytes": DISK_RESERVE_BYTES, "metadata": metadata or {}}
        if self.path.exists():
            raise ArchiveError(f"the raw-signal archive {self.path} exists already; it is never overwritten")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._process = _start_writer()
        except OSError as exc:
            raise ArchiveError(f"cannot start writing the raw-signal archive {self.path}: {_reason(exc)}") from None
        self._out, self._in = self._process.stdin.fileno(), self._process.stdout.fileno()
        try:  # whoever finds this session's process dead waits for the writer to finish
            writer_mark(self.path).write_text(f"{self._process.pid}\n")
        except OSError as exc:
            self._reap()
            raise ArchiveError(f"cannot create the raw-signal archive {self.path}: {_reason(exc)}") from None
        self._send(_frame(b"O", json.dumps(spec).encode("utf-8")))

    @classmethod
    def for_platform(cls, path: str | os.PathLike[str], platform, *, kind: str, metadata: dict[str, Any]) -> "RawArchive":
        """An archive of what `platform` delivers, with the platform and its sensor described."""
        described = {
            "device": platform.url,
            "platform_id": platform.platform_id,
            "platform": platform.description,
            "simulated": platform.simulated,
            "time_base": platform.clock.description,
            "vertical_axis": platform.vertical_axis,
            "gravity_on_vertical": platform.gravity_on_vertical,
            "has_sensor": platform.has_sensor,
            "sensor_range_mps2": platform.sensor_range_mps2 if platform.has_sensor else None,
            "full_scale_drive": platform.full_scale_drive,
        }
        described.update(metadata)
        rate = platform.sensor_rate_hz if platform.has_sensor else 1.0
        return cls(path, kind=kind, rate_hz=rate, sample_format=platform.sample_format, metadata=described)

    # -- what the procedure hands over (never raises: a failure is kept in `failure`) -------------

    def watch(self, platform) -> "RecordingPlatform":
        """`platform` as the motion guard should see it: every block read and every command sent
        passes through here on its way."""
        return RecordingPlatform(platform, self)

    def add_samples(self, t0_s: float, rows: np.ndarray, drive: float) -> None:
        """A block of samples, (n, 3) in m/s^2, read while `drive` was the last level commanded."""
        if self._closed or self.failure is not None:
            return
        n = rows.shape[0]
        start = self.samples
        block = (t0_s, start, n, drive)
        self._blocks.append(block)
        self._recent.append(block)
        self.samples = start + n
        fill = self._fill
        if fill + n < self._chunk_rows:  # the usual case: the block fits
            self._buffer[fill : fill + n] = rows
            self._fill = fill + n
            return
        done = 0
        while done < n:
            take = min(n - done, self._chunk_rows - self._fill)
            self._buffer[self._fill : self._fill + take] = rows[done : done + take]
            self._fill += take
            done += take
            if self._fill == self._chunk_rows:
                self._hand_off()

    def add_command(self, kind: str, t_s: float, frequency_hz: float, level: float, ramp_s: float) -> None:
        if not self._closed:
            self._tables[b"C"] += _ROWS[b"C"].pack(t_s, kind.encode("ascii"), frequency_hz, level, ramp_s)
            self._command_count += 1

    def add_window(self, index: int, phase: str, t_s: float, duration_s: float, *, hint_hz: float | None,
                   measured: bool) -> None:
        """A window of the procedure's own: its rows are the samples of the blocks read from `t_s`
        to `t_s + duration_s`. Also the moment to hear from the writer (a full disk...)."""
        if self._closed:
            return
        start, stop = self._rows_between(t_s, t_s + duration_s)
        self._tables[b"W"] += _ROWS[b"W"].pack(index, phase.encode("ascii"), t_s, duration_s, start, stop,
                                              math.nan if hint_hz is None else hint_hz, 1 if measured else 0,
                                              self._command_count)
        self._poll()

    def _rows_between(self, from_s: float, to_s: float) -> tuple[int, int]:
        """Rows of the blocks that start in [from_s, to_s) (half a sample of slack each way)."""
        slack = 0.5 / self.rate_hz
        start = stop = self.samples
        found = False
        for t0, first, n, _ in reversed(self._recent):
            if t0 < from_s - slack:
                break
            if t0 < to_s - slack:
                start = first
                if not found:
                    stop, found = first + n, True
        return (start, stop) if found else (self.samples, self.samples)

    def _hand_off(self) -> None:
        """Send the buffered samples and the tables' new rows to the writer."""
        pieces = []
        if self._fill:
            samples = self._encode(self._buffer[: self._fill])
            pieces += [b"S" + struct.pack("<Qq", 8 + samples.nbytes, self._handed), samples.data]
        if self._blocks:
            pack = _ROWS[b"B"].pack
            pieces.append(_frame(b"B", b"".join([pack(*block) for block in self._blocks])))
            self._blocks = []
        for kind, rows in self._tables.items():
            if rows:
                pieces.append(_frame(kind, bytes(rows)))
                rows.clear()
        self._handed += self._fill
        self._fill = 0
        self._send(*pieces)

    def _send(self, *pieces) -> None:
        """Queue `pieces` (bytes, buffers) for the writer and pass on what its pipe takes now,
        without waiting; faster than real time, at most every PUMP_INTERVAL_S (each pass wakes
        the writer, which costs more than the copy)."""
        if self.failure is None or (self._closed and not self._gone):  # the end goes even after a failure
            self._backlog.extend(memoryview(piece).cast("B") for piece in pieces)
            now = time.monotonic()
            if now - self._last_pump >= PUMP_INTERVAL_S:
                self._last_pump = now
                self._pump(0.0)

    def _pump(self, timeout_s: float) -> None:
        """Write queued data to the writer's pipe, waiting at most `timeout_s` for room. A writer
        that takes nothing for WRITE_TIMEOUT_S once it is ready (a disk that hangs), or that has
        gone, is a failure: the procedure is told, never held up."""
        deadline = time.monotonic() + timeout_s
        backlog = self._backlog
        try:
            while backlog:
                try:  # as many of the queued pieces as the pipe takes, in one call
                    written = os.writev(self._out, list(itertools.islice(backlog, 0, 512)))
                except BlockingIOError:
                    written = 0
                if written:
                    self._waiting_since = None
                    while written and written >= len(backlog[0]):
                        written -= len(backlog.popleft())
                    if written:
                        backlog[0] = backlog[0][written:]
                    continue
                now = time.monotonic()
                self._waiting_since = self._waiting_since or now
                self._poll()
                limit = WRITE_TIMEOUT_S if self._ready else START_TIMEOUT_S
                if now - self._waiting_since > limit:
                    self.failure = self.failure or f"the disk took no signal for {limit:g} s"
                    self._gone = True
                    self._backlog.clear()
                    return
                if now >= deadline:
                    return
                select.select([], [self._out], [], min(deadline - now, 0.1))
        except OSError as exc:  # the writer is gone
            self._gone = True
            self._backlog.clear()
            self._poll()
            self.failure = self.failure or f"the archive's writer stopped ({_reason(exc)})"

    def _poll(self) -> None:
        """Hear what the writer said (without waiting): an error ends the archive."""
        while self.failure is None:
            line = self._read_status(0.0)
            if line is None:
                return
            if line == "ready":
                self._ready = True
            elif line.startswith("error "):
                self.failure = line[len("error "):]  # what is queued still goes: a frame cut short would jam the pipe

    def _read_status(self, timeout_s: float) -> str | None:
        """The writer's next line on its status pipe, waiting at most `timeout_s`; None if none."""
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._status:
            left = max(0.0, deadline - time.monotonic())
            if left > 0 and not select.select([self._in], [], [], left)[0]:
                return None
            try:
                piece = os.read(self._in, 65536)  # the pipe does not block: nothing there is an error
            except BlockingIOError:
                return None
            except OSError:
                piece = b""
            if not piece:
                if self._ready or self.failure is not None:
                    return None
                self.failure = "the archive's writer stopped before it started writing"
                return None
            self._status += piece
        line, _, self._status = self._status.partition(b"\n")
        return line.decode("utf-8", "replace")

    # -- the end --------------------------------------------------------------------------------

    def close(self, base: str | os.PathLike[str], *, status: str, reason: str | None = None,
              rename_to: str | None = None, **final: Any) -> Seal | None:
        """Hand over what is left, have the writer close the file with its final attributes and
        seal it (SHA-256). `base` is the folder the seal's file name is relative to; `rename_to`
        gives the file its final name in its folder. Never raises: a failure makes an incomplete
        seal (None when no file is left)."""
        if self._closed:
            raise ValueError("the archive is closed already")
        if self._fill or self._blocks or any(self._tables.values()):
            self._hand_off()
        self._closed = True
        counts = {"samples_not_finite": self._encode.nonfinite, "samples_inexact": self._encode.inexact}
        end = {"attrs": {"status": status, "reason": reason, **counts, **final}, "base": str(base),
               "rename_to": rename_to}
        self._send(_frame(b"E", json.dumps(end).encode("utf-8")))
        self._pump(CLOSE_TIMEOUT_S)
        seal = None
        problem = self.failure
        deadline = time.monotonic() + CLOSE_TIMEOUT_S
        while True:
            line = self._read_status(max(0.0, deadline - time.monotonic()))
            if line is None:
                problem = problem or "the archive's writer did not finish"
                break
            if line.startswith("error "):
                problem = problem or line[len("error "):]
            elif line.startswith("seal "):
                seal = Seal(**json.loads(line[len("seal "):]))
                break
        self._reap()
        if rename_to is not None and seal is None:
            renamed = self.path.with_name(rename_to)
            if renamed.exists():
                self.path = renamed
        if seal is None:
            seal = seal_as_found(self.path, Path(base), "")
        if seal is None:
            return None
        if problem is not None:
            note = f"the raw signal could not be written whole: {problem}"
            seal = Seal(seal.file, seal.sha256, seal.bytes, seal.samples, False, note)
        self.failure = problem
        return seal

    def discard(self) -> None:
        """Stop and remove the file (a procedure that left no record to chain it to)."""
        if not self._closed:
            self._closed = True
            self._backlog.clear()
            self._send(_frame(b"X", b""))
            self._pump(CLOSE_TIMEOUT_S)
            self._read_status(CLOSE_TIMEOUT_S)
            self._reap()
        self.path.unlink(missing_ok=True)

    def _reap(self) -> None:
        """Close the pipes and wait for the writer to end (it removes its mark; if it died without
        doing so, the mark goes here)."""
        process = self._process
        for stream in (process.stdin, process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        try:
            process.wait(CLOSE_TIMEOUT_S)
        except Exception:
            process.kill()
            process.wait()
        writer_mark(self.path).unlink(missing_ok=True)


# -- the writer process -------------------------------------------------------------------------

CLOSE_TIMEOUT_S = 60.0
"""How long closing may take (the last chunks, the final attributes, fsync, SHA-256)."""
START_TIMEOUT_S = 60.0
"""How long the writer may take to start (a fresh interpreter importing numpy and h5py, on a
loaded machine) before its silence counts as a failure."""
FLUSH_INTERVAL_S = 0.25
"""The writer flushes once nothing more has come for this long, or this long after the last flush
when data keeps coming (a simulated session faster than real time): in real time, after every
chunk."""
DISK_RESERVE_BYTES = 4 << 20
"""The writer stops taking samples when the disk has less room than this (and the chunk) left: a
write that fails midway leaves HDF5's metadata naming data that never reached the disk, while this
room lets the file close whole and the dose log write the session's end."""
PIPE_BYTES = 1 << 20
"""The pipe to the writer holds this much (about 4 s of a 3-axis 3200 Hz sensor)."""


def _frame(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("<Q", len(payload)) + payload


def _start_writer():
    """Start the writer: a fresh interpreter (nothing shared with this process), in a session of
    its own so that Ctrl-C reaches only livctl, which then closes the archive. Its stdin is the
    data pipe, its stdout the status lines."""
    import subprocess

    package_root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
    process = subprocess.Popen(
        [sys.executable, "-c", "from livctl.archive import _writer_main; _writer_main()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
        start_new_session=True, close_fds=True,
    )
    try:
        import fcntl

        fcntl.fcntl(process.stdin.fileno(), 1031, PIPE_BYTES)  # F_SETPIPE_SZ; the default 64 KiB works too
    except (OSError, ImportError):
        pass
    os.set_blocking(process.stdin.fileno(), False)
    os.set_blocking(process.stdout.fileno(), False)
    return process


def _writer_main() -> None:
    """The writer process: its first frame says what to write."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the procedure stops and closes the archive itself
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    writer = _Writer(0, 1)
    opening = writer.receive()
    if opening is not None and opening[0] == b"O":
        spec = json.loads(opening[1])
        try:
            writer.run(spec)
        finally:
            writer_mark(Path(spec["path"])).unlink(missing_ok=True)
    os._exit(0)  # the file is closed and on disk: nothing left for an interpreter shutdown to do


class _DiskFull(Exception):
    """The disk is about to be full: the writer stops before HDF5 would fail midway."""


class _Unwritable(Exception):
    """The file cannot take its final attributes (a write failed): it is sealed as it is."""


class _Writer:
    """The writer process: creates the file, appends what the pipe brings, flushes when the pipe
    is empty, and closes the file (with its final attributes) at the end, or when the procedure's
    process went away without closing it."""

    def __init__(self, data_fd: int, status_fd: int):
        self.data_fd = data_fd
        self.status_fd = status_fd
        self.error: str | None = None
        self.broken = False
        """True once an HDF5 call failed: from then on the file is not touched."""
        self.dirty = False
        self.flushed = 0
        """Sample rows on disk as of the last flush."""
        self.unflushed = 0
        """Bytes of samples appended since (at most what the next flush writes)."""
        self.rows = {"accel": 0, "blocks": 0, "commands": 0, "windows": 0}

    def configure(self, spec: dict) -> None:
        self.spec = spec
        self.path = Path(spec["path"])
        self.dtype = np.dtype(spec["dtype"])
        self.scale = float(spec["scale"])
        self.integer = self.dtype.kind == "i"
        self.missing = int(np.iinfo(self.dtype).min) if self.integer else None

    def say(self, line: str) -> None:
        try:
            os.write(self.status_fd, (line.replace("\n", " ") + "\n").encode("utf-8"))
        except OSError:
            pass

    def run(self, spec: dict) -> None:
        try:
            self.configure(spec)
            self.file = self.create()
        except Exception as exc:
            self.say(f"error {_reason(exc)}")
            return
        self.say("ready")
        ended = None
        self.pending = {b"B": [], b"C": [], b"W": []}
        last_flush = time.monotonic()
        while ended is None:
            if self.dirty and self.error is None:  # flush once nothing more comes for a while
                wait = last_flush + FLUSH_INTERVAL_S - time.monotonic()
                if wait <= 0 or not select.select([self.data_fd], [], [], wait)[0]:
                    try:
                        self.flush()
                    except Exception as exc:
                        self.fail(exc)
                    last_flush = time.monotonic()
                    continue
            message = self.receive()
            if message is None:  # the procedure's process went away without closing
                ended = {"attrs": {"status": "unfinished",
                                   "reason": "the livctl process ended before it closed the archive"}}
                break
            kind, payload = message
            if kind == b"X":
                self.discard()
                self.say("discarded")
                return
            if kind == b"E":
                ended = json.loads(payload)
                break
            if self.error is not None:
                continue  # said already; the procedure stops and closes
            try:
                self.handle(kind, payload)
            except _DiskFull as exc:  # stopped before the disk was full: what is written is whole
                self.error = str(exc)
                self.say(f"error {self.error}")
            except Exception as exc:
                self.fail(exc)
        if not self.broken:
            try:
                self.flush()
            except Exception as exc:
                self.fail(exc)
        self.finish(ended)

    def fail(self, exc: BaseException) -> None:
        """An HDF5 call failed: the file is left as its last flush made it."""
        self.broken = True
        self.error = self.error or _reason(exc)
        self.say(f"error {self.error}")

    def flush(self) -> None:
        """The tables' new rows, then everything to disk (readable from here on, whatever happens)."""
        for kind, name, dtype in ((b"B", "blocks", BLOCK_DTYPE), (b"C", "commands", COMMAND_DTYPE),
                                  (b"W", "windows", WINDOW_DTYPE)):
            if self.pending[kind]:
                self.append(name, np.frombuffer(b"".join(self.pending[kind]), dtype=dtype), self.rows[name])
                self.pending[kind] = []
        self.file.flush()
        self.dirty = False
        self.flushed = self.rows["accel"]
        self.unflushed = 0

    def receive(self) -> tuple[bytes, bytes] | None:
        header = self.read_exact(9)
        if header is None:
            return None
        size = struct.unpack("<Q", header[1:])[0]
        payload = self.read_exact(size) if size else b""
        return None if payload is None else (header[:1], payload)

    def read_exact(self, size: int) -> bytes | None:
        buffer = bytearray(size)
        view = memoryview(buffer)
        while view:
            got = os.readv(self.data_fd, [view])
            if not got:
                return None
            view = view[got:]
        return bytes(buffer)

    def create(self):
        import h5py

        from livctl import __version__
        from livctl.clock import utc_now

        spec = self.spec
        f = h5py.File(self.path, "w-", libver=("v110", "v110"))
        try:
            _set_attributes(f.attrs, {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": spec["kind"],
                                      "livctl_version": __version__, "started_utc": _iso(utc_now()),
                                      "rate_hz": spec["rate_hz"], "axes": "x,y,z", **spec["metadata"]})
            if self.integer:  # counts: HDF5's scale-offset filter packs them in the bits they need, losslessly
                packing = {"scaleoffset": 0, "fillvalue": self.missing}
            else:
                packing = {"compression": "gzip", "compression_opts": DEFLATE_LEVEL, "shuffle": True}
            accel = f.create_dataset("accel", shape=(0, 3), maxshape=(None, 3), dtype=self.dtype,
                                     chunks=(spec["chunk_rows"], 1), **packing)
            _set_attributes(accel.attrs, {"scale_factor": self.scale, "units": "m/s^2", "axes": "x,y,z",
                                          "rate_hz": spec["rate_hz"], "missing_value": self.missing})
            self.datasets = {"accel": accel}
            for name, dtype in (("blocks", BLOCK_DTYPE), ("commands", COMMAND_DTYPE), ("windows", WINDOW_DTYPE)):
                self.datasets[name] = f.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype,
                                                       chunks=(TABLE_CHUNK_ROWS,))
            f.swmr_mode = True
        except Exception:
            f.close()
            self.path.unlink(missing_ok=True)
            raise
        return f

    def handle(self, kind: bytes, payload: bytes) -> None:
        """Samples are appended at once; table rows wait for the next flush (one write each)."""
        if kind == b"S":
            free = os.statvfs(self.path.parent)
            needed = self.spec.get("reserve_bytes", DISK_RESERVE_BYTES) + self.unflushed + len(payload)
            if free.f_bavail * free.f_frsize < needed:  # what waits in HDF5's cache counts too
                raise _DiskFull("the disk is full (the archive stopped with room left to close itself and "
                                "for the dose log)")
            self.unflushed += len(payload)
            first = struct.unpack("<q", payload[:8])[0]
            self.append("accel", np.frombuffer(payload, dtype=self.dtype, offset=8).reshape(-1, 3), first)
        else:
            self.pending[kind].append(payload)
        self.dirty = True

    def append(self, name: str, values: np.ndarray, at: int) -> None:
        """Write `values` as rows `at`... of a dataset, growing it (HDF5's own calls)."""
        import h5py

        if not values.shape[0]:
            return
        values = np.ascontiguousarray(values)
        dsid = self.datasets[name].id
        dsid.set_extent((at + values.shape[0],) + values.shape[1:])
        file_space = dsid.get_space()
        file_space.select_hyperslab((at,) + (0,) * (values.ndim - 1), values.shape)
        dsid.write(h5py.h5s.create_simple(values.shape), file_space, values)
        self.rows[name] = at + values.shape[0]

    def finish(self, ended: dict) -> None:
        """Close the file, write the final attributes, make it durable, name it, seal it. After a
        failed write the file is left as its last flush made it (closing would write metadata
        that names what never reached the disk): readable in SWMR mode, sealed as it is."""
        import h5py

        from livctl.clock import utc_now

        problem = self.error
        if self.broken:
            try:
                with open(self.path, "rb+") as raw_file:
                    os.fsync(raw_file.fileno())
            except OSError:
                pass
            ended = dict(ended, rename_to=None)
        else:
            try:
                self.file.close()
            except Exception as exc:
                self.broken = True
                problem = problem or _reason(exc)
        try:
            if self.broken:
                raise _Unwritable(problem)
            with h5py.File(self.path, "r+") as f:
                samples = int(f["accel"].shape[0])
                _set_attributes(f.attrs, {"ended_utc": _iso(utc_now()), "samples": samples,
                                          "duration_s": samples / self.spec["rate_hz"],
                                          "write_failure": problem, **ended["attrs"]})
                f.attrs["complete"] = 0 if problem or "base" not in ended else 1
            with open(self.path, "rb+") as raw:
                os.fsync(raw.fileno())
            if ended.get("rename_to"):
                target = self.path.with_name(ended["rename_to"])
                os.replace(self.path, target)
                self.path = target
        except _Unwritable:
            pass
        except Exception as exc:
            problem = problem or _reason(exc)
            self.say(f"error {problem}")
        writer_mark(Path(self.spec["path"])).unlink(missing_ok=True)
        if "base" not in ended:
            return  # nobody to tell: the next livctl that opens the log seals it as found
        found = seal_as_found(self.path, Path(ended["base"]), "", self.flushed if self.broken else None)
        if found is None:
            self.say(f"error the archive {self.path} is gone")
            return
        self.say("seal " + json.dumps(Seal(found.file, found.sha256, found.bytes, found.samples, problem is None,
                                           None).record()))

    def discard(self) -> None:
        try:
            self.file.close()
        except Exception:
            pass
        self.path.unlink(missing_ok=True)
        writer_mark(self.path).unlink(missing_ok=True)


class RecordingPlatform:
    """A platform seen through its archive: `read` and every drive command are recorded on their
    way; everything else is the platform's own."""

    def __init__(self, platform, archive: RawArchive):
        self._platform = platform
        self._archive = archive
        self._now_s = math.nan
        self._frequency_hz = math.nan

    def __getattr__(self, name: str):
        return getattr(self._platform, name)

    def read(self, duration_s: float):
        block = self._platform.read(duration_s)
        self._now_s = block.t0_s + duration_s
        self._archive.add_samples(block.t0_s, block.accel_mps2, self._platform.commanded_drive)
        return block

    def wait(self, duration_s: float) -> float:
        t0_s = self._platform.wait(duration_s)
        self._now_s = t0_s + duration_s
        return t0_s

    def set_frequency(self, frequency_hz: float) -> None:
        self._platform.set_frequency(frequency_hz)
        self._frequency_hz = frequency_hz
        self._record("frequency", self._platform.commanded_drive, 0.0)

    def set_drive(self, level: float, ramp_s: float) -> float:
        try:
            commanded = self._platform.set_drive(level, ramp_s)
        except DriveRequestError:
            self._record("cut", 0.0, 0.0)  # a refused request cuts the drive
            raise
        self._record("drive", commanded, ramp_s)
        return commanded

    def cut_drive(self) -> None:
        self._platform.cut_drive()
        self._record("cut", 0.0, 0.0)

    def limit_drive(self, ceiling: float) -> float:
        limit = self._platform.limit_drive(ceiling)
        self._record("ceiling", limit, 0.0)
        return limit

    def _record(self, kind: str, level: float, ramp_s: float) -> None:
        self._archive.add_command(kind, self._now_s, self._frequency_hz, level, ramp_s)


# -- reading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveData:
    """An archive as read back: the samples in m/s^2 and its tables."""

    path: Path
    attrs: dict[str, Any]
    rate_hz: float
    accel_mps2: np.ndarray
    """(n, 3) m/s^2, column-major; NaN where a sample was not a number."""
    blocks: np.ndarray
    commands: np.ndarray
    windows: np.ndarray

    @property
    def complete(self) -> bool:
        return bool(self.attrs.get("complete", 0))

    def window(self, index: int) -> np.void | None:
        hits = np.flatnonzero(self.windows["index"] == index)
        return self.windows[hits[-1]] if hits.size else None

    def times_s(self) -> np.ndarray:
        """Each sample's sensor time, from its block's t0_s."""
        t = np.empty(self.accel_mps2.shape[0])
        for b in self.blocks:
            start, n = int(b["start"]), int(b["n"])
            n = max(0, min(n, t.shape[0] - start))
            t[start : start + n] = b["t0_s"] + np.arange(n) / self.rate_hz
        return t


def read_archive(path: str | os.PathLike[str]) -> ArchiveData:
    """Read an archive (one whose writer died too); ArchiveError when it is not a readable one."""
    path = Path(path)
    try:
        with open_hdf5(path) as f:
            attrs = {k: _plain(v) for k, v in f.attrs.items()}
            if attrs.get("format") != FORMAT:
                raise ArchiveError(f"{path} is an HDF5 file but not a livctl raw-signal archive")
            if int(attrs.get("format_version", 0)) > FORMAT_VERSION:
                raise ArchiveError(f"{path} is a raw-signal archive of a newer format "
                                   f"({attrs['format_version']}); upgrade livctl")
            ds = f["accel"]
            scale = float(ds.attrs["scale_factor"])
            stored = ds[...]
            accel = np.empty(stored.shape, order="F")
            for i in range(stored.shape[1]):
                np.multiply(stored[:, i], scale, out=accel[:, i], dtype=np.float64)
            if "missing_value" in ds.attrs:
                accel[stored == ds.attrs["missing_value"]] = np.nan
            return ArchiveData(path, attrs, float(attrs["rate_hz"]), accel, f["blocks"][...], f["commands"][...],
                               f["windows"][...])
    except ArchiveError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise ArchiveError(f"cannot read the raw-signal archive {path}: {_reason(exc)}") from None


# -- helpers ------------------------------------------------------------------------------------


def _set_attributes(attrs, values: dict[str, Any]) -> None:
    """Scalars as HDF5 attributes: booleans as 0/1, None left out (HDF5 has no null)."""
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = int(value)
        attrs[key] = value


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path.resolve())


def _iso(moment) -> str:
    from livctl.doselog import iso_utc

    return iso_utc(moment)


def _reason(exc: BaseException) -> str:
    """One line for a person: the system's words for an OS error (HDF5 wraps them in its own)."""
    text = str(exc)
    for known in ("No space left on device", "Disk quota exceeded", "File too large", "Read-only file system",
                  "Permission denied", "Input/output error"):
        if known.lower() in text.lower():
            return known.lower()
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
