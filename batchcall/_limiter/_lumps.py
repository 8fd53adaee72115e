"""Our share of each lump of a sliding window that another client spends too.

A sliding window shared by two jobs gives its quota back in lumps, a window after each burst,
and each job comes back to it when its own 429 pause ends: a whole-second `Retry-After`
rounds each job's return up by a different amount. Taking half of each count as it comes
(half, then half of the rest) hands the whole lump to whichever job came back first, and the
split repeats window after window. So each job takes half of the window from the moment it
first sees the lump, and leaves the rest to the other job for LUMP_HOLD, longer than a
whole-second rounding can keep it away. A job that comes back late finds its half still
there, and what the other job does not take is ours after that. Only while the other took
about its half of the last lump: another client that spends less (a dashboard, a smaller
job) is not held half a lump: each count is halved instead (`Rolling.available`).
"""

from __future__ import annotations

import math

from ._quota import Quota

LUMP_HOLD = 0.5  # seconds the other job's half of a lump is left to it
EVEN = 0.8  # of half the limit: what the other must have taken of the last lump to be left half


class LumpShare:
    """When the current lump was first seen, and what we had sent by then."""

    __slots__ = ("_at", "_issued", "expect")

    def __init__(self) -> None:
        self._at: float | None = None
        self._issued = 0
        self.expect = True  # the other job is expected to take its half

    def _spent(self, quota: Quota) -> None:
        # A lump is a window's worth coming back, so what we did not take of it was the
        # other's. (A job that came back late saw only what the other left: what the lump
        # showed it says nothing of the other's half.)
        others = quota.known_limit - (quota.issued - self._issued)
        self.expect = others >= EVEN * quota.known_limit / 2
        self._at = None

    def left(self, now: float, quota: Quota) -> int | None:
        """`quota.left`, kept to our half of the lump while the other job may still come; None
        while the other job is not expected to take half (each count is then halved)."""
        remaining = quota.remaining
        empty = remaining is None or remaining <= quota.margin
        # A lump comes back as fast as its burst went, and a job that takes each unit as it
        # comes sees the count empty many times on the way: it is one lump until the hold is
        # over. (Begun afresh at each empty count, the share was taken again and again: 77 of
        # a lump of 100.)
        if self._at is not None and empty and now >= self._at + LUMP_HOLD:
            self._spent(quota)  # the next count that shows quota is the next lump
        if self._at is None:
            if empty:
                return quota.left
            self._at, self._issued = quota.observed_at, quota.issued
        if not self.expect:
            return None
        if now >= self._at + LUMP_HOLD:
            return quota.left
        share = math.ceil(quota.known_limit / 2) - (quota.issued - self._issued)
        return min(quota.left, share)
