"""When a subject may have a bout: a regimen's rules applied to the bouts in the dose log.

Days are calendar days in the regimen's time zone (zoneinfo): the daily count starts again at
local midnight, and a day may have 23 or 25 hours. Rest is elapsed real time, measured in UTC from
the end of one bout to the start of the next, so it is right across midnight and across
daylight-saving changes. A bout is any session that vibrated the subject (delivered time > 0, even
when interrupted or out of spec) or that is still running; a session refused at its pre-check is
not a bout.

`Plan` holds one subject's regimen assignments and bouts; `Plan.deviations(at, ...)` says what the
regimen has against a bout starting at `at` (nothing: allowed), `Plan.due(at)` what the subject
is due. `admission(log, subject, reason)` is the check a session runs inside the dose log's write
transaction.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from zoneinfo import ZoneInfo

from livctl.clock import utc_now
from livctl.errors import UsageError
from livctl.inputs import InputError, check_instant, parse_zone
from livctl.study.regimen import Regimen, weekday_names

__all__ = ["Plan", "Bout", "parse_instant", "parse_utc", "session_gate", "system_timezone"]

UTC = dt.timezone.utc
LOOKAHEAD_DAYS = 366
"""How far `due` looks for the next scheduled day."""


class RegimenRefusal(UsageError):
    """The regimen does not allow this bout now, and no override reason was given."""


def system_timezone() -> str:
    """The IANA name of this machine's time zone: $TZ, else /etc/localtime's target, else
    /etc/timezone, else UTC (what the C library assumes without them)."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        target = os.path.realpath("/etc/localtime")
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    except OSError:
        pass
    try:
        candidates.append(Path("/etc/timezone").read_text().strip())
    except OSError:
        pass
    for name in candidates:
        if not name:
            continue
        try:
            parse_zone(name)
        except InputError:
            continue
        return name
    return "UTC"


def parse_instant(text: str, zone: ZoneInfo) -> dt.datetime:
    """An ISO 8601 date and time; without an offset it is a wall-clock time in `zone`. Within
    livctl.inputs' dates (EARLIEST_DATE-LATEST_DATE)."""
    shown = repr(text if len(text) <= 40 else text[:36] + "...")
    try:
        if len(text) > 64:
            raise ValueError("too long")
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"{shown} is not a date and time; give e.g. 2026-03-02T14:30 (local) or 2026-03-02T14:30+01:00"
        ) from None
    return check_instant(moment.replace(tzinfo=zone) if moment.tzinfo is None else moment)


def parse_utc(text: str) -> dt.datetime:
    """A timestamp as the dose log writes it (ISO 8601, UTC, `Z`)."""
    return dt.datetime.fromisoformat(text).astimezone(UTC)


@dataclass(frozen=True)
class Bout:
    """One session of a subject, as the regimen sees it."""

    session_id: str
    started: dt.datetime
    ended: dt.datetime | None
    """None while the session has no end record (running, or its process was killed)."""
    status: str
    delivered_s: float
    in_spec: bool
    in_spec_s: float
    platform_id: str

    @property
    def counts(self) -> bool:
        """A bout the subject had (or is having): it vibrated them, or it is still running."""
        return self.status == "running" or self.delivered_s > 0

    @classmethod
    def from_session(cls, s: dict) -> "Bout":
        return cls(
            session_id=s["session_id"],
            started=parse_utc(s["started_utc"]),
            ended=None if s["ended_utc"] is None else parse_utc(s["ended_utc"]),
            status=s["status"],
            delivered_s=s["delivered_s"],
            in_spec=s["in_spec"],
            in_spec_s=s["in_spec_s"],
            platform_id=s["platform_id"],
        )


