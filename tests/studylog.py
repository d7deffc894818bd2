"""Helpers that write study records into a real dose log at chosen wall-clock times.

The dose log stamps records with `livctl.records.doselog.utc_now`; `LogClock` replaces it so a test can
write a bout at 23:40 local time, or a year of study, without waiting.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

from livctl.records.doselog import DoseLog, SessionStart

UTC = dt.timezone.utc


class LogClock:
    """A settable stand-in for `livctl.records.doselog.utc_now` (and `livctl.study.schedule.utc_now`)."""

    def __init__(self, monkeypatch, start: dt.datetime):
        self.now = start.astimezone(UTC)
        monkeypatch.setattr("livctl.records.doselog.utc_now", self)
        monkeypatch.setattr("livctl.study.schedule.utc_now", self)

    def __call__(self) -> dt.datetime:
        return self.now

    def set(self, moment: dt.datetime) -> None:
        self.now = moment.astimezone(UTC)


def start_record(subject: str | None = "P-1", *, frequency_hz: float = 30.0, peak_g: float = 0.4,
                 minutes: float = 10.0, platform_id: str = "sim", **changes) -> SessionStart:
    values = dict(
        device=f"sim://?id={platform_id}", platform_id=platform_id, simulated=True, time_base="virtual time",
        subject=subject, operator="ana", preset=None, frequency_hz=frequency_hz, peak_g=peak_g,
        duration_s=minutes * 60.0, ramp_s=2.0, tol_frequency_hz=1.0, tol_accel_fraction=0.1, max_thd_fraction=0.1,
        min_in_spec_fraction=0.9, window_s=1.0, calibration_id="cal-1",
    )
    values.update(changes)
    return SessionStart(**values)


def window(idx: int, *, phase: str = "deliver", frequency_hz: float = 30.0, peak_g: float = 0.4,
           in_spec: bool = True, duration_s: float = 1.0) -> dict:
    return dict(idx=idx, phase=phase, t_s=float(idx), duration_s=duration_s, drive=0.2, frequency_hz=frequency_hz,
                peak_g=peak_g, rms_g=peak_g / math.sqrt(2), thd_percent=1.0, snr_db=20.0, sinad_db=19.9, dc_g=1.0,
                axis="z", off_axis_percent=1.0, in_spec=in_spec, reasons=[] if in_spec else ["peak too low"])


def write_bout(log: DoseLog, clock: LogClock | None, subject: str | None, start: dt.datetime, *,
               minutes: float = 10.0, frequency_hz: float = 30.0, peak_g: float = 0.4, status: str = "completed",
               delivered_s: float | None = None, in_spec: bool = True, windows: int | None = 0,
               window_s: float = 1.0, platform_id: str = "sim", admit=None, reason: str | None = None,
               **record) -> str:
    """A whole session starting at `start` and ending `minutes` (+ 10 s) later, with `windows`
    delivery windows of `window_s` (None: as many as the delivered time holds); `record` changes
    the start record (operator, simulated, practice...). Returns its id."""
    if clock is not None:
        clock.set(start)
    sid = log.start_session(start_record(subject, frequency_hz=frequency_hz, peak_g=peak_g, minutes=minutes,
                                         platform_id=platform_id, **record), admit=admit)
    delivered = minutes * 60.0 if delivered_s is None else delivered_s
    count = int(round(delivered / window_s)) if windows is None else windows
    for i in range(count):
        log.add_window(sid, window(i, frequency_hz=frequency_hz, peak_g=peak_g, in_spec=in_spec, duration_s=window_s))
    if clock is not None:
        clock.set(start + dt.timedelta(seconds=delivered + 10))
    log.end_session(sid, dict(
        status=status, reason=reason or (None if status == "completed" and in_spec else "stopped"), delivered_s=delivered,
        in_spec_s=delivered if in_spec else 0.0, in_spec_fraction=1.0 if in_spec else 0.0 if delivered else None,
        mean_frequency_hz=frequency_hz if delivered else None, mean_peak_g=peak_g if delivered else None,
        mean_thd_percent=1.0 if delivered else None, in_spec=in_spec and status == "completed", window_count=count,
    ))
    return sid


def build_study(log_path, monkeypatch, cli) -> dict:
    """A small study (local times, Europe/Berlin for P-1):

    P-1 (human, human-30hz-0.4g from Mon 2 Mar 2026): two in-spec bouts 08:00 and 18:00 on 2-6 March,
    a third on 6 March at 18:30 run with an override; one bout on Sat 7; none on Sun 8 (a session
    refused at its pre-check); on Mon 9 one bout out of spec and one in spec; on Tue 10 one bout
    interrupted after 3 minutes. Every bout 10 min at 30 Hz, 0.4 g peak, in windows of 30 s.
    M-1 (animal, mouse-90hz-0.3g, UTC): bouts on 2 and 3 March.
    H-9 (human, a 90 Hz regimen): one bout on 3 March.
    `cli(*args)` runs a livctl command and returns an object with `.code`.
    """
    from livctl.study.schedule import admission

    berlin = dt.timezone(dt.timedelta(hours=1))  # CET, before the change to summer time
    for args in (
        ("P-1", "human", "human-30hz-0.4g", "Europe/Berlin", ()),
        ("M-1", "animal", "mouse-90hz-0.3g", "UTC", ("--weeks", "4")),
    ):
        subject, kind, regimen, zone, extra = args
        result = cli("subject", "add", subject, "--kind", kind, "--regimen", regimen, "--start", "2026-03-02",
                     "--tz", zone, *extra, "--log", str(log_path))
        assert result.code == 0, result
    toml = log_path.parent / "h90.toml"
    toml.write_text("frequency_hz = 90\npeak_g = 0.3\nminutes_per_bout = 15\nbouts_per_day = 1\ndays_per_week = 7\n"
                    "weeks = 4\nstart = 2026-03-02\ntimezone = \"UTC\"\n")
    assert cli("subject", "add", "H-9", "--kind", "human", "--regimen", str(toml), "--log", str(log_path)).code == 0

    clock = LogClock(monkeypatch, dt.datetime(2026, 3, 2, tzinfo=UTC))
    ids = {}
    with DoseLog(log_path) as log:
        for day in range(2, 7):
            for hour in (8, 18):
                write_bout(log, clock, "P-1", dt.datetime(2026, 3, day, hour, 0, tzinfo=berlin), windows=None, window_s=30.0)
        ids["override"] = write_bout(log, clock, "P-1", dt.datetime(2026, 3, 6, 18, 30, tzinfo=berlin), windows=None, window_s=30.0,
                                     admit=admission("P-1", "make-up for a missed bout", now=clock))
        write_bout(log, clock, "P-1", dt.datetime(2026, 3, 7, 9, 0, tzinfo=berlin), windows=None, window_s=30.0)
        ids["refused"] = write_bout(log, clock, "P-1", dt.datetime(2026, 3, 8, 9, 0, tzinfo=berlin), status="aborted",
                                    delivered_s=0.0, in_spec=False, windows=3)
        ids["out_of_spec"] = write_bout(log, clock, "P-1", dt.datetime(2026, 3, 9, 8, 0, tzinfo=berlin), windows=None, window_s=30.0,
                                        in_spec=False)
        write_bout(log, clock, "P-1", dt.datetime(2026, 3, 9, 18, 0, tzinfo=berlin), windows=None, window_s=30.0)
        ids["interrupted"] = write_bout(log, clock, "P-1", dt.datetime(2026, 3, 10, 8, 0, tzinfo=berlin),
                                        status="interrupted", delivered_s=180.0, in_spec=False, windows=None, window_s=30.0)
        for day in (2, 3):
            write_bout(log, clock, "M-1", dt.datetime(2026, 3, day, 9, 0, tzinfo=UTC), minutes=15, frequency_hz=90.0,
                       peak_g=0.3, windows=20, platform_id="mouse-rig")
        write_bout(log, clock, "H-9", dt.datetime(2026, 3, 3, 9, 0, tzinfo=UTC), minutes=15, frequency_hz=90.0,
                   peak_g=0.3, windows=None, window_s=30.0)
    return ids


def build_study_file(directory: Path) -> tuple[Path, dict]:
    """`build_study` into `directory`/doses.sqlite, its commands run in this process (for a
    module-scoped fixture: build once, copy for each test)."""
    import pytest

    from livctl.cli import main

    class Ran:
        def __init__(self, code: int):
            self.code = code

    path = directory / "doses.sqlite"
    with pytest.MonkeyPatch.context() as monkeypatch:
        ids = build_study(path, monkeypatch, lambda *args: Ran(main(list(args))))
    return path, ids


def build_four_week_study(log_path, monkeypatch, cli) -> dict:
    """Four weeks of a three-subject study, Mon 2 to Sun 29 March 2026, on real platforms (the
    records as a real platform writes them), with what a coordinator meets:

    P-017 (human, human-30hz-0.4g: 2 x 10 min a day, Europe/Berlin): bouts at 08:30 and 17:45
    local time (afternoon), a few missed; a session refused at its pre-check (aborted, nothing
    delivered) on 6 March; one interrupted after 4 minutes on 11 March; a third bout on 13 March
    run with an override; one out of spec on 18 March; two practice sessions on the simulator.
    P-018 (human, human-30hz-0.3g: 1 x 10 min a day, America/New_York): one bout at 14:00 local on
    about two days in three. M-01 (animal, mouse-90hz-0.3g: 15 min Mon-Fri, UTC): 10:00 UTC.
    Returns the ids of the special sessions.
    """
    from zoneinfo import ZoneInfo

    from livctl.study.schedule import admission

    for subject, kind, regimen, zone, extra in (
        ("P-017", "human", "human-30hz-0.4g", "Europe/Berlin", ()),
        ("P-018", "human", "human-30hz-0.3g", "America/New_York", ()),
        ("M-01", "animal", "mouse-90hz-0.3g", "UTC", ("--weeks", "4")),
    ):
        result = cli("subject", "add", subject, "--kind", kind, "--regimen", regimen, "--start", "2026-03-02",
                     "--tz", zone, *extra, "--operator", "coordinator", "--log", str(log_path))
        assert result.code == 0, result
    real = dict(simulated=False, time_base="real time", calibration_id="plate-A-20260301")
    berlin, new_york = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")
    clock = LogClock(monkeypatch, dt.datetime(2026, 3, 2, tzinfo=UTC))
    ids = {}
    with DoseLog(log_path) as log:
        for day in range(2, 30):
            date = dt.date(2026, 3, day)
            for hour, minute in ((8, 30), (17, 45)):
                if day in (8, 22) or (day in (15, 27) and hour == 17):
                    continue  # missed
                at = dt.datetime(2026, 3, day, hour, minute, tzinfo=berlin)
                if day == 6 and hour == 8:
                    ids["aborted"] = write_bout(log, clock, "P-017", at, status="aborted", delivered_s=0.0,
                                                in_spec=False, windows=3, platform_id="plate-A", operator="ana",
                                                reason="pre-check: the platform responds 0.62x what its calibration "
                                                       "says (plate-A-20260301); check the platform", **real)
                    at = at + dt.timedelta(minutes=30)  # the retry
                if day == 11 and hour == 17:
                    ids["interrupted"] = write_bout(log, clock, "P-017", at, status="interrupted", delivered_s=240.0,
                                                    in_spec=False, windows=None, window_s=30.0, platform_id="plate-A",
                                                    operator="ben", reason="stopped by SIGINT", **real)
                    continue
                out_of_spec = day == 18 and hour == 8
                sid = write_bout(log, clock, "P-017", at, windows=None, window_s=30.0, platform_id="plate-A",
                                 operator="ana" if hour == 8 else "ben", in_spec=not out_of_spec,
                                 reason="only 71 % of the delivery was in spec (at least 90 % required)"
                                 if out_of_spec else None, **real)
                if out_of_spec:
                    ids["out_of_spec"] = sid
            if day == 13:
                ids["override"] = write_bout(
                    log, clock, "P-017", dt.datetime(2026, 3, 13, 19, 30, tzinfo=berlin), windows=None, window_s=30.0,
                    platform_id="plate-A", operator="ben", admit=admission("P-017", "make-up for the bout cut short "
                                                                           "on 11 March", now=clock), **real)
            if day in (3, 16):
                ids.setdefault("practice", []).append(write_bout(
                    log, clock, "P-017", dt.datetime(2026, 3, day, 12, 15, tzinfo=berlin), minutes=2, windows=None,
                    window_s=30.0, platform_id="bench-A", operator="trainee", practice=True,
                    device="sim://?id=bench-A"))
            if day % 3 != 0:
                write_bout(log, clock, "P-018", dt.datetime(2026, 3, day, 14, 0, tzinfo=new_york), peak_g=0.3,
                           windows=None, window_s=30.0, platform_id="plate-B", operator="cy", **real)
            if date.weekday() < 5 and day not in (10, 24):
                write_bout(log, clock, "M-01", dt.datetime(2026, 3, day, 10, 0, tzinfo=UTC), minutes=15,
                           frequency_hz=90.0, peak_g=0.3, windows=None, window_s=60.0, platform_id="mouse-rig",
                           operator="dee", **real)
    return ids
