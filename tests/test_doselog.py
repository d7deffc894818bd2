"""The dose log: a real SQLite file, written as sessions go, refusing files it must not touch."""

import sqlite3
import subprocess
import sys
import textwrap

import pytest

from livctl.records.doselog import SCHEMA_VERSION, DoseLog, SessionStart
from livctl.errors import LogError

from conftest import livctl_env


def _start(**changes) -> SessionStart:
    values = dict(
        device="sim://", platform_id="sim", simulated=True, time_base="virtual time", subject="P-1",
        operator="ana", preset=None, frequency_hz=30.0, peak_g=0.3, duration_s=600.0, ramp_s=2.0,
        tol_frequency_hz=1.0, tol_accel_fraction=0.1, max_thd_fraction=0.1, min_in_spec_fraction=0.9,
        window_s=1.0, calibration_id="sim-2026-11-29",
    )
    values.update(changes)
    return SessionStart(**values)


def _window(idx: int, in_spec: bool = True) -> dict:
    return dict(idx=idx, phase="deliver", t_s=float(idx), duration_s=1.0, drive=0.2, frequency_hz=30.0,
                peak_g=0.3, rms_g=0.212, thd_percent=1.0, snr_db=20.0, dc_g=1.0, axis="z",
                off_axis_percent=1.0, in_spec=in_spec, reasons=[] if in_spec else ["peak too low"])


def _end(**changes) -> dict:
    values = dict(status="completed", reason=None, delivered_s=2.0, in_spec_s=1.0, in_spec_fraction=0.5,
                  mean_frequency_hz=30.0, mean_peak_g=0.3, mean_thd_percent=1.0, in_spec=False, window_count=2)
    values.update(changes)
    return values


def test_session_start_windows_and_end_round_trip(log_path):
    with DoseLog(log_path) as log:
        sid = log.start_session(_start())
        log.add_window(sid, _window(0))
        log.add_window(sid, _window(1, in_spec=False))
        log.end_session(sid, _end())
    with DoseLog(log_path, create=False) as log:
        s = log.find_session(sid[:6])
        windows = log.windows(sid)
    assert s["session_id"] == sid
    assert s["status"] == "completed" and s["in_spec"] is False
    assert s["delivered_s"] == 2.0 and s["in_spec_fraction"] == 0.5
    assert s["prescription"]["frequency_hz"] == 30.0 and s["subject"] == "P-1" and s["operator"] == "ana"
    assert s["calibration_id"] == "sim-2026-11-29"
    assert s["started_utc"].endswith("Z") and s["ended_utc"] >= s["started_utc"]
    assert [w["in_spec"] for w in windows] == [True, False]
    assert windows[1]["reasons"] == ["peak too low"]


def test_a_session_without_an_end_reads_as_running(log_path):
    with DoseLog(log_path) as log:
        sid = log.start_session(_start())
        log.add_window(sid, _window(0))
        assert log.sessions()[0]["status"] == "running"
        assert log.sessions()[0]["delivered_s"] == 0.0


def test_each_window_is_committed_as_it_is_written(log_path):
    """Another connection sees a window the moment add_window returns: a crash loses nothing older."""
    with DoseLog(log_path) as log:
        sid = log.start_session(_start())
        for i in range(3):
            log.add_window(sid, _window(i))
            seen = sqlite3.connect(log_path).execute("SELECT count(*) FROM windows").fetchone()[0]
            assert seen == i + 1


def test_rows_cannot_be_written_twice(log_path):
    with DoseLog(log_path) as log:
        sid = log.start_session(_start())
        log.end_session(sid, _end())
        with pytest.raises(LogError):
            log.end_session(sid, _end())


def test_prefix_must_be_unambiguous_and_known(log_path):
    with DoseLog(log_path) as log:
        log.start_session(_start())
        log.start_session(_start())
        with pytest.raises(LogError, match="matches 2 sessions"):
            log.find_session("s-")
        with pytest.raises(LogError, match="no session"):
            log.find_session("nope")


