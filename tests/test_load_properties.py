"""Properties of the loader and validator, over many generated files (hypothesis)."""

from __future__ import annotations

import csv
import io
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import phonenumbers
from e2e_support import FROM, SCRIPT
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from batchcall._config import Settings
from batchcall._errors import InputError
from batchcall._journal import ReportRow
from batchcall._load import open_table
from batchcall._models import Checked
from batchcall._report import write_results
from batchcall._validate import Validator

NOW = datetime(2026, 6, 1, tzinfo=UTC)  # fixed: the generated times are judged against it
TYPES = (
    phonenumbers.PhoneNumberType.FIXED_LINE,
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.TOLL_FREE,
)
FORMATS = (
    phonenumbers.PhoneNumberFormat.E164,
    phonenumbers.PhoneNumberFormat.INTERNATIONAL,
    phonenumbers.PhoneNumberFormat.NATIONAL,
)
# Every (region, example number) phonenumbers ships for the common types: several hundred.
EXAMPLES = [
    (region, number)
    for region in sorted(phonenumbers.SUPPORTED_REGIONS)
    for kind in TYPES
    if (number := phonenumbers.example_number_for_type(region, kind)) is not None
]
SLOW = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

cell_text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30
)


def write_csv(directory: Path, rows: list[list[str]], *, encoding: str = "utf-8") -> Path:
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    path = directory / "in.csv"
    path.write_bytes(buffer.getvalue().encode(encoding, errors="replace"))
    return path


def validate_all(path: Path, options: Settings) -> list[Checked]:
    table = open_table(path, options)
    validator = Validator(table, options, now=NOW)
    return [validator.check(src) for src in table]


@SLOW
@given(
    picks=st.lists(
        st.tuples(st.sampled_from(EXAMPLES), st.sampled_from(FORMATS), st.sampled_from(["", " "])),
        min_size=1,
        max_size=8,
    ),
    region_pick=st.integers(min_value=0),
)
def test_any_valid_number_in_any_format_loads_back_to_its_e164(
    picks: list[tuple[tuple[str, phonenumbers.PhoneNumber], int, str]], region_pick: int
) -> None:
    """A valid number written in E.164, international format, or national format with its own
    region as --region, is sent as exactly that number in E.164."""
    region = picks[region_pick % len(picks)][0][0]
    rows, expected = [["phone"]], []
    for (number_region, number), fmt, pad in picks:
        if fmt == phonenumbers.PhoneNumberFormat.NATIONAL and number_region != region:
            fmt = phonenumbers.PhoneNumberFormat.INTERNATIONAL
        rows.append([pad + phonenumbers.format_number(number, fmt) + pad])
        expected.append(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    with tempfile.TemporaryDirectory() as directory:
        path = write_csv(Path(directory), rows)
        checked = validate_all(path, Settings(from_number=FROM, script_id=SCRIPT, region=region))
    assert [c.error for c in checked] == [None] * len(expected)
    assert [c.request.contact.phone_number for c in checked if c.request] == expected


@SLOW
@given(
    header=st.lists(
        st.one_of(
            st.sampled_from(
                [
                    "phone",
                    "first name",
                    "surname",
                    "call time",
                    "timezone",
                    "from_number",
                    "script_id",
                    "policy.number",
                ]
            ),
            cell_text,
        ),
        min_size=1,
        max_size=8,
    ),
    phone_at=st.one_of(st.none(), st.integers(min_value=0, max_value=8)),
    body=st.lists(st.lists(cell_text, max_size=9), max_size=8),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "cp1252"]),
    zone=st.sampled_from([None, "Australia/Sydney"]),
    date_format=st.sampled_from([None, "%d/%m/%Y %H:%M"]),
)
def test_no_input_crashes_the_loader_or_validator(
    header: list[str],
    phone_at: int | None,
    body: list[list[str]],
    encoding: str,
    zone: str | None,
    date_format: str | None,
) -> None:
    """Whatever the cells hold, the file is refused with an input error, or every row comes back
    either as a request or as an error code with a sentence."""
    options = Settings(from_number=FROM, script_id=SCRIPT, timezone=zone, date_format=date_format)
    if phone_at is not None:  # most random headers lack a phone column; most files have one
        header = [h for h in header if h != "phone"]
        header.insert(phone_at, "phone")
    with tempfile.TemporaryDirectory() as directory:
        path = write_csv(Path(directory), [header, *body], encoding=encoding)
        try:
            checked = validate_all(path, options)
        except InputError as exc:
            assert str(exc)
            return
    for c in checked:
        assert (c.request is None) == (c.outcome == "invalid")
        if c.request is None:
            assert c.error_code and c.error
        else:
            assert "" not in c.request.body()["contact"].values()


