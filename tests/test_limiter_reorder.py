"""The limiter's parts with answers reordered at random, on explicit clock readings.

Over a connection pool the server counts requests in flight in its own order, and answers
come back in yet another: a count from a later permit may show less quota than one from an
earlier permit. hypothesis draws the reordering and the server's algorithm; the pieces must
read the same kind of limit whatever the order, and never sleep.
"""

from __future__ import annotations

import asyncio
import dataclasses

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


def shuffled(seqs: list[int], depth: int, draw: st.DrawFn) -> list[int]:
    """`seqs` in an order where no element moves more than `depth` places."""
    keys = [i + draw(st.integers(0, depth)) for i in range(len(seqs))]
    return [s for _, s in sorted(zip(keys, seqs, strict=True))]


@st.composite
def reordered_run(draw: st.DrawFn, kind: str) -> tuple[Learner, int]:
    """A learner fed 120 requests at 20/s, counted and answered out of order; its reorder depth.

    The server (the sandbox's own algorithm) counts them in one shuffled order and the answers
    arrive in another; each answer carries the Remaining the server gave it.
    """
    depth = draw(st.integers(0, 6))
    server = ALGORITHMS[kind](limit=LIMIT, window=60.0)
    learner = Learner(CEILING)
    sends = [i / 20 for i in range(120)]
    seqs = []
    for at in sends:
        seqs.append(learner.sent(at))
    remaining = {}
    for seq in shuffled(seqs, depth, draw):
        # Counted at the send time of the latest permit it could have met on the way.
        now = sends[seq] + 0.001
        assert server.try_acquire(now)
        remaining[seq] = server.remaining(now)
    for seq in shuffled(seqs, depth, draw):
        learner.answered(seq)
        learner.heard_limit(LIMIT)
        learner.accepted(seq, sends[seq], sends[seq] + 0.002, remaining[seq])
    return learner, depth


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_a_fixed_window_read_out_of_order_is_never_taken_for_a_trickle(data: st.DataObject) -> None:
    """Within one fixed window, counts jitter by the reordering but never settle as a bucket.

    The quota handed back between two counts is ±2 when the server's order strays from ours
    by two places; summed over the window it telescopes. Counting only its positive noise
    once flipped a 60 s fixed window to "rolling" within a second, for good.
    """
    learner, _ = data.draw(reordered_run("fixed"))
    assert not learner._rolling.settled
    assert type(learner.model).__name__ != "FixedWindow"  # no reset came: no window yet


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_a_bucket_read_out_of_order_is_still_seen_trickling_back(data: st.DataObject) -> None:
    """A token bucket hands quota back steadily: whatever the order, the learner settles."""
    server_rate_run = data.draw(reordered_run("token_bucket"))
    learner, _ = server_rate_run
    # 120 sends over 6 s at 5/s of refill: 30 came back, beyond any reordering's noise.
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
