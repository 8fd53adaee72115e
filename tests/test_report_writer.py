"""The CSV reports written by a forked child (`writer`) are the very bytes the in-process writer
makes; a child that fails or dies makes the command fail, and leaves no half-written file."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from batchcall import _writer as writer_module
from batchcall._journal import Journal, PlannedRow, Result
from batchcall._report import REPORT_FILES, write_results
from batchcall._writer import ReportsError, ReportWriter

HEADER = ["name", "phone", "note"]
BODY = '{"from_number":"+61291234567","script_id":"s","contact":{"phone_number":"+61400000001"}}'

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the writer child is forked")


def _planned(n: int, state: str, cells: list[str], **extra: object) -> PlannedRow:
    sendable = state == "pending"
    return PlannedRow(
        n,
        _cells_json(cells),
        BODY if sendable else None,
        "+6140000000" + str(n % 10) if state != "invalid" else None,
        state,  # type: ignore[arg-type]
        extra.get("code"),  # type: ignore[arg-type]
        extra.get("error"),  # type: ignore[arg-type]
        "2030-03-01T22:07:00Z" if sendable else None,
        int(bool(extra.get("moved"))),
        extra.get("rule"),  # type: ignore[arg-type]
    )


def _cells_json(cells: list[str]) -> str:  # as the planner stores them
    import json

    return json.dumps(cells, ensure_ascii=False)


def _journal(path: Path) -> Path:
    """A journal with a row in every kind of state, ragged and risky cells among them."""
    rows = [
        _planned(1, "pending", ["Ann", "0400 000 001", "=1+1"]),
        _planned(2, "invalid", ["Bo", "12345"], code="invalid_phone", error="+A1 is no number"),
        _planned(3, "duplicate", ["Cy", "0400 000 001", "", "extra"], code="duplicate", error="d"),
        _planned(4, "suppressed", ["Zoë", " +61 400 000 004 ", "'=x"], code="suppressed"),
        _planned(5, "pending", ["Dee", "0400 000 005", "-5"], moved=True, rule="window 9-17"),
        _planned(6, "pending", ["Eve", "0400 000 006", "@SUM(1)"]),
        _planned(7, "pending", ["Fay", "0400 000 007", "multi\nline"]),
    ]
    journal_path = path / "journal.sqlite"
    with Journal(journal_path, create=True) as journal:
        journal.add_rows(rows, run_id="run")
        for row, result in (
            (5, Result("scheduled", 201, "call-5", "contact-5")),
            (6, Result("failed", 400, error_code="rejected", error="-bad request")),
            (7, Result("unknown", error_code="timeout", error="no answer")),
        ):
            journal.mark_sending(row, 1)
            journal.record_result(row, result, attempts=1)
        journal.commit()
    return journal_path


def _in_process(journal_path: Path, out: Path, *, dry_run: bool, workbook: bool) -> None:
    with Journal(journal_path, readonly=True) as journal:
        write_results(out, HEADER, journal.report_rows(), dry_run=dry_run, workbook=workbook)


def _book(path: Path) -> list[list[object]]:
    from openpyxl import load_workbook

    book = load_workbook(path, read_only=True)
    try:
        return [list(row) for row in book.active.iter_rows(values_only=True)]
    finally:
        book.close()


def _files(where: Path) -> dict[str, bytes]:
    return {name: (where / name).read_bytes() for name in REPORT_FILES}


@pytest.mark.parametrize(("dry_run", "workbook"), [(False, False), (True, False), (False, True)])
def test_the_child_writes_the_bytes_this_process_would(tmp_path, dry_run, workbook):
    journal_path = _journal(tmp_path)
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    _in_process(journal_path, here, dry_run=dry_run, workbook=workbook)
    writer = ReportWriter()
    try:
        writer.write(there, journal_path, HEADER, dry_run=dry_run, workbook=workbook)
        writer.wait()
    finally:
        writer.close()
    assert _files(there) == _files(here)
    assert (b'"valid"' in _files(there)["results.csv"]) == dry_run
    if workbook:
        assert _book(there / "failed.xlsx") == _book(here / "failed.xlsx")
    assert not list(there.glob(".*"))


def test_a_validate_with_the_writer_child_writes_what_one_without_it_does(tmp_path, monkeypatch):
    from batchcall import _runner as runner

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    source = tmp_path / "contacts.csv"
    lines = ["phone,first_name,note"]
    lines += [f"0400 000 {n:03d},Ann{n},{'=1+1' if n % 3 else '-5'}" for n in range(40)]
    lines += ["0400 000 001,Dup,again", "12345,Bad,x", "0400 000 002"]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    options = {"from_number": "+61291234567", "script_id": "s-1", "timezone": "Australia/Sydney"}
    made = {}
    for name, smallest in (("in_process", 1 << 40), ("child", 0)):
        monkeypatch.setattr(writer_module, "WRITER_MIN_BYTES", smallest)
        summary = runner.validate(source, reports_dir=tmp_path / name, **options)
        made[name] = _files(Path(summary.run_dir))
    assert made["child"] == made["in_process"]


def test_a_validate_whose_writer_dies_fails_with_a_clear_error(tmp_path, monkeypatch):
    from batchcall import _runner as runner

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    source = tmp_path / "contacts.csv"
    source.write_text("phone,first_name\n0400 000 001,Ann\n", encoding="utf-8")
    monkeypatch.setattr(writer_module, "WRITER_MIN_BYTES", 0)
    monkeypatch.setattr(writer_module, "write_part", _dies_halfway)
    with pytest.raises(ReportsError, match="could not be written"):
        runner.validate(
            source, reports_dir=tmp_path / "reports", from_number="+61291234567", script_id="s"
        )
    (run_dir,) = (tmp_path / "reports").iterdir()
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    assert not (run_dir / "results.csv").exists()


def test_an_error_in_the_child_is_raised_here_and_leaves_the_old_reports(tmp_path):
    journal_path = _journal(tmp_path)
    gone = tmp_path / "no such directory"
    writer = ReportWriter()
    try:
        writer.write(gone, journal_path, HEADER, dry_run=False, workbook=False)
        with pytest.raises(FileNotFoundError):
            writer.wait()
    finally:
        writer.close()


def _dies_halfway(run_dir: Path, header: list[str], lines: object, **_: object) -> None:
    from batchcall._report import atomic_writer

    with atomic_writer(run_dir / "results.csv", newline="") as out:
        out.write("half a report")
        out.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def test_a_child_that_dies_while_writing_fails_the_reports_and_leaves_no_partial_file(
    tmp_path, monkeypatch
):
    journal_path = _journal(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    (out / "results.csv").write_text("as last written", encoding="utf-8")
    monkeypatch.setattr(writer_module, "write_part", _dies_halfway)  # the child inherits it
    writer = ReportWriter()
    try:
        writer.write(out, journal_path, HEADER, dry_run=False, workbook=False)
        with pytest.raises(ReportsError, match="killed by SIGKILL"):
            writer.wait()
    finally:
        writer.close()
    assert (out / "results.csv").read_text(encoding="utf-8") == "as last written"
    assert sorted(p.name for p in out.iterdir()) == ["results.csv"]


def test_a_child_killed_before_it_was_asked_fails_the_reports(tmp_path):
    journal_path = _journal(tmp_path)
    writer = ReportWriter()
    try:
        for process in writer._processes:
            os.kill(process.pid, signal.SIGKILL)
            process.join()
        writer.write(tmp_path, journal_path, HEADER, dry_run=False, workbook=False)
        with pytest.raises(ReportsError, match="ended unexpectedly"):
            writer.wait()
    finally:
        writer.close()
    assert not (tmp_path / "results.csv").exists()


def test_a_writer_never_asked_ends_when_closed():
    writer = ReportWriter()
    writer.close()
    assert [process.exitcode for process in writer._processes] == [0, 0]


@pytest.mark.parametrize("parts", [1, 2, 3, 9])
def test_any_number_of_parts_joins_to_the_same_bytes(tmp_path, parts):
    """However the rows are split between children (more children than rows included), the
    joined files are the in-process writer's bytes, and no part is left behind."""
    journal_path = _journal(tmp_path)
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    _in_process(journal_path, here, dry_run=False, workbook=False)
    writer = ReportWriter(parts)
    try:
        writer.write(there, journal_path, HEADER, dry_run=False, workbook=False, last_row=7)
        writer.wait()
    finally:
        writer.close()
    assert _files(there) == _files(here)
    assert sorted(p.name for p in there.iterdir()) == sorted(REPORT_FILES)


