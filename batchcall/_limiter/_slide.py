"""How long a sliding window is that another client shares, from our own 429s.

Another client's requests break the echo (`Echo`), so the window is not learned from the
quota handed back. A 429 still bounds it. Its Retry-After, in whole seconds rounded up, says
that nothing comes back for Retry-After - 1 seconds. A request of ours that the window still
holds leaves it one window after it was counted, and hands its unit back then. So any window
length under which one of ours would have left sooner is ruled out. The guess is the
shortest round length left.

With the guess, a pause ends when our oldest request in the window leaves it. That can be up
to a second before the Retry-After ends, and in each window of a shared 2 s limit that second
was what the jobs lost. A guess that is too short costs early looks that draw 429s: after one,
the next pause ends later in the lump, and a second before any is accepted rules the guess
out. A guess that is too long ends no pause early.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from ._resets import ROUND_PERIODS

MISSES = 2  # refused looks, each after a shortened pause, with none accepted, that rule a guess out


class SlideGuess:
    """The shortest round window length that no 429 of ours has ruled out."""

    __slots__ = ("_early", "_index", "_missed", "_skip", "confirmed")

    def __init__(self) -> None:
        self._index = 0
        self._missed = 0  # refused looks, each after a shortened pause, since one was accepted
        self._skip = False  # the last look was refused: end the next pause later in the lump
        self._early: float | None = None  # when a pause the guess shortened ended
        self.confirmed = False  # a look at the end of a shortened pause was accepted

    @property
    def window(self) -> float | None:
        return ROUND_PERIODS[self._index] if self._index < len(ROUND_PERIODS) else None

    def refused(
        self, sent_at: float, now: float, retry_after: float, counted: Sequence[float], trip: float
    ) -> None:
        """A 429 to the request sent at `sent_at`, answered at `now`; `counted` are the send
        times of our requests the server counted, and `trip` the longest recent round trip.

        A second refused look at the end of a pause the guess shortened, with none accepted
        between, rules it out. And a request sent after `now - window` was in the window
        when the 429 was counted, and one sent `trip` before `sent_at` was counted before it:
        if such a request would have left before the Retry-After allows, the window is longer.
        """
        if self._early is not None and sent_at >= self._early:
            # The look at the end of a pause the guess shortened found the window full. The
            # other client may have taken the unit that came back, so one miss only ends the
            # next pause later in the lump (`back`); a second rules the guess out.
            self._missed, self._skip = self._missed + 1, True
            if self._missed >= MISSES:
                self._index, self._missed = self._index + 1, 0
                self.confirmed = False
        self._early = None
        while (window := self.window) is not None:
            first = bisect.bisect_right(counted, now - window)
            if first == len(counted):
                return
            leaves = counted[first] + trip + window
            if not (counted[first] + trip < sent_at and leaves < sent_at + retry_after - 1):
                return
            self._index += 1
            self.confirmed = False

    def back(
        self, now: float, retry_after: float, counted: Sequence[float], trip: float
    ) -> float | None:
        """When a unit is surely back after a 429 answered at `now`, if that is before
        `now + retry_after`: our oldest request in the window leaves it then. None if the guess
        says nothing sooner.

        After a refused look, the other client took the units that came back first, while it
        takes its half of the lump: the pause then ends as the last of ours that leaves
        before the Retry-After does, when the lump is all back.
        """
        window, skip = self.window, self._skip
        self._early, self._skip = None, False
        if window is None:
            return None
        first = bisect.bisect_right(counted, now - window)
        before = bisect.bisect_left(counted, now + retry_after - window - trip)
        if before <= first:
            return None
        back = counted[before - 1 if skip else first] + window + trip
        self._early = back
        return back

    def accepted(self, sent_at: float) -> None:
        """A request sent at `sent_at` was accepted: if it ended a shortened pause, the guess
        held."""
        if self._early is not None and sent_at >= self._early:
            self.confirmed = True
            self._early, self._missed = None, 0
