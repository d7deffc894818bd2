"""Compliance and dose reports for a subject or a whole study: numbers, a figure, an HTML page.

A subject's report sets the bouts its regimen prescribed against the bouts the dose log holds, day
by day in the regimen's time zone: a calendar (all prescribed bouts in spec / some / none / bouts on
days without any), in-spec minutes against prescribed minutes, each session's measured peak g and
frequency against the prescription's tolerance, and, for human subjects, the ISO 2631-1
Wk-weighted exposure with the daily A(8) against the EU Directive 2002/44/EC action and limit
values (`livctl.exposure`). The numbers come from a log whose hash chain was verified, and the page
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
from livctl.doselog import ChainCheck
from livctl.errors import UsageError
from livctl.exposure import ACTION_VALUE_MPS2, HEALTH_RANGE_HZ, LIMIT_VALUE_MPS2, Exposure, windows_exposure
from livctl.regimen import MAX_DAYS
from livctl.schedule import Bout, Plan, parse_utc

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
    subject: str
    kind: str
    plan: Plan
    first: dt.date
    last: dt.date
    days: list[Day]
    sessions: list[dict]
    """Every session of the subject in the range (bouts and sessions refused at their pre-check)."""
    exposures: dict[str, Exposure]
    """Per session id, for human subjects."""
    check: ChainCheck | None
    log: str
    generated_utc: str

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
) -> SubjectReport:
    """A subject's report from the log. The range defaults to the regimen's start up to today (or
    its last day, when it has ended); days are the regimen time zone's."""
    plan = Plan.from_log(log, subject_id)
    now = now or dt.datetime.now(dt.timezone.utc)
    today = plan.local_day(now)
    sessions = log.sessions(subjects=[subject_id], oldest_first=True)
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
    )


@dataclass
class StudyReport:
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


