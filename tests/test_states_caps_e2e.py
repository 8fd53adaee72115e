"""The states' frequency caps (FL, OK, MD: 3 calls in any 24 h), enforced through the contact
ledger across runs, under `--calling-window us-tcpa` and without `--max-calls`."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from e2e_support import FROM, SCRIPT, read_results

import batchcall

MIAMI = "+13052345601"
SAN_FRANCISCO = "+14152345604"
EASTERN = ZoneInfo("America/New_York")
PACIFIC = ZoneInfo("America/Los_Angeles")


def _day(today: date) -> date:
    """A Tuesday at least ten days ahead: far from any DST change's Sunday."""
    day = today + timedelta(days=10)
    return day + timedelta(days=(1 - day.weekday()) % 7)


DAY = _day(datetime.now(UTC).date())


def _at(zone: ZoneInfo, hour: int, days: int = 0) -> datetime:
    return datetime.combine(DAY + timedelta(days=days), time(hour), zone)


def _write(path: Path, rows: list[tuple[str, datetime]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["phone", "scheduled_time"])
        for phone, when in rows:
            writer.writerow([phone, when.isoformat()])
    return path


def _run(sandbox, tmp_path, name, rows, **options):
    options.setdefault("calling_window", "us-tcpa")
    return batchcall.run(
        _write(tmp_path / f"{name}.csv", rows),
        from_number=FROM,
        script_id=SCRIPT,
        out=tmp_path / "r" / name,
        base_url=sandbox.base_url,
        api_key=sandbox.api_key,
        **options,
    )


def _utc(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_fourth_call_to_a_florida_number_waits_for_the_state_cap(sandbox, tmp_path):
    """Three FL calls in one run, a fourth within 24 h in the next: the fourth is sent at the
    first instant Florida's cap allows, 24 h after the first. A CA number has no state cap."""
    first = _run(
        sandbox, tmp_path, "first",
        [(MIAMI, _at(EASTERN, 10)), (MIAMI, _at(EASTERN, 12)), (MIAMI, _at(EASTERN, 14)),
         (SAN_FRANCISCO, _at(PACIFIC, 10)), (SAN_FRANCISCO, _at(PACIFIC, 12)),
         (SAN_FRANCISCO, _at(PACIFIC, 14))],
    )  # fmt: skip
    assert first.counts == {"scheduled": 6}
    second = _run(
        sandbox, tmp_path, "second", [(MIAMI, _at(EASTERN, 16)), (SAN_FRANCISCO, _at(PACIFIC, 16))]
    )
    assert second.counts == {"scheduled": 2}
    fl, ca = read_results(Path(second.results_csv))
    expected = _utc(_at(EASTERN, 10, days=1))
    assert fl["scheduled_time_sent"] == expected
    assert fl["time_moved"] == "yes"
    since = _utc(_at(EASTERN, 10))
    law = "FL: at most 3 calls in any 24 h (Fla. Stat. 501.616(6))"
    assert fl["window_rule"] == f"cap 3/24h: 3 calls since {since} ({law})"
    assert ca["window_rule"] == ""
    assert ca["scheduled_time_sent"] == _utc(_at(PACIFIC, 16))
    assert ca["time_moved"] == ""
    at_server = {c["call_id"]: c["scheduled_time"].replace("+00:00", "Z") for c in sandbox.calls()}
    assert at_server[fl["call_id"]] == expected
    assert at_server[ca["call_id"]] == ca["scheduled_time_sent"]


def test_in_reject_mode_the_fourth_call_is_not_sent(sandbox, tmp_path):
    """--outside-window reject: the fourth FL call within 24 h is `frequency_capped`, naming
    Florida's statute, and never reaches the server."""
    rows = [(MIAMI, _at(EASTERN, h)) for h in (10, 12, 14)]
    assert _run(sandbox, tmp_path, "first", rows).counts == {"scheduled": 3}
    second = _run(sandbox, tmp_path, "second", [(MIAMI, _at(EASTERN, 16))], outside_window="reject")
    assert second.counts == {"frequency_capped": 1}
    (row,) = read_results(Path(second.results_csv))
    assert row["error_code"] == "frequency_capped"
    assert "Fla. Stat. 501.616(6)" in row["error"]
    assert row["window_rule"].startswith("cap 3/24h: 3 calls since ")
    assert row["window_rule"].endswith("(FL: at most 3 calls in any 24 h (Fla. Stat. 501.616(6)))")
    assert len(sandbox.calls()) == 3


def test_us_federal_has_no_state_cap(sandbox, tmp_path):
    rows = [(MIAMI, _at(EASTERN, h)) for h in (10, 12, 14, 16)]
    summary = _run(sandbox, tmp_path, "all", rows, calling_window="us-federal")
    assert summary.counts == {"scheduled": 4}
    assert all(r["time_moved"] == "" for r in read_results(Path(summary.results_csv)))


def test_a_call_moved_by_its_window_and_then_by_the_cap_names_both(sandbox, tmp_path):
    """Within one run: a fourth FL call asked for 20:30 is moved by Florida's hours to 08:00
    the next day, which is still within 24 h of the first call, so the cap moves it on to
    10:00; its window_rule names both rules, in that order."""
    rows = [(MIAMI, _at(EASTERN, h)) for h in (10, 12, 14)]
    rows.append((MIAMI, _at(EASTERN, 20) + timedelta(minutes=30)))
    summary = _run(sandbox, tmp_path, "one", rows)
    assert summary.counts == {"scheduled": 4}
    fourth = read_results(Path(summary.results_csv))[3]
    assert fourth["scheduled_time_sent"] == _utc(_at(EASTERN, 10, days=1))
    hours, cap = fourth["window_rule"].split("; then ")
    assert hours == "FL: daily 08:00-20:00 (Fla. Stat. 501.616(6))"
    assert cap.startswith("cap 3/24h: 3 calls since ")
