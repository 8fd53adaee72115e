"""What the display is told of the gate's pacing: a pause as it begins and then once a second,
and the rate the gate expects to admit, from which the bar's time left is reckoned.

The gate runs on a fake clock and the redraw loop on a virtual-time event loop: nothing sleeps.
"""

from __future__ import annotations

import asyncio
import io
import logging
from dataclasses import dataclass

import pytest
from test_limiter import run_virtual

from batchcall._dispatch import PacedProgress, _Display, announce_pause
from batchcall._limiter import Gate
from batchcall._limiter._gate import _expected


@dataclass(frozen=True)
class Answer:
    status: int | None
    limit: int | None = None
    remaining: int | None = None
    retry_after: float | None = None


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Recorder:
    """A PacedProgress that notes every pacing it is told, and when."""

    def __init__(self, clock) -> None:  # type: ignore[no-untyped-def]
        self.clock = clock
        self.told: list[tuple[float, float, float | None]] = []

    def set_total(self, total: int) -> None: ...

    def advance(self, rows: int, *, throttled: int) -> None: ...

    def close(self) -> None: ...

    def pacing(self, *, waiting: float, rate: float | None) -> None:
        self.told.append((self.clock(), waiting, rate))


class PausedGate:
    """The two accessors the display reads: a pause until `until`, on the loop's clock."""

    throttled = 1

    def __init__(self, clock, until: float) -> None:  # type: ignore[no-untyped-def]
        self.clock, self.until = clock, until

    def pause_left(self) -> float:
        return max(0.0, self.until - self.clock())

    def expected_rate(self) -> float | None:
        return 1.5


async def _send(gate: Gate, answer: Answer) -> float | None:
    async with gate.permit() as permit:
        return permit.learn(answer)


def test_the_gate_says_the_pause_left_and_the_rate_achieved_while_blind():
    """With no headers, 3 rows accepted in the first 2 s is 1.5/s expected; a 429 asking for
    10 s leaves 10 s of pause, then 6 s once 4 s have passed, and 0 after it. The rate so far
    counts the pause: 3 rows in about 12 s."""
    now = [100.0]

    async def skip(seconds: float) -> None:
        now[0] += seconds

    gate = Gate(clock=lambda: now[0], sleep=skip, random=lambda: 0.0)

    async def main() -> None:
        assert gate.expected_rate() is None and gate.pause_left() == 0.0
        for _ in range(3):
            await _send(gate, Answer(201))
            now[0] += 1.0
        now[0] -= 1.0
        assert gate.expected_rate() == pytest.approx(1.5)
        assert await _send(gate, Answer(429, retry_after=10.0)) == pytest.approx(10.0)
        assert gate.pause_left() == pytest.approx(10.0)
        now[0] += 4.0
        assert gate.pause_left() == pytest.approx(6.0)
        now[0] += 6.0
        assert gate.pause_left() == 0.0
        assert gate.expected_rate() == pytest.approx(3 / (now[0] - 100.0))  # about 12 s

    asyncio.run(main())


def test_the_expected_rate_is_the_learned_limit_per_window_or_refill_within_max_rate():
    """A fixed window of 8 per 6 s expects 8/6 a second, a bucket its refill, and --max-rate
    caps either; nothing learned and fewer than two rows accepted expects nothing."""
    window = {"kind": ("fixed window", "inferred"), "limit": (8, "observed")}
    window["window"] = (6.0, "inferred")
    bucket = {"kind": ("token bucket", "inferred"), "limit": (50, "observed")}
    bucket["refill"] = (2.5, "inferred")
    assert _expected(window, 100, 10.0, None) == pytest.approx(8 / 6)
    assert _expected(bucket, 100, 10.0, None) == pytest.approx(2.5)
    assert _expected(bucket, 100, 10.0, 1.0) == pytest.approx(1.0)
    # A limit heard but no window or refill yet: the achieved rate so far.
    assert _expected({"limit": (8, "observed")}, 8, 2.0, None) == pytest.approx(4.0)
    assert _expected({}, 1, 2.0, None) is None


def test_a_pause_is_shown_as_it_begins_and_then_about_once_a_second():
    """The display is told of a 3.5 s pause at once, and then at every second of it and after,
    without a row completing; a long pause is also said in a line off a terminal."""

    async def main(loop: asyncio.AbstractEventLoop) -> list[tuple[float, float, float | None]]:
        progress = Recorder(loop.time)
        gate = PausedGate(loop.time, until=loop.time() + 3.5)
        display = _Display(progress, gate)  # type: ignore[arg-type]
        display.paused(3.5, 4.0)
        redraw = asyncio.create_task(display.redraw())
        await asyncio.sleep(4.5)
        redraw.cancel()
        await asyncio.gather(redraw, return_exceptions=True)
        return progress.told

    told = run_virtual(main)
    assert [(round(at), round(waiting, 1)) for at, waiting, _ in told] == [
        (0, 3.5), (0, 3.5), (1, 2.5), (2, 1.5), (3, 0.5), (4, 0.0),
    ]  # fmt: skip
    assert {rate for _, _, rate in told} == {1.5}


def test_a_display_without_pacing_is_left_alone():
    """A Progress of the Python API without `pacing` is still a Progress: no redraw loop."""

    class Plain:
        def set_total(self, total: int) -> None: ...

        def advance(self, rows: int, *, throttled: int) -> None: ...

        def close(self) -> None: ...

    assert not isinstance(Plain(), PacedProgress)
    display = _Display(Plain(), PausedGate(lambda: 0.0, until=5.0))  # type: ignore[arg-type]
    asyncio.run(asyncio.wait_for(display.redraw(), timeout=1))  # returns at once
    display.paused(1.0, None)


def test_a_long_pause_is_said_off_a_terminal_and_only_logged_on_one(monkeypatch, caplog):
    """Off a terminal, a pause over 5 s is one stderr line, "waiting 54 s for the API's rate
    limit (429, Retry-After 54)"; on a terminal nothing raw is written over the bar (it shows
    the wait itself); run.log has the line either way, and a 5 s pause is not said at all."""
    caplog.set_level(logging.INFO, logger="batchcall")
    pipe = io.StringIO()
    monkeypatch.setattr("sys.stderr", pipe)
    announce_pause(54.02, 54.0)
    announce_pause(5.0, 5.0)
    said = "waiting 54 s for the API's rate limit (429, Retry-After 54)"
    assert pipe.getvalue() == f"batchcall: {said}\n"
    terminal = FakeTerminal()
    monkeypatch.setattr("sys.stderr", terminal)
    announce_pause(12.0, None)
    assert terminal.getvalue() == ""
    logged = [r.getMessage() for r in caplog.records if "rate limit" in r.getMessage()]
    assert logged == [
        said,
        "waiting 12 s for the API's rate limit (429)",
    ]
