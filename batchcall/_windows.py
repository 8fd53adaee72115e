"""Calling windows: keep each call inside the hours allowed in the callee's own time zone.

A window is a weekly pattern of local hours (end-exclusive, and a range may cross midnight) plus
holiday calendars from the `holidays` package; a holiday blocks every local moment of its date.
Each date's window is turned into UTC instants with zoneinfo for that very date, so no offset is
ever reused across a DST change or a zone's rule change.

When a contact may be in several zones, a moment is allowed only when it is allowed in all of
them ("safe hours", as Genesys, Bright Pattern and LiveVox do). The work is done per UTC day on
the tuple of zone names, and cached, so a million rows cost a cache lookup and a bisect each.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import timezone as phone_timezone

from ._config import Settings
from ._errors import UsageError
from ._states import STATE_NAMES, UnknownState, contact_states
from ._us_states import US_STATE_RULES, StateRule
from ._zones import ZONE_CELL, UnknownZone, parse_zone

if TYPE_CHECKING:
    import holidays as holidays_lib

OUTSIDE_CALLING_WINDOW = "outside_calling_window"
UNKNOWN_TIMEZONE = "unknown_timezone"
INVALID_STATE = "invalid_state"
_TICK = timedelta(microseconds=1)

# One day's ranges as (start, end) minutes after local midnight; an end past 1440 crosses midnight.
Week = tuple[tuple[tuple[int, int], ...], ...]  # seven entries, Monday first
Interval = tuple[datetime, datetime]  # [start, end) in UTC

_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_RANGE = re.compile(r"(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})")
SPEC_HELP = (
    'write a custom window as "mon-fri 09:00-20:00; sat 09:00-17:00": clauses separated by ";", '
    "each a day or day range (mon..sun, daily) and one or more HH:MM-HH:MM ranges separated by "
    '","; the end is exclusive and may be 24:00, and an end before the start crosses midnight'
)


def parse_spec(spec: str) -> Week:
    """Turn a custom window spec into a Week; raise UsageError saying what is wrong."""
    week: list[list[tuple[int, int]]] = [[] for _ in range(7)]
    clauses = [c.strip() for c in spec.split(";") if c.strip()]
    if not clauses:
        raise UsageError(f"The calling window {spec!r} is empty: {SPEC_HELP}.")
    for clause in clauses:
        days_part, _, ranges_part = clause.partition(" ")
        ranges = [r for r in re.split(r"[,\s]+", ranges_part.strip()) if r]
        if not ranges:
            raise UsageError(f"The calling window clause {clause!r} has no hours: {SPEC_HELP}.")
        parsed = [_parse_range(r, clause) for r in ranges]
        for day in _parse_days(days_part, clause):
            week[day].extend(parsed)
    return tuple(tuple(sorted(day)) for day in week)


def _parse_days(text: str, clause: str) -> list[int]:
    text = text.lower()
    if text in ("daily", "everyday"):
        return list(range(7))
    out: list[int] = []
    for part in text.split(","):
        first, dash, last = part.partition("-")
        a = _day_index(first, clause)
        b = _day_index(last, clause) if dash else a
        # A range may wrap the week, as in "fri-mon".
        out.extend((a + i) % 7 for i in range((b - a) % 7 + 1))
    return out


def _day_index(name: str, clause: str) -> int:
    name = name.strip()
    if name in _DAY_NAMES:
        return _DAY_NAMES.index(name)
    if name in _FULL_DAY_NAMES:
        return _FULL_DAY_NAMES.index(name)
    raise UsageError(f"Unknown day {name!r} in calling window clause {clause!r}: {SPEC_HELP}.")


def _parse_range(text: str, clause: str) -> tuple[int, int]:
    match = _RANGE.fullmatch(text)
    if match is None:
        raise UsageError(f"Bad hours {text!r} in calling window clause {clause!r}: {SPEC_HELP}.")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if h1 > 23 or m1 > 59 or m2 > 59 or end > 24 * 60:
        raise UsageError(f"Hours {text!r} in calling window clause {clause!r} are not valid times.")
    if start == end:
        raise UsageError(
            f"Hours {text!r} in calling window clause {clause!r} start and end together; "
            "write 00:00-24:00 for a whole day."
        )
    if end < start:
        end += 24 * 60
    return start, end


@dataclass(frozen=True, slots=True)
class Profile:
    """A named legal window: its weekly hours, the holiday calendars it carries, the law it
    comes from, and whether the rules of US states (`_us_states`) apply on top of it."""

    name: str
    spec: str
    holidays: tuple[str, ...]
    citation: str = ""
    us_states: bool = False


# Each profile's hours, and where they come from. Windows are end-exclusive.
PROFILES: dict[str, Profile] = {
    # Telecommunications (Telemarketing and Research Calls) Industry Standard 2017 (ACMA):
    # telemarketing calls Mon-Fri 09:00-20:00 and Sat 09:00-17:00; never on Sunday or on a
    # national public holiday, taken as holidays.country_holidays("AU") with no subdivision.
    "au-telemarketing": Profile(
        "au-telemarketing",
        "mon-fri 09:00-20:00; sat 09:00-17:00",
        holidays=("AU",),
        citation="ACMA Telemarketing and Research Calls Industry Standard 2017",
    ),
    # The same Standard's research calls: weekdays until 20:30, and Sunday is allowed with
    # Saturday's hours. Sources: ACMA's 2007 variation that allowed Sunday research calls
    # 09:00-17:00 (computerworld.com.au, "Do Not Call Register rules revised for researchers");
    # a submission on the 2017 draft counting 73.5 research hours a week against 63 for
    # telemarketing, i.e. 5 x 11.5 h + 8 h + 8 h (docsbay.net/doc/892292); and summaries of the
    # 2017 Standard that bar both kinds of call on national public holidays (packleader.net.au).
    "au-research": Profile(
        "au-research",
        "mon-fri 09:00-20:30; sat-sun 09:00-17:00",
        holidays=("AU",),
        citation="ACMA Telemarketing and Research Calls Industry Standard 2017",
    ),
    # 47 CFR 64.1200(c)(1): not before 8 a.m. or after 9 p.m. at the called party's location.
    # No federal holiday rule. `us-tcpa` adds the stricter rules of the states; `us-federal`
    # is the federal rule alone.
    "us-tcpa": Profile(
        "us-tcpa", "daily 08:00-21:00", (), citation="47 CFR 64.1200(c)(1)", us_states=True
    ),
    "us-federal": Profile("us-federal", "daily 08:00-21:00", (), citation="47 CFR 64.1200(c)(1)"),
    # CRTC Unsolicited Telecommunications Rules: weekdays 09:00-21:30, weekends 10:00-18:00.
    "ca-crtc": Profile(
        "ca-crtc",
        "mon-fri 09:00-21:30; sat-sun 10:00-18:00",
        (),
        citation="CRTC Unsolicited Telecommunications Rules",
    ),
}


def window_named(spec: str) -> tuple[str, Week, tuple[str, ...]]:
    """A --calling-window value as (name, weekly hours, holiday calendars): a profile's name,
    in any case, or a custom spec."""
    profile = profile_named(spec)
    return profile.name, parse_spec(profile.spec), profile.holidays


def profile_named(spec: str) -> Profile:
    """A --calling-window value as a Profile: a named one, in any case, or a custom spec
    (which carries no holidays and no citation)."""
    profile = PROFILES.get(spec.lower())
    if profile is not None:
        return profile
    if re.search(r"\d", spec):
        parse_spec(spec)
        return Profile(spec, spec, ())
    raise UsageError(
        f"Unknown calling window {spec!r}. Use a profile ({', '.join(PROFILES)}), or {SPEC_HELP}."
    )


@dataclass(frozen=True, slots=True)
class Layer:
    """One rule a call must keep: weekly local hours and the holiday calendars that ban whole
    days, with the label results.csv's `window_rule` and `batchcall windows show` give it."""

    label: str
    week: Week
    holidays: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a row's call lands: the UTC instant to send, or an error code and a sentence.

    `when` is None with no error when the row asked for no time and may be called right away.
    `rule` names the rule that moved or refused the row (None when it kept its time).
    """

    when: datetime | None
    moved: bool
    error_code: str | None = None
    error: str | None = None
    rule: str | None = None


# A contact as the caches see it: its zone names and the index of its combined layer.
ContactKey = tuple[tuple[str, ...], int]


class WindowPolicy:
    """Places each call at the first instant allowed in all of the contact's zones, by the
    window's own rule and, for `us-tcpa`, the rules of the contact's states."""

    def __init__(
        self,
        *,
        name: str,
        week: Week,
        holiday_codes: Iterable[str] = (),
        contact_timezone: ZoneInfo | None = None,
        reject: bool = False,
        max_defer_days: int = 14,
        citation: str = "",
        state_rules: Mapping[str, StateRule] | None = None,
        margin: timedelta = timedelta(0),
    ) -> None:
        if not 0 <= max_defer_days <= 366:
            raise UsageError(f"max_defer_days must be between 0 and 366, not {max_defer_days}.")
        self.name = name
        self.week = week
        self.holiday_codes = tuple(holiday_codes)
        for code in self.holiday_codes:
            _calendar(code)  # an unknown calendar is a usage error now, not mid-run
        self.contact_timezone = contact_timezone
        self.reject = reject
        self.max_defer_days = max_defer_days
        self.margin = margin
        self.state_rules = state_rules
        self.base = Layer(_label(name, citation), week, self.holiday_codes)
        self._book = _LayerBook(self.base, state_rules or {})
        # Per-instance caches: the answers depend on this policy's hours and holidays. Keys are
        # zone names, never phone prefixes, because a number's zones depend on more than a prefix.
        self._zone_date = lru_cache(maxsize=16384)(self._compute_zone_date)
        self._utc_day = lru_cache(maxsize=16384)(self._compute_utc_day)
        self._key = lru_cache(maxsize=65536)(self._compute_key)

    @classmethod
    def from_settings(cls, settings: Settings) -> WindowPolicy | None:
        """The policy the settings ask for, or None when no calling window is set."""
        return _from_settings(settings)

    # --- the contact's zones and states -------------------------------------------------------

    def zones_for(self, phone_e164: str, row_timezone: str | None) -> list[ZoneInfo]:
        """The contact's zones: the row's column, the number's single zone, --contact-timezone,
        else every zone of the number. Empty when nothing is known; UnknownZone (a ValueError)
        for a row zone that is not an IANA name."""
        return [ZoneInfo(name) for name in self.zone_names(phone_e164, row_timezone)]

    def zone_names(self, phone_e164: str, row_timezone: str | None) -> tuple[str, ...]:
        """zones_for() as sorted names: the key of every cache below."""
        if row_timezone is not None and row_timezone.strip():
            return (parse_zone(row_timezone, source=ZONE_CELL).key,)
        names = phone_zone_names(phone_e164)
        if len(names) == 1:
            return names
        if self.contact_timezone is not None:
            return (self.contact_timezone.key,)
        return names

    def states_for(
        self, phone_e164: str, row_state: str | None, row_zip: str | None = None
    ) -> tuple[str, ...]:
        """The states whose rules apply (none without state rules); UnknownState (a
        ValueError) for a state or ZIP cell that names no state."""
        if self.state_rules is None:
            return ()
        return contact_states(phone_e164, row_state, self.state_rules, row_zip)

    def key_for(
        self,
        phone_e164: str,
        row_timezone: str | None,
        row_state: str | None = None,
        row_zip: str | None = None,
    ) -> ContactKey:
        """The contact's zones and combined rule; a ValueError for a bad zone, state or ZIP."""
        return self._key(phone_e164, row_timezone or None, row_state or None, row_zip or None)

    def _compute_key(
        self, phone: str, row_timezone: str | None, row_state: str | None, row_zip: str | None
    ) -> ContactKey:
        zones = self.zone_names(phone, row_timezone)
        return zones, self.layer_of(self.states_for(phone, row_state, row_zip))

    def layer_of(self, states: tuple[str, ...]) -> int:
        """The index of the layer that combines the window's rule with these states' rules."""
        return self._book.combined(states)

    def layers(self, index: int) -> list[tuple[Layer, int]]:
        """The single rules that make up a combined layer, each with its own index: the
        window's own, then its states'."""
        return self._book.parts(index)

    # --- placing a call -----------------------------------------------------------------------

    def place(
        self,
        when: datetime | None,
        *,
        phone_e164: str,
        row_timezone: str | None,
        now: datetime,
        row_state: str | None = None,
        row_zip: str | None = None,
    ) -> Placement:
        """Keep `when` if it is allowed; otherwise defer it (or reject it, per the policy).

        `when` is the requested time (aware) or None for as soon as possible, which is `now`.
        """
        if now.tzinfo is None or (when is not None and when.tzinfo is None):
            raise ValueError("place() needs timezone-aware datetimes")
        try:
            key = self.key_for(phone_e164, row_timezone, row_state, row_zip)
        except UnknownZone as exc:
            return Placement(None, False, UNKNOWN_TIMEZONE, str(exc))
        except UnknownState as exc:
            return Placement(None, False, INVALID_STATE, f"{exc} Fix the cell or leave it empty.")
        if not key[0]:
            return Placement(None, False, UNKNOWN_TIMEZONE, _no_zone(phone_e164))
        base = (when or now).astimezone(UTC)
        first = self.first_allowed(key[0], base, key[1])
        if first == base:
            return Placement(base if when is not None else None, False)
        rule = explain(self, key, base)
        if first is not None and not self.reject:
            return Placement(first, True, rule=rule)
        refusal = _refusal(self, key, base, first)
        return Placement(None, False, OUTSIDE_CALLING_WINDOW, refusal, rule)

    def first_allowed(
        self, zone_names: tuple[str, ...], base: datetime, layer: int = 0, *, margin: bool = True
    ) -> datetime | None:
        """The first allowed instant at or after `base` (UTC), within max_defer_days, or None."""
        horizon = base + timedelta(days=self.max_defer_days)
        day = base.date()
        while datetime.combine(day, time(), UTC) <= horizon:
            starts, ends = self._utc_day(zone_names, layer, margin, day)
            i = bisect.bisect_right(ends, base)
            if i < len(ends):
                candidate = max(starts[i], base)
                return candidate if candidate <= horizon else None
            day += timedelta(days=1)
        return None

    def is_holiday(self, day: date) -> bool:
        return holiday_on(self.holiday_codes, day) is not None

    # --- cached building blocks ---------------------------------------------------------------

    def _compute_utc_day(
        self, zone_names: tuple[str, ...], layer: int, margin: bool, day: date
    ) -> tuple[tuple[datetime, ...], tuple[datetime, ...]]:
        """Allowed intervals within one UTC day, in all the zones at once (starts, ends)."""
        lo = datetime.combine(day, time(), UTC)
        hi = lo + timedelta(days=1)
        # A call may still start with exactly the margin left before the close (20:30 before
        # 21:00 with 30m), so the cut end stays just past close - margin.
        cut = self.margin - _TICK if margin and self.margin else timedelta(0)
        allowed: list[Interval] = [(lo, hi)]
        for name in zone_names:
            zone = ZoneInfo(name)
            # A range may cross midnight, so the local day before can reach into this UTC day;
            # the day after can continue a stretch that closes past it, which the margin needs.
            local_day = lo.astimezone(zone).date() - timedelta(days=1)
            last = hi.astimezone(zone).date() + timedelta(days=1)
            pieces: list[Interval] = []
            while local_day <= last:
                pieces.extend(self._zone_date(name, layer, local_day))
                local_day += timedelta(days=1)
            # The margin comes off each stretch's close, before the UTC day's edges clip it.
            kept = [(s, e - cut) for s, e in _merge(pieces) if e - cut > s]
            allowed = _intersect(allowed, _clip(kept, lo, hi))
            if not allowed:
                break
        return tuple(s for s, _ in allowed), tuple(e for _, e in allowed)

    def _compute_zone_date(self, zone_name: str, layer: int, day: date) -> tuple[Interval, ...]:
        """The UTC intervals of the ranges that start on one local date in one zone."""
        zone = ZoneInfo(zone_name)
        rule = self._book.layers[layer]
        midnight = datetime.combine(day, time())
        out: list[Interval] = []
        for start, end in rule.week[day.weekday()]:
            wall_start = midnight + timedelta(minutes=start)
            wall_end = midnight + timedelta(minutes=end)
            for piece_start, piece_end in _off_holidays(rule.holidays, wall_start, wall_end):
                a = wall_to_utc(piece_start, zone, is_start=True)
                b = wall_to_utc(piece_end, zone, is_start=False)
                if a < b:
                    out.append((a, b))
        return tuple(out)


