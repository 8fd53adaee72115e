"""The report's charts as geometry: bars, axis labels and shaded bands in SVG user units, and
each chart's table (its text equivalent). The SVG markup itself is in the template.

Bounded whatever the size of the run: 24 hours, 7 weekdays, at most `TIME_BARS` time bars.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ._digest import Digest
from ._errors import UsageError
from ._timeline import CLASSES, Timeline
from ._windows import window_named

TIME_BARS = 90  # bars of the requests-over-time chart, at most
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
CLASS_NAMES = ["2xx", "429", "4xx", "5xx", "no answer"]


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    kind: str
    label: str
    value: int


@dataclass(frozen=True)
class Chart:
    title: str
    bars: list[Bar]
    labels: list[tuple[float, str]]  # x, text of the axis labels
    shaded: list[tuple[float, float]]  # x, width of the background bands (the calling window)
    top: int  # the value at the top of the y axis
    rows: list[list[Any]]  # the chart's table: first cell a label, then the values
    columns: list[str]
    width: int = 720
    height: int = 180


PLOT_LEFT, PLOT_TOP, PLOT_HEIGHT = 40.0, 10.0, 140.0


def _stacked(
    series: list[list[int]], kinds: Iterable[str], names: list[str], plot_width: float
) -> tuple[list[Bar], int]:
    """Stacked bars, one per entry of `series`, over `plot_width`; returns bars and the top."""
    top = _nice(max((sum(s) for s in series), default=0))
    step = plot_width / max(1, len(series))
    bars = []
    kinds = list(kinds)
    for i, values in enumerate(series):
        base = PLOT_TOP + PLOT_HEIGHT
        for kind, value in zip(kinds, values, strict=True):
            if not value:
                continue
            h = PLOT_HEIGHT * value / top
            base -= h
            x = PLOT_LEFT + i * step + step * 0.1
            bars.append(Bar(round(x, 1), round(base, 1), round(step * 0.8, 1), round(h, 1),
                            kind, names[i], value))  # fmt: skip
    return bars, top


def _nice(n: int) -> int:
    """A round number at or above n for the top of an axis."""
    if n <= 5:
        return 5
    magnitude = 10 ** int(math.log10(n))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= n)


def requests_chart(timeline: Timeline) -> Chart | None:
    """Attempts over time by answer class, in at most TIME_BARS bars."""
    if not timeline.bins:
        return None
    first, last = min(timeline.bins), max(timeline.bins) + timeline.width
    width = timeline.width
    while (last - first) / width > TIME_BARS:
        width *= 2
    series = [[0] * len(CLASSES) for _ in range(math.ceil((last - first) / width))]
    for start, counts in timeline.bins.items():
        into = series[(start - first) // width]
        for i, n in enumerate(counts):
            into[i] += n
    names = [_clock(first + i * width) for i in range(len(series))]
    bars, top = _stacked(series, CLASSES, names, 660)
    every = max(1, len(series) // 6)
    step = 660 / len(series)
    labels = [(PLOT_LEFT + (i + 0.5) * step, names[i]) for i in range(0, len(series), every)]
    rows = [[n, *s, round(sum(s) / width, 2)] for n, s in zip(names, series, strict=True)]
    return Chart(
        f"Requests per {width} s (UTC), by answer", bars, labels, [], top, rows,
        ["from (UTC)", *CLASS_NAMES, "per second"],
    )  # fmt: skip


def _clock(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S")


def hours_chart(digest: Digest, open_hours: set[int]) -> Chart:
    names = [f"{h:02d}:00" for h in range(24)]
    bars, top = _stacked([[n] for n in digest.hours], ["calls"], names, 660)
    step = 660 / 24
    labels = [(PLOT_LEFT + (h + 0.5) * step, f"{h:02d}") for h in range(0, 24, 2)]
    shaded = [(PLOT_LEFT + h * step, step) for h in sorted(open_hours)]
    rows = [[names[h], n, "yes" if h in open_hours else ""] for h, n in enumerate(digest.hours)]
    return Chart("Calls by callee-local hour", bars, labels, shaded, top, rows,
                 ["hour", "calls", "in the calling window"])  # fmt: skip


def weekdays_chart(digest: Digest) -> Chart:
    bars, top = _stacked([[n] for n in digest.weekdays], ["calls"], list(WEEKDAYS), 280)
    labels = [(PLOT_LEFT + (d + 0.5) * 40, name) for d, name in enumerate(WEEKDAYS)]
    rows = [[name, n] for name, n in zip(WEEKDAYS, digest.weekdays, strict=True)]
    return Chart("Calls by callee-local weekday", bars, labels, [], top, rows,
                 ["weekday", "calls"], width=340)  # fmt: skip


def open_hours(spec: str | None) -> set[int]:
    """The local hours a calling window opens on some day (any part of the hour)."""
    if not spec:
        return set()
    try:
        _, week, _ = window_named(spec)
    except UsageError:  # the run refused it already; the chart just has no bands
        return set()
    hours: set[int] = set()
    for day in week:
        for start, end in day:
            hours.update(h % 24 for h in range(start // 60, math.ceil(end / 60)))
    return hours
