"""The admission gate: the shared 429 pause, the pacer, the concurrency cap and `--max-rate`.

The gate decides when a request may leave; what the answers taught, and so how fast to go, is
the `Learner`'s (the quota and the rate model in use). aiolimiter is kept for what it is right
for: the fixed `--max-rate` ceiling, built burst-free.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random as _random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiolimiter import AsyncLimiter

from ._learner import Learner
from ._model import MAX_RATE
from ._reply import NO_REPLY, Reply

RETRY_AFTER_CAP = 60.0  # seconds; a longer Retry-After is more likely a server bug than a plan
# Seconds of jitter at most on a pause. Every worker of a process shares the pause anyway; the
# jitter only keeps two processes on one key from coming back in the same millisecond.
PAUSE_JITTER = 0.05
BLIND_IN_FLIGHT_SHARE = 0.02  # while blind, requests in flight per request accepted so far
BLIND_MIN_IN_FLIGHT = 4
MAX_NAP = 1.0  # seconds a request waits, outside a 429 pause, before the gate looks again


class GateClosed(Exception):
    """The gate was closed while a request waited for it: the pass is stopping."""


class Permit:
    """One admitted request. `learn` what its answer said, once; the gate does the rest."""

    __slots__ = ("_gate", "learned", "sent_at", "seq")

    def __init__(self, gate: Gate, seq: int, sent_at: float) -> None:
        self._gate = gate
        self.seq = seq
        self.sent_at = sent_at
        self.learned = False

    def learn(self, reply: Reply) -> float | None:
        """Learn from the answer; after a 429, the seconds this row waits before its retry."""
        if self.learned:
            raise RuntimeError("a permit learns from one answer only")
        self.learned = True
        return self._gate._learn(self, reply)


class _Closing:
    """The gate's close: once closed, nothing is admitted, and waits end at once."""

    _closed: asyncio.Event
    _freed: asyncio.Event
    _sleep: Callable[[float], Awaitable[None]]

    def close(self) -> None:
        """Admit nothing more: every request waiting, a 429's pause included, raises GateClosed.

        A stopping pass must not wait a minute's Retry-After out to send nothing.
        """
        self._closed.set()
        self._freed.set()

    async def closed_within(self, seconds: float) -> None:
        """Sleep `seconds`, or less if the gate closes meanwhile (a row's own wait to retry)."""
        if self._sleep is not asyncio.sleep:
            await self._sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closed.wait(), seconds)


def _check(max_rate: float | None, concurrency: int | None) -> None:
    if max_rate is not None and max_rate <= 0:
        raise ValueError("max_rate must be positive")
    if concurrency is not None and concurrency < 1:
        raise ValueError("concurrency must be at least 1")


