"""Compliance and dose reports for a subject or a whole study: numbers, a figure, an HTML page.

A subject's report sets the bouts its regimen prescribed against the bouts the dose log holds, day
by day in the regimen's time zone: a calendar (all prescribed bouts in spec / some / none / bouts on
days without any), in-spec minutes against prescribed minutes, each session's measured peak g and
frequency against the prescription's tolerance, and, for human subjects, the ISO 2631-1
Wk-weighted exposure with the daily A(8) against the EU Directive 2002/44/EC action and limit
values (`livctl.dsp.exposure`). The numbers come from a log whose hash chain was verified, and the page
prints the chain's head so the report anchors the log.

Figures use matplotlib's object API with the Agg canvas (no display, no global state), imported
only when a figure is drawn. The HTML page is one self-contained file: the figure is embedded.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import math
from dataclasses import dataclass, field

from livctl import __version__
from livctl.records.doselog import ChainCheck
from livctl.errors import UsageError
from livctl.dsp.exposure import ACTION_VALUE_MPS2, HEALTH_RANGE_HZ, LIMIT_VALUE_MPS2, Exposure, windows_exposure
from livctl.study.regimen import MAX_DAYS
from livctl.study.schedule import Bout, Plan, parse_utc

__all__ = [
    "StudyReport", "SubjectReport", "build_subject_report", "render", "subject_figure", "study_figure",
    "subject_html", "study_html",
]

MAX_REPORT_DAYS = MAX_DAYS
"""The longest stretch one report covers: the longest regimen (ten years). Each day is a cell of the
calendar and a point of each chart: ten years take about 10 s and 200 MB; 230 years took minutes
and gigabytes."""

FULL, PARTIAL, MISSED, EXTRA, NONE = "full", "partial", "missed", "extra", "none"
DAY_COLOURS = {
    FULL: "#2e9e4f",      # every prescribed bout given, in spec
    PARTIAL: "#f0a630",   # some given, or given out of spec
    MISSED: "#d9423a",    # prescribed, none given
    EXTRA: "#4a78c2",     # bouts on a day without any prescribed
    NONE: "#e6e6e6",      # nothing prescribed, nothing given
}
DAY_LABELS = {
    FULL: "all prescribed bouts in spec",
    PARTIAL: "some bouts, or out of spec",
    MISSED: "prescribed, none given",
    EXTRA: "bouts on a day without any prescribed",
    NONE: "no bouts prescribed",
}


@dataclass
class Day:
    """One local day of a subject's report: the bouts prescribed and delivered, their minutes, the day's
    exposure."""

    day: dt.date
    prescribed: int
    prescribed_minutes: float
    sessions: list[dict] = field(default_factory=list)
    """The day's bouts (sessions that vibrated the subject), as session objects."""
    exposure: Exposure | None = None

    @property
    def delivered(self) -> int:
        return len(self.sessions)

    @property
    def in_spec_bouts(self) -> int:
        return sum(1 for s in self.sessions if s["status"] == "completed" and s["in_spec"])

    @property
    def in_spec_s(self) -> float:
        return sum(s["in_spec_s"] for s in self.sessions)

    @property
    def delivered_s(self) -> float:
        return sum(s["delivered_s"] for s in self.sessions)

    @property
    def status(self) -> str:
        if self.prescribed == 0:
            return EXTRA if self.sessions else NONE
        if self.in_spec_bouts >= self.prescribed:
            return FULL
        return PARTIAL if self.sessions else MISSED


@dataclass
class SubjectReport:
    """A subject's compliance report: regimen plan, days, sessions, bouts prescribed, delivered and compliant."""

    subject: str
    kind: str
    plan: Plan
    first: dt.date
    last: dt.date
    days: list[Day]
    sessions: list[dict]
    """Every session of the subject in the range (bouts and sessions refused at their pre-check),
    practice sessions excepted."""
    exposures: dict[str, Exposure]
    """Per session id, for human subjects."""
    check: ChainCheck | None
    log: str
    generated_utc: str
    practice: list[dict] = field(default_factory=list)
    """Practice sessions in the range: listed apart, counted in nothing."""
    registered: bool = True
    """False for a subject the log holds sessions of but that was never added (a log without subjects)."""
    timezone_note: str | None = None
    """Set when the lab's time zone was assumed, not configured or given by a regimen."""

    @property
    def human(self) -> bool:
        return self.kind == "human"

    @property
    def prescribed_bouts(self) -> int:
        return sum(d.prescribed for d in self.days)

    @property
    def delivered_bouts(self) -> int:
        return sum(d.delivered for d in self.days)

    @property
    def in_spec_bouts(self) -> int:
        return sum(d.in_spec_bouts for d in self.days)

    @property
    def compliant_bouts(self) -> int:
        """In-spec bouts that a prescription asked for (extra bouts do not make up for missed ones)."""
        return sum(min(d.in_spec_bouts, d.prescribed) for d in self.days)

    @property
    def compliance(self) -> float | None:
        return self.compliant_bouts / self.prescribed_bouts if self.prescribed_bouts else None

    @property
    def deviations(self) -> list[dict]:
        return [s for s in self.sessions if s["deviation"] or s["override_reason"]]

    @property
    def exposure_note(self) -> str | None:
        """Why A(8) is partly or wholly missing (None when every second was weighted)."""
        if not self.human:
            return None
        outside = sum(e.outside_range_s for e in self.exposures.values())
        unmeasured = sum(e.unmeasured_s for e in self.exposures.values())
        weighted = sum(e.weighted_s for e in self.exposures.values())
        low, high = HEALTH_RANGE_HZ
        notes = []
        if outside and not weighted:
            notes.append(
                f"ISO 2631-1 health guidance covers {low:g}-{high:g} Hz only; this subject's sessions are outside it "
                f"(e.g. 90 Hz), so no weighted exposure or A(8) is reported"
            )
        elif outside:
            notes.append(
                f"{outside / 60:.1f} min of vibration outside ISO 2631-1's {low:g}-{high:g} Hz health range are not "
                "weighted and not in A(8)"
            )
        if unmeasured:
            notes.append(f"{unmeasured:.0f} s of windows without a measurement are not in A(8)")
        return "; ".join(notes) or None

    @property
    def exposure_days(self) -> list[Day]:
        return [d for d in self.days if d.exposure is not None and (d.exposure.weighted_s > 0 or not d.exposure.complete)]

    def summary(self) -> dict:
        a8 = [d.exposure.a8_mps2 for d in self.days if d.exposure is not None and d.exposure.weighted_s > 0]
        return {
            "subject": self.subject,
            "kind": self.kind,
            "from": self.first.isoformat(),
            "to": self.last.isoformat(),
            "timezone": self.plan.timezone,
            "regimens": [a.regimen.to_dict() for a in self.plan.assignments],
            "prescribed_bouts": self.prescribed_bouts,
            "delivered_bouts": self.delivered_bouts,
            "in_spec_bouts": self.in_spec_bouts,
            "compliant_bouts": self.compliant_bouts,
            "compliance": self.compliance,
            "prescribed_minutes": sum(d.prescribed_minutes for d in self.days),
            "delivered_minutes": sum(d.delivered_s for d in self.days) / 60,
            "in_spec_minutes": sum(d.in_spec_s for d in self.days) / 60,
            "days": {status: sum(1 for d in self.days if d.status == status) for status in DAY_COLOURS},
            "deviations": len(self.deviations),
            "max_daily_a8_mps2": max(a8) if a8 else None,
            "days_over_action_value": sum(1 for v in a8 if v > ACTION_VALUE_MPS2),
            "days_over_limit_value": sum(1 for v in a8 if v > LIMIT_VALUE_MPS2),
            "exposure_note": self.exposure_note,
            "practice_sessions": len(self.practice),
            "registered": self.registered,
            "timezone_note": self.timezone_note,
            "chain": None if self.check is None else self.check.to_dict(),
        }


