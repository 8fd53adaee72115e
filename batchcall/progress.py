"""The progress bar: tqdm on stderr, and only when stderr is a terminal.

Cron, Airflow and `--json` consumers read stderr as a log; a bar's carriage returns and ANSI
codes would only be noise there, so off a TTY nothing of the bar is written at all.
"""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm


class Bar:
    def __init__(self, label: str, stream: TextIO) -> None:
        self._bar = tqdm(total=0, unit=label, file=stream, dynamic_ncols=True, smoothing=0.1)
        self._throttled = 0

    @classmethod
    def for_stderr(cls, label: str, stream: TextIO | None = None) -> Bar | None:
        stream = stream or sys.stderr
        return cls(label, stream) if stream.isatty() else None

    def set_total(self, total: int) -> None:
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
