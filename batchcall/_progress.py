"""The progress bar: tqdm on stderr, and only when stderr is a terminal.

Cron, Airflow and `--json` consumers read stderr as a log; a bar's carriage returns and ANSI
codes would only be noise there, so off a TTY nothing of the bar is written at all.
"""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm

# rows done of total, the bar, then elapsed<ETA, the current rate and the 429s so far.
BAR_FORMAT = (
    "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
    "[{elapsed}<{remaining}, {rate_fmt}{postfix}]"
)


class Bar:
    """What the runner reports progress to (its `Progress` protocol), drawn with tqdm."""

    def __init__(self, label: str, stream: TextIO, *, mininterval: float = 0.1) -> None:
        self._bar = tqdm(
            total=0,
            desc="batchcall",
            unit=f" {label}",
            file=stream,
            dynamic_ncols=True,
            smoothing=0.1,
            mininterval=mininterval,
            bar_format=BAR_FORMAT,
            postfix="429s=0",
        )
        self._throttled = 0

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
        if throttled != self._throttled:
            self._throttled = throttled
            self._bar.set_postfix_str(f"429s={throttled}", refresh=False)
        if rows:
            self._bar.update(rows)

    def close(self) -> None:
        self._bar.close()
