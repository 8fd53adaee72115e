"""The adaptive rate limiter: one `Gate` per API key, shared by every worker.

The API says little: `X-RateLimit-Limit` and `X-RateLimit-Remaining` (on every response, on 429s
only, or never) and `Retry-After` on 429. No reset header, no window length, no algorithm name,
and another client may be spending the same key. The gate learns the rest while it runs:

- **Local quota accounting.** A response's `Remaining` was true when the server counted that
  request. Every permit issued after it is discounted (it is in flight, or was counted after),
  and a response older than the newest one already seen is stale and ignored, so replies that
  arrive out of order never inflate the estimate.
- **Window detection.** The net quota handed back between two observations is
  `ΔRemaining + Δrequests`. In a fixed window it is never positive except at a reset, where it
  jumps by a large share of the limit; in a token bucket or sliding window it grows steadily.
  Resets seen sharply (the previous request went shortly before) give the window's period and
  phase; one noticed only after a pause is late by the pause and is not used to time windows.
- **A sliding window echoes our own requests.** Its quota comes back exactly one window after
  each request the server counted, so each observation bounds the window. While the bounds
  agree, the gate foresees every refill from its own send times rather than extrapolating a
  refill rate that arrives in bursts (which sent requests too soon, each costing a
  whole-second 429 pause). A token bucket refills whenever, so its bounds soon disagree.
- **A pacer whose rate changes at run time.** aiolimiter cannot change its drain rate once built
  (aiolimiter issue #98), and a fresh `AsyncLimiter` bursts its whole capacity, so the adaptive
  part is a next-send timestamp: each request leaves `1 / rate` after the previous one, and the
  rate is recomputed at every decision. In a fixed window the rate spreads what is left until the
  predicted reset (prawcore's remaining / seconds-to-reset); in a bucket or sliding window it is
  the observed refill plus a term that spends the surplus above a small reserve. aiolimiter is
  kept for what it is right for: the fixed `--max-rate` ceiling, built burst-free.
- **No headers until a 429.** Then the gate works blind, like botocore's adaptive mode: a slow
  start that doubles, and after a throttle a CUBIC curve around the rate that was throttled. The
  first throttle also bounds the rate: everything accepted beyond one limit's worth came back
  as refill. A throttle can also reveal a fixed window: the refused request found our last
  `limit` accepted ones in the window, so it began just before the first of them, and a
  Retry-After of two seconds or more must agree with windows back to back from our first
  request. Then the gate paces that window as if it saw its resets, and returns to the blind
  mode for good at the next 429.
- **A shared pause on 429.** `Retry-After` (seconds or an HTTP-date) is capped and jittered, and
  every worker waits for it; the throttled row is re-queued, since a 429 was never executed.
- **Concurrency** follows rate × observed latency plus a small reserve, so a slow API still gets
  its full rate, unless the user fixed it with `--concurrency`.
- **A cautious start.** One request goes alone and says how much quota there is.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import math
import random as _random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Protocol

from aiolimiter import AsyncLimiter

RETRY_AFTER_CAP = 60.0  # seconds; a longer Retry-After is more likely a server bug than a plan
START_RATE = 4.0  # requests/s before the server has said anything
MIN_RATE = 0.5
MAX_RATE = 1000.0
SLOW_START_DOUBLING = 0.4  # seconds per doubling while blind and never throttled
CUBIC_C = 0.4  # botocore's scaling constant
CUBIC_BETA = 0.7  # share of the throttled rate kept after a later throttle
SURPLUS_HORIZON = 0.5  # seconds over which quota above the reserve is spent
REFILL_SPAN = 0.5  # seconds of observations the refill rate is measured over
RECHECK = 0.05  # seconds between looks while holding for quota
PROBE_AFTER = 0.5  # seconds of silence after which one request may probe an empty quota
RESET_SHARE = 0.25  # a jump of this share of the limit at once is a window reset
RESET_BRACKET = 0.1  # seconds; a reset seen no more sharply than this does not time windows
ECHO_SLACK = 0.02  # seconds of send-to-count jitter allowed when matching refills to our sends
ECHO_MIN_WINDOW = 0.2  # seconds; a shorter "window" is a bucket's refill, not an echo
ECHO_MIN_SEEN = 3  # expired requests before an echo is trusted
ECHO_GUARD = 0.01  # seconds added to the learned window before counting a request as expired
RETRY_SLACK = 0.1  # seconds a server's Retry-After may fall short of the true wait


class _Echo:
    """Tests whether the quota handed back is our own requests expiring, one window later.

    In a sliding log, quota comes back exactly when a request we sent leaves the window, so the
    k-th unit handed back is the k-th request the server counted. Every observation therefore
    bounds the window: the k-th counted request has expired, the next has not. While the
    bounds stay consistent the window is known, and the gate can foresee every refill from its
    own send times instead of extrapolating a refill rate that arrives in bursts. A token
    bucket refills regardless of when we sent, so its bounds soon cross and the test fails for
    good; so does a second client whose spending is not steady.
    """

    __slots__ = ("broken", "counted", "expired", "high", "low")

    def __init__(self) -> None:
        self.counted: list[float] = []  # send times of the requests the server counted
        self.expired = 0
        self.low = 0.0
        self.high = math.inf
        self.broken = False

    def count(self, sent_at: float) -> None:
        bisect.insort(self.counted, sent_at)

    def observe(self, sent_at: float, handed_back: int) -> None:
        if self.broken:
            return
        self.expired += handed_back
        k, counted = self.expired, self.counted
        if k < 0 or k > len(counted):
            self.broken = True
            return
        if k >= 1:
            self.high = min(self.high, sent_at - counted[k - 1] + ECHO_SLACK)
        if k < len(counted):
            self.low = max(self.low, sent_at - counted[k] - ECHO_SLACK)
        if self.low > self.high:
            self.broken = True

    @property
    def window(self) -> float | None:
        """The window, erring long, once the echo is established; None otherwise."""
        if self.broken or self.expired < ECHO_MIN_SEEN or self.high < ECHO_MIN_WINDOW:
            return None
        return self.high + ECHO_GUARD

    def returning(self, since: float, until: float) -> int:
        """Our requests that leave the window between two instants, by their send times."""
        window = self.window
        assert window is not None
        lo = bisect.bisect_right(self.counted, since - max(0.0, self.low - ECHO_GUARD))
        hi = bisect.bisect_right(self.counted, until - window)
        return max(0, hi - lo)

    def next_return(self, now: float) -> float | None:
        """When the next of our counted requests leaves the window, after `now`."""
        window = self.window
        assert window is not None
        index = bisect.bisect_right(self.counted, now - window)
        return self.counted[index] + window if index < len(self.counted) else None


class Reply(Protocol):
    """What the gate learns from one answer; dispatch's `Decision` is one."""

    @property
    def status(self) -> int | None: ...  # None: no answer came (a transport error)

    @property
    def limit(self) -> int | None: ...  # X-RateLimit-Limit

    @property
    def remaining(self) -> int | None: ...  # X-RateLimit-Remaining

    @property
    def retry_after(self) -> float | None: ...  # seconds, already parsed


