"""The fileable PDF report: A4 or Letter pages a coordinator can sign and file.

reportlab lays out the pages (imported only when a PDF is written): a title block, the summary,
the figures (drawn by livctl.study.report with matplotlib, embedded at 200 dpi), then tables of every
session, the practice sessions, the overrides and deviations and the Wk exposure, which continue
across pages with their header rows repeated, and at the end the dose log's verification and a
signature line. Every page has a footer with the report, the time it was made, the log's chain head
and "page N of M".
"""

from __future__ import annotations

import io
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, letter
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import inch
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen import canvas as pdf_canvas
from reportlab.platypus import (
    CondPageBreak,
    Image,
    KeepTogether,
    LongTable,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table as PdfTable,
    TableStyle,
)

from livctl import __version__
from livctl.study import report as rpt

__all__ = ["subject_pdf", "study_pdf"]

PAPERS = {"a4": A4, "letter": letter}
MARGIN_IN = 0.6
FIGURE_DPI = 200

_styles = getSampleStyleSheet()
TITLE = ParagraphStyle("title", parent=_styles["Title"], fontSize=16, leading=19, alignment=0, spaceAfter=4)
H2 = ParagraphStyle("h2", parent=_styles["Heading2"], fontSize=11.5, leading=14, spaceBefore=10, spaceAfter=4)
BODY = ParagraphStyle("body", parent=_styles["BodyText"], fontSize=8.5, leading=10.5)
SMALL = ParagraphStyle("small", parent=BODY, fontSize=7.5, leading=9, textColor=colors.HexColor("#555555"))
BAD = ParagraphStyle("bad", parent=BODY, textColor=colors.HexColor("#b22222"), fontName="Helvetica-Bold")
CELL = ParagraphStyle("cell", parent=BODY, fontSize=6.8, leading=8)
CELL_NUM = ParagraphStyle("cellnum", parent=CELL, alignment=2)
HEAD = ParagraphStyle("head", parent=CELL, fontName="Helvetica-Bold")


def _p(text: str, style=BODY) -> Paragraph:
    return Paragraph(escape(text), style)


def _image(png: bytes, width_pt: float) -> Image:
    w, h = ImageReader(io.BytesIO(png)).getSize()
    return Image(io.BytesIO(png), width=width_pt, height=width_pt * h / w)


def _table(t: rpt.Table, width_pt: float) -> list:
    out = [_p(t.title, H2)]
    if t.note:
        out.append(_p(t.note, SMALL))
        out.append(Spacer(1, 3))
    if not t.rows:
        out.append(_p(t.empty))
        return out
    weights = t.widths or (1.0,) * len(t.header)
    widths = [width_pt * w / sum(weights) for w in weights]
    data = [[Paragraph(escape(h), HEAD) for h in t.header]]
    for row in t.rows:
        data.append([Paragraph(escape(c), CELL_NUM if i in t.numeric else CELL) for i, c in enumerate(row)])
    table = LongTable(data, colWidths=widths, repeatRows=1)
    style = [
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LINEBELOW", (0, 0), (-1, 0), 0.8, colors.black),
        ("LINEBELOW", (0, 1), (-1, -1), 0.25, colors.HexColor("#cccccc")),
        ("LEFTPADDING", (0, 0), (-1, -1), 2),
        ("RIGHTPADDING", (0, 0), (-1, -1), 2),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
    ]
    for i, row in enumerate(t.rows, start=1):  # what must catch the eye: simulated, out of spec, over a value
        if any(c in ("completed, OUT OF SPEC", "ACTION", "LIMIT", "aborted", "interrupted") for c in row) or (
            t.header[3:4] == ["simu- lated"] and row[3] == "yes"
        ):
            style.append(("BACKGROUND", (0, i), (-1, i), colors.HexColor("#fdf1e0")))
    table.setStyle(TableStyle(style))
    out.append(table)
    return out


def _summary(t: rpt.Table, width_pt: float) -> PdfTable:
    data = [[_p(a), Paragraph(escape(b), ParagraphStyle("n", parent=BODY, alignment=2))] for a, b in t.rows]
    table = PdfTable(data, colWidths=[width_pt * 0.45, width_pt * 0.15], hAlign="LEFT")
    table.setStyle(TableStyle([("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#cccccc")),
                               ("TOPPADDING", (0, 0), (-1, -1), 1), ("BOTTOMPADDING", (0, 0), (-1, -1), 1)]))
    return table


def _verification(check, log: str, generated_utc: str) -> list:
    lines = rpt.verification_lines(check, log, generated_utc)
    if check is None:
        return [_p(lines[0], BAD)]
    return [_p(lines[0]), _p(lines[1]), Paragraph(f"Chain head: record {check.head_seq}, <font face='Courier' "
                                                  f"size='7.5'>{escape(check.head_hash)}</font>", BODY),
            _p(lines[3], SMALL)]


def _signature(width_pt: float) -> PdfTable:
    cells = [[""] * len(rpt.SIGNATURE_FIELDS), [_p(f, SMALL) for f in rpt.SIGNATURE_FIELDS]]
    table = PdfTable(cells, colWidths=[width_pt / 3 - 8] * 3, rowHeights=[34, 14], hAlign="LEFT")
    table.setStyle(TableStyle([("LINEBELOW", (0, 0), (-1, 0), 0.8, colors.black),
                               ("LEFTPADDING", (0, 0), (-1, -1), 0), ("RIGHTPADDING", (0, 0), (-1, -1), 12)]))
    return table


