"""Calling windows: each call lands inside the legal hours of the callee's own time zone.

Every requested time below carries an explicit zone; the clock (`NOW`) is fixed and earlier than
all of them, so no test depends on the real date.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from batchcall._config import Settings
from batchcall._errors import UsageError
from batchcall._windows import (
    OUTSIDE_CALLING_WINDOW,
    PROFILES,
    UNKNOWN_TIMEZONE,
    Placement,
    WindowPolicy,
    parse_spec,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)

SYDNEY_LANDLINE = "+61291234567"
BRISBANE_LANDLINE = "+61731234567"
LORD_HOWE_ROW = "Australia/Lord_Howe"
AU_MOBILE = "+61412345678"  # phonenumbers gives 8 zones, Indian/Cocos to Lord Howe
ADELAIDE_OR_PERTH = "+61881234567"  # an 08 landline: Adelaide and Perth
NEW_YORK = "+12125551234"
TORONTO = "+14165551234"
NO_ZONE = "+80012345678"  # international freephone: phonenumbers says Etc/Unknown


def policy(window: str = "au-telemarketing", **settings: Any) -> WindowPolicy:
    # These tests are about each window's own edges; the margin before a close has its own.
    settings.setdefault("window_margin", "0")
    built = WindowPolicy.from_settings(Settings(calling_window=window, **settings))
    assert built is not None
    return built


def at(zone: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone))


def place(
    rules: WindowPolicy, when: datetime | None, phone: str = SYDNEY_LANDLINE, tz: str | None = None
) -> Placement:
    return rules.place(when, phone_e164=phone, row_timezone=tz, now=NOW)


def assert_moved_to(result: Placement, expected: datetime) -> None:
    assert result.error_code is None, result.error
    assert result.moved is True
    assert result.when == expected
    assert result.when is not None and result.when.tzinfo is UTC


def assert_unchanged(result: Placement, requested: datetime) -> None:
    assert result.error_code is None, result.error
    assert result.moved is False
    assert result.when == requested


# --- the calling-window guarantees ----------------------------------------------------------------


def test_sydney_landline_at_wednesday_9pm_is_deferred_to_thursday_9am() -> None:
    """A Sydney landline requested at Wed 21:00 local is sent at Thu 09:00 Sydney time."""
    result = place(policy(), at("Australia/Sydney", 2026, 12, 2, 21, 0))
    assert_moved_to(result, at("Australia/Sydney", 2026, 12, 3, 9, 0))


def test_sunday_call_is_deferred_to_monday_9am() -> None:
    """Telemarketing calls are never made on Sunday: Sunday noon goes to Monday 09:00."""
    result = place(policy(), at("Australia/Sydney", 2026, 12, 6, 12, 0))
    assert_moved_to(result, at("Australia/Sydney", 2026, 12, 7, 9, 0))


def test_saturday_after_5pm_is_deferred_past_sunday_to_monday_9am() -> None:
    """Saturday closes at 17:00 and Sunday is closed, so Sat 17:30 goes to Mon 09:00."""
    result = place(policy(), at("Australia/Sydney", 2026, 12, 5, 17, 30))
    assert_moved_to(result, at("Australia/Sydney", 2026, 12, 7, 9, 0))


def test_brisbane_christmas_day_call_skips_boxing_day_to_the_27th() -> None:
    """In 2028, 25 and 26 Dec are Mon and Tue holidays: a Christmas call goes to Wed 27th 09:00."""
    result = place(policy(), at("Australia/Brisbane", 2028, 12, 25, 10, 0), BRISBANE_LANDLINE)
    assert_moved_to(result, at("Australia/Brisbane", 2028, 12, 27, 9, 0))


def test_timezone_column_saying_perth_opens_at_9am_perth() -> None:
    """The timezone column wins over the number's zones: 08:00 Perth waits for 09:00 Perth."""
    result = place(policy(), at("Australia/Perth", 2026, 12, 7, 8, 0), AU_MOBILE, "Australia/Perth")
    assert_moved_to(result, at("Australia/Perth", 2026, 12, 7, 9, 0))


def test_au_mobile_without_zone_opens_when_cocos_islands_reach_9am() -> None:
    """An Australian mobile may be in any of 8 zones, so it waits for the last, Indian/Cocos."""
    rules = policy()
    zones = [z.key for z in rules.zones_for(AU_MOBILE, None)]
    assert len(zones) == 8 and "Indian/Cocos" in zones and "Australia/Lord_Howe" in zones
    result = place(rules, at("Australia/Sydney", 2026, 12, 7, 9, 0), AU_MOBILE)
    assert_moved_to(result, at("Indian/Cocos", 2026, 12, 7, 9, 0))