@dataclass(frozen=True, slots=True)
class NoReply:
    """The answer of a request that got none (a transport error, or it never left)."""

    status: None = None
    limit: None = None
    remaining: None = None
    retry_after: None = None


NO_REPLY = NoReply()


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


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from `now` (wall clock), given `Retry-After` as seconds or an HTTP-date."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        return max(0.0, when.timestamp() - now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def rate_headers(headers: Mapping[str, str]) -> tuple[int | None, int | None]:
    """`X-RateLimit-Limit` and `X-RateLimit-Remaining`, or None where absent or unreadable."""
    return _header_int(headers, "X-RateLimit-Limit"), _header_int(headers, "X-RateLimit-Remaining")


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(float(value.strip()))
    except ValueError:
        return None


class Gate:
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
    ) -> None:
        if max_rate is not None and max_rate <= 0:
            raise ValueError("max_rate must be positive")
        if concurrency is not None and concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._clock = clock
        self._sleep = sleep
        self._random = random
        self._max_rate = min(max_rate, MAX_RATE) if max_rate else MAX_RATE
        # A burst-free ceiling: capacity one, refilled every 1 / max_rate seconds.
        self._ceiling = AsyncLimiter(1, 1 / max_rate) if max_rate else None
        self._fixed_concurrency = concurrency
        self._turn = asyncio.Lock()
        self._freed = asyncio.Event()

        self._issued = 0
        self._in_flight = 0
        self._last_send = -math.inf
        self._started: float | None = None
        self._sends: deque[float] = deque()  # send times of the last second, for the blind mode
        self._latency: float | None = None
        self._pause_until = -math.inf
        self._requests = 0
        self._throttled = 0
        self._accepted = 0
        self._blind_throttles = 0

        # What the headers taught.
        self._limit: int | None = None
        self._remaining: int | None = None  # as of the newest observation
        self._newest_seq = -1
        self._observed_at = 0.0
        self._history: deque[tuple[float, int, int]] = deque()  # (received, seq, remaining)
        self._refill: float | None = None
        self._kind = "unknown"
        self._resets: list[float] = []  # send-time bounds of the resets seen sharply
        self._first_reset: tuple[float, float] | None = None  # the first window's bounds
        self._phase = 0.0
        self._window: float | None = None
        self._window_quota: int | None = None
        self._growth = 0  # quota handed back since the last reset, outside resets
        self._margin = 1  # requests of quota held back against other clients' spending
        self._echo = _Echo()
        self._observed_sent = 0.0  # send time of the newest observation
        self._uncounted: set[int] = set()  # recent permits the server did not count (429s)

        # The blind mode's CUBIC state.
        self._cubic_max: float | None = None
        self._cubic_since = 0.0

        # A fixed window read from blind 429s (see `_infer_fixed`).
        self._outstanding: set[int] = set()  # permits not yet released
        self._pending_429: tuple[Permit, float] | None = None  # (permit, its Retry-After)
        self._inferred_at: float | None = None  # when a window was read from a 429
        self._inference_failed = False

    # --- admission ------------------------------------------------------------------------

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
                now = self._clock()
                wait = self._wait(now)
                if wait > 0:
                    await self._sleep(wait)
                    continue
                if self._in_flight >= self._cap(now):
                    self._freed.clear()
                    await self._freed.wait()
                    continue
                break
            if self._ceiling is not None:
                await self._ceiling.acquire()
            now = self._clock()
            permit = Permit(self, self._issued, now)
            self._issued += 1
            self._in_flight += 1
            self._outstanding.add(permit.seq)
            self._requests += 1
            self._last_send = now
            if self._started is None:
                self._started = now
            self._sends.append(now)
            while self._sends and self._sends[0] < now - max(1.0, self._window or 0.0):
                self._sends.popleft()
            return permit

    def _wait(self, now: float) -> float:
        """Seconds until a request may leave; zero or less means now."""
        if now < self._pause_until:
            return self._pause_until - now
        if self._remaining is None or self._limit is None:
            return self._last_send + 1 / self._blind_rate(now) - now
        available = self._available(now)
        if available < 1 + self._margin:
            if self._in_flight == 0 and available >= 1:
                return 0.0  # spend the margin rather than stall with nothing in flight
            window = self._echo_window()
            if window is not None:
                # Our own requests say when quota comes back, so no need to probe for it,
                # unless a whole window passed in silence: then the picture is wrong
                # (a lost response, another client), and only a request can correct it.
                silent = now - self._last_send
                if self._in_flight == 0 and silent >= max(PROBE_AFTER, window):
                    return 0.0
                back = self._echo.next_return(now)
                stale = self._last_send + max(PROBE_AFTER, window)
                return max(min(back if back is not None else stale, stale) - now, 1e-3)
            if self._in_flight == 0 and now - self._last_send >= PROBE_AFTER:
                return 0.0  # quota may have come back unseen; one request finds out
            if self._kind == "fixed" and self._window is not None:
                return max(min(self._next_reset(now) - now, RECHECK), 1e-3)
            return RECHECK
        return self._last_send + 1 / self._quota_rate(now, available) - now

    def _cap(self, now: float) -> int:
        if self._fixed_concurrency is not None:
            return self._fixed_concurrency
        if self._latency is None:
            return 1  # the first request goes alone
        rate = self._current_rate(now)
        return max(2, math.ceil(rate * self._latency * 1.5) + 2)

    # --- what the server said -------------------------------------------------------------

    def _learn(self, permit: Permit, reply: Reply) -> float | None:
        """Learn from one answer; on 429, pause everyone and return this row's retry delay."""
        status = reply.status
        now = self._clock()
        self._in_flight = max(0, self._in_flight - 1)
        self._outstanding.discard(permit.seq)
        self._freed.set()
        if status is None:
            self._infer_fixed(now)
            return None
        sample = max(0.0, now - permit.sent_at)
        self._latency = sample if self._latency is None else 0.8 * self._latency + 0.2 * sample
        limit, remaining = reply.limit, reply.remaining
        if limit is not None and limit > 0:
            if self._limit is not None and limit != self._limit:
                self._limit_changed(limit)
            self._limit = limit
        if status == 429:
            self._uncounted.add(permit.seq)
            delay = self._throttle(permit, now, reply.retry_after)
            self._infer_fixed(now)
            return delay
        self._accepted += 1
        self._echo.count(permit.sent_at)
        if remaining is not None and self._limit is not None:
            self._observe(permit, now, max(0, remaining))
        self._infer_fixed(now)
        return None

    def _limit_changed(self, limit: int) -> None:
        # Old refill measurements describe the old limit. A fixed window keeps its timing
        # (a new limit is not a new clock); anything else is learned afresh.
        self._history.clear()
        self._refill = None
        self._window_quota = None
        self._growth = 0
        self._echo = _Echo()
        if self._kind != "fixed":
            self._resets.clear()
            self._first_reset = None
            self._window = None
            self._kind = "unknown"

    def _counted_since_newest(self, seq: int) -> int:
        """Permits after the newest observation, up to `seq`, that the server counted."""
        skipped = sum(1 for u in self._uncounted if self._newest_seq < u <= seq)
        self._uncounted = {u for u in self._uncounted if u > seq}
        return seq - self._newest_seq - skipped

    def _observe(self, permit: Permit, now: float, remaining: int) -> None:
        if permit.seq <= self._newest_seq:
            return  # older than what we already know: its count is stale
        assert self._limit is not None
        if self._remaining is not None:
            handed_back = remaining - self._remaining + self._counted_since_newest(permit.seq)
            self._echo.observe(permit.sent_at, handed_back)
            if handed_back >= max(3, RESET_SHARE * self._limit) and self._kind != "rolling":
                self._on_reset(permit.sent_at, remaining, after=self._observed_sent)
            elif handed_back > 0:
                self._growth += handed_back
                if self._growth > 2 + 0.02 * self._limit and self._kind != "rolling":
                    # Quota that trickles back is a bucket or a sliding window, whatever
                    # jumps were seen before (a sliding window replays a burst as a jump).
                    self._kind = "rolling"
                    self._resets.clear()
                    self._first_reset = None
                    self._window = None
        elif self._kind == "unknown":
            self._window_quota = remaining + 1
        self._remaining = remaining
        self._newest_seq = permit.seq
        self._observed_at = now
        self._observed_sent = permit.sent_at
        self._history.append((now, permit.seq, remaining))
        while len(self._history) > 2 and self._history[1][0] <= now - REFILL_SPAN:
            self._history.popleft()
        first = self._history[0]
        if now - first[0] >= REFILL_SPAN / 2:
            self._refill = max(
                0.0, (remaining - first[2] + permit.seq - first[1]) / (now - first[0])
            )

    def _on_reset(self, at: float, remaining: int, *, after: float) -> None:
        # In send-time terms this request was counted after the reset and the previous one
        # before it, so the reset lies in (after, at]: pacing to `at` errs on the safe side.
        self._kind = "fixed"
        started = self._started if self._started is not None else after
        if self._first_reset is None:
            # The first window began at the key's first request (ours, or another client's
            # just before), so the first reset brackets the window's length.
            self._first_reset = (max(after - started, 0.0), max(at - started, 1e-3))
        if at - after > RESET_BRACKET:
            # Seen late (we were paused or idle when it came): it cannot time the windows, and
            # learning from it would stretch the window by the idle time, again and again; a
            # stretched window once starved a run for a minute.
            if not self._resets:
                self._window = self._window or self._first_reset[1]
                self._phase = at
            return
        self._resets.append(at)
        first = self._resets[0]
        if len(self._resets) == 1:
            # A whole number of windows since the start, each no longer than the first
            # reset allows.
            span = max(at - started, 1e-3)
            self._window = span / max(1, math.ceil(span / self._first_reset[1] - 1e-6))
        else:
            # Each gap between sharply seen resets is a whole number of windows; the shortest
            # gap, or the window already known, is most likely one.
            gaps = [b - a for a, b in zip(self._resets, self._resets[1:], strict=False)]
            periods = max(1, round((at - first) / min(*gaps, self._window or math.inf)))
            self._window = (at - first) / periods
        window = self._window
        # Every reset was seen late, never early, so the earliest phase is the truest.
        self._phase = min(r - round((r - first) / window) * window for r in self._resets)
        self._window_quota = remaining + 1
        self._growth = 0
        self._history.clear()

    def _throttle(self, permit: Permit, now: float, retry_after: float | None) -> float:
        self._throttled += 1
        if retry_after is None:
            retry_after = min(RETRY_AFTER_CAP, 0.5 * 2 ** min(self._throttled, 8))
        elif self._remaining is None and self._pending_429 is None:
            self._pending_429 = (permit, retry_after)
        delay = min(retry_after, RETRY_AFTER_CAP)
        delay += self._random() * max(0.05, 0.1 * delay)
        self._pause_until = max(self._pause_until, now + delay)
        if self._inferred_at is not None:
            if permit.sent_at <= self._inferred_at:
                return self._pause_until - now  # sent before the window was read: no news
            # The window read from a 429 was wrong (another client, a window that began
            # before ours): back to the blind mode for good, which adapts to anything.
            self._forget_inferred_window()
        if self._remaining is not None:
            # Our picture of the quota was wrong, most likely another client: keep more back.
            if self._limit:
                self._margin = min(self._margin + 1, max(1, self._limit // 10))
            if permit.seq > self._newest_seq:
                # A refusal says the quota was empty when it arrived: an observation too.
                handed_back = self._counted_since_newest(permit.seq) - self._remaining
                self._echo.observe(permit.sent_at, handed_back)
                self._remaining = 0
                self._newest_seq = permit.seq
                self._observed_at = now
                self._observed_sent = permit.sent_at
            self._refill = (self._refill or 0.0) * CUBIC_BETA
        else:
            self._blind_throttle(now)
        return self._pause_until - now

    def _infer_fixed(self, now: float) -> None:
        """Read a fixed window from a blind 429, once every earlier request has answered.

        A refusal means the window held `limit` requests. With no other client they are our
        last `limit` accepted ones, so the window began after the one before them: when our
        sends are dense there, that brackets a reset sharply. Windows back to back from our
        first request then give the length, which Retry-After (the time to the next reset,
        rounded up) must confirm; a sliding window or a bucket answers the time until one
        slot frees, which contradicts it. A confirmed window is paced like one whose resets
        were seen, without a 429 per window.
        """
        if self._pending_429 is None:
            return
        permit, retry_after = self._pending_429
        if any(seq < permit.seq for seq in self._outstanding):
            return  # an earlier request may yet prove accepted: the count is not final
        self._pending_429 = None
        limit, started = self._limit, self._started
        if self._remaining is not None or self._inference_failed or not limit or started is None:
            return
        counted = self._echo.counted
        n = bisect.bisect_left(counted, permit.sent_at)
        if n <= limit:
            return
        first, before = counted[n - limit], counted[n - limit - 1]
        if first - before > RESET_BRACKET or first <= started or retry_after < 2:
            # A Retry-After under two seconds also fits a bucket's next token or a sliding
            # window's next expiry, so it confirms nothing.
            return
        span = first - started
        for windows in range(1, 9):
            window = span / windows  # the reset at `first` ends a whole number of windows
            if window <= permit.sent_at - first:
                return  # too short to still hold the refused request: no longer ones follow
            to_reset = first + window - permit.sent_at
            if retry_after - 1 - (first - before) < to_reset <= retry_after + RETRY_SLACK:
                break
        else:
            return
        self._kind = "fixed"
        self._window = window
        self._phase = first
        self._resets = [first]
        self._window_quota = limit
        self._growth = 0
        self._remaining = 0
        self._newest_seq = permit.seq
        self._observed_at = now
        self._observed_sent = permit.sent_at
        self._inferred_at = now

    def _forget_inferred_window(self) -> None:
        self._inferred_at = None
        self._inference_failed = True
        self._remaining = None
        self._kind = "unknown"
        self._window = None
        self._resets.clear()
        self._window_quota = None

    # --- rates --------------------------------------------------------------------------------

    def _available(self, now: float) -> float:
        """Requests the server should still accept now, by our own accounting."""
        assert self._remaining is not None and self._limit is not None
        unseen = self._issued - 1 - self._newest_seq
        base = self._remaining - unseen
        if self._kind == "fixed" and self._window is not None:
            reset = self._last_reset(now)
            if reset <= self._observed_at:
                return base
            # A reset we predicted but have not seen yet.
            if len(self._resets) >= 2 or self._inferred_at is not None:
                quota = self._window_quota or self._limit
                return quota - sum(1 for t in self._sends if t >= reset)
            # The window is a first guess: one request checks whether the reset came.
            return 1 + self._margin if self._last_send < reset else base
        if self._echo_window() is not None:
            return min(self._limit, base + self._echo.returning(self._observed_sent, now))
        refill = self._refill or 0.0
        return min(self._limit, base + refill * (now - self._observed_at))

    def _echo_window(self) -> float | None:
        return self._echo.window if self._kind != "fixed" else None

    def _quota_rate(self, now: float, available: float) -> float:
        if self._kind == "fixed" and self._window is not None:
            left = max(self._next_reset(now) - now, 1e-3)
            rate = (available - self._margin) / left
            quota = self._window_quota or self._limit or 1
            rate = max(rate, quota / self._window)
        else:
            window = self._echo_window()
            refill = self._limit / window if window and self._limit else self._refill or 0.0
            rate = refill + (available - self._margin) / SURPLUS_HORIZON
        return min(max(rate, MIN_RATE), self._max_rate)

    def _last_reset(self, now: float) -> float:
        assert self._window is not None
        return self._phase + math.floor((now - self._phase) / self._window) * self._window

    def _next_reset(self, now: float) -> float:
        assert self._window is not None
        return self._last_reset(now) + self._window

    def _blind_rate(self, now: float) -> float:
        if self._cubic_max is None:
            start = self._started if self._started is not None else now
            rate = START_RATE * 2 ** ((now - start) / SLOW_START_DOUBLING)
        else:
            k = (self._cubic_max * (1 - CUBIC_BETA) / CUBIC_C) ** (1 / 3)
            rate = self._cubic_max + CUBIC_C * (now - self._cubic_since - k) ** 3
        return min(max(rate, MIN_RATE), self._max_rate)

    def _blind_throttle(self, now: float) -> None:
        if now < self._cubic_since:
            return  # one throttle per pause: the others were already in flight
        measured = sum(1 for t in self._sends if t >= now - 1.0) or self._blind_rate(now)
        ceiling = measured
        if self._blind_throttles == 0 and self._started is not None and now > self._started:
            # The first throttle: the average so far includes the quota the server started
            # with, so it bounds the sustainable rate from above; the rate at the throttle,
            # which overshot during the slow start, is far higher.
            ceiling = min(measured, self._accepted / (now - self._started))
        self._blind_throttles += 1
        self._cubic_max = max(ceiling, MIN_RATE)
        self._cubic_since = self._pause_until

    def _current_rate(self, now: float) -> float:
        if self._remaining is None or self._limit is None:
            return self._blind_rate(now)
        return self._quota_rate(now, max(self._available(now), self._margin + 1))

    # --- reporting ----------------------------------------------------------------------------

    @property
    def requests(self) -> int:
        """Requests admitted so far: the run's one count of them."""
        return self._requests

    @property
    def throttled(self) -> int:
        """Answers that were 429: the run's one count of them."""
        return self._throttled

    def stats(self) -> dict[str, float | int | None]:
        """Requests, 429s, the current rate, the learned limit and window, and concurrency."""
        now = self._clock()
        window: float | None = self._window or self._echo_window()
        if window is None and self._limit and self._refill:
            window = self._limit / self._refill
        return {
            "requests": self._requests,
            "throttled": self._throttled,
            "rate": round(self._current_rate(now), 3),
            "limit": self._limit,
            "window": round(window, 3) if window is not None else None,
            "refill": round(self._refill, 3) if self._refill is not None else None,
            "concurrency": self._cap(now),
            "latency": round(self._latency, 4) if self._latency is not None else None,
        }
