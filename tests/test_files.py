"""Files livctl reads are bounded (regular files only, at most MAX_INPUT_BYTES, nesting a parser
can follow); files it writes appear whole or not at all, and never replace what is not a file."""

import os

import pytest

from conftest import run_livctl
from livctl.calibration import CalibrationError, load_calibration
from livctl.errors import UsageError
from livctl.files import MAX_INPUT_BYTES, read_bounded, read_toml
from livctl.regimen import RegimenError, load_regimen_file
from livctl.safety import load_profile


@pytest.fixture
def odd_files(tmp_path):
    """A FIFO, a symlink to /dev/zero, a sparse file past the bound, a directory, and a TOML
    document nested 5 000 deep."""
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.toml"
    zero.symlink_to("/dev/zero")
    huge = tmp_path / "huge.toml"
    with open(huge, "wb") as f:
        f.truncate(MAX_INPUT_BYTES + 1)
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    deep = tmp_path / "deep.toml"
    deep.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    return {"fifo": fifo, "zero": zero, "dev": "/dev/zero", "huge": huge, "folder": folder, "deep": deep}


@pytest.mark.parametrize("which, says", [
    ("fifo", "is a FIFO (named pipe), not a regular file"),
    ("zero", "is a character device, not a regular file"),
    ("dev", "is a character device, not a regular file"),
    ("huge", "larger than any"),
    ("folder", "is a directory, not a regular file"),
    ("deep", "nests arrays or tables too deeply"),
])
@pytest.mark.parametrize("loader, error", [
    (load_regimen_file, RegimenError),
    (load_calibration, CalibrationError),
    (load_profile, UsageError),
])
def test_every_toml_file_is_read_bounded(odd_files, which, says, loader, error):
    with pytest.raises(error) as caught:
        loader(odd_files[which])
    message = str(caught.value)
    assert says in message and "\n" not in message


def test_a_file_growing_past_the_bound_while_read_is_refused(tmp_path):
    path = tmp_path / "p.toml"
    path.write_bytes(b"#" * 100)
    assert read_bounded(path, "profile") == b"#" * 100
    with pytest.raises(UsageError, match="larger than any profile"):
        read_bounded(path, "profile", max_bytes=99)


def test_read_toml_returns_the_table_and_the_bytes(tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text("[safety]\naccel_cap_g = 0.8\n")
    table, data = read_toml(path, "safety profile")
    assert table == {"safety": {"accel_cap_g": 0.8}} and data == path.read_bytes()
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(UsageError, match="is not UTF-8 text"):
        read_toml(path, "safety profile")


@pytest.mark.parametrize("args", [
    ["regimen", "show", "{fifo}"],
    ["regimen", "show", "{zero}"],
    ["subject", "add", "P-1", "--kind", "human", "--regimen", "{deep}", "--log", "{log}"],
    ["calibration", "show", "{zero}"],
    ["calibration", "show", "{fifo}"],
    ["session", "--device", "sim://", "--speed", "max", "--profile", "{fifo}", "--log", "{log}"],
    ["session", "--device", "sim://", "--speed", "max", "--profile", "{huge}", "--log", "{log}"],
])
def test_commands_refuse_odd_files_at_once_in_one_line(odd_files, tmp_path, args):
    names = dict(odd_files, log=tmp_path / "doses.sqlite")
    result = run_livctl(*[a.format(**names) for a in args], timeout=60)
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and any(s in lines[0] for s in ("not a regular file", "larger", "deeply")), lines