def test_december_call_uses_sydney_summer_offset() -> None:
    """09:00 in a Sydney December is 22:00 UTC (AEDT, +11), while in June it is 23:00 UTC (+10)."""
    december = place(policy(), at("Australia/Sydney", 2026, 12, 2, 21, 0))
    june = place(policy(), at("Australia/Sydney", 2026, 6, 17, 21, 0))
    assert_moved_to(december, datetime(2026, 12, 2, 22, 0, tzinfo=UTC))
    assert_moved_to(june, datetime(2026, 6, 17, 23, 0, tzinfo=UTC))


def test_row_already_inside_the_window_is_sent_unchanged() -> None:
    """A time inside the window is kept exactly, converted to UTC, and not marked as moved."""
    requested = at("Australia/Sydney", 2026, 12, 2, 10, 15)
    assert_unchanged(place(policy(), requested), requested)


def test_reject_mode_keeps_in_window_rows_and_rejects_the_rest() -> None:
    """With --outside-window reject, an in-window row is kept and others get a code and a reason."""
    rules = policy(outside_window="reject")
    inside = at("Australia/Sydney", 2026, 12, 2, 10, 0)
    assert_unchanged(place(rules, inside), inside)
    outside = place(rules, at("Australia/Sydney", 2026, 12, 2, 21, 0))
    assert outside.error_code == OUTSIDE_CALLING_WINDOW
    assert outside.when is None and outside.moved is False
    assert outside.error is not None
    assert "2026-12-02T22:00:00Z" in outside.error  # it says when the window next opens
    assert "--outside-window defer" in outside.error


def test_reject_mode_says_when_the_window_does_not_open_soon() -> None:
    """In reject mode, a row whose window is beyond the horizon is told so, not told to defer."""
    rules = policy(outside_window="reject", max_defer_days=1)
    result = place(rules, at("Australia/Sydney", 2026, 12, 5, 17, 30))
    assert result.error_code == OUTSIDE_CALLING_WINDOW
    assert result.error is not None and "does not open within 1 days" in result.error


# --- each profile ---------------------------------------------------------------------------


PROFILE_TABLE = [
    # profile, zone, phone, requested local time, expected local time (None: unchanged)
    ("au-telemarketing", "Australia/Sydney", SYDNEY_LANDLINE, (2026, 12, 4, 19, 59), None),
    ("au-telemarketing", "Australia/Sydney", SYDNEY_LANDLINE, (2026, 12, 4, 20, 0), (12, 5, 9)),
    ("au-telemarketing", "Australia/Sydney", SYDNEY_LANDLINE, (2026, 12, 5, 16, 59), None),
    ("au-telemarketing", "Australia/Sydney", SYDNEY_LANDLINE, (2026, 12, 7, 8, 59), (12, 7, 9)),
    ("au-telemarketing", "Australia/Sydney", SYDNEY_LANDLINE, (2026, 4, 3, 10, 0), (4, 4, 9)),
    ("au-telemarketing", "Australia/Sydney", SYDNEY_LANDLINE, (2026, 4, 6, 10, 0), (4, 7, 9)),
    ("au-research", "Australia/Sydney", SYDNEY_LANDLINE, (2026, 12, 4, 20, 29), None),
    ("au-research", "Australia/Sydney", SYDNEY_LANDLINE, (2026, 12, 4, 20, 30), (12, 5, 9)),
    ("au-research", "Australia/Sydney", SYDNEY_LANDLINE, (2026, 12, 6, 12, 0), None),
    ("au-research", "Australia/Sydney", SYDNEY_LANDLINE, (2026, 12, 6, 17, 0), (12, 7, 9)),
    ("au-research", "Australia/Sydney", SYDNEY_LANDLINE, (2026, 12, 6, 8, 0), (12, 6, 9)),
    ("au-research", "Australia/Sydney", SYDNEY_LANDLINE, (2026, 4, 3, 10, 0), (4, 4, 9)),
    ("us-tcpa", "America/New_York", NEW_YORK, (2026, 7, 8, 7, 59), (7, 8, 8)),
    ("us-tcpa", "America/New_York", NEW_YORK, (2026, 7, 8, 20, 59), None),
    ("us-tcpa", "America/New_York", NEW_YORK, (2026, 7, 8, 21, 0), (7, 9, 8)),
    ("us-tcpa", "America/New_York", NEW_YORK, (2026, 7, 5, 12, 0), None),
    ("us-tcpa", "America/New_York", NEW_YORK, (2026, 7, 4, 12, 0), None),
    ("ca-crtc", "America/Toronto", TORONTO, (2026, 7, 10, 21, 29), None),
    ("ca-crtc", "America/Toronto", TORONTO, (2026, 7, 10, 21, 30), (7, 11, 10)),
    ("ca-crtc", "America/Toronto", TORONTO, (2026, 7, 11, 9, 30), (7, 11, 10)),
    ("ca-crtc", "America/Toronto", TORONTO, (2026, 7, 11, 17, 59), None),
    ("ca-crtc", "America/Toronto", TORONTO, (2026, 7, 12, 18, 0), (7, 13, 9)),
    ("ca-crtc", "America/Toronto", TORONTO, (2026, 7, 13, 8, 30), (7, 13, 9)),
]


