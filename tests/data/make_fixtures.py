"""Write the loader's fixture files the way Excel and LibreOffice write them.

Run it from anywhere (`python tests/data/make_fixtures.py`); the files land beside this script and
are committed, so the tests never need openpyxl or odfpy at run time. The messy rows are the same in
every format, so one table of expected outcomes (in tests/test_load_files.py) covers them all.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent

HEADER = [" Phone Number ", "Given Name", "SURNAME", "Call-Time", "policy.number", "Notes"]

# One record per line, as a CRM export would have them; "" lines are the blank records Excel
# leaves behind. Row numbers in the comments are what results.csv will show. The calls are in
# March 2030 (FILES_YEAR in tests/e2e_support.py): the loader's tests judge them against a fixed
# "now", and the end-to-end ones copy the files with that year moved ahead of the clock.
MESSY: list[list[str]] = [
    ["0429 069 971", "  Zoë ", "O'Brien", "2030-03-02 09:30+11:00", "P-1001", "VIP"],  # 1
    [],  # 2 blank
    ["+61 2 9876 5432", "José", "Müller", "2030-03-02T10:00:00Z", "P-1002", ""],  # 3
    ["4.29E+08", "Ann", "Lee", "", "P-1003", ""],  # 4 damaged
    ["12345", "Bob", "Brown", "", "", ""],  # 5 invalid
    ["", "Cara", "Diaz", "", "P-1005", "no number"],  # 6 missing
    ["0429069971", "Zoë", "O'Brien", "2030-03-01T22:30:00Z", "P-1001", "again"],  # 7 duplicate
    ["0412 345 678", "Dan", "Smith, Jr.", "2030-03-02 09:30", "", ""],  # 8 naive time
    ["0412 345 679", "Eve", "", "2020-01-01T09:00:00+10:00", "", ""],  # 9 past
    ["0412 345 680", "Fay", "", "next tuesday", "", ""],  # 10 unparseable
    ["0412 345 681", '=HYPERLINK("http://example.com")', "Ng", "", "", ""],  # 11 formula-looking
    ["+44 20 7946 0958", "Grace", "Hopper", "2030-03-02 09:00:00+00:00", "P-1004", "London"],  # 12
    ["0412 345 682", "Hal", "", "01/12/2030 09:00", "", ""],  # 13 ambiguous date
    ["   ", "  ", " ", "", "", ""],  # 14 blank after trimming
    ["  0412 345 683  ", "  Ian ", " Ward ", " 2030-03-02T09:00:00+10:00 ", " P-1006 ", ""],  # 15
]


def write_csv(path: Path, *, encoding: str, delimiter: str) -> None:
    buffer = io.StringIO(newline="")
    # Excel writes CRLF and quotes only what needs it.
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(HEADER)
    for record in MESSY:
        if record:
            writer.writerow(record)
        else:  # Excel saves a blank row inside the used range as bare delimiters
            buffer.write(delimiter * (len(HEADER) - 1) + "\r\n")
    path.write_bytes(buffer.getvalue().encode(encoding))


def write_xlsx(path: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Contacts"
    sheet.append(["Phone", "First Name", "Last Name", "Scheduled Time", "policy.number"])
    rows: list[list[object]] = [
        [429069971, "Zoë", "O'Brien", datetime(2030, 3, 2, 9, 30), 1001],  # leading 0 lost
        [61298765432, "José", "Müller", datetime(2030, 3, 2, 10, 0), 1002],  # no + left
        [412345678.5, "Ann", "Lee", None, None],  # a fraction: damaged
        ["4.29E+08", "Bob", "Brown", None, None],  # text that was a number once: damaged
        [None, None, None, None, None],  # blank
        ["+44 20 7946 0958", "Grace", "Hopper", datetime(2020, 1, 1, 9, 0), None],  # past
        ["0412 345 681", "Ian", "Ward", "2030-03-02T09:00:00+10:00", 1006],  # text cells
    ]
    for row in rows:
        sheet.append(row)
    for cells in sheet.iter_rows(min_row=2):
        if isinstance(cells[0].value, int | float):
            cells[0].number_format = "0"  # how a phone column looks once Excel has "fixed" it
        if isinstance(cells[3].value, datetime):
            cells[3].number_format = "yyyy-mm-dd hh:mm"
    archive = book.create_sheet("Archive")
    archive.append(["Mobile", "Given name"])
    archive.append([412345699, "Old"])
    book.save(path)


def write_ods(path: Path) -> None:
    import pandas as pd

    frame = pd.DataFrame(
        [
            [429069971, "Zoë", "O'Brien", datetime(2030, 3, 2, 9, 30)],
            ["0412 345 681", "Ian", "Ward", "2030-03-02T09:00:00+10:00"],
            ["4.29E+08", "Bob", "Brown", ""],
        ],
        columns=["Phone", "First Name", "Last Name", "Scheduled Time"],
        dtype=object,
    )
    frame.to_excel(path, engine="odf", index=False, sheet_name="Contacts")


def write_small_text_files() -> None:
    rows = [["phone", "first_name"], ["0429069971", "Zoë"], ["+61298765432", "José"]]
    for name, delimiter in (("tabs.tsv", "\t"), ("pipes.txt", "|")):
        buffer = io.StringIO(newline="")
        csv.writer(buffer, delimiter=delimiter, lineterminator="\n").writerows(rows)
        (HERE / name).write_text(buffer.getvalue(), encoding="utf-8")
    # A CRM export with two phone columns, which the loader must refuse to choose between.
    (HERE / "two_phones.csv").write_text(
        "Name,Phone,Mobile\nAnn,0291234567,0429069971\n", encoding="utf-8"
    )


def main() -> None:
    write_csv(HERE / "messy_cp1252.csv", encoding="cp1252", delimiter=";")
    write_csv(HERE / "messy_utf8_bom.csv", encoding="utf-8-sig", delimiter=",")
    write_xlsx(HERE / "contacts.xlsx")
    write_ods(HERE / "contacts.ods")
    write_small_text_files()


if __name__ == "__main__":
    main()
