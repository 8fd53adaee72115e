"""The limiter's parts with answers reordered at random, on explicit clock readings.

Over a connection pool the server counts requests in flight in its own order, and answers
come back in yet another: a count from a later permit may show less quota than one from an
earlier permit. hypothesis draws the reordering and the server's algorithm; the pieces must
read the same kind of limit whatever the order, and never sleep.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchcall._limiter import Gate, NoReply
from batchcall._limiter._echo import Echo
from batchcall._limiter._fixed import FixedWindow
from batchcall._limiter._learner import Learner
from batchcall.sandbox._ratelimit import ALGORITHMS

CEILING = 1000.0
LIMIT = 300


@st.composite
def reordered_run(
    draw: st.DrawFn, kind: str, *, limit: int, window: float, sends: list[float]
) -> tuple[Learner, int]:
    """A learner fed requests sent at `sends`, counted and answered out of order; the depth.

    Each request takes its own time to reach the server (the sandbox's own algorithm), which
    counts them as they arrive, and its own time back: a request overtakes up to `depth`
    sent before it. Causality holds, as on a real connection: an answer that came before a
    request left is of a request that reached the server first.
    """
    depth = draw(st.integers(0, 6))
    gap = min(b - a for a, b in itertools.pairwise(sends))
    there = [draw(st.floats(0.0005, 0.001 + depth * gap)) for _ in sends]
    back = [draw(st.floats(0.0005, 0.001 + depth * gap)) for _ in sends]
    server = ALGORITHMS[kind](limit=limit, window=window)
    arrivals = sorted(range(len(sends)), key=lambda i: sends[i] + there[i])
    remaining = {}
    for i in arrivals:
        assert server.try_acquire(sends[i] + there[i])
        remaining[i] = server.remaining(sends[i] + there[i])
    events = [(at, 1, i) for i, at in enumerate(sends)]
    events += [(sends[i] + there[i] + back[i], 0, i) for i in range(len(sends))]
    learner = Learner(CEILING)
    for at, is_send, i in sorted(events):
        if is_send:
            assert learner.sent(at) == i
            continue
        learner.answered(i)
        learner.heard_limit(limit)
        learner.accepted(i, sends[i], at, remaining[i])
    return learner, depth


@settings(max_examples=60, deadline=None)
@given(st.data(), st.sampled_from([(LIMIT, 120), (20, 20)]))
def test_a_fixed_window_read_out_of_order_is_never_taken_for_a_trickle(
    data: st.DataObject, case: tuple[int, int]
) -> None:
    """Within one fixed window, counts jitter by the reordering but never settle as a bucket,
    nor show a reset.

    The quota handed back between two counts is ±2 when the server's order strays from ours
    by two places. Counting only its positive noise once flipped a 60 s fixed window to
    "rolling" within a second, for good; and in a window of 20, one count that overtook six
    others read as a reset. A count is compared with the lowest one answered before its
    request left, which the server surely counted first.
    """
    limit, rows = case
    sends = [i / 20 for i in range(rows)]
    learner, _ = data.draw(reordered_run("fixed", limit=limit, window=60.0, sends=sends))
    assert not learner._rolling.settled
    assert type(learner.model).__name__ == "Rolling"  # no reset came: no window yet
    assert learner.quota.window_left == limit - rows


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_a_bucket_read_out_of_order_is_still_seen_trickling_back(data: st.DataObject) -> None:
    """A token bucket hands quota back steadily: whatever the order, the learner settles.

    40 at 5/s of refill: a burst of 40 drains it, then 40 more at 4/s follow its refill; the
    counts then rise above ones answered before their requests left, which only quota coming
    back explains. (A bucket that our sends never drain shows no such count, nor needs to.)
    """
    sends = [i / 50 for i in range(40)] + [0.8 + i / 4 for i in range(1, 41)]
    learner, _ = data.draw(reordered_run("token_bucket", limit=40, window=8.0, sends=sends))
    assert learner._rolling.settled


@settings(max_examples=60, deadline=None)
@given(depth=st.integers(0, 4), seed=st.randoms(use_true_random=False))
def test_the_echo_survives_counts_off_by_the_reordering(depth: int, seed: object) -> None:
    """A sliding window's echo, its counts off by up to `depth` either way, still gives 2 s."""
    rng = seed  # a random.Random that hypothesis controls
    sends = [i / 10 for i in range(60)]
    echo, expired = Echo(), 0
    for n, at in enumerate(sends):
        counted = sends[: n + 1]
        true = sum(1 for t in counted if t <= at - 2.0)
        seen = max(0, min(len(counted), true + rng.randint(-depth, depth)))  # type: ignore[attr-defined]
        echo.observe(at, seen - expired, counted, noise=depth)
        expired = seen
    assert not echo.broken
    assert echo.window is not None
    assert 1.9 <= echo.window <= 2.0 + 0.1 * (depth + 1)


def test_a_429_that_our_books_foresaw_does_not_raise_the_margin() -> None:
    """Looking for a reset in a spent window draws a 429: no other client is to blame.

    Only a 429 while the books still showed quota says someone else spends the key.
    """
    learner = Learner(CEILING)
    seq = learner.sent(0.0)
    learner.answered(seq)
    learner.heard_limit(100)
    learner.accepted(seq, 0.0, 0.001, 0)  # the window is spent
    look = learner.sent(0.6)
    learner.answered(look)
    learner.refused(look, 0.6, 0.601, retry_after=2.0, paused_until=2.6)
    assert learner.quota.margin == 1

    fresh = Learner(CEILING)
    seq = fresh.sent(0.0)
    fresh.answered(seq)
    fresh.heard_limit(100)
    fresh.accepted(seq, 0.0, 0.001, 5)  # five left by our books
    surprise = fresh.sent(0.1)
    fresh.answered(surprise)
    fresh.refused(surprise, 0.1, 0.101, retry_after=1.0, paused_until=1.1)
    assert fresh.quota.margin == 2


def test_a_known_fixed_window_pauses_to_its_reset_not_to_the_rounded_retry_after() -> None:
    """Retry-After is whole seconds, rounded up: a known window's reset comes sooner."""
    learner = Learner(CEILING)
    learner.model = FixedWindow(
        CEILING, period=2.0, phase=0.0, resets=[0.0, 2.0], first_reset=None, trusted=False
    )
    assert learner.pause(4.6, 2.0) == pytest.approx(1.4 + 0.005)  # the reset at 6.0, not 6.6
    assert learner.pause(4.6, 5.0) == 5.0  # a reset that far off is not this one


@given(
    storm=st.integers(2, 40),
    retry_after=st.integers(1, 60),
    order=st.randoms(use_true_random=False),
)
def test_a_429_storm_pauses_once_for_retry_after_and_a_bounded_jitter(
    storm: int, retry_after: int, order: object
) -> None:
    """Every 429 of a storm was in flight when the first came: one pause, not the longest.

    Each 429 once drew its own jitter of up to 10% and the largest won: a Retry-After of 54 s
    became a 59 s pause. Now the pause is Retry-After plus at most 50 ms, whatever the order
    and however many 429s, and it is announced once.
    """
    now = [0.0]
    pauses: list[tuple[float, float | None]] = []

    sent_at: list[float] = []

    async def skip(seconds: float) -> None:  # the fake clock moves on; nothing sleeps
        now[0] += seconds

    gate = Gate(
        concurrency=storm, clock=lambda: now[0], sleep=skip, random=lambda: 1.0,
        on_pause=lambda s, r: pauses.append((s, r)),
    )  # fmt: skip

    throttled = NoReply()
    reply = dataclasses.replace(throttled)  # a 429 as classify() reads it
    object.__setattr__(reply, "status", 429)
    object.__setattr__(reply, "retry_after", float(retry_after))

    async def main() -> list[float | None]:
        permits = []
        for _ in range(storm):
            cm = gate.permit()
            permits.append((cm, await cm.__aenter__()))
        order.shuffle(permits)  # type: ignore[attr-defined]
        delays = []
        sent_at.append(now[0])
        sent = now[0]
        for i, (cm, permit) in enumerate(permits):
            now[0] = sent + 0.01 + i * 0.001
            delays.append(permit.learn(reply))
            await cm.__aexit__(None, None, None)
        return delays

    delays = asyncio.run(main())
    assert len(pauses) == 1
    assert retry_after <= pauses[0][0] <= retry_after + 0.05
    ends = {
        round(now0 + d, 9)
        for now0, d in zip(
            (sent_at[0] + 0.01 + i * 0.001 for i in range(storm)), delays, strict=True
        )
        if d is not None
    }
    assert len(ends) == 1  # every row of the storm waits for the same instant
    assert gate.throttled == storm


def test_after_a_429_pause_one_request_looks_before_the_rest_follow() -> None:
    """Two jobs on one bucket: the one that paused came back with a dozen requests at once,
    sure of the quota it had counted a second before; the other job had spent it, and all
    twelve were refused, which paused it again. Now the first request after a pause goes
    alone, and the rest follow its answer."""
    now = [0.0]

    async def skip(seconds: float) -> None:  # the fake clock moves on; nothing sleeps
        now[0] += seconds
        await asyncio.sleep(0)

    gate = Gate(concurrency=10, clock=lambda: now[0], sleep=skip, random=lambda: 0.0)
    throttled = dataclasses.replace(NoReply())
    object.__setattr__(throttled, "status", 429)
    object.__setattr__(throttled, "retry_after", 1.0)
    accepted = dataclasses.replace(NoReply())
    object.__setattr__(accepted, "status", 201)

    async def main() -> None:
        storm = [await gate._acquire() for _ in range(3)]
        now[0] += 0.01
        for permit in storm:
            permit.learn(throttled)
        look = await gate._acquire()  # waits out the pause on the fake clock
        assert look.sent_at >= 1.01
        follower = asyncio.create_task(gate._acquire())
        for _ in range(5):
            await asyncio.sleep(0)
        assert not follower.done()  # held until the look's answer
        look.learn(accepted)
        rest = [await follower] + [await gate._acquire() for _ in range(4)]
        assert gate.in_flight == 5 and len(rest) == 5

    asyncio.run(main())