@pytest.mark.parametrize(("profile", "zone", "phone", "requested", "expected"), PROFILE_TABLE)
def test_profile_hours_in_the_callee_zone(
    profile: str,
    zone: str,
    phone: str,
    requested: tuple[int, ...],
    expected: tuple[int, int, int] | None,
) -> None:
    """Each profile keeps in-window times and defers the rest to its next opening, end-exclusive."""
    when = at(zone, *requested)
    result = place(policy(profile), when, phone)
    if expected is None:
        assert_unchanged(result, when)
    else:
        month, day, hour = expected
        assert_moved_to(result, at(zone, requested[0], month, day, hour, 0))


def test_profiles_carry_the_documented_hours_and_holidays() -> None:
    """Each profile has its legal hours (minutes after midnight, Monday first) and calendar."""
    # (Mon-Fri, Sat, Sun) as (start, end) minutes after midnight; None for a closed day.
    weekday_sat_sun: dict[str, tuple[tuple[int, int], tuple[int, int], tuple[int, int] | None]]
    weekday_sat_sun = {
        "au-telemarketing": ((540, 1200), (540, 1020), None),
        "au-research": ((540, 1230), (540, 1020), (540, 1020)),
        "us-tcpa": ((480, 1260), (480, 1260), (480, 1260)),
        "us-federal": ((480, 1260), (480, 1260), (480, 1260)),
        "ca-crtc": ((540, 1290), (600, 1080), (600, 1080)),
    }
    assert set(PROFILES) == set(weekday_sat_sun)
    for name, (weekdays, saturday, sunday) in weekday_sat_sun.items():
        week = parse_spec(PROFILES[name].spec)
        assert week[:5] == ((weekdays,),) * 5, name
        assert week[5] == (saturday,), name
        assert week[6] == ((sunday,) if sunday else ()), name
    assert {name: p.holidays for name, p in PROFILES.items()} == {
        "au-telemarketing": ("AU",),
        "au-research": ("AU",),
        "us-tcpa": (),
        "us-federal": (),
        "ca-crtc": (),
    }
    assert {name for name, p in PROFILES.items() if p.us_states} == {"us-tcpa"}


def test_profile_names_ignore_case_and_spaces() -> None:
    """`--calling-window " AU-Telemarketing "` is the au-telemarketing profile."""
    assert policy(" AU-Telemarketing ").name == "au-telemarketing"


# --- daylight saving and odd offsets ------------------------------------------------------------


def test_sydney_monday_after_dst_starts_opens_at_9am_daylight_time() -> None:
    """Sat 17:30 before DST starts (AEST) moves to Mon 09:00 AEDT: 22:00 UTC, not 23:00."""
    result = place(policy(), at("Australia/Sydney", 2026, 10, 3, 17, 30))
    assert_moved_to(result, datetime(2026, 10, 4, 22, 0, tzinfo=UTC))


def test_window_start_inside_sydney_spring_gap_opens_when_clocks_jump() -> None:
    """02:30 never happens on 4 Oct 2026 in Sydney; a 02:30 window opens at the jump (03:00)."""
    rules = policy("sun 02:30-05:00")
    result = place(rules, at("Australia/Sydney", 2026, 10, 4, 1, 0))
    assert_moved_to(result, datetime(2026, 10, 3, 16, 0, tzinfo=UTC))
    assert result.when is not None
    assert result.when.astimezone(ZoneInfo("Australia/Sydney")).hour == 3


