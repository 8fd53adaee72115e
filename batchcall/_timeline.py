"""What the requests of a run did over time, at a bounded cost: the data behind the report's
"Sending" section.

Each attempt adds one to a time bin (by its send time, wall clock) under its answer's class
(2xx, 429, other 4xx, 5xx, no answer), and its latency to a log-scale histogram. Bins start a
second wide and double in width whenever there would be more than `MAX_BINS`, so a run of any
length keeps at most `MAX_BINS` bins; the histogram has a fixed number of buckets. The whole
timeline is stored in the journal's meta (`timeline`) at the end of each pass, and a later
pass (`resume`, `retry`) adds to it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

MAX_BINS = 1024
CLASSES = ("ok", "throttled", "rejected", "server_error", "no_answer")
# Latency buckets: 0.1 ms times 1.25^k, so p50 and p95 are within 12% of the truth.
_LATENCY_BASE = 1e-4
_LATENCY_STEP = math.log(1.25)
_LATENCY_BUCKETS = 80


def answer_class(status: int | None) -> int:
    """The index in CLASSES of an answer's HTTP status (None: no answer at all)."""
    if status is None:
        return 4
    if status == 429:
        return 1
    if status < 400:
        return 0
    return 3 if status >= 500 else 2


class Timeline:
    """Attempts by send time and answer class, and their latencies."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.width = 1  # seconds per bin, a power of two
        self.bins: dict[int, list[int]] = {}  # bin start (epoch seconds) -> counts by class
        self.latency = [0] * _LATENCY_BUCKETS

    def record(self, sent_at: float, latency: float, status: int | None) -> None:
        start = int(sent_at) // self.width * self.width
        counts = self.bins.get(start)
        if counts is None:
            counts = self.bins[start] = [0] * len(CLASSES)
            if len(self.bins) > MAX_BINS:
                self._coarsen()
                counts = self.bins[int(sent_at) // self.width * self.width]
        counts[answer_class(status)] += 1
        self.latency[_bucket(latency)] += 1

    def timed(self) -> float:
        """The wall clock now, the send time `record` takes."""
        return self._clock()

    def _coarsen(self) -> None:
        while len(self.bins) > MAX_BINS:
            self.width *= 2
            merged: dict[int, list[int]] = {}
            for start, counts in self.bins.items():
                into = merged.setdefault(start // self.width * self.width, [0] * len(CLASSES))
                for i, n in enumerate(counts):
                    into[i] += n
            self.bins = merged

    @property
    def requests(self) -> int:
        return sum(sum(counts) for counts in self.bins.values())

    def percentile(self, q: float) -> float | None:
        """The latency (seconds) that a share `q` of attempts stayed under, or None."""
        total = sum(self.latency)
        if not total:
            return None
        seen = 0
        for i, n in enumerate(self.latency):
            seen += n
            if seen >= q * total:
                return _LATENCY_BASE * math.exp(_LATENCY_STEP * (i + 1))
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "bins": [[start, *counts] for start, counts in sorted(self.bins.items())],
            "latency": self.latency,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Timeline:
        """A timeline as `to_dict` stored it; an empty one for None or a damaged value."""
        timeline = cls()
        try:
            timeline.width = int(data["width"]) if data else 1
            for start, *counts in data["bins"] if data else ():
                timeline.bins[int(start)] = [int(n) for n in counts][: len(CLASSES)]
            latency = [int(n) for n in data["latency"]] if data else []
            if len(latency) == _LATENCY_BUCKETS:
                timeline.latency = latency
        except (KeyError, TypeError, ValueError):
            return cls()
        return timeline


def _bucket(latency: float) -> int:
    if latency <= _LATENCY_BASE:
        return 0
    return min(_LATENCY_BUCKETS - 1, int(math.log(latency / _LATENCY_BASE) / _LATENCY_STEP))
