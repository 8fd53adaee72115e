"""Reports are spreadsheet-safe and atomic."""

from __future__ import annotations

import csv

from batchcall._journal import ReportRow
from batchcall._report import write_results


def _row(n: int, state: str, name: str) -> ReportRow:
    return ReportRow(
        n, [name, "0429 069 971"], state, None, None, None, None, None, 0, None, None, False
    )


def test_results_and_failed_files_hold_the_right_rows(tmp_path):
    """results.csv has every row in order; failed.csv has invalid, failed and unknown ones."""
    rows = [
        _row(1, "scheduled", "Ann"),
        _row(2, "invalid", "=cmd|' /C calc'!A0"),
        _row(3, "unknown", "Bo"),
        _row(4, "duplicate", "Cy"),
    ]
    results, failed = write_results(tmp_path, ["name", "phone"], rows)
    with results.open(encoding="utf-8-sig", newline="") as f:
        lines = list(csv.reader(f))
    assert lines[0][:4] == ["name", "phone", "row", "outcome"]
    assert [line[2] for line in lines[1:]] == ["1", "2", "3", "4"]
    assert lines[2][0] == "'=cmd|' /C calc'!A0"
    with failed.open(encoding="utf-8-sig", newline="") as f:
        assert [line[2] for line in list(csv.reader(f))[1:]] == ["2", "3"]
    assert not list(tmp_path.glob("*.tmp"))
