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
from collections.abc import Sequence

from ._resets import ROUND_PERIODS

ECHO_SLACK = 0.02  # seconds of send-to-count jitter allowed when matching refills to our sends
ECHO_MIN_WINDOW = 0.2  # seconds; a shorter "window" is a bucket's refill, not an echo
ECHO_MIN_SEEN = 10  # expired requests before an echo is trusted: a bucket refills a few early too
ECHO_GUARD = 0.01  # seconds added to the learned window before counting a request as expired


class Echo:
    """Bounds on a sliding window's length, from which of our counted requests came back.

    `counted` is always the quota's sorted send times of the requests the server counted.
    """

    __slots__ = ("broken", "expired", "high", "low", "ruled_out")

    def __init__(self) -> None:
        self.expired = 0
        self.low = 0.0
        self.high = math.inf
        self.broken = False
        self.ruled_out: set[float] = set()  # round lengths a 429 contradicted

    def observe(
        self, sent_at: float, handed_back: int, counted: Sequence[float], *, noise: int = 0
    ) -> None:
        """A count from the request sent at `sent_at` showed `handed_back` more expired.

        The server counts requests in flight in its own order, so the count of expired ones
        is off by up to `noise` either way: the bounds take only the requests surely expired
        and surely not, and a total that dips below zero by that much is noise, not a break.
        """
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
        k = self.expired
        if k < -noise or k > len(counted) + noise:
            self.broken = True
            return
        if k - noise >= 1:
            self.high = min(
                self.high, sent_at - counted[min(k - noise, len(counted)) - 1] + ECHO_SLACK
            )
        if 0 <= k + noise < len(counted):
            self.low = max(self.low, sent_at - counted[max(k + noise, 0)] - ECHO_SLACK)
        if self.low > self.high:
            self.broken = True

    @property
    def window(self) -> float | None:
        """The window, erring long, once the echo is established; None otherwise."""
        if self.broken or self.expired < ECHO_MIN_SEEN or self.high < ECHO_MIN_WINDOW:
            return None
        if math.isinf(self.high):
            return None  # nothing has bounded it yet: the counts are within their noise
        # The bound from above is only as sharp as the moments we happened to look; a round
        # length within the bounds is likelier the truth, until a 429 rules it out.
        for period in ROUND_PERIODS:
            if self.low <= period <= self.high and period not in self.ruled_out:
                return period + ECHO_GUARD
        return self.high + ECHO_GUARD

    def refused(self) -> None:
        """A 429 despite the echo: the round length in use, if any, is wrong."""
        window = self.window
        if window is not None and window - ECHO_GUARD in ROUND_PERIODS:
            self.ruled_out.add(window - ECHO_GUARD)

    def returning(self, since: float, until: float, counted: Sequence[float]) -> int:
        """Our requests that leave the window between two instants, by their send times."""
        window = self.window
        assert window is not None
        lo = bisect.bisect_right(counted, since - max(0.0, self.low - ECHO_GUARD))
        hi = bisect.bisect_right(counted, until - window)
        return max(0, hi - lo)

    def next_return(self, now: float, counted: Sequence[float]) -> float | None:
        """When the next of our counted requests leaves the window, after `now`."""
        window = self.window
        assert window is not None
        index = bisect.bisect_right(counted, now - window)
        return counted[index] + window if index < len(counted) else None
