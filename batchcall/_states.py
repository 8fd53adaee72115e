"""Which US state a contact is in: from the number's area code, and from a `state` column.

The area-code table is libphonenumber's geocoding data (Google's, shipped in the
`phonenumbers` package already used to parse every number): for a US number it names the
state ("Florida") or a place in it ("Miami, FL"). A `state` cell, a USPS code or a state's
name, adds its state; when the two disagree both apply (their rules are intersected). A US
number whose state cannot be told (a toll-free or an unassigned area code, with no cell)
gets every state the rules table holds: the strictest rule, never the loosest.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import phonenumbers
from phonenumbers import geocoder

STATE_NAMES: dict[str, str] = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California",
    "CO": "Colorado", "CT": "Connecticut", "DE": "Delaware", "DC": "District of Columbia",
    "FL": "Florida", "GA": "Georgia", "HI": "Hawaii", "ID": "Idaho", "IL": "Illinois",
    "IN": "Indiana", "IA": "Iowa", "KS": "Kansas", "KY": "Kentucky", "LA": "Louisiana",
    "ME": "Maine", "MD": "Maryland", "MA": "Massachusetts", "MI": "Michigan",
    "MN": "Minnesota", "MS": "Mississippi", "MO": "Missouri", "MT": "Montana",
    "NE": "Nebraska", "NV": "Nevada", "NH": "New Hampshire", "NJ": "New Jersey",
    "NM": "New Mexico", "NY": "New York", "NC": "North Carolina", "ND": "North Dakota",
    "OH": "Ohio", "OK": "Oklahoma", "OR": "Oregon", "PA": "Pennsylvania",
    "RI": "Rhode Island", "SC": "South Carolina", "SD": "South Dakota", "TN": "Tennessee",
    "TX": "Texas", "UT": "Utah", "VT": "Vermont", "VA": "Virginia", "WA": "Washington",
    "WV": "West Virginia", "WI": "Wisconsin", "WY": "Wyoming",
}  # fmt: skip
_BY_NAME = {name.lower(): code for code, name in STATE_NAMES.items()}
STATE_CELL_HELP = "a US state as its two-letter code (FL) or its name (Florida)"


class UnknownState(ValueError):
    """A state cell that names no US state."""


def parse_state(text: str) -> str:
    """A state cell as a USPS code; raises UnknownState."""
    cleaned = " ".join(text.replace(".", " ").split())
    code = cleaned.upper()
    if code in STATE_NAMES:
        return code
    found = _BY_NAME.get(cleaned.lower())
    if found is None:
        raise UnknownState(f"The state cell {text!r} is not {STATE_CELL_HELP}.")
    return found


@lru_cache(maxsize=65536)
def area_code_state(phone_e164: str) -> str | None:
    """The state of a US number's area code; None for a number outside the US, or one whose
    area code names no state."""
    try:
        number = phonenumbers.parse(phone_e164, None)
    except phonenumbers.NumberParseException:
        return None
    if phonenumbers.region_code_for_number(number) != "US":
        return None
    place = geocoder.description_for_number(number, "en")
    head, _, tail = place.rpartition(", ")
    if head and tail in STATE_NAMES:
        return tail
    return _BY_NAME.get(place.lower())


def is_us_number(phone_e164: str) -> bool:
    try:
        number = phonenumbers.parse(phone_e164, None)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.region_code_for_number(number) == "US"


def contact_states(
    phone_e164: str, state_cell: str | None, known: Iterable[str]
) -> tuple[str, ...]:
    """The states whose rules apply to a contact, sorted: the area code's and the cell's.
    A US number with neither gets every state in `known` (the rules table's). Raises
    UnknownState for a cell that names no state."""
    found: set[str] = set()
    if state_cell is not None and state_cell.strip():
        found.add(parse_state(state_cell))
    by_area = area_code_state(phone_e164)
    if by_area is not None:
        found.add(by_area)
    if not found and is_us_number(phone_e164):
        found.update(known)
    return tuple(sorted(found))
