"""Which US state a contact is in: from the number's area code, and from its address, a `state`
column or a `zip` column.

The area-code table is libphonenumber's geocoding data (Google's, shipped in the
`phonenumbers` package already used to parse every number): for a US number it names the
state ("Florida") or a place in it ("Miami, FL"). A `state` cell, a USPS code or a state's
name, adds its state, and so does a ZIP code, read with the `zipcodes` package's copy of the
USPS list; when the area code and the address disagree, every state named applies (their
rules are intersected). A US
number whose state cannot be told (a toll-free or an unassigned area code, with no cell)
gets every state the rules table holds: the strictest rule, never the loosest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

import phonenumbers

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
# A US ZIP code: five digits, or ZIP+4; four digits are a ZIP whose leading 0 a spreadsheet
# dropped (Boston's 02108 read as the number 2108).
_ZIP = re.compile(r"(\d{4,5})(?:-\d{4})?")


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
def zip_state(text: str, *, us_number: bool) -> str | None:
    """The state of a ZIP cell. A cell that is not shaped like a US ZIP is no US address: None,
    unless the number is a US one, when it is an error; so is a ZIP the USPS list lacks.
    Raises UnknownState."""
    found = _ZIP.fullmatch(text.strip())
    if found is None:
        if us_number:
            raise UnknownState(f"The ZIP cell {text!r} is not a US ZIP code such as 33101.")
        return None
    import zipcodes  # deferred: it reads its list on first use, and only ZIP columns need it

    code = found.group(1).zfill(5)
    states = {z["state"] for z in zipcodes.matching(code)}
    if len(states) != 1:
        raise UnknownState(f"The ZIP cell {text!r} is not on the USPS list of US ZIP codes.")
    return states.pop()


# libphonenumber's region of a +1 number depends on its area code only, and its US geocoding
# data names places by at most 1 + area code + exchange: so both answers are kept per "+1NPANXX"
# (parsing and geocoding each row cost about twice the rest of its calling-window check).
_PREFIX = len("+1NPANXX")
_PREFIX_CAP = 1 << 17
_by_prefix: dict[str, tuple[bool, str | None]] = {}


def _lookup(phone_e164: str) -> tuple[bool, str | None]:
    """(is it a US number, its state by area code)."""
    if not phone_e164.startswith("+1") or len(phone_e164) < _PREFIX:
        return False, None  # only NANP numbers are American
    key = phone_e164[:_PREFIX]
    found = _by_prefix.get(key)
    if found is None:
        found = _geocode(phone_e164)
        if len(_by_prefix) < _PREFIX_CAP:
            _by_prefix[key] = found
    return found


def _geocode(phone_e164: str) -> tuple[bool, str | None]:
    try:
        number = phonenumbers.parse(phone_e164, None)
    except phonenumbers.NumberParseException:
        return False, None
    if phonenumbers.region_code_for_number(number) != "US":
        return False, None
    # Imported here: the geocoder's data for every country costs 0.4 s at every start, and
    # only a run under US state rules looks a number up.
    from phonenumbers import geocoder

    place = geocoder.description_for_number(number, "en")
    head, _, tail = place.rpartition(", ")
    if head and tail in STATE_NAMES:
        return True, tail
    return True, _BY_NAME.get(place.lower())


def area_code_state(phone_e164: str) -> str | None:
    """The state of a US number's area code; None for a number outside the US, or one whose
    area code names no state."""
    return _lookup(phone_e164)[1]


def is_us_number(phone_e164: str) -> bool:
    return _lookup(phone_e164)[0]


def contact_states(
    phone_e164: str, state_cell: str | None, known: Iterable[str], zip_cell: str | None = None
) -> tuple[str, ...]:
    """The states whose rules apply to a contact, sorted: the area code's, the state cell's
    and the ZIP cell's. A US number with none of them gets every state in `known` (the rules
    table's). Raises UnknownState for a cell that names no state."""
    found: set[str] = set()
    if state_cell is not None and state_cell.strip():
        found.add(parse_state(state_cell))
    if zip_cell is not None and zip_cell.strip():
        by_zip = zip_state(zip_cell, us_number=is_us_number(phone_e164))
        if by_zip is not None:
            found.add(by_zip)
    by_area = area_code_state(phone_e164)
    if by_area is not None:
        found.add(by_area)
    if not found and is_us_number(phone_e164):
        found.update(known)
    return tuple(sorted(found))
