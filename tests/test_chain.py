"""The dose log's hash chain: tampering of every kind is found at the right record, never repaired,
and several platforms writing at once keep one intact chain."""

import json
import os
import sqlite3
import subprocess
import sys

from pathlib import Path

import pytest

from conftest import livctl_env
from livctl.records.doselog import GENESIS_HASH, DoseLog, canonical_record, record_hash
from livctl.errors import LogError
from studylog import start_record, window

CHAINED = ("sessions", "windows", "session_ends", "subjects", "assignments")


@pytest.fixture
def study(log_path):
    """A log with a subject, a regimen assignment and two sessions of five windows each."""
    with DoseLog(log_path) as log:
        log.add_subject("P-1", "human", operator="ana")
        log.assign_regimen("P-1", name="r", regimen={"weeks": 1}, source="test", operator="ana")
        sids = []
        for _ in range(2):
            sid = log.start_session(start_record("P-1"))
            for i in range(5):
                log.add_window(sid, window(i))
            log.end_session(sid, dict(status="completed", reason=None, delivered_s=5.0, in_spec_s=5.0,
                                      in_spec_fraction=1.0, mean_frequency_hz=30.0, mean_peak_g=0.4,
                                      mean_thd_percent=1.0, in_spec=True, window_count=5))
            sids.append(sid)
    return log_path, sids


def _tamper(path, *statements):
    """Edit the file behind livctl's back, as someone with the sqlite3 shell could."""
    db = sqlite3.connect(path)
    for table in CHAINED:
        for action in ("update", "delete"):
            db.execute(f"DROP TRIGGER IF EXISTS {table}_append_only_{action}")
    for statement in statements:
        db.execute(statement)
    db.commit()
    db.close()


def _verify(path):
    """The check, made in one process and in stretches by worker processes: they must agree."""
    with DoseLog(path, create=False) as log:
        check = log.verify(workers=1)
        parallel = log.verify(workers=2)
    assert parallel == check
    return check


def _seq_of(path, table, where):
    return sqlite3.connect(path).execute(f"SELECT seq FROM {table} WHERE {where}").fetchone()[0]


def test_an_untouched_log_verifies_and_every_record_is_a_link(study):
    path, sids = study
    check = _verify(path)
    assert check.ok and check.problem is None
    # 1 subject + 1 assignment + 2 x (start + 5 windows + end)
    assert check.records == check.head_seq == 2 + 2 * 7
    db = sqlite3.connect(path)
    rows = []
    for table in CHAINED:
        rows += [(r[0], table, r) for r in db.execute(f"SELECT * FROM {table}")]
    rows.sort()
    assert [r[0] for r in rows] == list(range(1, 17))
    # each record carries the hash of the one before it, and its own hash is SHA-256 of its canonical form
    prev = GENESIS_HASH
    for seq, table, row in rows:
        assert row[1] == prev
        assert row[2] == record_hash(table, seq, row[1], row[3:])
        prev = row[2]
    assert check.head_hash == prev.hex()
    assert canonical_record("windows", 5, GENESIS_HASH, ["s-1", 0, 0.25, None]).decode() == (
        '["windows",5,"' + "00" * 32 + '","s-1",0,0.25,null]'
    )


def test_edited_value_is_found_at_its_record(study):
    path, sids = study
    seq = _seq_of(path, "windows", f"session_id = '{sids[0]}' AND idx = 3")
    _tamper(path, f"UPDATE windows SET peak_g = 0.41 WHERE seq = {seq}")
    check = _verify(path)
    assert not check.ok and check.bad_seq == seq
    assert f"record {seq} (window 3 of session {sids[0]}) was changed" in check.problem


def test_edited_session_record_is_found(study):
    path, sids = study
    seq = _seq_of(path, "sessions", f"session_id = '{sids[1]}'")
    _tamper(path, f"UPDATE sessions SET operator = 'someone else' WHERE seq = {seq}")
    check = _verify(path)
    assert check.bad_seq == seq and f"start of session {sids[1]}" in check.problem


def test_deleted_row_is_found_as_missing(study):
    path, sids = study
    seq = _seq_of(path, "windows", f"session_id = '{sids[0]}' AND idx = 1")
    _tamper(path, f"DELETE FROM windows WHERE seq = {seq}")
    check = _verify(path)
    assert check.bad_seq == seq
    assert f"record {seq} is missing" in check.problem


def test_deleted_last_record_is_found_by_the_chain_head(study):
    path, sids = study
    last = _seq_of(path, "session_ends", f"session_id = '{sids[1]}'")
    _tamper(path, f"DELETE FROM session_ends WHERE seq = {last}")
    check = _verify(path)
    assert check.bad_seq == last and "removed from the end" in check.problem


