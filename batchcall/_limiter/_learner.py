"""What the answers taught: the quota by local accounting, and the rate model that explains it.

The model in use is the kind of limit the evidence points to:

- `Blind` while no count has come (no headers, or only on 429s);
- the counted models below, fed by our own count (`OwnCount`), once a blind 429 with a short
  Retry-After gave the limit, until a 429 that count cannot explain;
- `Rolling`, unsettled, from the first count: it paces like a bucket, while a jump may still
  reveal a fixed window;
- `FixedWindow` once a jump of a large share of the limit shows a reset, or a blind 429 reads
  one (`WindowReader`);
- `Rolling`, settled, for good once quota trickles back outside resets: that is a bucket or a
  sliding window, whatever jumps were seen before (a sliding window replays a burst as a jump).

A new limit starts the rolling measurements afresh, since they describe the old limit; a fixed
window keeps its timing (a new limit is not a new clock), and its bounds say whether the first
count under the new limit came after a reset. A window read from a 429 that a later 429
contradicts sends the gate back to the blind mode for good, which adapts to anything.
"""

from __future__ import annotations

import math

from ._blind import Blind
from ._counted import CountedWindow, pause_to_reset
from ._fixed import FixedWindow, WindowReader
from ._model import RECHECK, RateModel
from ._others import SHARED_AT
from ._owncount import SHORT_RETRY_AFTER, OwnCount, blind_reset, first_window
from ._quota import Quota
from ._resets import ResetBounds
from ._rolling import Rolling

# A jump of this share of the limit at once is a window reset. A bucket that a burst drained
# hands back a quarter of its limit in the half second before a look: that is a trickle.
RESET_SHARE = 0.5
# Seconds an unsettled model pauses at most after a 429 that asks for a second at most.
UNSETTLED_LOOK = 0.25
RESET_GUARD = 0.005  # seconds after a predicted reset before a paused request goes


class _WindowsAndReports:
    """The Learner's reading of a window from a blind 429, and what it reports it learned."""

    __slots__ = ("_blind", "_max_rate", "_reader", "_rolling", "model", "quota")
    _blind: Blind
    _max_rate: float
    _reader: WindowReader
    _rolling: Rolling
    model: RateModel
    quota: Quota
    bounds: ResetBounds | None

    def _reset(self, *, at: float, after: float, remaining: int) -> None:
        """A reset between the sends at `after` and `at`: a fixed window, new or known."""
        quota = self.quota
        started = quota.started if quota.started is not None else after
        model = self.model
        if not isinstance(model, FixedWindow | CountedWindow):
            trusted = self._reader.read_at is not None
            if trusted or self.bounds is None:
                model = FixedWindow.seen(
                    self._max_rate, at=at, after=after, started=started, trusted=trusted
                )
            else:
                model = CountedWindow(self._max_rate, self.bounds)
            self.model = model
        # A counted window's resets all go into its bounds; a window read from a 429 keeps
        # only those seen sharply.
        if isinstance(model, CountedWindow) or model.reset(at, after=after, started=started):
            quota.window_quota = remaining + 1
            self._rolling.window_reset()

    def _classify(
        self, surely: int, *, at: float, after: float, remaining: int, noise: int | None
    ) -> bool:
        """Read quota handed back between counts sent at `after` and `at`; True at a reset.

        `surely` is the least quota handed back that any order in which the server may have
        counted the requests in flight allows. Within a fixed window it is never positive,
        however far the answers overtake one another. `noise` is how far this count may be
        off by that order: None for a request that went alone, whose count is exact. (A
        sliding window that a burst filled long ago hands back, to a look, a part of the
        limit: too little for a reset, yet a fixed window hands back nothing or all of it.)
        """
        rolling = self._rolling
        if rolling.settled:
            return False
        limit = self.quota.known_limit
        if surely >= max(3, RESET_SHARE * limit):
            self._reset(at=at, after=after, remaining=remaining)
            return True
        if rolling.trickled(surely, limit, noise=noise):
            rolling.settled = True
            self.quota.floor.drop()
            self.model = rolling
        return False

    def _forget_read_window(self) -> None:
        """The window read from a 429 was wrong: back to the blind mode for good.

        Most likely another client, or a window that began before ours; the blind mode adapts
        to anything. A count that comes later starts the rolling model unsettled again.
        """
        self._reader.forget()
        self.quota.forget_remaining()
        self._rolling.settled = False
        self.model = self._blind

    def read_window(self, now: float) -> None:
        """After any answer: a pending blind 429 may now read as a fixed window."""
        reading = self._reader.read(now, self.quota)
        if reading is None:
            return
        quota = self.quota
        self.model = FixedWindow(
            self._max_rate,
            period=reading.period,
            phase=reading.reset,
            resets=[reading.reset],
            first_reset=None,
            trusted=True,
        )
        quota.window_quota = quota.limit
        quota.observe(reading.seq, now, reading.sent_at, 0)  # the window was full at the 429

    # --- reporting ----------------------------------------------------------------------------

    def learned(self) -> dict[str, tuple[str | float | int, str]]:
        """What the answers taught, each as (value, "observed" or "inferred"); nothing guessed."""
        return _learned(self.model, self._rolling, self.quota)

    def window(self) -> float | None:
        """The window learned, or the one the rolling measurements imply."""
        window = self.model.window(self.quota)
        return window if window is not None else self._rolling.window(self.quota)

    @property
    def refill(self) -> float | None:
        return self._rolling.refill


