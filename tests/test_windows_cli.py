"""`batchcall windows show`: a contact's rules with their sources, the same labels a run writes
in results.csv's `window_rule`, and its allowed hours for 7 days, local and UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from e2e_support import us_fall_back

FL_HOURS = "FL: daily 08:00-20:00 (Fla. Stat. 501.616(6))"
FL_CAP = "FL: at most 3 calls in any 24 h (Fla. Stat. 501.616(6))"
FEDERAL = "us-tcpa: daily 08:00-21:00 (47 CFR 64.1200(c)(1))"


SUNDAY = us_fall_back(datetime.now(UTC).date())
SATURDAY = SUNDAY - timedelta(days=1)


def test_show_prints_the_rules_a_run_names_and_the_hours_across_a_dst_change(invoke):
    """A 305 number with --state NY: FL's hours and cap with their source, the federal hours,
    the margin; 08:00-19:30 each day, whose UTC instants shift by an hour on the Sunday."""
    done = invoke(
        "windows", "show", "us-tcpa", "--phone", "+13052345601", "--state", "NY",
        "--from", SATURDAY.isoformat(),
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    assert "  time zone(s): America/New_York" in lines
    assert any(line.startswith("  state(s): FL (Florida), NY (New York)") for line in lines)
    assert f"  {FEDERAL}" in lines
    assert f"  {FL_HOURS}" in lines
    assert any(FL_CAP in line for line in lines)
    assert "flsenate.gov" in done.output
    assert "  margin: no call in the last 30 minutes before a window closes" in lines
    sat, sun = SATURDAY.isoformat(), SUNDAY.isoformat()
    nxt = (SUNDAY + timedelta(days=1)).isoformat()
    assert (
        f"  {SATURDAY:%a} {sat} 08:00-19:30 America/New_York  =  {sat}T12:00Z to {sat}T23:30Z"
        in lines
    )
    assert (
        f"  {SUNDAY:%a} {sun} 08:00-19:30 America/New_York  =  {sun}T13:00Z to {nxt}T00:30Z"
        in lines
    )


def test_show_for_california_has_only_the_federal_hours(invoke):
    done = invoke(
        "windows", "show", "us-tcpa", "--phone", "+14152345604", "--window-margin", "0",
        "--from", SATURDAY.isoformat(),
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "FL:" not in done.output
    assert f"  {FEDERAL}" in done.output.splitlines()
    assert f"{SATURDAY.isoformat()} 08:00-21:00 America/Los_Angeles" in done.output


def test_a_closed_day_says_which_rule_closes_it(invoke):
    """au-telemarketing on a Sunday: no calls, by the profile's own hours."""
    sunday = SUNDAY + timedelta(days=7)
    done = invoke("windows", "show", "au-telemarketing", "--phone", "+61291234567",
                  "--from", sunday.isoformat())  # fmt: skip
    assert done.exit_code == 0, done.output
    assert f"  {sunday:%a} {sunday.isoformat()} no calls: au-telemarketing: " in done.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--phone", "3052345601"], "is not a valid phone number"),
        (["--phone", "+13052345601", "--state", "ZZ"], "--state 'ZZ' is not a US state"),
        (["--phone", "+13052345601", "--window-margin", "soon"], "Period 'soon'"),
        (["--phone", "+13052345601", "--from", "tomorrow"], "--from 'tomorrow' is not a date"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(invoke, args, message):
    done = invoke("windows", "show", "us-tcpa", *args)
    assert done.exit_code == 2
    assert message in done.output
    assert len(done.output.strip().splitlines()) == 1
    assert "Traceback" not in done.output
