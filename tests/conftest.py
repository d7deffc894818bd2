"""Shared fixtures: running the CLI in-process and as a real process, temporary dose logs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Qt draws off screen in tests (set before Qt is imported; the Xvfb test gives its own process a display)
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import livctl
from livctl.cli import main

REPO = Path(__file__).resolve().parents[1]
SRC = Path(livctl.__file__).resolve().parents[1]


def livctl_env(**extra: str) -> dict[str, str]:
    """Environment for a livctl subprocess that imports this checkout's code."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("LIVCTL_DEVICE", None)
    env.pop("LIVCTL_LOG", None)
    env.pop("LIVCTL_CALIBRATION_DIR", None)
    env.pop("LIVCTL_OPERATOR", None)
    env.pop("LIVCTL_TIMEZONE", None)
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    env.update(extra)
    return env


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch, tmp_path):
    """No test reads the developer's device choice, configuration files or writes to their real
    dose log, nor folds its output to the width of the terminal it was started from (a test that
    looks at 80 columns sets COLUMNS itself)."""
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)
    monkeypatch.delenv("LIVCTL_DEVICE", raising=False)
    monkeypatch.delenv("LIVCTL_OPERATOR", raising=False)
    monkeypatch.delenv("LIVCTL_TIMEZONE", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "system-config"))
    monkeypatch.setenv("LIVCTL_LOG", str(tmp_path / "default-log" / "doses.sqlite"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("LIVCTL_CALIBRATION_DIR", str(tmp_path / "calibration"))


@pytest.fixture(scope="session")
def jack():
    """A real JACK server (dummy driver, 48 kHz, 256 frames) that PortAudio in this process and its
    children uses; a server that cannot start fails the test with the reason (tests/jackserver.py)."""
    from jackserver import JackUnavailable, running_jack

    try:
        with running_jack() as server:
            yield server
    except JackUnavailable as exc:
        pytest.fail(f"the audio tests need a JACK server: {exc}")


@pytest.fixture
def rig(monkeypatch, cli):
    """`rig://`, the simulator reporting itself as real hardware (tests/realish_backend.py), in this
    process; `rig(platform_id, load_kg=70)` calibrates one (into $LIVCTL_CALIBRATION_DIR, as a
    real platform needs) and returns its URL."""
    from livctl import platforms

    monkeypatch.setitem(platforms.BACKENDS, "rig", "realish_backend")

    def calibrated(platform_id: str = "rig-1", load_kg: float = 70.0) -> str:
        url = f"rig://?id={platform_id}&load_kg={load_kg:g}"
        result = cli("calibrate", "--device", url, "--load-kg", f"{load_kg:g}", "--quiet", "--no-plot", "--force")
        assert result.code == 0, result
        return url

    return calibrated


@pytest.fixture
def log_path(tmp_path) -> Path:
    return tmp_path / "doses.sqlite"


class CliResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, out={self.out[-500:]!r}, err={self.err[-500:]!r})"


@pytest.fixture
def cli(capsys):
    """Run `livctl ARGS...` in this process; returns exit code, stdout and stderr."""

    def run(*args: str) -> CliResult:
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse exits for usage errors and --help
            code = exc.code if isinstance(exc.code, int) else 2
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def run_livctl(*args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """Run `python -m livctl ARGS...` as a real process."""
    return subprocess.run(
        [sys.executable, "-m", "livctl", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=kwargs.pop("env", None) or livctl_env(),
        **kwargs,
    )