def test_log_from_a_newer_livctl_is_refused(log_path):
    DoseLog(log_path).close()
    db = sqlite3.connect(log_path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(LogError, match="newer livctl"):
        DoseLog(log_path)


def test_log_from_livctl_0_1_without_a_chain_is_refused_and_left_untouched(log_path):
    db = sqlite3.connect(log_path)
    db.execute("CREATE TABLE sessions (session_id TEXT PRIMARY KEY)")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    before = log_path.read_bytes()
    with pytest.raises(LogError, match="log schema 1, without a hash chain"):
        DoseLog(log_path)
    assert log_path.read_bytes() == before


def test_windows_of_a_session_are_found_among_other_sessions(log_path):
    with DoseLog(log_path) as log:
        a, b = log.start_session(_start(subject="A")), log.start_session(_start(subject="B"))
        for i in range(3):
            log.add_window(a, _window(i))
            log.add_window(b, _window(i, in_spec=False))
        log.end_session(a, _end())
        log.add_window(b, _window(3))  # b is still running
        assert [w["idx"] for w in log.windows(a)] == [0, 1, 2] and all(w["in_spec"] for w in log.windows(a))
        assert [w["idx"] for w in log.windows(b)] == [0, 1, 2, 3]
        assert log.windows("s-unknown") == []


def test_foreign_files_are_refused_and_left_untouched(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a database at all " * 100)
    with pytest.raises(LogError, match="not a usable dose log"):
        DoseLog(text)
    assert text.read_text() == "not a database at all " * 100

    other = tmp_path / "other.sqlite"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE patients (name TEXT)")
    db.commit()
    db.close()
    with pytest.raises(LogError, match="not a livctl dose log"):
        DoseLog(other)


def test_unwritable_location_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(LogError, match="cannot open the dose log"):
        DoseLog(blocker / "doses.sqlite")


def test_missing_log_is_reported_when_reading(tmp_path):
    with pytest.raises(LogError, match="no dose log"):
        DoseLog(tmp_path / "absent.sqlite", create=False)
    assert not (tmp_path / "absent.sqlite").exists()


def test_two_processes_write_one_log_without_losing_rows(log_path):
    DoseLog(log_path).close()
    writer = textwrap.dedent(
        f"""
        import sys
        from livctl.records.doselog import DoseLog, SessionStart
        start = SessionStart(device="sim://", platform_id=sys.argv[1], simulated=True, time_base="v",
            subject=sys.argv[1], operator=None, preset=None, frequency_hz=30.0, peak_g=0.3, duration_s=60.0,
            ramp_s=2.0, tol_frequency_hz=1.0, tol_accel_fraction=0.1, max_thd_fraction=0.1,
            min_in_spec_fraction=0.9, window_s=1.0)
        with DoseLog({str(log_path)!r}) as log:
            sid = log.start_session(start)
            for i in range(300):
                log.add_window(sid, dict(idx=i, phase="deliver", t_s=float(i), duration_s=1.0, drive=0.1,
                                         in_spec=True, reasons=[]))
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", writer, name], env=livctl_env())
        for name in ("A", "B")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    db = sqlite3.connect(log_path)
    counts = dict(db.execute("SELECT s.subject, count(*) FROM windows w JOIN sessions s USING (session_id) GROUP BY 1"))
    assert counts == {"A": 300, "B": 300}
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with DoseLog(log_path, create=False) as log:
        check = log.verify()
    assert check.ok and check.records == 2 + 600


def test_two_livctl_closing_the_same_orphan_at_once_close_it_once(log_path):
    # a session whose process died (a real process that exits without ending it)
    writer = textwrap.dedent(f"""
        import sys
        sys.path[:0] = {sys.path!r}
        from test_doselog import _start, _window
        from livctl.records.doselog import DoseLog
        log = DoseLog(sys.argv[1])
        sid = log.start_session(_start())
        log.add_window(sid, _window(0))
    """)
    subprocess.run([sys.executable, "-c", writer, str(log_path)], env=livctl_env(), check=True, timeout=60)
    from livctl.records.recovery import close_orphans

    with DoseLog(log_path) as first, DoseLog(log_path) as second:
        (orphan,) = second.sessions()
        read_windows = second.windows

        def windows_while_the_other_closes_it(session_id):
            assert close_orphans(first) == [orphan["session_id"]]  # the other livctl wins the race
            return read_windows(session_id)

        second.windows = windows_while_the_other_closes_it
        assert close_orphans(second) == []  # neither an error nor a second end
        (ended,) = second.sessions()
        assert ended["status"] == "interrupted" and ended["delivered_s"] == 1.0
        assert second.verify().ok


def test_a_log_of_schema_2_keeps_verifying_and_takes_practice_sessions(tmp_path):
    """tests/data/schema2-log.sqlite was written by livctl before practice sessions existed (a
    session and a subject with a regimen): opened now it gains the column, its records keep their
    hashes, and practice sessions appended after them verify too."""
    import shutil
    import sqlite3
    from pathlib import Path

    from studylog import start_record

    path = tmp_path / "old.sqlite"
    shutil.copyfile(Path(__file__).parent / "data" / "schema2-log.sqlite", path)
    with DoseLog(path, create=False) as log:
        before = log.verify()
        assert before.ok and before.records == 23
        (old,) = log.sessions()
        assert old["practice"] is False and old["subject"] == "bench-1"
        sid = log.start_session(start_record("P-1", practice=True))
        log.end_session(sid, dict(status="aborted", reason="test", delivered_s=0.0, in_spec_s=0.0,
                                  in_spec_fraction=None, mean_frequency_hz=None, mean_peak_g=None,
                                  mean_thd_percent=None, in_spec=False, window_count=0))
        after = log.verify()
        assert after.ok and after.records == 25
        assert log.find_session(sid)["practice"] is True
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    # the old records are as they were written: the practice column of the old session is NULL
    assert db.execute("SELECT practice FROM sessions ORDER BY seq").fetchall() == [(None,), (1,)]
    db.close()
