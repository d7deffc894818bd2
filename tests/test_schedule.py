"""The regimen's rules: rest and daily count across midnight, time zones and daylight-saving changes,
scheduled days, and what `livctl due` and `livctl session` make of them."""

import datetime as dt
import json
from dataclasses import replace
from zoneinfo import ZoneInfo

import pytest

from livctl.records.doselog import DoseLog
from livctl.study.regimen import REGIMEN_PRESETS
from livctl.study.schedule import Assignment, Bout, Plan, parse_instant
from studylog import LogClock, write_bout

UTC = dt.timezone.utc


def _regimen(zone: str, start=dt.date(2026, 3, 2), **changes):
    return replace(REGIMEN_PRESETS["human-30hz-0.4g"], start=start, timezone=zone, **changes)


def _bout(start_local: dt.datetime, minutes: float = 10, *, status="completed", delivered_s=None, n=[0]):
    n[0] += 1
    end = None if status == "running" else start_local + dt.timedelta(minutes=minutes)
    return Bout(f"s-{n[0]}", start_local.astimezone(UTC), None if end is None else end.astimezone(UTC), status,
                minutes * 60 if delivered_s is None else delivered_s, status == "completed", minutes * 60, "plate-A")


def _plan(regimen, bouts, *more):
    assignments = [Assignment(i + 1, r, "2026-01-01T00:00:00.000Z", "ana", "test") for i, r in enumerate((regimen, *more))]
    return Plan("P-1", "human", assignments, bouts)


def _at(zone: str, *fields) -> dt.datetime:
    return dt.datetime(*fields, tzinfo=ZoneInfo(zone))


def test_rest_is_counted_across_midnight():
    berlin = "Europe/Berlin"
    plan = _plan(_regimen(berlin), [_bout(_at(berlin, 2026, 3, 10, 23, 30))])  # ends 23:40
    found = plan.deviations(_at(berlin, 2026, 3, 11, 0, 10))
    assert len(found) == 1
    assert "only 30 min since the last bout ended at 23:40 CET on Tue 10 Mar 2026" in found[0]
    assert "next bout from 00:40 CET" in found[0]
    assert plan.deviations(_at(berlin, 2026, 3, 11, 0, 41)) == []


def test_daily_count_starts_again_at_local_midnight_not_utc():
    ny = "America/New_York"
    # 09:00 and 20:00 in New York; 20:00 EST is already 01:00 UTC the next day
    bouts = [_bout(_at(ny, 2026, 3, 3, 9, 0)), _bout(_at(ny, 2026, 3, 3, 20, 0))]
    plan = _plan(_regimen(ny), bouts)
    late = plan.deviations(_at(ny, 2026, 3, 3, 21, 30))
    assert late == ["already 2 of 2 bouts on Tue 3 Mar 2026 (America/New_York)"]
    assert plan.deviations(_at(ny, 2026, 3, 4, 0, 5)) == []
    # the same bouts under a lab in UTC: 20:00 EST fell on 4 March, so 3 March had one bout
    utc_plan = _plan(_regimen("UTC"), bouts)
    assert utc_plan.deviations(dt.datetime(2026, 3, 3, 23, 0, tzinfo=UTC)) == []
    assert utc_plan.due(dt.datetime(2026, 3, 4, 3, 0, tzinfo=UTC)).delivered == 1


def test_rest_is_real_elapsed_time_across_a_daylight_saving_change():
    berlin = "Europe/Berlin"  # 29 March 2026: clocks go from 02:00 CET to 03:00 CEST
    plan = _plan(_regimen(berlin), [_bout(_at(berlin, 2026, 3, 29, 1, 20))])  # ends 01:30 CET = 00:30 UTC
    # 03:10 CEST looks 1 h 40 min later on the wall but is 40 min later in fact
    found = plan.deviations(_at(berlin, 2026, 3, 29, 3, 10))
    assert len(found) == 1 and "only 40 min since" in found[0] and "next bout from 03:30 CEST" in found[0]
    assert plan.deviations(_at(berlin, 2026, 3, 29, 3, 31)) == []


