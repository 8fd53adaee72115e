"""US state rules under `--calling-window us-tcpa`: the state of a contact, the intersection of
its rules with the federal hours and with each other, and the margin before a window closes.

Every requested time carries its zone, and the clock (`NOW`) is fixed and earlier than all of
them, so no test depends on the real date.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from batchcall._config import Settings
from batchcall._states import UnknownState, area_code_state, contact_states, parse_state
from batchcall._us_states import RULES_VERSION, US_STATE_RULES, StateRule
from batchcall._windows import INVALID_STATE, Placement, WindowPolicy, intersect_weeks, parse_spec

NOW = datetime(2026, 1, 1, tzinfo=UTC)
NEW_YORK_ZONE = ZoneInfo("America/New_York")
CHICAGO = ZoneInfo("America/Chicago")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
MIAMI = "+13052345601"
OKLAHOMA_CITY = "+14052345602"
BALTIMORE = "+14102345603"
SAN_FRANCISCO = "+14152345604"
MANHATTAN = "+12122345605"
AUSTIN = "+15122345606"
TOLL_FREE = "+18002345678"
TORONTO = "+14165551234"
FL_HOURS = "FL: daily 08:00-20:00 (Fla. Stat. 501.616(6))"
FEDERAL_HOURS = "us-tcpa: daily 08:00-21:00 (47 CFR 64.1200(c)(1))"
OK_HOURS = "OK: daily 08:00-20:00 (Okla. Stat. tit. 15, 775C.4)"
MD_HOURS = "MD: daily 08:00-20:00 (Md. Code, Com. Law 14-4503)"


def policy(window: str = "us-tcpa", **settings: Any) -> WindowPolicy:
    built = WindowPolicy.from_settings(Settings(calling_window=window, **settings))
    assert built is not None
    return built


def place(rules: WindowPolicy, when: datetime, phone: str, state: str | None = None) -> Placement:
    return rules.place(when, phone_e164=phone, row_timezone=None, row_state=state, now=NOW)


def local(zone: ZoneInfo, day: int, hour: int, minute: int = 0, month: int = 6) -> datetime:
    """A wall time in 2026 (June by default: every US zone on daylight time)."""
    return datetime(2026, month, day, hour, minute, tzinfo=zone)


# --- the rules table ------------------------------------------------------------------------------


def test_the_table_holds_the_required_states_each_with_a_source() -> None:
    """FL, OK and MD are there with 08:00-20:00 and 3 calls per 24 h; every rule names its
    statute, a source address and the date it was checked."""
    assert {"FL", "OK", "MD"} <= set(US_STATE_RULES)
    for code in ("FL", "OK", "MD"):
        rule = US_STATE_RULES[code]
        assert parse_spec(rule.hours) == parse_spec("daily 08:00-20:00")
        assert rule.cap == (3, 24)
    for rule in US_STATE_RULES.values():
        assert rule.citation and rule.source.startswith("https://")
        assert datetime.fromisoformat(rule.checked) <= datetime.fromisoformat(RULES_VERSION)


# --- the state of a contact ---------------------------------------------------------------------


def test_the_area_code_names_the_state() -> None:
    """libphonenumber's geocoder, read as USPS codes; none outside the US or for toll-free."""
    assert [
        area_code_state(p) for p in (MIAMI, OKLAHOMA_CITY, BALTIMORE, SAN_FRANCISCO, MANHATTAN)
    ] == ["FL", "OK", "MD", "CA", "NY"]
    assert area_code_state(AUSTIN) == "TX"
    assert area_code_state(TOLL_FREE) is None
    assert area_code_state(TORONTO) is None


def test_a_state_cell_adds_its_state_and_an_unknown_number_gets_every_state() -> None:
    known = ("FL", "MD", "OK")
    assert contact_states(MIAMI, "NY", known) == ("FL", "NY")
    assert contact_states(MIAMI, " florida ", known) == ("FL",)
    assert contact_states(TOLL_FREE, None, known) == known
    assert contact_states(TOLL_FREE, "ca", known) == ("CA",)
    assert contact_states(TORONTO, None, known) == ()


@pytest.mark.parametrize("cell", ["Floridia", "XX", "F"])
def test_a_state_cell_that_names_no_state_is_refused(cell: str) -> None:
    with pytest.raises(UnknownState, match="two-letter code"):
        parse_state(cell)
    result = place(policy(), local(NEW_YORK_ZONE, 3, 12), MIAMI, cell)
    assert result.error_code == INVALID_STATE
    assert result.error is not None and repr(cell) in result.error


