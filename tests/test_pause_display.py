"""What the display is told of the gate's pacing: a pause as it begins and then once a second,
and the time it expects the rows left to take, which is the bar's time left.

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
from batchcall._limiter._learner import Learner


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
        self.told: list[tuple[float, float, float | None]] = []  # when, waiting, 3 rows' time

    def set_total(self, total: int) -> None: ...

    def advance(self, rows: int, *, throttled: int) -> None: ...

    def close(self) -> None: ...

    def pacing(self, *, waiting: float, eta) -> None:  # type: ignore[no-untyped-def]
        self.told.append((self.clock(), waiting, eta(3)))


class PausedGate:
    """The two accessors the display reads: a pause until `until`, on the loop's clock."""

    throttled = 1

    def __init__(self, clock, until: float) -> None:  # type: ignore[no-untyped-def]
        self.clock, self.until = clock, until

    def pause_left(self) -> float:
        return max(0.0, self.until - self.clock())

    def seconds_for(self, rows: int) -> float | None:
        return rows / 1.5 + self.pause_left()


async def _send(gate: Gate, answer: Answer) -> float | None:
    async with gate.permit() as permit:
        return permit.learn(answer)


def _gate(now: list[float], **options) -> Gate:  # type: ignore[no-untyped-def]
    async def skip(seconds: float) -> None:  # the fake clock moves on; nothing sleeps
        now[0] += seconds

    return Gate(clock=lambda: now[0], sleep=skip, random=lambda: 0.0, **options)


def test_blind_the_time_left_is_at_the_rate_achieved_so_far_pauses_included():
    """With no headers: nothing accepted, no time to say; 3 rows accepted over 2 s make 6 rows
    4 s. A 429 asking for 10 s leaves 10 s of pause (6 s once 4 s have passed) on top of the
    rows, and the rate so far then counts the pause."""
    now = [100.0]
    gate = _gate(now)

    async def main() -> None:
        assert gate.seconds_for(6) is None and gate.pause_left() == 0.0
        for _ in range(3):
            await _send(gate, Answer(201))
            now[0] += 1.0
        now[0] -= 1.0
        assert gate.seconds_for(6) == pytest.approx(4.0)
        assert await _send(gate, Answer(429, retry_after=10.0)) == pytest.approx(10.0)
        assert gate.pause_left() == pytest.approx(10.0)
        now[0] += 4.0
        assert gate.pause_left() == pytest.approx(6.0)
        rate = 3 / (now[0] - 100.0)
        assert gate.seconds_for(6) == pytest.approx(6 / rate + 6.0)
        now[0] += 6.0
        assert gate.pause_left() == 0.0

    asyncio.run(main())


def test_a_count_without_its_window_says_no_time_once_the_rows_outrun_the_quota_left():
    """The headers said 8 requests, 5 left: 4 more rows fit, at the rate so far; 20 more
    need quota back, and when it comes back is not known yet: no time at all, until a 429
    says when."""
    now = [0.0]
    gate = _gate(now)

    async def main() -> None:
        for remaining in (7, 6, 5):
            await _send(gate, Answer(201, limit=8, remaining=remaining))
            now[0] += 0.5
        assert gate.seconds_for(4) == pytest.approx(4 / (3 / now[0]))
        assert gate.seconds_for(20) is None
        # A 429's Retry-After says when quota returns: the rows can be timed from there.
        await _send(gate, Answer(429, limit=8, remaining=0, retry_after=3.0))
        assert gate.seconds_for(20) == pytest.approx(20 / (3 / now[0]) + 3.0)

    asyncio.run(main())


@pytest.mark.parametrize(
    ("learned", "max_rate", "seconds"),
    [
        ({"kind": ("fixed window", "inferred"), "limit": (8, "observed"),
          "window": (6.0, "inferred")}, None, 60 / (8 / 6)),
        ({"kind": ("token bucket", "inferred"), "limit": (50, "observed"),
          "refill": (2.5, "inferred")}, None, 60 / 2.5),
        ({"kind": ("token bucket", "inferred"), "limit": (50, "observed"),
          "refill": (2.5, "inferred")}, 1.0, 60 / 1.0),
    ],
)  # fmt: skip
def test_the_time_left_is_at_the_learned_limit_per_window_or_refill_within_max_rate(
    monkeypatch, learned, max_rate, seconds
):
    """60 rows against a fixed window of 8 per 6 s take 45 s, against a bucket refilling 2.5/s
    24 s, and 60 s under --max-rate 1, whatever the pacer's rate of the moment."""
    monkeypatch.setattr(Learner, "learned", lambda self: learned)
    gate = _gate([0.0], max_rate=max_rate)
    assert gate.seconds_for(60) == pytest.approx(seconds)


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
    assert [round(eta, 1) for _, _, eta in told] == [5.5, 5.5, 4.5, 3.5, 2.5, 2.0]


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


def test_the_gate_is_told_the_rows_left_once_all_are_planned_without_a_progress_bar():
    """The rows left tell the gate which window is the run's last; they are counted with or
    without a bar, and unknown (None) until a plan has said how many rows there are."""
    display = _Display(None, PausedGate(lambda: 0.0, until=0.0))  # type: ignore[arg-type]
    assert display.backlog() is None
    display.planned(10, finished=3)  # a first chunk: 3 rows already done
    assert display.backlog() == 7
    display.planned(15, finished=1)
    display.finished()
    assert display.backlog() == 10


def test_on_a_shared_key_the_time_left_is_at_no_more_than_the_rate_had_so_far(monkeypatch):
    """The learned 100 per 2 s is both jobs' limit: with another client on the key, 30 rows
    accepted in 2 s make 60 more rows take 4 s, not the 1.2 s that 50/s would promise."""
    learned = {"limit": (100, "observed"), "window": (2.0, "inferred")}
    monkeypatch.setattr(Learner, "learned", lambda self: learned)
    now = [0.0]
    gate = _gate(now)

    async def main() -> None:
        for _ in range(30):
            await _send(gate, Answer(201))
        now[0] = 2.0
        assert gate.seconds_for(60) == pytest.approx(60 / 50)
        gate._learner.quota.shared = True
        assert gate.seconds_for(60) == pytest.approx(60 / 15)

    asyncio.run(main())
