"""A real JACK audio server for the tests: the dummy driver (no sound card), 48 kHz, 256-frame periods.

Each server gets its own name (`jackd -n`, `JACK_DEFAULT_SERVER`), so test runs on one machine
never share one. PortAudio scans its host APIs when sounddevice is first imported (or
re-initialised): `running_jack` starts the server first, points this process at it, and
re-initialises sounddevice when it was imported earlier. It stops the server only after PortAudio
has closed every stream (killing the server under an open stream aborts the process).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path


class JackUnavailable(RuntimeError):
    """The JACK server could not start; the message says why."""


class JackServer:
    def __init__(self, name: str, *, rate_hz: int = 48000, period: int = 256, driver: str = "dummy",
                 realtime: bool = False):
        self.name = name
        self.realtime = realtime
        """Run the server (and, through libjack, its clients' process threads) with real-time
        scheduling, as a lab machine's JACK normally runs; needs the privilege to do so."""
        self.rate_hz = rate_hz
        self.period = period
        self.driver = driver
        self.process: subprocess.Popen | None = None
        self.log_path = Path(tempfile.gettempdir()) / f"{name}.log"

    @property
    def env(self) -> dict[str, str]:
        return {"JACK_DEFAULT_SERVER": self.name, "JACK_NO_AUDIO_RESERVATION": "1"}

    def start(self) -> "JackServer":
        if shutil.which("jackd") is None:
            raise JackUnavailable("jackd is not installed (scripts/setup.sh installs the jackd2 package)")
        env = dict(os.environ, **self.env)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                ["jackd", "--realtime" if self.realtime else "--no-realtime", "-n", self.name,
                 "-d", self.driver, "-r", str(self.rate_hz), "-p", str(self.period)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            )
        deadline = time.monotonic() + 10.0
        while True:  # wait for the server, but not for one that has already died
            waited = subprocess.run(["jack_wait", "-w", "-t", "1"], capture_output=True, text=True, env=env)
            if waited.returncode == 0 and self.process.poll() is None:
                return self
            if self.process.poll() is not None or time.monotonic() > deadline:
                code = self.process.poll()
                self.stop()
                state = f"exited with status {code}" if code is not None else "not ready after 10 s"
                raise JackUnavailable(f"jackd did not start ({state}); its log: {self.log_tail()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:]) or "(empty)"

    def xrun_reports(self) -> int:
        """How many xruns the server itself has logged so far."""
        try:
            return self.log_path.read_text(errors="replace").count("XRun")
        except OSError:
            return 0

    # -- routing --------------------------------------------------------------------------------

    def _jack(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), capture_output=True, text=True, env=dict(os.environ, **self.env))

    def ports(self) -> list[str]:
        return self._jack("jack_lsp").stdout.split()

    def _new_ports(self, known: set[str], *, inputs: bool, timeout_s: float) -> tuple[list[str], list[str]]:
        deadline = time.monotonic() + timeout_s
        while True:
            fresh = [p for p in self.ports() if p.startswith("PortAudio") and p not in known]
            outs = sorted((p for p in fresh if ":out_" in p), key=_port_number)
            ins = sorted((p for p in fresh if ":in_" in p), key=_port_number)
            if outs and (ins or not inputs):
                return outs, ins
            if time.monotonic() > deadline:
                raise AssertionError(f"no new PortAudio ports appeared on JACK in {timeout_s:g} s: {self.ports()}")
            time.sleep(0.01)

    def loop_back_into(self, known: set[str], inputs: tuple[int, ...], timeout_s: float = 10.0) -> tuple[str, list[str]]:
        """Route the newest PortAudio output port into the given input ports (numbered from 1) of the
        newest PortAudio input stream, instead of the silent `system` capture. Returns (out, those inputs)."""
        deadline = time.monotonic() + timeout_s
        while True:
            outs, ins = self._new_ports(known, inputs=True, timeout_s=timeout_s)
            if len(ins) >= max(inputs) or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        out_port = outs[-1]
        for port in ins:
            for source in [p for p in self.ports() if p.startswith("system:capture")]:
                self._jack("jack_disconnect", source, port)
        chosen = [ins[i - 1] for i in inputs]
        for port in chosen:
            connected = self._jack("jack_connect", out_port, port)
            if connected.returncode != 0:
                raise AssertionError(f"jack_connect {out_port} {port} failed: {connected.stderr.strip()}")
        return out_port, ins

    def loop_back(self, known: set[str] = frozenset(), timeout_s: float = 10.0) -> tuple[str, str]:
        """Route the newest PortAudio output port into the newest PortAudio input port (instead of
        the silent `system` capture), once both exist and are not in `known`. Returns (out, in)."""
        outs, ins = self._new_ports(known, inputs=True, timeout_s=timeout_s)
        out_port, in_port = outs[-1], ins[-1]
        for source in [p for p in self.ports() if p.startswith("system:capture")]:
            self._jack("jack_disconnect", source, in_port)
        connected = self._jack("jack_connect", out_port, in_port)
        if connected.returncode != 0:
            raise AssertionError(f"jack_connect {out_port} {in_port} failed: {connected.stderr.strip()}")
        return out_port, in_port


@contextmanager
def sensor_noise(server: JackServer, *, rms_fs: float = 1e-3, seed: int = 5):
    """A quiet Gaussian noise source, as an analog accelerometer's noise floor: a digital loopback
    at rest reads exactly zero, which a session's sensor check rightly calls a stalled sensor.

    Yields `mix_into(in_port)`, which connects it to an input port (JACK sums what is connected to
    a port). Start it before the platform opens, so mixing it in is one quick connection."""
    import numpy as np
    import sounddevice as sd

    rng = np.random.default_rng(seed)

    def play(outdata, frames, time_info, status):
        # fresh noise every block: a real sensor's never repeats (a looped buffer would be a replay,
        # which livctl's sensor watch rightly stops)
        outdata[:, 0] = rng.normal(0.0, rms_fs, frames)

    known = set(server.ports())
    stream = sd.OutputStream(device="system", channels=1, samplerate=server.rate_hz, blocksize=server.period,
                             callback=play, dtype="float32")
    stream.start()
    try:
        port = server._new_ports(known, inputs=False, timeout_s=10.0)[0][-1]
        for sink in [p for p in server.ports() if p.startswith("system:playback")]:
            server._jack("jack_disconnect", port, sink)
        yield lambda in_port: server._jack("jack_connect", port, in_port)
    finally:
        stream.abort()
        stream.close()


def _port_number(port: str) -> int:
    return int(port.rsplit("_", 1)[1])


@contextmanager
def running_jack(name: str | None = None):
    """Start a server, point this process (and its children) and PortAudio at it; stop it at the end."""
    server = JackServer(name or f"livctl-test-{os.getpid()}")
    saved = {k: os.environ.get(k) for k in server.env}
    os.environ.update(server.env)
    try:
        server.start()
        _reinitialise_portaudio()
        yield server
    finally:
        sd = sys.modules.get("sounddevice")
        if sd is not None and sd._initialized:
            sd._terminate()  # closes any stream still open, before its server goes
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if sd is not None:
            sd._initialize()


def _reinitialise_portaudio() -> None:
    sd = sys.modules.get("sounddevice")
    if sd is not None:
        if sd._initialized:
            sd._terminate()
        sd._initialize()
