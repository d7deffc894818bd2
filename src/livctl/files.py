"""Files written whole or not at all: calibrations, exports, reports.

A file is written beside its destination under a temporary name, flushed to disk, and only then
renamed (or linked) into place, so a crash, a full disk or Ctrl-C never leaves half a file where a
reader would take it for the whole.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from livctl.errors import UsageError


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], mode: str = "w", *, replace: bool = True) -> Iterator[IO[Any]]:
    """A file opened for writing (text: UTF-8, newlines as written) that appears at `path` whole
    when the block succeeds, or not at all. With `replace` False an existing file is never
    overwritten, even one another process wrote meanwhile: FileExistsError. Any other failure is
    a one-line UsageError naming the file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if the file exists, whoever wrote it
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
