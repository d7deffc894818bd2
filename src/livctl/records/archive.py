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

Writing: the procedure keeps each block as the platform returned it and hands whole seconds of
signal (with the tables' new rows) to a writer thread: in real time each second as soon as it is
whole, faster than real time in batches at most every 0.2 s. The writer packs the counts (HDF5's
scale-offset filter; floats: shuffle + deflate), appends them and flushes the file in HDF5's
single-writer mode (SWMR), so that the file on disk is always readable: a crash loses less than the
last second of signal. A file whose writer died with livctl is marked as still open for writing:
it opens with `h5py.File(path, "r", swmr=True)`, or in any HDF5 reader after HDF5's `h5clear -s`;
livctl's readers do that by themselves. At the end the writer adds the final attributes, makes
the file durable (fsync), and `close` returns its SHA-256 (`Seal`), which the dose log chains.

A write that fails (a full disk) never raises inside the motion path: the archive stops and says
so in `failure`, which the session checks after each window (it then stops safely and logs why).
"""

from __future__ import annotations

import hashlib
import math
import os
import resource
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from livctl.errors import DriveRequestError, UsageError

__all__ = ["RawArchive", "ArchiveData", "ArchiveError", "Seal", "prepare_dir", "read_archive", "sealed_problem"]

FORMAT = "livctl raw signal"
FORMAT_VERSION = 1
SUFFIX = ".archive"
"""A record's archives live in the folder named after its file plus this."""
CHUNK_S = 1.0
"""Signal per chunk (and per HDF5 chunk of an axis): in real time the writer is handed each chunk
as soon as it is whole and flushes it at once, so a crash loses less than this."""
HAND_OFF_INTERVAL_S = 0.2
"""Chunks go to the writer at most this often (wall time): in real time every chunk goes as soon as
it is whole; a simulated session run faster than real time hands them over in batches."""
BATCH_BYTES = 8 << 20
"""The most samples (as float64) kept for the writer between two hand-offs; a batch's samples are
the blocks as the platform returned them, joined by the writer."""
DEFLATE_LEVEL = 1
"""zlib level for samples that are not counts (floats): 1 compresses nearly as well as 9, several
times faster. Counts are packed by HDF5's scale-offset filter instead (smaller and faster still)."""
WRITE_TIMEOUT_S = 5.0
"""A writer that stays MAX_BATCHES behind for this long (a disk that hangs) stops the archive: the
procedure is told, rather than held up."""
TABLE_CHUNK_ROWS = 256
PHASE_BYTES = 10

BLOCK_DTYPE = np.dtype([("t0_s", "<f8"), ("start", "<i8"), ("n", "<i4"), ("drive", "<f8")])
COMMAND_DTYPE = np.dtype([("t_s", "<f8"), ("kind", "S10"), ("frequency_hz", "<f8"), ("level", "<f8"),
                          ("ramp_s", "<f8")])
WINDOW_DTYPE = np.dtype([("index", "<i4"), ("phase", f"S{PHASE_BYTES}"), ("t_s", "<f8"), ("duration_s", "<f8"),
                         ("start", "<i8"), ("stop", "<i8"), ("hint_hz", "<f8"), ("measured", "i1"),
                         ("commands", "<i4")])
_STORABLE = ("int16", "int32", "float32", "float64")
_ROWS = {"commands": struct.Struct(f"<d{COMMAND_DTYPE['kind'].itemsize}sddd"),
         "windows": struct.Struct(f"<i{PHASE_BYTES}sddqqdbi")}
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


def seal_left_behind(path: Path, base: Path) -> Seal | None:
    """The seal of the archive of a session whose livctl process died, as the file is: its writer
    died with the process, and the file holds what it had flushed. None when there is no file."""
    return seal_as_found(path, base, "the livctl process ended without closing the session: sealed as found")


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

    The procedure only keeps each block (the platform's own array); whole chunks go to a writer
    thread (at once in real time, at most every HAND_OFF_INTERVAL_S of wall time faster than
    that), which packs and appends them with the tables' new rows and flushes the file. HDF5's
    packing and the disk run outside the interpreter's lock, at the writer's lower priority."""

    def __init__(self, path: str | os.PathLike[str], *, kind: str, rate_hz: float,
                 sample_format: tuple[str, float] = ("float64", 1.0), metadata: dict[str, Any] | None = None):
        self.path = Path(path)
        dtype, scale = sample_format
        if dtype not in _STORABLE or not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"cannot store samples as {sample_format!r}")
        self.rate_hz = float(rate_hz)
        self.samples = 0
        self._chunk_rows = max(1, int(round(CHUNK_S * self.rate_hz)))
        self._capacity = max(2 * self._chunk_rows, BATCH_BYTES // 24)
        self._pending: list[np.ndarray] = []
        """Blocks not yet handed over (the platform's own arrays: a block is never written to after
        `read` returns it, which the session's windows rely on too)."""
        self._fill = 0
        self._handed = 0
        self._last_hand_off = -math.inf
        self._blocks: list[tuple] = []
        self._command_count = 0
        self._tables = {"commands": bytearray(), "windows": bytearray()}
        """Rows of the commands and windows tables not yet handed over, as bytes."""
        self._recent: deque = deque(maxlen=4096)
        self._closed = False
        if self.path.exists():
            raise ArchiveError(f"the raw-signal archive {self.path} exists already; it is never overwritten")
        try:
            self._writer = _Writer(self.path, kind, self.rate_hz, dtype, float(scale), self._chunk_rows, metadata or {})
        except (OSError, ValueError, RuntimeError) as exc:
            raise ArchiveError(f"cannot create the raw-signal archive {self.path}: {_reason(exc)}") from None
        self._thread = threading.Thread(target=self._writer.run, name=f"archive {self.path.name}", daemon=True)
        self._thread.start()

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

    @property
    def failure(self) -> str | None:
        """Why the archive stopped writing (a full disk, a disk that does not answer), or None."""
        return self._writer.error

    # -- what the procedure hands over (never raises: a failure is kept in `failure`) -------------

    def watch(self, platform) -> "RecordingPlatform":
        """`platform` as the motion guard should see it: every block read and every command sent
        passes through here on its way."""
        return RecordingPlatform(platform, self)

    def add_samples(self, t0_s: float, rows: np.ndarray, drive: float) -> None:
        """A block of samples, (n, 3) in m/s^2, read while `drive` was the last level commanded."""
        if self._closed or self._writer.error is not None:
            return
        n = rows.shape[0]
        start = self.samples
        block = (t0_s, start, n, drive)
        self._blocks.append(block)
        self._recent.append(block)
        self.samples = start + n
        if n:
            self._pending.append(rows)
            fill = self._fill = self._fill + n
            if fill >= self._chunk_rows and (fill >= self._capacity or
                                             time.monotonic() - self._last_hand_off >= HAND_OFF_INTERVAL_S):
                self._hand_off()

    def add_command(self, kind: str, t_s: float, frequency_hz: float, level: float, ramp_s: float) -> None:
        if not self._closed:
            self._tables["commands"] += _ROWS["commands"].pack(t_s, kind.encode("ascii"), frequency_hz, level, ramp_s)
            self._command_count += 1

    def add_window(self, index: int, phase: str, t_s: float, duration_s: float, *, hint_hz: float | None,
                   measured: bool) -> None:
        """A window of the procedure's own: its rows are the samples of the blocks read from `t_s`
        to `t_s + duration_s`."""
        if self._closed:
            return
        start, stop = self._rows_between(t_s, t_s + duration_s)
        self._tables["windows"] += _ROWS["windows"].pack(index, phase.encode("ascii"), t_s, duration_s, start, stop,
                                                         math.nan if hint_hz is None else hint_hz,
                                                         1 if measured else 0, self._command_count)

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

    def _hand_off(self, *, everything: bool = False) -> None:
        """Give the writer the whole chunks of samples waiting (with `everything`, the rest too)
        and the tables' new rows."""
        self._last_hand_off = time.monotonic()
        fill = self._fill
        whole = fill if everything else fill - fill % self._chunk_rows
        handed, kept, count = [], [], 0
        for rows in self._pending:
            n = rows.shape[0]
            if count + n <= whole:
                handed.append(rows)
            elif count >= whole:
                kept.append(rows)
            else:  # the block the chunk ends in: its first part goes, the rest waits
                handed.append(rows[: whole - count])
                kept.append(rows[whole - count :])
            count += n
        tables = {name: bytes(rows) for name, rows in self._tables.items() if rows}
        for rows in self._tables.values():
            rows.clear()
        self._writer.hand(handed, whole, self._handed, self._blocks, tables)
        self._pending = kept
        self._blocks = []
        self._handed += whole
        self._fill = fill - whole

    # -- the end --------------------------------------------------------------------------------

    def close(self, base: str | os.PathLike[str], *, status: str, reason: str | None = None,
              rename_to: str | None = None, **final: Any) -> Seal | None:
        """Hand over what is left, let the writer finish, close the file with its final attributes
        and seal it (SHA-256). `base` is the folder the seal's file name is relative to;
        `rename_to` gives the file its final name in its folder. Never raises: a failure makes an
        incomplete seal (None when no file is left)."""
        if self._closed:
            raise ValueError("the archive is closed already")
        if self._fill or self._blocks or any(self._tables.values()):
            self._hand_off(everything=True)
        self._closed = True
        writer = self._writer
        writer.hand(None, 0, 0, [], {})
        self._thread.join(CLOSE_TIMEOUT_S)
        if self._thread.is_alive():  # a disk that does not answer holds the writer: seal what is there
            writer.error = writer.error or f"the disk took no signal for {CLOSE_TIMEOUT_S:g} s"
            return _incomplete(seal_as_found(self.path, Path(base), ""), writer.error)
        self.path = writer.finish({"status": status, "reason": reason, **final}, rename_to)
        found = seal_as_found(self.path, Path(base), "", writer.flushed if writer.broken else None)
        return _incomplete(found, writer.error) if writer.error else _complete(found)

    def discard(self) -> None:
        """Stop and remove the file (a procedure that left no record to chain it to)."""
        if not self._closed:
            self._closed = True
            self._writer.hand(None, 0, 0, [], {})
            self._thread.join(CLOSE_TIMEOUT_S)
            self._writer.close_quietly()
        self.path.unlink(missing_ok=True)


def _complete(found: Seal | None) -> Seal | None:
    return None if found is None else Seal(found.file, found.sha256, found.bytes, found.samples, True, None)


def _incomplete(found: Seal | None, problem: str) -> Seal | None:
    if found is None:
        return None
    return Seal(found.file, found.sha256, found.bytes, found.samples, False,
                f"the raw signal could not be written whole: {problem}")


# -- the writer thread --------------------------------------------------------------------------

CLOSE_TIMEOUT_S = 60.0
"""How long the writer may take to finish what it was handed when the procedure closes."""
FLUSH_INTERVAL_S = 0.25
"""Handed faster than real time, the writer flushes at least this often (wall time); in real time
it flushes every chunk it is handed."""
DISK_RESERVE_BYTES = 4 << 20
"""The writer stops taking samples when the disk has less room than this (and the batch) left: a
write that fails midway leaves HDF5's metadata naming data that never reached the disk, while this
room lets the file close whole and the dose log write the session's end."""
FILE_LIMIT_RESERVE_BYTES = 256 << 10
"""Under a limit on the size of one file (RLIMIT_FSIZE), the writer stops this far below it: HDF5,
once a write of its has failed, cannot close the file and crashes the process at exit."""
MAX_BATCHES = 8
"""Batches that may wait for the writer; more means a disk that does not keep up."""
PIECE_CHUNKS = 8
"""The writer packs a batch this many chunks at a time."""
WRITER_NICENESS = 10
"""The writer thread's scheduling priority below the procedure's (Linux schedules threads apart):
in real time it needs a fraction of a millisecond per second of signal, so it never falls behind."""


class _DiskFull(Exception):
    """The disk is about to be full: the writer stops before HDF5 would fail midway."""


class _Writer:
    """Creates the file (in the procedure's thread: a file that cannot be created is refused at
    once), then, in a thread of its own, packs and appends each batch it is handed, flushes, and
    at the end adds the final attributes. After an HDF5 call fails, the file is left as its last
    flush made it (closing it would write metadata naming what never reached the disk)."""

    def __init__(self, path: Path, kind: str, rate_hz: float, dtype: str, scale: float, chunk_rows: int,
                 metadata: dict[str, Any]):
        import h5py

        from livctl import __version__
        from livctl.clock import utc_now

        self.path = path
        self.rate_hz = rate_hz
        self.chunk_rows = chunk_rows
        self.encode = _Encoder(dtype, scale)
        self.error: str | None = None
        self.broken = False
        """True once an HDF5 call failed: from then on the file is not touched."""
        self.flushed = 0
        """Sample rows on disk as of the last flush."""
        self.rows = {"accel": 0, "blocks": 0, "commands": 0, "windows": 0}
        self.batches: deque = deque()
        self.ready = threading.Condition()
        path.parent.mkdir(parents=True, exist_ok=True)
        f = h5py.File(path, "w-", libver=("v110", "v110"))
        try:
            _set_attributes(f.attrs, {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind,
                                      "livctl_version": __version__, "started_utc": _iso(utc_now()),
                                      "rate_hz": rate_hz, "axes": "x,y,z", **metadata})
            missing = self.encode.missing
            if self.encode.integer:  # counts: HDF5's scale-offset filter packs them in the bits they need, losslessly
                packing = {"scaleoffset": 0, "fillvalue": missing}
            else:
                packing = {"compression": "gzip", "compression_opts": DEFLATE_LEVEL, "shuffle": True}
            accel = f.create_dataset("accel", shape=(0, 3), maxshape=(None, 3), dtype=self.encode.dtype,
                                     chunks=(chunk_rows, 1), **packing)
            _set_attributes(accel.attrs, {"scale_factor": scale, "units": "m/s^2", "axes": "x,y,z",
                                          "rate_hz": rate_hz, "missing_value": missing})
            self.datasets = {"accel": accel}
            for name, table_dtype in (("blocks", BLOCK_DTYPE), ("commands", COMMAND_DTYPE), ("windows", WINDOW_DTYPE)):
                self.datasets[name] = f.create_dataset(name, shape=(0,), maxshape=(None,), dtype=table_dtype,
                                                       chunks=(TABLE_CHUNK_ROWS,))
            f.swmr_mode = True
        except Exception:
            f.close()
            path.unlink(missing_ok=True)
            raise
        self.file = f

    # -- the procedure's side -------------------------------------------------------------------

    def hand(self, blocks, rows: int, first: int, table_blocks: list, tables: dict) -> None:
        """Queue a batch: arrays of samples holding `rows` rows from row `first` (None: the end).
        Never waits long: a writer more than MAX_BATCHES behind for WRITE_TIMEOUT_S is a failure."""
        with self.ready:
            if blocks is not None and len(self.batches) >= MAX_BATCHES:
                if not self.ready.wait_for(lambda: len(self.batches) < MAX_BATCHES or self.error, WRITE_TIMEOUT_S):
                    self.error = self.error or f"the disk took no signal for {WRITE_TIMEOUT_S:g} s"
            if self.error is not None and blocks is not None:
                return
            self.batches.append(None if blocks is None else (blocks, rows, first, table_blocks, tables))
            self.ready.notify_all()

    # -- the writer's side ------------------------------------------------------------------------

    def run(self) -> None:
        try:  # behind the procedure (and the motion guard) when both want the processor
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WRITER_NICENESS)
        except (AttributeError, OSError):
            pass
        last_flush = time.monotonic()
        pending = {"blocks": [], "commands": [], "windows": []}
        while True:
            with self.ready:
                self.ready.wait_for(lambda: self.batches)
                batch = self.batches[0]
            if batch is None:
                break
            arrays, rows, first, blocks, tables = batch
            if self.error is None:
                try:
                    if arrays:
                        self.append_samples(np.concatenate(arrays) if len(arrays) > 1 else arrays[0], first)
                    if blocks:
                        pending["blocks"].append(np.array(blocks, dtype=BLOCK_DTYPE))
                    for name, data in tables.items():
                        pending[name].append(np.frombuffer(data, dtype=TABLE_DTYPES[name]))
                    with self.ready:
                        more = len(self.batches) > 1
                    if not more or time.monotonic() - last_flush >= FLUSH_INTERVAL_S:
                        self.flush(pending)
                        last_flush = time.monotonic()
                except _DiskFull as exc:  # stopped before the disk was full: what is written is whole
                    self.error = str(exc)
                except Exception as exc:
                    self.broken = True
                    self.error = self.error or _reason(exc)
            with self.ready:
                self.batches.popleft()
                self.ready.notify_all()
        if self.error is None or not self.broken:
            try:
                self.flush(pending)
            except Exception as exc:
                self.broken = True
                self.error = self.error or _reason(exc)

    def append_samples(self, samples: np.ndarray, first: int) -> None:
        """Pack and append, a few chunks at a time (a piece stays in the processor's cache, and a
        disk that fills up is noticed within a piece)."""
        step = PIECE_CHUNKS * self.chunk_rows
        for at in range(0, samples.shape[0], step):
            stored = np.ascontiguousarray(self.encode(samples[at : at + step]))
            if not self.room_for(stored.nbytes):
                if self.rows["accel"] > self.flushed:
                    self.flush_samples()  # what HDF5 still caches may take less room than counted
                if not self.room_for(stored.nbytes):
                    raise _DiskFull("the disk is full, or the file at its size limit (the archive stopped with "
                                    "room left to close itself and for the dose log)")
            self.append("accel", stored, first + at)

    def room_for(self, nbytes: int) -> bool:
        """Whether the disk keeps DISK_RESERVE_BYTES free after `nbytes` more and what HDF5 still
        caches (counted unpacked: the most it can take)."""
        free = os.statvfs(self.path.parent)
        cached = (self.rows["accel"] - self.flushed) * 3 * self.encode.dtype.itemsize
        if free.f_bavail * free.f_frsize < DISK_RESERVE_BYTES + cached + nbytes:
            return False
        limit, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
        if limit != resource.RLIM_INFINITY:
            size = os.path.getsize(self.path)
            return size + cached + nbytes + FILE_LIMIT_RESERVE_BYTES <= limit
        return True

    def flush_samples(self) -> None:
        self.file.flush()
        self.flushed = self.rows["accel"]

    def flush(self, pending: dict) -> None:
        """The tables' new rows, then everything to disk (readable from here on, whatever happens)."""
        for name, parts in pending.items():
            if parts:
                self.append(name, np.concatenate(parts), self.rows[name])
                parts.clear()
        self.file.flush()
        self.flushed = self.rows["accel"]

    def append(self, name: str, values: np.ndarray, at: int) -> None:
        """Write `values` as rows `at`... of a dataset, growing it (HDF5's own calls)."""
        import h5py

        dsid = self.datasets[name].id
        dsid.set_extent((at + values.shape[0],) + values.shape[1:])
        file_space = dsid.get_space()
        file_space.select_hyperslab((at,) + (0,) * (values.ndim - 1), values.shape)
        dsid.write(h5py.h5s.create_simple(values.shape), file_space, values)
        self.rows[name] = at + values.shape[0]

    def finish(self, attrs: dict, rename_to: str | None) -> Path:
        """Close the file, write the final attributes, make it durable, name it; returns its path.
        After a failed HDF5 call the file is only made durable, as it is."""
        import h5py

        from livctl.clock import utc_now

        if not self.broken:
            try:
                self.file.close()
            except Exception as exc:
                self.broken = True
                self.error = self.error or _reason(exc)
        try:
            if not self.broken:
                with h5py.File(self.path, "r+") as f:
                    samples = int(f["accel"].shape[0])
                    _set_attributes(f.attrs, {"ended_utc": _iso(utc_now()), "samples": samples,
                                              "duration_s": samples / self.rate_hz,
                                              "samples_not_finite": self.encode.nonfinite,
                                              "samples_inexact": self.encode.inexact,
                                              "write_failure": self.error, **attrs})
                    f.attrs["complete"] = 0 if self.error else 1
            with open(self.path, "rb+") as raw_file:
                os.fsync(raw_file.fileno())
            if rename_to is not None and not self.broken:
                target = self.path.with_name(rename_to)
                os.replace(self.path, target)
                self.path = target
        except Exception as exc:
            self.error = self.error or _reason(exc)
        return self.path

    def close_quietly(self) -> None:
        try:
            self.file.close()
        except Exception:
            pass


TABLE_DTYPES = {"blocks": BLOCK_DTYPE, "commands": COMMAND_DTYPE, "windows": WINDOW_DTYPE}


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

    # what the motion guard asks for every block, passed on without the detour of __getattr__
    has_sensor = property(lambda self: self._platform.has_sensor)
    sensor_range_mps2 = property(lambda self: self._platform.sensor_range_mps2)
    sensor_rate_hz = property(lambda self: self._platform.sensor_rate_hz)
    max_drive = property(lambda self: self._platform.max_drive)
    commanded_drive = property(lambda self: self._platform.commanded_drive)

    def prefetch(self, duration_s: float) -> None:
        self._platform.prefetch(duration_s)

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
        elif isinstance(value, str):
            value = str(value)  # a str-valued enum (a session's status) as the plain string HDF5 takes
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
    from livctl.records.doselog import iso_utc

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
