"""The clock the suite runs on: CI's clock-ahead pass really is a year ahead, children included.

`.ci/run` runs the suite a second time under `faketime -f +365d`, with
BATCHCALL_TEST_CLOCK_AHEAD set to the real date. A date a test fixed, or put too close to now,
then fails a year before it would fail for real. These tests keep that pass honest: were
faketime to stop reaching the tests, or the processes they start (the CLI, a sandbox in a
child), the pass would fail here instead of quietly running on today's clock. (conftest.py
also refuses to start that pass at all on an unshifted clock.)
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from e2e_support import AHEAD, CLOCK_AHEAD_OF, python, read_line

NOW_IN_A_CHILD = "import datetime; print(datetime.datetime.now(datetime.UTC).isoformat())"


def test_the_suite_and_its_children_see_the_clock_ci_asked_for(tmp_path: Path) -> None:
    """A child started as the tests start the CLI and the sandbox (a clean environment) reads
    the suite's own wall clock, to within a minute; and in the clock-ahead pass both see a
    date a year past the real one that BATCHCALL_TEST_CLOCK_AHEAD holds: next year at least.
    So an end-to-end test in that pass has its whole run a year ahead, not only its pytest half.
    """
    child = python(NOW_IN_A_CHILD, cwd=tmp_path)
    assert child.stdout is not None
    seen = datetime.fromisoformat(read_line(child.stdout).strip())
    assert child.wait(10) == 0
    here = datetime.now(UTC)
    assert abs(seen - here) < timedelta(minutes=1)
    if CLOCK_AHEAD_OF is not None:
        for today in (here.date(), seen.date()):
            assert today >= CLOCK_AHEAD_OF + AHEAD
            assert today.year >= CLOCK_AHEAD_OF.year + 1


def test_the_monotonic_clock_runs_at_the_wall_clocks_pace() -> None:
    """faketime moves the monotonic clock too (asyncio's timers and every deadline run on it):
    it must still run at the wall clock's pace, or timeouts would fire at once or never."""
    wall, mono = time.time(), time.monotonic()
    deadline = mono + 0.2
    while time.monotonic() < deadline:
        pass  # a busy wait: what is measured is the two clocks, so nothing may sleep here
    assert 0.15 < time.time() - wall < 5