@dataclass(frozen=True)
class Assignment:
    """A regimen assigned to a subject, from the log: when, by whom, from which source."""

    seq: int
    regimen: Regimen
    assigned_utc: str
    operator: str | None
    source: str

    @classmethod
    def from_record(cls, record: dict) -> "Assignment":
        return cls(record["seq"], Regimen.from_dict(record["regimen"]), record["assigned_utc"], record["operator"],
                   record["source"])


@dataclass(frozen=True)
class Due:
    """What a subject is due on one day, seen at one moment."""

    subject: str
    regimen: str | None
    timezone: str
    day: dt.date
    state: str
    """due, resting, running, done, not_scheduled, not_started, ended or no_regimen."""
    prescribed: int
    delivered: int
    next_allowed: dt.datetime | None
    """When the next bout may start (local time), if one is due today."""
    next_day: dt.date | None
    """The next day with bouts, when none is due any more today."""
    running: str | None
    message: str

    def to_dict(self) -> dict:
        return {
            "subject": self.subject,
            "regimen": self.regimen,
            "timezone": self.timezone,
            "day": self.day.isoformat(),
            "state": self.state,
            "prescribed_bouts": self.prescribed,
            "delivered_bouts": self.delivered,
            "remaining_bouts": max(0, self.prescribed - self.delivered),
            "next_allowed": None if self.next_allowed is None else self.next_allowed.isoformat(timespec="minutes"),
            "next_allowed_utc": None if self.next_allowed is None
            else self.next_allowed.astimezone(UTC).isoformat(timespec="minutes").replace("+00:00", "Z"),
            "next_day": None if self.next_day is None else self.next_day.isoformat(),
            "running_session": self.running,
            "message": self.message,
        }


def day_label(day: dt.date) -> str:
    return f"{day:%a} {day.day} {day:%b %Y}"