class _OwnCounting(_WindowsAndReports):
    """The Learner's own count of a blind fixed window (`OwnCount`) and its shared-key test."""

    __slots__ = ("_blind_reading", "_elsewhere", "_own", "_relimited", "bounds")
    _blind_reading: tuple[float, float] | None  # the last blind 429's reset, if our sends place it
    _elsewhere: int  # quota spent beyond our own requests since the last reset
    _own: OwnCount
    latency: float

    def _blind_pause(self, now: float, retry_after: float, sent_at: float) -> float:
        """A blind 429's pause: to the reset our own sends place, if Retry-After allows it."""
        quota, own = self.quota, self._own
        self._blind_reading = None
        if own.failed or own.active or not quota.limit or retry_after >= SHORT_RETRY_AFTER:
            return retry_after
        slack = 2 * max(self.latency, 0.001)
        reading = blind_reset(quota.counted, quota.limit, (sent_at, now, retry_after), slack)
        self._blind_reading = reading
        if reading is not None and 0 < reading[0] + RESET_GUARD - now <= retry_after:
            return reading[0] + RESET_GUARD - now
        return retry_after

    def _forget_own_count(self) -> None:
        """A 429 our own count did not foresee: not a fixed window of ours alone. Blind for good.

        The blind curve goes on from the rate the first 429 found: the count's bursts, cut
        short, would only understate it.
        """
        quota = self.quota
        quota.forget_remaining()
        quota.looks.clear()
        self.bounds = None
        self._rolling = Rolling(self._max_rate)
        self.model = self._blind

    def _note_spent_elsewhere(self, handed_back: int) -> None:
        """Counts that fall faster than our own requests explain: another client spends the key.

        Each count is off by the reordering noise either way, but their sum telescopes, as in
        `Rolling.trickled`; only a shortfall beyond that is somebody else's.
        """
        quota = self.quota
        self._elsewhere = max(0, self._elsewhere - handed_back)
        if self._elsewhere > 2 + 0.02 * quota.known_limit + 4 * quota.reorder:
            quota.shared = True

    def _window_opened(self, seq: int, sent_at: float, now: float, remaining: int) -> None:
        """Count `seq` was the first of a new fixed window."""
        quota = self.quota
        quota.window_seq = seq
        quota.floor.open(now, remaining)
        quota.others.reset()
        self._elsewhere = 0
        if self.bounds is not None:
            self.bounds.opened(sent_at, now)

    def _relimit(
        self, seq: int, sent_at: float, *, now: float, after: float, remaining: int
    ) -> None:
        """The first count under a new limit. The old limit's counts are no floor for it, and
        without a floor no reset or trickle ever reads again: a fixed window whose limit was
        halved lost its resets for good (600 rows took 22.1 s where its windows allow 18 s).
        So the floor opens here, and a reset is read where the bounds say one surely came."""
        self._relimited = False
        bounds = self.bounds
        upcoming = bounds.predict(bounds.index + 1) if bounds is not None else None
        if upcoming is not None and sent_at > upcoming[1]:
            self._reset(at=sent_at, after=after, remaining=remaining)
            self._window_opened(seq, sent_at, now, remaining)
            return
        self.quota.floor.open(now, remaining, since=sent_at)
        if bounds is not None and (upcoming is None or sent_at < upcoming[0]):
            bounds.counted(sent_at)  # surely still in the window (else it may be the next)

    def _see_others(self, sent_at: float, remaining: int) -> None:
        """A count of a request sent at `sent_at`: does it show another client (`Others`)?

        Within a fixed window whose resets are timed, only our answers since the window may
        have begun are ours in its count; otherwise every answer since the run began is.
        """
        quota, bounds = self.quota, self.bounds
        if self._own.active:
            return  # the count is our own, of our own requests
        since = -math.inf
        if isinstance(self.model, CountedWindow) and bounds and not bounds.sliding:
            if sent_at < bounds.hi.get(bounds.index, math.inf):
                return  # it may have been counted in the window before
            since = bounds.lo.get(bounds.index, -math.inf)
        seen = quota.others.bound(
            quota.known_limit, max(0, remaining), since=since, in_flight=quota.in_flight
        )
        if seen >= SHARED_AT and not quota.shared:
            quota.shared = True
            # Others spent `seen` and we `limit - remaining - seen`: a job that starts a
            # moment later finds a bucket's stock spent, which no pace from the count repays.
            ahead = 2 * seen - quota.known_limit + max(0, remaining)
            quota.owed = float(min(quota.known_limit, max(0, ahead)))

    def _own_refusal(self, seq: int) -> bool | None:
        """A 429 as our own count reads it: True if it foresaw it, None if it is no news."""
        own, quota = self._own, self.quota
        if own.counts(seq):
            if own.refused(seq, quota.issued):
                return True
            if self.model is not self._blind:
                self._forget_own_count()
            return None  # the count was wrong, and its requests in flight are no news
        if own.active and quota.remaining is not None:
            return None  # sent blind before the count began: it says nothing of the count
        return False