def _from_settings(settings: Settings) -> WindowPolicy | None:
    if settings.calling_window is None or not settings.calling_window.strip():
        return None
    profile = profile_named(settings.calling_window.strip())
    codes = profile.holidays
    if settings.holidays:
        extra = tuple(c.strip() for c in settings.holidays.split(",") if c.strip())
        codes = tuple(dict.fromkeys((*codes, *extra)))
    contact = None
    if settings.contact_timezone:
        try:
            contact = parse_zone(settings.contact_timezone, source="--contact-timezone")
        except UnknownZone as exc:
            raise UsageError(str(exc)) from None
    return WindowPolicy(
        name=profile.name,
        week=parse_spec(profile.spec),
        holiday_codes=codes,
        contact_timezone=contact,
        reject=settings.outside_window == "reject",
        max_defer_days=settings.max_defer_days,
        citation=profile.citation,
        state_rules=US_STATE_RULES if profile.us_states else None,
        margin=settings.window_margin,
    )


# --- rules: combining them, and saying which one decided ------------------------------------------


class _LayerBook:
    """A policy's layers by index. Layer 0 is the window's own rule; the others are it
    combined with a set of states' rules, or one state's rule alone (for explanations).
    The caches name layers by index, which hashes faster than the layer itself."""

    def __init__(self, base: Layer, rules: Mapping[str, StateRule]) -> None:
        self.base = base
        self.rules = rules
        self.layers: list[Layer] = [base]
        self._by_states: dict[tuple[str, ...], int] = {(): 0}
        self._states_of: dict[int, tuple[str, ...]] = {0: ()}
        self._single: dict[str, int] = {base.label: 0}

    def combined(self, states: tuple[str, ...]) -> int:
        index = self._by_states.get(states)
        if index is None:
            parts = [self.base, *(state_layer(self.rules[s]) for s in states if s in self.rules)]
            index = self._add(combine(parts))
            self._by_states[states] = index
            self._states_of[index] = states
        return index

    def parts(self, index: int) -> list[tuple[Layer, int]]:
        states = self._states_of[index]
        singles = [state_layer(self.rules[s]) for s in states if s in self.rules]
        return [(self.base, 0), *((layer, self._single_index(layer)) for layer in singles)]

    def _single_index(self, layer: Layer) -> int:
        index = self._single.get(layer.label)
        if index is None:
            index = self._single[layer.label] = self._add(layer)
        return index

    def _add(self, layer: Layer) -> int:
        self.layers.append(layer)
        return len(self.layers) - 1


