"""A fixed window: the whole quota comes back at once, every `period` seconds from `phase`.

In a fixed window the quota handed back is never positive except at a reset, where it jumps by
a large share of the limit. Resets seen sharply (the previous request went shortly before)
give the window's period and phase; one noticed only after a pause is late by the pause and is
not used to time windows. The rate spreads what is left until the predicted reset (prawcore's
remaining / seconds-to-reset).

A throttle can also reveal a fixed window while the gate is blind (`WindowReader`); the gate
then paces it as if it saw its resets, until a 429 says otherwise.
"""

from __future__ import annotations

import bisect
import math
from typing import NamedTuple

from ._model import RECHECK, Accounted, bounded
from ._quota import Quota

RESET_BRACKET = 0.1  # seconds; a reset seen no more sharply than this does not time windows
RETRY_SLACK = 0.1  # seconds a server's Retry-After may fall short of the true wait


def _first_window(at: float, after: float, started: float) -> tuple[float, float]:
    """Bounds on the first window's length, from the first reset seen in (after, at].

    The first window began at the key's first request (ours, or another client's just
    before), so the first reset brackets the window's length.
    """
    return (max(after - started, 0.0), max(at - started, 1e-3))


class FixedWindow(Accounted):
    """Pacing to the predicted reset, with the period and phase learned from resets."""

    __slots__ = ("first_reset", "period", "phase", "resets", "trusted")

    def __init__(
        self,
        max_rate: float,
        *,
        period: float,
        phase: float,
        resets: list[float],
        first_reset: tuple[float, float] | None,
        trusted: bool,
    ) -> None:
        super().__init__(max_rate)
        self.period = period
        self.phase = phase
        self.resets = resets  # send-time bounds of the resets seen sharply
        self.first_reset = first_reset  # the first window's bounds
        self.trusted = trusted  # read from a 429: predicted resets need no look

    @classmethod
    def seen(
        cls, max_rate: float, *, at: float, after: float, started: float, trusted: bool
    ) -> FixedWindow:
        """The window as its first reset shows it, before `reset` takes that reset in."""
        first_reset = _first_window(at, after, started)
        return cls(
            max_rate,
            period=first_reset[1],
            phase=at,
            resets=[],
            first_reset=first_reset,
            trusted=trusted,
        )

    def reset(self, at: float, *, after: float, started: float) -> bool:
        """Take in a reset that lies in (after, at], by send times; True if seen sharply.

        This request was counted after the reset and the previous one before it, so pacing
        to `at` errs on the safe side.
        """
        if self.first_reset is None:
            self.first_reset = _first_window(at, after, started)
        if at - after > RESET_BRACKET:
            # Seen late (we were paused or idle when it came): it cannot time the windows, and
            # learning from it would stretch the window by the idle time, again and again; a
            # stretched window once starved a run for a minute.
            if not self.resets:
                self.phase = at
            return False
        self.resets.append(at)
        first = self.resets[0]
        if len(self.resets) == 1:
            # A whole number of windows since the start, each no longer than the first
            # reset allows.
            span = max(at - started, 1e-3)
            self.period = span / max(1, math.ceil(span / self.first_reset[1] - 1e-6))
        else:
            # Each gap between sharply seen resets is a whole number of windows; the shortest
            # gap, or the window already known, is most likely one.
            gaps = [b - a for a, b in zip(self.resets, self.resets[1:], strict=False)]
            periods = max(1, round((at - first) / min(*gaps, self.period)))
            self.period = (at - first) / periods
        period = self.period
        # Every reset was seen late, never early, so the earliest phase is the truest.
        self.phase = min(r - round((r - first) / period) * period for r in self.resets)
        return True

    def last_reset(self, now: float) -> float:
        return self.phase + math.floor((now - self.phase) / self.period) * self.period

    def next_reset(self, now: float) -> float:
        return self.last_reset(now) + self.period

    def available(self, now: float, quota: Quota) -> float:
        left = quota.left
        reset = self.last_reset(now)
        if reset <= quota.observed_at:
            return left
        # A reset we predicted but have not seen yet.
        if len(self.resets) >= 2 or self.trusted:
            return (quota.window_quota or quota.known_limit) - quota.sent_since(reset)
        # The window is a first guess: one request checks whether the reset came.
        return 1 + quota.margin if quota.last_send < reset else left

    def pace(self, now: float, quota: Quota, available: float) -> float:
        left = max(self.next_reset(now) - now, 1e-3)
        rate = (available - quota.margin) / left
        rate = max(rate, (quota.window_quota or quota.limit or 1) / self.period)
        return bounded(rate, self.max_rate)

    def hold(self, now: float, quota: Quota) -> float:
        if self.may_probe(now, quota):
            return 0.0  # quota may have come back unseen; one request finds out
        return max(min(self.next_reset(now) - now, RECHECK), 1e-3)

    def window(self, quota: Quota) -> float | None:
        return self.period


