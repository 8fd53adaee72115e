"""Our own count of a fixed window's quota, for a server that gives its limit only on 429s.

Such a server sends `X-RateLimit-Limit` and `Retry-After` with a 429 and nothing with a
201. A Retry-After under two seconds fits a fixed window, a sliding one and a bucket alike,
so no window can be read from it (`WindowReader`), and the blind mode's CUBIC curve then
takes many windows to find a rate that a fixed window hands out at once. Yet if the key is a
fixed window and ours alone, what a window has left is known from our own sends: it opens
with `limit`, and each request of ours takes one. `OwnCount` keeps that count; the learner
hands it on as if the server had sent it, so that the windows are spent at once and their
resets timed as a counting server's are (`CountedWindow`, `ResetBounds`).

A window opens, by this count, at the first send after a 429's pause, and at the first send
once `limit` requests of the window before have gone. (That send is a look: if the reset
has not come, its 429 was foreseen, and the window opens at the next send instead.) A whole-
second Retry-After can end a pause just before a reset, so that the burst after it spills
into the next window, which then holds fewer of ours than the count says: a 429 in a window
that a look opened is read as that window being full (up to MAX_STRIKES times). A window
opened after a pause holds a fixed window's whole quota whatever its phase, so a 429 there
is not a fixed window's.

Until a window that a look opened has taken all `limit` of our requests, the count is a
hypothesis, so its requests in flight grow as TCP's slow start does, by one for each
acceptance: a window spilt into, a sliding window or a bucket (which hand back only part of
the limit after a pause) then refuse a few requests, and not a whole burst. A 429 that the
count cannot explain ends it for good, and the learner goes back to the blind mode.
"""

from __future__ import annotations

import bisect
import math

from ._resets import RETRY_SLACK, ROUND_PERIODS

# Retry-After seconds under which a blind 429 reads as no window (it fits every kind): the
# count is tried instead. `WindowReader` reads the longer ones.
SHORT_RETRY_AFTER = 2.0
MAX_STRIKES = 3  # 429s in windows a look opened, read as a window spilt into, before giving up


class OwnCount:
    """What each fixed window has left by our own sends, once a blind 429 gave the limit."""

    __slots__ = (
        "_accepted",
        "_after_pause",
        "_end",
        "_paused",
        "_starts",
        "_strikes",
        "armed_at",
        "confirmed",
        "failed",
        "limit",
    )

    def __init__(self) -> None:
        self.limit = 0
        self.armed_at: float | None = None  # sends from here on are counted
        self._starts: list[int] = []  # the first permit of each window, by our count
        self._accepted = 0  # acceptances in the window opened last
        # A window that a look opened took all `limit` of our requests: the count is in step
        # with the server's windows, and no burst spills over a reset any more.
        self.confirmed = False
        self.failed = False  # a 429 the count did not foresee: never again this run
        self._end = 0  # the first permit issued after the count failed
        self._paused = True  # a 429 paused the gate since the window opened last
        self._after_pause = True  # the window opened last opened after a pause
        self._strikes = 0

    @property
    def active(self) -> bool:
        return self.armed_at is not None

    def arm(self, limit: int, at: float) -> None:
        """A blind 429 gave `limit`, with a short Retry-After; count the sends from `at` on."""
        if not self.failed and self.armed_at is None and limit > 0:
            self.limit, self.armed_at = limit, at

    def sent(self, seq: int, now: float) -> None:
        """Permit `seq` leaves now: it may open a window."""
        if self.armed_at is None or now < self.armed_at:
            return
        if self._paused or not self._starts or seq - self._starts[-1] >= self.limit:
            self._starts.append(seq)
            self._accepted = 0
            self._after_pause, self._paused = self._paused, False

    def remaining(self, seq: int) -> int | None:
        """What the window of accepted permit `seq` had left after it; None if before the count."""
        i = bisect.bisect_right(self._starts, seq) - 1
        if i < 0:
            return None
        left = self.limit - 1 - (seq - self._starts[i])
        if i == len(self._starts) - 1:
            self._accepted += 1
            if left == 0 and not self._after_pause:
                self.confirmed = True
        return max(0, left)

    def counts(self, seq: int) -> bool:
        """Whether permit `seq` went out under this count (not a blind straggler)."""
        if not self._starts or seq < self._starts[0]:
            return False
        return not self.failed or seq < self._end

    def refused(self, seq: int, issued: int) -> bool:
        """A counted permit drew a 429: True if the count foresaw it or can explain it.

        `issued` permits have gone so far; those still in flight when the count fails are
        its own, and their 429s are no news.
        """
        if self.failed:
            return False
        starts = self._starts
        if self._paused or seq < starts[-1]:
            return True  # in flight when its window was read as full: no news
        if seq == starts[-1] and len(starts) > 1:
            starts.pop()  # a look: the old window still held, and the next send opens the new
            self._paused = True
            return True
        if not self._after_pause and self._strikes < MAX_STRIKES:
            self._strikes += 1  # a window spilt into by the burst before: it is full
            self._paused, self.confirmed = True, False
            return True
        self.failed, self.armed_at, self._end = True, None, issued
        return False

    def may_send(self, in_flight: int) -> bool:
        """Until the count is confirmed, one more in flight for each acceptance in this window."""
        return self.confirmed or in_flight <= self._accepted


def blind_reset(
    counted: list[float], limit: int, refused: tuple[float, float, float], slack: float
) -> tuple[float, float] | None:
    """The latest instant the reset after a blind 429 may come, and the window's length.

    `refused` is that 429's (sent, answered, Retry-After). Our last `limit` acceptances
    before it filled the window it came in, so, when our sends were dense there, they say
    when that window began (as `WindowReader` reads it); the shortest round window length
    that Retry-After confirms then gives its end. Retry-After alone, in whole seconds, may
    say up to a second late, and a pause that ends late in a window leaves the burst after
    it to spill over the next reset. None when the sends were sparse or no length fits.
    """
    sent, answered, retry_after = refused
    n = bisect.bisect_left(counted, sent)
    if n <= limit:
        return None
    first, before = counted[n - limit], counted[n - limit - 1]
    # The window began after `before` left and before `first` arrived.
    began = (before, first + slack)
    shortest = max(sent, sent + retry_after - 1) - began[1]
    longest = answered + retry_after + RETRY_SLACK - began[0]
    period = next((p for p in ROUND_PERIODS if shortest <= p <= longest), None)
    if period is None or began[1] - began[0] > period / 4:
        return None
    return began[1] + period, period


def first_window(reading: tuple[float, float] | None, paused_until: float) -> float:
    """When the count's first window opens: at the pause's end, unless that comes late in a
    window (by `blind_reset`), when the burst would spill over the next reset; then at it."""
    if reading is None:
        return paused_until
    reset, period = reading
    opened = reset + max(0, math.floor((paused_until - reset) / period)) * period
    if paused_until < opened or paused_until - opened < period / 2:
        return paused_until
    return opened + period