def allowed_intervals(
    policy: WindowPolicy, key: ContactKey, lo: datetime, hi: datetime
) -> list[Interval]:
    """Every allowed stretch between `lo` and `hi` (UTC) for a contact, margin included, with
    the stretches that meet at a UTC midnight joined."""
    zones, layer = key
    pieces: list[Interval] = []
    day = lo.date()
    while day <= hi.date():
        starts, ends = policy._utc_day(zones, layer, True, day)
        pieces.extend(zip(starts, ends, strict=True))
        day += timedelta(days=1)
    return _merge(_clip(pieces, lo, hi))


def state_label(code: str) -> str:
    return f"{code} ({STATE_NAMES[code]})" if code in STATE_NAMES else code


def state_layer(rule: StateRule) -> Layer:
    return Layer(rule.hours_label(), parse_spec(rule.hours), rule.holidays)


def combine(layers: list[Layer]) -> Layer:
    """The layer that allows only what every one of `layers` allows."""
    week = layers[0].week
    for layer in layers[1:]:
        week = intersect_weeks(week, layer.week)
    holidays = tuple(dict.fromkeys(code for layer in layers for code in layer.holidays))
    return Layer(" + ".join(layer.label for layer in layers), week, holidays)


def intersect_weeks(a: Week, b: Week) -> Week:
    """The hours both weeks allow. A range that crosses midnight is split at it first."""
    sa, sb = _split_days(a), _split_days(b)
    out: list[tuple[tuple[int, int], ...]] = []
    for day in range(7):
        both: list[tuple[int, int]] = []
        for s1, e1 in sa[day]:
            for s2, e2 in sb[day]:
                s, e = max(s1, s2), min(e1, e2)
                if s < e:
                    both.append((s, e))
        out.append(tuple(sorted(both)))
    return tuple(out)


