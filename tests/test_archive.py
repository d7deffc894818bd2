"""The raw-signal archive on its own: what goes in comes out bit for bit, in a file any HDF5 reader
opens; its writer's failures reach the procedure, never the motion path; a killed livctl leaves a
closed file holding everything it had handed over."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest
from conftest import livctl_env

from livctl.records import archive as raw
from livctl.platforms import SampleBlock

LSB_MPS2 = 0.0039 * 9.80665  # an ADXL345 count
RATE_HZ = 3200.0


def counts_signal(seconds: float, seed: int = 0) -> np.ndarray:
    """(n, 3) m/s^2 that are whole counts: noise on x, y, gravity and a 30 Hz tone on z."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE_HZ)
    t = np.arange(n) / RATE_HZ
    counts = np.column_stack([
        np.rint(rng.normal(0, 4, n)),
        np.rint(rng.normal(0, 4, n)),
        np.rint(256 + 77 * np.cos(2 * np.pi * 30 * t) + rng.normal(0, 6, n)),
    ])
    return np.asfortranarray(counts * LSB_MPS2)


def feed(archive: raw.RawArchive, accel: np.ndarray, block: int = 320, t0_s: float = 0.0) -> None:
    for k in range(0, accel.shape[0], block):
        archive.add_samples(t0_s + k / RATE_HZ, accel[k : k + block], drive=0.25)


def feed_in_real_time(archive: raw.RawArchive, accel: np.ndarray, speed: float = 4.0) -> None:
    """Blocks of 0.1 s at `speed` times real time: each second goes to the writer when it is whole."""
    for k in range(0, accel.shape[0], 320):
        archive.add_samples(k / RATE_HZ, accel[k : k + 320], drive=0.25)
        time.sleep(0.1 / speed)


def new_archive(path, **kw) -> raw.RawArchive:
    return raw.RawArchive(path, kind="test", rate_hz=RATE_HZ, sample_format=kw.pop("sample_format", ("int16", LSB_MPS2)),
                          metadata=kw.pop("metadata", {"platform_id": "bench-A", "frequency_hz": 30.0}), **kw)


def test_every_sample_comes_back_bit_for_bit_with_the_blocks_commands_and_windows(tmp_path):
    accel = counts_signal(3.05)
    archive = new_archive(tmp_path / "a.h5")
    archive.add_command("frequency", math.nan, 30.0, 0.0, 0.0)
    archive.add_command("drive", 0.5, 30.0, 0.25, 2.0)
    feed(archive, accel)
    archive.add_window(0, "deliver", 1.0, 1.0, hint_hz=30.0, measured=True)
    archive.add_window(1, "deliver", 2.0, 1.05, hint_hz=None, measured=False)
    seal = archive.close(tmp_path, status="completed")

    assert seal.complete and seal.note is None
    assert seal.file == "a.h5" and seal.samples == accel.shape[0]
    assert seal.sha256 == raw.file_sha256(tmp_path / "a.h5") and seal.bytes == (tmp_path / "a.h5").stat().st_size
    back = raw.read_archive(tmp_path / "a.h5")
    assert np.array_equal(back.accel_mps2, accel)  # exactly: the counts times the same scale
    assert back.attrs["status"] == "completed" and back.attrs["complete"] == 1
    assert back.attrs["platform_id"] == "bench-A" and back.attrs["samples_inexact"] == 0
    assert list(back.blocks["t0_s"][:3]) == [0.0, 0.1, 0.2] and back.blocks["n"].sum() == accel.shape[0]
    assert [c.decode() for c in back.commands["kind"]] == ["frequency", "drive"]
    assert back.commands["level"][1] == 0.25 and back.commands["ramp_s"][1] == 2.0
    first, second = back.windows
    assert (first["start"], first["stop"]) == (3200, 6400) and first["hint_hz"] == 30.0
    assert (second["start"], second["stop"]) == (6400, accel.shape[0]) and math.isnan(second["hint_hz"])
    assert first["commands"] == second["commands"] == 2


