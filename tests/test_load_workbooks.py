"""Workbooks read as a person sees them, row by row: XLSX as Excel writes it (shared strings,
styles, rich text), XLS as a real .xls writer writes it, and a streamed run whose first request
leaves before the sheet has been read to its end."""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

import pytest
import xlwt
from e2e_support import FROM, SCRIPT, RecordingTransport

import batchcall
from batchcall._config import Settings
from batchcall._errors import InputError
from batchcall._load import open_table

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PACKAGE = "http://schemas.openxmlformats.org/package/2006/relationships"


def xlsx(path: Path, sheet: str, strings: list[str], *, styles: str = "", prefix: str = "") -> Path:
    """A workbook laid out as Excel saves it: a shared-string table, a styles part, one sheet.
    `prefix` writes the sheet's elements with a namespace prefix, as .NET's OpenXML SDK does."""
    ns = f'xmlns{":" + prefix[:-1] if prefix else ""}="{MAIN}"'
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as book:
        book.writestr(
            "xl/workbook.xml",
            f'<workbook xmlns="{MAIN}" xmlns:r="{RELS}"><workbookPr/><sheets>'
            '<sheet name="Contacts" sheetId="1" r:id="rId1"/></sheets></workbook>',
        )
        book.writestr(
            "xl/_rels/workbook.xml.rels",
            f'<Relationships xmlns="{PACKAGE}">'
            f'<Relationship Id="rId1" Type="{RELS}/worksheet" Target="worksheets/sheet1.xml"/>'
            f'<Relationship Id="rId2" Type="{RELS}/sharedStrings" Target="sharedStrings.xml"/>'
            f'<Relationship Id="rId3" Type="{RELS}/styles" Target="styles.xml"/>'
            "</Relationships>",
        )
        book.writestr("xl/styles.xml", f'<styleSheet xmlns="{MAIN}">{styles}</styleSheet>')
        book.writestr(
            "xl/sharedStrings.xml",
            f'<sst xmlns="{MAIN}" count="{len(strings)}">' + "".join(strings) + "</sst>",
        )
        book.writestr(
            "xl/worksheets/sheet1.xml",
            f"<{prefix}worksheet {ns}><{prefix}sheetData>{sheet}</{prefix}sheetData>"
            f"</{prefix}worksheet>",
        )
    return path


# Number formats as Excel writes them: 164 keeps a phone's leading zero in a number column.
STYLES = (
    '<numFmts count="2"><numFmt numFmtId="164" formatCode="0000000000"/>'
    '<numFmt numFmtId="165" formatCode="dd/mm/yyyy\\ hh:mm"/></numFmts>'
    '<cellXfs count="5"><xf numFmtId="0"/><xf numFmtId="164"/><xf numFmtId="14"/>'
    '<xf numFmtId="165"/><xf numFmtId="20"/></cellXfs>'
)
STRINGS = [
    "<si><t>Phone</t></si>",
    "<si><t>First Name</t></si>",
    "<si><t>Notes</t></si>",
    "<si><t>Zoë</t></si>",
    # Rich text (a bold run) and a Japanese reading hint, which is not part of the text.
    '<si><r><rPr><b/></rPr><t>Jo</t></r><r><t xml:space="preserve">sé </t></r>'
    "<rPh sb='0' eb='1'><t>ホセ</t></rPh></si>",
    "<si><t>Tom &amp; Jerry &lt;3</t></si>",
    "<si><t>line one_x000D_\nline two</t></si>",
    "<si><t>+61 412 345 678</t></si>",
    "<si><t>=1+1</t></si>",
    "<si/>",
    "<si><t>When</t></si>",
]


def rows_of(path: Path) -> list[tuple[str, ...]]:
    return [src.cells for src in open_table(path, Settings())]