def build_subject_report(
    log,
    subject_id: str,
    *,
    first: dt.date | None = None,
    last: dt.date | None = None,
    now: dt.datetime | None = None,
    check: ChainCheck | None = None,
    timezone: str | None = None,
    timezone_note: str | None = None,
) -> SubjectReport:
    """A subject's report from the log. The range defaults to the regimen's start up to today (or
    its last day, when it has ended); days are the regimen time zone's, else `timezone` (the lab's;
    `timezone_note` says when it was assumed). A subject the log holds sessions of but never
    registered (a log without subjects) is reported too, with nothing prescribed."""
    from livctl.records.doselog import UnknownSubject

    every = log.sessions(subjects=[subject_id], oldest_first=True)
    try:
        plan = Plan.from_log(log, subject_id)
        registered = True
    except UnknownSubject:
        if not every:
            raise
        plan = Plan(subject_id, "unregistered", [], [Bout.from_session(s) for s in every if not s["practice"]],
                    default_timezone=timezone)
        registered = False
    if not plan.assignments and timezone:
        plan = Plan(subject_id, plan.kind, plan.assignments, plan.bouts, default_timezone=timezone)
    if plan.assignments:
        timezone_note = None  # the regimen names its zone
    now = now or dt.datetime.now(dt.timezone.utc)
    today = plan.local_day(now)
    practice = [s for s in every if s["practice"]]
    sessions = [s for s in every if not s["practice"]]
    starts = [a.regimen.start for a in plan.assignments] + [plan.local_day(parse_utc(s["started_utc"])) for s in sessions]
    if first is None:
        first = min(starts, default=today)
    if last is None:
        ends = [a.regimen.end - dt.timedelta(days=1) for a in plan.assignments]
        last = min(today, max(ends)) if ends else today
        last = max(last, first)
    span_days = (last - first).days + 1
    if span_days > MAX_REPORT_DAYS:
        raise UsageError(
            f"a report of {subject_id} from {first} to {last} would cover {span_days:,} days, more than the "
            f"{MAX_REPORT_DAYS:,} one report holds (ten years); choose a shorter range of days"
        )
    sessions = [s for s in sessions if first <= plan.local_day(parse_utc(s["started_utc"])) <= last]
    practice = [s for s in practice if first <= plan.local_day(parse_utc(s["started_utc"])) <= last]
    days = {}
    for offset in range((last - first).days + 1):
        day = first + dt.timedelta(days=offset)
        regimen = plan.regimen_on(day)
        prescribed = plan.prescribed(day)
        days[day] = Day(day, prescribed, prescribed * regimen.minutes_per_bout if prescribed else 0.0)
    exposures: dict[str, Exposure] = {}
    human = plan.kind == "human"
    for s in sessions:
        bout = Bout.from_session(s)
        if not bout.counts:
            continue
        day = days[plan.local_day(bout.started)]
        day.sessions.append(s)
        if human:
            exposure = windows_exposure(log.window_levels(s["session_id"]))
            exposures[s["session_id"]] = exposure
            day.exposure = exposure if day.exposure is None else day.exposure + exposure
    return SubjectReport(
        subject=subject_id, kind=plan.kind, plan=plan, first=first, last=last, days=list(days.values()),
        sessions=sessions, exposures=exposures, check=check, log=str(log.path.resolve()),
        generated_utc=now.astimezone(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        practice=practice, registered=registered, timezone_note=timezone_note,
    )


@dataclass
class StudyReport:
    """Every subject's report, with the log's verification: what `livctl report --study` files."""

    subjects: list[SubjectReport]
    check: ChainCheck | None
    log: str
    generated_utc: str

    def summary(self) -> dict:
        prescribed = sum(r.prescribed_bouts for r in self.subjects)
        compliant = sum(r.compliant_bouts for r in self.subjects)
        return {
            "subjects": [r.summary() for r in self.subjects],
            "prescribed_bouts": prescribed,
            "compliant_bouts": compliant,
            "compliance": compliant / prescribed if prescribed else None,
            "chain": None if self.check is None else self.check.to_dict(),
        }


# -- figures ------------------------------------------------------------------------------------

PAGE_WIDTH_IN = 7.0
"""Figures are drawn for the text width of an A4 or Letter page (margins of about 0.6 in)."""
PANEL_HEIGHT_IN = 1.9


def _new_figure(width_in: float, height_in: float, *, layout: str | None = "constrained"):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), layout=layout)
    FigureCanvasAgg(fig)
    return fig