def test_window_start_in_sydney_autumn_overlap_takes_the_later_instant() -> None:
    """02:30 happens twice on 5 Apr 2026 in Sydney; a window starting then opens the second time."""
    result = place(policy("sun 02:30-04:00"), at("Australia/Sydney", 2026, 4, 5, 0, 0))
    assert_moved_to(result, datetime(2026, 4, 4, 16, 30, tzinfo=UTC))  # 02:30 AEST, not AEDT


def test_window_end_in_sydney_autumn_overlap_takes_the_earlier_instant() -> None:
    """A window ending at 02:30 on the night 02:30 happens twice closes the first time."""
    rules = policy("sun 01:00-02:30")
    just_before = datetime(2026, 4, 4, 15, 29, tzinfo=UTC)  # 02:29 AEDT
    assert_unchanged(place(rules, just_before), just_before)
    closed = place(rules, datetime(2026, 4, 4, 15, 30, tzinfo=UTC))  # 02:30 AEDT, first time
    assert_moved_to(closed, at("Australia/Sydney", 2026, 4, 12, 1, 0))


def test_lord_howe_half_hour_spring_gap_opens_when_clocks_jump() -> None:
    """Lord Howe jumps from 02:00 to 02:30 on 4 Oct 2026; a 02:00 start opens at the jump."""
    rules = policy("sun 02:00-03:00")
    result = place(rules, datetime(2026, 10, 3, 15, 0, tzinfo=UTC), tz=LORD_HOWE_ROW)
    assert_moved_to(result, datetime(2026, 10, 3, 15, 30, tzinfo=UTC))
    last_minute = datetime(2026, 10, 3, 15, 59, tzinfo=UTC)  # 02:59 at +11
    assert_unchanged(place(rules, last_minute, tz=LORD_HOWE_ROW), last_minute)
    after = place(rules, datetime(2026, 10, 3, 16, 0, tzinfo=UTC), tz=LORD_HOWE_ROW)
    assert after.moved is True


def test_lord_howe_half_hour_autumn_overlap_starts_the_second_time() -> None:
    """01:30-02:00 happens twice on Lord Howe on 5 Apr 2026; a 01:45 start waits for the second."""
    rules = policy("sun 01:45-03:00")
    result = place(rules, datetime(2026, 4, 4, 14, 0, tzinfo=UTC), tz=LORD_HOWE_ROW)
    assert_moved_to(result, datetime(2026, 4, 4, 15, 15, tzinfo=UTC))  # 01:45 at +10:30


def test_lord_howe_monday_after_dst_opens_at_9am_plus_eleven() -> None:
    """au-telemarketing on Lord Howe: Sat 17:30 (+10:30) moves to Mon 09:00 at +11."""
    result = place(policy(), at(LORD_HOWE_ROW, 2026, 10, 3, 17, 30), tz=LORD_HOWE_ROW)
    assert_moved_to(result, datetime(2026, 10, 4, 22, 0, tzinfo=UTC))


def test_us_spring_forward_sunday_opens_at_8am_daylight_time() -> None:
    """In New York, Sat 21:30 EST before the change moves to Sun 08:00 EDT, 12:00 UTC."""
    result = place(policy("us-tcpa"), at("America/New_York", 2026, 3, 7, 21, 30), NEW_YORK)
    assert_moved_to(result, datetime(2026, 3, 8, 12, 0, tzinfo=UTC))


def test_us_fall_back_sunday_opens_at_8am_standard_time() -> None:
    """In New York, Sat 21:30 EDT before the change moves to Sun 08:00 EST, 13:00 UTC."""
    result = place(policy("us-tcpa"), at("America/New_York", 2026, 10, 31, 21, 30), NEW_YORK)
    assert_moved_to(result, datetime(2026, 11, 1, 13, 0, tzinfo=UTC))