def test_xlsx_cells_are_the_text_excel_shows(tmp_path):
    """Shared strings (rich text, entities, Excel's _x000D_), a phone typed as a number with a
    zero-padded format, dates and times in ISO 8601, a formula's cached result, booleans and
    errors, and cells placed by their column when some are missing."""
    sheet = (
        '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c>'
        '<c r="C1" t="s"><v>2</v></c><c r="D1" t="s"><v>10</v></c></row>'
        '<row r="2"><c r="A2" s="1"><v>412345678</v></c><c r="B2" t="s"><v>3</v></c>'
        '<c r="C2" t="s"><v>5</v></c><c r="D2" s="2"><v>47544</v></c></row>'
        '<row r="3"><c r="A3" t="s"><v>7</v></c><c r="B3" t="s"><v>4</v></c>'
        '<c r="C3" t="s"><v>6</v></c><c r="D3" s="3"><v>47544.395833333336</v></c></row>'
        '<row r="4"><c r="A4"><v>61298765432</v></c><c r="B4" t="b"><v>1</v></c>'
        '<c r="C4" t="str"><f>B4&amp;"x"</f><v>TRUEx</v></c><c r="D4" s="4"><v>0.75</v></c></row>'
        # Row 5 is missing from the XML (an empty row); row 6 skips column B.
        '<row r="6"><c r="A6"><v>4.155550100E9</v></c><c r="C6" t="e"><v>#N/A</v></c>'
        '<c r="D6" t="s"><v>8</v></c></row>'
        '<row r="7"><c r="A7" t="inlineStr"><is><t>0412 000 001</t></is></c>'
        '<c r="B7" t="s"><v>9</v></c><c r="C7"><v>12.25</v></c></row>'
    )
    rows = rows_of(xlsx(tmp_path / "book.xlsx", sheet, STRINGS, styles=STYLES))
    assert rows == [
        ("0412345678", "Zoë", "Tom & Jerry <3", "2030-03-02"),
        ("+61 412 345 678", "José", "line one\r\nline two", "2030-03-02T09:30:00"),
        ("61298765432", "TRUE", "TRUEx", "18:00:00"),
        ("4155550100", "", "#N/A", "=1+1"),
        ("0412 000 001", "", "12.25", ""),
    ]
    assert [src.row for src in open_table(tmp_path / "book.xlsx", Settings())] == [1, 2, 3, 5, 6]


def test_xlsx_with_prefixed_elements_and_any_attribute_order_reads_the_same(tmp_path):
    """.NET writers prefix every element (`<x:row>`), and a writer may put `t` before `r`."""
    sheet = (
        '<x:row r="1"><x:c t="s" r="A1"><x:v>0</x:v></x:c><x:c t="s" r="B1"><x:v>1</x:v></x:c>'
        '</x:row><x:row r="2"><x:c s="1" r="A2"><x:v>412345678</x:v></x:c>'
        '<x:c t="s" r="B2"><x:v>3</x:v></x:c></x:row>'
    )
    path = xlsx(tmp_path / "dotnet.xlsx", sheet, STRINGS, styles=STYLES, prefix="x:")
    assert rows_of(path) == [("0412345678", "Zoë")]


def test_a_shared_string_past_the_table_stops_the_run_naming_the_file(tmp_path):
    sheet = (
        '<row r="1"><c r="A1" t="s"><v>0</v></c></row>'
        '<row r="2"><c r="A2" t="s"><v>99</v></c></row>'
    )
    path = xlsx(tmp_path / "bad.xlsx", sheet, STRINGS)
    with pytest.raises(InputError, match=r"Cannot read .*bad\.xlsx as a spreadsheet"):
        rows_of(path)


def test_xls_written_by_xlwt_keeps_text_phones_and_shows_numbers_and_dates(tmp_path):
    """A real .xls (BIFF8, written by xlwt): a text phone keeps its leading zero, a number
    phone comes out as its digits (never 412345678.0), a date cell as ISO 8601."""
    book = xlwt.Workbook(encoding="utf-8")
    sheet = book.add_sheet("Contacts")
    when = xlwt.easyxf(num_format_str="yyyy-mm-dd hh:mm:ss")
    for column, name in enumerate(["Phone", "First Name", "Last Name", "Scheduled Time"]):
        sheet.write(0, column, name)
    sheet.write(1, 0, "0412 345 678")
    sheet.write(1, 1, "Zoë")
    sheet.write(1, 2, "Ó Súilleabháin")
    sheet.write(1, 3, dt.datetime(2030, 3, 2, 9, 30), when)
    sheet.write(2, 0, 412345679)
    sheet.write(2, 1, "José")
    sheet.write(2, 2, "Müller")
    book.save(str(tmp_path / "old.xls"))
    table = open_table(tmp_path / "old.xls", Settings())
    assert table.header == ["Phone", "First Name", "Last Name", "Scheduled Time"]
    assert [src.cells for src in table] == [
        ("0412 345 678", "Zoë", "Ó Súilleabháin", "2030-03-02T09:30:00"),
        ("412345679", "José", "Müller", ""),
    ]


def _report_workbook(path: Path, rows: int) -> Path:
    """A Salesforce report saved as xlsx: contacts, then its footer lines at the very end."""
    strings = ["<si><t>Mobile</t></si>", "<si><t>First Name</t></si>"]
    cells = ['<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>']
    for n in range(rows):
        strings.append(f"<si><t>Person {n}</t></si>")
        cells.append(
            f'<row r="{n + 2}"><c r="A{n + 2}" t="inlineStr"><is><t>04{n:08d}</t></is></c>'
            f'<c r="B{n + 2}" t="s"><v>{n + 2}</v></c></row>'
        )
    strings += ["<si><t>Grand Totals (20,000 records)</t></si>",
                "<si><t>Confidential Information - Do Not Distribute</t></si>"]  # fmt: skip
    cells.append(f'<row r="{rows + 3}"><c r="A{rows + 3}" t="s"><v>{rows + 2}</v></c></row>')
    cells.append(f'<row r="{rows + 5}"><c r="A{rows + 5}" t="s"><v>{rows + 3}</v></c></row>')
    return xlsx(path, "".join(cells), strings)