# --- hours: federal plus state --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phone", "zone", "hour", "minute", "moved_to", "rule"),
    [
        # 20:30 local moves to 08:00 the next day where the state says 20:00, stays elsewhere.
        (MIAMI, NEW_YORK_ZONE, 20, 30, (4, 8), FL_HOURS),
        (OKLAHOMA_CITY, CHICAGO, 20, 30, (4, 8), OK_HOURS),
        (BALTIMORE, NEW_YORK_ZONE, 20, 30, (4, 8), MD_HOURS),
        (SAN_FRANCISCO, LOS_ANGELES, 20, 30, None, None),
        (MANHATTAN, NEW_YORK_ZONE, 20, 30, None, None),
        (AUSTIN, CHICAGO, 20, 30, None, None),
        # The federal window still holds everywhere, and is named first when both refuse.
        (SAN_FRANCISCO, LOS_ANGELES, 21, 0, (4, 8), FEDERAL_HOURS),
        (MIAMI, NEW_YORK_ZONE, 7, 59, (3, 8), FEDERAL_HOURS),
    ],
)  # fmt: skip
def test_each_state_hours_on_top_of_the_federal_ones(
    phone: str,
    zone: ZoneInfo,
    hour: int,
    minute: int,
    moved_to: tuple[int, int] | None,
    rule: str | None,
) -> None:
    asked = local(zone, 3, hour, minute)
    result = place(policy(), asked, phone)
    assert result.error_code is None, result.error
    if moved_to is None:
        assert (result.when, result.moved, result.rule) == (asked, False, None)
    else:
        assert result.when == local(zone, *moved_to).astimezone(UTC)
        assert result.moved is True
        assert result.rule == rule


def test_us_federal_keeps_the_federal_hours_alone() -> None:
    asked = local(NEW_YORK_ZONE, 3, 20, 29)
    assert place(policy("us-federal"), asked, MIAMI).moved is False
    assert place(policy("us-tcpa"), asked, MIAMI).moved is True


def test_a_state_column_that_disagrees_gets_both_states_rules() -> None:
    """A 305 (FL) number whose state column says NY: the intersection of FL and NY. With the
    shipped table (no NY rule beyond the federal one) that is FL's 08:00-20:00; with a
    stricter NY rule it is the hours both allow, and NY's Sunday ban."""
    asked = local(NEW_YORK_ZONE, 3, 20, 15)
    assert place(policy(), asked, MIAMI, "NY").when == local(NEW_YORK_ZONE, 4, 8)
    assert place(policy(), asked, MANHATTAN, "FL").when == local(NEW_YORK_ZONE, 4, 8)
    assert place(policy(), asked, MANHATTAN).moved is False

    strict_ny = StateRule("NY", "mon-sat 10:00-19:00", "test rule", "https://example", "2026-01-01")
    rules = WindowPolicy(
        name="us-tcpa",
        week=parse_spec("daily 08:00-21:00"),
        state_rules={**US_STATE_RULES, "NY": strict_ny},
    )
    # 2026-06-06 is a Saturday: 09:30 waits for NY's 10:00; 19:15 is past NY's close, and
    # Sunday is closed in NY, so Monday 10:00.
    assert place(rules, local(NEW_YORK_ZONE, 6, 9, 30), MIAMI, "NY").when == local(
        NEW_YORK_ZONE, 6, 10
    )
    late = place(rules, local(NEW_YORK_ZONE, 6, 19, 15), MIAMI, "NY")
    assert late.when == local(NEW_YORK_ZONE, 8, 10)
    assert late.rule == "NY: mon-sat 10:00-19:00 (test rule)"
    # FL alone (no NY cell) still calls on Sunday.
    assert place(rules, local(NEW_YORK_ZONE, 7, 9), MIAMI).moved is False


def test_a_number_whose_state_cannot_be_told_gets_the_strictest_rule() -> None:
    """A toll-free number, in New York's zone by the row's timezone column: every state's
    rule applies, so 20:30 is refused (FL, OK and MD close at 20:00)."""
    result = policy().place(
        local(NEW_YORK_ZONE, 3, 20, 30),
        phone_e164=TOLL_FREE,
        row_timezone="America/New_York",
        now=NOW,
    )
    assert result.when == local(NEW_YORK_ZONE, 4, 8)


def test_a_state_holiday_ban_blocks_the_whole_day() -> None:
    banned = StateRule(
        "FL", "daily 08:00-20:00", "test rule", "https://example", "2026-01-01", holidays=("US",)
    )
    rules = WindowPolicy(
        name="us-tcpa", week=parse_spec("daily 08:00-21:00"), state_rules={"FL": banned}
    )
    christmas = datetime(2026, 12, 25, 12, tzinfo=NEW_YORK_ZONE)
    result = place(rules, christmas, MIAMI)
    assert result.when == datetime(2026, 12, 26, 8, tzinfo=NEW_YORK_ZONE)
    assert result.rule == "US: holiday 2026-12-25 (Christmas Day)"