def render(fig, fmt: str, dpi: float = 100) -> bytes:
    """The figure as PNG (`dpi`) or PDF bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=dpi, metadata=_metadata(fmt))
    return buffer.getvalue()


def _metadata(fmt: str) -> dict:
    return {"Creator": f"livctl {__version__}"} if fmt in ("png", "pdf") else {}


def _local(report: SubjectReport, s: dict) -> dt.datetime:
    return parse_utc(s["started_utc"]).astimezone(report.plan.zone).replace(tzinfo=None)


def _calendar_shape(report: SubjectReport) -> tuple[dt.date, int, bool]:
    """(the Monday the calendar starts on, weeks, month-style: a row per week, else a column per week)."""
    monday0 = report.first - dt.timedelta(days=report.first.weekday())
    weeks = (report.last - monday0).days // 7 + 1
    return monday0, weeks, weeks <= 12


def calendar_height_in(report: SubjectReport, width_in: float = PAGE_WIDTH_IN) -> float:
    _, weeks, month_style = _calendar_shape(report)
    rows = weeks if month_style else 7
    return 0.75 + rows * _cell_in(report, width_in)


def _cell_in(report: SubjectReport, width_in: float) -> float:
    _, weeks, month_style = _calendar_shape(report)
    columns = 7 if month_style else weeks
    return min(0.42, (width_in - 3.3) / columns)


def draw_calendar(fig, report: SubjectReport, width_in: float, height_in: float, top_in: float = 0.0) -> None:
    """Bouts given / prescribed, a cell a day: up to 12 weeks as a month calendar (a row a week),
    longer periods a column a week. Cells keep one size whatever the period; the legend beside."""
    from matplotlib.patches import Patch, Rectangle

    monday0, weeks, month_style = _calendar_shape(report)
    cell = _cell_in(report, width_in)
    columns, rows = (7, weeks) if month_style else (weeks, 7)
    left_in = 0.85
    top_in += 0.4
    ax = fig.add_axes((left_in / width_in, 1 - (top_in + rows * cell) / height_in,
                       columns * cell / width_in, rows * cell / height_in))
    for d in report.days:
        week, weekday = (d.day - monday0).days // 7, d.day.weekday()
        x, y = (weekday, week) if month_style else (week, weekday)
        ax.add_patch(Rectangle((x + 0.04, y + 0.04), 0.92, 0.92, facecolor=DAY_COLOURS[d.status], edgecolor="none"))
        label = f"{d.delivered}/{d.prescribed}" if (d.prescribed or d.delivered) else ""
        if month_style:
            ax.text(x + 0.1, y + 0.12, f"{d.day.day}", ha="left", va="top", fontsize=6,
                    color="white" if d.status != NONE else "0.3")
        if label and (month_style or weeks <= 26):
            ax.text(x + 0.5, y + 0.58, label, ha="center", va="center", fontsize=7 if month_style else 6,
                    color="white" if d.status != NONE else "black")
    ax.set_xlim(0, columns)
    ax.set_ylim(rows, 0)
    days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    if month_style:
        ax.set_xticks([i + 0.5 for i in range(7)], days, fontsize=7)
        ax.xaxis.tick_top()
        ax.set_yticks([w + 0.5 for w in range(weeks)],
                      [f"{monday0 + dt.timedelta(weeks=w):%d %b}" for w in range(weeks)], fontsize=7)
    else:
        ax.set_yticks([i + 0.5 for i in range(7)], days, fontsize=7)
        step = max(1, math.ceil(weeks / 13))
        ax.set_xticks([w + 0.5 for w in range(0, weeks, step)],
                      [f"{monday0 + dt.timedelta(weeks=w):%d %b}" for w in range(0, weeks, step)], fontsize=7)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    fig.text(0.01, 1 - (top_in - 0.28) / height_in, f"Bouts given / prescribed per day (days in {report.plan.timezone})",
             fontsize=9, fontweight="bold", va="top")
    ax.legend(handles=[Patch(color=DAY_COLOURS[k], label=DAY_LABELS[k]) for k in DAY_COLOURS],
              loc="upper left", bbox_to_anchor=(1.0 + 0.25 / (columns * cell), 1.0), fontsize=7, frameon=False,
              borderaxespad=0)


def _edges(report: SubjectReport) -> list[dt.datetime]:
    """Local midnights from the first day to the day after the last: whole days of the lab's zone."""
    return [dt.datetime.combine(report.first + dt.timedelta(days=k), dt.time()) for k in range(len(report.days) + 1)]


