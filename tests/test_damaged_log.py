"""A damaged dose log is noticed before any command reads from it or appends to it; a log that
cannot be written here is still read and verified."""

import datetime as dt
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import livctl_env, run_livctl
from livctl.records.doselog import PAGE_SIZE, DoseLog
from livctl.errors import LogError
from studylog import write_bout

UTC = dt.timezone.utc


def _make_log(path: Path, bouts: int = 20) -> Path:
    with DoseLog(path) as log:
        log.add_subject("P-1", "human")
        for i in range(bouts):
            write_bout(log, None, "P-1", dt.datetime(2026, 3, 2, 8, tzinfo=UTC) + dt.timedelta(days=i), minutes=1,
                       windows=None)
    assert not Path(f"{path}-wal").exists()  # checkpointed on close: the damage below lands in the file
    return path


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return _make_log(tmp_path_factory.mktemp("pristine") / "doses.sqlite")


def _damaged(pristine: Path, tmp_path: Path, where: str) -> Path:
    path = tmp_path / f"{where}.sqlite"
    shutil.copy(pristine, path)
    pages = path.stat().st_size // PAGE_SIZE
    page = {"mid": pages // 2, "late": pages - 2}[where]
    with open(path, "r+b") as f:
        f.seek(page * PAGE_SIZE)
        f.write(b"\xde\xad" * (PAGE_SIZE // 2))
    return path


COMMANDS = [
    ["log"],
    ["log", "show", "s-"],
    ["log", "export", "--csv", "--no-verify"],
    ["due"],
    ["subject", "list"],
    ["subject", "add", "P-2", "--kind", "human"],
    ["subject", "assign", "P-1", "--regimen", "human-30hz-0.4g", "--start", "2026-03-02"],
    ["report", "--subject", "P-1", "--json", "--no-verify"],
    ["session", "--device", "sim://", "--speed", "max", "--minutes", "0.05", "--subject", "P-1", "--quiet"],
]


@pytest.mark.parametrize("where", ["mid", "late"])
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_every_command_refuses_a_damaged_log_and_leaves_it_as_it_was(cli, pristine, tmp_path, where, command):
    path = _damaged(pristine, tmp_path, where)
    before = path.read_bytes()
    result = cli(*command, "--log", str(path))
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert result.code == 2 and len(lines) == 1 and "is damaged" in lines[0], result
    assert path.read_bytes() == before and not Path(f"{path}-wal").exists() or _wal_is_empty(path)
    assert "delivering" not in result.err


def _wal_is_empty(path: Path) -> bool:
    wal = Path(f"{path}-wal")
    return not wal.exists() or wal.stat().st_size == 0


@pytest.mark.parametrize("where", ["mid", "late"])
def test_verify_reports_the_damage_itself(cli, pristine, tmp_path, where):
    result = cli("log", "verify", "--log", str(_damaged(pristine, tmp_path, where)))
    assert result.code == 2 and "damaged" in result.err and "Traceback" not in result.err


def test_a_chain_head_that_is_not_the_last_record_is_refused_before_an_append(pristine, tmp_path):
    path = tmp_path / "cut.sqlite"
    shutil.copy(pristine, path)
    db = sqlite3.connect(path)
    db.execute("DROP TRIGGER session_ends_append_only_delete")
    db.execute("DELETE FROM session_ends WHERE seq = (SELECT max(seq) FROM session_ends)")
    db.commit()
    db.close()
    with DoseLog(path, create=False) as log:
        with pytest.raises(LogError, match="chain head says record .* is the last, but the last record is"):
            log.add_subject("P-9", "human")
        assert "removed from the end" in log.verify().problem  # verify still reports in full
    assert sqlite3.connect(path).execute("SELECT count(*) FROM subjects WHERE subject_id = 'P-9'").fetchone()[0] == 0


def test_an_edited_head_record_is_refused(pristine, tmp_path):
    path = tmp_path / "edited.sqlite"
    shutil.copy(pristine, path)
    db = sqlite3.connect(path)
    db.execute("DROP TRIGGER session_ends_append_only_update")
    db.execute("UPDATE session_ends SET delivered_s = 600 WHERE seq = (SELECT max(seq) FROM session_ends)")
    db.commit()
    db.close()
    with DoseLog(path, create=False) as log, pytest.raises(LogError, match="does not match the chain head"):
        log.sessions()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(page_fraction=st.floats(0.0, 1.0), offset=st.integers(0, PAGE_SIZE - 1),
       garbage=st.binary(min_size=1, max_size=64))
def test_an_append_to_a_damaged_log_is_refused_or_changes_nothing_verify_says(pristine, tmp_path, page_fraction,
                                                                                offset, garbage):
    """Whatever bytes are damaged: either the append is refused and the file is as it was, or the
    append went through and verification says what it said before (no damage hidden or made)."""
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "doses.sqlite"
    shutil.copy(pristine, path)
    pages = path.stat().st_size // PAGE_SIZE
    with open(path, "r+b") as f:
        f.seek(min(int(page_fraction * pages), pages - 1) * PAGE_SIZE + offset)
        f.write(garbage)

    def verdict():
        try:
            with DoseLog(path, create=False) as log:
                check = log.verify(workers=1)
            return check.ok, check.bad_seq
        except LogError:
            return False, "unreadable"

    before, data = verdict(), path.read_bytes()
    try:
        with DoseLog(path, create=False) as log:
            log.add_subject("P-9", "animal")
    except LogError as exc:
        assert "\n" not in str(exc)
        assert path.read_bytes() == data and _wal_is_empty(path)
        return
    after = verdict()
    assert after == before or (after[0] is False and before[0] is False and after[1] == before[1])


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run livctl as another user")
def test_a_log_in_a_read_only_folder_is_read_and_verified_and_never_written(pristine):
    folder = Path(tempfile.mkdtemp(prefix="livctl-ro-"))
    try:
        path = folder / "doses.sqlite"
        shutil.copy(pristine, path)
        os.chmod(path, 0o644)
        os.chmod(folder, 0o555)
        before = path.read_bytes()
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        env = livctl_env(HOME=str(folder), XDG_DATA_HOME=str(folder), XDG_CONFIG_HOME=str(folder),
                         XDG_CONFIG_DIRS=str(folder), LIVCTL_TIMEZONE="Europe/Paris")

        def as_nobody(*args):
            return subprocess.run([*nobody, sys.executable, "-m", "livctl", *args, "--log", str(path)],
                                  capture_output=True, text=True, timeout=60, env=env, cwd="/")

        for args in (["log"], ["log", "verify"], ["due"], ["subject", "show", "P-1"], ["log", "export", "--csv"],
                     ["report", "--subject", "P-1", "--json", "--to", "2026-03-31"]):
            result = as_nobody(*args)
            assert result.returncode == 0 and result.stderr == "", (args, result.stderr)
        for args in (["subject", "add", "P-2", "--kind", "human"],
                     ["session", "--device", "sim://", "--speed", "max", "--minutes", "0.05", "--quiet"]):
            result = as_nobody(*args)
            *notes, line = result.stderr.strip().splitlines()
            assert all("no calibration for platform 'sim'" in note for note in notes)
            assert result.returncode == 2 and line.startswith("livctl: error:") and "cannot be written here" in line
        assert path.read_bytes() == before and sorted(p.name for p in folder.iterdir()) == ["doses.sqlite"]
    finally:
        os.chmod(folder, 0o755)
        shutil.rmtree(folder)


def test_a_log_path_that_is_not_a_file_is_refused_without_waiting(tmp_path):
    fifo = tmp_path / "fifo.sqlite"
    os.mkfifo(fifo)
    for path in (fifo, "/dev/zero", tmp_path):
        result = run_livctl("log", "--log", str(path), timeout=30)
        assert result.returncode == 2 and "not a regular file" in result.stderr, result.stderr
