"""The loader, validator and planner on real files written the way Excel and LibreOffice write them.

The files come from tests/data/make_fixtures.py; each messy row is commented there with its row
number. These tests follow a file from disk to the requests that would be sent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from e2e_support import DATA, FROM, SCRIPT

from batchcall._config import Settings
from batchcall._errors import InputError
from batchcall._load import open_table
from batchcall._models import Checked
from batchcall._plan import plan
from batchcall._validate import Validator

# The files' times are fixed (tests/data/make_fixtures.py), so "now" is too: well before them,
# and after the one row meant to be in the past.
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def run(path: Path, **options: object) -> dict[int, Checked]:
    """Load, validate (at NOW) and plan `path` with `options`: each row's outcome by number."""
    settings = Settings(from_number=FROM, script_id=SCRIPT, **options)  # type: ignore[arg-type]
    table = open_table(path, settings)
    validator = Validator(table, settings, now=NOW)
    return {c.row: c for c in plan(map(validator.check, table), allow_duplicates=False)}


def body(checked: Checked) -> dict[str, object]:
    """The request body this row would send."""
    assert checked.request is not None, checked.error
    return checked.request.body()


MESSY_OUTCOMES = {
    1: None,
    3: None,
    4: "damaged_phone",
    5: "invalid_phone",
    6: "missing_phone",
    7: "duplicate",
    8: "missing_timezone",
    9: "past_scheduled_time",
    10: "invalid_scheduled_time",
    11: None,
    12: None,
    13: "invalid_scheduled_time",
    15: None,
}


@pytest.mark.parametrize("name", ["messy_cp1252.csv", "messy_utf8_bom.csv"])
def test_messy_export_gives_each_row_its_outcome(name: str) -> None:
    """A CRM export (cp1252 with semicolons, or UTF-8 with a BOM) gets one right code per row,
    and its blank lines get no row at all."""
    rows = run(DATA / name)
    assert {n: c.error_code for n, c in rows.items()} == MESSY_OUTCOMES
    assert rows[7].outcome == "duplicate" and "row 1" in (rows[7].error or "")
    assert "--date-format" in (rows[13].error or "")


@pytest.mark.parametrize("name", ["messy_cp1252.csv", "messy_utf8_bom.csv"])
def test_messy_export_sends_exactly_the_intended_calls(name: str) -> None:
    """Every row that would be sent carries the row's own number in E.164, its trimmed
    non-ASCII names, its objects and its time in UTC, and nothing for empty cells."""
    rows = run(DATA / name)
    assert body(rows[1]) == {
        "from_number": FROM,
        "script_id": SCRIPT,
        "contact": {"phone_number": "+61429069971", "first_name": "Zoë", "last_name": "O'Brien"},
        "objects": {"policy": {"number": "P-1001"}},
        "scheduled_time": "2030-03-01T22:30:00Z",
    }
    assert body(rows[3])["contact"] == {
        "phone_number": "+61298765432",
        "first_name": "José",
        "last_name": "Müller",
    }
    assert body(rows[11]) == {
        "from_number": FROM,
        "script_id": SCRIPT,
        "contact": {
            "phone_number": "+61412345681",
            "first_name": '=HYPERLINK("http://example.com")',
            "last_name": "Ng",
        },
    }
    assert body(rows[12])["contact"]["phone_number"] == "+442079460958"  # type: ignore[index]
    assert body(rows[12])["scheduled_time"] == "2030-03-02T09:00:00Z"
    assert body(rows[15])["contact"] == {
        "phone_number": "+61412345683",
        "first_name": "Ian",
        "last_name": "Ward",
    }


def test_cp1252_and_utf8_copies_of_one_sheet_load_the_same_cells() -> None:
    """The same export saved in cp1252 and in UTF-8 with a BOM reads to identical cells,
    including the header that the BOM sits in front of."""
    settings = Settings()
    legacy = open_table(DATA / "messy_cp1252.csv", settings)
    modern = open_table(DATA / "messy_utf8_bom.csv", settings)
    assert legacy.header == modern.header
    assert legacy.header[0] == "Phone Number"
    assert list(legacy) == list(modern)


def test_naive_times_are_read_in_the_timezone_option() -> None:
    """With --timezone, a time without an offset is read in that zone and sent in UTC."""
    rows = run(DATA / "messy_cp1252.csv", timezone="Australia/Sydney")
    assert rows[8].error_code is None
    assert body(rows[8])["scheduled_time"] == "2030-03-01T22:30:00Z"  # 09:30 AEDT


