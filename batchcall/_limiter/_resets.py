"""Bounds on a fixed window's resets, from which of our requests fell on each side of them.

Resets come every `period` seconds: r_k = r_0 + k × period, where window 0 is the one our first
request fell in. Every answer bounds one reset, by our own clock:

- an accepted request counted in window k arrived before r_(k+1), so after it was sent;
- a 429 says window k was full when it arrived: r_(k+1) came after it was sent, and, from a
  Retry-After rounded up to whole seconds, within `Retry-After` of its answer and not a whole
  second before that;
- the first request counted in window k arrived after r_k, so before its answer came;
- window 0 began no later than our first request arrived and, when the window began with it,
  as most do (GitHub's, for one), no earlier than it left.

A request's arrival lies between its send and its answer, so these are safe bounds even when
the server counts requests in flight in an order other than ours. Two resets bound the period
(the widest pair gives the tightest bound) and, with it, every later reset: the gate sends the
first request of a window only once the latest instant the bounds allow has passed, and holds
the last unit of quota until the earliest, so that each window's bracket is sharp and the next
prediction narrower. If the bounds ever contradict each other, the assumption that window 0
began with our request goes first; if they still disagree (another client's requests, a limit
that changed its clock), only the newest reset is kept.
"""

from __future__ import annotations

import math

RETRY_SLACK = 0.1  # seconds a server's Retry-After may fall short of the true wait
KEPT = 8  # resets kept besides the first: the widest pairs bound the period best
# Window lengths that gateways are configured with. While the bounds allow one of them, the
# resets are predicted from it, which pins them after a single reset instead of after many; a
# prediction the server contradicts (a 429 after it) rules that length out.
ROUND_PERIODS = (1.0, 2.0, 3.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0,
                 1800.0, 3600.0, 86400.0)  # fmt: skip