class Reading(NamedTuple):
    """A fixed window read from a refusal: its period, a reset, and the refused permit."""

    period: float
    reset: float
    seq: int
    sent_at: float


class WindowReader:
    """Reads a fixed window from a blind 429, once every earlier request has answered.

    A refusal means the window held `limit` requests. With no other client they are our last
    `limit` accepted ones, so the window began after the one before them: when our sends are
    dense there, that brackets a reset sharply. Windows back to back from our first request
    then give the length, which Retry-After (the time to the next reset, rounded up) must
    confirm; a sliding window or a bucket answers the time until one slot frees, which
    contradicts it. A window read wrong (another client, a window that began before ours) is
    forgotten at the next 429, and no window is read again.
    """

    __slots__ = ("_failed", "_pending", "read_at")

    def __init__(self) -> None:
        self._pending: tuple[int, float, float] | None = None  # (seq, sent at, Retry-After)
        self._failed = False
        self.read_at: float | None = None  # when a window was read from a 429

    def refused(self, seq: int, sent_at: float, retry_after: float) -> None:
        """A blind 429 with a Retry-After: the first is read once the count behind it is final."""
        if self._pending is None:
            self._pending = (seq, sent_at, retry_after)

    def read(self, now: float, quota: Quota) -> Reading | None:
        """The window the pending refusal shows, if it is ready to read and a window fits."""
        if self._pending is None:
            return None
        seq, sent_at, retry_after = self._pending
        if any(earlier < seq for earlier in quota.outstanding):
            return None  # an earlier request may yet prove accepted: the count is not final
        self._pending = None
        limit, started, counted = quota.limit, quota.started, quota.counted
        if quota.remaining is not None or self._failed or not limit or started is None:
            return None
        n = bisect.bisect_left(counted, sent_at)
        if n <= limit:
            return None
        first, before = counted[n - limit], counted[n - limit - 1]
        if first - before > RESET_BRACKET or first <= started or retry_after < 2:
            # A Retry-After under two seconds also fits a bucket's next token or a sliding
            # window's next expiry, so it confirms nothing.
            return None
        period = _confirmed_period(first, before, started, sent_at, retry_after)
        if period is None:
            return None
        self.read_at = now
        return Reading(period, first, seq, sent_at)

    def forget(self) -> None:
        """The window read proved wrong: back to the blind mode for good."""
        self.read_at = None
        self._failed = True


def _confirmed_period(
    first: float, before: float, started: float, sent_at: float, retry_after: float
) -> float | None:
    """The longest window that Retry-After confirms, a whole number of them from `started`.

    The reset lies at `first` (our first send of the full window) and after `before` (our
    send before it); the refused request went at `sent_at`.
    """
    span = first - started
    for windows in range(1, 9):
        period = span / windows  # the reset at `first` ends a whole number of windows
        if period <= sent_at - first:
            return None  # too short to still hold the refused request: no longer ones follow
        to_reset = first + period - sent_at
        if retry_after - 1 - (first - before) < to_reset <= retry_after + RETRY_SLACK:
            return period
    return None