def test_unknown_columns_are_named_in_a_warning_and_kept_for_the_results() -> None:
    """A column that maps to no field is not sent; a warning names it and its cells remain."""
    table = open_table(DATA / "messy_cp1252.csv", Settings())
    assert table.unknown == ["Notes"]
    assert any("'Notes'" in w for w in table.warnings)
    first = next(iter(table))
    assert first.cells[table.header.index("Notes")] == "VIP"


def test_xlsx_numeric_and_datetime_cells_become_exact_text() -> None:
    """Excel's numeric phone cells come back as their digits (no `.0`, leading zero restored by
    the region) and datetime cells are read in --timezone; fractions are flagged as damage."""
    rows = run(DATA / "contacts.xlsx", timezone="Australia/Sydney")
    assert rows[1].cells[0] == "429069971"
    assert body(rows[1])["contact"] == {
        "phone_number": "+61429069971",
        "first_name": "Zoë",
        "last_name": "O'Brien",
    }
    assert body(rows[1])["scheduled_time"] == "2030-03-01T22:30:00Z"
    assert body(rows[1])["objects"] == {"policy": {"number": "1001"}}
    assert body(rows[2])["contact"]["phone_number"] == "+61298765432"  # type: ignore[index]
    assert rows[3].error_code == "damaged_phone"
    assert rows[4].error_code == "damaged_phone"
    assert 5 not in rows  # the blank row
    assert rows[6].error_code == "past_scheduled_time"
    assert body(rows[7])["scheduled_time"] == "2030-03-01T23:00:00Z"


def test_xlsx_without_timezone_reports_datetime_cells_as_missing_timezone() -> None:
    """An Excel datetime has no zone; without --timezone or a timezone column the row says so."""
    rows = run(DATA / "contacts.xlsx")
    assert rows[1].error_code == "missing_timezone"
    assert "--timezone" in (rows[1].error or "")


def test_xlsx_second_sheet_is_read_only_when_named() -> None:
    """The first sheet is the default; --sheet picks another by name or by 1-based position."""
    for sheet in ("Archive", "2"):
        rows = run(DATA / "contacts.xlsx", sheet=sheet)
        assert [body(c)["contact"] for c in rows.values()] == [
            {"phone_number": "+61412345699", "first_name": "Old"}
        ]


def test_missing_sheet_is_an_input_error_listing_the_sheets() -> None:
    """Asking for a sheet the workbook lacks stops the run and lists the sheets it has."""
    with pytest.raises(InputError, match="'Contacts', 'Archive'"):
        open_table(DATA / "contacts.xlsx", Settings(sheet="Leads"))


def test_ods_from_libreoffice_reads_like_xlsx() -> None:
    """An OpenDocument sheet gives the same digits, times and damage flags as the xlsx."""
    rows = run(DATA / "contacts.ods", timezone="Australia/Sydney")
    assert body(rows[1])["contact"]["phone_number"] == "+61429069971"  # type: ignore[index]
    assert body(rows[1])["scheduled_time"] == "2030-03-01T22:30:00Z"
    assert body(rows[2])["scheduled_time"] == "2030-03-01T23:00:00Z"
    assert rows[3].error_code == "damaged_phone"


@pytest.mark.parametrize("name", ["tabs.tsv", "pipes.txt"])
def test_tab_and_pipe_delimited_text_is_sniffed(name: str) -> None:
    """TSV and pipe-delimited TXT files are split on the delimiter they use."""
    rows = run(DATA / name)
    assert [body(c)["contact"] for c in rows.values()] == [
        {"phone_number": "+61429069971", "first_name": "Zoë"},
        {"phone_number": "+61298765432", "first_name": "José"},
    ]


def test_two_phone_columns_stop_the_run_and_say_how_to_pick_one() -> None:
    """A CRM export with Phone and Mobile is never resolved by guessing."""
    with pytest.raises(InputError) as info:
        open_table(DATA / "two_phones.csv", Settings())
    message = str(info.value)
    assert "'Phone'" in message and "'Mobile'" in message
    assert "[columns]" in message and "batchcall.toml" in message


def test_columns_mapping_picks_one_of_two_phone_columns() -> None:
    """With `[columns] phone_number = "Mobile"` the mobile is sent and Phone passes through."""
    rows = run(DATA / "two_phones.csv", columns={"phone_number": "mobile"})
    assert body(rows[1])["contact"] == {"phone_number": "+61429069971"}
    table = open_table(DATA / "two_phones.csv", Settings(columns={"phone_number": "Mobile"}))
    assert table.unknown == ["Name", "Phone"]