class Plan:
    """One subject's regimen assignments and bouts."""

    def __init__(self, subject: str, kind: str, assignments: list[Assignment], bouts: list[Bout],
                 default_timezone: str | None = None):
        self.subject = subject
        self.kind = kind
        self.assignments = sorted(assignments, key=lambda a: a.seq)
        self.bouts = sorted(bouts, key=lambda b: b.started)
        latest = self.assignments[-1].regimen.timezone if self.assignments else None
        self.timezone = latest or default_timezone or system_timezone()
        self.zone = ZoneInfo(self.timezone)

    @classmethod
    def from_log(cls, log, subject_id: str) -> "Plan":
        """The plan as the log holds it now (UnknownSubject when the log has no such subject).
        Practice sessions are no bouts: they are left out."""
        subject = log.subject(subject_id)
        sessions = log.sessions(subjects=[subject_id], oldest_first=True)
        return cls(subject_id, subject["kind"], [Assignment.from_record(a) for a in subject["assignments"]],
                   [Bout.from_session(s) for s in sessions if not s.get("practice")])

    # -- the calendar -------------------------------------------------------------------------

    def local_day(self, moment: dt.datetime) -> dt.date:
        return moment.astimezone(self.zone).date()

    def regimen_on(self, day: dt.date) -> Regimen | None:
        """The regimen in force on `day`: the latest assignment that has started by then, unless it has ended."""
        for a in reversed(self.assignments):
            if a.regimen.start <= day:
                return a.regimen if day < a.regimen.end else None
        return None

    def prescribed(self, day: dt.date) -> int:
        regimen = self.regimen_on(day)
        return regimen.bouts_per_day if regimen is not None and regimen.scheduled(day) else 0

    def bouts_on(self, day: dt.date) -> list[Bout]:
        """The bouts that count, started on `day` (local)."""
        return [b for b in self.bouts if b.counts and self.local_day(b.started) == day]

    def next_scheduled_day(self, after: dt.date) -> dt.date | None:
        for offset in range(1, LOOKAHEAD_DAYS + 1):
            day = after + dt.timedelta(days=offset)
            if self.prescribed(day):
                return day
        return None

    def _status_outside(self, day: dt.date) -> tuple[str, str]:
        """Why `day` has no regimen: (state, message)."""
        if not self.assignments:
            return "no_regimen", "no regimen assigned"
        if all(a.regimen.start > day for a in self.assignments):
            first = min(a.regimen.start for a in self.assignments)
            return "not_started", f"the regimen starts on {day_label(first)}"
        ended = max((a.regimen for a in self.assignments if a.regimen.start <= day), key=lambda r: r.end)
        return "ended", f"the regimen {ended.name} ended on {day_label(ended.end - dt.timedelta(days=1))}"

    # -- the rules ----------------------------------------------------------------------------

    def deviations(
        self,
        at: dt.datetime,
        *,
        frequency_hz: float | None = None,
        peak_g: float | None = None,
        duration_s: float | None = None,
    ) -> list[str]:
        """What the regimen has against a bout starting at `at` (empty: the bout is allowed)."""
        if not self.assignments:
            return []  # a subject without a regimen has no rules
        day = self.local_day(at)
        regimen = self.regimen_on(day)
        if regimen is None:
            return [self._status_outside(day)[1]]
        out = []
        for b in self.bouts:
            if b.status == "running" and b.started <= at:
                out.append(
                    f"session {b.session_id} on {b.platform_id} (started {self._clock(b.started, day)}) has no end record: "
                    "it is still running, or its process was stopped"
                )
        if not regimen.scheduled(day):
            out.append(f"{day_label(day)} is not a day with bouts ({regimen.name} runs {_days(regimen)})")
        else:
            done = len([b for b in self.bouts_on(day) if b.started <= at])
            if done >= regimen.bouts_per_day:
                out.append(
                    f"already {done} of {regimen.bouts_per_day} bouts on {day_label(day)} ({self.timezone})"
                )
        last = self._last_ended(at)
        if last is not None and regimen.min_rest_minutes > 0:
            allowed = last.ended + dt.timedelta(minutes=regimen.min_rest_minutes)
            if at < allowed:
                rested = (at - last.ended).total_seconds() / 60
                out.append(
                    f"only {rested:.0f} min since the last bout ended at {self._clock(last.ended, day)}; "
                    f"{regimen.name} needs {regimen.min_rest_minutes:g} min of rest (next bout from "
                    f"{self._clock(allowed, day)})"
                )
        asked = (frequency_hz, peak_g, duration_s)
        wanted = (regimen.frequency_hz, regimen.peak_g, regimen.minutes_per_bout * 60.0)
        if any(a is not None and abs(a - w) > 1e-9 * max(1.0, abs(w)) for a, w in zip(asked, wanted)):
            out.append(
                f"this bout is {_signal(*(a if a is not None else w for a, w in zip(asked, wanted)))}; "
                f"{regimen.name} prescribes {_signal(*wanted)}"
            )
        return out

    def _last_ended(self, at: dt.datetime) -> Bout | None:
        ended = [b for b in self.bouts if b.counts and b.ended is not None and b.started <= at]
        return max(ended, key=lambda b: b.ended) if ended else None

    def _clock(self, moment: dt.datetime, day: dt.date) -> str:
        """Local time of day, with the date when it is not `day`."""
        local = moment.astimezone(self.zone)
        text = f"{local:%H:%M} {local.tzname()}"
        return text if local.date() == day else f"{text} on {day_label(local.date())}"

    def due(self, at: dt.datetime) -> Due:
        """What the subject is due on the local day of `at`, and when the next bout may start."""
        day = self.local_day(at)
        regimen = self.regimen_on(day)
        delivered = len([b for b in self.bouts_on(day) if b.started <= at])
        common = dict(subject=self.subject, timezone=self.timezone, day=day, delivered=delivered)
        if regimen is None:
            state, message = self._status_outside(day)
            next_day = self.next_scheduled_day(day) if state == "not_started" else None
            return Due(regimen=None, state=state, prescribed=0, next_allowed=None, next_day=next_day, running=None,
                       message=message, **common)
        prescribed = regimen.bouts_per_day if regimen.scheduled(day) else 0
        base = dict(regimen=regimen.name, prescribed=prescribed, **common)
        running = [b for b in self.bouts if b.status == "running" and b.started <= at]
        if running:
            b = running[-1]
            return Due(state="running", next_allowed=None, next_day=None, running=b.session_id,
                       message=f"session {b.session_id} on {b.platform_id} running since {self._clock(b.started, day)}",
                       **base)
        if delivered >= prescribed:
            next_day = self.next_scheduled_day(day)
            following = f"; next bouts on {day_label(next_day)}" if next_day else "; no more bouts scheduled"
            if prescribed == 0:
                state, message = "not_scheduled", f"no bouts on {day_label(day)} ({regimen.name} runs {_days(regimen)})"
            else:
                state, message = "done", f"done: {delivered} of {prescribed} bouts"
            return Due(state=state, next_allowed=None, next_day=next_day, running=None, message=message + following,
                       **base)
        allowed = at
        last = self._last_ended(at)
        if last is not None:
            allowed = max(at, last.ended + dt.timedelta(minutes=regimen.min_rest_minutes))
        allowed = allowed.astimezone(self.zone)
        which = f"bout {delivered + 1} of {prescribed}"
        if allowed <= at:
            return Due(state="due", next_allowed=allowed, next_day=None, running=None, message=f"due now: {which}",
                       **base)
        when = self._clock(allowed, day)
        if allowed.date() != day:
            message = f"{which} cannot be given today: rest until {when}"
        else:
            message = f"{which} from {when} (rest)"
        return Due(state="resting", next_allowed=allowed, next_day=None, running=None, message=message, **base)


