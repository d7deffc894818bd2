"""Files livctl reads (profiles, regimens, calibrations, configuration) and writes (calibrations,
exports, reports).

Reading is bounded: only a regular file is read (a FIFO would block, /dev/zero never ends, a
directory is no file), at most `MAX_INPUT_BYTES` of it; every failure is one line naming the file.
TOML files are parsed and their fields checked by `livctl.records.tomlfields`.

Writing is whole or nothing: a file is written beside its destination under a temporary name,
flushed to disk, and only then renamed (or linked) into place, so a crash, a full disk or Ctrl-C
never leaves half a file where a reader would take it for the whole. Only regular files are
written: a symlink to one is written through, anything else (a FIFO, a device, a folder) is
refused rather than replaced. Missing folders are created, and each creation is announced.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from livctl.errors import UsageError

__all__ = ["MAX_INPUT_BYTES", "atomic_output", "write_atomic", "read_bounded"]

_log = logging.getLogger(__name__)

MAX_INPUT_BYTES = 1 << 20
"""The largest profile, regimen, calibration or configuration file read (1 MiB): a calibration
with ten frequency points of a hundred steps each is about 200 KiB."""


def _kind_of(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def read_bounded(path: str | os.PathLike[str], what: str, *, max_bytes: int = MAX_INPUT_BYTES,
                 error: type[UsageError] = UsageError) -> bytes:
    """The bytes of the regular file at `path` (symlinks followed), at most `max_bytes` of them.

    `what` names the file in errors ("regimen file"); each is one line of class `error`. A FIFO,
    a device, a directory or a socket is refused without being opened for reading; a file larger
    than `max_bytes` is refused after reading no more than one byte past it."""
    path = Path(path)
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{what} {path} is {_kind_of(info.st_mode)}, not a regular file; give the path of a file")
        if info.st_size > max_bytes:
            raise error(f"{what} {path} is {info.st_size:,} bytes, larger than any {what} ({max_bytes:,}); "
                        "give the right file")
        # O_NONBLOCK: should the path become a FIFO between stat and open, opening does not wait
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {(exc.strerror or str(exc)).lower()}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{what} {path} is {_kind_of(info.st_mode)}, not a regular file; give the path of a file")
        chunks, size = [], 0
        while size <= max_bytes:
            chunk = os.read(fd, min(1 << 16, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {(exc.strerror or str(exc)).lower()}") from None
    finally:
        os.close(fd)
    if size > max_bytes:
        raise error(f"{what} {path} is larger than any {what} ({max_bytes:,} bytes); give the right file")
    return b"".join(chunks)


def _destination(path: Path) -> Path:
    """Where a file written to `path` really goes, or UsageError when it must not be written.

    A regular file (or nothing yet) is written; a symlink to a regular file is written through
    (its target is replaced whole, the link stays); a FIFO, a device, a socket, a directory, a
    symlink to one of those or a dangling symlink is refused: replacing it would silently destroy
    what it is (as root, /dev/null itself), and writing into it is not writing a file."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return path
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    if stat.S_ISREG(info.st_mode):
        return path
    if stat.S_ISLNK(info.st_mode):
        target = Path(os.path.realpath(path))
        try:
            target_info = os.stat(target)
        except FileNotFoundError:
            raise UsageError(f"cannot write {path}: it is a symbolic link to {target}, which does not exist; "
                             "choose a file name") from None
        except OSError as exc:
            raise _cannot_write(path, exc) from None
        if stat.S_ISREG(target_info.st_mode):
            return target
        raise UsageError(f"cannot write {path}: it is a symbolic link to {_kind_of(target_info.st_mode)} ({target}), "
                         "not to a regular file; choose a file name")
    if stat.S_ISDIR(info.st_mode):
        raise _cannot_write(path, IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR)))
    raise UsageError(f"cannot write {path}: it is {_kind_of(info.st_mode)}, not a regular file; choose a file name")


def _make_folder(folder: Path, path: Path) -> None:
    """Create the missing folders above `path`, and say so (logger `livctl.records.files`: the command line
    prints it as one line on stderr)."""
    if folder.is_dir():
        return
    missing = folder
    while not missing.parent.exists() and missing.parent != missing:
        missing = missing.parent
    folder.mkdir(parents=True, exist_ok=True)
    _log.info("created the folder %s for %s", missing if missing == folder else f"{missing} (and {folder})", path.name)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], mode: str = "w", *, replace: bool = True) -> Iterator[IO[Any]]:
    """A file opened for writing (text: UTF-8, newlines as written) that appears at `path` whole
    when the block succeeds, or not at all. With `replace` False an existing file is never
    overwritten, even one another process wrote meanwhile: FileExistsError. Any other failure is
    a one-line UsageError naming the file.

    `path` must be a regular file, a new name, or a symlink to a regular file (written through:
    the link stays, its target is replaced whole); anything else is refused (`_destination`).
    Missing folders above it are created, and each creation is announced (`_make_folder`)."""
    path = Path(path)
    if not path.name or path.name in (".", ".."):
        raise UsageError(f"cannot write {str(path) or repr(str(path))}: give a file name, not a folder")
    target = _destination(path)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        _make_folder(target.parent, target)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if replace:
            if _destination(path) != target:  # the path changed into something else meanwhile
                raise UsageError(f"cannot write {path}: it changed while it was being written; try again")
            os.replace(tmp, target)
        else:
            os.link(tmp, target)  # fails if the file exists, whoever wrote it
    except FileExistsError:
        raise
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike[str], data: str | bytes) -> None:
    """Write a whole file or nothing (see `atomic_output`)."""
    with atomic_output(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


def _cannot_write(path: Path, exc: OSError) -> UsageError:
    return UsageError(f"cannot write {path}: {exc.strerror or exc}; choose another path")
