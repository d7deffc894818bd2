"""Multi-site studies on a real PostgreSQL server: a private instance (tests/pgserver.py) started
once for the session, a fresh database per test."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import pytest

import pgserver
import psycopg  # the dev extra installs it: these tests fail, never skip, without it
from conftest import livctl_env
from studylog import LogClock, write_bout

from livctl.records.doselog import DoseLog

UTC = dt.timezone.utc


@pytest.fixture(autouse=True)
def _no_configured_server(monkeypatch):
    """No test reads the developer's study server."""
    monkeypatch.delenv("LIVCTL_SERVER", raising=False)


@pytest.fixture(scope="session")
def pg():
    why = pgserver.available()
    if why is not None:
        pytest.fail(f"the multi-site tests need PostgreSQL: {why}")
    server = pgserver.PrivateServer().start()
    yield server
    server.stop()


class Study:
    """A database of the private server set up with `livctl server init`, its stations and a coordinator."""

    def __init__(self, pg, cli, tmp_path):
        self.pg, self.cli, self.dir = pg, cli, tmp_path
        self.name = "s" + uuid.uuid4().hex[:10]
        pg.psql(f"CREATE DATABASE {self.name}")
        self.admin = pg.url(database=self.name)
        assert cli("server", "init", "--server", self.admin).code == 0
        self.coordinator = f"{self.name}_coord"
        assert cli("server", "add-coordinator", self.coordinator, "--server", self.admin).code == 0

    def url(self, role: str) -> str:
        return self.pg.url(role, self.name)

    def coord_url(self) -> str:
        return self.url(self.coordinator)

    def add_station(self, station: str) -> str:
        """Registers the station (its role: study-unique); returns the station's URL."""
        role = f"{self.name}_{station}"
        result = self.cli("server", "add-station", station, "--role", role, "--server", self.admin)
        assert result.code == 0, result
        return self.url(role)

    def connect(self, role: str | None = None):
        return psycopg.connect(self.url(role) if role else self.admin, autocommit=True)

    def count(self, table: str, station: str | None = None) -> int:
        with self.connect() as conn:
            where, params = ("WHERE station = %s", (station,)) if station else ("", ())
            return conn.execute(f"SELECT count(*) FROM livctl.{table} {where}", params).fetchone()[0]


@pytest.fixture
def study(pg, cli, tmp_path, monkeypatch):
    monkeypatch.setenv("LIVCTL_TIMEZONE", "UTC")
    return Study(pg, cli, tmp_path)


def station_log(path, monkeypatch, cli, subject: str, *, days: int = 4, windows: int = 20, first_day: int = 2) -> None:
    """A station's log: one subject on the 30 Hz regimen from 2 March 2026, two bouts a day."""
    result = cli("subject", "add", subject, "--kind", "human", "--regimen", "human-30hz-0.4g", "--start", "2026-03-02",
                 "--tz", "UTC", "--log", str(path))
    assert result.code == 0, result
    clock = LogClock(monkeypatch, dt.datetime(2026, 3, 2, tzinfo=UTC))
    with DoseLog(path) as log:
        for day in range(first_day, first_day + days):
            for hour in (8, 18):
                write_bout(log, clock, subject, dt.datetime(2026, 3, day, hour, tzinfo=UTC), windows=windows)


def records_of(path) -> int:
    with DoseLog(path, create=False) as log:
        return log.chain_head()[0]


def server_seqs(study, station: str) -> list[int]:
    with study.connect() as conn:
        return [r[0] for r in conn.execute("SELECT seq FROM livctl.chain WHERE station = %s ORDER BY seq", (station,))]


# -- syncing -----------------------------------------------------------------------------------


