"""Every encoding a tool writes is read without --encoding, or the run stops and names it.

The names are the ones a wrong code page mangles ("Zoë" as "Zo‘", "José" as "JosŽ" when Mac
Roman is read as cp1252). Each file is written in its encoding and read with no flag; its
names must reach a real sandbox exactly as written, or the run must stop before sending with a
message naming the encoding to pass.
"""

from __future__ import annotations

import codecs
import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from e2e_support import FROM, SCRIPT, cli

from batchcall import _encodings as encodings
from batchcall._config import Settings
from batchcall._errors import InputError
from batchcall._load import open_table
from batchcall._runner import run
from batchcall.sandbox import SandboxConfig, start_sandbox

NAMES = [("Zoë", "O'Brien"), ("José", "García"), ("Hans", "Müller"), ("Siobhán", "Ó Súilleabháin")]
PHONES = ["+61412345601", "+61412345602", "+61412345603", "+61412345604"]
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def contacts_text(*, delimiter: str = ",", eol: str = "\r\n") -> str:
    buffer = io.StringIO(newline="")
    # Every cell quoted: the csv module quotes a line break only if it is in `eol`.
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator=eol, quoting=csv.QUOTE_ALL)
    writer.writerow(["First Name", "Last Name", "Mobile", "Notes"])
    for (first, last), phone in zip(NAMES, PHONES, strict=True):
        writer.writerow([first, last, "0" + phone[3:], "line one\nline two"])
    return buffer.getvalue()


def encode(text: str, encoding: str) -> bytes:
    """`text` as a tool writes it in `encoding`; `+bom` adds the byte-order mark."""
    codec, _, bom = encoding.partition("+")
    data = text.encode(codec)
    if bom:
        data = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE}[codec] + data
    return data


def _encodes_the_names(codec: str) -> bool:
    try:
        contacts_text().encode(codec)
    except UnicodeEncodeError:
        return False
    return True


UNICODE = ["utf-8", "utf-8-sig", "utf-16-le+bom", "utf-16-be+bom", "utf-16-le", "utf-16-be"]
# Every legacy code page batchcall considers that can write these names at all.
LEGACY = [codec for codec in encodings.CANDIDATES if _encodes_the_names(codec)]


@pytest.fixture(scope="module")
def server():
    with start_sandbox(SandboxConfig()) as sandbox:
        yield sandbox


def names_sent(server, path: Path, reports: Path) -> list[tuple[str, str, str]]:
    """Run `path` against the sandbox; the (phone, first, last) of the calls it created."""
    before = {c["call_id"] for c in server.calls()}
    settings = Settings(
        from_number=FROM, script_id=SCRIPT, base_url=server.base_url, reports_dir=reports
    )
    summary = run(path, settings=settings, api_key=server.api_key)
    assert summary.exit_code == 0
    calls = [c for c in server.calls() if c["call_id"] not in before]
    return sorted((c["phone_number"], c["first_name"], c["last_name"]) for c in calls)


EXPECTED = sorted((phone, first, last) for (first, last), phone in zip(NAMES, PHONES, strict=True))


@pytest.mark.parametrize("encoding", UNICODE + LEGACY)
def test_names_survive_every_encoding_read_without_a_flag(server, tmp_path, encoding):
    """A file in UTF-8 (BOM or not), UTF-16 (either byte order, BOM or not) or any legacy code
    page that can write these names reaches the server with the names exactly as typed, or
    stops before sending and names the encoding to pass."""
    delimiter = "\t" if encoding.startswith("utf-16") else ","
    eol = "\r" if encoding == "mac_roman" else "\r\n"  # Excel for Mac ends lines with CR
    path = tmp_path / "contacts.csv"
    path.write_bytes(encode(contacts_text(delimiter=delimiter, eol=eol), encoding))
    try:
        sent = names_sent(server, path, tmp_path / "r")
    except InputError as exc:
        assert exc.exit_code == 2
        assert "--encoding" in str(exc) and encoding in str(exc)
        assert not (tmp_path / "r").exists()
        return
    assert sent == EXPECTED


def test_the_western_and_mac_code_pages_are_read_not_refused(tmp_path):
    """The encodings Excel, Outlook and Salesforce write for Western names are recognised
    outright: none of them needs --encoding."""
    for codec in ("cp1252", "mac_roman", "iso8859_15", "latin-1"):
        path = tmp_path / f"{codec}.csv"
        path.write_bytes(contacts_text().encode(codec))
        rows = list(open_table(path, Settings()))
        assert [r.cells[:2] for r in rows] == NAMES, codec


def test_mac_roman_is_not_silently_read_as_cp1252(tmp_path):
    """Excel for Mac's "CSV (Macintosh)" decodes as cp1252 without an error, but as "Zo‘" and
    "JosŽ": batchcall reads it as Mac Roman and says so in the run's warnings."""
    path = tmp_path / "mac.csv"
    path.write_bytes(contacts_text(eol="\r").encode("mac_roman"))
    assert contacts_text().encode("mac_roman").decode("cp1252").count("Zo‘") == 1
    table = open_table(path, Settings())
    assert [r.cells[:2] for r in table] == NAMES
    assert any("mac_roman" in w for w in table.warnings)


def test_cr_only_line_ends_split_records_and_keep_quoted_breaks(tmp_path):
    """A file whose lines end in CR alone (classic Mac) has one record per line, and a quoted
    cell keeps its own line break."""
    path = tmp_path / "cr.csv"
    path.write_bytes(contacts_text(eol="\r").encode("mac_roman"))
    rows = list(open_table(path, Settings()))
    assert [r.row for r in rows] == [1, 2, 3, 4]
    assert rows[0].cells[3] == "line one\nline two"


