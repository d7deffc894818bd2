"""livctl's fuzz harness: hypothesis strategies for everything a user or a device can hand livctl,
a sandbox that runs each case as livctl runs, and the checks every case must pass.

Used by tests/test_fuzz.py (a few hundred fast cases per test run) and scripts/fuzz.py (a long
campaign with a seed, printing figures and reproducers).

Kinds of case:
- `cli`: a command line from livctl's grammar, each option given a valid value or a hostile one
  (`3_0`, `1e-308`, `nan`, year 9999, a FIFO, /dev/zero, a 5 000-character zone, ...);
- `url`: a session on a device URL with random options and values (faults, 1e308, malformed);
- `recording`: `validate` on a generated CSV, firmware dump or WAV (scaled, truncated, corrupted);
- `toml`: calibration, regimen and safety-profile files mutated field by field or nested deep;
- `damaged_log`: a real dose log with damaged pages, bytes, tail or records, then a command;
- `serial`: byte streams into the simulated board's command parser and, mutated, from its frames
  into livctl's frame decoder (firmware_sim.board.Board in virtual time, in process);
- `sigint`: a real `python -m livctl` process interrupted at a random moment, startup included.

Each case asserts: an exit code in {0, 1, 2, 130}; no traceback, "Exception ignored" or Python
warning on stderr; no hang past its bound; no verdict passing on a non-finite figure; and a dose
log that still verifies with no session left open (for a log the case did not damage itself).

Commands run in a child forked from this (warm) process, with the environment, working folder,
signal handlers and warning filters of a fresh `livctl`, stdout and stderr on files: as a real
process, minus Python's start-up. The `sigint` kind runs real processes, start-up included.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"

EXIT_CODES = {0, 1, 2, 130}
CASE_TIMEOUT_S = 60.0
"""No case may take longer (sessions here last seconds of virtual time at --speed max)."""

_PY_WARNING = re.compile(r"^\S.*:\d+: \w*Warning: ", re.MULTILINE)


# -- outcomes and checks -------------------------------------------------------------------------


@dataclass
class Outcome:
    code: int | None
    out: str
    err: str
    elapsed_s: float
    hang: bool = False


@dataclass
class Case:
    kind: str
    argv: list[str]
    files: dict[str, object] = field(default_factory=dict)
    """Sandbox files to make: name -> bytes, or one of the specials in `SPECIAL_FILES`."""
    log: str | None = "study"
    """The dose log the case starts from: "study" (a real log with subjects and sessions), None
    (no log yet), or a damage recipe for `damaged_log`."""
    sigint_after_s: float | None = None
    serial: tuple | None = None

    def reproducer(self) -> str:
        """A line that replays this case by hand (files named as the sandbox makes them)."""
        if self.kind == "serial":
            return f"serial case {self.serial!r}"
        made = ", ".join(f"{name}={_describe_file(spec)}" for name, spec in self.files.items())
        setup = f"[files: {made}] " if made else ""
        log = f"[log: {self.log}] " if self.log not in (None, "study") else ""
        signal_note = f"[SIGINT after {self.sigint_after_s:.3f} s] " if self.sigint_after_s is not None else ""
        return setup + log + signal_note + "livctl " + " ".join(_quote(a) for a in self.argv)


def _quote(arg: str) -> str:
    if arg and re.fullmatch(r"[A-Za-z0-9_./:=%+,@-]+", arg):
        return arg
    shown = arg if len(arg) <= 60 else arg[:40] + f"...({len(arg)} chars)"
    return "'" + shown.replace("'", "'\\''") + "'"


def _describe_file(spec) -> str:
    if isinstance(spec, str):
        return spec
    data = bytes(spec)
    return f"{len(data)} bytes {data[:40]!r}{'...' if len(data) > 40 else ''}"


def problems(case: Case, outcome: Outcome, sandbox: Path | None = None) -> list[str]:
    """What is wrong with how livctl handled `case` (empty: nothing)."""
    found = []
    if outcome.hang:
        return [f"hang (no exit within {CASE_TIMEOUT_S:g} s)"]
    if outcome.code not in EXIT_CODES:
        found.append(f"exit code {outcome.code}")
    if "Traceback (most recent call last)" in outcome.err or "Exception ignored" in outcome.err:
        frames = set(re.findall(r'File "([^"]+)"', outcome.err))
        if case.sigint_after_s is not None and not any("livctl" in f or "firmware_sim" in f for f in frames):
            # Python's own start-up (site, runpy finding the package): before any livctl code runs
            found.append("startup: interrupted in Python's start-up, before livctl's code runs")
        else:
            found.append("traceback")
    if _PY_WARNING.search(outcome.err):
        found.append("python warning")
    found += _false_pass(case, outcome)
    if sandbox is not None and case.log is not None and outcome.code is not None:
        found += _log_problems(case, sandbox)
    return found


def _false_pass(case: Case, outcome: Outcome) -> list[str]:
    """A passing verdict (exit 0) must rest on finite figures."""
    if outcome.code != 0 or "--json" not in case.argv or not case.argv:
        return []
    try:
        doc = json.loads(outcome.out)
    except ValueError:
        return []
    keys = {"validate": ("frequency_hz", "peak_g"), "session": ("mean_frequency_hz", "mean_peak_g")}.get(case.argv[0])
    if keys is None or not isinstance(doc, dict):
        return []
    if case.argv[0] == "session" and doc.get("status") != "completed":
        return []
    if case.argv[0] == "validate" and not doc.get("in_spec"):
        return []
    bad = [k for k in keys if not (isinstance(doc.get(k), (int, float)) and math.isfinite(doc[k]))]
    return [f"false pass: exit 0 with {', '.join(bad)} not finite"] if bad else []


def _log_problems(case: Case, sandbox: Path) -> list[str]:
    path = sandbox / "doses.sqlite"
    if not path.exists():
        return []
    from livctl.records.doselog import DoseLog
    from livctl.errors import LogError

    before = getattr(case, "_log_verdict_before", None)
    try:
        with DoseLog(path, create=False, check=False) as log:
            check = log.verify(workers=1)
            running = [] if not check.ok else [s["session_id"] for s in _sessions(log) if s["status"] == "running"]
        verdict = (check.ok, check.bad_seq)
    except LogError as exc:
        verdict, running = (False, f"unreadable: {exc}"), []
    if before is not None:  # a log the case damaged: the command must not have changed the verdict
        if verdict != before and not (before[0] is False and verdict[0] is False
                                      and str(before[1]).startswith("unreadable") == str(verdict[1]).startswith("unreadable")):
            return [f"log verdict changed by the command: {before} -> {verdict}"]
        return []
    found = []
    if not verdict[0]:
        found.append(f"log fails verification afterwards: {verdict[1]}")
    if running:
        found.append(f"session left open: {running[0]}")
    return found


def _sessions(log):
    try:
        return log.sessions()
    except Exception:  # noqa: BLE001 - verify already said the log is sound
        return []


# -- the sandbox ---------------------------------------------------------------------------------

SPECIAL_FILES = ("fifo", "zero-link", "null-link", "dangling-link", "folder", "missing", "huge", "deep-toml")


def _make_file(path: Path, spec) -> None:
    if spec == "fifo":
        os.mkfifo(path)
    elif spec == "zero-link":
        path.symlink_to("/dev/zero")
    elif spec == "null-link":
        path.symlink_to("/dev/null")
    elif spec == "dangling-link":
        path.symlink_to(path.parent / "nowhere" / path.name)
    elif spec == "folder":
        path.mkdir()
    elif spec == "missing":
        pass
    elif spec == "huge":
        with open(path, "wb") as f:
            f.truncate(3 << 20)
    elif spec == "deep-toml":
        path.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    else:
        path.write_bytes(bytes(spec))


class Sandbox:
    """A folder per case, with the case's files and a copy of the study log."""

    def __init__(self, root: Path, study_log: Path):
        self.root = root
        self.study_log = study_log
        self.count = 0

    def prepare(self, case: Case) -> Path:
        self.count += 1
        folder = self.root / f"case-{self.count}"
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        (folder / "calibration").mkdir()
        for name, spec in case.files.items():
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            _make_file(target, spec)
        if case.log is not None:
            shutil.copy(self.study_log, folder / "doses.sqlite")
            if case.log != "study":
                damage_log(folder / "doses.sqlite", case.log)
                case._log_verdict_before = _verdict(folder / "doses.sqlite")  # type: ignore[attr-defined]
        return folder

    def cleanup(self, folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)