def _split_days(week: Week) -> list[list[tuple[int, int]]]:
    days: list[list[tuple[int, int]]] = [[] for _ in range(7)]
    for day, ranges in enumerate(week):
        for start, end in ranges:
            days[day].append((start, min(end, 1440)))
            if end > 1440:
                days[(day + 1) % 7].append((0, end - 1440))
    return days


def explain(policy: WindowPolicy, key: ContactKey, base: datetime) -> str:
    """The rule that keeps a call from `base`: a holiday, else the first rule (the window's,
    then each state's) that does not allow it, else the margin before a window closes."""
    zones, index = key
    layers = policy.layers(index)
    for layer, _ in layers:
        for zone in zones:
            local_day = base.astimezone(ZoneInfo(zone)).date()
            holiday = holiday_on(layer.holidays, local_day)
            if holiday is not None:
                return f"{holiday[0]}: holiday {local_day.isoformat()} ({holiday[1]})"
    for layer, single in layers:
        if policy.first_allowed(zones, base, single, margin=False) != base:
            return layer.label
    for layer, single in layers:
        if policy.first_allowed(zones, base, single) != base:
            return f"{layer.label}, less the {_duration(policy.margin)} margin before it closes"
    return " + ".join(layer.label for layer, _ in layers)


def _label(name: str, citation: str) -> str:
    spec = PROFILES[name].spec if name in PROFILES else name
    return f"{name}: {spec} ({citation})" if citation else f"custom window {spec}"


