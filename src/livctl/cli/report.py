"""`livctl report`: compliance and dose reports for subjects or a whole study (figure + HTML)."""

from __future__ import annotations

import argparse
import re
import sys

from livctl.cli.helpformat import HelpFormatter
from livctl.cli.common import add_json_option, add_log_option, check_date_range, date_arg, print_json, verify_progress

EPILOG = """\
Writes, for each subject, report-ID.png (or with --format pdf a multi-page A4 or Letter document,
--paper) and report-ID.html into --out; with --study, report-study.* for all subjects. The PDF and
the HTML page hold the same: the figures, then every session (local time, platform, simulated or
not, prescribed and measured Hz and g, in-spec minutes, status and reason, operator), the practice
sessions apart, overrides and deviations, the Wk exposure, the log's verification and a signature
line. The HTML page is self-contained (figures embedded). The dose log's hash chain is verified
first: a broken log is an error (exit 2). Days are whole days of the regimen's time zone, else the
configured lab time zone (the report says when it had to assume one).

A report shows prescribed against delivered bouts as a calendar (days of the regimen's time zone),
verified in-spec minutes, each session's measured peak g and frequency, and for human subjects the
ISO 2631-1 Wk-weighted exposure with the daily A(8) against the EU Directive 2002/44/EC action value
(0.5 m/s^2) and limit value (1.15 m/s^2). Sessions outside 0.5-80 Hz (90 Hz) get no A(8).

examples:
  livctl report --subject P-017
  livctl report --subject P-017 --subject P-018 --format pdf --out reports/
  livctl report --study --out reports/ --to 2026-05-31
  livctl report --subject P-017 --json        the numbers, no files
  livctl report --study --log postgresql://alice@study.example.org/livctl
                                              every station's subjects, from the study server
                                              (docs/multisite.md), with each station's summary"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="compliance and dose report for subjects or a study (PNG/PDF + HTML)",
        description="Write a compliance and dose report from the dose log: a figure (PNG or PDF) and a "
        "self-contained HTML page per subject, or one for the whole study.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--subject", action="append", metavar="ID", help="a subject (repeatable)")
    who.add_argument("--study", action="store_true", help="every subject in the log, in one report")
    p.add_argument("--out", metavar="DIR", default=".", help="directory for the files (default: here)")
    p.add_argument("--format", choices=("png", "pdf"), default="png",
                   help="png: the figure; pdf: the fileable multi-page report (default png)")
    p.add_argument("--paper", choices=("a4", "letter"), help="PDF paper size (default: the configuration's, else a4)")
    p.add_argument("--from", dest="date_from", type=date_arg, metavar="DATE", help="first day (default: regimen start)")
    p.add_argument("--to", dest="date_to", type=date_arg, metavar="DATE", help="last day (default: today)")
    p.add_argument("--no-verify", action="store_true", help="skip the chain check (the report says so)")
    add_log_option(p)
    add_json_option(p, "the report's numbers (no files are written)")
    p.set_defaults(run=run)


def _file_stem(subject: str) -> str:
    return "report-" + re.sub(r"[^A-Za-z0-9._-]+", "_", subject)


def _pdf():
    from livctl.study import pdf as report_pdf

    return report_pdf


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from livctl.cli.log import open_log
    from livctl.clock import utc_now
    from livctl.errors import UsageError
    from livctl.records.files import write_atomic
    from livctl.cli.common import station
    from livctl.study.report import StudyReport, build_subject_report

    check_date_range(args)
    settings = station()
    paper = settings.given("report_paper", args.paper, "--paper")
    timezone, timezone_note = settings.timezone()
    now = utc_now()
    with open_log(args) as log:
        ids = [s["subject_id"] for s in log.subjects()] if args.study else args.subject
        for subject_id in ids:  # unknown subjects are an error before any work; one with sessions is reported
            if not log.sessions(subjects=[subject_id], limit=1):
                log.subject(subject_id)
        if args.study and not ids:
            raise UsageError(f"no subjects in {log.path}; `livctl subject add` adds them")
        check = None if args.no_verify else log.verified(verify_progress())
        reports = [build_subject_report(log, subject_id, first=args.date_from, last=args.date_to, now=now, check=check,
                                        timezone=timezone, timezone_note=timezone_note)
                   for subject_id in ids]
        path = str(log.path.resolve())
        stations = log.stations() if hasattr(log, "stations") else None  # a study server: each station's summary
    if any(r.timezone_note for r in reports):
        print(f"livctl: {timezone_note}", file=sys.stderr)
    generated = reports[0].generated_utc
    if args.json:
        if args.study:
            summary = StudyReport(reports, check, path, generated).summary()
            print_json(summary if stations is None else dict(summary, stations=stations))
        else:
            print_json([r.summary() for r in reports])
        return 0
    from livctl.study import report as rpt

    out = Path(args.out)
    written = []
    if args.study:
        study = StudyReport(reports, check, path, generated)
        subject_pngs = [rpt.render(rpt.subject_figure(r), "png") for r in reports]
        png = rpt.render(rpt.study_figure(study), "png")
        jobs = [("report-study", png, rpt.study_html(study, png, subject_pngs), lambda: _pdf().study_pdf(study, paper))]
    else:
        jobs = []
        for r in reports:
            png = rpt.render(rpt.subject_figure(r), "png")
            jobs.append((_file_stem(r.subject), png, rpt.subject_html(r, png),
                         (lambda r: lambda: _pdf().subject_pdf(r, paper))(r)))
    for stem, png, page, pdf in jobs:
        figure_path = out / f"{stem}.{args.format}"
        write_atomic(figure_path, png if args.format == "png" else pdf())
        html_path = out / f"{stem}.html"
        write_atomic(html_path, page)
        written += [figure_path, html_path]
    for r in reports:
        compliance = "-" if r.compliance is None else f"{100 * r.compliance:.0f} %"
        print(f"{r.subject}: {r.compliant_bouts} of {r.prescribed_bouts} prescribed bouts in spec ({compliance}), "
              f"{sum(d.in_spec_s for d in r.days) / 60:.0f} verified in-spec minutes, {r.first} - {r.last}")
    if stations is not None:
        from livctl.cli.server import station_table

        print(station_table(stations))
    for p in written:
        print(f"wrote {p}", file=sys.stderr)
    return 0
