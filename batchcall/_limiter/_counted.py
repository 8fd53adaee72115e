"""A fixed window whose counts the server reports: spend each window early, catch each reset.

With `X-RateLimit-Remaining` on every answer, the quota left is known (less what is in
flight). The run's last window is spent at full speed, so it takes as long as its requests
take to send; a window mid-run is spread over its first FILL, which costs nothing (the next
one opens at its reset anyway) and lets a job started later on the key be counted among ours,
so that both share (see `_others`). What is left to win is
the reset: the first request of a window goes as soon as the `ResetBounds` say the reset
must have come, and one unit of the old window's quota is held back until just before the
earliest the reset may come, so that every window brackets its reset from both sides and the
next prediction is sharper. No unit of quota is left unspent at a reset: a single unit short
in each window costs a whole extra window at the end of a run whose rows fill its windows.

When nothing bounds the next reset yet, one request looks (its 429's Retry-After bounds it),
as does one after a silence that the bounds did not foresee.
"""

from __future__ import annotations

from ._model import PROBE_AFTER, RECHECK, bounded
from ._quota import Quota
from ._resets import ResetBounds

LEAD = 0.02  # seconds before the earliest reset that the held unit goes
GUARD = 0.005  # seconds after the latest reset before a window's first request goes
# Seconds: a reset known this closely needs no held unit to bracket it. (A held unit delays
# the last row of a run to the end of its window, so it is kept only while it teaches.)
SHARP = 0.05
# Share of a window after which, with another client on the key, the rest is ours to take:
# a client that came back later than us from the reset has had time to spend its share.
FILL = 0.3


