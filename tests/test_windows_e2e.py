"""Calling windows end to end: the server receives exactly the first allowed instant."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from e2e_support import FROM, SCRIPT, read_results

import batchcall


def _first_december_wednesday(after: date) -> date:
    """The first Wednesday of the first December that starts a week or more after `after`.

    Early December is far from every Australian public holiday, and Sydney is on daylight time
    (+11:00) then, so the expected instants below hold in any year.
    """
    year = after.year if after + timedelta(days=7) <= date(after.year, 12, 1) else after.year + 1
    first = date(year, 12, 1)
    return first + timedelta(days=(2 - first.weekday()) % 7)


def _monday_christmas(after: date) -> date:
    """The next Christmas Day after `after` that is a Monday (Boxing Day is then a Tuesday)."""
    year = after.year if date(after.year, 12, 25) > after else after.year + 1
    while date(year, 12, 25).weekday() != 0:
        year += 1
    return date(year, 12, 25)


def _rows(today: date) -> list[tuple[str, str, str, str, str]]:
    """(label, phone, timezone cell, requested time, expected UTC time at the server).

    Every date is computed from `today`, so the rows are always in the future, whatever the
    clock says (the suite also runs with the clock moved a year ahead).
    """
    wed = _first_december_wednesday(today)
    xmas = _monday_christmas(today)

    def d(offset: int) -> str:
        return (wed + timedelta(days=offset)).isoformat()

    return [
        ("sydney wed 21:00 -> thu 09:00", "02 9251 0001", "", f"{d(0)}T21:00:00+11:00",
         f"{d(0)}T22:00:00Z"),
        ("sunday -> monday 09:00", "02 9251 0002", "", f"{d(4)}T10:00:00+11:00",
         f"{d(4)}T22:00:00Z"),
        ("sat 17:30 -> mon 09:00", "02 9251 0003", "", f"{d(3)}T17:30:00+11:00",
         f"{d(4)}T22:00:00Z"),
        ("brisbane christmas -> 27th", "07 3221 0004", "", f"{xmas.isoformat()}T10:00:00+10:00",
         f"{(xmas + timedelta(days=1)).isoformat()}T23:00:00Z"),
        ("perth zone column", "0412 000 005", "Australia/Perth", f"{d(0)}T08:00:00+08:00",
         f"{d(0)}T01:00:00Z"),
        ("mobile waits for cocos", "0412 000 006", "", f"{d(0)}T08:00:00+11:00",
         f"{d(0)}T02:30:00Z"),
        ("inside the window", "02 9251 0007", "", f"{d(1)}T10:00:00+11:00", f"{d(0)}T23:00:00Z"),
    ]  # fmt: skip


ROWS = _rows(datetime.now(UTC).date())


def _write(path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["name", "phone", "timezone", "scheduled_time"])
        for label, phone, zone, when, _ in ROWS:
            writer.writerow([label, phone, zone, when])
    return path


def test_deferred_calls_land_on_the_first_allowed_instant(sandbox, tmp_path):
    """au-telemarketing, defer: every out-of-window row is sent at exactly the first allowed
    instant in the callee's zone(s); the in-window row is sent unchanged."""
    summary = batchcall.run(
        _write(tmp_path / "window.csv"),
        from_number=FROM,
        script_id=SCRIPT,
        calling_window="au-telemarketing",
        reports_dir=tmp_path / "r",
        base_url=sandbox.base_url,
        api_key=sandbox.api_key,
    )
    assert summary.counts == {"scheduled": len(ROWS)}
    at_server = {c["call_id"]: c["scheduled_time"] for c in sandbox.calls()}
    for row, (label, *_, expected) in zip(
        read_results(Path(summary.results_csv)), ROWS, strict=True
    ):
        sent = at_server[row["call_id"]].replace("+00:00", "Z")
        assert sent == expected, label
        assert row["scheduled_time_sent"] == expected, label
        assert (row["time_moved"] == "yes") == (label != "inside the window"), label


def test_reject_mode_sends_only_the_rows_inside_the_window(sandbox, tmp_path):
    """--outside-window reject: only the in-window row is sent; the rest are invalid with
    outside_calling_window, and the exit code is 1."""
    summary = batchcall.run(
        _write(tmp_path / "window.csv"),
        from_number=FROM,
        script_id=SCRIPT,
        calling_window="au-telemarketing",
        outside_window="reject",
        reports_dir=tmp_path / "r",
        base_url=sandbox.base_url,
        api_key=sandbox.api_key,
    )
    assert summary.exit_code == 1
    assert summary.counts == {"scheduled": 1, "invalid": len(ROWS) - 1}
    assert summary.errors == {"outside_calling_window": len(ROWS) - 1}
    assert [c["phone_number"] for c in sandbox.calls()] == ["+61292510007"]