def test_a_plain_h5py_reader_needs_only_the_scale_factor(tmp_path):
    accel = counts_signal(2.5, seed=3)
    archive = new_archive(tmp_path / "a.h5")
    feed(archive, accel)
    archive.close(tmp_path, status="completed")
    with h5py.File(tmp_path / "a.h5", "r") as f:  # no livctl: what MATLAB's h5read or R's rhdf5 see too
        assert f.attrs["format"] == "livctl raw signal" and f.attrs["rate_hz"] == RATE_HZ
        ds = f["accel"]
        assert ds.dtype == np.int16 and ds.attrs["units"] == "m/s^2"
        assert np.array_equal(ds[...].astype(np.float64) * ds.attrs["scale_factor"], accel)
        assert f["blocks"]["start"][-1] + f["blocks"]["n"][-1] == accel.shape[0]


def test_samples_that_are_not_whole_counts_are_counted_and_a_nan_stays_a_nan(tmp_path):
    accel = counts_signal(1.2)
    accel[100, 2] = math.nan  # a corrupted sample
    accel[200, 0] += 0.3 * LSB_MPS2  # not a whole count: stored rounded, and said so
    archive = new_archive(tmp_path / "a.h5")
    feed(archive, accel)
    archive.close(tmp_path, status="completed")
    back = raw.read_archive(tmp_path / "a.h5")
    assert math.isnan(back.accel_mps2[100, 2])
    assert back.accel_mps2[200, 0] == round(accel[200, 0] / LSB_MPS2) * LSB_MPS2
    assert back.attrs["samples_not_finite"] == 1 and back.attrs["samples_inexact"] == 1
    same = np.ones(accel.shape, bool)
    same[100, 2] = same[200, 0] = False
    assert np.array_equal(back.accel_mps2[same], accel[same])


def test_a_sound_cards_float_samples_are_kept_exactly(tmp_path):
    scale = 2.0 * 9.80665  # 2 g full scale
    card = np.random.default_rng(1).uniform(-0.5, 0.5, (5000, 3)).astype(np.float32)
    accel = np.asfortranarray(card.astype(np.float64) * scale)  # what the audio backend returns
    archive = new_archive(tmp_path / "a.h5", sample_format=("float32", scale))
    feed(archive, accel)
    archive.close(tmp_path, status="completed")
    back = raw.read_archive(tmp_path / "a.h5")
    assert np.array_equal(back.accel_mps2, accel) and back.attrs["samples_inexact"] == 0


def test_an_archive_is_never_written_over(tmp_path):
    (tmp_path / "a.h5").write_bytes(b"evidence")
    with pytest.raises(raw.ArchiveError, match="exists already"):
        new_archive(tmp_path / "a.h5")
    assert (tmp_path / "a.h5").read_bytes() == b"evidence"


def test_a_folder_that_cannot_hold_archives_is_refused_up_front(tmp_path):
    log = tmp_path / "doses.sqlite"
    (tmp_path / "doses.sqlite.archive").write_text("a file where the folder should be")
    with pytest.raises(raw.ArchiveError, match="doses.sqlite.archive"):
        raw.prepare_dir(log)


def test_a_disk_that_fails_is_a_failure_the_procedure_hears_of_and_close_never_raises(tmp_path):
    archive = new_archive(tmp_path / "a.h5")
    feed_in_real_time(archive, counts_signal(2.0))
    writer = archive._writer

    def broken(*args):
        raise OSError(5, "Input/output error")

    writer.append = broken
    feed_in_real_time(archive, counts_signal(2.0, seed=1))  # never raises: the guard's path stays clear
    deadline = time.monotonic() + 10
    while archive.failure is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert archive.failure == "input/output error"
    seal = archive.close(tmp_path, status="aborted", reason="test")
    assert seal is not None and not seal.complete and "input/output error" in seal.note
    assert seal.sha256 == raw.file_sha256(tmp_path / "a.h5")
    back = raw.read_archive(tmp_path / "a.h5")  # as its last flush left it: the first two seconds
    assert np.array_equal(back.accel_mps2, counts_signal(2.0)) and seal.samples == 6400