class Learner(_OwnCounting):
    """Keeps the `Quota` and switches the rate model as answers come; the gate asks it to pace."""

    __slots__ = ("latency",)

    def __init__(self, max_rate: float) -> None:
        self._max_rate = max_rate
        self.quota = Quota()
        self._blind = Blind(max_rate)
        self._rolling = Rolling(max_rate)  # measures every count, whichever model is in use
        self._reader = WindowReader()
        self.model: RateModel = self._blind
        # Where a fixed window's resets may lie, from the first count on, whichever model is
        # in use, so that a window is timed from its first reset.
        self.bounds: ResetBounds | None = None
        self.latency = 0.0  # the gate's estimate, seconds
        self._own = OwnCount()  # a fixed window's count kept by us, if the server keeps none
        self._blind_reading: tuple[float, float] | None = None  # the last blind 429's reset
        self._elsewhere = 0  # quota spent beyond our own requests since the last reset
        self._relimited = False  # the limit changed since the newest count

    # --- pacing -------------------------------------------------------------------------------

    def wait(self, now: float) -> float:
        """Seconds until a request may leave, as the model in use paces; zero or less is now."""
        model = self.model
        if isinstance(model, CountedWindow):
            model.latency = self.latency
        own = self._own
        if own.active:
            if own.armed_at is not None and now < own.armed_at:
                return own.armed_at - now  # the count's first window is not open yet
            if not own.may_send(self.quota.in_flight):
                return RECHECK  # the gate wakes on the answer that lets one more go
        return model.wait(now, self.quota)

    def rate(self, now: float) -> float:
        return self.model.rate(now, self.quota)

    @property
    def wakes_on_answers(self) -> bool:
        """Whether an answer may let a waiting request go at once: it may bring a first count,
        a window's opening or quota handed back. (A window read from a 429 is paced by the
        clock alone: waking it early only spreads its requests differently.)"""
        return not isinstance(self.model, FixedWindow)

    @property
    def blind(self) -> bool:
        """No count has come from the server yet: the rate is found by throttles."""
        return self.model is self._blind

    def sent(self, now: float) -> int:
        """Book a request leaving now; its sequence number."""
        model, quota = self.model, self.quota
        # A request our books say finds nothing left looks for a refill or a reset: its 429
        # was foreseen, and says nothing of another client.
        looking = quota.remaining is not None and quota.window_left < 1
        if isinstance(model, CountedWindow) and model.looking:
            model.looking, looking = False, True  # whether the other client left us any
        # The blind mode counts the last second's sends, a fixed window those since its reset.
        keep = max(1.0, model.period if isinstance(model, FixedWindow) else 0.0)
        seq = quota.send(now, keep=keep)
        if quota.owed > 0 and model is self._rolling and self._rolling.count_paced(quota):
            # Taking twice the count's share, the other job pacing from the same count takes
            # about half as many: each of ours gains half a unit on it.
            quota.owed -= 0.5
        self._own.sent(seq, now)
        if looking:
            quota.looks.add(seq)
        return seq

    def pause(self, now: float, retry_after: float, sent_at: float | None = None) -> float:
        """Seconds to pause after a 429 that asked for `retry_after` (see `_pause`)."""
        return _pause(self, now, retry_after, sent_at)

    # --- answers ------------------------------------------------------------------------------

    def answered(self, seq: int) -> None:
        """Permit `seq` has its answer, or will never get one."""
        self.quota.answered(seq)

    def heard_limit(self, limit: int | None) -> None:
        """An answer gave `limit` (if any)."""
        if limit is None or limit <= 0:
            return
        if self.quota.set_limit(limit):
            # Old refill measurements describe the old limit. A fixed window keeps its timing
            # (a new limit is not a new clock); anything else is learned afresh.
            # (A bucket or a sliding window, once known, has no floor to reopen.)
            known = self.model is self._rolling and self._rolling.settled
            self._relimited = self.quota.remaining is not None and not known
            fresh = Rolling(self._max_rate)
            if self.model is self._rolling:
                self.model = fresh
            self._rolling = fresh

    def accepted(self, seq: int, sent_at: float, now: float, remaining: int | None) -> None:
        """Permit `seq`, sent at `sent_at`, was accepted with `remaining` left (if it said)."""
        quota = self.quota
        quota.count(seq, sent_at)
        quota.others.accepted(now)
        self._rolling.slide.accepted(sent_at)
        if remaining is None and self._own.active:
            remaining = self._own.remaining(seq)
        if remaining is None or quota.limit is None:
            return
        self._see_others(sent_at, remaining)
        floor = quota.floor.before(sent_at)
        quota.floor.note(sent_at, now, max(0, remaining))
        if not quota.is_newer(seq):
            # Older than what we already know: stale, but it measures how far the server's
            # order strays from ours, which bounds the noise in every count.
            quota.reorder = max(quota.reorder, quota.newest_seq - seq)
            quota.lower(seq, max(0, remaining))
            return
        remaining = max(0, remaining)
        after = quota.observed_sent
        handed_back = quota.observe(seq, now, sent_at, remaining)
        if handed_back is None:
            # The first count: our first request began the window, or found a fresh key.
            quota.window_quota = remaining + 1
            quota.floor.open(now, remaining, since=-math.inf)
            self.model = self._rolling
            began = remaining >= quota.known_limit - 1  # no other request in the window yet
            self.bounds = ResetBounds(sent_at, now, began=began)
        elif self._relimited:
            self._relimit(seq, sent_at, now=now, after=after, remaining=remaining)
        else:
            self._note_spent_elsewhere(handed_back)
            self._rolling.heard(quota, sent_at, now, handed_back)
            surely, noise = _surely(quota, seq, handed_back, remaining=remaining, floor=floor)
            reset = self._classify(
                surely, at=sent_at, after=after, remaining=remaining, noise=noise
            )
            if reset:
                self._window_opened(seq, sent_at, now, remaining)
            elif self.bounds is not None:
                self.bounds.counted(sent_at)
        self._rolling.measure(now, seq, remaining, quota)

    def bound_refusal(self, sent_at: float, now: float, retry_after: float | None) -> None:
        """A 429: the current window was full when it came (before its pause). With counts,
        that bounds its resets; with a Retry-After, a sliding window's length (`SlideGuess`)."""
        # Only one sent in the window we are in says when that window ends.
        bounds = self.bounds
        if bounds is not None and self.quota.remaining is not None and sent_at >= bounds.opened_at:
            bounds.refused(sent_at, now, retry_after)
        if retry_after is not None:
            rolling = self._rolling
            trip = rolling.echo.longest_trip
            rolling.slide.refused(sent_at, now, retry_after, self.quota.counted, trip)

    def refused(
        self,
        seq: int,
        sent_at: float,
        now: float,
        *,
        retry_after: float | None,
        paused_until: float,
    ) -> None:
        """Permit `seq` drew a 429 (with the server's own Retry-After, if any)."""
        quota = self.quota
        quota.refuse(seq)
        foreseen = seq in quota.looks
        quota.looks.discard(seq)
        counted = self._own_refusal(seq)
        if counted is None:
            return
        foreseen = foreseen or counted
        if retry_after is not None and quota.remaining is None:
            self._reader.refused(seq, sent_at, retry_after)
            if retry_after < SHORT_RETRY_AFTER and quota.limit and self._reader.read_at is None:
                self._own.arm(quota.limit, first_window(self._blind_reading, paused_until))
        read_at = self._reader.read_at
        if read_at is not None:
            if sent_at <= read_at:
                return  # sent before the window was read: no news
            self._forget_read_window()
        if quota.remaining is None:
            self._blind.throttled(now, quota, paused_until=paused_until)
            return
        if not foreseen:
            quota.hold_back_more()
        self._see_others(sent_at, 0)
        quota.floor.note(sent_at, now, 0)
        if quota.is_newer(seq):
            # A refusal says the quota was empty when it arrived: an observation too.
            handed_back = quota.observe(seq, now, sent_at, 0)
            if handed_back is not None:
                self._rolling.heard(quota, sent_at, now, handed_back)
        self._rolling.refused(retry_after)