def test_row_ranges_cover_every_row_once():
    for last in (0, 1, 2, 7, 1000, 1001):
        for parts in (1, 2, 3):
            bounds = writer_module.ranges(last, parts)
            covered = [n for n in range(-5, last + 5) for a, b in bounds if a <= n <= b]
            assert covered == list(range(-5, last + 5))


def _second_part_dies(run_dir: Path, header: list[str], lines: object, **kw: object) -> list[str]:
    from batchcall._report import write_part

    if not kw.get("first"):
        os.kill(os.getpid(), signal.SIGKILL)
    return write_part(run_dir, header, lines, **kw)  # type: ignore[arg-type]


def test_one_child_dying_fails_the_reports_and_removes_the_others_part(tmp_path, monkeypatch):
    journal_path = _journal(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    (out / "results.csv").write_text("as last written", encoding="utf-8")
    monkeypatch.setattr(writer_module, "write_part", _second_part_dies)
    writer = ReportWriter()
    try:
        writer.write(out, journal_path, HEADER, dry_run=False, workbook=False, last_row=7)
        with pytest.raises(ReportsError, match="killed by SIGKILL"):
            writer.wait()
    finally:
        writer.close()
    assert (out / "results.csv").read_text(encoding="utf-8") == "as last written"
    assert sorted(p.name for p in out.iterdir()) == ["results.csv"]
