"""`batchcall windows show PROFILE --phone NUMBER [--state XX]`: when a contact may be called.

It prints the rules that apply to the contact, each with its source (the same labels a run
writes in results.csv's `window_rule`), and the allowed hours over the next 7 days, in the
contact's zone(s) and in UTC, margin included. Errors are one line on stderr with exit code 2.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import click

from ._config import Settings
from ._errors import UsageError
from ._ledger._suppress import check_region, phone_or_error
from ._ledger_cli import shell
from ._states import (
    STATE_CELL_HELP,
    UnknownState,
    area_code_state,
    is_us_number,
    parse_state,
    zip_state,
)
from ._us_states import RULES_VERSION, US_STATE_RULES
from ._windows import Interval, WindowPolicy, allowed_intervals, explain, state_label

DAYS = 7


@click.group()
def windows() -> None:
    """Calling windows: the hours and rules each contact is called under."""


@windows.command("show")
@click.argument("profile")
@click.option("--phone", required=True, help="The contact's number (E.164, or with --region).")
@click.option("--state", help="The contact's US state, as a state column would give it.")
@click.option("--zip", "zip_code", help="The contact's US ZIP code, as a zip column would.")
@click.option("--timezone", "zone", help="The contact's IANA zone, as a timezone column would.")
@click.option("--region", help="Default region for a national number, e.g. US.")
@click.option("--window-margin", metavar="DURATION", help="Default 30m, as in a run.")
@click.option("--holidays", help="Extra holiday calendars, e.g. US-FL.")
@click.option("--from", "start", metavar="DATE", help="First day shown (default: today, UTC).")
def show(
    profile: str,
    phone: str,
    state: str | None,
    zip_code: str | None,
    zone: str | None,
    region: str | None,
    window_margin: str | None,
    holidays: str | None,
    start: str | None,
) -> None:
    """The allowed hours of PROFILE for one contact over the next 7 days, and its rules."""
    with shell():
        number = phone_or_error(phone, check_region(region), "--phone")
        if state:
            try:
                parse_state(state)
            except UnknownState:
                raise UsageError(f"--state {state!r} is not {STATE_CELL_HELP}.") from None
        values = {"calling_window": profile, "holidays": holidays}
        if window_margin is not None:
            values["window_margin"] = window_margin
        policy = WindowPolicy.from_settings(Settings.model_validate(values))
        assert policy is not None  # a calling window is set
        first = _start_day(start)
        for line in describe(policy, number, (state, zip_code), zone, first):
            click.echo(line)


def _start_day(text: str | None) -> date:
    if text is None:
        return datetime.now(UTC).date()
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--from {text!r} is not a date; write it as 2030-06-30.") from None


def describe(
    policy: WindowPolicy,
    phone: str,
    address: tuple[str | None, str | None],
    zone: str | None,
    first: date,
) -> Iterator[str]:
    """The lines `windows show` prints; `address` is the contact's (state, ZIP)."""
    try:
        zones, index = policy.key_for(phone, zone, *address)
    except UnknownState as exc:
        raise UsageError(str(exc).replace("The ZIP cell", "--zip")) from None
    if not zones:
        raise UsageError(
            f"Cannot tell which time zone {phone} is in; pass --timezone (an IANA name)."
        )
    yield f"Calling window {policy.name} for {phone}"
    yield f"  time zone(s): {', '.join(zones)}"
    if policy.state_rules is not None:
        yield f"  state(s): {_states_line(policy, phone, address)}"
    yield ""
    yield f"Rules (US state table of {RULES_VERSION}):" if policy.state_rules else "Rules:"
    for layer, _ in policy.layers(index):
        yield f"  {layer.label}"
        code = layer.label.partition(":")[0]
        rule = (policy.state_rules or {}).get(code)
        if rule is not None:
            yield f"    source: {rule.source} (checked {rule.checked})"
            cap = rule.cap_label()
            if cap is not None:
                yield f"  {cap}: counted in the contact ledger over every run and script"
        for calendar in layer.holidays:
            yield f"    no calls on the holidays of calendar {calendar}"
    if policy.margin:
        minutes = int(policy.margin.total_seconds() // 60)
        yield f"  margin: no call in the last {minutes} minutes before a window closes"
    yield ""
    yield f"Allowed hours, {DAYS} days from {first.isoformat()} in {zones[0]}:"
    yield from _days(policy, (zones, index), first)


def _days(policy: WindowPolicy, key: tuple[tuple[str, ...], int], first: date) -> Iterator[str]:
    """One line per allowed stretch, local days of the contact's first zone; a closed day
    says which rule closes it."""
    zones = key[0]
    home = ZoneInfo(zones[0])
    for offset in range(DAYS):
        day = first + timedelta(days=offset)
        lo = datetime.combine(day, time(), home).astimezone(UTC)
        hi = datetime.combine(day + timedelta(days=1), time(), home).astimezone(UTC)
        spans = allowed_intervals(policy, key, lo, hi)
        for span in spans:
            yield f"  {_span(span, zones)}"
        if not spans:
            noon = datetime.combine(day, time(12), home).astimezone(UTC)
            yield f"  {day:%a %Y-%m-%d} no calls: {explain(policy, key, noon)}"


def _states_line(policy: WindowPolicy, phone: str, address: tuple[str | None, str | None]) -> str:
    state, zip_code = address
    states = policy.states_for(phone, state, zip_code)
    by_area = area_code_state(phone)
    sources = [f"{by_area} by area code" if by_area else "none by area code"]
    if state:
        sources.append(f"{parse_state(state)} by --state")
    if zip_code:
        by_zip = zip_state(zip_code, us_number=is_us_number(phone))
        sources.append(f"{by_zip} by --zip {zip_code.strip()}" if by_zip else "none by --zip")
    if not states:
        return "none (" + "; ".join(sources) + "): federal rules only"
    modelled = [s for s in states if s in US_STATE_RULES]
    note = "" if modelled == list(states) else "; the others have no rule beyond the federal one"
    if by_area is None and not state and not zip_code:
        sources = ["not known: every state in the table applies, the strictest rule"]
    return f"{', '.join(state_label(s) for s in states)} ({'; '.join(sources)}{note})"


def _span(span: Interval, zones: tuple[str, ...]) -> str:
    start, end = span
    local = ", ".join(
        f"{start.astimezone(ZoneInfo(z)):%a %Y-%m-%d %H:%M}-{end.astimezone(ZoneInfo(z)):%H:%M} {z}"
        for z in zones[:3]
    )
    return f"{local}  =  {start:%Y-%m-%dT%H:%M}Z to {end:%Y-%m-%dT%H:%M}Z"
