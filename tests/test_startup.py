"""Ctrl-C while livctl is still starting (Python loading its modules) ends like any interrupt:
one line, exit 130, no traceback."""

import signal
import statistics
import subprocess
import sys
import time

from conftest import livctl_env


def _python_start_s() -> float:
    """How long Python takes here to start and import the livctl package: before that, an
    interrupt lands in Python's own start-up (site, runpy), which livctl's code cannot catch."""
    times = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import livctl"], env=livctl_env(), check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def test_sigint_during_startup_is_one_line_and_exit_130(tmp_path):
    start_s = _python_start_s()
    outcomes = []
    for step in range(12):
        delay_s = 2 * start_s + 0.01 * step  # from after Python's own start-up into livctl's imports
        proc = subprocess.Popen(
            [sys.executable, "-m", "livctl", "session", "--device", "sim://", "--speed", "max", "--minutes", "0.05",
             "--quiet", "--log", str(tmp_path / "doses.sqlite")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=livctl_env(),
        )
        time.sleep(delay_s)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        outcomes.append(proc.returncode)
        assert "Traceback" not in err and "Exception ignored" not in err, (delay_s, err)
        assert proc.returncode in (0, 130), (delay_s, proc.returncode, err)
        if proc.returncode == 130:
            assert err.strip().splitlines()[-1].startswith("livctl:"), err
    assert 130 in outcomes  # the interrupts did land while livctl ran


def test_the_livctl_command_starts_through_the_guarded_entry_point():
    import tomllib
    from pathlib import Path

    scripts = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["livctl"] == "livctl.__main__:run"
    result = subprocess.run([sys.executable, "-c", "import sys; from livctl.__main__ import run; sys.exit(run())",
                             "presets"], capture_output=True, text=True, env=livctl_env())
    assert result.returncode == 0 and "human-30hz-0.4g" in result.stdout