def _new_figure(width_in: float, height_in: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def render(fig, fmt: str) -> bytes:
    """The figure as PNG (100 dpi) or PDF bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=100, metadata=_metadata(fmt))
    return buffer.getvalue()


def _metadata(fmt: str) -> dict:
    return {"Creator": f"livctl {__version__}"} if fmt in ("png", "pdf") else {}


def _local(report: SubjectReport, s: dict) -> dt.datetime:
    return parse_utc(s["started_utc"]).astimezone(report.plan.zone).replace(tzinfo=None)


def subject_figure(report: SubjectReport):
    """Calendar, daily minutes, measured peak g and frequency per session, and (people) daily A(8)."""
    from matplotlib.patches import Patch, Rectangle

    rows = 5 if report.human else 4
    fig = _new_figure(11, 3.2 + 2.3 * (rows - 1))
    axes = fig.subplots(rows, 1, gridspec_kw={"height_ratios": [1.5] + [1] * (rows - 1)})
    fig.suptitle(
        f"{report.subject} ({report.kind}): {report.first:%d %b %Y} - {report.last:%d %b %Y}, "
        f"{report.compliant_bouts} of {report.prescribed_bouts} prescribed bouts in spec"
        + (f" ({100 * report.compliance:.0f} %)" if report.compliance is not None else ""),
        fontsize=12,
    )

    # calendar: one column per week (Monday first), one row per weekday
    ax = axes[0]
    monday0 = report.first - dt.timedelta(days=report.first.weekday())
    weeks = (report.last - monday0).days // 7 + 1
    annotate = weeks <= 26
    for d in report.days:
        week, weekday = (d.day - monday0).days // 7, d.day.weekday()
        ax.add_patch(Rectangle((week, weekday), 0.92, 0.92, facecolor=DAY_COLOURS[d.status], edgecolor="none"))
        if annotate and (d.prescribed or d.delivered):
            ax.text(week + 0.46, weekday + 0.5, f"{d.delivered}/{d.prescribed}", ha="center", va="center",
                    fontsize=7, color="white" if d.status != NONE else "black")
    ax.set_xlim(-0.1, max(weeks, 26))  # cells no wider than a half-year calendar's
    ax.set_ylim(7, -0.1)
    ax.set_aspect("equal", anchor="W")
    ax.set_yticks([i + 0.46 for i in range(7)], ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"], fontsize=8)
    step = max(2, math.ceil(weeks / 13))
    ax.set_xticks([w + 0.46 for w in range(0, weeks, step)],
                  [f"{monday0 + dt.timedelta(weeks=w):%d %b}" for w in range(0, weeks, step)], fontsize=8)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(f"bouts given / prescribed per day ({report.plan.timezone})", fontsize=10, loc="left")
    ax.legend(handles=[Patch(color=DAY_COLOURS[k], label=DAY_LABELS[k]) for k in DAY_COLOURS],
              loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)

    # minutes per day
    ax = axes[1]
    dates = [d.day for d in report.days]
    in_spec = [d.in_spec_s / 60 for d in report.days]
    other = [(d.delivered_s - d.in_spec_s) / 60 for d in report.days]
    ax.bar(dates, in_spec, width=0.8, color=DAY_COLOURS[FULL], label="delivered in spec")
    ax.bar(dates, other, width=0.8, bottom=in_spec, color=DAY_COLOURS[PARTIAL], label="delivered out of spec")
    ax.step(dates, [d.prescribed_minutes for d in report.days], where="mid", color="black", linewidth=1,
            label="prescribed")
    top = max([d.prescribed_minutes for d in report.days] + [d.delivered_s / 60 for d in report.days] + [1.0])
    ax.set_ylim(0, 1.15 * top)  # the prescribed line stays clear of the frame
    ax.set_ylabel("minutes per day")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.set_title("verified in-spec minutes against prescribed minutes", fontsize=10, loc="left")

    measured = [s for s in report.sessions if s["mean_peak_g"] is not None]
    times = [_local(report, s) for s in measured]
    colours = [DAY_COLOURS[FULL] if s["in_spec"] else DAY_COLOURS[MISSED] for s in measured]
    for ax, key, tol_key, unit, title in (
        (axes[2], "mean_peak_g", "accel_fraction", "g peak", "measured peak acceleration per session"),
        (axes[3], "mean_frequency_hz", "frequency_hz", "Hz", "measured frequency per session"),
    ):
        prescribed_key = "peak_g" if key == "mean_peak_g" else "frequency_hz"
        rx = [s["prescription"][prescribed_key] for s in measured]
        tol = [s["prescription"]["tolerance"][tol_key] * (r if key == "mean_peak_g" else 1) for s, r in zip(measured, rx)]
        if measured:
            ax.fill_between(times, [r - t for r, t in zip(rx, tol)], [r + t for r, t in zip(rx, tol)], step="mid",
                            color="0.9", label="tolerance")
            ax.step(times, rx, where="mid", color="black", linewidth=1, label="prescribed")
            ax.scatter(times, [s[key] for s in measured], s=12, c=colours, zorder=3, label="measured (red: out of spec)")
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
        else:
            ax.text(0.5, 0.5, "no measured sessions", transform=ax.transAxes, ha="center", va="center")
        ax.set_ylabel(unit)
        ax.set_title(title, fontsize=10, loc="left")

    if report.human:
        ax = axes[4]
        weighted = [d for d in report.days if d.exposure is not None and d.exposure.weighted_s > 0]
        if weighted:
            ax.bar([d.day for d in weighted], [d.exposure.a8_mps2 for d in weighted], width=0.8, color="#4a78c2",
                   label="daily A(8), Wk weighted")
            ax.axhline(ACTION_VALUE_MPS2, color=DAY_COLOURS[PARTIAL], linestyle="--",
                       label=f"action value {ACTION_VALUE_MPS2:g} m/s$^2$")
            ax.axhline(LIMIT_VALUE_MPS2, color=DAY_COLOURS[MISSED], linestyle="--",
                       label=f"limit value {LIMIT_VALUE_MPS2:g} m/s$^2$")
            ax.set_ylim(0, max(1.3, 1.1 * max(d.exposure.a8_mps2 for d in weighted)))
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
        note = report.exposure_note
        if note:
            ax.text(0.5, 0.5 if not weighted else 0.92, _wrap(note, 110), transform=ax.transAxes, ha="center",
                    va="center" if not weighted else "top", fontsize=8)
        ax.set_ylabel("A(8), m/s$^2$")
        ax.set_title("daily vibration exposure, ISO 2631-1 Wk (z), against EU Directive 2002/44/EC",
                     fontsize=10, loc="left")
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    for ax in axes[1:]:
        locator = AutoDateLocator(maxticks=12)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
        ax.set_xlim(dt.datetime.combine(report.first, dt.time()) - dt.timedelta(hours=12),
                    dt.datetime.combine(report.last, dt.time()) + dt.timedelta(hours=12))
        ax.tick_params(labelsize=8)
        ax.grid(axis="y", color="0.9")
    return fig


def study_figure(study: StudyReport):
    """Daily compliance of every subject (a row each) and each subject's overall compliance."""
    import numpy as np
    from matplotlib.colors import ListedColormap

    reports = study.subjects
    first = min(r.first for r in reports)
    last = max(r.last for r in reports)
    n_days = (last - first).days + 1
    codes = {NONE: 0, MISSED: 1, PARTIAL: 2, FULL: 3, EXTRA: 4}
    grid = np.full((len(reports), n_days), np.nan)
    for i, r in enumerate(reports):
        for d in r.days:
            grid[i, (d.day - first).days] = codes[d.status]
    fig = _new_figure(11, 2.5 + 0.3 * len(reports) + 2.5)
    top, bottom = fig.subplots(2, 1, gridspec_kw={"height_ratios": [max(1.0, 0.3 * len(reports)), 2.0]})
    colours = ListedColormap([DAY_COLOURS[k] for k in (NONE, MISSED, PARTIAL, FULL, EXTRA)])
    top.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap=colours, vmin=-0.5, vmax=4.5, interpolation="nearest",
               extent=(0, n_days, len(reports), 0))
    top.set_yticks([i + 0.5 for i in range(len(reports))], [r.subject for r in reports], fontsize=8)
    step = max(1, n_days // 12)
    top.set_xticks([i + 0.5 for i in range(0, n_days, step)],
                   [f"{first + dt.timedelta(days=i):%d %b}" for i in range(0, n_days, step)], fontsize=8)
    top.set_title("each subject's days (local time zones)", fontsize=10, loc="left")
    from matplotlib.patches import Patch

    top.legend(handles=[Patch(color=DAY_COLOURS[k], label=DAY_LABELS[k]) for k in DAY_COLOURS],
               loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
    values = [100 * (r.compliance or 0.0) for r in reports]
    bottom.bar([r.subject for r in reports], values, color=DAY_COLOURS[FULL])
    bottom.set_ylim(0, 105)
    bottom.set_ylabel("prescribed bouts given in spec, %")
    bottom.tick_params(axis="x", labelrotation=45, labelsize=8)
    bottom.grid(axis="y", color="0.9")
    summary = study.summary()
    fig.suptitle(
        f"study: {len(reports)} subjects, {summary['compliant_bouts']} of {summary['prescribed_bouts']} prescribed "
        f"bouts in spec" + (f" ({100 * summary['compliance']:.0f} %)" if summary["compliance"] is not None else ""),
        fontsize=12,
    )
    return fig


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


# -- HTML -----------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; }
.bad { color: #b22; font-weight: bold; } .ok { color: #2a7; font-weight: bold; }
.small { font-size: 0.85em; color: #555; } code { font-size: 0.9em; }
"""


def _e(value) -> str:
    return html.escape("-" if value is None else str(value))


def _num(value, spec: str) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, spec)


def _table(header: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _chain_html(check: ChainCheck | None, log: str) -> str:
    if check is None:
        return f'<p class="bad">The dose log {_e(log)} was NOT verified for this report (--no-verify).</p>'
    return (
        f'<p><span class="ok">Dose log verified</span>: {_e(log)}, {check.records} records, hash chain intact. '
        f"Chain head: record {check.head_seq}, <code>{_e(check.head_hash)}</code>. Keep this line: a later "
        "<code>livctl log verify</code> that reaches the same head proves no record before it changed.</p>"
    )


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>\n{body}\n</body></html>\n"
    )


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def subject_html(report: SubjectReport, png: bytes) -> str:
    s = report.summary()
    parts = [
        f"<h1>Dose report: {_e(report.subject)} ({_e(report.kind)})</h1>",
        f'<p class="small">{report.first:%d %b %Y} to {report.last:%d %b %Y}, days in {_e(report.plan.timezone)}; '
        f"generated {_e(report.generated_utc)} by livctl {_e(__version__)}.</p>",
        _chain_html(report.check, report.log),
        "<h2>Regimen</h2>",
    ]
    if report.plan.assignments:
        parts.append(_table(
            ["regimen", "prescribes", "from", "until (exclusive)", "source", "assigned"],
            [[_e(a.regimen.name), _e(a.regimen.describe()), _e(a.regimen.start), _e(a.regimen.end), _e(a.source),
              f"{_e(a.assigned_utc)} by {_e(a.operator)}"] for a in report.plan.assignments],
        ))
    else:
        parts.append("<p>No regimen is assigned: nothing is prescribed, every bout is counted as extra.</p>")
    compliance = "-" if s["compliance"] is None else f"{100 * s['compliance']:.1f} %"
    rows = [
        ["prescribed bouts", str(s["prescribed_bouts"])],
        ["bouts given (vibrated the subject)", str(s["delivered_bouts"])],
        ["bouts completed in spec", str(s["in_spec_bouts"])],
        ["prescribed bouts given in spec (compliance)", f"{s['compliant_bouts']} ({compliance})"],
        ["prescribed minutes", _num(s["prescribed_minutes"], ".0f")],
        ["delivered minutes", _num(s["delivered_minutes"], ".1f")],
        ["verified in-spec minutes", _num(s["in_spec_minutes"], ".1f")],
        ["days: all bouts / some / none / extra", f"{s['days'][FULL]} / {s['days'][PARTIAL]} / {s['days'][MISSED]} / "
                                                  f"{s['days'][EXTRA]}"],
        ["overridden regimen rules", str(s["deviations"])],
    ]
    if report.human:
        rows += [
            ["highest daily A(8), Wk weighted", f"{_num(s['max_daily_a8_mps2'], '.3f')} m/s&sup2;"],
            [f"days above the action value ({ACTION_VALUE_MPS2:g} m/s&sup2;)", str(s["days_over_action_value"])],
            [f"days above the limit value ({LIMIT_VALUE_MPS2:g} m/s&sup2;)", str(s["days_over_limit_value"])],
        ]
    parts += ["<h2>Summary</h2>", _table(["", ""], rows, numeric={1}), "<h2>Figure</h2>", _img(png, "dose report figure")]
    if report.human:
        parts.append("<h2>Vibration exposure (ISO 2631-1, EU Directive 2002/44/EC)</h2>")
        parts.append(
            "<p>Each measured window's fundamental (vertical axis) is weighted with Wk (ISO 8041 filter, |Wk| = "
            "0.426 at 30 Hz) and its energy added over the day, pre-check and ramps included: "
            "A(8) = sqrt(&Sigma; a<sub>w</sub>&sup2; T / 8 h). Action value 0.5 m/s&sup2;, limit value 1.15 m/s&sup2;.</p>"
        )
        if report.exposure_note:
            parts.append(f"<p><b>{_e(report.exposure_note)}.</b></p>")
    parts.append("<h2>Sessions</h2>")
    session_rows = []
    for sess in report.sessions:
        exposure = report.exposures.get(sess["session_id"])
        rx = sess["prescription"]
        row = [
            _e(f"{_local(report, sess):%Y-%m-%d %H:%M}"), _e(sess["session_id"]), _e(sess["platform_id"]),
            _e(sess["operator"]), _e(sess["status"] + ("" if sess["in_spec"] or sess["status"] != "completed" else ", out of spec")),
            f"{rx['frequency_hz']:g} Hz {rx['peak_g']:g} g", _num(sess["delivered_s"] / 60, ".1f"),
            _num(sess["in_spec_s"] / 60, ".1f"), _num(sess["mean_frequency_hz"], ".2f"), _num(sess["mean_peak_g"], ".3f"),
        ]
        if report.human:
            row.append(_num(None if exposure is None else exposure.a_w_rms_mps2, ".3f"))
        row.append(_e(sess["calibration_id"]))
        session_rows.append(row)
    header = ["start (local)", "session", "platform", "operator", "status", "prescribed", "min", "in-spec min",
              "Hz", "g peak"]
    if report.human:
        header.append("a_w RMS m/s²")
    header.append("calibration")
    parts.append(_table(header, session_rows, numeric={6, 7, 8, 9, 10}) if session_rows else "<p>No sessions.</p>")
    if report.deviations:
        parts.append("<h2>Overridden regimen rules</h2>")
        parts.append(_table(
            ["start (local)", "session", "operator", "what the regimen said", "reason given"],
            [[_e(f"{_local(report, d):%Y-%m-%d %H:%M}"), _e(d["session_id"]), _e(d["operator"]), _e(d["deviation"]),
              _e(d["override_reason"])] for d in report.deviations],
        ))
    return _page(f"livctl dose report {report.subject}", "\n".join(parts))


def study_html(study: StudyReport, png: bytes) -> str:
    s = study.summary()
    compliance = "-" if s["compliance"] is None else f"{100 * s['compliance']:.1f} %"
    rows = []
    for r, rs in zip(study.subjects, s["subjects"]):
        rows.append([
            _e(r.subject), _e(r.kind), _e(", ".join(a.regimen.name for a in r.plan.assignments) or "-"),
            _e(f"{r.first} - {r.last}"), str(rs["prescribed_bouts"]), str(rs["delivered_bouts"]),
            str(rs["compliant_bouts"]), "-" if rs["compliance"] is None else f"{100 * rs['compliance']:.1f} %",
            _num(rs["in_spec_minutes"], ".0f"), str(rs["deviations"]),
            _num(rs["max_daily_a8_mps2"], ".3f") if r.human else "n/a",
        ])
    parts = [
        "<h1>Study dose report</h1>",
        f'<p class="small">{len(study.subjects)} subjects; generated {_e(study.generated_utc)} by livctl '
        f"{_e(__version__)}.</p>",
        _chain_html(study.check, study.log),
        f"<p>Prescribed bouts given in spec: <b>{s['compliant_bouts']} of {s['prescribed_bouts']} ({compliance})</b>.</p>",
        _img(png, "study compliance figure"),
        "<h2>Subjects</h2>",
        _table(["subject", "kind", "regimen", "days", "prescribed", "given", "in spec", "compliance",
                "in-spec min", "overrides", "max A(8) m/s²"], rows, numeric={4, 5, 6, 7, 8, 9, 10}),
        '<p class="small">A(8): ISO 2631-1 Wk-weighted daily exposure of human subjects (0.5-80 Hz only); '
        "EU Directive 2002/44/EC action value 0.5 m/s&sup2;, limit value 1.15 m/s&sup2;. "
        "<code>livctl report --subject ID</code> gives each subject's calendar and sessions.</p>",
    ]
    return _page("livctl study dose report", "\n".join(parts))

