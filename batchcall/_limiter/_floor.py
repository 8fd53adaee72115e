"""The lowest counts of a fixed window, by when their answers came: what reordering cannot fake.

The server counts requests in flight in its own order, so a count from a later permit may
show more quota than one from an earlier permit; compared by permit number, one count that
overtook six others once read as a window's reset, and a newer count that showed more than a
stale one let 27 requests go into a window of 20. But a request answered before another left
surely reached the server first: without quota coming back between them, the later one's
count is lower. So each count is compared with the lowest one answered before its request
left, and within a window the lowest count seen bounds what is left.
"""

from __future__ import annotations

import bisect
import math


class Floor:
    """Counts of this window, each lower than every count answered before it."""

    __slots__ = ("_at", "_counts", "_opened")

    def __init__(self) -> None:
        self._at: list[float] = []  # when each answer came, ascending
        self._counts: list[int] = []  # its count, descending
        self._opened = -math.inf  # requests sent before this may belong to an earlier window

    @property
    def lowest(self) -> int | None:
        """The window's lowest count yet, if any."""
        return self._counts[-1] if self._counts else None

    def before(self, sent_at: float) -> int | None:
        """The lowest count of this window answered before `sent_at`, if any."""
        i = bisect.bisect_right(self._at, sent_at)
        return self._counts[i - 1] if i else None

    def note(self, sent_at: float, answered_at: float, remaining: int) -> None:
        """Keep the count of a request sent at `sent_at`, answered at `answered_at`."""
        if sent_at < self._opened:
            return  # it may have reached the server before the reset
        at, counts = self._at, self._counts
        i = bisect.bisect_right(at, answered_at)
        if i and counts[i - 1] <= remaining:
            return  # an earlier answer already counted as low
        j = i
        while j < len(at) and counts[j] >= remaining:
            j += 1
        at[i:j], counts[i:j] = [answered_at], [remaining]

    def open(self, answered_at: float, remaining: int, *, since: float | None = None) -> None:
        """A new window, its first count answered at `answered_at`.

        Counts of requests sent before `since` (by default that answer) are left out, as they
        may have reached the server before the reset.
        """
        self._opened = answered_at if since is None else since
        self._at, self._counts = [answered_at], [remaining]

    def drop(self) -> None:
        """Quota comes back outside resets (a bucket, a sliding window): no count is a floor."""
        self._opened = math.inf
        self._at, self._counts = [], []
