"""Our share of each lump of a sliding window that another client spends too.

A sliding window shared by two jobs gives its quota back in lumps, a window after each burst,
and each job comes back to it when its own 429 pause ends: a whole-second `Retry-After`
rounds each job's return up by a different amount. Taking half of each count as it comes
(half, then half of the rest) hands the whole lump to whichever job came back first, and the
split repeats window after window. So each job takes half of the window from the moment it
first sees the lump, and leaves the rest to the other job for LUMP_HOLD, longer than a
whole-second rounding can keep it away. A job that comes back late finds its half still
there, and what the other job does not take is ours after that.
"""

from __future__ import annotations

import math

from ._quota import Quota

LUMP_HOLD = 0.5  # seconds the other job's half of a lump is left to it


class LumpShare:
    """When the current lump was first seen, and what we had sent by then."""

    __slots__ = ("_at", "_issued")

    def __init__(self) -> None:
        self._at: float | None = None
        self._issued = 0

    def left(self, now: float, quota: Quota) -> int:
        """`quota.left`, kept to our half of the lump while the other job may still come."""
        remaining = quota.remaining
        if remaining is None or remaining <= quota.margin:
            self._at = None  # spent: the next count that shows quota is the next lump
            return quota.left
        if self._at is None:
            self._at, self._issued = quota.observed_at, quota.issued
        if now >= self._at + LUMP_HOLD:
            return quota.left
        share = math.ceil(quota.known_limit / 2) - (quota.issued - self._issued)
        return min(quota.left, share)
