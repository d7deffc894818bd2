"""Every logged session keeps its raw signal: sealed in the dose log's chain, checked by
`livctl log verify`, analysed again by `livctl validate --session`, handed over by
`livctl log export --raw`; a killed livctl loses less than a second of it, a full disk stops the
session safely and truthfully."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from conftest import REPO, livctl_env, run_livctl

from livctl.records import archive as raw
from livctl.platforms import open_platform
from livctl.records.doselog import DoseLog
from livctl.procedures.guard import MotionGuard
from livctl.procedures.prepare import SessionRequest, prepare_session
from livctl.prescription import Prescription
from livctl.offline.reanalysis import _check_window, reanalyse
from livctl.procedures.safety import Trip
from livctl.procedures.session import Session, run_session


def _session(log_path, minutes: float = 0.5, device: str = "sim://?seed=2", **options):
    rx = Prescription(frequency_hz=30.0, peak_g=0.3, duration_s=60.0 * minutes)
    with DoseLog(log_path) as log, open_platform(device, speed=math.inf) as platform:
        result = Session(prepare_session(platform, log, SessionRequest(rx)), platform, log, **options).run()
        return result, log.archives(result.session_id), log.windows(result.session_id)


def test_a_logged_session_keeps_every_sample_and_command_sealed_in_the_chain(log_path):
    result, archives, windows = _session(log_path)
    assert result.status == "completed" and len(archives) == 1
    seal = archives[0]
    path = log_path.parent / seal["file"]
    assert seal["file"] == f"doses.sqlite.archive/{result.session_id}.h5" and seal["complete"]
    assert raw.file_sha256(path) == seal["sha256"] and path.stat().st_size == seal["bytes"]
    with DoseLog(log_path) as log:
        assert log.verify().ok
        end_seq = log._query("SELECT seq FROM session_ends WHERE session_id = ?", [result.session_id])[0][0]
    assert seal["seq"] == end_seq - 1  # chained just before the session's end, in the same transaction

    data = raw.read_archive(path)
    assert data.attrs["session_id"] == result.session_id and data.attrs["status"] == "completed"
    assert data.attrs["frequency_hz"] == 30.0 and data.attrs["peak_g"] == 0.3 and data.attrs["window_s"] == 1.0
    assert data.accel_mps2.shape == (seal["samples"], 3) and data.attrs["samples_inexact"] == 0
    # the windows of the log, one for one, each the samples stamped between its bounds
    assert [int(w["index"]) for w in data.windows] == [w["idx"] for w in windows]
    times = data.times_s()
    for row, logged in zip(data.windows, windows):
        assert row["t_s"] == logged["t_s"] and row["duration_s"] == logged["duration_s"]
        if logged["frequency_hz"] is not None:
            start, stop = int(row["start"]), int(row["stop"])
            assert times[start] == logged["t_s"]
            assert stop - start == round(logged["duration_s"] * data.rate_hz)
    # the drive each window logged is the last level commanded before its end, and the end is a cut
    commands = data.commands
    for row, logged in zip(data.windows, windows):
        sent = commands[: int(row["commands"])]
        levels = [c["level"] for c in sent if c["kind"] in (b"drive", b"cut")] or [0.0]
        assert levels[-1] == logged["drive"]
        assert all(c["t_s"] <= logged["t_s"] + logged["duration_s"] + 1e-9 for c in sent if math.isfinite(c["t_s"]))
    assert commands["kind"][-1] == b"cut" and commands["level"][-1] == 0.0


def test_the_block_the_guard_cuts_on_is_kept_though_no_window_holds_it(tmp_path):
    sim = "sim://?seed=1"
    with open_platform(sim, speed=math.inf) as platform:
        archive = raw.RawArchive.for_platform(tmp_path / "a.h5", platform, kind="test", metadata={})
        watched = archive.watch(platform)
        with pytest.raises(Trip, match="above the 0.3 g safety cap"):
            with MotionGuard(watched, accel_cap_g=0.3) as guard:  # the device itself trips at 0.45 g
                watched.set_frequency(30.0)
                watched.set_drive(0.25, 0.3)  # about 0.39 g: straight to the platform, as a bug would
                for _ in range(30):
                    guard.read(0.1)
        archive.close(tmp_path, status="aborted")
    data = raw.read_archive(tmp_path / "a.h5")
    last = data.blocks[-1]
    z = data.accel_mps2[int(last["start"]) : int(last["start"]) + int(last["n"]), 2]
    assert (z.max() - z.min()) / 2 > 0.3 * 9.80665  # the evidence of the trip is in the file
    assert [k.decode() for k in data.commands["kind"][-1:]] == ["cut"]


def test_without_a_log_nothing_is_kept_and_a_benchmark_may_turn_it_off(log_path):
    result, archives, _ = _session(log_path, minutes=0.2, keep_signal=False)
    assert result.status == "completed" and archives == []
    assert not (log_path.parent / "doses.sqlite.archive").exists()


def test_a_place_that_cannot_hold_the_signal_is_refused_before_anything_is_logged(cli, log_path):
    log_path.parent.mkdir(exist_ok=True)
    (log_path.parent / "doses.sqlite.archive").write_text("not a folder")
    result = cli("session", "--device", "sim://", "--minutes", "0.2", "--speed", "max", "--log", str(log_path),
                 "--quiet")
    assert result.code == 2, result
    *notes, line = result.err.strip().splitlines()
    assert all("no calibration for platform 'sim'" in note for note in notes)  # said of every sim:// session
    assert "doses.sqlite.archive" in line and line.startswith("livctl: error:")
    assert "Traceback" not in result.err
    with DoseLog(log_path) as log:
        assert log.sessions() == []


def test_log_verify_names_an_altered_or_a_missing_raw_signal(cli, log_path):
    first, _, _ = _session(log_path, minutes=0.2)
    second, archives, _ = _session(log_path, minutes=0.2)
    ok = cli("log", "verify", "--log", str(log_path))
    assert ok.code == 0 and "2 of 2 archives match" in ok.out, ok

    path = log_path.parent / archives[0]["file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit, in the middle of the samples
    path.write_bytes(bytes(data))
    altered = cli("log", "verify", "--log", str(log_path))
    assert altered.code == 2 and "Traceback" not in altered.err
    assert f"raw signal of session {second.session_id}" in altered.err and "was changed after it was sealed" in altered.err
    assert cli("log", "verify", "--log", str(log_path), "--no-raw").code == 0  # the chain itself is intact

    (log_path.parent / f"doses.sqlite.archive/{first.session_id}.h5").unlink()
    both = cli("log", "verify", "--log", str(log_path), "--json")
    assert both.code == 2
    report = json.loads(both.out)["raw_signal"]
    problems = {p["session_id"]: p["problem"] for p in report["problems"]}
    assert "is missing" in problems[first.session_id] and "was changed" in problems[second.session_id]


def test_older_sessions_and_older_logs_without_archives_keep_verifying(cli, log_path):
    _session(log_path, minutes=0.2, keep_signal=False)  # as an older livctl wrote them
    with sqlite3.connect(log_path) as db:  # a schema-2 log: no archives table
        db.execute("DROP TABLE archives")
        db.execute("PRAGMA user_version = 2")
    checked = cli("log", "verify", "--log", str(log_path))
    assert checked.code == 0, checked
    assert "1 session without one" in checked.out
    with sqlite3.connect(log_path) as db:  # opened by this livctl, it gained the table, nothing else
        assert db.execute("PRAGMA user_version").fetchone()[0] == 4
        assert db.execute("SELECT count(*) FROM archives").fetchone()[0] == 0
    _session(log_path, minutes=0.2)
    assert cli("log", "verify", "--log", str(log_path)).code == 0


def test_validate_session_measures_every_logged_window_again_and_gets_the_logs_figures(cli, log_path):
    result, _, windows = _session(log_path, minutes=0.5)
    checked = cli("validate", "--session", result.session_id, "--log", str(log_path), "--json")
    assert checked.code == 0, checked
    report = json.loads(checked.out)
    measured = sum(1 for w in windows if w["frequency_hz"] is not None)
    assert report["windows"]["measured"] == measured == report["windows"]["reproduced"]
    assert report["windows"]["largest_relative_difference"] == 0.0  # measured in the same order: the same bits
    assert report["archive"]["sha256_verified"] and report["in_spec"]
    delivery = report["delivery"]
    assert delivery["in_spec"] and delivery["frequency_hz"] == pytest.approx(30.0, abs=0.01)
    assert delivery["peak_g"] == pytest.approx(0.3, rel=0.02)
    first = next(w for w in windows if w["phase"] == "deliver")
    assert delivery["from_s"] == pytest.approx(first["t_s"])  # on the session's own clock
    text = cli("validate", "--session", result.session_id[:8], "--log", str(log_path))
    assert text.code == 0 and f"{measured} of {measured} measured windows reproduced" in text.out.replace("\n  ", " ")


def test_a_window_whose_figures_do_not_come_back_is_named(log_path):
    result, archives, windows = _session(log_path, minutes=0.2)
    data = raw.read_archive(log_path.parent / archives[0]["file"])
    rx = Prescription(frequency_hz=30.0, peak_g=0.3, duration_s=12.0)
    logged = next(w for w in windows if w["phase"] == "deliver")
    alone = _check_window(logged, data, rx, 2)  # on its own: the fit starts elsewhere, the figures hold
    assert alone.reproduced and alone.worst[1] < 1e-2
    edited = dict(logged, peak_g=logged["peak_g"] * 1.001)  # as if the log said something else
    check = _check_window(edited, data, rx, 2)
    assert not check.reproduced and check.problem.startswith("peak_g")


def test_validate_session_refuses_a_raw_signal_that_is_not_as_sealed(cli, log_path):
    result, archives, _ = _session(log_path, minutes=0.2)
    path = log_path.parent / archives[0]["file"]
    path.write_bytes(path.read_bytes()[:-10])
    refused = cli("validate", "--session", result.session_id, "--log", str(log_path))
    assert refused.code == 2 and "proves nothing" in refused.err and "Traceback" not in refused.err
    assert cli("validate", "--session", "s-nothing", "--log", str(log_path)).code == 2
    assert cli("validate", "--session", result.session_id, "--freq", "30", "--log", str(log_path)).code == 2


def test_export_raw_hands_over_the_sealed_file_or_a_csv_validate_reads(cli, log_path, tmp_path):
    result, archives, windows = _session(log_path, minutes=0.5)
    out = tmp_path / "for-the-reviewer.h5"
    exported = cli("log", "export", "--raw", result.session_id, "--out", str(out), "--log", str(log_path))
    assert exported.code == 0, exported
    assert raw.file_sha256(out) == archives[0]["sha256"] and archives[0]["sha256"] in exported.err

    table = tmp_path / "raw.csv"
    assert cli("log", "export", "--raw", result.session_id, "--csv", "--out", str(table), "--log", str(log_path)).code == 0
    with open(table) as f:
        lines = [line for line in f if not line.startswith("##")]
    rows = list(csv.reader(lines))
    assert rows[0] == ["time (s)", "accel_x (m/s^2)", "accel_y (m/s^2)", "accel_z (m/s^2)"]
    assert len(rows) - 1 == archives[0]["samples"]
    first = next(w for w in windows if w["phase"] == "deliver")
    last = [w for w in windows if w["phase"] == "deliver"][-1]
    checked = cli("validate", str(table), "--freq", "30", "--accel", "0.3", "--start", str(first["t_s"]),
                  "--end", str(last["t_s"] + last["duration_s"]), "--json")
    assert checked.code == 0, checked
    assert json.loads(checked.out)["peak_g"] == pytest.approx(0.3, rel=0.02)

    assert cli("log", "export", "--raw", result.session_id, "--log", str(log_path)).code == 2  # HDF5 needs --out
    assert cli("log", "export", "--raw", result.session_id, "--json", "--log", str(log_path)).code == 2
    path = log_path.parent / archives[0]["file"]
    path.write_bytes(path.read_bytes() + b"\0")
    refused = cli("log", "export", "--raw", result.session_id, "--out", str(tmp_path / "x.h5"), "--log", str(log_path))
    assert refused.code == 2 and "nothing was exported" in refused.err and not (tmp_path / "x.h5").exists()


def _logged_windows(log_path) -> list[tuple[float, float]]:
    try:
        with sqlite3.connect(f"file:{log_path}?mode=ro", uri=True) as db:
            return db.execute("SELECT t_s, duration_s FROM windows ORDER BY seq").fetchall()
    except sqlite3.Error:
        return []


def test_a_killed_livctl_loses_less_than_the_last_second_of_signal(log_path):
    session = subprocess.Popen(
        [sys.executable, "-m", "livctl", "session", "--device", "sim://", "--minutes", "2", "--speed", "2",
         "--log", str(log_path), "--quiet"],
        env=livctl_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while len(_logged_windows(log_path)) < 12 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.37)  # somewhere inside a second
    session.send_signal(signal.SIGKILL)
    session.wait(timeout=30)
    windows = _logged_windows(log_path)
    logged_to_s = max(t + d for t, d in windows)

    listed = run_livctl("log", "--log", str(log_path), "--json")  # closes the session: it seals the archive
    assert listed.returncode == 0, listed.stderr
    record = json.loads(listed.stdout)[0]
    assert record["status"] == "interrupted"
    with DoseLog(log_path) as log:
        seal = log.archives(record["session_id"])[0]
    assert not seal["complete"] and "sealed as found" in seal["note"]
    data = raw.read_archive(log_path.parent / seal["file"])  # as its last flush left it
    assert "status" not in data.attrs and data.accel_mps2.shape[0] == seal["samples"]
    kept_to_s = float(data.times_s()[-1]) + 1.0 / data.rate_hz
    assert kept_to_s > logged_to_s - 1.0  # at most the last second is lost
    verified = run_livctl("log", "verify", "--log", str(log_path))
    assert verified.returncode == 0 and "1 of 1 archives match" in verified.stdout and "1 incomplete" in verified.stdout


def _small_disk(tmp_path, size: str):
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)],
                                           capture_output=True).returncode != 0:
        pytest.skip("a full disk is a small tmpfs, which needs root")
    return disk


def test_a_full_disk_stops_the_session_safely_and_logs_why(tmp_path):
    disk = _small_disk(tmp_path, "5m")  # the archive stops with 4 MiB left: about a minute fits
    try:
        log_path = disk / "doses.sqlite"
        done = run_livctl("session", "--device", "sim://", "--minutes", "10", "--speed", "max",
                          "--log", str(log_path), "--json", "--quiet", timeout=300)
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        summary = json.loads(done.stdout)
        assert summary["status"] == "aborted" and "the raw signal could not be written: the disk is full" in summary["reason"]
        assert summary["delivered_s"] < 600
        with DoseLog(log_path) as log:
            windows = log.windows(summary["session_id"])
            seal = log.archives(summary["session_id"])[0]
            assert log.verify().ok
        assert windows[-1]["phase"] == "ramp_down"  # stopped the way every session stops
        assert not seal["complete"] and "the disk is full" in seal["note"]
        data = raw.read_archive(log_path.parent / seal["file"])
        assert data.attrs["status"] == "aborted" and data.accel_mps2.shape[0] == seal["samples"] > 3200 * 30
        verified = run_livctl("log", "verify", "--log", str(log_path))
        assert verified.returncode == 0, verified.stderr
    finally:
        subprocess.run(["umount", "--lazy", str(disk)], check=False)


def test_a_script_gets_the_same_archive_as_the_command(log_path):
    rx = Prescription(frequency_hz=30.0, peak_g=0.3, duration_s=12.0)
    with DoseLog(log_path) as log, open_platform("sim://", speed=math.inf) as platform:
        result = run_session(platform, log, SessionRequest(rx))
        check = reanalyse(log, result.session_id)
    assert check.in_spec and all(w.reproduced for w in check.measured)


def test_a_calibration_keeps_its_sweeps_raw_signal_beside_its_file(cli, tmp_path):
    folder = tmp_path / "cal"
    made = cli("calibrate", "--device", "sim://?id=bench-A", "--speed", "max", "--no-plot", "--quiet",
               "--calibration-dir", str(folder), "--json")
    assert made.code == 0, made
    document = json.loads(made.out)["calibration"]
    kept = document["raw_signal"]
    path = folder / kept["file"]
    assert kept["file"] == f"bench-A.toml.archive/{document['calibration_id']}.h5" and kept["complete"]
    assert raw.file_sha256(path) == kept["sha256"]
    data = raw.read_archive(path)
    assert data.attrs["kind"] == "calibration" and data.attrs["calibration_id"] == document["calibration_id"]
    assert data.accel_mps2.shape[0] == kept["samples"] and data.attrs["platform_id"] == "bench-A"
    steps = {round(s["drive"], 9) for p in document["points"] for s in p["steps"]}
    driven = {round(float(c["level"]), 9) for c in data.commands if c["kind"] == b"drive"}
    assert steps <= driven  # every measured step's drive went out, and is in the file
    shown = cli("calibration", "show", "bench-A", "--calibration-dir", str(folder))
    assert "SHA-256 as recorded" in shown.out
    path.write_bytes(path.read_bytes()[:-1])
    assert "CHANGED" in cli("calibration", "show", "bench-A", "--calibration-dir", str(folder)).out


def test_a_calibration_that_fails_keeps_no_raw_signal(cli, tmp_path):
    folder = tmp_path / "cal"
    failed = cli("calibrate", "--device", "sim://?id=bench-B&fault=actuator_failure", "--speed", "max", "--no-plot",
                 "--quiet", "--calibration-dir", str(folder))
    assert failed.code == 1, failed
    assert not folder.exists() or list(folder.iterdir()) == []  # nothing written, as before


def test_the_documented_script_reads_an_archive_without_livctl_and_gets_the_logs_windows(cli, log_path, tmp_path):
    document = (REPO / "docs" / "archive.md").read_text()
    script = document.split("<!-- check_archive.py -->\n```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "check_archive.py").write_text(script)
    result, _, windows = _session(log_path, minutes=1.0)
    archive, table = tmp_path / "s.h5", tmp_path / "windows.csv"
    assert cli("log", "export", "--raw", result.session_id, "--out", str(archive), "--log", str(log_path)).code == 0
    assert cli("log", "export", "--csv", "--windows", "--out", str(table), "--log", str(log_path)).code == 0
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # h5py and numpy only: no livctl
    done = subprocess.run([sys.executable, str(tmp_path / "check_archive.py"), str(archive), str(table)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    delivered = sum(1 for w in windows if w["phase"] == "deliver")
    assert done.stdout.strip().splitlines()[-1].startswith(f"{delivered} of {delivered} delivery windows agree")