def date_ticks(axis, n_days: int) -> None:
    """Day-and-month labels: every day for a fortnight, Mondays up to a quarter, months beyond."""
    from matplotlib.dates import MO, DateFormatter, DayLocator, MonthLocator, WeekdayLocator

    if n_days <= 14:
        axis.set_major_locator(DayLocator())
    elif n_days <= 92:
        axis.set_major_locator(WeekdayLocator(byweekday=MO, interval=1 if n_days <= 62 else 2))
    else:
        axis.set_major_locator(MonthLocator())
    axis.set_major_formatter(DateFormatter("%a %d %b" if n_days <= 62 else "%d %b %Y" if n_days > 366 else "%d %b"))
    if n_days <= 62:
        axis.set_minor_locator(DayLocator())


def _day_axis(ax, report: SubjectReport) -> None:
    from matplotlib.dates import date2num

    edges = _edges(report)
    ax.set_xlim(date2num(edges[0]), date2num(edges[-1]))
    date_ticks(ax.xaxis, len(report.days))
    ax.set_axisbelow(True)
    ax.grid(axis="x", which="both", color="0.93", linewidth=0.6)
    ax.grid(axis="y", color="0.9", linewidth=0.6)
    ax.tick_params(labelsize=7)


def _runs(days: list[dt.date], values: list[tuple | None]):
    """Stretches of consecutive days with the same value (None: nothing): (first, last + 1, value)."""
    out: list[tuple[dt.date, dt.date, tuple]] = []
    for day, value in zip(days, values):
        end = day + dt.timedelta(days=1)
        if value is None:
            continue
        if out and out[-1][2] == value and out[-1][1] == day:
            out[-1] = (out[-1][0], end, value)
        else:
            out.append((day, end, value))
    return out


def _draw_minutes(ax, report: SubjectReport) -> None:
    from matplotlib.dates import date2num

    noon = [date2num(dt.datetime.combine(d.day, dt.time(12))) for d in report.days]
    in_spec = [d.in_spec_s / 60 for d in report.days]
    other = [(d.delivered_s - d.in_spec_s) / 60 for d in report.days]
    ax.bar(noon, in_spec, width=0.7, color=DAY_COLOURS[FULL], label="delivered in spec")
    ax.bar(noon, other, width=0.7, bottom=in_spec, color=DAY_COLOURS[PARTIAL], label="delivered out of spec")
    ax.stairs([d.prescribed_minutes for d in report.days], [date2num(e) for e in _edges(report)], color="black",
              linewidth=1.2, label="prescribed", baseline=None, zorder=3)
    top = max([d.prescribed_minutes for d in report.days] + [d.delivered_s / 60 for d in report.days] + [1.0])
    ax.set_ylim(0, 1.2 * top)
    ax.set_ylabel("min per day", fontsize=8)
    ax.set_title("Verified in-spec minutes against prescribed minutes, per local day", fontsize=9, loc="left",
                 fontweight="bold")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    _day_axis(ax, report)


def _day_prescriptions(report: SubjectReport, key: str) -> list[tuple | None]:
    """Per day, (prescribed value, tolerance) of `key` ("peak_g" or "frequency_hz"): the regimen's,
    else that of the day's sessions; tolerances from the sessions (the last known one carried)."""
    from livctl.prescription import Tolerance

    by_day: dict[dt.date, dict] = {}
    for s in report.sessions:
        by_day.setdefault(report.plan.local_day(parse_utc(s["started_utc"])), s["prescription"])
    default = Tolerance()
    tol = {"accel_fraction": default.accel_fraction, "frequency_hz": default.frequency_hz}
    out = []
    for d in report.days:
        rx = by_day.get(d.day)
        if rx is not None:
            tol = rx["tolerance"]
        regimen = report.plan.regimen_on(d.day)
        value = getattr(regimen, key) if regimen is not None else (rx[key] if rx is not None else None)
        if value is None:
            out.append(None)
            continue
        band = tol["accel_fraction"] * value if key == "peak_g" else tol["frequency_hz"]
        out.append((value, band))
    return out


def _draw_per_session(ax, report: SubjectReport, key: str) -> None:
    """Each session's measured mean at its local start time, against the day's prescription and
    tolerance band (drawn across whole days)."""
    from matplotlib.dates import date2num

    prescribed_key = "peak_g" if key == "mean_peak_g" else "frequency_hz"
    unit = "g peak" if key == "mean_peak_g" else "Hz"
    for i, (first, end, (value, band)) in enumerate(_runs([d.day for d in report.days],
                                                          _day_prescriptions(report, prescribed_key))):
        x = [date2num(dt.datetime.combine(first, dt.time())), date2num(dt.datetime.combine(end, dt.time()))]
        ax.fill_between(x, [value - band] * 2, [value + band] * 2, color="0.88", linewidth=0,
                        label="tolerance" if i == 0 else None)
        ax.plot(x, [value] * 2, color="black", linewidth=1, label="prescribed" if i == 0 else None)
    measured = [s for s in report.sessions if s[key] is not None]
    styles = {
        "in spec": dict(color=DAY_COLOURS[FULL], marker="o", fill=True),
        "out of spec": dict(color=DAY_COLOURS[MISSED], marker="o", fill=True),
        "stopped early": dict(color=DAY_COLOURS[MISSED], marker="o", fill=False),
    }
    for name, style in styles.items():
        for simulated in (False, True):  # a simulated session is a square, and says so in the legend
            chosen = [s for s in measured if _session_class(s) == name and bool(s["simulated"]) == simulated]
            if not chosen:
                continue
            ax.scatter([date2num(_local(report, s)) for s in chosen], [s[key] for s in chosen], s=16, zorder=3,
                       marker="s" if simulated else style["marker"],
                       facecolors=style["color"] if style["fill"] else "white", edgecolors=style["color"],
                       linewidths=1, label=f"measured, {name}" + (" (SIMULATED)" if simulated else ""))
    ax.margins(y=0.3)  # the band and the points, with room around them
    if not measured:
        ax.text(0.5, 0.5, "no measured sessions", transform=ax.transAxes, ha="center", va="center", fontsize=8)
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.set_ylabel(unit, fontsize=8)
    title = "peak acceleration" if key == "mean_peak_g" else "frequency"
    ax.set_title(f"Measured {title} of each session at its local start time", fontsize=9, loc="left",
                 fontweight="bold")
    _day_axis(ax, report)