def _duration(period: timedelta) -> str:
    minutes = int(period.total_seconds() // 60)
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"


def _no_zone(phone_e164: str) -> str:
    return (
        f"Cannot tell which time zone {phone_e164} is in, so the calling window cannot "
        "be checked. Add a timezone column (an IANA name such as Australia/Sydney) or "
        "set --contact-timezone."
    )


def _refusal(policy: WindowPolicy, key: ContactKey, base: datetime, first: datetime | None) -> str:
    zones = key[0]
    if policy.reject:
        opens = (
            f"the first allowed time is {_iso(first)} ({_local(first, zones)})"
            if first is not None
            else f"it does not open within {policy.max_defer_days} days"
        )
        return (
            f"{_iso(base)} is {_local(base, zones)}, outside the calling window {policy.name}; "
            f"{opens}. Move the row's time into the window, or run with --outside-window "
            "defer."
        )
    return (
        f"No time within {policy.max_defer_days} days of {_iso(base)} is inside the "
        f"calling window {policy.name} in {_zone_list(zones)}. Give the row a timezone "
        "column, or raise --max-defer-days."
    )


def holiday_on(codes: Iterable[str], day: date) -> tuple[str, str] | None:
    """The first of the calendars `codes` that has `day` as a holiday, and the holiday's name.

    A country's calendar also counts a day that every one of its subdivisions keeps: the
    `holidays` package's national AU calendar has Boxing Day on Saturday 26 December 2026
    but not the Monday after, which every state and territory observes in its place.
    """
    for code in codes:
        name = _calendar(code).get(day)
        if name is None and "-" not in code:
            name = _kept_everywhere(code, day)
        if name is not None:
            return code, str(name)
    return None


def _kept_everywhere(country: str, day: date) -> str | None:
    """The holiday's name if every subdivision of `country` keeps `day`; else None."""
    subdivisions = _calendar(country).subdivisions
    names = [_calendar(f"{country}-{sub}").get(day) for sub in subdivisions]
    if not names or any(name is None for name in names):
        return None
    return str(names[0])


def _off_holidays(
    codes: tuple[str, ...], wall_start: datetime, wall_end: datetime
) -> Iterator[Interval]:
    """Split a local wall-time range so that no piece touches a holiday date."""
    piece_start: datetime | None = None
    cursor = wall_start
    while cursor < wall_end:
        next_midnight = datetime.combine(cursor.date() + timedelta(days=1), time())
        if codes and holiday_on(codes, cursor.date()) is not None:
            if piece_start is not None:
                yield piece_start, cursor
                piece_start = None
        elif piece_start is None:
            piece_start = cursor
        cursor = min(wall_end, next_midnight)
    if piece_start is not None:
        yield piece_start, wall_end


# --- just before sending -------------------------------------------------------------------------


def recheck(
    policy: WindowPolicy,
    body: dict[str, Any],
    *,
    zone: str | None,
    now: datetime,
    state: str | None = None,
) -> dict[str, Any] | Placement:
    """Place a request that asked for no time again, at `now`, just before it leaves.

    Validation placed such a row at "now", but a long run may reach it after its window closed;
    sending it without a time would ring the callee at once, outside the legal hours. Returns
    `body` itself while the window is open, a copy with `scheduled_time` at the next opening once
    it has closed, or the refusing `Placement` (an error code and a sentence). A request with a
    time keeps it: validation placed that time for good. `zone` and `state` are the row's
    timezone and state cells.
    """
    placement = placement_now(policy, body, zone=zone, state=state, now=now)
    if placement is None:
        return body
    if placement.error_code is not None:
        return placement
    if placement.moved and placement.when is not None:
        return {**body, "scheduled_time": _iso(placement.when)}
    return body


def placement_now(
    policy: WindowPolicy,
    body: dict[str, Any],
    *,
    zone: str | None,
    now: datetime,
    state: str | None = None,
    zip_code: str | None = None,
) -> Placement | None:
    """`recheck`'s placement, with the rule that moved or refused the row; None for a request
    with a time, which keeps it."""
    if "scheduled_time" in body:
        return None
    phone = body["contact"]["phone_number"]
    return policy.place(
        None, phone_e164=phone, row_timezone=zone, row_state=state, row_zip=zip_code, now=now
    )


# --- time zones ---------------------------------------------------------------------------------


def wall_to_utc(wall: datetime, zone: ZoneInfo, *, is_start: bool) -> datetime:
    """The UTC instant of a local wall time, resolved so a window never grows at a DST change.

    In an overlap the wall time happens twice: a start takes the later instant and an end the
    earlier one. In a gap the wall time never happens; the clock jumps past it at the
    transition, which is then both the first instant at or after it and the end of the time
    before it.
    """
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first == second:
        return first
    earlier, later = min(first, second), max(first, second)
    if earlier.astimezone(zone).replace(tzinfo=None) == wall:  # the wall time exists twice
        return later if is_start else earlier
    return _transition(earlier, later, zone)


def _transition(before: datetime, after: datetime, zone: ZoneInfo) -> datetime:
    """The first whole second at which the offset in force at `before` stops applying."""
    offset = before.astimezone(zone).utcoffset()
    lo, hi = before, after  # offset(lo) is the old one; offset(hi) is not
    while hi - lo > timedelta(seconds=1):
        mid = lo + timedelta(seconds=(hi - lo).total_seconds() // 2)
        if mid.astimezone(zone).utcoffset() == offset:
            lo = mid
        else:
            hi = mid
    return hi


def phone_zone_names(phone_e164: str) -> tuple[str, ...]:
    """The zones phonenumbers gives for a number, without its 'Etc/Unknown' placeholder."""
    try:
        number = phonenumbers.parse(phone_e164, None)
    except phonenumbers.NumberParseException:
        return ()
    return _known_sorted(tuple(phone_timezone.time_zones_for_number(number)))


@lru_cache(maxsize=4096)
def _known_sorted(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted(n for n in set(names) if n != phone_timezone.UNKNOWN_TIMEZONE))


@lru_cache(maxsize=256)
def _calendar(code: str) -> holidays_lib.HolidayBase:
    # Imported here: its hundreds of calendars cost a tenth of a second at every start, and
    # most runs never look at one.
    import holidays as holidays_lib

    country, _, subdiv = code.strip().partition("-")
    try:
        return holidays_lib.country_holidays(country.upper(), subdiv=subdiv or None)
    except NotImplementedError as exc:
        raise UsageError(
            f"Unknown holiday calendar {code!r} ({exc}). Use a country code with an optional "
            "subdivision, such as AU, AU-NSW or US-CA."
        ) from exc


# --- interval arithmetic --------------------------------------------------------------------------


def _clip(intervals: Iterable[Interval], lo: datetime, hi: datetime) -> list[Interval]:
    return [(max(s, lo), min(e, hi)) for s, e in intervals if s < hi and e > lo]


def _merge(intervals: list[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _intersect(a: list[Interval], b: list[Interval]) -> list[Interval]:
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


# --- messages -----------------------------------------------------------------------------------


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _local(instant: datetime, zone_names: tuple[str, ...]) -> str:
    shown = [f"{instant.astimezone(ZoneInfo(n)):%a %H:%M} in {n}" for n in zone_names[:3]]
    more = len(zone_names) - len(shown)
    return ", ".join(shown) + (f" and {more} more zones" if more else "")


def _zone_list(zone_names: tuple[str, ...]) -> str:
    if len(zone_names) <= 3:
        return ", ".join(zone_names)
    return f"all {len(zone_names)} of its zones ({', '.join(zone_names[:3])}, ...)"