def _days(regimen: Regimen) -> str:
    return weekday_names(regimen.weekdays)


def _signal(frequency_hz: float, peak_g: float, duration_s: float) -> str:
    return f"{frequency_hz:g} Hz, {peak_g:g} g peak, {duration_s / 60:g} min"


def admission(subject_id: str, override_reason: str | None, now: Callable[[], dt.datetime] | None = None) -> Callable:
    """The check a session for `subject_id` runs inside the dose log's write transaction
    (`DoseLog.start_session(start, admit=...)`): the regimen's deviations for a bout starting now
    refuse the session (RegimenRefusal, exit 2) unless an override reason is given, in which case
    the deviations and the reason go into the session's record."""

    def admit(log, start):
        plan = Plan.from_log(log, subject_id)
        at = (now or utc_now)()
        regimen = plan.regimen_on(plan.local_day(at))
        found = plan.deviations(at, frequency_hz=start.frequency_hz, peak_g=start.peak_g, duration_s=start.duration_s)
        if found and not override_reason:
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            raise RegimenRefusal(
                f"{subject_id}: {found[0]}{more}; nothing was started. To run this bout anyway, give "
                "--override-reason TEXT (it is logged with the session)"
            )
        return replace(
            start,
            regimen=None if regimen is None else regimen.name,
            deviation="; ".join(found) or None,
            override_reason=override_reason,
        )

    return admit


def session_gate(log, subject_id: str | None, override_reason: str | None) -> tuple[Callable | None, Regimen | None]:
    """For `livctl session --subject`: the admission check and the regimen in force now.

    A log without subjects takes any subject name (no rules, as for ad-hoc sessions); once it
    holds subjects, an unknown one is an error (UnknownSubject)."""
    if subject_id is None or not log.has_subjects():
        if override_reason:
            raise UsageError("--override-reason applies to a session for a subject with a regimen (--subject ID)")
        return None, None
    plan = Plan.from_log(log, subject_id)
    regimen = plan.regimen_on(plan.local_day(utc_now()))
    if regimen is None and plan.assignments:  # not started or ended: an override still gets its signal
        regimen = plan.assignments[-1].regimen
    return admission(subject_id, override_reason), regimen
