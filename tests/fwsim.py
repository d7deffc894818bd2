"""`python -m firmware_sim --pty` as a real subprocess on a real pseudo-terminal, for tests."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import serial

from conftest import livctl_env


class FirmwareSim:
    """A running simulator: `path` is its pty; `stop()` ends it and returns its link summary."""

    def __init__(self, workdir: Path, *args: str):
        workdir.mkdir(parents=True, exist_ok=True)
        self.stats_path = workdir / "stats.json"
        self.log_path = workdir / "firmware_sim.log"
        self._log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "firmware_sim", "--pty", "--stats", str(self.stats_path), *args],
            stdout=subprocess.PIPE, stderr=self._log_file, text=True, env=livctl_env(),
        )
        self.path = self.proc.stdout.readline().strip()
        assert self.path, f"firmware_sim did not start: {self.log}"

    def url(self, query: str = "") -> str:
        return f"serial://{self.path}" + (f"?{query}" if query else "")

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def wait_exit(self, timeout_s: float) -> dict:
        """Wait for the simulator to end by itself (after an unplug); its summary."""
        self.proc.wait(timeout=timeout_s)
        return self._finish()

    def stop(self) -> dict:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        return self._finish()

    def _finish(self) -> dict:
        self._log_file.close()
        self.proc.stdout.close()
        assert self.proc.returncode == 0, self.log
        return json.loads(self.stats_path.read_text())


class Scpi:
    """A bare SCPI conversation over the port (what generic instrument software does)."""

    def __init__(self, path: str):
        self.port = serial.Serial(path, timeout=1.0, write_timeout=1.0, exclusive=True)

    def write(self, line: str | bytes) -> None:
        self.port.write((line.encode() if isinstance(line, str) else line) + b"\n")

    def query(self, line: str) -> str:
        self.write(line)
        answer = self.port.readline()
        assert answer.endswith(b"\n"), f"no answer to {line!r}"
        return answer.decode().rstrip("\n")

    def error(self) -> tuple[int, str]:
        code, _, message = self.query("SYST:ERR?").partition(",")
        return int(code), message.strip('"')

    def read_block(self) -> bytes:
        """One definite-length block and its LF: the raw payload."""
        head = self.port.read(2)
        assert head[:1] == b"#", head
        length = int(self.port.read(head[1] - 0x30))
        payload = self.port.read(length)
        assert self.port.read(1) == b"\n"
        return payload

    def close(self) -> None:
        self.port.close()

    def settle(self, seconds: float) -> None:
        time.sleep(seconds)
        self.port.reset_input_buffer()