def test_a_25_hour_day_is_one_day():
    berlin = "Europe/Berlin"  # 25 October 2026 has 25 hours
    bouts = [_bout(_at(berlin, 2026, 10, 25, 0, 5)), _bout(_at(berlin, 2026, 10, 25, 23, 30))]
    plan = _plan(_regimen(berlin, start=dt.date(2026, 10, 1)), bouts)
    assert len(plan.bouts_on(dt.date(2026, 10, 25))) == 2
    assert "already 2 of 2" in plan.deviations(_at(berlin, 2026, 10, 25, 23, 55))[0]
    assert plan.due(_at(berlin, 2026, 10, 25, 23, 55)).state == "done"


def test_only_scheduled_days_inside_the_regimen_allow_bouts():
    zone = "UTC"
    weekdays_only = _regimen(zone, weekdays=tuple(range(5)), days=14)  # Mon 2 Mar - Sun 15 Mar
    plan = _plan(weekdays_only, [])
    saturday = dt.datetime(2026, 3, 7, 10, 0, tzinfo=UTC)
    assert plan.deviations(saturday) == ["Sat 7 Mar 2026 is not a day with bouts (human-30hz-0.4g runs Mon-Fri)"]
    due = plan.due(saturday)
    assert due.state == "not_scheduled" and due.next_day == dt.date(2026, 3, 9)
    before = plan.deviations(dt.datetime(2026, 3, 1, 10, 0, tzinfo=UTC))
    assert before == ["the regimen starts on Mon 2 Mar 2026"]
    after = dt.datetime(2026, 3, 16, 10, 0, tzinfo=UTC)
    assert plan.deviations(after) == ["the regimen human-30hz-0.4g ended on Sun 15 Mar 2026"]
    assert plan.due(after).state == "ended"
    assert plan.due(dt.datetime(2026, 2, 27, tzinfo=UTC)).next_day == dt.date(2026, 3, 2)


def test_sessions_refused_at_their_precheck_are_not_bouts_but_interrupted_ones_are():
    zone = "UTC"
    t = dt.datetime(2026, 3, 3, 8, 0, tzinfo=UTC)
    refused = _bout(t, status="aborted", delivered_s=0.0)
    partial = _bout(t + dt.timedelta(hours=1), 3, status="interrupted", delivered_s=180.0)
    plan = _plan(_regimen(zone), [refused, partial])
    assert [b.session_id for b in plan.bouts_on(dt.date(2026, 3, 3))] == [partial.session_id]
    found = plan.deviations(t + dt.timedelta(hours=1, minutes=30))
    assert len(found) == 1 and "only 27 min since the last bout ended at 09:03 UTC" in found[0]


def test_a_running_session_blocks_another_bout():
    t = dt.datetime(2026, 3, 3, 8, 0, tzinfo=UTC)
    plan = _plan(_regimen("UTC"), [_bout(t, status="running")])
    found = plan.deviations(t + dt.timedelta(minutes=5))
    assert "has no end record: it is still running, or its process was stopped" in found[0]
    assert plan.due(t + dt.timedelta(minutes=5)).state == "running"


def test_another_signal_than_the_regimen_is_a_deviation():
    plan = _plan(_regimen("UTC"), [])
    at = dt.datetime(2026, 3, 3, 8, 0, tzinfo=UTC)
    assert plan.deviations(at, frequency_hz=30.0, peak_g=0.4, duration_s=600.0) == []
    assert plan.deviations(at, frequency_hz=35.0, peak_g=0.4, duration_s=600.0) == [
        "this bout is 35 Hz, 0.4 g peak, 10 min; human-30hz-0.4g prescribes 30 Hz, 0.4 g peak, 10 min"
    ]