def test_the_first_request_leaves_before_the_workbook_is_read_to_its_end(tmp_path, make_sandbox):
    """A streamed workbook: when the first request leaves for the server, the report footer at
    the sheet's end has not been read yet (run.log does not name it). A reader that loads the
    whole sheet first finds the footer, and says so, before anything is sent. The server
    refuses the key, so the run stops at that first request."""
    server = make_sandbox()
    source = _report_workbook(tmp_path / "report.xlsx", 20_000)
    reports = tmp_path / "reports"
    seen: list[str] = []

    class FirstRequest(RecordingTransport):
        async def handle_async_request(self, request):
            if not seen:
                (run_dir,) = reports.iterdir()
                seen.append((run_dir / "run.log").read_text(encoding="utf-8"))
            return await super().handle_async_request(request)

    with pytest.raises(batchcall.BatchCallError):
        batchcall.run(
            source, from_number=FROM, script_id=SCRIPT, reports_dir=reports, region="AU",
            base_url=server.base_url, api_key="not-the-key", transport=FirstRequest(),
        )  # fmt: skip
    assert seen, "no request left"
    assert "run " in seen[0] and "report footer" not in seen[0]


def test_a_workbook_report_footer_is_skipped_with_a_warning(tmp_path):
    """Read to its end, the same workbook's footer lines are no rows, and run.log says so."""
    source = _report_workbook(tmp_path / "report.xlsx", 30)
    summary = batchcall.validate(
        source, from_number=FROM, script_id=SCRIPT, reports_dir=tmp_path / "r", region="AU"
    )
    assert summary.counts == {"valid": 30}
    log = (Path(summary.run_dir) / "run.log").read_text(encoding="utf-8")
    assert "Skipped the report footer at the end of the file (from row 31:" in log
    assert "Grand Totals (20,000 records)" in log


def test_a_workbook_run_writes_failed_xlsx_with_every_cell_as_text(tmp_path):
    """Beside failed.csv, failed.xlsx holds the rows to fix, each cell a text cell in the Text
    format: the leading zero and the formula-looking cell are exactly as in the input (no
    apostrophe, nothing Excel could evaluate)."""
    sheet = (
        '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c>'
        '<c r="C1" t="s"><v>2</v></c></row>'
        '<row r="2"><c r="A2" s="1"><v>412345678</v></c><c r="B2" t="s"><v>3</v></c></row>'
        '<row r="3"><c r="A3" t="inlineStr"><is><t>0412 34</t></is></c>'
        '<c r="B3" t="s"><v>4</v></c><c r="C3" t="s"><v>8</v></c></row>'
    )
    source = xlsx(tmp_path / "book.xlsx", sheet, STRINGS, styles=STYLES)
    summary = batchcall.validate(
        source, from_number=FROM, script_id=SCRIPT, reports_dir=tmp_path / "r", region="AU"
    )
    failed = Path(summary.run_dir) / "failed.xlsx"
    rows = rows_of_xlsx(failed)
    assert rows[0][:4] == ["Phone", "First Name", "Notes", "row"]
    # "José " keeps the space its rich-text run ends with: cells are written as read.
    assert [r[:3] for r in rows[1:]] == [["0412 34", "José ", "=1+1"]]
    assert rows[1][rows[0].index("error_code")] == "invalid_phone"
    with zipfile.ZipFile(failed) as book:
        xml = book.read("xl/worksheets/sheet1.xml").decode()
        styles = book.read("xl/styles.xml").decode()
    assert "<f>" not in xml and xml.count("<c ") == xml.count('t="inlineStr"')
    assert 'numFmtId="49"' in styles  # every cell's style is the Text format (@)
    assert (Path(summary.run_dir) / "failed.csv").exists()


def test_a_csv_run_writes_no_failed_xlsx(tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("Phone\n12\n", encoding="utf-8")
    summary = batchcall.validate(source, from_number=FROM, script_id=SCRIPT,
                                 reports_dir=tmp_path / "r", region="AU")  # fmt: skip
    assert not (Path(summary.run_dir) / "failed.xlsx").exists()


def rows_of_xlsx(path: Path) -> list[list[str]]:
    from python_calamine import CalamineWorkbook

    return [[str(v) for v in row] for row in
            CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).iter_rows()]  # fmt: skip
