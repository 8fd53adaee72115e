"""Spreadsheet-safe cells: only what could execute is changed, and our files read back losslessly.

Excel, LibreOffice and Sheets run a cell as a formula when it starts with `=`, `+`, `-` or `@`
(and, through import quirks, a tab or CR): OWASP's "CSV Injection" page, and defusedcsv
(github.com/raphaelm/defusedcsv), which prefixes such cells with an apostrophe that every
spreadsheet shows as text. Prefixing every `+` or `-` cell would also corrupt the very data a
data engineer loads from results.csv: `+61 490 830 166` would come out as `'+61 490 830 166`.
So a cell is neutralised only when it could execute:
- it starts with `=` or `@`, a tab or a CR;
- or it starts with `+` or `-` and is not a plain number or phone number (digits, spaces,
  `( ) . - /` and at least one digit): `+61 490 830 166`, `-5` and `(02) 9999-0000` stay as they
  are, `-2+3+cmd|' /C calc'!A0` and `+A1` do not.
Everything else is written exactly as read.

`restore` strips one apostrophe when the rest starts with `= + - @`, tab, CR or an apostrophe,
which is also how files written by earlier versions (which prefixed every such cell) read back.
So a cell that really starts with an apostrophe followed by one of those gets one more
apostrophe, and `restore(neutralise(x)) == x` for every cell.

The delimiter matters too: `Bob;=1+1` is one cell to us but two to Excel in a locale whose list
separator is `;`. The report writes every cell quoted (`csv.QUOTE_ALL`), so no separator a
spreadsheet may use (`,`, `;`, tab) can split a formula out of a cell.
"""

from __future__ import annotations

import re

# What `restore` strips an apostrophe before: the triggers of every version of this module.
_RESTORED = frozenset("=+-@\t\r'")
_ALWAYS = frozenset("=@\t\r")
_PLAIN_NUMBER = re.compile(r"[+-][\d ().\-/]*\d[\d ().\-/]*")


def could_execute(cell: str) -> bool:
    """Whether a spreadsheet could run `cell` as a formula."""
    first = cell[:1]
    if first in _ALWAYS and first:
        return True
    return first in ("+", "-") and _PLAIN_NUMBER.fullmatch(cell) is None


def neutralise(cell: str) -> str:
    first = cell[:1]
    if not first or first not in _RESTORED:
        return cell
    if first == "'":
        return "'" + cell if cell[1:2] in _RESTORED and len(cell) > 1 else cell
    return "'" + cell if could_execute(cell) else cell


# A cell `neutralise` would change, in a line joined with (and led by) _SEP: one that starts
# with = @ tab CR, an apostrophe before one of _RESTORED, or + - and is not a plain number
# up to the next cell. Exact only for cells without _SEP, which `neutralise_all` checks too.
_SEP = "\x1f"
_CHANGED = re.compile(
    _SEP + r"(?:[=@\t\r]|'[=+\-@\t\r']|[+-](?![\d ().\-/]*\d[\d ().\-/]*(?:" + _SEP + r"|\Z)))"
)


def neutralise_all(cells: list[str]) -> list[str]:
    """`neutralise` for a whole line: the report's hot loop. Most lines have no cell to
    change, and one regex search over the joined line says so, at a third of the cost of a
    look at each cell (then `cells` itself is returned); test_csvsafe holds it to `neutralise`."""
    joined = _SEP + _SEP.join(cells)
    if _CHANGED.search(joined) is None and joined.count(_SEP) == len(cells):
        return cells
    return [neutralise(c) if c[:1] in _RESTORED else c for c in cells]


def restore(cell: str) -> str:
    """Undo `neutralise`. Only for cells of files batchcall wrote itself."""
    if cell.startswith("'") and len(cell) > 1 and cell[1] in _RESTORED:
        return cell[1:]
    return cell
