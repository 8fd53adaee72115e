"""The sandbox's rate limits, as pure classes driven by an explicit clock reading.

Three algorithms share one small interface (`try_acquire`, `remaining`, `retry_after`,
`set_limit`); `Quota` wraps one of them with the two behaviours a real gateway shows a client
that it cannot see directly: another client spending the same key, and a limit that changes.
Requests refused with 429 spend nothing, so a 429 is never counted as a request made.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Protocol


class Algorithm(Protocol):
    limit: int

    def try_acquire(self, now: float) -> bool: ...
    def remaining(self, now: float) -> int: ...
    def retry_after(self, now: float) -> float: ...
    def set_limit(self, limit: int, now: float) -> None: ...


class FixedWindow:
    """`limit` requests per window; windows are back to back from the first request."""

    __slots__ = ("_count", "_index", "_start", "limit", "window")

    def __init__(self, *, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._start: float | None = None
        self._index = 0
        self._count = 0

    def _roll(self, now: float) -> None:
        if self._start is None:
            self._start = now
        index = int((now - self._start) // self.window)
        if index != self._index:
            self._index = index
            self._count = 0

    def try_acquire(self, now: float) -> bool:
        self._roll(now)
        if self._count >= self.limit:
            return False
        self._count += 1
        return True

    def remaining(self, now: float) -> int:
        self._roll(now)
        return max(0, self.limit - self._count)

    def retry_after(self, now: float) -> float:
        self._roll(now)
        if self._count < self.limit:
            return 0.0
        assert self._start is not None
        return self._start + (self._index + 1) * self.window - now

    def set_limit(self, limit: int, now: float) -> None:
        self._roll(now)
        self.limit = limit


class SlidingWindow:
    """At most `limit` requests in any `window` seconds (a sliding log)."""

    __slots__ = ("_log", "limit", "window")

    def __init__(self, *, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._log: deque[float] = deque()

    def _expire(self, now: float) -> None:
        while self._log and self._log[0] <= now - self.window:
            self._log.popleft()

    def try_acquire(self, now: float) -> bool:
        self._expire(now)
        if len(self._log) >= self.limit:
            return False
        self._log.append(now)
        return True

    def remaining(self, now: float) -> int:
        self._expire(now)
        return max(0, self.limit - len(self._log))

    def retry_after(self, now: float) -> float:
        self._expire(now)
        excess = len(self._log) - self.limit
        if excess < 0:
            return 0.0
        # The request that must expire before one more fits.
        return self._log[excess] + self.window - now

    def set_limit(self, limit: int, now: float) -> None:
        self._expire(now)
        self.limit = limit


class TokenBucket:
    """A bucket of `limit` tokens, refilled at `limit / window` per second; it starts full."""

    __slots__ = ("_last", "_tokens", "limit", "window")

    def __init__(self, *, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._tokens = float(limit)
        self._last: float | None = None

    def _refill(self, now: float) -> None:
        if self._last is not None and now > self._last:
            rate = self.limit / self.window
            self._tokens = min(float(self.limit), self._tokens + (now - self._last) * rate)
        if self._last is None or now > self._last:
            self._last = now

    def try_acquire(self, now: float) -> bool:
        self._refill(now)
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def remaining(self, now: float) -> int:
        self._refill(now)
        return int(self._tokens)

    def retry_after(self, now: float) -> float:
        self._refill(now)
        if self._tokens >= 1.0:
            return 0.0
        return (1.0 - self._tokens) * self.window / self.limit

    def set_limit(self, limit: int, now: float) -> None:
        self._refill(now)
        self.limit = limit
        self._tokens = min(self._tokens, float(limit))


ALGORITHMS: dict[str, type[FixedWindow] | type[SlidingWindow] | type[TokenBucket]] = {
    "fixed": FixedWindow,
    "sliding": SlidingWindow,
    "token_bucket": TokenBucket,
}


@dataclass(frozen=True, slots=True)
class Decision:
    """What the gateway decided for one request, and what its headers say."""

    allowed: bool
    limit: int
    remaining: int
    retry_after: float  # seconds until a request could pass; 0 when allowed


class Quota:
    """One API key's quota: an algorithm, another client's spending and a scheduled limit change.

    Time starts at the first request. The other client sends evenly spaced requests at
    `share * limit / window` per second, without HTTP; they are replayed, in time order, before
    each real request is decided, so they compete for the same capacity. A refused one is
    retried (ahead of our request, since it has waited longer) as soon as capacity returns, so
    a greedy client cannot take the other's share by starving it; the backlog is capped at one
    limit, as a real client would give up on older work.
    """

    __slots__ = (
        "_algorithm",
        "_backlog",
        "_change_at",
        "_changed",
        "_next_other",
        "_start",
        "limit_after",
        "other_allowed",
        "other_refused",
        "share",
        "window",
    )

    def __init__(
        self,
        *,
        kind: str,
        limit: int,
        window: float,
        other_client_share: float = 0.0,
        limit_change_at: float | None = None,
        limit_after: int | None = None,
    ) -> None:
        self._algorithm: Algorithm = ALGORITHMS[kind](limit=limit, window=window)
        self.window = window
        self.share = other_client_share
        self._change_at = limit_change_at
        self.limit_after = limit_after
        self._changed = False
        self._start: float | None = None
        self._next_other: float | None = None
        self._backlog = 0
        self.other_allowed = 0
        self.other_refused = 0

    @property
    def limit(self) -> int:
        return self._algorithm.limit

    def _other_period(self) -> float:
        return self.window / (self.share * self._algorithm.limit)

    def _change_due(self, at: float) -> None:
        if self._changed or self._change_at is None or self._start is None:
            return
        when = self._start + self._change_at
        if at >= when:
            assert self.limit_after is not None
            self._algorithm.set_limit(self.limit_after, when)
            self._changed = True

    def _advance(self, now: float) -> None:
        if self._start is None:
            self._start = now
            if self.share > 0:
                self._next_other = now + self._other_period() / 2
        if self._next_other is not None:
            period = self._other_period()
            # After a long idle spell only the last window matters to any of the algorithms,
            # so the other client's older requests are skipped rather than replayed one by one.
            behind = now - self.window - self._next_other
            if behind > 0:
                self._next_other += math.ceil(behind / period) * period
            while self._next_other <= now:
                self._change_due(self._next_other)
                self._backlog = min(self._backlog + 1, self._algorithm.limit)
                self._drain_other(self._next_other)
                self._next_other += self._other_period()
        self._change_due(now)
        self._drain_other(now)

    def _drain_other(self, at: float) -> None:
        while self._backlog:
            if not self._algorithm.try_acquire(at):
                self.other_refused += 1
                return
            self._backlog -= 1
            self.other_allowed += 1

    def decide(self, now: float) -> Decision:
        """Spend one request if the quota allows it, and say what the headers should carry."""
        self._advance(now)
        algorithm = self._algorithm
        if algorithm.try_acquire(now):
            return Decision(True, algorithm.limit, algorithm.remaining(now), 0.0)
        return Decision(False, algorithm.limit, 0, max(algorithm.retry_after(now), 0.0))
