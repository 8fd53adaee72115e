"""Mark repeat calls as duplicates before anything is sent.

Two rows are the same call when they have the same E.164 phone, script_id and scheduled time (as
sent, so `2030-01-02 09:00+10:00` and `2030-01-01T23:00:00Z` are one call). The first one is sent;
each later one becomes `duplicate`, naming the first row, unless `--allow-duplicates`.

Memory: the set of keys seen is the only state. Each key is kept as a 64-bit blake2b digest (an
int) instead of three strings, so a million distinct rows cost about 100 MB less. Two different
calls would have to collide on 64 bits for one to be wrongly skipped: about 1 in 30 million for a
million-row file, and the skip would be reported, never silent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from hashlib import blake2b

from ._models import Checked


def plan(checked: Iterable[Checked], *, allow_duplicates: bool) -> Iterator[Checked]:
    """Yield every row in order; later repeats of a call come back as `duplicate`."""
    if allow_duplicates:
        yield from checked
        return
    first_row: dict[int, int] = {}
    for item in checked:
        key = call_key(item)
        if key is None:
            yield item
            continue
        earlier = first_row.setdefault(key, item.row)
        if earlier == item.row:
            yield item
            continue
        assert item.request is not None  # call_key gives none without one
        yield dataclasses.replace(
            item,
            outcome="duplicate",
            error_code="duplicate",
            error=duplicate_error(earlier, item.phone_e164, item.request.scheduled_time),
        )


def call_key(item: Checked) -> int | None:
    """What makes a row the same call as another (see the module docstring); None for a row
    that will not be sent, which repeats nothing."""
    request = item.request
    if item.outcome != "pending" or request is None:
        return None
    return _key(item.phone_e164 or "", request.script_id, request.scheduled_time or "")


def duplicate_error(earlier: int, phone_e164: str | None, scheduled_time: str | None) -> str:
    when = f"at {scheduled_time}" if scheduled_time else "for now"
    return (
        f"Same phone, script and time as row {earlier} ({phone_e164}, {when}); "
        "not sent. Pass --allow-duplicates to call it again anyway."
    )


def _key(phone: str, script_id: str, scheduled_time: str) -> int:
    text = f"{phone}\x00{script_id}\x00{scheduled_time}".encode()
    return int.from_bytes(blake2b(text, digest_size=8).digest(), "little")
