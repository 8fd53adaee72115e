"""Damaged text files stop before anything is sent, with one line naming where the damage is.

Each case runs the installed `batchcall run` against a real sandbox, as a user would: exit 2, no
traceback, and the sandbox received nothing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from e2e_support import BATCHCALL, FROM, SCRIPT, au_mobiles, cli

from batchcall.sandbox import SandboxConfig, start_sandbox


@pytest.fixture
def server():
    with start_sandbox(SandboxConfig()) as sandbox:
        yield sandbox


def _rows(count: int) -> str:
    return "".join(f"{p},Name{i}\n" for i, p in enumerate(au_mobiles(count)))


def _run(path: Path, server) -> tuple[int, str]:
    result = cli(
        "run", str(path), "--from-number", FROM, "--script-id", SCRIPT, "--base-url",
        server.base_url, "--out", str(path.with_suffix(".run")),
        key=server.api_key, cwd=path.parent,
    )  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stderr.strip()


def _nothing_sent(server) -> bool:
    return server.calls() == []


def test_a_quote_never_closed_stops_a_5000_row_file_naming_its_line(tmp_path, server):
    """An unterminated quote on line 3 would swallow the other 4,998 rows into one cell: the run
    refuses the file, names line 3, and calls nobody."""
    rows = _rows(5000).splitlines(keepends=True)
    rows[1] = rows[1].replace(",Name", ',"Name')
    path = tmp_path / "open_quote.csv"
    path.write_text("Phone,First Name\n" + "".join(rows))
    code, err = _run(path, server)
    assert code == 2
    assert "line 3 is never closed" in err and len(err.splitlines()) == 1
    assert _nothing_sent(server)


def test_a_quote_left_open_in_the_last_rows_is_refused_too(tmp_path, server):
    """A quote opened two lines before the end (no later quote to close it) is refused."""
    path = tmp_path / "open_at_end.csv"
    rows = _rows(3).splitlines(keepends=True)
    rows[1] = rows[1].replace(",Name", ',"Name')
    path.write_text("Phone,First Name\n" + "".join(rows))
    code, err = _run(path, server)
    assert (code, "line 3 is never closed" in err) == (2, True)
    assert _nothing_sent(server)


def test_a_nul_byte_deep_in_the_file_is_refused(tmp_path, server):
    """A NUL after the first 64 KiB (past the delimiter sniffing) stops the run, naming its line."""
    text = "Phone,First Name\n" + _rows(4000)
    assert len(text) > 64 * 1024
    path = tmp_path / "nul.csv"
    path.write_text(text + "0412000001,A\x00B\n")
    code, err = _run(path, server)
    assert code == 2 and "NUL byte on line 4002" in err
    assert _nothing_sent(server)


def test_a_giant_line_of_tiny_cells_is_refused_with_bounded_memory(tmp_path, server):
    """A 40 MB line of two-character cells is refused without being parsed: the process's peak
    memory stays far below what parsing it would take (over 600 MB)."""
    path = tmp_path / "wide.csv"
    with path.open("w") as fh:
        fh.write("Phone,First Name\n" + _rows(2))
        fh.write("ab," * (40 * 1024 * 1024 // 3) + "\n")
    # A fresh parent, so RUSAGE_CHILDREN is this one batchcall process's peak alone.
    measure = (
        "import resource, subprocess, sys\n"
        "code = subprocess.run(sys.argv[1:], capture_output=True).returncode\n"
        "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    result = subprocess.run(
        [sys.executable, "-c", measure, BATCHCALL, "validate", str(path), "--from-number", FROM,
         "--script-id", SCRIPT, "--out", str(tmp_path / "dry")],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    code, peak_kb = map(int, result.stdout.split())
    assert code == 2
    assert peak_kb < 200 * 1024, f"peak {peak_kb // 1024} MB"
    code, err = _run(path, server)
    assert code == 2 and "line 4 is longer than 4 MiB" in err
    assert _nothing_sent(server)


def test_quoted_cells_over_several_lines_and_stray_quotes_still_load(tmp_path, server):
    """A postal address quoted over three lines, and a `5" tall` note (a quote inside an
    unquoted cell), are ordinary exports: every row is called."""
    first, second, third = au_mobiles(3)
    path = tmp_path / "fine.csv"
    path.write_text(
        "Phone,First Name,Address,Notes\n"
        f'{first},Ann,"1 Long St\nFlat 2\nSydney",\n'
        f'{second},Bob,,5" tall\n'
        f'{third},Cy,"last, closed\nproperly",\n'
    )
    code, err = _run(path, server)
    assert code == 0, err
    assert sorted(c["phone_number"] for c in server.calls()) == sorted([first, second, third])


def _workbook(path: Path, phones: list[str], *, stray: str | None = None) -> Path:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Phone", "First Name"])
    for i, phone in enumerate(phones):
        sheet.append([phone, f"Name{i}"])
    if stray is not None:
        sheet[stray] = "x"
    book.save(path)
    return path


def test_a_workbook_with_a_stray_cell_at_the_last_column_and_row_is_refused(tmp_path, server):
    """A 5 KB xlsx with one cell at XFD1048576 would need a 17-billion-cell grid: the run stops
    with exit 2, names the cell, and says how to fix it; nothing is sent."""
    path = _workbook(tmp_path / "stray.xlsx", au_mobiles(2), stray="XFD1048576")
    assert path.stat().st_size < 10_000
    code, err = _run(path, server)
    assert code == 2 and "reaches cell XFD1048576" in err and "Delete the stray cells" in err
    assert _nothing_sent(server)


def test_a_workbook_that_inflates_a_thousandfold_is_refused_before_it_is_read(tmp_path, server):
    """A zip entry of 100 MB of zeros (about 100 KB on disk) marks a decompression bomb: exit 2,
    and nothing sent."""
    import zipfile

    path = _workbook(tmp_path / "bomb.xlsx", au_mobiles(2))
    with (
        zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as book,
        book.open("xl/media/padding.bin", "w") as pad,
    ):
        for _ in range(100):
            pad.write(bytes(1 << 20))
    assert path.stat().st_size < 1_000_000
    code, err = _run(path, server)
    assert code == 2 and "alone inflates over" in err
    assert _nothing_sent(server)
