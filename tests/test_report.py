"""Compliance reports: the numbers, the figure files, the self-contained HTML page, the study report."""

import json
import math
import re
import shutil
import struct

import pytest

from livctl.dsp.exposure import wk_gain
from studylog import build_study_file


@pytest.fixture(scope="module")
def built_study(tmp_path_factory):
    """Built once; each test gets its own copy of the log."""
    return build_study_file(tmp_path_factory.mktemp("study"))


@pytest.fixture
def study(built_study, tmp_path):
    source, ids = built_study
    path = tmp_path / "doses.sqlite"
    shutil.copyfile(source, path)
    return path, ids


def _report(cli, log_path, *args):
    result = cli("report", *args, "--log", str(log_path))
    assert result.code == 0, result
    return result


def test_subject_numbers(cli, study):
    log_path, ids = study
    (s,) = json.loads(_report(cli, log_path, "--subject", "P-1", "--to", "2026-03-10", "--json").out)
    assert (s["from"], s["to"], s["timezone"]) == ("2026-03-02", "2026-03-10", "Europe/Berlin")
    assert s["prescribed_bouts"] == 18               # 9 days x 2
    assert s["delivered_bouts"] == 15                # the refused session is not a bout
    assert s["in_spec_bouts"] == 13
    assert s["compliant_bouts"] == 12                # the extra bout on the 6th does not make up for others
    assert s["compliance"] == pytest.approx(12 / 18)
    assert s["prescribed_minutes"] == 180
    assert s["in_spec_minutes"] == pytest.approx(130)
    assert s["delivered_minutes"] == pytest.approx(140 + 3)
    assert s["days"] == {"full": 5, "partial": 3, "missed": 1, "extra": 0, "none": 0}
    assert s["deviations"] == 1
    # daily A(8): Wk-weighted 0.4 g peak at 30 Hz; three 10-minute bouts on 6 March is the most
    a_w = wk_gain(30.0) * 0.4 * 9.80665 / math.sqrt(2)
    assert s["max_daily_a8_mps2"] == pytest.approx(a_w * math.sqrt(1800 / 28800), rel=1e-9)
    assert s["days_over_action_value"] == 0 and s["exposure_note"] is None
    assert s["chain"]["ok"] is True


def test_subject_files(cli, study, tmp_path):
    log_path, ids = study
    out = tmp_path / "reports"
    result = _report(cli, log_path, "--subject", "P-1", "--to", "2026-03-10", "--out", str(out))
    assert "P-1: 12 of 18 prescribed bouts in spec (67 %)" in result.out
    png = (out / "report-P-1.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert width >= 700 and height > width  # the text width of a page at 100 dpi, portrait
    page = (out / "report-P-1.html").read_text()
    # self-contained: the figure is inside, nothing is fetched
    assert re.findall(r'src="([^"]{0,22})', page) == ["data:image/png;base64,"]
    assert "http://" not in page and "https://" not in page and "<link" not in page and "<script" not in page
    head = json.loads(cli("log", "verify", "--log", str(log_path), "--json").out)["head_hash"]
    assert head in page and "Dose log verified" in page
    assert ids["override"] in page and "make-up for a missed bout" in page
    assert "needs 60 min of rest" in page and "already 2 of 2 bouts" in page
    assert ids["refused"] in page  # listed, though it is no bout
    assert "A(8)" in page and "Action value 0.5 m/s²" in page
    assert sorted(p.name for p in out.iterdir()) == ["report-P-1.html", "report-P-1.png"]


def test_pdf_figure(cli, study, tmp_path):
    log_path, _ = study
    _report(cli, log_path, "--subject", "M-1", "--format", "pdf", "--out", str(tmp_path), "--to", "2026-03-06")
    assert (tmp_path / "report-M-1.pdf").read_bytes()[:5] == b"%PDF-"
    page = (tmp_path / "report-M-1.html").read_text()
    assert "data:image/png;base64," in page and "A(8)" not in page  # no exposure for an animal


def test_human_sessions_at_90_hz_get_no_a8_and_say_why(cli, study):
    log_path, _ = study
    (s,) = json.loads(_report(cli, log_path, "--subject", "H-9", "--to", "2026-03-04", "--json").out)
    assert s["max_daily_a8_mps2"] is None
    assert "0.5-80 Hz only" in s["exposure_note"] and "no weighted exposure or A(8)" in s["exposure_note"]


def test_study_report(cli, study, tmp_path):
    log_path, _ = study
    summary = json.loads(_report(cli, log_path, "--study", "--to", "2026-03-10", "--json").out)
    assert [s["subject"] for s in summary["subjects"]] == ["P-1", "M-1", "H-9"]
    m1 = summary["subjects"][1]
    assert m1["prescribed_bouts"] == 7 and m1["compliant_bouts"] == 2  # Mon-Fri, 2-10 March
    assert summary["prescribed_bouts"] == 18 + 7 + 9
    result = _report(cli, log_path, "--study", "--to", "2026-03-10", "--out", str(tmp_path))
    assert result.out.count("prescribed bouts in spec") == 3
    assert (tmp_path / "report-study.png").read_bytes()[:4] == b"\x89PNG"
    page = (tmp_path / "report-study.html").read_text()
    assert "Study dose report" in page and "P-1" in page and "M-1" in page and "n/a" in page


def test_unverified_reports_say_so(cli, study, tmp_path):
    log_path, _ = study
    _report(cli, log_path, "--subject", "M-1", "--no-verify", "--out", str(tmp_path), "--to", "2026-03-03")
    assert "was NOT verified" in (tmp_path / "report-M-1.html").read_text()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--subject", "P-2"], "no subject 'P-2'"),
        (["--subject", "P-1", "--from", "2026-03-05", "--to", "2026-03-01"], "is after --to"),
        (["--subject", "P-1", "--format", "svg"], "invalid choice"),
        ([], "one of the arguments --subject --study is required"),
    ],
)
def test_bad_report_requests(cli, study, tmp_path, args, fragment):
    log_path, _ = study
    result = cli("report", *args, "--out", str(tmp_path / "r"), "--log", str(log_path))
    lines = [line for line in result.err.splitlines() if line.strip() and not line.startswith("usage:")]
    assert result.code == 2 and len(lines) == 1 and fragment in lines[0], result
    assert not (tmp_path / "r").exists()
