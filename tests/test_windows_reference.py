"""Calling windows agree with a slow, obvious reference: step minute by minute and read the clock.

The reference asks, for each minute, "is the local wall time inside the window, on a day that is
not a holiday, in every zone of the contact?" and takes the first minute where it is. The policy
must land on the same instant for any requested time, including across DST changes and
holidays, and for windows that cross midnight.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from batchcall._config import Settings
from batchcall._windows import WindowPolicy

MAX_DEFER_DAYS = 3  # keeps the minute-by-minute reference quick

# Contacts as (phone, timezone column): one zone, two zones, eight zones, and a quarter-hour one.
CONTACTS = [
    ("+61291234567", None),
    ("+61731234567", None),
    ("+61881234567", None),
    ("+61412345678", None),
    ("+61412345678", "Australia/Lord_Howe"),
    ("+61412345678", "Australia/Eucla"),
    ("+12125551234", None),
    ("+14165551234", None),
]
WINDOWS = [
    ("au-telemarketing", None),
    ("au-research", None),
    ("us-tcpa", None),
    ("us-federal", None),
    ("ca-crtc", None),
    ("fri 22:00-02:00", None),
    ("daily 22:00-02:00; sat 09:00-12:00", "AU"),
    ("mon-fri 09:00-17:00", "AU-NSW,US"),
]


def reference_first_allowed(
    rules: WindowPolicy, zones: list[ZoneInfo], base: datetime, margin: int = 0
) -> datetime | None:
    """First whole minute at or after `base` that is inside the window in every zone, and
    stays inside it for the `margin` minutes from it (the window closes no sooner than that)."""
    week = rules.week

    def allowed_in(zone: ZoneInfo, instant: datetime) -> bool:
        local = instant.astimezone(zone)
        if rules.is_holiday(local.date()):
            return False
        minute = local.hour * 60 + local.minute
        today = week[local.weekday()]
        yesterday = week[(local.weekday() - 1) % 7]
        return any(s <= minute < e for s, e in today) or any(
            s <= minute + 1440 < e for s, e in yesterday
        )

    instant = base
    horizon = base + timedelta(days=MAX_DEFER_DAYS)
    while instant <= horizon:
        ahead = [instant + timedelta(minutes=m) for m in range(max(margin, 1))]
        if all(allowed_in(zone, t) for zone in zones for t in ahead):
            return instant
        instant += timedelta(minutes=1)
    return None


# DST changes in Sydney, Lord Howe and North America, Christmas, Easter and NSW Labour Day.
EVENTS = [
    datetime(2026, 4, 5, tzinfo=UTC),
    datetime(2026, 10, 4, tzinfo=UTC),
    datetime(2027, 4, 4, tzinfo=UTC),
    datetime(2027, 10, 3, tzinfo=UTC),
    datetime(2026, 3, 8, tzinfo=UTC),
    datetime(2026, 11, 1, tzinfo=UTC),
    datetime(2026, 12, 25, tzinfo=UTC),
    datetime(2028, 12, 25, tzinfo=UTC),
    datetime(2027, 3, 26, tzinfo=UTC),
    datetime(2026, 10, 5, tzinfo=UTC),
]
ANY_TIME = st.integers(min_value=0, max_value=4 * 365 * 1440).map(
    lambda m: datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=m)
)
NEAR_AN_EVENT = st.builds(
    lambda event, m: event + timedelta(minutes=m),
    st.sampled_from(EVENTS),
    st.integers(min_value=-3 * 1440, max_value=1440),
)


@settings(max_examples=120, deadline=None)
@given(
    base=st.one_of(ANY_TIME, NEAR_AN_EVENT),
    contact=st.sampled_from(CONTACTS),
    window=st.sampled_from(WINDOWS),
    margin=st.sampled_from([0, 30, 90]),
)
def test_placement_matches_minute_by_minute_reference(
    base: datetime, contact: tuple[str, str | None], window: tuple[str, str | None], margin: int
) -> None:
    """Deferred or kept, every call lands on the first minute the reference allows, or neither,
    with or without a margin before each window closes."""
    spec, calendars = window
    rules = WindowPolicy.from_settings(
        Settings(
            calling_window=spec,
            holidays=calendars,
            max_defer_days=MAX_DEFER_DAYS,
            window_margin=f"{margin}m" if margin else "0",
        )
    )
    assert rules is not None
    phone, column = contact
    result = rules.place(base, phone_e164=phone, row_timezone=column, now=base)
    expected = reference_first_allowed(rules, rules.zones_for(phone, column), base, margin)
    if expected is None:
        assert result.error_code == "outside_calling_window"
    else:
        assert result.error_code is None, result.error
        assert result.when == expected
        assert result.moved is (expected != base)
