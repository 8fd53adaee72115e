"""Time-zone names, read one way everywhere: `--timezone`, `--contact-timezone` and the
timezone column.

A name is matched against the IANA list without regard to case, and a space stands for `_`, so
`australia/perth` and `America/New York` work, and the zone returned is the canonical one
(`Australia/Perth`). Only names on that list are accepted: zoneinfo would also load
`localtime` or `posixrules`, whose meaning depends on the machine the run happens to be on.
"""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

# How a row's zone is named in its error, beside "--timezone" and "--contact-timezone".
ZONE_CELL = "The timezone cell"
NOT_A_ZONE = "is not an IANA time zone name such as Australia/Sydney (case does not matter)."


class UnknownZone(ValueError):
    """A name that is not an IANA time zone; the message names where it was written."""


def parse_zone(name: str, *, source: str) -> ZoneInfo:
    """The IANA zone `name` stands for. `source` says where it was written, for the message
    ("--timezone", "The timezone cell"); raises UnknownZone."""
    canonical = _canonical(name)
    if canonical is None:
        raise UnknownZone(f"{source} {name!r} {NOT_A_ZONE}")
    return ZoneInfo(canonical)


@lru_cache(maxsize=1024)
def _canonical(name: str) -> str | None:
    return _by_lower_name().get(name.strip().replace(" ", "_").lower())


@lru_cache(maxsize=1)
def _by_lower_name() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones()}
