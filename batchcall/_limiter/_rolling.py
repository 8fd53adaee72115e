"""A token bucket or a sliding window: quota that comes back steadily rather than all at once.

Quota above a small reserve is spent at full speed (spread out, it would only come back
later); with only the reserve left, the pace is the refill. The refill is the quota handed
back over the last REFILL_SPAN of counts, unless the `Echo` shows a sliding window: then
every refill is foreseen from our own send times, and the refill rate is the limit per window.
A bucket (no echo, and nothing that shows a window), and any shared key that no window shows,
is paced by its count alone instead, so that jobs sharing it converge on even shares; a window
shared with another client is taken half of each count (or of each lump) at a time.

The gate keeps one `Rolling` from the first count on and feeds it every count, whatever
model is in use, so its measurements are ready the moment the jumps of a fixed window stop.
Until the quota is seen trickling back it is unsettled: a jump may still reveal a fixed window.
"""

from __future__ import annotations

from collections import deque

from ._echo import Echo
from ._lumps import LumpShare
from ._model import CUBIC_BETA, PROBE_AFTER, RECHECK, Accounted, bounded
from ._quota import Quota
from ._slide import SlideGuess

REFILL_SPAN = 0.5  # seconds of observations the refill rate is measured over
# Units a count that no other request could disorder must show handed back, below a reset's
# share, to be a trickle (a held unit or the margin comes back one at a time).
EXACT_TRICKLE = 3
# A bucket's spare quota is spent over this long at most, so that the pace follows the count
# (see `Rolling.pace`); halved while the highest refill seen would refill SPREAD_SHARE of the
# bucket meanwhile, so that what is kept never fills it. The step is coarse, so that a refill
# measured a little differently by two jobs gives them the same spread.
SPREAD = 0.5
SPREAD_SHARE = 0.75
# A count that rose by LUMP of the limit within LUMP_SPAN shows quota coming back in a lump: a
# sliding window replaying a burst, which a bucket that takes longer than LUMP_SPAN / LUMP to
# refill in full never does.
LUMP = 0.25
LUMP_SPAN = 0.1
LONG_RETRY = 2.0  # seconds of Retry-After that no bucket worth pacing as one gives