def test_a_dst_change_moves_the_utc_instant_of_08_00() -> None:
    """Saturday 31 October 2026 20:30 in Miami (EDT, -4) moves to Sunday 08:00 (EST, -5):
    13:00 UTC, not 12:00."""
    result = place(policy(), datetime(2026, 10, 31, 20, 30, tzinfo=NEW_YORK_ZONE), MIAMI)
    assert result.when == datetime(2026, 11, 1, 13, 0, tzinfo=UTC)


def test_week_intersection_splits_ranges_that_cross_midnight() -> None:
    late = parse_spec("fri 22:00-02:00")
    assert intersect_weeks(late, parse_spec("daily 00:00-24:00")) == parse_spec(
        "fri 22:00-24:00; sat 00:00-02:00"
    )
    assert intersect_weeks(late, parse_spec("daily 08:00-20:00")) == ((),) * 7


# --- the margin -----------------------------------------------------------------------------------


def test_no_call_is_placed_inside_the_margin() -> None:
    """With the default 30m margin, 19:45 in FL moves to the next day's opening; 19:30, with
    exactly 30 minutes left, stays; with no margin 19:45 stays too."""
    rules = policy()
    assert rules.margin == timedelta(minutes=30)
    evening = place(rules, local(NEW_YORK_ZONE, 3, 19, 45), MIAMI)
    assert evening.when == local(NEW_YORK_ZONE, 4, 8)
    assert evening.rule == f"{FL_HOURS}, less the 30m margin before it closes"
    assert place(rules, local(NEW_YORK_ZONE, 3, 19, 30), MIAMI).moved is False
    assert place(rules, local(NEW_YORK_ZONE, 3, 19, 30) + timedelta(seconds=1), MIAMI).moved is True
    assert place(policy(window_margin="0"), local(NEW_YORK_ZONE, 3, 19, 45), MIAMI).moved is False
    # The federal close too: 20:45 in California.
    assert place(rules, local(LOS_ANGELES, 3, 20, 45), SAN_FRANCISCO).when == local(
        LOS_ANGELES, 4, 8
    )


def test_a_timeless_row_is_rechecked_against_the_margin() -> None:
    """A row with no time, reaching the sender at 19:40 in Miami, waits for 08:00."""
    rules = policy()
    now = local(NEW_YORK_ZONE, 3, 19, 40)
    result = rules.place(None, phone_e164=MIAMI, row_timezone=None, now=now)
    assert result.when == local(NEW_YORK_ZONE, 4, 8)


@pytest.mark.parametrize("margin", ["12h", "-5m", "soon"])
def test_a_bad_margin_is_a_usage_error(margin: str) -> None:
    with pytest.raises(ValueError, match=r"margin|Period"):
        Settings(calling_window="us-tcpa", window_margin=margin)


# --- a ZIP column ---------------------------------------------------------------------------------


def test_a_zip_cell_adds_its_state() -> None:
    """33101 is Miami (FL); 2108 is Boston's 02108 with its 0 lost in a spreadsheet; ZIP+4 is
    read too. A Manhattan number with a Miami ZIP gets Florida's rules."""
    known = tuple(US_STATE_RULES)
    assert contact_states(MANHATTAN, None, known, "33101") == ("FL", "NY")
    assert contact_states(MANHATTAN, None, known, "2108") == ("MA", "NY")
    assert contact_states(MANHATTAN, None, known, "33101-1234") == ("FL", "NY")
    asked = local(NEW_YORK_ZONE, 3, 20, 15)
    moved = policy().place(asked, phone_e164=MANHATTAN, row_timezone=None, row_zip="33101", now=NOW)
    assert moved.when == local(NEW_YORK_ZONE, 4, 8)
    assert moved.rule == FL_HOURS


def test_a_zip_that_is_not_a_us_zip_is_refused_for_a_us_number_and_ignored_otherwise() -> None:
    known = tuple(US_STATE_RULES)
    assert contact_states(TORONTO, None, known, "M5V 3L9") == ()
    for cell in ("M5V 3L9", "00000"):
        with pytest.raises(UnknownState, match="ZIP"):
            contact_states(MIAMI, None, known, cell)
    result = policy().place(
        local(NEW_YORK_ZONE, 3, 12), phone_e164=MIAMI, row_timezone=None, row_zip="00000", now=NOW
    )
    assert result.error_code == INVALID_STATE