def _pause(learner: Learner, now: float, retry_after: float, sent_at: float | None) -> float:
    """`Learner.pause`, beside the class so that it stays short enough to read at once.

    Retry-After comes in whole seconds, rounded up; a fixed window whose resets are known
    says more exactly when the quota comes back, within that last second, and so may a
    sliding window's guessed length.
    """
    model = learner.model
    if model is learner._blind and sent_at is not None:
        return learner._blind_pause(now, retry_after, sent_at)
    if isinstance(model, CountedWindow) or (
        model is learner._rolling and not model.settled and learner.bounds is not None
    ):
        # A fixed window or not yet known otherwise: its first reset may be foreseen.
        back = pause_to_reset(learner.bounds, now, retry_after)  # type: ignore[arg-type]
        if model is learner._rolling and retry_after <= 1:
            # Within a second, it may be a bucket: its next unit is a moment away, and a
            # second's pause hands the other job a second's refill that it keeps.
            back = min(back, UNSETTLED_LOOK)
        return back
    if isinstance(model, FixedWindow) and (model.trusted or len(model.resets) >= 2):
        back = model.next_reset(now) + RESET_GUARD - now
        if retry_after - 1 - RESET_GUARD < back < retry_after:
            return back
    if model is learner._rolling and model.settled:
        return model.pause(now, retry_after, learner.quota)
    return retry_after