def test_due_says_when_the_next_bout_may_start():
    berlin = "Europe/Berlin"
    plan = _plan(_regimen(berlin), [_bout(_at(berlin, 2026, 3, 10, 9, 0))])
    due = plan.due(_at(berlin, 2026, 3, 10, 9, 30))
    assert due.state == "resting" and due.delivered == 1 and due.prescribed == 2
    assert due.next_allowed == _at(berlin, 2026, 3, 10, 10, 10)
    assert due.message == "bout 2 of 2 from 10:10 CET (rest)"
    assert plan.due(_at(berlin, 2026, 3, 10, 11, 0)).state == "due"
    late = _plan(_regimen(berlin), [_bout(_at(berlin, 2026, 3, 10, 23, 15))]).due(_at(berlin, 2026, 3, 10, 23, 30))
    assert late.state == "resting" and "cannot be given today: rest until 00:25 CET on Wed 11 Mar 2026" in late.message


def test_a_later_assignment_takes_over_from_its_start():
    first = _regimen("UTC", days=70)
    amended = replace(first, name="amended", bouts_per_day=1, start=dt.date(2026, 3, 16), days=28)
    plan = _plan(first, [], amended)
    assert plan.regimen_on(dt.date(2026, 3, 15)).name == "human-30hz-0.4g"
    assert plan.regimen_on(dt.date(2026, 3, 16)).name == "amended"
    assert plan.prescribed(dt.date(2026, 3, 15)) == 2 and plan.prescribed(dt.date(2026, 3, 16)) == 1
    assert plan.regimen_on(dt.date(2026, 4, 13)) is None  # the amendment ended, and it is in force


def test_instants_without_an_offset_are_local_wall_clock():
    zone = ZoneInfo("America/New_York")
    assert parse_instant("2026-03-03T21:30", zone) == dt.datetime(2026, 3, 4, 2, 30, tzinfo=UTC)
    assert parse_instant("2026-03-03T21:30Z", zone) == dt.datetime(2026, 3, 3, 21, 30, tzinfo=UTC)


# -- through the command line -------------------------------------------------------------------


def test_due_command_across_midnight_in_the_labs_time_zone(cli, log_path, monkeypatch):
    ny = "America/New_York"
    assert cli("subject", "add", "P-1", "--kind", "human", "--regimen", "human-30hz-0.4g", "--start", "2026-03-02",
               "--tz", ny, "--log", str(log_path)).code == 0
    assert cli("subject", "add", "M-1", "--kind", "animal", "--regimen", "mouse-90hz-0.3g", "--weeks", "4",
               "--start", "2026-03-02", "--tz", "UTC", "--log", str(log_path)).code == 0
    clock = LogClock(monkeypatch, dt.datetime(2026, 3, 3, 12, 0, tzinfo=UTC))
    with DoseLog(log_path) as log:
        write_bout(log, clock, "P-1", _at(ny, 2026, 3, 3, 9, 0))
        write_bout(log, clock, "P-1", _at(ny, 2026, 3, 3, 20, 0))
    result = cli("due", "--at", "2026-03-03T21:30-05:00", "--log", str(log_path), "--json")
    assert result.code == 0, result
    p1, m1 = json.loads(result.out)
    assert p1["subject"] == "P-1" and p1["day"] == "2026-03-03" and p1["state"] == "done"
    assert p1["delivered_bouts"] == 2 and p1["next_day"] == "2026-03-04"
    assert m1["day"] == "2026-03-04" and m1["state"] == "due"  # already Wednesday in UTC
    after_midnight = json.loads(cli("due", "--subject", "P-1", "--at", "2026-03-04T00:05-05:00",
                                    "--log", str(log_path), "--json").out)[0]
    assert after_midnight["state"] == "due" and after_midnight["delivered_bouts"] == 0
    unknown = cli("due", "--subject", "P-2", "--log", str(log_path))
    assert unknown.code == 2 and "no subject 'P-2'" in unknown.err and "did you mean P-1?" in unknown.err
    table = cli("due", "--at", "2026-03-03T20:20-05:00", "--log", str(log_path))
    assert "P-1" in table.out and "cannot be given today" not in table.out
    assert "bout" in table.out and "2/2" in table.out


