"""Phone cells CRMs fill with several numbers or an extension get a code that says so."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from batchcall._config import Settings
from batchcall._load import open_table
from batchcall._models import Checked
from batchcall._validate import Validator, _normalise_phone

NOW = datetime(2026, 6, 1, tzinfo=UTC)
FROM = "+61291234567"
SCRIPT = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"


def check(tmp_path: Path, cell: str, **options: object) -> Checked:
    path = tmp_path / "in.csv"
    quoted = '"' + cell.replace('"', '""') + '"'
    path.write_text(f"phone,name\n{quoted},Zoë\n", encoding="utf-8")
    settings = Settings(from_number=FROM, script_id=SCRIPT, **options)
    table = open_table(path, settings)
    (row,) = list(table)
    return Validator(table, settings, now=NOW).check(row)


@pytest.mark.parametrize(
    "cell",
    [
        "0412 345 678 ::: 02 9876 5432",  # Google Contacts
        "0412 345 678, 02 9876 5432",  # Pipedrive, Salesforce reports
        "0412 345 678; 02 9876 5432",
        "0412 345 678 / 02 9876 5432",
        "0412 345 678\n02 9876 5432",  # a line break inside the cell
    ],
)
def test_a_cell_with_several_numbers_is_multiple_phones(tmp_path, cell):
    """A cell holding two numbers is not called: it gets `multiple_phones`, and the message
    names both numbers and the option that would call the first."""
    checked = check(tmp_path, cell)
    assert (checked.error_code, checked.request) == ("multiple_phones", None)
    assert "'0412 345 678'" in checked.error and "'02 9876 5432'" in checked.error
    assert "--multi-phone first" in checked.error and "+61412345678" in checked.error


def test_multi_phone_first_calls_the_first_valid_number(tmp_path):
    """With --multi-phone first the first valid number of the cell is called; an invalid
    first one is passed over."""
    checked = check(tmp_path, "12 3456 ::: 0412 345 678, 02 9876 5432", multi_phone="first")
    assert checked.request is not None
    assert checked.request.contact.phone_number == "+61412345678"


def test_multi_phone_first_with_no_valid_number_is_invalid(tmp_path):
    """When none of the numbers is valid, --multi-phone first has nothing to call."""
    checked = check(tmp_path, "0412 34 ::: 0298 76", multi_phone="first")
    assert checked.error_code == "invalid_phone"


@pytest.mark.parametrize(
    "cell",
    ["0429 069 971 x123", "0429069971 ext. 5", "+61 2 9876 5432;ext=5", "02 9876 5432 #5",
     "(02) 9876 5432 extension 44", "0429069971 ext 12"],
)  # fmt: skip
def test_a_number_with_an_extension_is_phone_extension(tmp_path, cell):
    """An extension cannot be dialled by the API: the row gets `phone_extension`, and the
    message says which number it would have rung."""
    checked = check(tmp_path, cell)
    assert (checked.error_code, checked.request) == ("phone_extension", None)
    assert "cannot dial" in checked.error and "+61" in checked.error


@pytest.mark.parametrize(
    ("cell", "code"),
    [
        ("089/123456", "invalid_phone"),  # a slash inside one number is not two numbers
        ("12345, 67890", "invalid_phone"),  # too short to be numbers
        ("0412 345 678, call after 5", "invalid_phone"),
        ("1-800-FLOWERS", "invalid_phone"),
    ],
)
def test_cells_that_are_neither_are_still_invalid_phone(tmp_path, cell, code):
    """Only cells made of whole numbers are multiple_phones; the rest stay invalid_phone."""
    assert check(tmp_path, cell).error_code == code


def test_a_plain_valid_number_takes_the_fast_path_unchanged():
    """A valid number is one parse: the same E.164 as before, no error."""
    assert _normalise_phone("0412 345 678", "AU") == ("+61412345678", None)
    assert _normalise_phone("+61 412 345 678", None) == ("+61412345678", None)


def test_the_multi_phone_option_is_on_the_command_line():
    """`--multi-phone first` is a run option, recorded with the run's settings."""
    from click.testing import CliRunner

    from batchcall._cli import main

    result = CliRunner().invoke(main, ["run", "--help"])
    assert "--multi-phone [reject|first]" in result.output
    assert Settings(multi_phone="first").recorded()["multi_phone"] == "first"
