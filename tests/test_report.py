"""Reports are spreadsheet-safe and atomic; the summary is frozen, documented and stable."""

from __future__ import annotations

import csv
import dataclasses

import pytest

from batchcall._journal import STATES, ReportRow
from batchcall._report import COUNT_ORDER, Summary, exit_code_for, write_results


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


def _summary(**changes: object) -> Summary:
    summary = Summary(
        command="run",
        run_dir="/r",
        input="/in.csv",
        total=3,
        counts={"scheduled": 2, "failed": 1},
        errors={"rejected": 1},
        exit_code=1,
        started_at="2030-03-04T09:00:00+00:00",
        finished_at="2030-03-04T09:00:05+00:00",
        seconds=5.0,
    )
    return dataclasses.replace(summary, **changes)  # type: ignore[arg-type]


def test_a_summary_cannot_be_changed_once_built():
    """A summary is made once with its final values; a variant is a new summary."""
    summary = _summary()
    with pytest.raises(dataclasses.FrozenInstanceError):
        summary.exit_code = 3  # type: ignore[misc]
    stopped = dataclasses.replace(summary, exit_code=130, message="interrupted")
    assert (summary.exit_code, summary.message) == (1, None)
    assert (stopped.exit_code, stopped.message) == (130, "interrupted")


def test_summary_json_keeps_its_keys():
    """summary.json and --json hold the same keys, whatever the summary's shape in code."""
    assert set(_summary().to_dict()) == {
        "command", "run_dir", "input", "total", "counts", "errors", "exit_code", "started_at",
        "finished_at", "seconds", "requests", "throttled", "rate", "limiter", "results_csv",
        "failed_csv", "skipped_csv", "report_html", "plan", "message",
    }  # fmt: skip
    assert _summary().to_dict()["counts"] == {"scheduled": 2, "failed": 1}


def test_every_field_of_the_summary_is_documented():
    """Each summary.json key is explained in the Summary's docstring."""
    doc = Summary.__doc__ or ""
    assert all(f"\n    {f.name} " in doc for f in dataclasses.fields(Summary))


def test_the_printed_summary_lists_every_state():
    """No state can be left out of the summary table: each has its place in the order."""
    assert set(STATES) <= set(COUNT_ORDER)


def test_exit_codes_follow_the_rows_states():
    """Rows left unsent make 3 (resume them), rows to fix make 1, a clean run 0; in a dry run
    pending rows are only valid."""
    assert exit_code_for({"scheduled": 2, "pending": 1}) == 3
    assert exit_code_for({"scheduled": 2, "sending": 1, "failed": 1}) == 3
    assert exit_code_for({"scheduled": 2, "unknown": 1}) == 1
    assert exit_code_for({"scheduled": 2, "duplicate": 1}) == 0
    assert exit_code_for({"pending": 2}, dry_run=True) == 0
    assert exit_code_for({"pending": 2, "invalid": 1}, dry_run=True) == 1