def test_a_killed_livctl_leaves_the_file_readable_with_all_but_the_last_second(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal, sys, time
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_archive import counts_signal, feed_in_real_time, new_archive
        archive = new_archive({str(tmp_path / "a.h5")!r})
        feed_in_real_time(archive, counts_signal(5.5))   # five whole seconds handed over, half a second not yet
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, "-c", script], env=livctl_env(), capture_output=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    with pytest.raises(OSError):
        h5py.File(tmp_path / "a.h5", "r")  # marked open for writing: a plain reader refuses it...
    with h5py.File(tmp_path / "a.h5", "r", swmr=True) as f:  # ...in SWMR mode it reads what was flushed
        assert f["accel"].shape[0] == 5 * 3200 and "status" not in f.attrs
    back = raw.read_archive(tmp_path / "a.h5")  # livctl's reader does that by itself
    assert np.array_equal(back.accel_mps2, counts_signal(5.5)[: 5 * 3200])
    assert back.blocks["start"][-1] + back.blocks["n"][-1] >= 5 * 3200
    seal = raw.seal_left_behind(tmp_path / "a.h5", tmp_path)
    assert seal.samples == 5 * 3200 and not seal.complete and "sealed as found" in seal.note
    assert seal.sha256 == raw.file_sha256(tmp_path / "a.h5")


def _mount_small_disk(path, size: str) -> bool:
    path.mkdir()
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A real file system of 512 KiB (tmpfs): a full disk, not a simulated error."""
    disk = tmp_path / "disk"
    if not _mount_small_disk(disk, "512k"):
        pytest.skip("a full disk is simulated with a small tmpfs, which needs root")
    yield disk
    subprocess.run(["umount", "--lazy", str(disk)], check=False)


def test_a_full_disk_stops_the_archive_whole_with_room_left_for_its_end(small_disk, monkeypatch):
    monkeypatch.setattr(raw, "DISK_RESERVE_BYTES", 64 << 10)  # the disk is 512 KiB
    archive = new_archive(small_disk / "a.h5")
    fed = []
    deadline = time.monotonic() + 60
    while archive.failure is None and time.monotonic() < deadline:
        fed.append(counts_signal(2.0, seed=len(fed)))
        feed(archive, fed[-1], t0_s=2.0 * (len(fed) - 1))
        archive.add_window(len(fed), "deliver", 2.0 * (len(fed) - 1), 1.0, hint_hz=30.0, measured=True)
    assert archive.failure.startswith("the disk is full")
    seal = archive.close(small_disk, status="aborted", reason="disk full")
    assert seal is not None and not seal.complete and "the disk is full" in seal.note
    assert seal.sha256 == raw.file_sha256(small_disk / "a.h5")
    back = raw.read_archive(small_disk / "a.h5")
    assert back.attrs["status"] == "aborted" and back.attrs["complete"] == 0  # closed, with its end written
    n = back.accel_mps2.shape[0]
    assert n == seal.samples >= 3200 and np.array_equal(back.accel_mps2, np.concatenate(fed)[:n])  # no hole


def test_the_recording_platform_records_every_command_as_the_platform_got_it(tmp_path):
    from livctl.platforms import open_platform

    archive = new_archive(tmp_path / "a.h5")
    with open_platform("sim://", speed=math.inf) as platform:
        watched = archive.watch(platform)
        watched.limit_drive(0.5)
        watched.set_frequency(30.0)
        block = watched.read(0.1)
        assert isinstance(block, SampleBlock) and watched.sensor_rate_hz == platform.sensor_rate_hz
        assert watched.set_drive(0.9, 0.2) == 0.5  # clamped by the ceiling: the archive says what went out
        watched.read(0.1)
        watched.cut_drive()
    archive.close(tmp_path, status="completed")
    back = raw.read_archive(tmp_path / "a.h5")
    kinds = [k.decode() for k in back.commands["kind"]]
    assert kinds == ["ceiling", "frequency", "drive", "cut"]
    assert list(back.commands["level"]) == [0.5, 0.0, 0.5, 0.0]
    assert math.isnan(back.commands["t_s"][0]) and back.commands["t_s"][2] == pytest.approx(0.1)
    assert back.blocks["drive"][1] == 0.5 and back.accel_mps2.shape[0] == 640
