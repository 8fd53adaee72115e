"""How the loader reads headers, encodings and awkward text files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from batchcall._config import Settings
from batchcall._errors import InputError
from batchcall._load import file_sha256, open_table


def write(tmp_path: Path, data: str | bytes, name: str = "in.csv") -> Path:
    path = tmp_path / name
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("\ufeffPhone", "phone_number"),
        ("  MOBILE\xa0", "phone_number"),
        ("Phone-Number", "phone_number"),
        ("phone__number", "phone_number"),
        ("Tel", "phone_number"),
        ("FirstName", "first_name"),
        ("given-name", "first_name"),
        ("Family Name", "last_name"),
        ("Surname", "last_name"),
        ("Scheduled_At", "scheduled_time"),
        ("call time", "scheduled_time"),
        ("Time Zone", "timezone"),
        ("Notes", None),
        ("TIMEZONE", "timezone"),
        ("From-Number", "from_number"),
        ("Script ID", "script_id"),
    ],
)
def test_headers_match_fields_whatever_their_case_and_separators(
    tmp_path: Path, header: str, field: str | None
) -> None:
    """Headers match ignoring case, BOM, NBSP and space/-/_ differences, through the aliases;
    a header that matches no field is named in a warning instead."""
    if field == "phone_number":
        table = open_table(write(tmp_path, f"{header},name\n0429069971,Ann\n"), Settings())
        assert table.fields == {"phone_number": 0}
        return
    table = open_table(write(tmp_path, f"phone,{header}\n0429069971,x\n"), Settings())
    assert table.fields == {"phone_number": 0} | ({field: 1} if field else {})
    assert table.unknown == ([] if field else [header])
    # A header that matches nothing is named in a warning; one that matches is not.
    assert any(repr(header) in w for w in table.warnings) is (field is None)


def test_missing_phone_column_names_what_was_found_and_looked_for(tmp_path: Path) -> None:
    """A file without a phone column stops the run, listing its columns and the aliases."""
    with pytest.raises(InputError) as info:
        open_table(write(tmp_path, "Name,Email\nAnn,a@example.com\n"), Settings())
    message = str(info.value)
    assert "'Name', 'Email'" in message
    assert "'phone'" in message and "'mobile'" in message and "[columns]" in message


def test_mapping_to_a_missing_column_or_unknown_field_is_an_input_error(tmp_path: Path) -> None:
    """A [columns] mapping that names no such column, or no such field, stops the run."""
    path = write(tmp_path, "Cell,Name\n0429069971,Ann\n")
    with pytest.raises(InputError, match=r"no such column.*'Cell', 'Name'"):
        open_table(path, Settings(columns={"phone_number": "Mobile Phone"}))
    with pytest.raises(InputError, match="unknown field 'fone'"):
        open_table(path, Settings(columns={"fone": "Cell"}))
    table = open_table(path, Settings(columns={"phone_number": "cell", "crm.name": "Name"}))
    assert (table.fields, table.objects) == ({"phone_number": 0}, {("crm", "name"): 1})


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("in.json", "{}", "Unsupported input file type '.json'"),
        ("in.csv", "", "no header row"),
        ("in.csv", "\n\n ,  \n", "no header row"),
        ("in.xlsx", "phone\n0429069971\n", "Cannot read"),
        ("in.csv", b"PK\x03\x04\x00\x00binary", "looks binary"),
    ],
)
def test_unusable_files_are_refused_with_the_reason(
    tmp_path: Path, name: str, data: str | bytes, message: str
) -> None:
    """An empty, binary, mislabelled or unsupported file stops the run (exit 2) and says why."""
    with pytest.raises(InputError, match=message) as info:
        open_table(write(tmp_path, data, name), Settings())
    assert info.value.exit_code == 2


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    """A path that does not exist is reported, for both the table and its hash."""
    with pytest.raises(InputError, match="does not exist"):
        open_table(tmp_path / "nope.csv", Settings())
    with pytest.raises(InputError, match="Cannot read"):
        file_sha256(tmp_path / "nope.csv")


def test_cp1252_is_detected_even_when_the_first_accent_is_far_down(tmp_path: Path) -> None:
    """A cp1252 file that looks like UTF-8 for its first megabytes is still read as cp1252."""
    lines = ["phone,first_name"] + ["0429069971,Ann"] * 120_000 + ["0429069972,Zoë"]
    path = write(tmp_path, ("\r\n".join(lines) + "\r\n").encode("cp1252"))
    rows = list(open_table(path, Settings()))
    assert rows[-1].cells == ("0429069972", "Zoë")
    assert rows[-1].row == 120_001


def test_encoding_option_overrides_detection(tmp_path: Path) -> None:
    """--encoding reads a file the detector would get wrong, and an unknown name is refused."""
    path = write(tmp_path, "phone;name\n0429069971;Ζωή\n".encode("iso8859_7"))
    (row,) = open_table(path, Settings(encoding="iso8859_7"))
    assert row.cells == ("0429069971", "Ζωή")
    with pytest.raises(InputError, match="Unknown --encoding"):
        open_table(path, Settings(encoding="klingon"))


def test_blank_and_ragged_records_and_quoted_newlines(tmp_path: Path) -> None:
    """Blank records are skipped but counted, short records are padded, long ones cut to the
    header, and a quoted line break stays inside its cell."""
    path = write(
        tmp_path,
        'phone,first_name,notes\n\n0429069971\n,,\n0429069972,"Ann\nMarie",x,extra\n',
    )
    rows = list(open_table(path, Settings()))
    assert [(r.row, r.cells) for r in rows] == [
        (2, ("0429069971", "", "")),
        (4, ("0429069972", "Ann\nMarie", "x")),
    ]


def test_rows_can_be_read_again_from_the_top(tmp_path: Path) -> None:
    """Each iteration of a table starts again at its first row (the runner reads twice)."""
    table = open_table(write(tmp_path, "phone\n0429069971\n0429069972\n"), Settings())
    assert list(table) == list(table)


def test_our_results_file_reloads_without_its_outcome_columns(tmp_path: Path) -> None:
    """A results.csv we wrote is recognised: outcome columns go to `prior`, and neutralised cells
    and headers come back as they were."""
    path = write(
        tmp_path,
        "\ufeff'-notes,phone,row,outcome,call_id,contact_id,http_status,error_code,error,"
        "attempts,phone_e164,scheduled_time_sent,time_moved\r\n"
        "'=SUM(A1),'+61429069971,3,failed,,,400,bad_request,'-oops,1,+61429069971,,\r\n",
    )
    table = open_table(path, Settings())
    assert table.is_results
    assert table.header == ["-notes", "phone"]
    assert table.unknown == ["-notes"]
    (row,) = table
    assert row.cells == ("=SUM(A1)", "+61429069971")
    assert row.prior is not None
    assert (row.prior["row"], row.prior["outcome"], row.prior["error"]) == ("3", "failed", "-oops")


def test_file_sha256_is_the_hash_of_the_bytes(tmp_path: Path) -> None:
    """The input's hash is of its exact bytes, so a re-saved file counts as a new input."""
    data = b"phone\n0429069971\n"
    assert file_sha256(write(tmp_path, data)) == hashlib.sha256(data).hexdigest()
    resaved = file_sha256(write(tmp_path, data.replace(b"\n", b"\r\n"), "other.csv"))
    assert resaved != hashlib.sha256(data).hexdigest()