def test_overnight_window_on_us_spring_forward_night_is_an_hour_shorter() -> None:
    """A Sat 22:00-03:00 window in New York lasts 4 real hours on the night clocks go forward."""
    rules = policy("sat 22:00-03:00")
    opens = place(rules, at("America/New_York", 2026, 3, 7, 12, 0), NEW_YORK)
    assert_moved_to(opens, datetime(2026, 3, 8, 3, 0, tzinfo=UTC))
    last_minute = datetime(2026, 3, 8, 6, 59, tzinfo=UTC)
    assert_unchanged(place(rules, last_minute, NEW_YORK), last_minute)
    closed = place(rules, datetime(2026, 3, 8, 7, 0, tzinfo=UTC), NEW_YORK)  # 03:00 EDT
    assert_moved_to(closed, at("America/New_York", 2026, 3, 14, 22, 0))


def test_eucla_quarter_hour_offset_opens_at_local_9am() -> None:
    """Eucla is UTC+08:45, so its 09:00 opening is 00:15 UTC."""
    result = place(policy(), at("Australia/Eucla", 2026, 12, 7, 8, 0), tz="Australia/Eucla")
    assert_moved_to(result, datetime(2026, 12, 7, 0, 15, tzinfo=UTC))


# --- holidays -----------------------------------------------------------------------------------


def test_au_profile_blocks_national_holidays_not_state_ones() -> None:
    """NSW Labour Day (5 Oct 2026) is a state holiday only, so au-telemarketing allows it."""
    requested = at("Australia/Sydney", 2026, 10, 5, 10, 0)
    assert_unchanged(place(policy(), requested), requested)


def test_a_holiday_every_state_observes_is_a_national_one() -> None:
    """Boxing Day 2026 is a Saturday; every state and territory keeps Monday 28 December
    instead (Tasmania calls it Boxing Day itself), so a call that day goes on the 29th."""
    for zone in ("Australia/Sydney", "Australia/Perth", "Australia/Hobart"):
        result = place(policy(), at(zone, 2026, 12, 28, 10, 0), tz=zone)
        assert_moved_to(result, at(zone, 2026, 12, 29, 9, 0))


def test_custom_window_with_state_holidays_skips_labour_day() -> None:
    """`--holidays AU-NSW` on a custom window moves a Labour Day call to the next morning."""
    rules = policy("mon-fri 09:00-17:00", holidays="AU-NSW")
    result = place(rules, at("Australia/Sydney", 2026, 10, 5, 10, 0))
    assert_moved_to(result, at("Australia/Sydney", 2026, 10, 6, 9, 0))


def test_holidays_option_adds_to_a_profile_calendar() -> None:
    """au-telemarketing with `--holidays AU-NSW` blocks both national and NSW holidays."""
    rules = policy(holidays="AU-NSW")
    assert rules.holiday_codes == ("AU", "AU-NSW")
    result = place(rules, at("Australia/Sydney", 2026, 10, 5, 10, 0))
    assert_moved_to(result, at("Australia/Sydney", 2026, 10, 6, 9, 0))


def test_holiday_is_judged_on_the_callee_local_date_not_utc() -> None:
    """23:30 UTC on 24 Dec 2028 is Christmas morning in Brisbane, so it waits until the 27th."""
    result = place(policy(), datetime(2028, 12, 24, 23, 30, tzinfo=UTC), BRISBANE_LANDLINE)
    assert_moved_to(result, at("Australia/Brisbane", 2028, 12, 27, 9, 0))


def test_holiday_blocks_the_part_of_an_overnight_window_that_falls_on_it() -> None:
    """A daily 22:00-02:00 window stops at Christmas midnight and resumes after Boxing Day."""
    rules = policy("daily 22:00-02:00", holidays="AU")
    eve = at("Australia/Sydney", 2026, 12, 24, 23, 0)
    assert_unchanged(place(rules, eve), eve)
    result = place(rules, at("Australia/Sydney", 2026, 12, 25, 0, 30))
    assert_moved_to(result, at("Australia/Sydney", 2026, 12, 27, 0, 0))


# --- several zones --------------------------------------------------------------------------------


def test_adelaide_or_perth_landline_opens_at_9am_in_perth() -> None:
    """An 08 number may be in Adelaide or Perth; 09:00 Adelaide is 06:30 Perth, so it waits."""
    result = place(policy(), at("Australia/Adelaide", 2026, 12, 2, 9, 0), ADELAIDE_OR_PERTH)
    assert_moved_to(result, at("Australia/Perth", 2026, 12, 2, 9, 0))


