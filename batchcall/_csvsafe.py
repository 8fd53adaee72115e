"""Spreadsheet-safe cells: what we write cannot run as a formula, and reads back losslessly.

Excel, LibreOffice and Sheets treat a cell starting with `= + - @`, tab or CR as a formula
(OWASP "CSV injection"). We prefix such a cell with an apostrophe, which every spreadsheet shows
as text. A cell that already starts with an apostrophe gets one more, so `restore` can always
strip exactly one and give back the original value.
"""

from __future__ import annotations

_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "'")


def neutralise(cell: str) -> str:
    return "'" + cell if cell.startswith(_TRIGGERS) else cell


_FIRST = frozenset(_TRIGGERS)


def neutralise_all(cells: list[str]) -> list[str]:
    """`neutralise` for a whole line; the report's hot loop, so no call per cell."""
    return [("'" + c) if c[:1] in _FIRST else c for c in cells]


def restore(cell: str) -> str:
    """Undo `neutralise`. Only for cells of files batchcall wrote itself."""
    if cell.startswith("'") and len(cell) > 1 and cell[1] in _TRIGGERS:
        return cell[1:]
    return cell