def test_swapped_rows_are_found_at_the_first_of_them(study):
    path, sids = study
    a = _seq_of(path, "windows", f"session_id = '{sids[0]}' AND idx = 1")
    b = _seq_of(path, "windows", f"session_id = '{sids[0]}' AND idx = 3")
    _tamper(path, f"UPDATE windows SET seq = -1 WHERE seq = {a}", f"UPDATE windows SET seq = {a} WHERE seq = {b}",
            f"UPDATE windows SET seq = {b} WHERE seq = -1")
    check = _verify(path)
    assert check.bad_seq == a and f"record {a} " in check.problem


def test_swapped_rows_with_rewritten_hashes_break_the_links(study):
    """Someone who swaps two rows and recomputes each row's own hash still breaks the chain."""
    path, sids = study
    db = sqlite3.connect(path)
    a = _seq_of(path, "windows", f"session_id = '{sids[1]}' AND idx = 0")
    b = _seq_of(path, "windows", f"session_id = '{sids[1]}' AND idx = 4")
    names = [r[1] for r in db.execute("PRAGMA table_info(windows)")][3:]
    row_a = db.execute(f"SELECT prev_hash, {', '.join(names)} FROM windows WHERE seq = {a}").fetchone()
    row_b = db.execute(f"SELECT prev_hash, {', '.join(names)} FROM windows WHERE seq = {b}").fetchone()
    statements = []
    for seq, (prev, *values) in ((a, row_b), (b, row_a)):
        digest = record_hash("windows", seq, prev, values)
        assigns = ", ".join(f"{n} = ?" for n in names)
        statements.append((f"UPDATE windows SET prev_hash = ?, hash = ?, {assigns} WHERE seq = {seq}",
                           [prev, digest, *values]))
    for table in CHAINED:
        db.execute(f"DROP TRIGGER {table}_append_only_update")
    for sql, params in statements:
        db.execute(sql, params)
    db.commit()
    check = _verify(path)
    assert check.bad_seq == a and "does not follow" in check.problem


def test_a_value_of_a_foreign_type_is_a_changed_record(study):
    path, sids = study
    seq = _seq_of(path, "windows", f"session_id = '{sids[0]}' AND idx = 0")
    _tamper(path, f"UPDATE windows SET phase = x'00ff' WHERE seq = {seq}")
    check = _verify(path)
    assert check.bad_seq == seq and "was changed" in check.problem


