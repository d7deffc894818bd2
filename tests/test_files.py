"""Files livctl reads are bounded (regular files only, at most MAX_INPUT_BYTES, nesting a parser
can follow); files it writes appear whole or not at all, and never replace what is not a file."""

import os
import stat

import pytest

from conftest import run_livctl
from livctl.records.calibration import CalibrationError, load_calibration
from livctl.errors import UsageError
from livctl.records.files import MAX_INPUT_BYTES, read_bounded
from livctl.records.tomlfields import read_toml
from livctl.study.regimen import RegimenError, load_regimen_file
from livctl.procedures.safety import load_profile


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


# -- writing ------------------------------------------------------------------------------------


@pytest.fixture
def small_log(cli, tmp_path):
    log = tmp_path / "doses.sqlite"
    assert cli("subject", "add", "P-1", "--kind", "human", "--log", str(log)).code == 0
    return log


def _export(cli, log, out):
    return cli("log", "export", "--csv", "--out", str(out), "--log", str(log))


def test_export_through_a_symlink_writes_its_target_and_keeps_the_link(cli, small_log, tmp_path):
    target = tmp_path / "real.csv"
    target.write_text("old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    result = _export(cli, small_log, link)
    assert result.code == 0, result
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text().startswith("session_id,")


@pytest.mark.parametrize("kind", ["fifo", "device", "link-to-device", "dangling-link", "folder", "empty"])
def test_export_never_replaces_what_is_not_a_regular_file(small_log, tmp_path, kind):
    out = tmp_path / "out.csv"
    if kind == "fifo":
        os.mkfifo(out)
    elif kind == "device":
        if os.geteuid() != 0:
            pytest.skip("making a device node needs root")
        os.mknod(out, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a /dev/null of our own
    elif kind == "link-to-device":
        out.symlink_to("/dev/null")
    elif kind == "dangling-link":
        out.symlink_to(tmp_path / "nowhere" / "x.csv")
    elif kind == "folder":
        out.mkdir()
    else:
        out = ""
    before = os.lstat(out).st_mode if out else None
    result = run_livctl("log", "export", "--csv", "--out", str(out), "--log", str(small_log), timeout=30)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "cannot write" in lines[0], result.stderr
    if out:
        assert os.lstat(out).st_mode == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_missing_folders_are_created_and_said(cli, small_log, tmp_path):
    out = tmp_path / "new" / "deeper" / "x.csv"
    result = _export(cli, small_log, out)
    assert result.code == 0 and out.exists(), result
    assert f"livctl: created the folder {tmp_path / 'new'}" in result.err
    again = _export(cli, small_log, out)
    assert again.code == 0 and "created the folder" not in again.err
    report = cli("report", "--subject", "P-1", "--out", str(tmp_path / "reports"), "--to", "2026-12-31",
                 "--log", str(small_log))
    assert report.code == 0 and f"created the folder {tmp_path / 'reports'}" in report.err, report
