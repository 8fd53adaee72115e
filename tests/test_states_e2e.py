"""`--calling-window us-tcpa` end to end: federal plus state hours, the margin before a window
closes, and a state column, as the sandbox server receives them, across a DST change."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from e2e_support import FROM, SCRIPT, read_results, us_fall_back

import batchcall


def _rows(today: date) -> list[tuple[str, str, str, str, str, str]]:
    """(label, phone, state cell, ZIP cell, requested time, expected UTC time at the server).

    The Saturday is on daylight time (New York -4, Chicago -5, Los Angeles -7) and the Sunday
    after 02:00 on standard time (-5, -6, -8), so a call moved to Sunday 08:00 lands an hour
    later in UTC than the Saturday's offset would say. Every date comes from `today`.
    """
    sunday = us_fall_back(today)
    sat, sun = (sunday - timedelta(days=1)).isoformat(), sunday.isoformat()
    mon = (sunday + timedelta(days=1)).isoformat()

    def z(day: str, hh_mm: str) -> str:
        return f"{day}T{hh_mm}:00Z"

    return [
        ("FL 20:30 -> 08:00", "+1 305 234 5601", "", "", f"{sat}T20:30-04:00", z(sun, "13:00")),
        ("FL 19:45 in margin", "+1 305 234 5602", "", "", f"{sat}T19:45-04:00", z(sun, "13:00")),
        ("FL 19:30 stays", "+1 305 234 5603", "", "", f"{sat}T19:30-04:00", z(sat, "23:30")),
        ("OK 20:10 -> 08:00", "+1 405 234 5604", "", "", f"{sat}T20:10-05:00", z(sun, "14:00")),
        ("MD 20:00 -> 08:00", "+1 410 234 5605", "", "", f"{sat}T20:00-04:00", z(sun, "13:00")),
        ("MD 07:30 -> 08:00", "+1 410 234 5606", "", "", f"{mon}T07:30-05:00", z(mon, "13:00")),
        ("CA 20:30 stays", "+1 415 234 5607", "", "", f"{sat}T20:30-07:00", z(sun, "03:30")),
        ("CA 20:45 in margin", "+1 415 234 5608", "", "", f"{sat}T20:45-07:00", z(sun, "16:00")),
        ("NY 20:15 stays", "+1 212 234 5609", "", "", f"{sat}T20:15-04:00", z(sun, "00:15")),
        ("TX 20:15 stays", "+1 512 234 5610", "", "", f"{sat}T20:15-05:00", z(sun, "01:15")),
        ("305 with state NY", "+1 305 234 5611", "NY", "", f"{sat}T20:15-04:00", z(sun, "13:00")),
        ("212 with state FL", "+1 212 234 5612", "FL", "", f"{sat}T20:15-04:00", z(sun, "13:00")),
        ("212 with FL ZIP", "+1 212 234 5613", "", "33101", f"{sat}T20:15-04:00", z(sun, "13:00")),
    ]  # fmt: skip


ROWS = _rows(datetime.now(UTC).date())
STAYS = {label for label, *_ in ROWS if label.endswith("stays")}
FEDERAL = "us-tcpa: daily 08:00-21:00 (47 CFR 64.1200(c)(1))"
FL = "FL: daily 08:00-20:00 (Fla. Stat. 501.616(6))"
MARGIN = ", less the 30m margin before it closes"
# The rule results.csv names for each moved row: the statute that moved it.
RULES = {
    "FL 20:30 -> 08:00": FL,
    "FL 19:45 in margin": FL + MARGIN,
    "OK 20:10 -> 08:00": "OK: daily 08:00-20:00 (Okla. Stat. tit. 15, 775C.4)",
    "MD 20:00 -> 08:00": "MD: daily 08:00-20:00 (Md. Code, Com. Law 14-4503)",
    "MD 07:30 -> 08:00": FEDERAL,
    "CA 20:45 in margin": FEDERAL + MARGIN,
    "305 with state NY": FL,
    "212 with state FL": FL,
    "212 with FL ZIP": FL,
}


def _write(path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["name", "phone", "state", "zip", "scheduled_time"])
        for label, phone, state, zip_code, when, _ in ROWS:
            writer.writerow([label, phone, state, zip_code, when])
    return path


def _run(sandbox, tmp_path, **options):
    options.setdefault("calling_window", "us-tcpa")
    return batchcall.run(
        _write(tmp_path / "states.csv"),
        from_number=FROM,
        script_id=SCRIPT,
        reports_dir=tmp_path / "r",
        base_url=sandbox.base_url,
        api_key=sandbox.api_key,
        **options,
    )


def test_every_call_lands_inside_its_state_hours(sandbox, tmp_path):
    """FL, OK, MD, CA, NY and TX numbers: each call reaches the server at exactly the instant
    its state's hours, the federal hours and the 30m margin allow."""
    summary = _run(sandbox, tmp_path)
    assert summary.counts == {"scheduled": len(ROWS)}
    at_server = {c["call_id"]: c["scheduled_time"] for c in sandbox.calls()}
    results = read_results(Path(summary.results_csv))
    for row, (label, *_, expected) in zip(results, ROWS, strict=True):
        sent = at_server[row["call_id"]].replace("+00:00", "Z")
        assert sent == expected, label
        assert row["scheduled_time_sent"] == expected, label
        assert (row["time_moved"] == "yes") == (label not in STAYS), label
        assert row["window_rule"] == RULES.get(label, ""), label


def test_reject_mode_names_the_rule_of_every_refused_row(sandbox, tmp_path):
    """--outside-window reject: only the rows inside their hours are sent; every other row
    is invalid, and its window_rule names the same rule as a deferral would."""
    summary = _run(sandbox, tmp_path, outside_window="reject")
    assert summary.counts == {"scheduled": len(STAYS), "invalid": len(ROWS) - len(STAYS)}
    for row in read_results(Path(summary.results_csv)):
        label = row["name"]
        if label in STAYS:
            assert row["outcome"] == "scheduled" and row["window_rule"] == "", label
        else:
            assert row["error_code"] == "outside_calling_window", label
            assert row["window_rule"] == RULES[label], label
    assert len(sandbox.calls()) == len(STAYS)


def test_us_federal_keeps_every_requested_time_inside_08_to_21(sandbox, tmp_path):
    """us-federal with no margin: only the federal hours, so FL's 20:30 is sent as asked."""
    summary = _run(sandbox, tmp_path, calling_window="us-federal", window_margin="0")
    assert summary.counts == {"scheduled": len(ROWS)}
    results = read_results(Path(summary.results_csv))
    fl = next(r for r in results if r["name"] == "FL 20:30 -> 08:00")
    assert fl["time_moved"] == ""