class CountedWindow:
    """The rate model for a fixed window with counts: bursts, and resets caught by their bounds."""

    __slots__ = ("_found", "_look", "bounds", "latency", "looking", "max_rate")

    def __init__(self, max_rate: float, bounds: ResetBounds) -> None:
        self.max_rate = max_rate
        self.bounds = bounds
        self.latency = 0.0  # the gate's latency estimate, so the held unit arrives in time
        self._look = (-1, -1)  # (window, permit) of the look after a share, once it went
        self.looking = False  # the next request is that look: its 429 is foreseen
        self._found: bool | None = None  # whether that look found quota left (None: unknown)

    def next_reset(self) -> tuple[float, float] | None:
        return self.bounds.predict(self.bounds.index + 1)

    def wait(self, now: float, quota: Quota) -> float:
        left = quota.window_left
        upcoming = self.next_reset()
        period = self.period()
        burst = quota.last_send + 1 / self._burst_rate(quota, period) - now
        if (quota.margin > 1 or quota.shared) and quota.in_flight and quota.in_flight >= left:
            # Another client spends this key (429s our books did not foresee, or counts that
            # fell faster than our own requests explain): its requests in flight are not in
            # our count, so ours keep to what would be left if it sent as many, which is the
            # share of two clients bursting at once.
            return RECHECK
        shared = self._share(now, quota, period, upcoming)
        if shared is not None:
            return shared
        if left >= 1 + quota.margin or (left >= 1 and quota.in_flight == 0):
            if upcoming is None or left >= 2 or self._last(quota) or not self._teaches(upcoming):
                return burst
            # The last unit of the window: it goes just before the reset may come, to bound it.
            return max(burst, upcoming[0] - LEAD - self.latency - now)
        if quota.in_flight:
            return RECHECK  # an answer in flight says more; the gate wakes on it
        if upcoming is None:
            # Nothing bounds the next reset: one request looks, and its 429's Retry-After bounds
            # it (the pause that follows keeps the looks apart).
            return 0.0
        start = upcoming[1] + GUARD
        if now < start:
            return start - now
        if quota.last_send < start or self._silent(now, quota):
            return 0.0  # the reset must have come: the window's first request looks
        return RECHECK

    def _burst_rate(self, quota: Quota, period: float | None) -> float:
        """Full speed; but alone on the key, mid-run, a window's quota spread over FILL of it.

        That costs nothing, since the next window opens at its reset however fast this one
        was spent, and it lets a job that starts later on the same key be counted among our
        requests instead of refused unseen after our burst: then both know to share.
        """
        limit = quota.limit
        if quota.shared or quota.last_rows or period is None or limit is None:
            return self.max_rate
        return min(self.max_rate, limit / (FILL * period))

    def _share(
        self,
        now: float,
        quota: Quota,
        period: float | None,
        upcoming: tuple[float, float] | None,
    ) -> float | None:
        """With another client on the key: the wait that keeps to our share, if any.

        Each window's burst keeps to our share (`Others.share`) until FILL of it has passed,
        which lets a client that comes back later than us in each window spend its own.
        Then, if the other client is expected to have taken the rest, one request looks,
        and what is left is spent once its count (or its 429) says how much that is.
        """
        limit = quota.limit
        if not quota.shared or period is None or limit is None:
            return None
        window, others = self.bounds.index, quota.others
        fill_at = self.bounds.opened_at + FILL * period
        if now < fill_at:
            if quota.last_rows or quota.issued - quota.window_seq < others.share(limit):
                return None
            return fill_at - now
        return self._look_after_share(now, quota, (window, fill_at), upcoming)

    def _look_after_share(
        self,
        now: float,
        quota: Quota,
        at: tuple[int, float],
        upcoming: tuple[float, float] | None,
    ) -> float | None:
        """Past FILL of the window, with our counts from before it: one request looks first.

        The other client may have spent the rest meanwhile: one request looks whether it
        left any. A look that drew a 429 is trusted for the next window, so that in a key
        shared evenly only every other window costs a 429; but not once our own last rows
        would fit what is left, since the other job may have finished.
        """
        (window, fill_at), (look_window, look) = at, self._look
        if look_window == window:
            if quota.newest_seq < look:
                return RECHECK if quota.in_flight else None
            if self._found is None:
                self._found = bool(quota.remaining)
            return None
        others = quota.others
        if quota.window_left < 1 or (not others.expected and quota.observed_at >= fill_at):
            return None
        if quota.in_flight:
            return RECHECK
        backlog = quota.backlog
        ours_fit = backlog is not None and backlog - quota.in_flight <= quota.window_left
        trusted = self._found is False and window - look_window < 2 and not ours_fit
        if others.expected and trusted and upcoming:
            if now >= upcoming[1] + GUARD:
                return None  # the reset must have come: the window's first request goes
            others.seen = max(others.seen, others.before)  # trusted: it spent the rest again
            return upcoming[1] + GUARD - now
        self._look, self._found, self.looking = (window, quota.issued), None, True
        return 0.0

    @staticmethod
    def _last(quota: Quota) -> bool:
        """Whether a held unit would not teach: it would hold our own last row, or another
        client would spend it meanwhile (and a 429 would answer our look)."""
        backlog = quota.backlog
        return quota.shared or (backlog is not None and backlog - quota.in_flight <= 1)

    def _teaches(self, upcoming: tuple[float, float]) -> bool:
        """Whether a held unit would bracket the reset more sharply than the bounds already do.

        It goes LEAD plus a latency before the earliest, and the answer that shows the reset
        comes a latency after it: no bracket is sharper than that.
        """
        return upcoming[1] - upcoming[0] > SHARP + 2 * (LEAD + self.latency)

    @staticmethod
    def _silent(now: float, quota: Quota) -> bool:
        return now - quota.last_send >= PROBE_AFTER

    def rate(self, now: float, quota: Quota) -> float:
        """Full speed while quota is left; the window's average rate otherwise."""
        if quota.window_left >= 1:
            return self.max_rate
        span = self.bounds.period()
        limit = quota.limit or 1
        return bounded(limit / span[1] if span else limit, self.max_rate)

    def window(self, quota: Quota) -> float | None:
        return self.period()

    def period(self) -> float | None:
        """The window's length as learned: the round length the bounds allow, else their middle."""
        bounds = self.bounds
        span = bounds.period()
        if span is None:
            return None
        round_period = bounds.round_period()
        return round_period if round_period is not None else (span[0] + span[1]) / 2

    def pause(self, now: float, retry_after: float) -> float:
        return pause_to_reset(self.bounds, now, retry_after)


def pause_to_reset(bounds: ResetBounds, now: float, retry_after: float) -> float:
    """A 429's pause: until the latest the next reset may come, if Retry-After allows it.

    Retry-After comes in whole seconds, rounded up, so the quota is back up to a second
    sooner than it says; the bounds, which take that Retry-After in, may say when.
    """
    upcoming = bounds.predict(bounds.index + 1)
    if upcoming is None:
        return retry_after
    back = upcoming[1] + GUARD - now
    return back if 0 < back <= retry_after + GUARD else retry_after