class Gate(_Closing):
    """Admits requests for one API key: a shared 429 pause, an adaptive pacer, a concurrency cap.

    `async with gate.permit() as permit:` waits for its turn; inside, `permit.learn(reply)`
    hands over what the answer said. A permit left without an answer counts as a transport
    error (nothing learned but that the slot is free again).
    """

    def __init__(
        self,
        *,
        max_rate: float | None = None,
        concurrency: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
        on_pause: Callable[[float, float | None], None] | None = None,
        backlog: Callable[[], int | None] = lambda: None,
    ) -> None:
        _check(max_rate, concurrency)
        self._clock = clock
        self._sleep = sleep
        self._random = random
        self._on_pause = on_pause  # told (seconds, Retry-After) once per pause, as it begins
        self._backlog = backlog  # rows not yet done (None: not known yet), for the last window
        # A burst-free ceiling: capacity one, refilled every 1 / max_rate seconds.
        self._ceiling = AsyncLimiter(1, 1 / max_rate) if max_rate else None
        self._fixed_concurrency = concurrency
        self._turn = asyncio.Lock()
        self._freed = asyncio.Event()
        self._closed = asyncio.Event()  # set once: no request leaves any more
        self._latency: float | None = None
        # The longest a request went without an answer before it gave up (a timeout), while no
        # answer has come back yet: the latency is at least that.
        self._unanswered = 0.0
        self._pause_until = -math.inf
        self._look_from: float | None = None  # the first request from then goes alone
        self._throttled = 0
        self._first_sent: float | None = None
        self._last_accepted: float | None = None
        self._learner = Learner(min(max_rate, MAX_RATE) if max_rate else MAX_RATE)

    # --- admission ----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def permit(self) -> AsyncIterator[Permit]:
        """Admit one request; the block sends it and hands its answer to `permit.learn`."""
        permit = await self._acquire()
        try:
            yield permit
        finally:
            if not permit.learned:
                permit.learn(NO_REPLY)

    async def _acquire(self) -> Permit:
        """Wait for the shared pause, the pacer, the quota and a concurrency slot."""
        async with self._turn:
            while True:
                if self._closed.is_set():
                    raise GateClosed
                now = self._clock()
                wait = self._wait(now)
                if wait > 1e-6:  # less is float rounding of "now", which no clock can wait out
                    await self._nap(now, wait)
                    continue
                if self._learner.quota.in_flight >= self._cap(now):
                    self._freed.clear()
                    await self._freed.wait()  # close() sets it too
                    continue
                break
            if self._ceiling is not None:
                await self._ceiling.acquire()
            now = self._clock()
            if self._first_sent is None:
                self._first_sent = now
            return Permit(self, self._learner.sent(now), now)

    async def _nap(self, now: float, seconds: float) -> None:
        """Sleep `seconds`, or less if an answer comes first: it may change the picture.

        Outside a 429 pause, an answer can open a window or return quota, and a request that
        waited out a fixed RECHECK after it would waste that much of every window.
        """
        if now >= self._pause_until:
            # A model's hold is a forecast: look again at least this often, whatever it says.
            seconds = min(seconds, MAX_NAP)
        if self._sleep is not asyncio.sleep:
            await self._sleep(seconds)
            return
        asleep = not self.in_flight or not self._learner.wakes_on_answers
        # A pause, or a model paced by the clock alone, still wakes when the gate closes.
        event = self._closed if now < self._pause_until or asleep else self._freed
        if event is self._freed:
            event.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)

    @property
    def in_flight(self) -> int:
        return self._learner.quota.in_flight

    def _wait(self, now: float) -> float:
        """Seconds until a request may leave; zero or less means now."""
        if now < self._pause_until:
            return self._pause_until - now
        self._learner.quota.backlog = self._backlog()
        return self._learner.wait(now)

    def _cap(self, now: float) -> int:
        """Concurrency: rate × observed latency plus a small reserve, so a slow API keeps up."""
        return _cap(self, now)

    # --- answers ------------------------------------------------------------------------------

    def _learn(self, permit: Permit, reply: Reply) -> float | None:
        """Learn from one answer; on 429, pause everyone and return this row's retry delay."""
        now = self._clock()
        learner = self._learner
        learner.answered(permit.seq)
        self._freed.set()
        if self._look_from is not None and permit.sent_at >= self._look_from:
            self._look_from = None  # the look after the pause has its answer
        delay = None
        if reply.status is not None:
            sample = max(0.0, now - permit.sent_at)
            self._latency = sample if self._latency is None else 0.8 * self._latency + 0.2 * sample
            learner.latency = self._latency
            learner.heard_limit(reply.limit)
            if reply.status == 429:
                learner.bound_refusal(permit.sent_at, now, reply.retry_after)
                delay = self._pause(now, reply.retry_after, permit.sent_at)
                learner.refused(
                    permit.seq,
                    permit.sent_at,
                    now,
                    retry_after=reply.retry_after,
                    paused_until=self._pause_until,
                )
            else:
                self._last_accepted = now
                learner.accepted(permit.seq, permit.sent_at, now, reply.remaining)
        elif self._latency is None:
            self._unanswered = max(self._unanswered, now - permit.sent_at)
        learner.read_window(now)
        return delay

    def _pause(self, now: float, retry_after: float | None, sent_at: float) -> float:
        """Pause every worker for a 429's Retry-After, once per storm; the seconds left.

        The other 429s of a storm were in flight when the first came: they share its pause
        rather than each drawing a longer one. The throttled row is re-queued by the
        dispatcher, since a 429 was never executed.
        """
        self._throttled += 1
        if now < self._pause_until:
            return self._pause_until - now
        if retry_after is None:
            retry_after = min(RETRY_AFTER_CAP, 0.5 * 2 ** min(self._throttled, 8))
        delay = self._learner.pause(now, min(retry_after, RETRY_AFTER_CAP), sent_at)
        delay += self._random() * min(PAUSE_JITTER, 0.1 * delay)
        self._pause_until = now + delay
        self._look_from = self._pause_until
        if self._on_pause is not None:
            self._on_pause(delay, retry_after)
        return delay

    # --- reporting ----------------------------------------------------------------------------

    @property
    def requests(self) -> int:
        """Requests admitted so far: the run's one count of them."""
        return self._learner.quota.issued

    @property
    def throttled(self) -> int:
        """Answers that were 429: the run's one count of them."""
        return self._throttled

    @property
    def concurrency(self) -> int:
        """How many requests may be in flight now."""
        return self._cap(self._clock())

    def stats(self) -> dict[str, Any]:
        """What the gate measured and learned, for the report; only what it measured.

        `kind`, `limit`, `window` or `refill`, and `achieved_rate` (requests accepted per
        second, first request to last acceptance) appear only once known, and `sources` says of
        each whether it was observed (a header, our own clock) or inferred from the counts.
        """
        return _stats(self)

    def pause_left(self) -> float:
        """Seconds left of the shared 429 pause; zero when none is running."""
        return max(0.0, self._pause_until - self._clock())

    def seconds_for(self, rows: int) -> float | None:
        """Seconds to send `rows` more, the pause left included; None if it cannot tell yet."""
        return _seconds_for(self, rows, self._clock())


