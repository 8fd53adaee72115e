"""Another client's use of the key, as our own counts bound it from below, exactly.

A count of `L - c` says the server had counted `c` requests of the window by then. Ours among
them were accepted and answered since the window began, or are still in flight; the rest are
another client's. Quota that comes back (a reset not yet seen, a bucket's refill, a sliding
window's expiry) only raises a count, and no order in which the server counted the requests
in flight lowers it below what was counted, so the bound never shows a client that is not
there. It is what the reordering noise hides from a test on the differences between counts:
the first count of a job that started second shows the other's whole burst at once.

The shares follow from it: with another client on a fixed window, each window's burst keeps
to an even share until part of the window has passed, and only then is the rest taken.
"""

from __future__ import annotations

import bisect
import math

SHARED_AT = 2  # requests another client must surely have spent before the key counts as shared
KEEP = 4096  # answer times kept at most; the older half goes once a window holds this many
# Windows a share may go on believing in the other client's use without seeing it again: its
# requests come after our share, so only a request of ours sent later sees them.
BELIEVE = 2


class Others:
    """How much of each window another client spent, as far as our counts show."""

    __slots__ = ("_answers", "_unseen", "before", "seen")

    def __init__(self) -> None:
        self._answers: list[float] = []  # when our accepted answers came, ascending
        self.seen = 0  # the most that this window's counts surely show another client spent
        self.before = 0  # what the last windows showed it spend, while still believed
        self._unseen = 0  # windows since another client was last seen

    def accepted(self, at: float) -> None:
        """One of our requests was accepted, its answer at `at`."""
        self._answers.append(at)
        if len(self._answers) > KEEP:
            del self._answers[: KEEP // 2]

    def bound(self, limit: int, remaining: int, *, since: float, in_flight: int) -> int:
        """Another client's requests a count of `remaining` surely shows.

        `since` is the earliest one of our answers may have come and still been counted in
        the window this count is of (minus infinity: every answer since the run began).
        """
        ours = len(self._answers) - bisect.bisect_left(self._answers, since) + in_flight
        seen = limit - remaining - ours
        self.seen = max(self.seen, seen)
        return seen

    def reset(self) -> None:
        """A new fixed window began: what the last one showed is what to expect of the next."""
        if self.seen >= SHARED_AT:
            self.before, self._unseen = self.seen, 0
        else:
            self._unseen += 1
            if self._unseen > BELIEVE:
                self.before = 0
        self.seen = 0

    @property
    def expected(self) -> int:
        """Requests another client will likely spend in this window, beyond those seen."""
        return max(0, self.before - self.seen)

    @staticmethod
    def share(limit: int) -> int:
        """Our share of a window's burst: half of it.

        Not what the other client left of the last window: a client that comes back later
        than us from each reset finds only what we left, and would never win back its half.
        What it does not spend is ours after all, once FILL of the window has passed.
        """
        return math.ceil(limit / 2)
