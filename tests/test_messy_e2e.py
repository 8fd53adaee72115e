"""Messy real-world files, end to end through the CLI to a sandbox: the right calls, no others."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from e2e_support import DATA, TEAM, cli, in_future_year, read_results, with_future_dates

# Row -> the one number that row means, worked out by hand from tests/data/make_fixtures.py.
CSV_CALLS = {
    1: "+61429069971",
    3: "+61298765432",
    11: "+61412345681",
    12: "+442079460958",
    15: "+61412345683",
}


@pytest.mark.parametrize("name", ["messy_cp1252.csv", "messy_utf8_bom.csv"])
def test_messy_csv_calls_exactly_the_numbers_its_rows_mean(sandbox, tmp_path, name):
    """A CRM export (cp1252 with semicolons, or UTF-8 with a BOM, blank and padded rows, bad
    phones and times, a formula-looking name, a duplicate, a UK number): exit 1, one call for
    each good row to exactly that row's number, and no call for anything else. (The file's
    future dates are moved to a year that stays ahead of the clock; its past one stays past.)"""
    source = with_future_dates(DATA / name, tmp_path)
    done = cli(
        "run", source, *TEAM, "--base-url", sandbox.base_url, "--reports-dir", tmp_path / "r",
        "--json", key=sandbox.api_key, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    summary = json.loads(done.stdout)
    rows = {int(r["row"]): r for r in read_results(Path(summary["results_csv"]))}
    scheduled = {n: r["phone_e164"] for n, r in rows.items() if r["outcome"] == "scheduled"}
    assert scheduled == CSV_CALLS
    calls = {c["call_id"]: c["phone_number"] for c in sandbox.calls()}
    assert sorted(calls.values()) == sorted(CSV_CALLS.values())
    for n, phone in CSV_CALLS.items():
        assert calls[rows[n]["call_id"]] == phone
    assert rows[1]["scheduled_time_sent"] == in_future_year("2030-03-01T22:30:00Z")  # 09:30 AEDT
    assert rows[9]["error_code"] == "past_scheduled_time"
    # The formula-looking name is kept as text, and neutralised in the file itself.
    name_column = next(c for c in rows[11] if c.strip().lower() == "given name")
    assert rows[11][name_column] == '=HYPERLINK("http://example.com")'
    raw = Path(summary["results_csv"]).read_text(encoding="utf-8-sig")
    assert "'=HYPERLINK" in raw and ",=HYPERLINK" not in raw
    assert summary["counts"]["duplicate"] == 1


def test_xlsx_with_numeric_and_date_cells_calls_the_right_numbers(sandbox, tmp_path):
    """An Excel workbook with numeric phone cells and datetime cells read in --timezone:
    leading zeros come back, fractions are damage, and only the good rows are called."""
    source = with_future_dates(DATA / "contacts.xlsx", tmp_path)
    done = cli(
        "run", source, *TEAM, "--timezone", "Australia/Sydney", "--base-url", sandbox.base_url,
        "--reports-dir", tmp_path / "r", "--json", key=sandbox.api_key, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    summary = json.loads(done.stdout)
    rows = {int(r["row"]): r for r in read_results(Path(summary["results_csv"]))}
    assert rows[1]["phone_e164"] == "+61429069971" and rows[1]["outcome"] == "scheduled"
    assert rows[1]["scheduled_time_sent"] == in_future_year("2030-03-01T22:30:00Z")  # 09:30 AEDT
    assert rows[2]["phone_e164"] == "+61298765432"
    assert {rows[3]["error_code"], rows[4]["error_code"]} == {"damaged_phone"}
    assert 5 not in rows
    called = sorted(c["phone_number"] for c in sandbox.calls())
    good = sorted(r["phone_e164"] for r in rows.values() if r["outcome"] == "scheduled")
    assert called == good and "+61429069971" in called