def test_adelaide_or_perth_landline_closes_at_8pm_in_adelaide() -> None:
    """The safe hours end when Adelaide reaches 20:00, though Perth is still at 17:30."""
    last_minute = at("Australia/Adelaide", 2026, 12, 2, 19, 59)
    assert_unchanged(place(policy(), last_minute, ADELAIDE_OR_PERTH), last_minute)
    closed = place(policy(), at("Australia/Adelaide", 2026, 12, 2, 20, 0), ADELAIDE_OR_PERTH)
    assert_moved_to(closed, at("Australia/Perth", 2026, 12, 3, 9, 0))


def test_contact_timezone_decides_for_a_number_with_several_zones() -> None:
    """`--contact-timezone Australia/Adelaide` makes an 08 number open at 09:00 Adelaide."""
    rules = policy(contact_timezone="Australia/Adelaide")
    result = place(rules, at("Australia/Adelaide", 2026, 12, 2, 8, 0), ADELAIDE_OR_PERTH)
    assert_moved_to(result, at("Australia/Adelaide", 2026, 12, 2, 9, 0))


def test_single_zone_of_the_number_beats_contact_timezone() -> None:
    """A Sydney landline stays on Sydney time even when --contact-timezone names Perth."""
    rules = policy(contact_timezone="Australia/Perth")
    assert [z.key for z in rules.zones_for(SYDNEY_LANDLINE, None)] == ["Australia/Sydney"]
    assert [z.key for z in rules.zones_for(SYDNEY_LANDLINE, "Asia/Tokyo")] == ["Asia/Tokyo"]


def test_timezone_column_forgives_case_and_spaces() -> None:
    """A timezone cell typed as ' australia/perth ' is read as Australia/Perth."""
    assert [z.key for z in policy().zones_for(AU_MOBILE, " australia/perth ")] == [
        "Australia/Perth"
    ]


def test_zones_with_no_common_hour_give_outside_calling_window() -> None:
    """A one-hour window never opens in Sydney and Cocos at once: the row says how to fix it."""
    result = place(
        policy("daily 09:00-10:00"), at("Australia/Sydney", 2026, 12, 2, 9, 0), AU_MOBILE
    )
    assert result.error_code == OUTSIDE_CALLING_WINDOW
    assert result.when is None
    assert result.error is not None
    assert "all 8 of its zones" in result.error and "timezone column" in result.error


# --- overnight windows, horizon, unknown zones --------------------------------------------------


def test_window_crossing_midnight_is_open_after_midnight_and_end_exclusive() -> None:
    """`fri 22:00-02:00` allows Sat 01:00, opens Fri at 22:00, and is closed from Sat 02:00."""
    rules = policy("fri 22:00-02:00")
    after_midnight = at("America/New_York", 2026, 7, 11, 1, 0)
    assert_unchanged(place(rules, after_midnight, NEW_YORK), after_midnight)
    early = place(rules, at("America/New_York", 2026, 7, 10, 21, 0), NEW_YORK)
    assert_moved_to(early, at("America/New_York", 2026, 7, 10, 22, 0))
    closed = place(rules, at("America/New_York", 2026, 7, 11, 2, 0), NEW_YORK)
    assert_moved_to(closed, at("America/New_York", 2026, 7, 17, 22, 0))


def test_deferral_beyond_max_defer_days_is_outside_calling_window() -> None:
    """Sat 17:30 to Mon 09:00 is 39.5 hours: allowed with 2 days of deferral, refused with 1."""
    saturday = at("Australia/Sydney", 2026, 12, 5, 17, 30)
    assert place(policy(max_defer_days=1), saturday).error_code == OUTSIDE_CALLING_WINDOW
    assert_moved_to(
        place(policy(max_defer_days=2), saturday), at("Australia/Sydney", 2026, 12, 7, 9, 0)
    )


def test_zero_defer_days_still_keeps_in_window_rows() -> None:
    """With --max-defer-days 0 a row inside the window is sent; one outside is refused."""
    rules = policy(max_defer_days=0)
    inside = at("Australia/Sydney", 2026, 12, 2, 10, 0)
    assert_unchanged(place(rules, inside), inside)
    assert place(rules, inside + timedelta(hours=11)).error_code == OUTSIDE_CALLING_WINDOW


def test_row_without_a_time_is_sent_now_when_the_window_is_open() -> None:
    """A row with no time stays 'as soon as possible' (no time sent) while the window is open."""
    rules = policy()
    now = at("Australia/Sydney", 2026, 12, 2, 10, 0)
    result = rules.place(None, phone_e164=SYDNEY_LANDLINE, row_timezone=None, now=now)
    assert result == Placement(when=None, moved=False)


