"""The progress bar: tqdm on stderr, and only when stderr is a terminal.

Cron, Airflow and `--json` consumers read stderr as a log; a bar's carriage returns and ANSI
codes would only be noise there, so off a TTY nothing of the bar is written at all.

Two things the bar takes from the gate rather than from tqdm (the dispatcher tells it about
once a second, see `_dispatch._Display.redraw`):

- A 429 pause, shown as "waiting for rate limit: N s" and counted down at every redraw. Without
  it the bar stood still for the whole pause, as if the run had hung.
- The time left. tqdm's estimate is the recent throughput, and a fixed window's quota is spent
  in a burst at each reset, so it read "00:08" with two minutes to go. The gate's learned rate
  (limit per window, or the refill) holds over the coming windows (`Gate.seconds_for`); where
  the gate cannot tell yet the bar says "?", and tqdm's estimate is kept for a bar with no
  gate behind it (a pass that sends nothing).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any, TextIO

from tqdm import tqdm

# rows done of total, the bar, then elapsed<time left, the current rate and the 429s so far
# (and a pause's countdown while one runs).
BAR_FORMAT = (
    "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{left}, {rate_fmt}{postfix}]"
)
WAITING = "waiting for rate limit: {seconds} s"


class _Meter(tqdm):
    """tqdm whose postfix and time left are computed at each draw, from what the gate said."""

    throttled = 0
    pause_until = -math.inf  # on tqdm's own clock
    eta: Callable[[int], float | None] | None = None  # the gate's, once it said anything

    @property
    def format_dict(self) -> dict[str, Any]:
        meter: dict[str, Any] = super().format_dict
        pause = max(0.0, self.pause_until - self._time())
        postfix = f"429s={self.throttled}"
        if pause > 0:
            postfix += ", " + WAITING.format(seconds=math.ceil(pause))
        meter["postfix"] = postfix
        meter["left"] = self._left(meter, pause)
        return meter

    def _left(self, meter: dict[str, Any], pause: float) -> str:
        """The gate's time for the rows left (pause included); tqdm's estimate without one."""
        total, done, elapsed = meter["total"], meter["n"], meter["elapsed"]
        if not total:
            return "?"
        if done >= total:
            return self.format_interval(0)
        if self.eta is not None:
            seconds = self.eta(total - done)
            return "?" if seconds is None else self.format_interval(seconds)
        rate = meter["rate"]
        if rate is None and elapsed:
            rate = (done - meter["initial"]) / elapsed  # as tqdm does: the average so far
        return self.format_interval((total - done) / rate + pause) if rate else "?"


class Bar:
    """What the runner reports progress to (its `Progress` protocol), drawn with tqdm."""

    def __init__(self, label: str, stream: TextIO, *, mininterval: float = 0.1) -> None:
        self._bar = _Meter(
            total=0,
            desc="batchcall",
            unit=f" {label}",
            file=stream,
            dynamic_ncols=True,
            smoothing=0.1,
            mininterval=mininterval,
            bar_format=BAR_FORMAT,
        )

    @classmethod
    def for_stderr(cls, label: str, stream: TextIO | None = None) -> Bar | None:
        """A bar on `stream` (stderr by default) if it is a terminal, else None: no bar."""
        stream = stream or sys.stderr
        return cls(label, stream) if stream.isatty() else None

    def set_total(self, total: int) -> None:
        # The total grows while the input streams in, so the ETA firms up as loading ends.
        if total != self._bar.total:
            self._bar.total = total
            self._bar.refresh()

    def advance(self, rows: int, *, throttled: int) -> None:
        self._bar.throttled = throttled
        if rows:
            self._bar.update(rows)

    def pacing(self, *, waiting: float, eta: Callable[[int], float | None]) -> None:
        """The gate's news, about once a second and as a pause begins: `waiting` seconds of
        pause left, and `eta(rows)`, the seconds to send `rows` more (None: it cannot tell
        yet), asked at each draw. Redraws, so the countdown and the elapsed time move though
        no row completes."""
        bar = self._bar
        bar.pause_until = bar._time() + waiting if waiting > 0 else -math.inf
        bar.eta = eta
        bar.refresh()

    def close(self) -> None:
        self._bar.close()
