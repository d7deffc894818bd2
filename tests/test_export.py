"""`livctl log export`: CSV and JSON, per session or per window, with filters."""

import csv
import io
import json

import pytest

from studylog import build_study_file


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return build_study_file(tmp_path_factory.mktemp("study"))


def _export(cli, path, *args):
    result = cli("log", "export", *args, "--log", str(path))
    assert result.code == 0, result
    return result.out


def _rows(text):
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_one_row_per_session(cli, study):
    path, ids = study
    rows = _rows(_export(cli, path, "--csv"))
    assert len(rows) == 16 + 2 + 1
    assert [r["started_utc"] for r in rows] == sorted(r["started_utc"] for r in rows)  # oldest first
    first = rows[0]
    assert first["subject"] == "P-1" and first["status"] == "completed" and first["in_spec"] == "true"
    assert first["prescribed_frequency_hz"] == "30.0" and first["prescribed_peak_g"] == "0.4"
    assert first["operator"] == "ana" and first["calibration_id"] == "cal-1" and first["livctl_version"]
    override = next(r for r in rows if r["session_id"] == ids["override"])
    assert override["override_reason"] == "make-up for a missed bout" and "needs 60 min of rest" in override["deviation"]


def test_filters_by_subject_dates_and_status(cli, study):
    path, ids = study
    assert {r["subject"] for r in _rows(_export(cli, path, "--csv", "--subject", "M-1"))} == {"M-1"}
    both = _rows(_export(cli, path, "--csv", "--subject", "M-1", "--subject", "H-9"))
    assert len(both) == 3
    # 9 March 08:00 in Berlin is 07:00 UTC; both ends of the range are included
    march9 = _rows(_export(cli, path, "--csv", "--subject", "P-1", "--from", "2026-03-09", "--to", "2026-03-09",
                           "--tz", "Europe/Berlin"))
    assert [r["session_id"] for r in march9][0] == ids["out_of_spec"] and len(march9) == 2
    # in Tokyo, the 18:00 Berlin bout of 9 March is already 10 March
    tokyo = _rows(_export(cli, path, "--csv", "--subject", "P-1", "--from", "2026-03-10", "--to", "2026-03-10",
                          "--tz", "Asia/Tokyo"))
    assert [r["started_utc"][:16] for r in tokyo] == ["2026-03-09T17:00", "2026-03-10T07:00"]
    assert tokyo[1]["session_id"] == ids["interrupted"]
    not_done = _rows(_export(cli, path, "--csv", "--status", "aborted", "--status", "interrupted"))
    assert {r["session_id"] for r in not_done} == {ids["refused"], ids["interrupted"]}


def test_csv_one_row_per_window(cli, study):
    path, ids = study
    rows = _rows(_export(cli, path, "--csv", "--windows", "--subject", "P-1", "--status", "interrupted"))
    assert len(rows) == 6 and {r["session_id"] for r in rows} == {ids["interrupted"]}
    assert [r["idx"] for r in rows] == [str(i) for i in range(6)]
    assert rows[0]["subject"] == "P-1" and rows[0]["frequency_hz"] == "30.0" and rows[0]["in_spec"] == "false"
    assert rows[0]["reasons"] == "peak too low"


def test_json_document_with_provenance_and_windows(cli, study, tmp_path):
    path, ids = study
    target = tmp_path / "out" / "march.json"
    result = cli("log", "export", "--json", "--windows", "--subject", "H-9", "--out", str(target), "--log", str(path))
    assert result.code == 0 and "wrote 1 sessions" in result.err
    document = json.loads(target.read_text())
    assert document["chain"]["verified"] is True and document["chain"]["ok"] is True
    assert document["chain"]["head_hash"] == json.loads(cli("log", "verify", "--json", "--log", str(path)).out)["head_hash"]
    assert document["filters"]["subjects"] == ["H-9"]
    (session,) = document["sessions"]
    assert session["subject"] == "H-9" and len(session["windows"]) == 30
    unverified = json.loads(_export(cli, path, "--json", "--no-verify", "--subject", "M-1"))
    assert unverified["chain"] == {"verified": False} and len(unverified["sessions"]) == 2


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--csv", "--subject", "P-7"], "no subject 'P-7'"),
        (["--csv", "--status", "finished"], "invalid choice"),
        (["--csv", "--from", "March"], "is not a date"),
        (["--csv", "--tz", "Nowhere/Land"], "unknown time zone"),
        (["--csv", "--from", "2026-03-10", "--to", "2026-03-01"], "--from 2026-03-10 is after --to 2026-03-01"),
        ([], "say what to export: --csv or --json"),
    ],
)
def test_bad_exports(cli, study, args, fragment):
    path, _ = study
    result = cli("log", "export", *args, "--log", str(path))
    lines = [line for line in result.err.splitlines() if line.strip() and not line.startswith("usage:")]
    assert result.code == 2 and len(lines) == 1 and fragment in lines[0], result


def test_an_export_onto_a_folder_is_a_usage_error_and_leaves_nothing_behind(cli, study, tmp_path):
    path, _ = study
    folder = tmp_path / "exports"
    folder.mkdir()
    result = cli("log", "export", "--csv", "--out", str(folder), "--log", str(path))
    assert result.code == 2, result
    assert result.err.strip().splitlines() == [f"livctl: error: cannot write {folder}: Is a directory; choose another path"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exports"] and not any(folder.iterdir())