def _session_class(s: dict) -> str:
    if s["status"] == "completed":
        return "in spec" if s["in_spec"] else "out of spec"
    return "stopped early"


def _draw_a8(ax, report: SubjectReport) -> None:
    from matplotlib.dates import date2num

    weighted = [d for d in report.days if d.exposure is not None and d.exposure.weighted_s > 0]
    if weighted:
        ax.bar([date2num(dt.datetime.combine(d.day, dt.time(12))) for d in weighted],
               [d.exposure.a8_mps2 for d in weighted], width=0.7, color="#4a78c2", label="daily A(8), Wk weighted")
        ax.axhline(ACTION_VALUE_MPS2, color=DAY_COLOURS[PARTIAL], linestyle="--",
                   label=f"action value {ACTION_VALUE_MPS2:g} m/s$^2$")
        ax.axhline(LIMIT_VALUE_MPS2, color=DAY_COLOURS[MISSED], linestyle="--",
                   label=f"limit value {LIMIT_VALUE_MPS2:g} m/s$^2$")
        ax.set_ylim(0, max(1.3, 1.1 * max(d.exposure.a8_mps2 for d in weighted)))
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    note = report.exposure_note
    if note:
        ax.text(0.5, 0.5 if not weighted else 0.92, _wrap(note, 90), transform=ax.transAxes, ha="center",
                va="center" if not weighted else "top", fontsize=7)
    ax.set_ylabel("A(8), m/s$^2$", fontsize=8)
    ax.set_title("Daily vibration exposure, ISO 2631-1 Wk (z), against EU Directive 2002/44/EC", fontsize=9,
                 loc="left", fontweight="bold")
    _day_axis(ax, report)


PANELS = ("minutes", "peak", "frequency", "a8")


def panels_of(report: SubjectReport) -> tuple[str, ...]:
    return PANELS if report.human else PANELS[:3]


def charts_figure(report: SubjectReport, panels: tuple[str, ...], width_in: float = PAGE_WIDTH_IN):
    """The day-axis charts, one above the other, each over the report's whole days."""
    fig = _new_figure(width_in, PANEL_HEIGHT_IN * len(panels))
    _draw_panels(fig, report, panels)
    return fig


def _draw_panels(fig, report: SubjectReport, panels: tuple[str, ...]) -> None:
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, panel in zip(axes, panels):
        if panel == "minutes":
            _draw_minutes(ax, report)
        elif panel == "peak":
            _draw_per_session(ax, report, "mean_peak_g")
        elif panel == "frequency":
            _draw_per_session(ax, report, "mean_frequency_hz")
        else:
            _draw_a8(ax, report)


def calendar_figure(report: SubjectReport, width_in: float = PAGE_WIDTH_IN):
    height = calendar_height_in(report, width_in)
    fig = _new_figure(width_in, height, layout=None)
    draw_calendar(fig, report, width_in, height)
    return fig


def _headline(report: SubjectReport) -> str:
    return (
        f"{report.subject} ({report.kind}): {report.first:%d %b %Y} - {report.last:%d %b %Y}, "
        f"{report.compliant_bouts} of {report.prescribed_bouts} prescribed bouts in spec"
        + (f" ({100 * report.compliance:.0f} %)" if report.compliance is not None else "")
    )


def subject_figure(report: SubjectReport, width_in: float = PAGE_WIDTH_IN):
    """The whole figure in one picture (the PNG file and the HTML page): the calendar, then the
    charts over whole local days."""
    panels = panels_of(report)
    cal_h = calendar_height_in(report, width_in)
    charts_h = PANEL_HEIGHT_IN * len(panels)
    head_h = 0.35
    fig = _new_figure(width_in, head_h + cal_h + charts_h, layout=None)
    top, bottom = fig.subfigures(2, 1, height_ratios=[head_h + cal_h, charts_h])
    top.text(0.01, 1 - 0.1 / (head_h + cal_h), _headline(report), fontsize=10, fontweight="bold", va="top")
    draw_calendar(top, report, width_in, head_h + cal_h, top_in=head_h)
    _draw_panels(bottom, report, panels)
    bottom.subplots_adjust(left=0.09, right=0.74, top=1 - 0.3 / charts_h, bottom=0.25 / charts_h, hspace=0.62)
    return fig


def study_compliance_colour(compliance: float | None) -> str:
    """The colour of a compliance bar, as the legend says: all prescribed bouts in spec, some, none."""
    if compliance is None:
        return DAY_COLOURS[NONE]
    if compliance >= 1.0 - 1e-12:
        return DAY_COLOURS[FULL]
    return DAY_COLOURS[PARTIAL] if compliance > 0 else DAY_COLOURS[MISSED]


