"""The echo test: is the quota handed back our own requests expiring, one window later?

In a sliding log, quota comes back exactly when a request we sent leaves the window, so the
k-th unit handed back is the k-th request the server counted. Every observation therefore
bounds the window: the k-th counted request has expired, the next has not. While the bounds
stay consistent the window is known, and the gate can foresee every refill from its own send
times instead of extrapolating a refill rate that arrives in bursts (which sent requests too
soon, each costing a whole-second 429 pause). A token bucket refills regardless of when we
sent, so its bounds soon cross and the test fails for good; so does a second client whose
spending is not steady.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Sequence

from ._resets import ROUND_PERIODS

ECHO_SLACK = 0.02  # seconds of send-to-count jitter allowed when matching refills to our sends
ECHO_MIN_WINDOW = 0.2  # seconds; a shorter "window" is a bucket's refill, not an echo
ECHO_MIN_SEEN = 10  # expired requests before an echo is trusted: a bucket refills a few early too
ECHO_GUARD = 0.01  # seconds added to the learned window before counting a request as expired
TRIPS_KEPT = 128  # recent round trips the spread of the way out is judged from


class Echo:
    """Bounds on a sliding window's length, from which of our counted requests came back.

    `counted` is always the quota's sorted send times of the requests the server counted.
    """

    __slots__ = ("_trips", "broken", "expired", "guard", "high", "low", "ruled_out", "slack")

    def __init__(self) -> None:
        self.expired = 0
        self.low = 0.0
        self.high = math.inf
        self.broken = False
        self.ruled_out: set[float] = set()  # round lengths a 429 contradicted
        self._trips: deque[float] = deque(maxlen=TRIPS_KEPT)  # recent round trips, seconds
        self.slack = ECHO_SLACK
        self.guard = ECHO_GUARD

    def _took(self, trip: float) -> None:
        """Note a round trip, and from the recent ones the slack and the guard.

        A request is counted somewhere between its send and its answer, so the spread of the
        round trips bounds how far the server's count times stray from our send times. The
        bounds allow the widest spread seen, as a bound too tight breaks the echo for good;
        the guard, added to the window before a request counts as expired, allows most of it,
        as a replay whose way out is quicker than the original's arrives before its slot is
        free.
        """
        self._trips.append(trip)
        trips = sorted(self._trips)
        self.slack = max(ECHO_SLACK, trips[-1] - trips[0])
        self.guard = max(ECHO_GUARD, trips[int(0.9 * (len(trips) - 1))] - trips[0])

    def observe(
        self,
        sent_at: float,
        handed_back: int,
        counted: Sequence[float],
        *,
        noise: int = 0,
        answered_at: float | None = None,
        unanswered: int = 0,
    ) -> None:
        """A count from the request sent at `sent_at` showed `handed_back` more expired.

        The server counts requests in flight in its own order, so the count of expired ones
        is off by up to `noise` either way: the bounds take only the requests surely expired
        and surely not, and a total that dips below zero by that much is noise, not a break.
        `counted` holds only answered requests; the `unanswered` ones may have been counted
        in any order around this one, so they bound the noise too, before the reordering seen
        has caught up with a burst's.
        """
        if answered_at is not None:
            self._took(answered_at - sent_at)
        if self.broken:
            return
        # The total telescopes: each count's noise is undone by the next, so every count is
        # summed, or the total would keep the noise of the ones left out.
        self.expired += handed_back
        # None of our requests can have left a window shorter than ECHO_MIN_WINDOW: what a count
        # says before that is the noise of counts read out of order (a burst's first answers),
        # not an expiry, and bounds nothing.
        if not counted or sent_at - counted[0] < ECHO_MIN_WINDOW:
            return
        k, slack, noise = self.expired, self.slack, max(noise, unanswered)
        if k < -noise or k > len(counted) + noise:
            self.broken = True
            return
        if 1 <= k - noise <= len(counted):
            self.high = min(self.high, sent_at - counted[k - noise - 1] + slack)
        if 0 <= k + noise < len(counted):
            self.low = max(self.low, sent_at - counted[max(k + noise, 0)] - slack)
        if self.low > self.high:
            self.broken = True

    @property
    def longest_trip(self) -> float:
        """The longest recent round trip: a request was counted within it of its send."""
        return max(self._trips, default=0.0)

    @property
    def window(self) -> float | None:
        """The window, erring long, once the echo is established; None otherwise."""
        if self.broken or self.expired < ECHO_MIN_SEEN or self.high < ECHO_MIN_WINDOW:
            return None
        if math.isinf(self.high):
            return None  # nothing has bounded it yet: the counts are within their noise
        period = self._period()
        return (self.high if period is None else period) + self.guard

    def _period(self) -> float | None:
        # The bound from above is only as sharp as the moments we happened to look; a round
        # length within the bounds is likelier the truth, until a 429 rules it out.
        for period in ROUND_PERIODS:
            if self.low <= period <= self.high and period not in self.ruled_out:
                return period
        return None

    def refused(self) -> None:
        """A 429 despite the echo: the round length in use, if any, is wrong."""
        period = self._period() if self.window is not None else None
        if period is not None:
            self.ruled_out.add(period)

    def _maybe_seen(self, since: float, counted: Sequence[float]) -> int:
        """How many of our requests the count sent at `since` may have seen expire."""
        return bisect.bisect_right(counted, since - max(0.0, self.low - self.guard))

    def returning(self, since: float, until: float, counted: Sequence[float]) -> int:
        """Our requests that leave the window between two instants, by their send times."""
        window = self.window
        assert window is not None
        lo = self._maybe_seen(since, counted)
        hi = bisect.bisect_right(counted, until - window)
        return max(0, hi - lo)

    def next_return(self, now: float, counted: Sequence[float]) -> float | None:
        """When the next of our counted requests leaves the window, after `now`."""
        window = self.window
        assert window is not None
        index = bisect.bisect_right(counted, now - window)
        return counted[index] + window if index < len(counted) else None

    def doubted(self, since: float, counted: Sequence[float]) -> tuple[int, float]:
        """Our requests that the count sent at `since` may or may not have seen expire, and
        when the last of them has surely expired.

        `returning` leaves them out, as their unit may already be in that count. With nothing
        in flight no later count settles it, and were they the last units the run needs, they
        would stay unseen for a whole window.
        """
        window = self.window
        assert window is not None
        lo = bisect.bisect_right(counted, since - window)
        hi = self._maybe_seen(since, counted)
        return max(0, hi - lo), (counted[hi - 1] + window if hi > lo else -math.inf)

    def unseen(self, since: float, counted: Sequence[float]) -> tuple[int, float]:
        """Of the units `doubted` counts, those that the total handed back says the count sent
        at `since` had not seen expire, and when the last of them has surely expired.

        Quota comes back in the order the requests were counted, so the `expired` units
        handed back so far are our first `expired` counted requests. (A count the server
        took before some of our earlier requests shows more than had expired, so this errs
        towards fewer.)
        """
        window = self.window
        assert window is not None
        start = max(bisect.bisect_right(counted, since - window), self.expired)
        hi = self._maybe_seen(since, counted)
        return max(0, hi - start), (counted[hi - 1] + window if hi > start else -math.inf)