def test_row_without_a_time_is_scheduled_for_the_next_opening_when_closed() -> None:
    """A row with no time, run at Wed 21:00 Sydney, is scheduled for Thu 09:00."""
    now = at("Australia/Sydney", 2026, 12, 2, 21, 0)
    result = policy().place(None, phone_e164=SYDNEY_LANDLINE, row_timezone=None, now=now)
    assert_moved_to(result, at("Australia/Sydney", 2026, 12, 3, 9, 0))


def test_number_without_any_zone_gives_unknown_timezone() -> None:
    """A number phonenumbers cannot place, with no column or option, is `unknown_timezone`."""
    result = place(policy(), at("Australia/Sydney", 2026, 12, 2, 10, 0), NO_ZONE)
    assert result.error_code == UNKNOWN_TIMEZONE
    assert result.error is not None and "--contact-timezone" in result.error


def test_contact_timezone_places_a_number_without_any_zone() -> None:
    """`--contact-timezone` gives a zone to a number phonenumbers cannot place."""
    requested = at("Australia/Sydney", 2026, 12, 2, 10, 0)
    rules = policy(contact_timezone="Australia/Sydney")
    assert_unchanged(place(rules, requested, NO_ZONE), requested)


def test_bad_timezone_column_gives_unknown_timezone_naming_the_value() -> None:
    """A timezone cell that is not an IANA name is reported, not silently replaced."""
    result = place(policy(), at("Australia/Sydney", 2026, 12, 2, 10, 0), tz="Mars/Olympus")
    assert result.error_code == UNKNOWN_TIMEZONE
    assert result.error is not None and "Mars/Olympus" in result.error


def test_naive_datetimes_are_refused() -> None:
    """A time without a zone is a programming error, never guessed."""
    with pytest.raises(ValueError, match="aware"):
        policy().place(
            datetime(2026, 12, 2, 10), phone_e164=SYDNEY_LANDLINE, row_timezone=None, now=NOW
        )


# --- settings and specs -------------------------------------------------------------------------


def test_no_calling_window_setting_means_no_policy() -> None:
    """Without --calling-window there is nothing to enforce."""
    assert WindowPolicy.from_settings(Settings()) is None


def test_custom_spec_matching_au_hours_parses_to_the_same_week() -> None:
    """The documented example spec gives the au-telemarketing hours, Monday first."""
    week = parse_spec("mon-fri 09:00-20:00; sat 09:00-17:00")
    assert week == parse_spec(PROFILES["au-telemarketing"].spec)
    assert week[0] == ((540, 1200),) and week[5] == ((540, 1020),) and week[6] == ()


def test_spec_accepts_full_day_names_lists_wrapping_ranges_and_24_00() -> None:
    """Days may be full names, lists or ranges that wrap the week; 24:00 ends at midnight."""
    week = parse_spec("Friday-mon 10:00-12:00, 13:00-24:00; wed,thu 23:00-01:30")
    assert [bool(day) for day in week] == [True, False, True, True, True, True, True]
    assert week[4] == ((600, 720), (780, 1440))
    assert week[2] == ((1380, 1530),)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("funday 09:00-17:00", "Unknown day 'funday'"),
        ("mon 25:00-26:00", "not valid times"),
        ("mon 09:00-09:00", "00:00-24:00"),
        ("mon 9-17", "Bad hours"),
        ("mon-fri 09:00-17:00; sat", "'sat' has no hours"),
        ("business-hours", "Use a profile"),
    ],
)
def test_bad_window_spec_is_a_usage_error_that_says_what_is_wrong(spec: str, fragment: str) -> None:
    """A spec that cannot be read stops the run (exit 2) with a message naming the problem."""
    with pytest.raises(UsageError, match=fragment):
        policy(spec)


def test_unknown_holiday_calendar_is_a_usage_error() -> None:
    """`--holidays XX` names no country the holidays package knows, so the run stops."""
    with pytest.raises(UsageError, match="AU, AU-NSW or US-CA"):
        policy(holidays="XX")
    with pytest.raises(UsageError, match="AU-ZZ"):
        policy(holidays="AU-ZZ")


def test_unknown_contact_timezone_is_a_usage_error() -> None:
    """`--contact-timezone Sydney` is not an IANA name, so the run stops before sending."""
    with pytest.raises(UsageError, match="--contact-timezone"):
        policy(contact_timezone="Sydney")