class ResetBounds:
    """Lower and upper bounds on r_0, r_1, ... by our own clock; `index` is the window we are in."""

    __slots__ = ("_anchor_lo", "_ruled_out", "hi", "index", "lo", "openers", "sliding")

    def __init__(self, first_sent: float, first_answered: float, *, began: bool = True) -> None:
        """`began`: our first request began window 0 (its count showed no other request)."""
        self.index = 0
        self.lo: dict[int, float] = {0: -math.inf}
        self.hi: dict[int, float] = {0: first_answered}
        self._anchor_lo: float | None = first_sent if began else None
        self._ruled_out: set[float] = set()  # round lengths a 429 contradicted
        # (sent, answered) of each window's first request: in a sliding window, the quota a
        # burst spent comes back one window after it, whenever the burst went.
        self.openers: dict[int, tuple[float, float]] = {0: (first_sent, first_answered)}
        self.sliding = False  # the resets follow our bursts, not a clock of their own

    # --- taking in answers --------------------------------------------------------------------

    def counted(self, sent_at: float) -> None:
        """An accepted request of the current window: the next reset came after it left."""
        self._raise(self.index + 1, sent_at)

    def refused(self, sent_at: float, answered_at: float, retry_after: float | None) -> None:
        """A 429 in the current window: the next reset is after its send, within Retry-After."""
        k = self.index + 1
        foreseen = self.predict(k, guess=False)
        low = sent_at if retry_after is None else max(sent_at, sent_at + retry_after - 1)
        self._raise(k, low)
        if retry_after is not None:
            self.hi[k] = min(self.hi.get(k, math.inf), answered_at + retry_after + RETRY_SLACK)
        if not self.sliding and foreseen is not None and sent_at > foreseen[1]:
            # Refused after the reset was due: if the resets follow our bursts instead, this
            # is a sliding window.
            self.sliding = True
            if not self._consistent() or self.predict(k, guess=False) is None:
                self.sliding = False
        self._check()

    def opened(self, sent_at: float, answered_at: float) -> None:
        """The first request counted in a new window: the reset came before its answer."""
        self.index += 1
        k = self.index
        self.openers[k] = (sent_at, answered_at)
        self.hi[k] = min(self.hi.get(k, math.inf), answered_at)
        self.lo.setdefault(k, -math.inf)
        # A request sent after the reset whose answer came later cannot bound it from below.
        if self.lo[k] > self.hi[k]:
            self.lo[k] = -math.inf
        self._forget_old()
        self._check()

    @property
    def opened_at(self) -> float:
        """When the current window's first request left (our first request's, for window 0)."""
        return self.openers.get(self.index, (-math.inf, math.inf))[0]

    def _raise(self, k: int, low: float) -> None:
        self.lo[k] = max(self.lo.get(k, -math.inf), low)
        self.hi.setdefault(k, math.inf)

    # --- what the bounds say ------------------------------------------------------------------

    def _lows(self) -> dict[int, float]:
        lows = dict(self.lo)
        if self._anchor_lo is not None and 0 in lows:
            lows[0] = max(lows[0], self._anchor_lo)
        return lows

    def period(self) -> tuple[float, float] | None:
        """The least and greatest period the bounds allow; None while unbounded above."""
        if self.sliding:
            return self._sliding_period()
        lows, highs = self._lows(), self.hi
        shortest, longest = 0.0, math.inf
        for i in lows:
            for j in lows:
                if j <= i:
                    continue
                shortest = max(shortest, (lows[j] - highs[i]) / (j - i))
                longest = min(longest, (highs[j] - lows[i]) / (j - i))
        return (shortest, longest) if longest < math.inf else None

    def round_period(self) -> float | None:
        """The shortest round window length the bounds still allow, if any."""
        span = self.period()
        if span is None:
            return None
        for period in ROUND_PERIODS:
            if span[0] <= period <= span[1] and period not in self._ruled_out:
                return period
        return None

    def predict(self, k: int, *, guess: bool = True) -> tuple[float, float] | None:
        """The earliest and latest instant reset k may come, or None if unbounded above.

        Within what the bounds allow, a round window length narrows it to what that length
        gives; if the bounds already rule the result out, so is the length. While nothing
        bounds the length from above, a round length the bounds allow is `guess`ed at.
        """
        span = self.period()
        if span is None:
            return _guess(self, k) if guess else None
        within = self._predict(k, span)
        while (period := self.round_period()) is not None:
            rounded = self._predict(k, (period, period))
            narrowed = (max(within[0], rounded[0]), min(within[1], rounded[1]))
            if narrowed[0] <= narrowed[1]:
                return narrowed
            self._ruled_out.add(period)
        return within

    def _sliding_period(self) -> tuple[float, float] | None:
        """A sliding window's length: from each burst's first request to the quota's return."""
        shortest, longest = 0.0, math.inf
        for k, (sent, answered) in self.openers.items():
            if k + 1 in self.lo:
                shortest = max(shortest, self.lo[k + 1] - answered)
                longest = min(longest, self.hi.get(k + 1, math.inf) - sent)
        return (shortest, longest) if longest < math.inf else None

    def _predict(self, k: int, span: tuple[float, float]) -> tuple[float, float]:
        shortest, longest = span
        if self.sliding:
            sent, answered = self.openers.get(k - 1, (-math.inf, math.inf))
            earliest, latest = sent + shortest, answered + longest
            return (max(earliest, self.lo.get(k, -math.inf)), min(latest, self.hi.get(k, math.inf)))
        lows, highs = self._lows(), self.hi
        earliest = max(lows[i] + (k - i) * shortest for i in lows if i < k)
        latest = min(highs[i] + (k - i) * longest for i in highs if i < k)
        if k in lows:
            earliest = max(earliest, lows[k])
            latest = min(latest, highs[k])
        return (earliest, latest)

    def _check(self) -> None:
        """Bounds that contradict each other drop the anchor, then all but the newest reset.

        Resets that come a window after each of our bursts rather than on a clock of their own
        are a sliding window's: that is tried before anything is dropped.
        """
        if self._consistent():
            return
        if not self.sliding:
            self.sliding = True
            if self._consistent():
                return
            self.sliding = False
        self._anchor_lo = None
        if self._consistent():
            return
        newest = max(self.hi)
        self.lo = {k: v for k, v in self.lo.items() if k >= newest - 1}
        self.hi = {k: v for k, v in self.hi.items() if k >= newest - 1}
        if not self._consistent():
            self.lo = {newest: self.lo.get(newest, -math.inf)}
            self.hi = {newest: self.hi.get(newest, math.inf)}

    def _consistent(self) -> bool:
        lows = self._lows()
        if any(lows[k] > self.hi.get(k, math.inf) for k in lows):
            return False
        span = self.period()
        if span is None or span[0] > span[1]:
            return span is None
        # The round length in use must still fit what came: a 429 after its reset rules it out.
        period = self.round_period()
        while period is not None:
            guess = self._predict(self.index + 1, (period, period))
            if guess[0] <= guess[1]:
                return True
            self._ruled_out.add(period)
            period = self.round_period()
        return True

    def _forget_old(self) -> None:
        keys = sorted(self.hi)
        if len(keys) <= KEPT + 1:
            return
        keep = {keys[0], *keys[-KEPT:]}
        self.lo = {k: v for k, v in self.lo.items() if k in keep}
        self.hi = {k: v for k, v in self.hi.items() if k in keep}
        self.openers = {k: v for k, v in self.openers.items() if k in keep or k + 1 in keep}


def _guess(bounds: ResetBounds, k: int) -> tuple[float, float] | None:
    """Reset k by the shortest round length the bounds allow, while none bounds it above.

    A job that starts second on a shared key does not know when window 0 began, only
    that its own first answer was in it: two resets must pass before the length is
    bounded above, and meanwhile a whole-second Retry-After brings it back up to a second
    late, after the other job has spent the window. A guess the bounds contradict is
    dropped, and the Retry-After is waited for as before.
    """
    lows, highs = bounds._lows(), bounds.hi
    if bounds.sliding or not any(i < k for i in lows) or not any(i < k for i in highs):
        return None
    shortest = max(
        ((lows[j] - highs[i]) / (j - i) for i in highs for j in lows if j > i), default=0.0
    )
    # Only the shortest: a longer guess that turned out wrong would hold a whole window.
    period = next((p for p in ROUND_PERIODS if p >= shortest), None)
    if period is None or period in bounds._ruled_out:
        return None
    guessed = bounds._predict(k, (period, period))
    return guessed if guessed[0] <= guessed[1] else None
