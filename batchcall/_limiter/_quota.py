"""Local quota accounting: the newest count the server gave, and what we sent since.

A response's `Remaining` was true when the server counted that request. Every permit issued
after it is discounted (it is in flight, or was counted after), and a response older than the
newest one already seen is stale and ignored, so replies that arrive out of order never inflate
the estimate. The learner writes a `Quota`; the rate models only read it.
"""

from __future__ import annotations

import bisect
import math
from collections import deque

from ._floor import Floor
from ._others import Others


class Quota:
    """One key's quota as our own books show it, for the rate models to read."""

    __slots__ = (
        "accepted",
        "alone",
        "backlog",
        "counted",
        "floor",
        "issued",
        "last_send",
        "late",
        "limit",
        "looks",
        "margin",
        "newest_seq",
        "observed_at",
        "observed_sent",
        "others",
        "outstanding",
        "owed",
        "remaining",
        "reorder",
        "sends",
        "shared",
        "started",
        "uncounted",
        "window_quota",
        "window_seq",
    )

    def __init__(self) -> None:
        self.limit: int | None = None  # X-RateLimit-Limit, once one came
        self.remaining: int | None = None  # as of the newest observation; None: never seen
        self.newest_seq = -1  # the permit whose answer gave `remaining`
        self.observed_at = 0.0  # when that answer came
        self.observed_sent = 0.0  # when that permit was sent
        self.window_quota: int | None = None  # what a window holds, seen just after one began
        self.window_seq = -1  # the permit whose count showed the latest reset
        self.floor = Floor()  # this window's lowest counts, by when their answers came
        self.late = 0  # how much lower than the newest a stale count of this window was
        self.margin = 1  # requests of quota held back against other clients' spending
        self.issued = 0  # permits issued: the run's one count of requests
        self.outstanding: set[int] = set()  # permits not yet answered
        self.alone = -1  # the latest permit sent with no other in flight
        self.uncounted: set[int] = set()  # recent permits the server did not count (429s)
        self.started: float | None = None  # when the first permit left
        self.last_send = -math.inf
        self.sends: deque[float] = deque()  # send times of the last second, or of the window
        self.counted: list[float] = []  # sorted send times the server counted, under this limit
        self.accepted = 0  # answers that were not 429
        self.looks: set[int] = set()  # permits sent with nothing left on our books
        # How many permits an answer lagged behind the newest one seen, at most: the server
        # counts requests in flight in its own order, so each count is off by up to this.
        self.reorder = 0
        self.shared = False  # another client spends this key too, as our counts show
        self.others = Others()  # what another client surely spent of each window
        self.owed = 0.0  # a bucket's stock another client spent before we came (to take back)
        self.backlog: int | None = None  # rows not yet done, those in flight too; None: unknown

    # --- what we sent -------------------------------------------------------------------------

    def send(self, now: float, *, keep: float) -> int:
        """Book a request leaving now, keeping `keep` seconds of send times; its sequence number."""
        seq = self.issued
        self.issued += 1
        if not self.outstanding:
            self.alone = seq
        self.outstanding.add(seq)
        self.last_send = now
        if self.started is None:
            self.started = now
        self.sends.append(now)
        while self.sends and self.sends[0] < now - keep:
            self.sends.popleft()
        return seq

    def answered(self, seq: int) -> None:
        self.outstanding.discard(seq)

    def went_alone(self, seq: int) -> bool:
        """Whether permit `seq` had the server to itself: none in flight as it left, none
        sent since. Its count is then exact, whatever order the others were counted in."""
        return seq == self.alone and self.issued == seq + 1

    @property
    def in_flight(self) -> int:
        return len(self.outstanding)

    def sent_since(self, at: float) -> int:
        """Requests sent at `at` or later, as far back as the send log reaches."""
        return sum(1 for t in self.sends if t >= at)

    # --- what the server said -----------------------------------------------------------------

    def set_limit(self, limit: int) -> bool:
        """Take the limit a response gave; True if it changed from the one known before."""
        changed = self.limit is not None and limit != self.limit
        if changed:
            # What a window held and which requests were counted describe the old limit.
            self.window_quota = None
            self.counted = []
            self.floor.drop()
        self.limit = limit
        return changed

    @property
    def known_limit(self) -> int:
        """The limit, for the models that run only once the headers gave one."""
        assert self.limit is not None
        return self.limit

    def count(self, seq: int, sent_at: float) -> None:
        """Book accepted permit `seq`: the server counted it, as sent at `sent_at`."""
        self.looks.discard(seq)
        self.accepted += 1
        bisect.insort(self.counted, sent_at)

    def refuse(self, seq: int) -> None:
        """Book a 429: the server did not count that request."""
        self.uncounted.add(seq)

    def is_newer(self, seq: int) -> bool:
        """Whether the answer to permit `seq` is newer than every count seen so far."""
        return seq > self.newest_seq

    def observe(self, seq: int, now: float, sent_at: float, remaining: int) -> int | None:
        """Take a newer count; the quota handed back since the previous one, or None if first.

        The net quota handed back between two observations is `ΔRemaining + Δrequests`,
        counting only the requests the server counted.
        """
        handed_back = None
        if self.remaining is not None:
            handed_back = remaining - self.remaining + self._counted_since_newest(seq)
        self.remaining = remaining
        self.late = 0
        self.newest_seq = seq
        self.observed_at = now
        self.observed_sent = sent_at
        return handed_back

    def _counted_since_newest(self, seq: int) -> int:
        """Permits after the newest observation, up to `seq`, that the server counted."""
        skipped = sum(1 for u in self.uncounted if self.newest_seq < u <= seq)
        self.uncounted = {u for u in self.uncounted if u > seq}
        return seq - self.newest_seq - skipped

    @property
    def left(self) -> int:
        """Requests the newest count left, less the permits issued after it and those before it
        still unanswered.

        The server counts requests in flight in its own order: one sent before the newest
        count may reach it after, so it is not in that count either. (One that was in it is
        held back only until its answer, a round trip.)
        """
        assert self.remaining is not None
        newest = self.newest_seq
        before = sum(1 for seq in self.outstanding if seq < newest)
        return self.remaining - self.late - (self.issued - 1 - newest) - before

    @property
    def window_left(self) -> int:
        """`left`, within a fixed window also no more than its lowest count less all in flight.

        A newer count can show more than a stale one did (see `Floor`); within one window the
        lowest count is the truest, and any request in flight may have been counted after it.
        """
        left, lowest = self.left, self.floor.lowest
        return left if lowest is None else min(left, lowest - self.in_flight)

    @property
    def last_rows(self) -> bool:
        """Whether what is left of this window takes every row still to send: the run's last
        window, in which nothing need be kept back to learn about the next. (Another client's
        expected use of the window is not left.)"""
        backlog = self.backlog
        left = self.window_left - self.others.expected
        return backlog is not None and backlog - self.in_flight <= left

    def lower(self, seq: int, remaining: int) -> None:
        """A stale answer of this window counted lower: it reached the server after the newest.

        Its count is then the server's latest that we know (until a newer one comes); the
        requests sent after the newest stay discounted too, which errs on the safe side. The
        newest count itself is kept, since what was handed back is measured from it.
        """
        if self.remaining is not None and seq > self.window_seq:
            self.late = max(self.late, self.remaining - remaining)

    def hold_back_more(self) -> None:
        """Our picture of the quota was wrong, most likely another client: keep more back."""
        if self.limit:
            self.margin = min(self.margin + 1, max(1, self.limit // 10))

    def forget_remaining(self) -> None:
        """Drop the count and the window's quota: they came from a window that proved wrong."""
        self.remaining = None
        self.window_quota = None