def test_three_stations_sync_at_once_and_the_study_report_is_the_sum_of_theirs(study, cli, tmp_path, monkeypatch):
    logs = {}
    for i, subject in enumerate(("P-1", "P-2", "P-3")):
        logs[f"ward-{i + 1}"] = (tmp_path / f"ward-{i + 1}.sqlite", subject)
        station_log(logs[f"ward-{i + 1}"][0], monkeypatch, cli, subject, days=3 + i)
    urls = {station: study.add_station(station) for station in logs}
    outcomes = {}

    def sync(station):
        done = subprocess.run([sys.executable, "-m", "livctl", "sync", "--server", urls[station], "--log",
                               str(logs[station][0]), "--json"], capture_output=True, text=True, timeout=120,
                              env=livctl_env(LIVCTL_TIMEZONE="UTC"))
        outcomes[station] = done

    threads = [threading.Thread(target=sync, args=(s,)) for s in logs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for station, (path, _) in logs.items():
        done = outcomes[station]
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["sent"] == records_of(path)
        assert server_seqs(study, station) == list(range(1, records_of(path) + 1))

    to = ("--from", "2026-03-02", "--to", "2026-03-06")
    whole = cli("report", "--study", "--json", "--log", study.coord_url(), *to)
    assert whole.code == 0, whole
    whole = json.loads(whole.out)
    parts = []
    for path, _ in logs.values():
        part = cli("report", "--study", "--json", "--log", str(path), *to)
        assert part.code == 0, part
        parts.append(json.loads(part.out))
    strip = lambda s: {k: v for k, v in s.items() if k != "chain"}  # noqa: E731
    assert sorted(map(json.dumps, map(strip, whole["subjects"]))) == sorted(
        json.dumps(strip(s)) for p in parts for s in p["subjects"])
    for key in ("prescribed_bouts", "compliant_bouts"):
        assert whole[key] == sum(p[key] for p in parts)
    assert whole["chain"]["records"] == sum(records_of(p) for p, _ in logs.values())
    assert [s["station"] for s in whole["stations"]] == sorted(logs)

    verify = cli("log", "verify", "--log", study.coord_url(), "--json")
    assert verify.code == 0, verify
    checks = json.loads(verify.out)["stations"]
    assert {c["station"]: c["records"] for c in checks} == {s: records_of(p) for s, (p, _) in logs.items()}
    assert all(c["ok"] and c["last_sync_utc"] for c in checks)

    due = cli("due", "--log", study.coord_url(), "--json", "--at", "2026-03-03T12:00Z")
    assert due.code == 0, due
    assert sorted(d["subject"] for d in json.loads(due.out)) == ["P-1", "P-2", "P-3"]
    export = cli("log", "export", "--csv", "--log", study.coord_url())
    assert export.code == 0, export
    assert len(export.out.strip().splitlines()) == 1 + 2 * (3 + 4 + 5)
    export = json.loads(cli("log", "export", "--json", "--log", study.coord_url()).out)
    assert len(export["sessions"]) == 2 * (3 + 4 + 5) and len(export["stations"]) == 3
    due = cli("due", "--log", study.coord_url(), "--at", "2026-03-03T12:00Z")
    assert due.code == 0 and all(station in due.out for station in logs)


def test_a_sync_killed_at_any_point_and_run_again_sends_each_record_exactly_once(study, cli, tmp_path, monkeypatch):
    path = tmp_path / "ward.sqlite"
    station_log(path, monkeypatch, cli, "P-1", days=6, windows=60)
    url = study.add_station("ward")
    total = records_of(path)
    script = textwrap.dedent(f"""
        import time
        from livctl.multisite import push
        from livctl.multisite.connect import connect
        from livctl.records.doselog import DoseLog

        copy_batch = push._copy_batch

        def slow_copy_batch(*args):  # a kill now lands inside a batch's transaction, after its rows went
            copy_batch(*args)
            time.sleep(0.25)

        push._copy_batch = slow_copy_batch
        with DoseLog({str(path)!r}, create=False) as log, connect({url!r}) as conn:
            push.push(conn, {url!r}, log, batch_records=53, after_batch=lambda n: time.sleep(0.1))
    """)
    kills = 0
    for delay_s in (0.9, 1.4, 1.1):
        proc = subprocess.Popen([sys.executable, "-c", script], env=livctl_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        time.sleep(delay_s)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=60)
        held = server_seqs(study, "ward")
        assert held == list(range(1, len(held) + 1))  # whole batches only, in order, none twice
    assert kills >= 2
    assert 0 < len(held) < total
    result = cli("sync", "--server", url, "--log", str(path), "--json")
    assert result.code == 0, result
    assert json.loads(result.out)["sent"] == total - len(held)
    assert server_seqs(study, "ward") == list(range(1, total + 1))
    assert cli("log", "verify", "--log", study.coord_url()).code == 0


def test_a_station_offline_for_a_month_catches_up_and_replaying_an_old_sync_is_harmless(study, cli, tmp_path,
                                                                                         monkeypatch):
    path = tmp_path / "ward.sqlite"
    station_log(path, monkeypatch, cli, "P-1", days=2)
    url = study.add_station("ward")
    assert cli("sync", "--server", url, "--log", str(path)).code == 0
    backup = tmp_path / "backup.sqlite"
    with sqlite3.connect(path) as src, sqlite3.connect(backup) as dst:
        src.backup(dst)
    first = records_of(path)
    station_log_more(path, monkeypatch, days=30)
    result = cli("sync", "--server", url, "--log", str(path), "--json")
    assert result.code == 0 and json.loads(result.out)["sent"] == records_of(path) - first
    held = server_seqs(study, "ward")
    # the old copy of the log (a restored backup) syncs again: nothing is sent, nothing changes
    again = cli("sync", "--server", url, "--log", str(backup), "--json")
    assert again.code == 0, again
    assert json.loads(again.out)["sent"] == 0 and "restored from a backup" in again.err
    assert server_seqs(study, "ward") == held
    # the same batch sent again by hand is refused by the server's chain trigger, and changes nothing
    from livctl.multisite.push import LocalChain, _copy_batch

    with DoseLog(path, create=False) as log, psycopg.connect(url, autocommit=True) as conn:
        chain = LocalChain(log)
        records = list(chain.records(0, 50))
        chain.close()
        with pytest.raises(psycopg.IntegrityError):
            with conn.transaction():
                _copy_batch(conn, "ward", records)
    assert server_seqs(study, "ward") == held


def station_log_more(path, monkeypatch, *, days: int) -> None:
    clock = LogClock(monkeypatch, dt.datetime(2026, 4, 1, tzinfo=UTC))
    with DoseLog(path) as log:
        for day in range(days):
            write_bout(log, clock, "P-1", dt.datetime(2026, 4, 1, 8, tzinfo=UTC) + dt.timedelta(days=day), windows=5)


def _tamper(path, sql: str) -> None:
    db = sqlite3.connect(path)
    for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        db.execute(f"DROP TRIGGER {name}")
    db.execute(sql)
    db.commit()
    db.close()


def test_a_tampered_station_log_is_refused_naming_the_record_and_nothing_from_it_is_sent(study, cli, tmp_path,
                                                                                        monkeypatch):
    path = tmp_path / "ward.sqlite"
    station_log(path, monkeypatch, cli, "P-1", days=2)
    url = study.add_station("ward")
    assert cli("sync", "--server", url, "--log", str(path)).code == 0
    held = len(server_seqs(study, "ward"))
    station_log_more(path, monkeypatch, days=1)
    seq = held + 3
    _tamper(path, f"UPDATE windows SET peak_g = 0.8 WHERE seq = {seq}")
    result = cli("sync", "--server", url, "--log", str(path))
    assert result.code == 1
    assert f"record {seq} (window" in result.err and "changed after it was written" in result.err
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err
    assert len(server_seqs(study, "ward")) == held


def test_a_forked_station_log_is_refused_naming_the_first_divergent_record(study, cli, tmp_path, monkeypatch):
    path = tmp_path / "ward.sqlite"
    station_log(path, monkeypatch, cli, "P-1", days=2)
    fork = tmp_path / "fork.sqlite"
    with sqlite3.connect(path) as src, sqlite3.connect(fork) as dst:
        src.backup(dst)
    split = records_of(path)
    station_log_more(path, monkeypatch, days=2)
    url = study.add_station("ward")
    assert cli("sync", "--server", url, "--log", str(path)).code == 0
    station_log_more(fork, monkeypatch, days=4)  # the same history up to `split`, then another one
    result = cli("sync", "--server", url, "--log", str(fork))
    assert result.code == 1, result
    assert f"record {split + 1} (start of session" in result.err and "does not continue" in result.err
    # another station's log under this role is refused at its first record
    other = tmp_path / "other.sqlite"
    station_log(other, monkeypatch, cli, "P-9", days=1)
    result = cli("sync", "--server", url, "--log", str(other))
    assert result.code == 1 and "record 1 (subject P-9)" in result.err


def test_the_server_refuses_a_record_that_does_not_continue_the_chain_even_without_livctl(study, cli, tmp_path,
                                                                                           monkeypatch):
    path = tmp_path / "ward.sqlite"
    station_log(path, monkeypatch, cli, "P-1", days=1)
    url = study.add_station("ward")
    assert cli("sync", "--server", url, "--log", str(path)).code == 0
    head = len(server_seqs(study, "ward"))
    insert = ("INSERT INTO livctl.subjects (station, seq, prev_hash, hash, subject_id, kind, added_utc) "
              "VALUES ('ward', %s, %s, %s, 'X', 'human', '2026-03-01T00:00:00.000Z')")
    with psycopg.connect(url, autocommit=True) as conn:
        for seq, prev in ((head + 2, b"\1" * 32), (head + 1, b"\1" * 32), (head, b"\1" * 32)):
            with pytest.raises((psycopg.errors.IntegrityConstraintViolation, psycopg.errors.UniqueViolation)):
                conn.execute(insert, (seq, prev, b"\2" * 32))
        # a record that links but whose content is not what it hashes: held, and named by verify
        last = conn.execute("SELECT hash FROM livctl.chain WHERE station = 'ward' AND seq = %s", (head,)).fetchone()[0]
        conn.execute(insert, (head + 1, last, b"\2" * 32))
    result = cli("log", "verify", "--log", study.coord_url())
    assert result.code == 1
    assert f"station ward: record {head + 1} (subject X) does not match its hash" in result.err
    other = tmp_path / "other.sqlite"
    station_log(other, monkeypatch, cli, "P-2", days=1)
    assert cli("sync", "--server", study.add_station("other"), "--log", str(other)).code == 0
    from livctl.multisite.study import StudyLog

    with StudyLog(study.coord_url()) as log:  # processes walking stations in one exported snapshot: the same
        one, two = log.verify_stations(workers=1), log.verify_stations(workers=2)
    assert one == two and [c.ok for c in one] == [True, False]


# -- privileges ----------------------------------------------------------------------------------


def test_a_station_can_neither_write_nor_read_another_stations_records_nor_change_any(study, cli, tmp_path,
                                                                                   monkeypatch):
    for station, subject in (("ward-1", "P-1"), ("ward-2", "P-2")):
        path = tmp_path / f"{station}.sqlite"
        station_log(path, monkeypatch, cli, subject, days=1)
        assert cli("sync", "--server", study.add_station(station), "--log", str(path)).code == 0
    ward1 = f"{study.name}_ward-1"
    with study.connect(ward1) as conn:
        assert {r[0] for r in conn.execute("SELECT DISTINCT station FROM livctl.chain")} == {"ward-1"}
        assert conn.execute("SELECT count(*) FROM livctl.sessions WHERE subject = 'P-2'").fetchone()[0] == 0
        assert [r[0] for r in conn.execute("SELECT station FROM livctl.stations")] == ["ward-1"]
        # a forged record of ward-2, linked to ward-2's real head, written with ward-1's role
        with study.connect() as admin:
            seq, digest = admin.execute("SELECT seq, hash FROM livctl.chain WHERE station = 'ward-2' "
                                        "ORDER BY seq DESC LIMIT 1").fetchone()
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute("INSERT INTO livctl.subjects (station, seq, prev_hash, hash, subject_id, kind, added_utc) "
                         "VALUES ('ward-2', %s, %s, %s, 'X', 'human', 'now')", (seq + 1, digest, b"\2" * 32))
        for sql in ("UPDATE livctl.windows SET peak_g = 1 WHERE station = 'ward-1'",
                    "DELETE FROM livctl.windows WHERE station = 'ward-1'",
                    "TRUNCATE livctl.windows", "UPDATE livctl.syncs SET records = 0",
                    "INSERT INTO livctl.study_subjects (subject_id, kind, added_utc) VALUES ('Q', 'human', 'now')",
                    "INSERT INTO livctl.stations (station, role) VALUES ('ward-9', current_user)"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql)
    with study.connect() as owner:  # not even the tables' owner changes a record
        for sql in ("UPDATE livctl.windows SET peak_g = 1", "DELETE FROM livctl.sessions", "TRUNCATE livctl.subjects"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                owner.execute(sql)
    with study.connect(study.coordinator) as conn:
        assert {r[0] for r in conn.execute("SELECT DISTINCT station FROM livctl.chain")} == {"ward-1", "ward-2"}
        for sql in ("INSERT INTO livctl.subjects (station, seq, prev_hash, hash, subject_id, kind, added_utc) "
                    "SELECT 'ward-1', 999, hash, hash, 'X', 'human', 'now' FROM livctl.subjects LIMIT 1",
                    "UPDATE livctl.study_subjects SET note = 'x'", "DELETE FROM livctl.sessions"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql)
    assert study.count("windows", "ward-1") > 0


def test_the_coordinators_subjects_and_regimens_are_pulled_once_by_every_station(study, cli, tmp_path):
    result = cli("server", "add-subject", "C-1", "--kind", "animal", "--regimen", "mouse-90hz-0.3g", "--start",
                 "2026-03-02", "--weeks", "4", "--server", study.coord_url())
    assert result.code == 0, result
    for station in ("ward-1", "ward-2"):
        url = study.add_station(station)
        path = tmp_path / f"{station}.sqlite"
        DoseLog(path).close()
        for _ in range(2):
            assert cli("sync", "--server", url, "--log", str(path)).code == 0
        with DoseLog(path, create=False) as log:
            subject = log.subject("C-1")
            assert subject["kind"] == "animal"
            assert [a["regimen_name"] for a in subject["assignments"]] == ["mouse-90hz-0.3g"]
    listed = cli("due", "--log", study.coord_url(), "--json", "--at", "2026-03-03T12:00Z")
    assert listed.code == 0, listed
    [due] = json.loads(listed.out)
    assert due["subject"] == "C-1" and due["regimen"] == "mouse-90hz-0.3g"


# -- bad input -----------------------------------------------------------------------------------


def _one_line_error(result, *words):
    assert result.code == 2, result
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1, result.err
    for word in words:
        assert word in result.err, result.err


def test_bad_urls_unreachable_servers_and_other_schemas_are_one_line_errors(study, cli, tmp_path, pg):
    path = tmp_path / "ward.sqlite"
    DoseLog(path).close()
    _one_line_error(cli("sync", "--server", "postgresql://ward:secret@localhost/study", "--log", str(path)),
                    "~/.pgpass", "PGPASSWORD")
    _one_line_error(cli("log", "verify", "--log", "postgresql://ward@/study?password=secret"), "~/.pgpass")
    _one_line_error(cli("sync", "--server", "postgresql://ward@/study?host=/nonexistent&port=5", "--log", str(path)),
                    "cannot connect")
    _one_line_error(cli("sync", "--server", "postgresql://ward@/study?connect_timeoutt=3", "--log", str(path)),
                    "bad study server URL")
    _one_line_error(cli("sync", "--log", str(path)), "no study server")
    started = time.monotonic()
    _one_line_error(cli("report", "--study", "--log", "postgresql://ward@192.0.2.1:5432/study"), "cannot connect")
    assert time.monotonic() - started < 15
    _one_line_error(cli("sync", "--server", pg.url(database="postgres"), "--log", str(path)), "server init")
    url = study.add_station("ward")
    _one_line_error(cli("sync", "--server", study.url(study.coordinator), "--log", str(path)), "not a station")
    with study.connect() as conn:
        conn.execute("INSERT INTO livctl.schema_version (version, description) VALUES (99, 'from the future')")
    _one_line_error(cli("sync", "--server", url, "--log", str(path)), "schema is 99", "upgrade livctl")
    _one_line_error(cli("log", "--log", study.coord_url()), "schema is 99")


def test_the_server_schema_has_every_column_the_dose_log_chains():
    from livctl.multisite import migrations

    for table, columns in migrations.RECORD_COLUMNS.items():
        assert tuple(name for name, _ in migrations._SERVER_TYPES[table]) == columns, table


def test_server_init_is_idempotent_and_sync_reads_the_configuration(study, cli, tmp_path, monkeypatch):
    again = cli("server", "init", "--server", study.admin)
    assert again.code == 0 and "already current" in again.out
    path = tmp_path / "ward.sqlite"
    station_log(path, monkeypatch, cli, "P-1", days=1)
    monkeypatch.setenv("LIVCTL_SERVER", study.add_station("ward"))
    result = cli("sync", "--log", str(path), "--json")
    assert result.code == 0, result
    assert json.loads(result.out)["sent"] == records_of(path)
    status = cli("server", "status", "--json")
    assert status.code == 0 and json.loads(status.out)[0]["records"] == records_of(path)
    listed = cli("log", "--log", "server", "--json")
    assert listed.code == 0 and {s["station"] for s in json.loads(listed.out)} == {"ward"}


def test_one_session_and_the_per_station_summary_read_from_the_server(study, cli, tmp_path, monkeypatch):
    path = tmp_path / "ward.sqlite"
    station_log(path, monkeypatch, cli, "P-1", days=1, windows=7)
    assert cli("sync", "--server", study.add_station("ward"), "--log", str(path)).code == 0
    [session] = json.loads(cli("log", "--log", study.coord_url(), "--json", "--limit", "1").out)
    shown = cli("log", "show", session["session_id"][:8], "--windows", "--json", "--log", study.coord_url())
    assert shown.code == 0, shown
    shown = json.loads(shown.out)
    assert shown["station"] == "ward" and len(shown["windows"]) == 7
    local = cli("log", "show", session["session_id"], "--windows", "--json", "--log", str(path))
    assert json.loads(local.out)["windows"] == shown["windows"]
    raw = cli("log", "export", "--raw", session["session_id"], "--out", str(tmp_path / "x.h5"), "--no-verify",
              "--log", study.coord_url())
    _one_line_error(raw)
    verify = cli("log", "verify", "--log", study.coord_url())
    assert verify.code == 0 and "ward" in verify.out and "intact" in verify.out
    report = cli("report", "--study", "--out", str(tmp_path / "out"), "--log", study.coord_url())
    assert report.code == 0, report
    assert "ward" in report.out and (tmp_path / "out" / "report-study.html").exists()
    _one_line_error(cli("server"), "choose an action")


def test_a_server_lost_mid_sync_is_a_one_line_error_and_the_next_sync_sends_the_rest(study, cli, tmp_path,
                                                                                      monkeypatch):
    from livctl.multisite import push

    path = tmp_path / "ward.sqlite"
    station_log(path, monkeypatch, cli, "P-1", days=3)
    url = study.add_station("ward")
    copy_batch, original_push, batches = push._copy_batch, push.push, []

    def lost_on_the_third(conn, station, records):
        batches.append(len(records))
        if len(batches) == 3:
            conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        copy_batch(conn, station, records)

    monkeypatch.setattr(push, "_copy_batch", lost_on_the_third)
    monkeypatch.setattr(push, "push", lambda *a, **k: original_push(*a, batch_records=40, **k))
    _one_line_error(cli("sync", "--server", url, "--log", str(path)), "the sync to", "next `livctl sync`")
    assert server_seqs(study, "ward") == list(range(1, 81))
    monkeypatch.setattr(push, "_copy_batch", copy_batch)
    assert cli("sync", "--server", url, "--log", str(path)).code == 0
    assert server_seqs(study, "ward") == list(range(1, records_of(path) + 1))


def test_no_superuser_is_needed_after_the_administrator_role_and_database_exist(pg, cli, tmp_path, monkeypatch):
    name = "n" + uuid.uuid4().hex[:10]
    pg.psql(f"CREATE ROLE {name}_admin LOGIN CREATEROLE")
    pg.psql(f"CREATE DATABASE {name} OWNER {name}_admin")
    admin = pg.url(f"{name}_admin", name)
    for args in (("init",), ("add-station", "ward", "--role", f"{name}_ward"),
                 ("add-coordinator", f"{name}_coord")):
        result = cli("server", *args, "--server", admin)
        assert result.code == 0, result
    path = tmp_path / "ward.sqlite"
    station_log(path, monkeypatch, cli, "P-1", days=1)
    assert cli("sync", "--server", pg.url(f"{name}_ward", name), "--log", str(path)).code == 0
    assert cli("log", "verify", "--log", pg.url(f"{name}_coord", name)).code == 0
    with psycopg.connect(admin, autocommit=True) as conn:
        assert not conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute("DELETE FROM livctl.windows")