def _verdict(path: Path):
    from livctl.records.doselog import DoseLog
    from livctl.errors import LogError

    try:
        with DoseLog(path, create=False, check=False) as log:
            check = log.verify(workers=1)
        return check.ok, check.bad_seq
    except LogError as exc:
        return False, f"unreadable: {exc}"


def make_study_log(path: Path) -> Path:
    """A real dose log: two subjects with regimens, a few completed and aborted sessions."""
    import datetime as dt

    sys.path.insert(0, str(REPO / "tests"))
    from livctl.records.doselog import DoseLog
    from livctl.study.regimen import resolve_regimen
    from studylog import write_bout

    utc = dt.timezone.utc
    with DoseLog(path) as log:
        for subject, kind in (("P-1", "human"), ("M-1", "animal")):
            log.add_subject(subject, kind, operator="fuzz")
            regimen, source = resolve_regimen("human-30hz-0.4g" if kind == "human" else "mouse-90hz-0.3g",
                                              start=dt.date(2026, 3, 2), weeks=8, timezone="Europe/Berlin")
            log.assign_regimen(subject, name=regimen.name, regimen=regimen.to_dict(), source=source, operator="fuzz")
        for day in range(6):
            write_bout(log, None, "P-1", dt.datetime(2026, 3, 2, 8, tzinfo=utc) + dt.timedelta(days=day), minutes=1,
                       windows=None, status="completed" if day % 3 else "aborted")
    return path


def damage_log(path: Path, recipe: str) -> None:
    """Damage a log as `recipe` says: "page:FRACTION:OFFSET:HEX", "truncate:FRACTION",
    "append:HEX", or "sql:STATEMENT" (run with the append-only triggers dropped)."""
    kind, _, rest = recipe.partition(":")
    size = path.stat().st_size
    if kind == "page":
        fraction, offset, data = rest.split(":", 2)
        pages = size // 1024
        at = min(int(float(fraction) * pages), pages - 1) * 1024 + int(offset) % 1024
        with open(path, "r+b") as f:
            f.seek(at)
            f.write(bytes.fromhex(data))
    elif kind == "truncate":
        with open(path, "r+b") as f:
            f.truncate(max(0, int(float(rest) * size)))
    elif kind == "append":
        with open(path, "ab") as f:
            f.write(bytes.fromhex(rest))
    elif kind == "sql":
        import sqlite3

        db = sqlite3.connect(path)
        for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            db.execute(f"DROP TRIGGER {name}")
        try:
            db.execute(rest)
            db.commit()
        except sqlite3.Error:
            pass
        db.close()


