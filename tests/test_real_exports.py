"""Real tools' exports, read without flags, end to end through the CLI to a real sandbox.

Every file in tests/data/real is written by make_real.py as its tool writes it (sources in
tests/data/SOURCES.md). For each, the table below was worked out by hand from that script:
every row's outcome, and for a scheduled row the exact number, names and time the server must
receive. A file that cannot be read without a choice (two phone columns) stops before sending,
and runs once the choice is made with --column.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from e2e_support import FROM, SCRIPT, cli, read_results

from batchcall.sandbox import SandboxConfig, start_sandbox

REAL = Path(__file__).parent / "data" / "real"


@dataclass(frozen=True)
class Call:
    """What the server must receive for a row: E.164 number, names, time (None: now)."""

    phone: str
    first: str
    last: str
    time: str | None = None


@dataclass(frozen=True)
class Case:
    file: str
    rows: dict[int, Call | str]  # row -> the call, or the row's error code
    options: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()  # fragments run.log must hold
    exit_code: int = field(default=1)


CASES = {
    "google contacts": Case(
        "google_contacts.csv",
        {
            1: Call("+61412345678", "Zoë", "O'Brien"),
            2: "multiple_phones",  # "0412 345 679 ::: 02 9876 5432"
            3: Call("+61298765433", "Hans", "Müller"),  # Phone 1 is the phone; Phone 2 is not
            4: "missing_phone",  # only Phone 2 is filled
            5: "phone_extension",  # "0412 345 682 ext. 5"
        },
    ),
    "outlook": Case(
        "outlook.csv",
        {
            1: Call("+61412345690", "Zoë", "O'Brien"),
            2: Call("+61412345691", "José", "García"),  # Mobile Phone, not Business Phone
            3: "missing_phone",  # a Business Phone only
            4: Call("+61412345692", "Siobhán", "Ó Súilleabháin"),
        },
        warnings=("read as cp1252",),
    ),
    "salesforce data export, mobile picked": Case(
        "salesforce_contact.csv",
        {
            1: Call("+61412345700", "Zoë", "O'Brien", "2030-03-04T23:30:00Z"),
            2: Call("+61412345701", "José", "García"),
            3: "phone_extension",  # "0412 345 702 x7"
            4: Call("+61412345703", "Siobhán", "Ó Súilleabháin", "2030-03-05T01:00:00Z"),
        },
        options=("--column", "phone_number=MobilePhone"),
    ),
    "salesforce report": Case(
        "salesforce_report.csv",
        {
            1: Call("+61412345710", "Zoë", "O'Brien"),
            2: Call("+61412345711", "José", "García"),
            3: "multiple_phones",  # "0412 345 712, 0412 345 713"
            4: Call("+61412345714", "Siobhán", "Ó Súilleabháin"),
        },
        warnings=("Skipped the report footer", "Grand Totals (4 records)"),
    ),
    "pipedrive": Case(
        "pipedrive_people.csv",
        {
            1: Call("+61412345720", "Zoë", "O'Brien"),
            2: "multiple_phones",  # "0412 345 721, 0412 345 722"
            3: "missing_phone",  # a work phone only
            4: Call("+61412345723", "Siobhán", "Ó Súilleabháin"),
        },
    ),
    "pipedrive, first of several": Case(
        "pipedrive_people.csv",
        {
            1: Call("+61412345720", "Zoë", "O'Brien"),
            2: Call("+61412345721", "José", "García"),
            3: "missing_phone",
            4: Call("+61412345723", "Siobhán", "Ó Súilleabháin"),
        },
        options=("--multi-phone", "first"),
    ),
    "mailchimp": Case(
        "mailchimp_members.csv",
        {
            1: Call("+61412345730", "Zoë", "O'Brien"),
            2: Call("+61412345731", "José", "García"),
            3: "phone_extension",  # "(02) 9876 5430 ext 12"
            4: "missing_phone",
        },
    ),
    "hubspot, mobile picked": Case(
        "hubspot_contacts.csv",
        {
            1: Call("+61412345740", "Zoë", "O'Brien"),
            2: Call("+61412345741", "José", "García"),
            3: "missing_phone",  # a Phone Number but no Mobile Phone Number
            4: Call("+61412345742", "Siobhán", "Ó Súilleabháin"),
        },
        options=("--column", "phone_number=Mobile Phone Number"),
    ),
    "excel unicode text": Case(
        "excel_unicode_text.txt",
        {
            # 09:30 in Sydney in March is daylight time, UTC+11.
            1: Call("+61412345750", "Zoë", "O'Brien", "2030-03-01T22:30:00Z"),
            2: Call("+61412345751", "José", "García"),
            3: Call("+61412345752", "Hans", "Müller"),  # "412345752": Excel ate the 0
            4: Call("+61412345753", "Siobhán", "Ó Súilleabháin", "2030-03-02T02:00:00Z"),
        },
        exit_code=0,
    ),
    "excel for mac csv": Case(
        "excel_mac.csv",
        {
            1: Call("+61412345760", "Zoë", "O'Brien"),
            2: Call("+61412345761", "José", "García"),
            3: Call("+61412345762", "Hans", "Müller"),
            4: Call("+61412345763", "Siobhán", "Ó Súilleabháin"),
        },
        warnings=("read as mac_roman",),
        exit_code=0,
    ),
    "libreoffice ods": Case(
        "libreoffice.ods",
        {
            1: Call("+61412345770", "Zoë", "O'Brien", "2030-03-02T22:00:00Z"),
            2: Call("+61412345771", "José", "García"),  # a number cell, leading 0 gone
            3: "multiple_phones",  # "0412 345 772 / 0412 345 773"
            4: Call("+61412345774", "Siobhán", "Ó Súilleabháin", "2030-03-02T22:30:00Z"),
        },
        options=("--timezone", "Australia/Sydney"),
    ),
    "google sheets xlsx": Case(
        "google_sheets.xlsx",
        {
            1: Call("+61412345780", "Zoë", "O'Brien"),
            2: Call("+61412345781", "José", "García"),
            3: Call("+61412345782", "Hans", "Müller"),  # a number cell
            4: "phone_extension",  # "0412 345 783 x9"
        },
    ),
}

# Files with two phone columns: the run stops before sending and names both.
STOPS = {
    "salesforce_contact.csv": ("'Phone' and 'MobilePhone'", "--column phone_number=Phone"),
    "hubspot_contacts.csv": (
        "'Phone Number' and 'Mobile Phone Number'",
        "--column 'phone_number=Phone Number'",
    ),
}


@pytest.fixture(scope="module")
def server():
    with start_sandbox(SandboxConfig()) as sandbox:
        yield sandbox


def run(server, tmp_path: Path, name: str, *options: str):
    return cli(
        "run", str(REAL / name), "--from-number", FROM, "--script-id", SCRIPT,
        "--base-url", server.base_url, "--reports-dir", str(tmp_path / "r"), "--json",
        *options, key=server.api_key, cwd=tmp_path,
    )  # fmt: skip


@pytest.mark.parametrize("case", CASES.values(), ids=CASES)
def test_each_export_calls_exactly_what_its_rows_mean(server, tmp_path, case):
    """Every row of a real export ends as worked out by hand: scheduled rows reach the server
    with exactly their number, names and time, every other row has its error code, and nothing
    else is called."""
    before = {c["call_id"] for c in server.calls()}
    done = run(server, tmp_path, case.file, *case.options)
    assert done.returncode == case.exit_code, done.stderr
    summary = json.loads(done.stdout)
    rows = {int(r["row"]): r for r in read_results(Path(summary["results_csv"]))}
    outcomes = {n: r["error_code"] or r["outcome"] for n, r in rows.items()}
    expected = {n: "scheduled" if isinstance(e, Call) else e for n, e in case.rows.items()}
    assert outcomes == expected
    received = {c["call_id"]: c for c in server.calls() if c["call_id"] not in before}
    assert len(received) == sum(isinstance(e, Call) for e in case.rows.values())
    for n, want in case.rows.items():
        if isinstance(want, Call):
            got = received[rows[n]["call_id"]]
            assert (got["phone_number"], got["first_name"], got["last_name"]) == (
                want.phone,
                want.first,
                want.last,
            )
            assert got["scheduled_time"] == want.time
    log = (Path(summary["results_csv"]).parent / "run.log").read_text(encoding="utf-8")
    for fragment in case.warnings:
        assert fragment in log


@pytest.mark.parametrize(("name", "fragments"), STOPS.items(), ids=STOPS)
def test_an_export_with_two_phone_columns_stops_before_sending(server, tmp_path, name, fragments):
    """Salesforce's Phone and MobilePhone, HubSpot's Phone Number and Mobile Phone Number: the
    run exits 2 naming both columns and the --column that picks one, and sends nothing."""
    before = len(server.calls())
    done = run(server, tmp_path, name)
    assert done.returncode == 2
    for fragment in fragments:
        assert fragment in done.stderr
    assert len(server.calls()) == before
    assert not (tmp_path / "r").exists()


def test_the_salesforce_report_footer_leaves_no_row_behind(server, tmp_path):
    """The report's "Grand Totals", "Confidential Information" and copyright lines are not
    rows of results.csv: the file's four contacts are."""
    done = run(server, tmp_path, "salesforce_report.csv")
    summary = json.loads(done.stdout)
    rows = read_results(Path(summary["results_csv"]))
    assert [r["row"] for r in rows] == ["1", "2", "3", "4"]
    assert not any("salesforce.com" in v for r in rows for v in r.values())