def _subject_story(report: rpt.SubjectReport, width_pt: float, *, heading: str | None = None) -> list:
    story: list = []
    if heading:
        story.append(_p(heading, TITLE))
    story.append(_p(rpt.period_line(report), SMALL))
    if report.timezone_note:
        story.append(_p(report.timezone_note, BAD))
    regimen = rpt.regimen_table(report)
    story += _table(regimen, width_pt)
    story += [_p("Summary", H2), _summary(rpt.summary_table(report), width_pt)]
    width_in = width_pt / inch
    calendar = rpt.render(rpt.calendar_figure(report, width_in), "png", FIGURE_DPI)
    story += [Spacer(1, 8), KeepTogether([_image(calendar, width_pt)])]
    panels = rpt.panels_of(report)
    for group in (panels[:1], panels[1:3], panels[3:]):
        if group:
            png = rpt.render(rpt.charts_figure(report, group, width_in), "png", FIGURE_DPI)
            story += [Spacer(1, 6), KeepTogether([_image(png, width_pt)])]
    for t in rpt.subject_tables(report):
        story += [CondPageBreak(1.2 * inch), *_table(t, width_pt)]
    return story


class _Document:
    """A reportlab document with a footer and "page N of M" on every page."""

    def __init__(self, paper: str, title: str, footer: str):
        self.buffer = io.BytesIO()
        self.pagesize = PAPERS[paper]
        self.doc = SimpleDocTemplate(self.buffer, pagesize=self.pagesize, leftMargin=MARGIN_IN * inch,
                                     rightMargin=MARGIN_IN * inch, topMargin=MARGIN_IN * inch,
                                     bottomMargin=0.8 * inch, title=title, author=f"livctl {__version__}",
                                     creator=f"livctl {__version__}")
        self.footer = footer

    @property
    def width_pt(self) -> float:
        return self.doc.width

    def build(self, story: list) -> bytes:
        footer, pagesize = self.footer, self.pagesize

        class NumberedCanvas(pdf_canvas.Canvas):
            """A canvas that holds its pages until the end, to print page N of M on each."""

            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self._pages: list[dict] = []

            def showPage(self):  # noqa: N802 (reportlab's name)
                self._pages.append(dict(self.__dict__))
                self._startPage()

            def save(self):
                total = len(self._pages)
                for state in self._pages:
                    self.__dict__.update(state)
                    self.setFont("Helvetica", 7)
                    self.setFillColor(colors.HexColor("#555555"))
                    self.drawString(MARGIN_IN * inch, 0.45 * inch, footer)
                    self.drawRightString(pagesize[0] - MARGIN_IN * inch, 0.45 * inch,
                                         f"page {self._pageNumber} of {total}")
                    super().showPage()
                super().save()

        self.doc.build(story, canvasmaker=NumberedCanvas)
        return self.buffer.getvalue()


def _footer(what: str, generated_utc: str, check) -> str:
    head = "log NOT verified" if check is None else f"chain head {check.head_seq} {check.head_hash[:16]}..."
    return f"livctl {__version__} dose report, {what}, generated {generated_utc}, {head}"


def subject_pdf(report: rpt.SubjectReport, paper: str = "a4") -> bytes:
    doc = _Document(paper, f"livctl dose report {report.subject}",
                    _footer(report.subject, report.generated_utc, report.check))
    width = doc.width_pt
    story = [
        _p(f"Dose report: {report.subject} ({report.kind})", TITLE),
        _p(rpt._headline(report), BODY),
        _p(f"Generated {report.generated_utc} by livctl {__version__} from {report.log}.", SMALL),
        *_subject_story(report, width),
        CondPageBreak(2.2 * inch),
        _p("Dose log verification", H2), *_verification(report.check, report.log, report.generated_utc),
        Spacer(1, 14), _signature(width),
    ]
    return doc.build(story)


def study_pdf(study: rpt.StudyReport, paper: str = "a4") -> bytes:
    doc = _Document(paper, "livctl study dose report", _footer("study", study.generated_utc, study.check))
    width = doc.width_pt
    s = study.summary()
    compliance = "-" if s["compliance"] is None else f"{100 * s['compliance']:.1f} %"
    figure = rpt.render(rpt.study_figure(study, width / inch), "png", FIGURE_DPI)
    story = [
        _p("Study dose report", TITLE),
        _p(f"{len(study.subjects)} subjects; prescribed bouts given in spec: {s['compliant_bouts']} of "
           f"{s['prescribed_bouts']} ({compliance}).", BODY),
        _p(f"Generated {study.generated_utc} by livctl {__version__} from {study.log}.", SMALL),
        Spacer(1, 6), _image(figure, width),
        *_table(rpt.study_table(study), width),
        Spacer(1, 8), _p("Dose log verification", H2), *_verification(study.check, study.log, study.generated_utc),
    ]
    for report in study.subjects:
        story += [PageBreak(), *_subject_story(report, width, heading=f"{report.subject} ({report.kind})")]
    story += [CondPageBreak(2.2 * inch), _p("Dose log verification", H2),
              *_verification(study.check, study.log, study.generated_utc), Spacer(1, 14), _signature(width)]
    return doc.build(story)