def test_a_copied_record_is_found(study):
    path, sids = study
    seq = _seq_of(path, "sessions", f"session_id = '{sids[0]}'")
    names = ", ".join(r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(subjects)"))
    _tamper(path, f"INSERT INTO subjects ({names}) SELECT {seq}, prev_hash, hash, 'P-2', 'human', NULL, "
                  f"'2026-01-01T00:00:00.000Z', NULL FROM sessions WHERE seq = {seq}")
    check = _verify(path)
    assert check.bad_seq == seq and "appears twice" in check.problem


def test_append_only_triggers_refuse_edits(study):
    path, _ = study
    db = sqlite3.connect(path)
    for sql in ("UPDATE windows SET peak_g = 1", "DELETE FROM session_ends", "DELETE FROM chain_head"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute(sql)


def test_removed_triggers_are_reported_even_when_the_records_are_intact(study):
    path, _ = study
    _tamper(path)
    check = _verify(path)
    assert check.ok and check.warnings == ("the append-only triggers were removed from this log",)


def test_log_verify_command(cli, study):
    path, sids = study
    ok = cli("log", "verify", "--log", str(path))
    assert ok.code == 0 and "chain intact, 16 records" in ok.out
    seq = _seq_of(path, "windows", f"session_id = '{sids[1]}' AND idx = 2")
    _tamper(path, f"UPDATE windows SET in_spec = 0 WHERE seq = {seq}")
    bad = cli("log", "verify", "--log", str(path))
    assert bad.code == 2
    errors = [line for line in bad.err.splitlines() if line.startswith("livctl: error")]
    assert len(errors) == 1 and f"record {seq} (window 2 of session {sids[1]})" in errors[0]
    assert "nothing was repaired" in errors[0]
    as_json = cli("log", "verify", "--log", str(path), "--json")
    assert as_json.code == 2
    result = json.loads(as_json.out)
    assert result["ok"] is False and result["bad_seq"] == seq
    # reading the log still works, and nothing was changed by looking at it
    assert cli("log", "--log", str(path)).code == 0
    assert _verify(path).bad_seq == seq


def test_a_broken_log_is_refused_by_reports_and_exports(cli, study, tmp_path):
    path, sids = study
    seq = _seq_of(path, "session_ends", f"session_id = '{sids[0]}'")
    _tamper(path, f"UPDATE session_ends SET delivered_s = 600 WHERE seq = {seq}")
    for args in (["log", "export", "--csv"], ["report", "--subject", "P-1", "--out", str(tmp_path / "r")]):
        result = cli(*args, "--log", str(path))
        assert result.code == 2 and f"record {seq}" in result.err, result
    assert not (tmp_path / "r").exists()


def test_a_damaged_file_is_an_error_not_a_repair(log_path):
    with DoseLog(log_path) as log:
        sid = log.start_session(start_record())
        for i in range(2000):
            log.add_window(sid, window(i))
    data = bytearray(log_path.read_bytes())
    middle = len(data) // 2
    data[middle: middle + 3000] = b"\xff" * 3000  # a disk error in the middle of the windows
    log_path.write_bytes(bytes(data))
    with pytest.raises(LogError) as error:
        with DoseLog(log_path, create=False) as log:
            log.verified()
    assert any(word in str(error.value) for word in ("damaged", "not a usable dose log", "fails verification"))
    assert log_path.read_bytes() == bytes(data)  # left as it was, for inspection


def test_two_platforms_run_sessions_for_two_subjects_into_one_log_at_once(cli, log_path):
    for subject in ("P-1", "P-2"):
        assert cli("subject", "add", subject, "--kind", "human", "--regimen", "human-30hz-0.4g",
                   "--log", str(log_path)).code == 0
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "livctl", "session", "--device", f"sim://?id=plate-{name}&seed={seed}",
             "--subject", subject, "--minutes", "1", "--speed", "15", "--log", str(log_path), "--json", "--quiet",
             "--practice"],  # a simulated platform for a registered subject: practice
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=livctl_env(),
        )
        for name, seed, subject in (("A", 1, "P-1"), ("B", 2, "P-2"))
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    summaries = [json.loads(out) for out, _ in outputs]
    assert {s["platform_id"] for s in summaries} == {"plate-A", "plate-B"}
    with DoseLog(log_path, create=False) as log:
        assert log.verify().ok
        for s in summaries:
            assert len(log.windows(s["session_id"])) == s["window_count"]
    db = sqlite3.connect(log_path)
    spans = [db.execute("SELECT min(seq), max(seq) FROM windows WHERE session_id = ?", [s["session_id"]]).fetchone()
             for s in summaries]
    # the two sessions' windows went into the chain interleaved: both processes wrote at the same time
    assert max(lo for lo, _ in spans) < min(hi for _, hi in spans)


def test_two_platforms_cannot_both_start_the_one_bout_a_subject_is_due(cli, rig, log_path, tmp_path):
    """Admission runs inside the write transaction: of two simultaneous starts, only one is let in.
    (Two "real" platforms, tests/realish_backend.py: a simulated one gives no dose to admit.)"""
    toml = log_path.parent / "daily.toml"
    toml.write_text('preset = "mouse-45hz-0.6g"\nminutes_per_bout = 0.5\nbouts_per_day = 1\ndays_per_week = 7\nweeks = 4\n')
    assert cli("subject", "add", "M-1", "--kind", "animal", "--regimen", str(toml), "--log", str(log_path)).code == 0
    for name in ("A", "B"):
        assert cli("calibrate", "--device", f"rig://?id={name}&load_kg=0.5", "--freq", "45", "--quiet",
                   "--no-plot").code == 0
    env = livctl_env(PYTHONPATH=f"{Path(__file__).parent}{os.pathsep}{livctl_env()['PYTHONPATH']}",
                     LIVCTL_CALIBRATION_DIR=str(tmp_path / "calibration"))
    procs = [
        subprocess.Popen(
            [sys.executable, str(Path(__file__).parent / "livctl_rig.py"), "session", "--device",
             f"rig://?id={name}&load_kg=0.5", "--subject", "M-1", "--minutes", "0.5", "--log", str(log_path),
             "--json", "--quiet", "--yes"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        for name in ("A", "B")
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert sorted(p.returncode for p in procs) == [0, 2], outputs
    refused = outputs[[p.returncode for p in procs].index(2)][1]
    assert "M-1:" in refused and "--override-reason" in refused
    with DoseLog(log_path, create=False) as log:
        assert len(log.sessions(subjects=["M-1"])) == 1
        assert log.verify().ok


@pytest.mark.parametrize("command", [["log", "verify"], ["log", "export", "--csv"], ["due"], ["subject", "list"],
                                     ["report", "--study"]])
def test_a_log_from_a_newer_livctl_is_one_line_and_exit_2_for_every_command(cli, log_path, command):
    DoseLog(log_path).close()
    db = sqlite3.connect(log_path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    result = cli(*command, "--log", str(log_path))
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert result.code == 2 and len(lines) == 1 and "newer livctl (log schema 99" in lines[0]