@SLOW
@given(
    people=st.lists(
        st.tuples(
            st.one_of(
                st.sampled_from(EXAMPLES).map(
                    lambda ex: phonenumbers.format_number(
                        ex[1], phonenumbers.PhoneNumberFormat.INTERNATIONAL
                    )
                ),
                cell_text,
            ),
            cell_text,
            cell_text,
            cell_text,
            st.sampled_from(["", "2030-03-02 09:30+11:00", "2020-01-01T00:00:00Z", "soon"]),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_results_csv_reloads_to_the_same_requests(
    people: list[tuple[str, str, str, str, str]],
) -> None:
    """A results.csv we wrote, formula-looking cells and all, loads back to the same requests
    and errors as the input it came from, with its outcome columns set aside."""
    header = ["Phone", "first_name", "last_name", "policy.number", "scheduled_time"]
    options = Settings(from_number=FROM, script_id=SCRIPT)
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        first_table = open_table(write_csv(directory, [header, *map(list, people)]), options)
        validator = Validator(first_table, options, now=NOW)
        first = [validator.check(src) for src in first_table]
        run_dir = directory / "run"
        run_dir.mkdir()
        write_results(run_dir, first_table.header, [_report_row(c) for c in first])
        table = open_table(run_dir / "results.csv", options)
        again = [Validator(table, options, now=NOW).check(src) for src in table]
        prior = [src.prior for src in table]
    assert table.is_results
    assert table.header == first_table.header
    assert [_sent(c) for c in again] == [_sent(c) for c in first]
    assert [c.cells for c in again] == [c.cells for c in first]
    assert [p["row"] if p else None for p in prior] == [str(c.row) for c in first]


def _sent(c: Checked) -> object:
    return c.request.body() if c.request is not None else c.error_code


def _report_row(c: Checked) -> ReportRow:
    return ReportRow(
        row=c.row,
        cells=list(c.cells),
        state=c.outcome,
        call_id=None,
        contact_id=None,
        http_status=None,
        error_code=c.error_code,
        error=c.error,
        attempts=0,
        phone_e164=c.phone_e164,
        scheduled_time_sent=c.request.scheduled_time if c.request else None,
        time_moved=c.time_moved,
    )


@SLOW
@given(
    data=st.binary(max_size=400),
    suffix=st.sampled_from([".csv", ".txt", ".xlsx", ".ods"]),
)
def test_arbitrary_bytes_are_refused_or_read_never_crash(data: bytes, suffix: str) -> None:
    """A damaged or mislabelled file is refused with an input error naming it, or read as rows."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"in{suffix}"
        path.write_bytes(b"phone\r\n" + data if suffix in (".csv", ".txt") else data)
        try:
            checked = validate_all(path, Settings(from_number=FROM, script_id=SCRIPT))
        except InputError as exc:
            assert path.name in str(exc) or "column" in str(exc)
            return
    assert all(c.request is not None or c.error_code for c in checked)


ROUND_TRIP = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
any_cell = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=20
)
risky_cell = st.sampled_from(["=", "+", "-", "@", "\t", "\r", "'", " ", "'=", "+61 "]).flatmap(
    lambda head: any_cell.map(lambda tail: head + tail)
)


@ROUND_TRIP
@given(
    rows=st.lists(
        st.tuples(
            st.one_of(
                st.sampled_from(EXAMPLES).map(
                    lambda ex: phonenumbers.format_number(
                        ex[1], phonenumbers.PhoneNumberFormat.INTERNATIONAL
                    )
                ),
                any_cell,
                risky_cell,
            ),
            st.one_of(any_cell, risky_cell),
            st.one_of(any_cell, risky_cell),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_results_csv_keeps_every_input_cell_byte_for_byte_but_what_could_execute(
    rows: list[tuple[str, str, str]],
) -> None:
    """Through a real `batchcall validate`: every cell of results.csv, read as raw CSV, is the
    input's cell byte for byte (spaces, quotes, line breaks and all), or, only when a
    spreadsheet could run it as a formula, that cell behind one apostrophe; phone_e164 never
    carries one."""
    import batchcall
    from batchcall._csvsafe import could_execute

    header = ["Phone", "first_name", "note"]
    assume(any(cell.strip() for row in rows for cell in row))  # else nothing to validate
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        source = write_csv(directory, [header, *map(list, rows)])
        summary = batchcall.validate(
            source, from_number=FROM, script_id=SCRIPT, reports_dir=directory / "r"
        )
        with open(summary.results_csv, encoding="utf-8-sig", newline="") as fh:
            written = list(csv.reader(fh))
    assert written[0][:3] == header
    kept = [row for row in rows if any(cell.strip() for cell in row)]
    assert len(written) - 1 == len(kept)
    e164_at = written[0].index("phone_e164")
    for line, row in zip(written[1:], kept, strict=True):
        for out, cell in zip(line[:3], row, strict=True):
            apostrophe_led = cell[:1] == "'" and cell[1:2] in set("=+-@\t\r'")
            if could_execute(cell) or apostrophe_led:
                assert out == "'" + cell
            else:
                assert out == cell
        assert not line[e164_at].startswith("'")
        if line[e164_at]:
            assert phonenumbers.is_valid_number(phonenumbers.parse(line[e164_at]))


_pieces = st.lists(
    st.sampled_from(["a", "b,c", '"q"', '"x\ny"', '"r\r\ns"', '"', "\n", "\r\n", "\r", ",", " "]),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(pieces=_pieces, tall=st.integers(0, 3))
def test_the_quick_structure_pass_agrees_with_the_record_by_record_one(pieces, tall):
    """Whenever the one-call pass over a file's records answers, it gives what the record by
    record pass does: the line the last record began on and the last records; any file it
    cannot vouch for (open quotes, tall records, a multi-line last record) goes the slow way."""
    from batchcall import _load

    text = "".join(pieces) + "\n" * tall + ('"tall\n' + "x\n" * 120 + '"\n' if tall == 3 else "")
    with tempfile.TemporaryDirectory() as where:
        path = Path(where) / "f.csv"
        path.write_text(text, encoding="utf-8", newline="")
        try:
            slow = _load._each_record(path, "utf-8", ",")
        except InputError:
            slow = None
        quick = _load._quick_records(path, "utf-8", ",")
    if quick is not None:
        assert quick == slow


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(
        st.sampled_from(["a", "b,c", "é", "x" * 9, "\n", "\r\n", "\r", ",", " ", "\t"]),
        max_size=60,
    ),
    chunk=st.sampled_from([1, 2, 3, 7, 64, 1 << 20]),
)
def test_a_file_without_quotes_is_vouched_for_from_its_lines_as_the_records_pass_would(
    pieces, chunk
):
    """A file without a quote needs no pass over its records: its line count and last lines,
    seen as its text is checked (in chunks that may cut a CRLF or a line anywhere), give the
    record by record pass's answer, or say that they cannot."""
    from batchcall import _load

    text = "".join(pieces)
    saved = _load._CHUNK_BYTES
    with tempfile.TemporaryDirectory() as where:
        path = Path(where) / "f.csv"
        path.write_text(text, encoding="utf-8", newline="")
        slow = _load._each_record(path, "utf-8", ",")
        _load._CHUNK_BYTES = chunk
        try:
            seen = _load._check_text(path, "utf-8")
        finally:
            _load._CHUNK_BYTES = saved
    assert not seen.quoted
    quick = _load._unquoted_records(seen, ",")
    if quick is not None:
        assert quick == slow
    if chunk == 1 << 20:
        assert quick is not None  # the whole file is in the last two chunks