# -- running -------------------------------------------------------------------------------------


def case_env(sandbox: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIVCTL_", "PYTEST", "HYPOTHESIS"))}
    env.update(
        LIVCTL_LOG=str(sandbox / "doses.sqlite"),
        LIVCTL_CALIBRATION_DIR=str(sandbox / "calibration"),
        XDG_DATA_HOME=str(sandbox / "xdg"),
        HOME=str(sandbox),
        LIVCTL_OPERATOR="fuzz",
        QT_QPA_PLATFORM="offscreen",
        PYTHONPATH=os.pathsep.join([str(SRC), str(REPO)]),
    )
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    return env


def warm_up() -> None:
    """Import what commands import, once, so that each forked case does not pay for it."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import numpy  # noqa: F401
    import scipy.io.wavfile  # noqa: F401
    import scipy.signal  # noqa: F401

    import livctl.dsp.estimator  # noqa: F401
    import livctl.platforms.sim  # noqa: F401
    import livctl.records.calibration  # noqa: F401
    import livctl.cli  # noqa: F401
    import livctl.offline.recordings  # noqa: F401
    import livctl.study.report  # noqa: F401
    import livctl.procedures.session  # noqa: F401
    import livctl.offline.validation  # noqa: F401


_DEFAULT_WARNING_FILTERS = [
    ("default", None, DeprecationWarning, "__main__", 0),
    ("ignore", None, DeprecationWarning, None, 0),
    ("ignore", None, PendingDeprecationWarning, None, 0),
    ("ignore", None, ImportWarning, None, 0),
    ("ignore", None, ResourceWarning, None, 0),
]


def run_forked(argv: list[str], cwd: Path, env: dict[str, str], timeout_s: float = CASE_TIMEOUT_S) -> Outcome:
    """`livctl ARGV` in a child forked from this process, as a fresh process would run it."""
    out_path, err_path = cwd / ".stdout", cwd / ".stderr"
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 1
        try:
            fd_out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            fd_err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd_out, 1)
            os.dup2(fd_err, 2)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
            sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", line_buffering=True)
            sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", line_buffering=True,
                                          errors="backslashreplace")
            os.chdir(cwd)
            os.environ.clear()
            os.environ.update(env)
            for sig in (signal.SIGTERM, signal.SIGALRM):
                signal.signal(sig, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            import warnings

            warnings.resetwarnings()
            for action, message, category, module, lineno in reversed(_DEFAULT_WARNING_FILTERS):
                warnings.filterwarnings(action, category=category, module=module or "", lineno=lineno)
            import logging

            logging.getLogger("livctl").handlers.clear()
            sys.argv = ["livctl", *argv]
            from livctl.__main__ import run

            code = run()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # noqa: BLE001 - what a real process would print
            traceback.print_exc()
            code = 1
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code if isinstance(code, int) and 0 <= code < 256 else 1)
    code, hang = _wait(pid, started + timeout_s)
    return Outcome(code, _read(out_path), _read(err_path), time.monotonic() - started, hang)


def _wait(pid: int, deadline: float) -> tuple[int | None, bool]:
    delay = 0.001
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return (os.waitstatus_to_exitcode(status), False)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return (None, True)
        time.sleep(delay)
        delay = min(0.02, delay * 2)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="backslashreplace")
    except OSError:
        return ""


def run_process(argv: list[str], cwd: Path, env: dict[str, str], sigint_after_s: float | None,
                timeout_s: float = CASE_TIMEOUT_S) -> Outcome:
    """`python -m livctl ARGV` as a real process, interrupted after `sigint_after_s`."""
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "livctl", *argv], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="backslashreplace")
    if sigint_after_s is not None:
        try:
            proc.wait(timeout=sigint_after_s)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=timeout_s)
        code = proc.returncode
        if code == -signal.SIGINT:
            code = 130  # killed by SIGINT before livctl could answer: what a shell reports
        return Outcome(code, out, err, time.monotonic() - started)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return Outcome(None, out, err, time.monotonic() - started, hang=True)


def run_case(case: Case, sandbox: Sandbox) -> tuple[Outcome, list[str]]:
    """Run one case; returns its outcome and its problems."""
    if case.kind == "serial":
        return run_serial_case(case)
    folder = sandbox.prepare(case)
    try:
        env = case_env(folder)
        if case.sigint_after_s is not None:
            outcome = run_process(case.argv, folder, env, case.sigint_after_s)
        else:
            outcome = run_forked(case.argv, folder, env)
        return outcome, problems(case, outcome, folder)
    finally:
        sandbox.cleanup(folder)


# -- serial byte streams (in process, virtual time) ----------------------------------------------


def run_serial_case(case: Case) -> tuple[Outcome, list[str]]:
    """Bytes into the simulated board's command parser, and the board's own frames, mutated, into
    livctl's decoder and sample assembler: nothing may raise, hang, or come out as a non-finite
    sample that is not marked lost."""
    import numpy as np

    from firmware_sim import SimConfig, SimulatedPlatform
    from firmware_sim.board import Board
    from livctl.platforms.serial.protocol import SampleAssembler, Samples, StreamDecoder

    commands, mutations = case.serial
    started = time.monotonic()
    found: list[str] = []
    err = ""
    try:
        board = Board(SimulatedPlatform(SimConfig(seed=1)), log=lambda *_: None)
        t = 0.0
        stream = bytearray()
        for data in commands:
            stream += board.receive(data, t)
            for _ in range(4):
                t += 0.01
                for frame in board.tick(t):
                    stream += frame
            if time.monotonic() - started > CASE_TIMEOUT_S:
                return Outcome(None, "", "", time.monotonic() - started, True), ["hang in the board"]
        for kind, at, data in mutations:
            if not stream:
                break
            at %= len(stream)
            if kind == "flip":
                stream[at] ^= data[0] if data else 0xFF
            elif kind == "insert":
                stream[at:at] = data
            elif kind == "delete":
                del stream[at:at + max(1, len(data))]
            elif kind == "duplicate":
                stream[at:at] = stream[at:at + 64]
        decoder = StreamDecoder()
        assembler = SampleAssembler(3200.0, board.scale_mps2)
        for start in range(0, len(stream), 97):
            for item in decoder.feed(bytes(stream[start:start + 97])):
                if isinstance(item, str):
                    continue
                for out in assembler.feed(item):
                    if isinstance(out, Samples) and not out.lost:
                        values = np.asarray(out.accel_mps2, dtype=float)
                        if not np.all(np.isfinite(values) | np.isnan(values)):
                            found.append("infinite sample accepted from a frame")
            if time.monotonic() - started > CASE_TIMEOUT_S:
                return Outcome(None, "", "", time.monotonic() - started, True), ["hang in the decoder"]
    except Exception:  # noqa: BLE001 - the finding itself
        err = traceback.format_exc()
        found.append("traceback")
    return Outcome(0 if not found else 1, "", err, time.monotonic() - started), found


# -- strategies ----------------------------------------------------------------------------------

HOSTILE_NUMBERS = ["0", "-1", "-0", "1e308", "-1e308", "1e-308", "4.9e-324", "nan", "inf", "-inf", "3_0", "３０",
                   " 1", "1 ", "0x10", "1e400", "99999999999999999999", "", "+", "1.5.2", "١", "1e", ".", "1,5"]
HOSTILE_TEXT = ["", " ", "x" * 5000, "\x00", "a\nb", "../../etc/passwd", "ä", "-", "--", "%s", "'", "\\"]
HOSTILE_DATES = ["0001-01-01", "9999-12-31", "2026-02-30", "2026-3-2", "1969-12-31", "2200-01-01", "2026-03-02T10:00",
                 "", "today", "２０２６-03-02"]
HOSTILE_INSTANTS = ["9999-12-31T23:00-05:00", "0001-01-01T00:00", "2026-03-02T25:00", "2026-03-02T10:00" + " " * 5000,
                    "2026-03-02T10:00+99:00", "", "now"]
ZONES = ["Europe/Berlin", "UTC", "Europe", "x" * 5000, "../etc", "", "Etc/GMT+5", "America/Argentina/ComodRivadavia"]


def number_text(valid: list[str]):
    return st.one_of(st.sampled_from(valid), st.sampled_from(HOSTILE_NUMBERS),
                     st.floats(allow_nan=True, allow_infinity=True).map(repr),
                     st.integers(-(10**25), 10**25).map(str), st.text(max_size=6))


PATH_SPECS = st.one_of(st.sampled_from(SPECIAL_FILES), st.binary(max_size=200))


@st.composite
def device_urls(draw) -> str:
    """Device URLs, mostly sim:// with options, some malformed or for other schemes."""
    from firmware_sim.faults import FAULTS

    kind = draw(st.sampled_from(["sim"] * 8 + ["serial", "audio", "junk"]))
    if kind == "junk":
        return draw(st.sampled_from(["sim://[::1", "sim://box", "ttyUSB0", "bogus://x", "sim://?", "sim://?a",
                                     "sim://?seed=1&seed=2", "sim://%zz", "", "sim:/", "SIM://"]))
    if kind == "serial":
        return draw(st.sampled_from(["serial:///nonexistent/tty", "serial:///dev/null", "serial://",
                                     "serial:///dev/zero?baud=1_0", "serial:///tmp?watchdog_s=nan"]))
    if kind == "audio":
        return draw(st.sampled_from(["audio://none-such?max_level=0.1", "audio://x?max_level=1e-308",
                                     "audio://x?in=１&max_level=0.2"]))
    options = {}
    names = draw(st.lists(st.sampled_from(["seed", "load_kg", "sensor", "actuator_n", "id", "fault", "fault_at_s",
                                           "fault_value", "fault_duration_s"]), max_size=4, unique=True))
    for name in names:
        if name == "fault":
            options[name] = draw(st.sampled_from(list(FAULTS) + ["none", ""]))
        elif name == "sensor":
            options[name] = draw(st.sampled_from(["adxl345", "adxl355", "ADXL345", "x"]))
        elif name == "id":
            options[name] = draw(st.sampled_from(["bench-A", "a/b", "", "x" * 300]))
        else:
            options[name] = draw(number_text({"seed": ["0", "3"], "load_kg": ["70", "0.5"], "actuator_n": ["800"],
                                              "fault_at_s": ["1", "2.5"], "fault_value": ["1.3", "0.5", "2"],
                                              "fault_duration_s": ["0.5", "1"]}[name]))
    from urllib.parse import quote

    return "sim://" + ("?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in options.items()) if options else "")


SESSION_BASE = ["--speed", "max", "--minutes", "0.05", "--quiet"]


def _options(draw, table: dict[str, object]) -> list[str]:
    """Some of `table`'s options, each with a drawn value (None: a flag)."""
    names = draw(st.lists(st.sampled_from(sorted(table)), max_size=4, unique=True))
    argv = []
    for name in names:
        values = table[name]
        if values is None:
            argv.append(name)
        else:
            argv += [name, draw(values)]
    return argv


def _file_option(draw, files: dict, stem: str, content) -> str:
    name = f"{stem}-{len(files)}.toml"
    files[name] = draw(st.one_of(PATH_SPECS, content))
    return name


@st.composite
def cli_cases(draw, *, heavy: bool = True) -> Case:
    """A command line from livctl's grammar (with `heavy`: sessions, calibrations and tones too)."""
    files: dict[str, object] = {}
    commands = ["presets", "log", "log show", "log verify", "log export", "regimen list", "regimen show",
                "subject add", "subject assign", "subject list", "subject show", "due", "report", "calibration show",
                "devices"]
    if heavy:
        commands += ["session"] * 3 + ["calibrate", "tone", "validate"]
    command = draw(st.sampled_from(commands))
    num = number_text
    regimen_files = toml_documents("regimen").map(lambda s: s.encode())
    if command == "session":
        argv = ["session", "--device", draw(device_urls()), *SESSION_BASE] + _options(draw, {
            "--freq": num(["30", "90"]), "--accel": num(["0.3"]), "--minutes": num(["0.02", "0.05"]),
            "--ramp": num(["0.5", "2"]), "--tol-freq": num(["1"]), "--tol-accel": num(["10", "10%"]),
            "--max-thd": num(["10"]), "--min-in-spec": num(["90"]), "--speed": st.sampled_from(HOSTILE_NUMBERS + ["max"]),
            "--window": num(["1", "0.5"]), "--loop-gain": num(["0.5"]), "--load-kg": num(["70"]),
            "--max-calibration-age": num(["30"]), "--preset": st.sampled_from(["human-30hz-0.4g", "x", ""]),
            "--subject": st.sampled_from(["P-1", "M-1", "P-9", ""]), "--json": None,
            "--override-reason": st.sampled_from(["make-up bout", ""] + HOSTILE_TEXT[:3]),
        })
        if draw(st.booleans()):
            argv += ["--profile", _file_option(draw, files, "profile", toml_documents("profile").map(str.encode))]
        if "--speed" in argv[4:] and argv[argv.index("--speed", 4) + 1] not in ("max",):
            argv += ["--speed", "max"] if draw(st.booleans()) else []
    elif command == "calibrate":
        argv = ["calibrate", "--device", draw(device_urls()), "--speed", "max", "--no-plot", "--quiet", "--force"]
        argv += _options(draw, {"--freq": num(["30"]), "--also-at": st.sampled_from(["28,32", "1e-308", "28,,", "5"]),
                                "--max-accel": num(["0.5"]), "--steps": num(["4"]),
                                "--levels": st.sampled_from(["5,10", "1e-308", "10,150", "0", "3_0", "nan"]),
                                "--max-thd": num(["10"]), "--load-kg": num(["70"]), "--json": None})
    elif command == "tone":
        argv = ["tone", "--device", draw(device_urls()), "--seconds", "1", "--ramp", "0.2", "--quiet"]
        argv += _options(draw, {"--freq": num(["30"]), "--level": num(["0.05", "5%"]), "--seconds": num(["0.5"]),
                                "--ramp": num(["0.1"]), "--json": None})
    elif command == "validate":
        name = f"rec-{len(files)}.{draw(st.sampled_from(['csv', 'wav', 'txt']))}"
        files[name] = draw(st.one_of(recordings(), PATH_SPECS))
        argv = ["validate", name, "--freq", "30", "--accel", "0.3"]
        argv += _options(draw, {"--window": num(["1"]), "--start": num(["0", "1"]), "--end": num(["3"]),
                                "--rate": num(["3200"]), "--full-scale-g": num(["2"]), "--json": None,
                                "--axis": st.sampled_from(["x", "z", "w"]),
                                "--units": st.sampled_from(["g", "m/s2", "mm/s2", "furlongs"])})
    elif command in ("log", "log show", "log verify"):
        argv = command.split() + (["s-"] if command == "log show" else [])
        argv += _options(draw, {"--json": None, "--limit": num(["5", "0"])} if command == "log" else {"--json": None})
    elif command == "log export":
        argv = ["log", "export", draw(st.sampled_from(["--csv", "--json"]))] + _options(draw, {
            "--from": st.sampled_from(HOSTILE_DATES + ["2026-03-01"]), "--to": st.sampled_from(HOSTILE_DATES),
            "--tz": st.sampled_from(ZONES), "--subject": st.sampled_from(["P-1", "nobody"]),
            "--status": st.sampled_from(["completed", "x"]), "--windows": None, "--no-verify": None,
            "--out": st.sampled_from(["out.csv", "new/dir/out.csv", "", ".", "fifo-out"]),
        })
        if "fifo-out" in argv:
            files["fifo-out"] = "fifo"
    elif command == "regimen list":
        argv = ["regimen", "list"] + _options(draw, {"--json": None})
    elif command == "regimen show":
        argv = ["regimen", "show", draw(st.one_of(st.sampled_from(["human-30hz-0.4g", "nope"]),
                                                  st.just(None)))]
        if argv[-1] is None:
            argv[-1] = _file_option(draw, files, "regimen", regimen_files)
    elif command in ("subject add", "subject assign"):
        argv = command.split() + [draw(st.sampled_from(["P-1", "P-2", " P", "", "x" * 300]))]
        if command == "subject add":
            argv += ["--kind", draw(st.sampled_from(["human", "animal", "cells", "robot"]))]
        regimen = draw(st.sampled_from(["human-30hz-0.4g", "mouse-90hz-0.3g", "file", None]))
        if regimen == "file":
            regimen = _file_option(draw, files, "regimen", regimen_files)
        if regimen is not None or command == "subject assign":
            argv += ["--regimen", regimen or "human-30hz-0.4g"]
        argv += _options(draw, {"--start": st.sampled_from(HOSTILE_DATES + ["2026-03-02"]),
                                "--weeks": num(["4"]), "--days": num(["10"]), "--tz": st.sampled_from(ZONES),
                                "--note": st.sampled_from(HOSTILE_TEXT), "--json": None})
    elif command in ("subject list", "subject show"):
        argv = command.split() + (["P-1"] if command == "subject show" else []) + _options(draw, {"--json": None})
    elif command == "due":
        argv = ["due"] + _options(draw, {"--at": st.sampled_from(HOSTILE_INSTANTS + ["2026-03-03T12:00"]),
                                         "--subject": st.sampled_from(["P-1", "nobody"]), "--json": None})
    elif command == "report":
        argv = ["report", "--subject", "P-1"] + _options(draw, {
            "--from": st.sampled_from(HOSTILE_DATES + ["2026-03-01"]), "--to": st.sampled_from(HOSTILE_DATES),
            "--format": st.sampled_from(["png", "pdf", "svg"]), "--no-verify": None,
            "--out": st.sampled_from(["reports", "", "fifo-out", "new/sub"]),
        })
        argv += ["--json"] if draw(st.integers(0, 3)) else []
        if "fifo-out" in argv:
            files["fifo-out"] = "fifo"
    elif command == "calibration show":
        argv = ["calibration", "show", _file_option(draw, files, "cal", calibration_documents().map(str.encode))]
    else:
        argv = [command] + _options(draw, {"--json": None})
    return Case("cli", argv, files)


@st.composite
def url_cases(draw) -> Case:
    return Case("url", ["session", "--device", draw(device_urls()), *SESSION_BASE, "--json"])


# -- recordings ----------------------------------------------------------------------------------


@st.composite
def recordings(draw) -> bytes:
    """CSV (with or without time), firmware ADXL345 dumps and WAV files: a 30 Hz tone, scaled,
    corrupted, truncated or replaced by garbage."""
    import numpy as np

    fmt = draw(st.sampled_from(["csv", "csv-notime", "dump", "wav", "garbage"]))
    if fmt == "garbage":
        return draw(st.binary(max_size=300))
    rate = draw(st.sampled_from([3200.0, 800.0, 100.0, 1.0]))
    n = draw(st.sampled_from([0, 1, 10, 3200, 6400, 6400, 9600]))
    scale = draw(st.sampled_from([1.0, 1.0, 1.0, 1e160, 1e-300, 0.0, -1.0]))
    t = np.arange(n) / rate
    z = scale * (1.0 + 0.3 * np.cos(2 * math.pi * 30.0 * t))
    corrupt = draw(st.sampled_from([None, None, None, "nan", "inf", "huge", "backwards", "blank"]))
    if corrupt and n:
        i = draw(st.integers(0, n - 1))
        if corrupt == "nan":
            z[i] = np.nan
        elif corrupt == "inf":
            z[i] = np.inf
        elif corrupt == "huge":
            z[i:] = 1e155
        elif corrupt == "backwards" and n > 2:
            t[i] = -t[i] - 1
    if fmt == "wav":
        return _wav(draw, z, rate)
    if fmt == "dump":
        lines = ["#time,accel_x,accel_y,accel_z"] + [f"{ti:.6f},0,0,{zi * 9806.65:.3f}" for ti, zi in zip(t, z)]
    elif fmt == "csv":
        lines = [draw(st.sampled_from(["time,x,y,z", "t,x,y,z", "time;x;y;z", "time,z", '"time","z"', "time,x,y,z,w"]))]
        lines += [f"{float(ti)!r},0,0,{float(zi)!r}" for ti, zi in zip(t, z)]
    else:
        lines = ["z"] + [repr(float(zi)) for zi in z]
    if corrupt == "blank" and len(lines) > 2:
        lines[1] = ""
    return ("\n".join(lines) + "\n").encode()


def _wav(draw, z, rate: float) -> bytes:
    import numpy as np

    header_rate = draw(st.sampled_from([int(rate), 0, 1, 2**31 - 1]))
    bits = draw(st.sampled_from([16, 32, 8]))
    z = np.asarray(z, dtype=float)
    finite = np.abs(z[np.isfinite(z)])
    peak = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    values = np.nan_to_num(z / max(1.0, peak), nan=0.0, posinf=1.0, neginf=-1.0)
    if bits == 16:
        data = (np.clip(values, -1, 1) * 32767).astype("<i2").tobytes()
    elif bits == 32:
        data = values.astype("<f4").tobytes()
    else:
        data = ((np.clip(values, -1, 1) + 1) * 127).astype("u1").tobytes()
    fmt_code = 3 if bits == 32 else 1
    channels = draw(st.sampled_from([1, 1, 3, 0]))
    block = max(1, channels) * bits // 8
    fmt_chunk = struct.pack("<HHIIHH", fmt_code, channels, header_rate, header_rate * block % 2**32, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk + b"data" + struct.pack("<I", len(data)) + data
    wav = b"RIFF" + struct.pack("<I", len(body)) + body
    if draw(st.booleans()):
        wav = wav[: draw(st.integers(0, len(wav)))]
    return wav


@st.composite
def recording_cases(draw) -> Case:
    data = draw(recordings())
    wav = data[:4] == b"RIFF"
    name = "rec.wav" if wav else "rec.csv"
    argv = ["validate", name, "--freq", "30", "--accel", "0.3", "--json"]
    if wav:
        argv += ["--full-scale-g", "2"]
    elif not data.startswith((b"time", b"t,", b'"time"', b"#time")):
        argv += ["--rate", "3200"]
    if draw(st.booleans()):  # half the recordings with the prescription's options only
        return Case("recording", argv, {name: data}, log=None)
    argv += _options(draw, {"--window": number_text(["1", "0.5"]), "--rate": number_text(["3200"]),
                            "--full-scale-g": number_text(["2"]), "--start": number_text(["0"])})
    return Case("recording", argv, {name: data}, log=None)


# -- TOML documents ------------------------------------------------------------------------------

_CALIBRATION_TEMPLATE: dict | None = None


def calibration_template() -> dict:
    """A real calibration of the simulated platform, made once (a sweep in virtual time)."""
    global _CALIBRATION_TEMPLATE
    if _CALIBRATION_TEMPLATE is None:
        import math as _math

        from livctl.platforms import open_platform
        from livctl.procedures.calibrate import Calibrator, SweepSettings

        with open_platform("sim://?seed=4", speed=_math.inf) as platform:
            cal = Calibrator(platform, SweepSettings(), operator="fuzz").run()
        _CALIBRATION_TEMPLATE = cal.to_dict()
    return _CALIBRATION_TEMPLATE


REGIMEN_TEMPLATE = {"preset": "human-30hz-0.4g", "bouts_per_day": 2, "min_rest_hours": 1, "days_per_week": 5,
                    "weeks": 12, "timezone": "Europe/Berlin"}
PROFILE_TEMPLATE = {"safety": {"accel_cap_g": 0.8, "stale_s": 0.4, "max_thd_fraction": 0.2}}
_MUTANT_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([0, -1, 1e-308, 1e308, True, "", "9999-12-31", [], {}, [1, 2, 3], "x" * 2000]),
    st.text(max_size=10), st.dates().map(lambda d: d),
)


def _leaf_paths(doc, prefix=()):
    if isinstance(doc, dict):
        return [p for k, v in doc.items() for p in _leaf_paths(v, prefix + (k,))] or [prefix]
    if isinstance(doc, list):
        return [p for i, v in enumerate(doc) for p in _leaf_paths(v, prefix + (i,))] or [prefix]
    return [prefix]


@st.composite
def mutated(draw, template: dict) -> dict:
    import copy

    doc = copy.deepcopy(template)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _leaf_paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        target = doc
        for key in path[:-1]:
            target = target[key]
        if draw(st.integers(0, 5)) == 0 and isinstance(target, dict):
            del target[path[-1]]
        else:
            target[path[-1]] = copy.deepcopy(draw(_MUTANT_VALUES))  # never a shared [] or {}
    if draw(st.integers(0, 6)) == 0:
        doc[draw(st.sampled_from(["unknown", "weeks", "x"]))] = copy.deepcopy(draw(_MUTANT_VALUES))
    return doc


def _toml_text(doc: dict) -> str:
    import tomli_w

    try:
        return tomli_w.dumps(doc)
    except (TypeError, ValueError):
        return "broken = [\n"


@st.composite
def toml_documents(draw, which: str) -> str:
    template = {"regimen": REGIMEN_TEMPLATE, "profile": PROFILE_TEMPLATE}[which]
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return "x = " + "[" * 5000 + "]" * 5000
    if choice == 1:
        return draw(st.text(max_size=200))
    if choice == 2:
        return _toml_text(template)
    return _toml_text(draw(mutated(template)))


@st.composite
def calibration_documents(draw) -> str:
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return "format = 1\n" + "x = " + "[" * 5000 + "]" * 5000
    if choice == 1:
        return _toml_text(calibration_template())
    return _toml_text(draw(mutated(calibration_template())))


@st.composite
def toml_cases(draw) -> Case:
    which = draw(st.sampled_from(["calibration", "session-calibration", "regimen", "profile"]))
    if which == "calibration":
        return Case("toml", ["calibration", "show", "c.toml", "--json"], {"c.toml": draw(calibration_documents()).encode()})
    if which == "session-calibration":
        files = {"calibration/sim.toml": draw(calibration_documents()).encode()}
        return Case("toml", ["session", "--device", "sim://", *SESSION_BASE, "--json"], files)
    if which == "regimen":
        files = {"r.toml": draw(toml_documents("regimen")).encode()}
        command = draw(st.sampled_from([["regimen", "show", "r.toml"],
                                        ["subject", "add", "P-7", "--kind", "human", "--regimen", "r.toml"]]))
        return Case("toml", command, files)
    files = {"p.toml": draw(toml_documents("profile")).encode()}
    return Case("toml", ["session", "--device", "sim://", *SESSION_BASE, "--profile", "p.toml", "--json"], files)


# -- damaged logs --------------------------------------------------------------------------------


@st.composite
def damaged_log_cases(draw) -> Case:
    kind = draw(st.sampled_from(["page", "page", "page", "truncate", "append", "sql"]))
    if kind == "page":
        recipe = (f"page:{draw(st.floats(0, 1)):.4f}:{draw(st.integers(0, 1023))}:"
                  f"{draw(st.binary(min_size=1, max_size=256)).hex()}")
    elif kind == "truncate":
        recipe = f"truncate:{draw(st.floats(0, 0.999)):.4f}"
    elif kind == "append":
        recipe = f"append:{draw(st.binary(min_size=1, max_size=2048)).hex()}"
    else:
        recipe = "sql:" + draw(st.sampled_from([
            "DELETE FROM session_ends WHERE seq = (SELECT max(seq) FROM session_ends)",
            "UPDATE windows SET peak_g = 9 WHERE seq = (SELECT min(seq) FROM windows)",
            "UPDATE chain_head SET seq = seq + 5",
            "DELETE FROM subjects",
            "UPDATE sessions SET subject = 'P-2'",
            "DROP TABLE windows",
            "PRAGMA user_version = 1",
        ]))
    command = draw(st.sampled_from([
        ["log"], ["log", "--json"], ["log", "verify"], ["log", "export", "--csv", "--no-verify"], ["due"],
        ["subject", "add", "P-3", "--kind", "human"], ["subject", "list"], ["report", "--subject", "P-1", "--json"],
        ["session", "--device", "sim://", *SESSION_BASE, "--subject", "P-1", "--override-reason", "fuzz"],
    ]))
    return Case("damaged_log", command, log=recipe)


# -- serial --------------------------------------------------------------------------------------

SCPI = [b"*IDN?\n", b"*RST\n", b"SYST:ERR?\n", b"SYST:HEAR\n", b"SOUR:FREQ 30\n", b"SOUR:FREQ nan\n",
        b"SOUR:FREQ 1e308\n", b"OUTP:LEV 0.1,0.5\n", b"OUTP:LEV -1,0\n", b"OUTP:LEV inf,inf\n", b"OUTP ON\n",
        b"OUTP OFF\n", b"STAT:COND?\n", b"SENS:STR ON\n", b"SENS:STR OFF\n", b"\n", b"\x00\xff\xfe",
        b"SOUR:FREQ 30;*IDN?\n", b"X" * 5000 + b"\n"]


@st.composite
def serial_cases(draw) -> Case:
    commands = draw(st.lists(st.one_of(st.sampled_from(SCPI), st.binary(max_size=40)), min_size=1, max_size=12))
    commands = [b"SENS:STR ON\n", b"SOUR:FREQ 30\n", b"OUTP ON\n", b"OUTP:LEV 0.1,0.2\n", *commands]
    mutations = draw(st.lists(st.tuples(st.sampled_from(["flip", "insert", "delete", "duplicate"]),
                                        st.integers(0, 10**6), st.binary(max_size=8)), max_size=6))
    return Case("serial", [], log=None, serial=(tuple(commands), tuple(mutations)))


# -- interrupts ----------------------------------------------------------------------------------


@st.composite
def sigint_cases(draw) -> Case:
    command = draw(st.sampled_from([
        ["session", "--device", "sim://", "--speed", "20", "--minutes", "0.05", "--quiet"],
        ["session", "--device", "sim://", *SESSION_BASE, "--subject", "P-1", "--override-reason", "fuzz"],
        ["log"], ["presets"], ["report", "--subject", "P-1", "--json"],
    ]))
    return Case("sigint", command, sigint_after_s=draw(st.floats(0.02, 1.5)))


KINDS = {
    "cli": cli_cases(),
    "url": url_cases(),
    "recording": recording_cases(),
    "toml": toml_cases(),
    "damaged_log": damaged_log_cases(),
    "serial": serial_cases(),
    "sigint": sigint_cases(),
}
"""Every kind of case with its strategy."""


def any_case(weights: dict[str, int] | None = None):
    weights = weights or {"cli": 40, "url": 8, "recording": 15, "toml": 12, "damaged_log": 12, "serial": 10,
                          "sigint": 3}
    return st.sampled_from([k for k, w in weights.items() for _ in range(w)]).flatmap(lambda k: KINDS[k])


def new_sandbox() -> Sandbox:
    root = Path(tempfile.mkdtemp(prefix="livctl-fuzz-"))
    return Sandbox(root, make_study_log(root / "study.sqlite"))
