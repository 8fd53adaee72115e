"""Cells we write: only what could execute is changed, and everything reads back as it was."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchcall._csvsafe import could_execute, neutralise, neutralise_all, restore

cells = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40)
risky = st.sampled_from(["=", "+", "-", "@", "\t", "\r", "'", "''", "'=", "+6", "-2+"]).flatmap(
    lambda head: cells.map(lambda tail: head + tail)
)


@given(st.one_of(cells, risky))
def test_every_cell_reads_back_exactly_as_it_was_written(cell):
    """Whatever a cell holds, `restore` gives back what the input had."""
    assert restore(neutralise(cell)) == cell
    assert neutralise_all([cell, cell]) == [neutralise(cell)] * 2


separated = st.one_of(cells, risky).flatmap(
    lambda cell: st.sampled_from(["", "\x1f", "\x1f=", "\x1f+1"]).map(lambda tail: cell + tail)
)


@given(st.lists(st.one_of(cells, risky, separated), max_size=8))
def test_a_line_is_neutralised_as_each_of_its_cells_is(line):
    """`neutralise_all`'s search over the joined line changes what `neutralise` would change,
    cell by cell, cells holding its separator included."""
    assert neutralise_all(line) == [neutralise(cell) for cell in line]


@given(st.one_of(cells, risky))
def test_only_cells_that_could_execute_are_changed(cell):
    """A cell is written byte for byte unless it could run as a formula, or it is an
    apostrophe-led cell that would otherwise read back without its apostrophe."""
    written = neutralise(cell)
    ambiguous = cell.startswith("'") and cell[1:2] in set("=+-@\t\r'") and len(cell) > 1
    assert (written != cell) == (could_execute(cell) or ambiguous)
    if written != cell:
        assert written == "'" + cell


@pytest.mark.parametrize(
    "cell",
    ["+61 490 830 166", "+61429069971", "-5", "-12.50", "(02) 9999-0000", "+1 (555) 010-0199",
     "'quoted", "plain", "", "0412 000 001", "Zoë", "2030-03-04T09:30:00+11:00"],
)  # fmt: skip
def test_phones_numbers_and_text_are_written_exactly_as_read(cell):
    """A phone with +, a negative amount or ordinary text is not given an apostrophe, so a
    data engineer loading results.csv gets the real value."""
    assert neutralise(cell) == cell


@pytest.mark.parametrize(
    "cell",
    ['=HYPERLINK("http://x","click")', "@SUM(A1)", "+A1", "-2+3+cmd|' /C calc'!A0", "\tx",
     "\r=1", "+", "-", "=1+1"],
)  # fmt: skip
def test_formulas_and_dde_payloads_are_neutralised(cell):
    """Anything a spreadsheet could evaluate starts with an apostrophe, which shows it as text."""
    assert neutralise(cell) == "'" + cell


def test_files_written_by_earlier_versions_still_read_back():
    """Earlier versions prefixed every `+`/`-` cell; their results.csv still restores cleanly."""
    assert restore("'+61429069971") == "+61429069971"
    assert restore("'-oops") == "-oops"


def test_no_list_separator_can_split_a_formula_out_of_a_cell(tmp_path):
    """`Bob;=1+1` is one cell to batchcall but two to Excel in a `;` locale: results.csv quotes
    every cell, so a spreadsheet splitting on `;` or tab still sees one text cell."""
    from batchcall._journal import ReportRow
    from batchcall._report import write_results

    row = ReportRow(1, ["Bob;=1+1", "Ann\t=2+2"], "invalid", None, None, None, "x", "y", 0,
                    None, None, 0)  # fmt: skip
    results, _ = write_results(tmp_path, ["name", "note"], [row])
    raw = results.read_text(encoding="utf-8-sig")
    assert '"Bob;=1+1","Ann\t=2+2"' in raw