def _seconds_for(gate: Gate, rows: int, now: float) -> float | None:
    """`rows` at the rate the gate expects over the coming windows, plus the pause left.

    The rate is the learned limit per window, or the learned refill; within the `--max-rate`
    ceiling. Not the pacer's rate now, which may spend a window's quota at once (a bar's ETA
    from the recent throughput read 00:08 with two minutes to go). With nothing learned of how
    quota comes back it is the rate achieved so far, pauses included, but only while the rows
    fit in the quota a count said is left, while a 429's Retry-After says when quota returns,
    or while no count came at all (blind). Otherwise when the quota returns is all that
    matters, and it is not known yet. With another client on the key, no more than the rate
    achieved so far: the learned limit is both clients'.
    """
    learner, quota = gate._learner, gate._learner.quota
    learned = learner.learned()
    limit, window, refill = learned.get("limit"), learned.get("window"), learned.get("refill")
    first = gate._first_sent
    so_far = None
    if first is not None and quota.accepted > 1 and now > first:
        so_far = quota.accepted / (now - first)
    rate: float | None = None
    if limit is not None and window is not None and float(window[0]) > 0:
        rate = float(limit[0]) / float(window[0])
    elif refill is not None and float(refill[0]) > 0:
        rate = float(refill[0])
    elif quota.remaining is not None and rows > quota.left and now >= gate._pause_until:
        return None
    else:
        rate = so_far
    if rate is None:
        return None
    if quota.shared and so_far is not None:
        # Another client spends the same limit: what we get of it is what we have had.
        rate = min(rate, so_far)
    if gate._ceiling is not None:
        rate = min(rate, 1 / gate._ceiling.time_period)
    return rows / rate + max(0.0, gate._pause_until - now)


def _stats(gate: Gate) -> dict[str, Any]:
    """`Gate.stats`, beside the class so that it stays short enough to read at once."""
    stats: dict[str, Any] = {"requests": gate.requests, "throttled": gate._throttled}
    sources: dict[str, str] = {}
    for name, (value, source) in gate._learner.learned().items():
        stats[name], sources[name] = value, source
    first, last = gate._first_sent, gate._last_accepted
    accepted = gate._learner.quota.accepted
    if first is not None and last is not None and last > first and accepted > 1:
        stats["achieved_rate"] = round(accepted / (last - first), 3)
        sources["achieved_rate"] = "observed"
    if gate._latency is not None:
        stats["latency"] = round(gate._latency, 4)
        sources["latency"] = "observed"
    stats["sources"] = sources
    return stats


def _cap(gate: Gate, now: float) -> int:
    """`Gate._cap`: one after a 429's pause until its answer, else the user's or adaptive.

    After a pause the counts from before it are stale, and another client on the key may have
    spent what came back meanwhile: a dozen requests sent on that stale count were all refused.
    """
    if gate._look_from is not None and now >= gate._look_from:
        return 1
    if gate._fixed_concurrency is not None:
        return gate._fixed_concurrency
    return _adaptive_cap(gate, now)


def _adaptive_cap(gate: Gate, now: float) -> int:
    """`Gate._cap` unless the user fixed the concurrency."""
    latency = gate._latency
    if latency is None:
        if not gate._unanswered:
            return 1  # a cautious start: the first request goes alone, says what is left
        # Nothing has answered, and requests are giving up: the cap opens as if they had
        # answered that slowly, so a silent server's rows time out together, not one by one.
        latency = gate._unanswered
    rate = gate._learner.rate(now)
    cap = max(2, math.ceil(rate * latency * 1.5) + 2)
    if gate._learner.blind and gate._latency is not None:
        # With no count, the first 429 refuses everything in flight: a cap that grows with
        # the requests accepted keeps that storm to a small share of the run. (A server
        # that has never answered refuses nothing: its timeouts run side by side.)
        quota = gate._learner.quota
        share = math.ceil(BLIND_IN_FLIGHT_SHARE * quota.accepted)
        cap = min(cap, max(BLIND_MIN_IN_FLIGHT, share))
    return cap