def test_session_refuses_a_bout_too_soon_and_logs_an_override(cli, rig, log_path):
    assert cli("subject", "add", "P-1", "--kind", "human", "--regimen", "human-30hz-0.4g", "--log",
               str(log_path)).code == 0
    run = ("session", "--device", rig("rig-1"), "--subject", "P-1", "--minutes", "0.2", "--yes",
           "--log", str(log_path), "--json", "--quiet")
    first = cli(*run, "--override-reason", "short bout for the test")
    assert first.code == 0, first
    record = json.loads(first.out)
    assert record["regimen"] == "human-30hz-0.4g"
    assert record["prescription"]["frequency_hz"] == 30 and record["prescription"]["peak_g"] == 0.4
    assert "0.2 min; human-30hz-0.4g prescribes 30 Hz, 0.4 g peak, 10 min" in record["deviation"]
    assert record["override_reason"] == "short bout for the test"

    refused = cli(*run)
    assert refused.code == 2
    lines = [line for line in refused.err.splitlines() if line.strip()]
    assert len(lines) == 1 and "P-1: only 0 min since the last bout ended" in lines[0]
    assert "--override-reason" in lines[0] and "nothing was started" in lines[0]

    overridden = cli(*run, "--override-reason", "the first bout was cut short")
    assert overridden.code == 0
    record = json.loads(overridden.out)
    assert "needs 60 min of rest" in record["deviation"]
    assert record["override_reason"] == "the first bout was cut short"
    with DoseLog(log_path, create=False) as log:
        assert len(log.sessions()) == 2  # the refused one left nothing
        assert log.verify().ok


def test_session_for_an_unknown_subject_in_a_study_log(cli, log_path):
    assert cli("subject", "add", "P-017", "--kind", "human", "--log", str(log_path)).code == 0
    result = cli("session", "--device", "sim://", "--speed", "max", "--subject", "P-17", "--log", str(log_path))
    assert result.code == 2 and "no subject 'P-17'" in result.err and "did you mean P-017?" in result.err
    # a subject without a regimen has no rules (on the simulator: practice)
    ok = cli("session", "--device", "sim://", "--speed", "max", "--minutes", "0.1", "--subject", "P-017",
             "--practice", "--log", str(log_path), "--quiet", "--json")
    assert ok.code == 0 and json.loads(ok.out)["regimen"] is None


def test_override_reason_needs_a_subject(cli, log_path):
    result = cli("session", "--device", "sim://", "--speed", "max", "--override-reason", "x", "--log", str(log_path))
    assert result.code == 2 and "--override-reason applies to a session for a subject" in result.err


@pytest.mark.parametrize("zone", ["Europe/Berlin", "Pacific/Auckland"])
def test_subject_default_start_is_today_in_the_labs_zone(cli, log_path, zone):
    result = cli("subject", "add", "P-1", "--kind", "human", "--regimen", "human-30hz-0.3g", "--tz", zone,
                 "--log", str(log_path), "--json")
    regimen = json.loads(result.out)["assignments"][0]["regimen"]
    assert regimen["timezone"] == zone
    assert regimen["start"] == dt.datetime.now(ZoneInfo(zone)).date().isoformat()


def test_system_time_zone_is_the_default(cli, log_path, monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    result = cli("subject", "add", "P-1", "--kind", "human", "--regimen", "human-30hz-0.3g", "--log", str(log_path),
                 "--json")
    assert json.loads(result.out)["assignments"][0]["regimen"]["timezone"] == "Asia/Tokyo"
