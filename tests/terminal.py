"""Run livctl on a real pseudo-terminal of a chosen size, as a person at a terminal would."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


class Terminal:
    """`livctl ARGS` (or another script) on a pty `columns` wide; `expect` waits for text on the
    screen stream, `send` types a line, `finish` returns the exit code and everything written."""

    def __init__(self, argv: list[str], *, env: dict[str, str], columns: int = 80, rows: int = 24, cwd=None):
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        env = dict(env, COLUMNS=str(columns), LINES=str(rows), TERM="xterm-256color")
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd,
                                     start_new_session=True)
        os.close(slave)
        self.output = b""

    def _read(self, timeout_s: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout_s)
        if not ready:
            return False
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # the other side closed
            return False
        self.output += chunk
        return bool(chunk)

    @property
    def text(self) -> str:
        return self.output.decode("utf-8", "replace")

    def expect(self, fragment: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while fragment not in ANSI.sub("", self.text):
            if time.monotonic() > deadline or (self.proc.poll() is not None and not self._read(0.2)):
                raise AssertionError(f"{fragment!r} never appeared; the terminal shows:\n{self.text[-3000:]}")
            self._read(0.2)

    def send(self, line: str) -> None:
        os.write(self.master, (line + "\r").encode())

    def finish(self, timeout_s: float = 120.0) -> int:
        deadline = time.monotonic() + timeout_s
        while self.proc.poll() is None:
            self._read(0.2)
            if time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(f"still running after {timeout_s} s:\n{self.text[-3000:]}")
        while self._read(0.2):
            pass
        os.close(self.master)
        return self.proc.returncode


def screen_lines(text: str) -> list[str]:
    """What a terminal would show piece by piece: the text split at every line feed, carriage
    return and cursor movement, with the escape sequences removed (each piece is what one redraw
    wrote on one row)."""
    pieces = re.split(r"\r\n|\r|\n|\x1b\[[0-9;]*[ABCDGHJKf]", text)
    return [ANSI.sub("", p) for p in pieces]


def livctl_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "livctl", *args]