def _surely(
    quota: Quota, seq: int, handed_back: int, *, remaining: int, floor: int | None
) -> tuple[int, int | None]:
    """The quota surely handed back by count `seq`, and how far that count may be off (None:
    exact).

    A reset or a trickle is read only if even the order least favourable to it shows one. (A
    request answered before this one left reached the server first: this count is lower
    than its, unless quota came back between.)
    """
    # Alone, every other request was answered before this one left: the floor was the
    # server's last count, whichever permit gave it, and this one's is exact.
    noise = None if quota.went_alone(seq) else quota.reorder
    if floor is None:
        return min(handed_back, 0), noise
    since_floor = remaining - floor + 1
    return (since_floor if noise is None else min(handed_back, since_floor)), noise


def _learned(
    model: RateModel, rolling: Rolling, quota: Quota
) -> dict[str, tuple[str | float | int, str]]:
    """The limit is observed (the header said it); the kind and the window or refill rate are
    inferred from the counts, and only once the evidence picked a kind."""
    learned: dict[str, tuple[str | float | int, str]] = {}
    if quota.limit is not None:
        learned["limit"] = (quota.limit, "observed")
    if isinstance(model, FixedWindow):
        learned["kind"] = ("fixed window", "inferred")
        learned["window"] = (round(model.period, 3), "inferred")
    elif isinstance(model, CountedWindow):
        learned["kind"] = ("fixed window", "inferred")
        period, span = model.period(), model.bounds.period()
        # Bounds that cross (a reset numbered wrong, after whole windows went unseen) allow
        # no length at all: their middle is not a measurement, so none is reported.
        if period is not None and span is not None and span[0] <= span[1]:
            learned["window"] = (round(period, 3), "inferred")
    elif model is rolling and rolling.settled:
        echo = rolling.echo.window
        if echo is not None:
            learned["kind"] = ("sliding window", "inferred")
            learned["window"] = (round(echo, 3), "inferred")
        elif rolling.windowed:
            # Another client broke the echo, but the quota came back in lumps or after a
            # window-long Retry-After: a sliding window, whose length only a pause that ended
            # early on the guess, and was accepted, has shown.
            learned["kind"] = ("sliding window", "inferred")
            if rolling.slide.confirmed and rolling.slide.window is not None:
                learned["window"] = (rolling.slide.window, "inferred")
        elif rolling.echo.broken:
            learned["kind"] = ("token bucket", "inferred")
        # On a shared key each count's refill is net of the other client's spending: the
        # bucket's own is the highest measured, before or between the other's requests.
        refill = rolling.peak if quota.shared else rolling.refill
        if echo is None and "window" not in learned and refill:
            learned["refill"] = (round(refill, 3), "inferred")
    return learned