class Rolling(Accounted):
    """Pacing at the measured refill; the refill rate and the echo test are measured here."""

    __slots__ = (
        "_growth",
        "_history",
        "_recent",
        "echo",
        "lumps",
        "peak",
        "refill",
        "settled",
        "slide",
        "windowed",
    )

    def __init__(self, max_rate: float) -> None:
        super().__init__(max_rate)
        self.echo = Echo()
        self.lumps = LumpShare()
        self.slide = SlideGuess()  # the window's length, while the echo does not say it
        self._history: deque[tuple[float, int, int]] = deque()  # (received, seq, remaining)
        self.refill: float | None = None  # requests/s handed back
        self.peak = 0.0  # the highest refill measured
        self._recent: deque[tuple[float, int, int]] = deque()  # the last LUMP_SPAN's counts
        # Seen to be a window: a lump, or a window-long Retry-After. (Not a broken echo: a
        # bucket echoes our first requests for a while, and jobs must pace it alike.)
        self.windowed = False
        self._growth = 0  # quota handed back since the last reset, outside resets
        self.settled = False  # seen trickling back: no jump is read as a reset any more

    # --- measuring ----------------------------------------------------------------------------

    def measure(self, now: float, seq: int, remaining: int, quota: Quota) -> None:
        """Take a count into the refill rate, measured over the last REFILL_SPAN, and into
        the lump test."""
        history = self._history
        history.append((now, seq, remaining))
        while len(history) > 2 and history[1][0] <= now - REFILL_SPAN:
            history.popleft()
        first = history[0]
        if now - first[0] >= REFILL_SPAN / 2:
            self.refill = max(0.0, (remaining - first[2] + seq - first[1]) / (now - first[0]))
            self.peak = max(self.peak, self.refill)
        self._see_lump(now, seq, remaining, LUMP * quota.known_limit + quota.reorder)

    def _see_lump(self, now: float, seq: int, remaining: int, lump: float) -> None:
        recent = self._recent
        recent.append((now, seq, remaining))
        while recent[0][0] < now - LUMP_SPAN:
            recent.popleft()
        _, first_seq, first_remaining = recent[0]
        if remaining - first_remaining + seq - first_seq >= lump:
            self.windowed = True

    def heard(self, quota: Quota, sent_at: float, now: float, handed_back: int) -> None:
        """A newer count, answered at `now`, showed `handed_back`: the echo takes it in."""
        self.echo.observe(
            sent_at,
            handed_back,
            quota.counted,
            noise=quota.reorder,
            answered_at=now,
            unanswered=quota.in_flight,
        )

    def trickled(self, handed_back: int, limit: int, *, noise: int | None) -> bool:
        """Count quota handed back outside a reset; True once a fixed window cannot explain it.

        `handed_back` is the least that any order of the requests in flight allows (the
        learner's `surely`), never positive within a fixed window. The sum is floored at zero
        so that another client's spending cannot hide a later trickle, and a margin of
        `noise` (how far answers came out of order) is kept all the same. A count with no
        noise at all (None: a request that went alone) needs only a few units: a fixed window
        hands back all or nothing.
        """
        self._growth = max(0, self._growth + handed_back)
        if noise is None:
            return handed_back >= EXACT_TRICKLE or self._growth > 2 + 0.02 * limit
        return self._growth > 2 + 0.02 * limit + 4 * noise

    def window_reset(self) -> None:
        """A fixed window's reset was seen: what came back before it was that window's."""
        self._growth = 0
        self._history.clear()

    def refused(self, retry_after: float | None = None) -> None:
        """A 429 despite the count: the refill was overestimated, or the echo's window. (A
        Retry-After of LONG_RETRY is a window's: no bucket worth pacing is that far from its
        next unit.)"""
        if retry_after is not None and retry_after >= LONG_RETRY:
            self.windowed = True
        self.refill = (self.refill or 0.0) * CUBIC_BETA
        self.echo.refused()

    # --- pacing -------------------------------------------------------------------------------

    def pause(self, now: float, retry_after: float, quota: Quota) -> float:
        """Seconds to pause after a 429: less than the Retry-After if the window is sliding and
        `SlideGuess` says our oldest request in it leaves sooner."""
        if not self.windowed or self.echo.window is not None:
            return retry_after
        back = self.slide.back(now, retry_after, quota.counted, self.echo.longest_trip)
        return retry_after if back is None else max(back - now, 1e-3)

    def keeps_share(self, quota: Quota) -> bool:
        # A bucket's refill is measured net of the other client's spending: holding back on
        # top of that only hands the other client more.
        return not self.echo.broken and super().keeps_share(quota)

    def available(self, now: float, quota: Quota) -> float:
        # Unsettled, this may still be a fixed window: its lowest count bounds what is left.
        limit = quota.known_limit
        left: float = quota.left if self.settled else quota.window_left
        if self.count_paced(quota):
            # Neither halved nor raised by our net refill: every job gets one pace from a count.
            return min(limit, 2 * left if quota.owed > 0 and left > 0 else left)
        echo = self.echo.window is not None
        if echo:
            left += self.echo.returning(quota.observed_sent, now, quota.counted)
        if quota.shared and quota.remaining is not None:
            # Even with our own requests echoing (the other job's may not have broken it),
            # what the count shows is the other job's too.
            share = self.lumps.left(now, quota) if self.windowed else None
            if share is not None:
                left = min(left, share)
            else:
                # Another client sees the same count and spends it too, before our next count
                # can show it: each taking half of it, two never spend it twice.
                left -= quota.remaining // 2
        if not echo:
            left += (self.refill or 0.0) * (now - quota.observed_at)
        return min(limit, left)

    def pace(self, now: float, quota: Quota, available: float) -> float:
        if self.count_paced(quota) and not self._last_rows(quota, available):
            # A bucket's refill is measured net of every other client's spending, so pacing
            # at it keeps whatever split two jobs fell into, and one starves. A pace that
            # follows the count alone is the same for every job that sees it: n jobs settle at
            # refill / n each, with the bucket a little above empty, where none is refused.
            # What is kept is not lost, as a bucket below full goes on refilling.
            # The margin is left out too: it is this job's own, and its reserve is the pace's.
            spread = _spread(self.peak, quota.known_limit)
            return bounded((available - 1) / spread, self.max_rate)
        # Quota that is there is spent at full speed: spread out, it only comes back later.
        if available >= 1 + quota.margin:
            return self.max_rate
        window, limit = self.echo.window, quota.limit
        refill = limit / window if window and limit else self.refill or 0.0
        return bounded(refill, self.max_rate)

    @property
    def bucket(self) -> bool:
        """No echo of our own requests now, no lump, and no Retry-After as long as a window's.
        A sliding window kept a little above empty wastes what it keeps, so one that echoes
        another client's requests too (which breaks the echo) is told apart: a burst's replay
        comes back in a lump, and a request sent before it is told to wait most of a window."""
        return self.echo.broken and not self.windowed

    def count_paced(self, quota: Quota) -> bool:
        """Paced by the count alone (`pace`): a bucket, or a shared key not seen to be a window.
        A job whose echo still holds (its own burst's refill reads as one) would otherwise
        spend at full speed beside one pacing by the count, and take most of the refill."""
        return self.bucket or (quota.shared and self.settled and not self.windowed)

    @staticmethod
    def _last_rows(quota: Quota, available: float) -> bool:
        backlog = quota.backlog
        return backlog is not None and backlog - quota.in_flight <= available - quota.margin

    def hold(self, now: float, quota: Quota) -> float:
        window = self.echo.window
        if window is None:
            return 0.0 if self.may_probe(now, quota) else RECHECK
        # Our own requests say when quota comes back, so no need to probe for it, unless a
        # whole window passed in silence: then the picture is wrong (a lost response, another
        # client), and only a request can correct it.
        if quota.in_flight == 0 and now - quota.last_send >= max(PROBE_AFTER, window):
            return 0.0
        back = self.echo.next_return(now, quota.counted)
        # With nothing in flight, no later count will show a unit that the last one may not
        # have had, so one request looks once it is surely back (once: nothing was sent
        # since): for the run's last rows, or mid-run if the total handed back says the
        # count had not seen it. Otherwise it waits for the next return, a window's unit idle.
        if quota.in_flight == 0 and quota.backlog is not None:
            units, doubted = self.echo.doubted(quota.observed_sent, quota.counted)
            if quota.backlog > units:
                units, doubted = self.echo.unseen(quota.observed_sent, quota.counted)
            if units and doubted > quota.last_send:
                if doubted <= now:
                    return 0.0
                back = doubted if back is None else min(back, doubted)
        stale = quota.last_send + max(PROBE_AFTER, window)
        return max(min(back if back is not None else stale, stale) - now, 1e-3)

    def window(self, quota: Quota) -> float | None:
        window = self.echo.window
        if window is None and quota.limit and self.refill:
            window = quota.limit / self.refill
        return window


def _spread(peak: float, limit: int) -> float:
    """Over how long a bucket's spare quota is spent, given the highest refill seen.

    Halved in steps, not scaled: jobs that measured slightly different refills still get the
    same pace from the same count, or the one that measured more takes more.
    """
    spread = SPREAD
    while spread * peak > SPREAD_SHARE * limit and spread > 1e-3:
        spread /= 2
    return spread