def study_figure(study: StudyReport, width_in: float = PAGE_WIDTH_IN):
    """Daily compliance of every subject (a row each) and each subject's overall compliance, its bar
    coloured as the legend says ("n/a" where nothing was prescribed)."""
    import numpy as np
    from matplotlib.colors import ListedColormap
    from matplotlib.dates import date2num
    from matplotlib.patches import Patch

    reports = study.subjects
    first = min(r.first for r in reports)
    last = max(r.last for r in reports)
    n_days = (last - first).days + 1
    codes = {NONE: 0, MISSED: 1, PARTIAL: 2, FULL: 3, EXTRA: 4}
    grid = np.full((len(reports), n_days), np.nan)
    for i, r in enumerate(reports):
        for d in r.days:
            grid[i, (d.day - first).days] = codes[d.status]
    rows_h = max(0.9, 0.28 * len(reports) + 0.5)
    fig = _new_figure(width_in, rows_h + 2.6 + 0.4)
    top, bottom = fig.subplots(2, 1, gridspec_kw={"height_ratios": [rows_h, 2.6]})
    colours = ListedColormap([DAY_COLOURS[k] for k in (NONE, MISSED, PARTIAL, FULL, EXTRA)])
    x0 = date2num(dt.datetime.combine(first, dt.time()))
    top.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap=colours, vmin=-0.5, vmax=4.5, interpolation="nearest",
               extent=(x0, x0 + n_days, len(reports), 0))
    top.set_yticks([i + 0.5 for i in range(len(reports))], [r.subject for r in reports], fontsize=7)
    top.xaxis_date()
    date_ticks(top.xaxis, n_days)
    top.tick_params(labelsize=7)
    top.set_title("Each subject's days (each in its own lab time zone)", fontsize=9, loc="left", fontweight="bold")
    top.legend(handles=[Patch(color=DAY_COLOURS[k], label=DAY_LABELS[k]) for k in DAY_COLOURS],
               loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
    names = [r.subject for r in reports]
    values = [100 * r.compliance if r.compliance is not None else 0.0 for r in reports]
    bottom.bar(names, values, color=[study_compliance_colour(r.compliance) for r in reports])
    for i, r in enumerate(reports):
        text = "n/a" if r.compliance is None else f"{100 * r.compliance:.0f} %"
        bottom.text(i, values[i] + 2, text, ha="center", va="bottom", fontsize=7)
    bottom.set_ylim(0, 112)
    bottom.set_ylabel("prescribed bouts\ngiven in spec, %", fontsize=8)
    bottom.tick_params(labelsize=7)
    bottom.set_axisbelow(True)
    bottom.grid(axis="y", color="0.9")
    bottom.set_title("Compliance per subject", fontsize=9, loc="left", fontweight="bold")
    bottom.legend(handles=[Patch(color=DAY_COLOURS[FULL], label="every prescribed bout in spec"),
                           Patch(color=DAY_COLOURS[PARTIAL], label="some"),
                           Patch(color=DAY_COLOURS[MISSED], label="none"),
                           Patch(color=DAY_COLOURS[NONE], label="n/a: nothing prescribed")],
                  loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
    summary = study.summary()
    fig.suptitle(
        f"Study: {len(reports)} subjects, {summary['compliant_bouts']} of {summary['prescribed_bouts']} prescribed "
        f"bouts in spec" + (f" ({100 * summary['compliance']:.0f} %)" if summary["compliance"] is not None else ""),
        fontsize=10, x=0.01, ha="left",
    )
    return fig


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


# -- tables: what the HTML page and the PDF both list -------------------------------------------------


@dataclass(frozen=True)
class Table:
    """A table of plain text cells (escaped by whoever draws it)."""

    title: str
    header: list[str]
    rows: list[list[str]]
    numeric: frozenset[int] = frozenset()
    widths: tuple[float, ...] = ()
    """Relative column widths for the PDF (empty: equal)."""
    empty: str = "None."
    note: str = ""


def _num(value, spec: str) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, spec)


def _text(value) -> str:
    return "-" if value is None or value == "" else str(value)


def _when(report: SubjectReport, s: dict) -> str:
    return f"{_local(report, s):%a %d %b %Y %H:%M}"


def _status(s: dict) -> str:
    if s["status"] == "completed":
        return "completed, in spec" if s["in_spec"] else "completed, OUT OF SPEC"
    return s["status"]


def regimen_table(report: SubjectReport) -> Table:
    rows = [[a.regimen.name, a.regimen.describe(), _text(a.regimen.start),
             _text(None if a.regimen.end is None else a.regimen.end - dt.timedelta(days=1)), a.source,
             f"{a.assigned_utc} by {_text(a.operator)}"] for a in report.plan.assignments]
    return Table("Regimen", ["regimen", "prescribes", "first day", "last day", "source", "assigned (UTC)"], rows,
                 widths=(1.1, 2.6, 0.9, 0.9, 1.6, 1.4),
                 empty="No regimen is assigned: nothing is prescribed, every bout counts as extra.")


def summary_table(report: SubjectReport) -> Table:
    s = report.summary()
    compliance = "-" if s["compliance"] is None else f"{100 * s['compliance']:.1f} %"
    rows = [
        ["prescribed bouts", str(s["prescribed_bouts"])],
        ["bouts given (vibrated the subject)", str(s["delivered_bouts"])],
        ["bouts completed in spec", str(s["in_spec_bouts"])],
        ["prescribed bouts given in spec (compliance)", f"{s['compliant_bouts']} ({compliance})"],
        ["prescribed minutes", _num(s["prescribed_minutes"], ".0f")],
        ["delivered minutes", _num(s["delivered_minutes"], ".1f")],
        ["verified in-spec minutes", _num(s["in_spec_minutes"], ".1f")],
        ["days: all bouts in spec / some / none / extra",
         f"{s['days'][FULL]} / {s['days'][PARTIAL]} / {s['days'][MISSED]} / {s['days'][EXTRA]}"],
        ["overridden regimen rules", str(s["deviations"])],
        ["practice sessions (counted in nothing above)", str(s["practice_sessions"])],
    ]
    if report.human:
        rows += [
            ["highest daily A(8), Wk weighted", f"{_num(s['max_daily_a8_mps2'], '.3f')} m/s²"],
            [f"days above the action value ({ACTION_VALUE_MPS2:g} m/s²)", str(s["days_over_action_value"])],
            [f"days above the limit value ({LIMIT_VALUE_MPS2:g} m/s²)", str(s["days_over_limit_value"])],
        ]
    return Table("Summary", ["", ""], rows, numeric=frozenset({1}), widths=(3.0, 1.4))


SESSION_HEADER = ["start (local)", "session", "platform", "simu- lated", "prescribed", "Hz (meas.)", "g pk (meas.)",
                  "in spec / given min", "status", "reason", "operator"]
SESSION_WIDTHS = (1.2, 1.05, 0.75, 0.45, 1.0, 0.55, 0.55, 0.7, 0.95, 1.65, 0.6)


def _session_row(report: SubjectReport, s: dict) -> list[str]:
    rx = s["prescription"]
    return [
        _when(report, s), s["session_id"], s["platform_id"], "yes" if s["simulated"] else "no",
        f"{rx['frequency_hz']:g} Hz, {rx['peak_g']:g} g pk, {rx['duration_s'] / 60:g} min",
        _num(s["mean_frequency_hz"], ".2f"), _num(s["mean_peak_g"], ".3f"),
        f"{_num(s['in_spec_s'] / 60, '.1f')} / {_num(s['delivered_s'] / 60, '.1f')}",
        _status(s), _text(s["reason"]), _text(s["operator"]),
    ]


def sessions_table(report: SubjectReport) -> Table:
    return Table("Sessions", SESSION_HEADER, [_session_row(report, s) for s in report.sessions],
                 numeric=frozenset({5, 6, 7}), widths=SESSION_WIDTHS, empty="No sessions in this period.",
                 note=f"Every session of the subject in the period, local time ({report.plan.timezone}); a session "
                      "refused at its pre-check is listed but is no bout. Measured values are the means of the "
                      "delivery's windows (peak g of the fundamental).")


def practice_table(report: SubjectReport) -> Table:
    return Table("Practice sessions (not dose)", SESSION_HEADER, [_session_row(report, s) for s in report.practice],
                 numeric=frozenset({5, 6, 7}), widths=SESSION_WIDTHS, empty="No practice sessions in this period.",
                 note="Sessions on a simulated platform logged as practice: they count toward no compliance, "
                      "in-spec minutes, exposure or due.")


def deviations_table(report: SubjectReport) -> Table:
    rows = [[_when(report, d), d["session_id"], _text(d["operator"]), _text(d["deviation"]), _text(d["override_reason"])]
            for d in report.deviations]
    return Table("Overrides and deviations", ["start (local)", "session", "operator", "what the regimen said",
                                              "reason given"], rows, widths=(1.3, 1.1, 0.7, 3.4, 2.0),
                 empty="No regimen rule was overridden.")


def exposure_table(report: SubjectReport) -> Table:
    rows = []
    for d in report.days:
        e = d.exposure
        if e is None:
            continue
        rows.append([
            f"{d.day:%a %d %b %Y}", str(d.delivered), _num(e.weighted_s / 60, ".1f"),
            _num(e.a_w_rms_mps2, ".3f"), _num(e.a8_mps2 if e.weighted_s > 0 else None, ".3f"),
            "LIMIT" if e.a8_mps2 > LIMIT_VALUE_MPS2 else "ACTION" if e.a8_mps2 > ACTION_VALUE_MPS2 else "below",
        ])
    return Table("Vibration exposure (ISO 2631-1 Wk, EU Directive 2002/44/EC)",
                 ["day (local)", "bouts", "weighted min", "a_w RMS m/s²", "A(8) m/s²", "against the action / limit value"],
                 rows, numeric=frozenset({1, 2, 3, 4}), widths=(1.4, 0.6, 0.9, 0.9, 0.9, 1.6),
                 empty="No vibration weighted in this period.",
                 note="Each measured window's fundamental (vertical axis) is weighted with Wk (ISO 8041 filter, "
                      "|Wk| = 0.426 at 30 Hz) and its energy added over the day, pre-check and ramps included: "
                      "A(8) = sqrt(sum(a_w² T) / 8 h). Action value 0.5 m/s², limit value 1.15 m/s². ISO 2631-1 "
                      "covers 0.5-80 Hz only. " + (report.exposure_note + "." if report.exposure_note else ""))


def subject_tables(report: SubjectReport) -> list[Table]:
    tables = [sessions_table(report), practice_table(report), deviations_table(report)]
    if report.human:
        tables.append(exposure_table(report))
    return tables


def verification_lines(check: ChainCheck | None, log: str, generated_utc: str) -> list[str]:
    """What the verification says, line by line (None check: not verified)."""
    if check is None:
        return [f"The dose log {log} was NOT verified for this report (--no-verify)."]
    return [
        f"Dose log verified: {log}",
        f"Hash chain intact: {check.records} records checked at {generated_utc}.",
        f"Chain head: record {check.head_seq}, {check.head_hash}",
        "Keep this head: a later `livctl log verify` that reaches the same head proves no record before it changed.",
    ]


def period_line(report: SubjectReport) -> str:
    zone = report.plan.timezone + (" (assumed: not configured)" if report.timezone_note else "")
    registered = "" if report.registered else " Not a registered subject: nothing is prescribed."
    return (f"{report.first:%a %d %b %Y} to {report.last:%a %d %b %Y}, whole days in {zone}.{registered}")


# -- HTML -----------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 80em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; }
.bad { color: #b22; font-weight: bold; } .ok { color: #2a7; font-weight: bold; }
.small { font-size: 0.85em; color: #555; } code { font-size: 0.9em; }
.sign { margin-top: 3em; } .sign span { display: inline-block; width: 18em; border-top: 1px solid #222;
  margin-right: 2em; padding-top: 0.2em; font-size: 0.85em; }
"""


def _e(value) -> str:
    return html.escape("-" if value is None else str(value))


def _table(header: list[str], rows: list[list[str]], numeric: set[int] | frozenset[int] = frozenset()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _table_html(t: Table, level: int = 2) -> str:
    parts = [f"<h{level}>{_e(t.title)}</h{level}>"]
    if t.note:
        parts.append(f'<p class="small">{_e(t.note)}</p>')
    rows = [[_e(c) for c in row] for row in t.rows]
    parts.append(_table(t.header, rows, t.numeric) if rows else f"<p>{_e(t.empty)}</p>")
    return "\n".join(parts)


def _chain_html(check: ChainCheck | None, log: str, generated_utc: str = "") -> str:
    lines = verification_lines(check, log, generated_utc)
    if check is None:
        return f'<p class="bad">{_e(lines[0])}</p>'
    return (
        f'<p><span class="ok">Dose log verified</span>: {_e(log)}, {check.records} records, hash chain intact '
        f"(checked {_e(generated_utc)}). Chain head: record {check.head_seq}, <code>{_e(check.head_hash)}</code>. "
        "Keep this line: a later <code>livctl log verify</code> that reaches the same head proves no record before "
        "it changed.</p>"
    )


SIGNATURE_FIELDS = ("Reviewed by (name)", "Signature", "Date")


def _signature_html() -> str:
    return '<div class="sign">' + "".join(f"<span>{_e(f)}</span>" for f in SIGNATURE_FIELDS) + "</div>"


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>\n{body}\n</body></html>\n"
    )


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _subject_section(report: SubjectReport, png: bytes, level: int) -> list[str]:
    h = f"h{level}"
    parts = [f'<p class="small">{_e(period_line(report))}</p>']
    if report.timezone_note:
        parts.append(f'<p class="bad">{_e(report.timezone_note)}</p>')
    parts.append(_table_html(regimen_table(report), level))
    t = summary_table(report)
    parts += [f"<{h}>Summary</{h}>", _table(t.header, [[_e(c) for c in r] for r in t.rows], t.numeric)]
    parts += [f"<{h}>Figure</{h}>", _img(png, f"dose report figure of {report.subject}")]
    parts += [_table_html(t, level) for t in subject_tables(report)]
    return parts


def subject_html(report: SubjectReport, png: bytes) -> str:
    parts = [
        f"<h1>Dose report: {_e(report.subject)} ({_e(report.kind)})</h1>",
        f'<p class="small">Generated {_e(report.generated_utc)} by livctl {_e(__version__)}.</p>',
        _chain_html(report.check, report.log, report.generated_utc),
        *_subject_section(report, png, 2),
        "<h2>Log verification and signature</h2>",
        _chain_html(report.check, report.log, report.generated_utc),
        _signature_html(),
    ]
    return _page(f"livctl dose report {report.subject}", "\n".join(parts))


def study_table(study: StudyReport) -> Table:
    s = study.summary()
    rows = []
    for r, rs in zip(study.subjects, s["subjects"]):
        rows.append([
            r.subject, r.kind, ", ".join(a.regimen.name for a in r.plan.assignments) or "-",
            f"{r.first} - {r.last}", str(rs["prescribed_bouts"]), str(rs["delivered_bouts"]),
            str(rs["compliant_bouts"]), "n/a" if rs["compliance"] is None else f"{100 * rs['compliance']:.1f} %",
            _num(rs["in_spec_minutes"], ".0f"), str(rs["deviations"]), str(rs["practice_sessions"]),
            _num(rs["max_daily_a8_mps2"], ".3f") if r.human else "n/a",
        ])
    return Table("Subjects", ["subject", "kind", "regimen", "days", "prescribed", "given", "in spec", "compliance",
                              "in-spec min", "overrides", "practice", "max A(8) m/s²"], rows,
                 numeric=frozenset({4, 5, 6, 7, 8, 9, 10, 11}),
                 widths=(0.8, 0.6, 1.3, 1.5, 0.7, 0.5, 0.55, 0.75, 0.65, 0.6, 0.6, 0.8),
                 note="Compliance: prescribed bouts given in spec (an extra bout does not make up for a missed one); "
                      "n/a where nothing was prescribed. Practice sessions count in nothing. A(8): ISO 2631-1 "
                      "Wk-weighted daily exposure of human subjects (0.5-80 Hz only).")


def study_html(study: StudyReport, png: bytes, subject_pngs: list[bytes] | None = None) -> str:
    s = study.summary()
    compliance = "-" if s["compliance"] is None else f"{100 * s['compliance']:.1f} %"
    parts = [
        "<h1>Study dose report</h1>",
        f'<p class="small">{len(study.subjects)} subjects; generated {_e(study.generated_utc)} by livctl '
        f"{_e(__version__)}.</p>",
        _chain_html(study.check, study.log, study.generated_utc),
        f"<p>Prescribed bouts given in spec: <b>{s['compliant_bouts']} of {s['prescribed_bouts']} ({compliance})</b>.</p>",
        _img(png, "study compliance figure"),
        _table_html(study_table(study)),
    ]
    for report, subject_png in zip(study.subjects, subject_pngs or []):
        parts.append(f"<h2>{_e(report.subject)} ({_e(report.kind)})</h2>")
        parts += _subject_section(report, subject_png, 3)
    parts += ["<h2>Log verification and signature</h2>", _chain_html(study.check, study.log, study.generated_utc),
              _signature_html()]
    return _page("livctl study dose report", "\n".join(parts))