def test_utf16_without_accents_is_text_not_binary(tmp_path):
    """Excel's "Unicode Text" of a sheet with no accents is full of NUL bytes; it is read as
    UTF-16, not refused as binary."""
    path = tmp_path / "plain.txt"
    path.write_bytes(
        codecs.BOM_UTF16_LE + "Mobile\tName\r\n0412345601\tAnn\r\n".encode("utf-16-le")
    )
    assert [r.cells for r in open_table(path, Settings())] == [("0412345601", "Ann")]
    bare = tmp_path / "bare.txt"
    bare.write_bytes("Mobile\tName\r\n0412345601\tAnn\r\n".encode("utf-16-be"))
    assert [r.cells for r in open_table(bare, Settings())] == [("0412345601", "Ann")]


def test_a_nul_character_in_utf16_text_is_still_damage(tmp_path):
    """The NUL check reads decoded text, so UTF-16's own zero bytes pass, but a real NUL
    character in the text still stops the run, naming its line."""
    path = tmp_path / "nul.txt"
    text = "Mobile\tName\r\n0412345601\tA\x00nn\r\n"
    path.write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    with pytest.raises(InputError, match="NUL byte on line 2"):
        open_table(path, Settings())


def test_a_damaged_utf16_file_says_utf16(tmp_path):
    """A UTF-16 file cut in the middle of a character is refused with a message that names
    UTF-16, not cp1252."""
    path = tmp_path / "cut.txt"
    path.write_bytes(codecs.BOM_UTF16_LE + "Mobile\r\n0412345601\r\n".encode("utf-16-le") + b"0")
    with pytest.raises(InputError, match="UTF-16 BOM"):
        open_table(path, Settings())


def test_an_undecidable_file_stops_naming_each_reading(tmp_path):
    """When two code pages read the bytes differently and both readings look like text (an ISO
    Latin-9 "€5", which cp1252 reads as "¤5" and Mac Roman as "§5"), the run stops before
    sending, shows each reading and asks for --encoding."""
    path = tmp_path / "euro.csv"
    path.write_bytes("Mobile,Notes\r\n0412345601,paid €5\r\n".encode("iso8859_15"))
    with pytest.raises(InputError) as info:
        open_table(path, Settings())
    message = str(info.value)
    assert info.value.exit_code == 2
    assert "'¤5'" in message and "'§5'" in message and "'€5'" in message
    assert "--encoding" in message and "Nothing was sent" in message


def test_an_undecidable_file_sends_nothing_from_the_cli(tmp_path):
    """Through the command line the same file exits 2, sends nothing and leaves no run
    directory behind."""
    path = tmp_path / "euro.csv"
    path.write_bytes("Mobile,Notes\r\n0412345601,paid €5\r\n".encode("iso8859_15"))
    done = cli(
        "run", str(path), "--from-number", FROM, "--script-id", SCRIPT,
        "--base-url", "http://127.0.0.1:9", key="k", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--encoding" in done.stderr
    assert not (tmp_path / "reports").exists()
    rerun = cli(
        "validate", str(path), "--from-number", FROM, "--script-id", SCRIPT,
        "--encoding", "iso8859_15", key=None, cwd=tmp_path,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr


def test_the_encoding_is_judged_on_the_rare_byte_far_down(tmp_path):
    """A Mac Roman file whose only accent is on its 120,001st row is still read as Mac Roman:
    every distinct byte value is looked at wherever it is."""
    lines = ["Mobile,First Name"] + ["0412345601,Ann"] * 120_000 + ["0412345602,Zoë"]
    path = tmp_path / "far.csv"
    path.write_bytes("\r".join(lines).encode("mac_roman") + b"\r")
    rows = list(open_table(path, Settings()))
    assert rows[-1].cells == ("0412345602", "Zoë")


@pytest.mark.parametrize(
    ("codec", "names"),
    [
        ("cp1251", [("Иван", "Петров"), ("Мария", "Соколова")]),
        ("cp1250", [("Łukasz", "Wąsik"), ("Paweł", "Świątek")]),
        ("cp1253", [("Ζωή", "Παπαδοπούλου"), ("Γιώργος", "Νικολάου")]),
    ],
)
def test_other_scripts_are_read_when_no_western_reading_is_clean(tmp_path, codec, names):
    """Cyrillic, Polish or Greek names in their Windows code page: every Western reading breaks
    words ("Èâàí", "£ukasz"), so the page that reads them cleanly is used."""
    rows = [["Mobile", "First Name", "Last Name"]] + [
        [f"041234560{i}", first, last] for i, (first, last) in enumerate(names)
    ]
    path = tmp_path / "names.csv"
    path.write_bytes("".join(",".join(r) + "\r\n" for r in rows).encode(codec))
    assert [r.cells[1:] for r in open_table(path, Settings())] == names


@pytest.mark.parametrize(
    ("word", "broken"),
    [
        ("Zoë", False),
        ("Ó", False),
        ("Súilleabháin", False),
        ("O’Brien", False),
        ("MÜLLER", False),
        ("1º", False),
        ("Zo‘", True),  # Mac Roman "ë" read as cp1252
        ("JosŽ", True),
        ("MŸller", True),
        ("Sœilleabh‡in", True),
        ("Mu–oz", True),  # Mac Roman "ñ" read as cp1252
        ("Èâàí", True),  # Cyrillic read as cp1252
        ("ZoÎ", True),  # cp1252 "ë" read as Mac Roman
        ("Ä5", True),
    ],
)
def test_the_word_check_knows_a_mangled_name(word, broken):
    """A reading that breaks a word (a case flip, a symbol glued to letters, Cyrillic as
    accented Latin) is told from a real name."""
    assert bool(encodings.broken_words(word)) is broken
