"""The blind mode: no count from the server, so the rate is found by throttles, like botocore's.

With no headers until a 429, the gate works like botocore's adaptive mode: a slow start that
doubles every SLOW_START_DOUBLING seconds, and after a throttle a CUBIC curve around the rate
that was throttled. The first throttle also bounds the rate: everything accepted beyond one
limit's worth came back as refill, so the average since the start is an upper bound.
"""

from __future__ import annotations

from ._model import CUBIC_BETA, MIN_RATE, bounded
from ._quota import Quota

START_RATE = 4.0  # requests/s before the server has said anything
SLOW_START_DOUBLING = 0.4  # seconds per doubling while blind and never throttled
CUBIC_C = 0.4  # botocore's scaling constant


class Blind:
    """Slow start, then CUBIC around the last throttled rate; the rate model with no count."""

    __slots__ = ("_cubic_max", "_cubic_since", "_throttles", "max_rate")

    def __init__(self, max_rate: float) -> None:
        self.max_rate = max_rate
        self._cubic_max: float | None = None  # the rate throttled last; None: still starting
        self._cubic_since = 0.0  # when the curve set off (the end of that throttle's pause)
        self._throttles = 0

    def rate(self, now: float, quota: Quota) -> float:
        if self._cubic_max is None:
            start = quota.started if quota.started is not None else now
            rate = START_RATE * 2 ** ((now - start) / SLOW_START_DOUBLING)
        else:
            k = (self._cubic_max * (1 - CUBIC_BETA) / CUBIC_C) ** (1 / 3)
            rate = self._cubic_max + CUBIC_C * (now - self._cubic_since - k) ** 3
        return bounded(rate, self.max_rate)

    def wait(self, now: float, quota: Quota) -> float:
        return quota.last_send + 1 / self.rate(now, quota) - now

    def window(self, quota: Quota) -> float | None:
        return None

    def throttled(self, now: float, quota: Quota, *, paused_until: float) -> None:
        """A 429 came: the rate sent over the last second becomes the curve's new centre."""
        if now < self._cubic_since:
            return  # one throttle per pause: the others were already in flight
        measured = quota.sent_since(now - 1.0) or self.rate(now, quota)
        ceiling = measured
        started = quota.started
        if self._throttles == 0 and started is not None and now > started:
            # The first throttle: the average so far includes the quota the server started
            # with, so it bounds the sustainable rate from above; the rate at the throttle,
            # which overshot during the slow start, is far higher.
            ceiling = min(measured, quota.accepted / (now - started))
        self._throttles += 1
        self._cubic_max = max(ceiling, MIN_RATE)
        self._cubic_since = paused_until
