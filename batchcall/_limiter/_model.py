"""What every rate model shares: the `RateModel` protocol, the rate bounds, and quota pacing.

A model explains the key's limit as one kind of algorithm (none known yet, a fixed window, a
bucket or sliding window) and says, from the `Quota`, how long the next request must wait and
what rate the pacer runs at. The rate is recomputed at every decision, so it may change at run
time: a next-send timestamp `1 / rate` after the previous request, which aiolimiter cannot give
(it cannot change its drain rate once built, aiolimiter issue #98).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol

from ._quota import Quota

MIN_RATE = 0.5
MAX_RATE = 1000.0
CUBIC_BETA = 0.7  # share of the throttled rate kept after a later throttle
RECHECK = 0.05  # seconds between looks while holding for quota
PROBE_AFTER = 0.5  # seconds of silence after which one request may probe an empty quota


class RateModel(Protocol):
    """One kind of rate limit, as far as it has been learned; the gate paces by the one in use."""

    def wait(self, now: float, quota: Quota) -> float:
        """Seconds until the next request may leave; zero or less means now."""
        ...

    def rate(self, now: float, quota: Quota) -> float:
        """Requests per second the pacer runs at now (the concurrency cap follows it)."""
        ...

    def window(self, quota: Quota) -> float | None:
        """The window's length as this model knows it, for the report; None if it knows none."""
        ...


def bounded(rate: float, max_rate: float) -> float:
    """`rate` within MIN_RATE and the user's ceiling."""
    return min(max(rate, MIN_RATE), max_rate)


class Accounted(ABC):
    """Pacing from the quota the headers report: spend what is left, and hold when it runs out.

    A model says how much the server should still accept (`available`), how fast to spend it
    (`pace`) and how long to hold once only the margin is left (`hold`).
    """

    __slots__ = ("max_rate",)

    def __init__(self, max_rate: float) -> None:
        self.max_rate = max_rate

    @abstractmethod
    def available(self, now: float, quota: Quota) -> float:
        """Requests the server should still accept now, by our own accounting."""

    @abstractmethod
    def pace(self, now: float, quota: Quota, available: float) -> float:
        """The rate that spends `available` as this kind of limit gives quota back."""

    @abstractmethod
    def hold(self, now: float, quota: Quota) -> float:
        """Seconds to wait with only the margin left; zero sends one request to look."""

    def wait(self, now: float, quota: Quota) -> float:
        available = self.available(now, quota)
        if self.keeps_share(quota) and quota.in_flight >= available:
            return RECHECK
        if available < 1 + quota.margin:
            if quota.in_flight == 0 and available >= 1:
                return 0.0  # spend the margin rather than stall with nothing in flight
            return self.hold(now, quota)
        return quota.last_send + 1 / self.pace(now, quota, available) - now

    def rate(self, now: float, quota: Quota) -> float:
        return self.pace(now, quota, max(self.available(now, quota), quota.margin + 1))

    def keeps_share(self, quota: Quota) -> bool:
        """Whether to keep in flight no more than our own count says is left.

        With another client on the key, its requests in flight are not in our count: keeping
        ours to what would be left if it sent as many is the share of two clients bursting
        at once, and spares both the 429s of quota spent twice.
        """
        return quota.shared and quota.in_flight > 0

    @staticmethod
    def may_probe(now: float, quota: Quota) -> bool:
        """Quota may have come back unseen: after a silence with nothing in flight, look."""
        return quota.in_flight == 0 and now - quota.last_send >= PROBE_AFTER
