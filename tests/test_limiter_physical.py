"""The gate against the physical limit of each rate limit, on the virtual clock.

The physical limit is the least time the server's rule allows for the rows, first request to
last: ceil(N / L) - 1 windows for a fixed or sliding window that our burst fills at once, and
(N - L) / refill for a token bucket that starts full. An oracle paced at the average rate
would take a whole window longer, so these bounds are far tighter than `test_limiter`'s.
hypothesis draws the trips there and back, so that answers overtake one another.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_limiter import Outcome, Server, drive

import batchcall._limiter._resets as resets
from batchcall._limiter._resets import ResetBounds

ROWS, LIMIT, WINDOW = 600, 100, 2.0


def physical(kind: str, rows: int, limit: int, window: float) -> float:
    if kind == "token_bucket":
        return (rows - limit) * window / limit
    return (math.ceil(rows / limit) - 1) * window


def run(
    kind: str, *, seed: int | None, latency: float = 0.01, rows: int = ROWS, trips: float = 0.004
) -> Outcome:
    """`rows` rows through one gate; every one of them created exactly once."""
    server = Server(kind, latency=latency)
    outcome = drive(server, rows=rows, jitter=seed, trips=trips)
    assert server.accepted == rows
    return outcome


@pytest.fixture
def long_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """300 per 60 s: the test module's server reads these when it is built."""
    import test_limiter

    monkeypatch.setattr(test_limiter, "LIMIT", 300)
    monkeypatch.setattr(test_limiter, "WINDOW", 60.0)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_a_fixed_window_is_spent_at_once_and_each_reset_caught(seed: int) -> None:
    """Counts on every answer, reordered: within 5% of the physical limit, ≤ 1% refused."""
    outcome = run("fixed", seed=seed)
    assert outcome.elapsed <= 1.05 * physical("fixed", ROWS, LIMIT, WINDOW)
    assert outcome.throttled_share <= 0.01
    assert outcome.stats["window"] == pytest.approx(WINDOW, abs=0.01)


@pytest.mark.usefixtures("long_window")
@pytest.mark.parametrize("kind", ["fixed", "sliding"])
def test_a_minute_window_is_timed_to_the_second(kind: str) -> None:
    """300 per 60 s, 900 rows: two minutes by the rule, and a second or so more."""
    outcome = run(kind, seed=3, latency=0.05, rows=900)
    assert outcome.elapsed <= 1.02 * physical(kind, 900, 300, 60.0)
    assert outcome.throttled <= 2
    assert outcome.stats["window"] == pytest.approx(60.0, abs=0.1)


@pytest.mark.usefixtures("long_window")
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("trips", [0.02, 0.08])
def test_a_minute_sliding_window_is_not_read_as_fixed_when_answers_straggle(
    seed: int, trips: float
) -> None:
    """A look that went alone finds part of a burst sent a minute ago handed back: a fixed
    window hands back all or nothing, so this one slides. Read as fixed, each window kept a
    unit back for its reset, which then took a slot of the next window, and the run's last
    row waited a whole minute more (1.5× the rule)."""
    outcome = run("sliding", seed=seed, rows=900, trips=trips)
    assert outcome.elapsed <= 1.05 * physical("sliding", 900, 300, 60.0)
    # Answers 80 ms apart on the way out once broke the echo within the first burst, and a
    # refill extrapolated from it drew 4% 429s a minute later.
    assert outcome.throttled_share <= 0.01


@pytest.mark.usefixtures("long_window")
def test_the_last_row_does_not_wait_a_window_for_a_unit_its_count_may_have_had() -> None:
    """The run's last request saw the window full while the unit of the one sent a minute
    before it was coming back in the very same moment. With nothing in flight, no later count
    said so, and the last row waited a whole minute more; now one request looks once that
    unit is surely back."""
    outcome = run("sliding", seed=7, latency=0.05, rows=900)
    assert outcome.elapsed <= 1.05 * physical("sliding", 900, 300, 60.0)
    assert outcome.throttled <= 2


@pytest.mark.parametrize("seed", [23, 42, 202])
def test_a_sliding_window_echoes_each_burst_one_window_later(seed: int) -> None:
    outcome = run("sliding", seed=seed)
    assert outcome.elapsed <= 1.05 * physical("sliding", ROWS, LIMIT, WINDOW)
    assert outcome.throttled_share <= 0.01
    assert outcome.stats["kind"] == "sliding window"


@pytest.mark.parametrize("seed", [None, 5, 42])
def test_a_bucket_is_emptied_then_followed_at_its_refill(seed: int | None) -> None:
    """A token bucket: its 100 at once, then 50/s; reordered answers cost a few per cent."""
    outcome = run("token_bucket", seed=seed)
    assert outcome.elapsed <= (1.05 if seed is None else 1.08) * physical(
        "token_bucket", ROWS, LIMIT, WINDOW
    )
    assert outcome.throttled == 0


# --- the bounds on a fixed window's resets ----------------------------------------------------


def test_one_retry_after_and_our_first_request_pin_a_round_window() -> None:
    """Sent at 0 (answered at 1 ms), a 429 at 0.6 s says 2: the reset is due at 2.0 s."""
    bounds = ResetBounds(0.0, 0.001)
    bounds.counted(0.1)
    bounds.refused(0.6, 0.601, 2.0)
    assert bounds.period() == pytest.approx((1.599, 2.701), abs=1e-6)
    assert bounds.round_period() == 2.0
    earliest, latest = bounds.predict(1)  # type: ignore[misc]
    assert (earliest, latest) == pytest.approx((2.0, 2.001))


def test_a_429_after_the_reset_was_due_rules_the_round_length_out() -> None:
    """The window opened at 2.0 s; refused at 4.006 s, when 2 s said it was open: not 2 s."""
    bounds = ResetBounds(0.0, 0.001)
    bounds.refused(0.6, 0.601, 2.0)
    bounds.opened(2.005, 2.006)
    assert bounds.predict(2) == pytest.approx((4.0, 4.001))
    bounds.refused(4.006, 4.007, 1.0)
    prediction = bounds.predict(2)
    assert prediction is not None and prediction[0] >= 4.006


def test_resets_a_window_after_each_burst_read_as_a_sliding_window() -> None:
    """Quota back 2 s after each window's first request, however late that went."""
    bounds = ResetBounds(0.0, 0.001)
    bounds.refused(0.6, 0.601, 2.0)
    bounds.opened(2.5, 2.501)  # the window's first request went late, at 2.5 s
    bounds.refused(4.4, 4.401, 1.0)  # a fixed 2 s window would have been open since 4.0
    bounds.refused(4.45, 4.451, 1.0)
    assert bounds.sliding
    earliest, latest = bounds.predict(2)  # type: ignore[misc]
    assert 4.45 <= earliest <= latest <= 4.51


def test_a_window_found_begun_is_guessed_at_the_shortest_round_length_the_bounds_allow() -> None:
    """A job whose first count showed another's requests does not know when window 0 began:
    nothing bounds the length from above, so the next reset is guessed from the shortest round
    length, 1 s; a 429 after that guess rules 1 s out, and the guess moves to 2 s."""
    bounds = ResetBounds(1.3, 1.301, began=False)
    bounds.counted(1.4)
    assert bounds.period() is None
    assert bounds.predict(1, guess=False) is None
    assert bounds.predict(1) == pytest.approx((1.4, 2.301))
    bounds.refused(2.31, 2.311, 1.0)  # still window 0 at 2.31 s: longer than 1.009 s
    assert bounds.predict(1) == pytest.approx((2.31, 3.301))
    bounds.opened(3.31, 3.311)  # one reset seen: window 0's start is still unknown
    assert bounds.period() is None
    assert bounds.predict(2) == pytest.approx((4.31, 5.301))


@pytest.mark.parametrize("shared", [False, True])
def test_a_windows_last_unit_is_held_to_bracket_the_reset_only_while_the_key_is_ours(
    shared: bool,
) -> None:
    """Resets 1.6–1.76 s apart (no round length fits): the next is due between 3.199 and
    3.52 s. Alone on the key, the window's last unit waits until just before the earliest,
    so that its count brackets the reset. With another client it goes now: the other would
    spend it meanwhile, and the look would draw a 429."""
    from batchcall._limiter._counted import LEAD, CountedWindow
    from batchcall._limiter._quota import Quota

    bounds = ResetBounds(0.0, 0.001)
    bounds.counted(1.6)
    bounds.opened(1.75, 1.76)
    assert bounds.predict(2) == pytest.approx((3.199, 3.52))
    quota = Quota()
    quota.set_limit(100)
    seq = quota.send(2.39, keep=2.0)
    quota.answered(seq)
    quota.count(seq, 2.39)
    quota.observe(seq, 2.4, 2.39, 1)  # one unit left of this window
    quota.backlog, quota.shared = 500, shared
    wait = CountedWindow(1000.0, bounds).wait(2.5, quota)
    if shared:
        assert wait <= 0
    else:
        assert wait == pytest.approx(3.199 - LEAD - 2.5)


def test_the_round_lengths_are_sorted() -> None:
    assert list(resets.ROUND_PERIODS) == sorted(resets.ROUND_PERIODS)


# --- headers only on 429, with a one-second window ---------------------------------------------


@pytest.fixture
def second_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """50 per second: Retry-After is always 1, which fits every kind of limit."""
    import test_limiter

    monkeypatch.setattr(test_limiter, "LIMIT", 50)
    monkeypatch.setattr(test_limiter, "WINDOW", 1.0)


def blind_run(kind: str, *, seed: int | None, latency: float) -> Outcome:
    server = Server(kind, headers="on_429", latency=latency)
    outcome = drive(server, rows=ROWS, jitter=seed)
    assert server.accepted == ROWS
    return outcome


@pytest.mark.usefixtures("second_window")
@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000), latency=st.sampled_from([0.001, 0.005, 0.02]))
def test_a_blind_second_window_is_counted_by_our_own_sends(seed: int, latency: float) -> None:
    """Limit and Retry-After only on 429s: within 15% of the physical limit, ≤ 2% refused.

    The blind start costs most of that: the rule's first window goes by before the first
    429 says the limit.
    """
    outcome = blind_run("fixed", seed=seed, latency=latency)
    assert outcome.elapsed <= 1.15 * physical("fixed", ROWS, 50, 1.0)
    assert outcome.throttled_share <= 0.02
    assert outcome.stats["kind"] == "fixed window"
    assert outcome.stats["window"] == pytest.approx(1.0)


@pytest.mark.usefixtures("second_window")
@pytest.mark.parametrize("kind", ["sliding", "token_bucket"])
def test_a_blind_count_that_a_429_contradicts_is_given_up(kind: str) -> None:
    """A sliding window or a bucket refuses what a fixed window's count allowed: blind again,
    with no window reported, a few 429s, and every row created once."""
    outcome = blind_run(kind, seed=4, latency=0.005)
    assert "window" not in outcome.stats and "kind" not in outcome.stats
    assert outcome.throttled_share <= 0.025


# --- a small window, its counts reordered far ---------------------------------------------------


@pytest.fixture
def sandbox_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """20 per second, as `--sandbox` serves it."""
    import test_limiter

    monkeypatch.setattr(test_limiter, "LIMIT", 20)
    monkeypatch.setattr(test_limiter, "WINDOW", 1.0)


@pytest.mark.usefixtures("sandbox_window")
@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), trips=st.sampled_from([0.02, 0.04, 0.08]))
def test_a_count_that_overtook_others_is_not_taken_for_a_reset(seed: int, trips: float) -> None:
    """`run --sandbox` on a loaded machine: one request's count overtook six sent before it.

    The quota it seemed to hand back (its count less the six still in flight) read as a
    window's reset, and the gate spent a window it did not have: six 429s in 47 requests. A
    count shows a reset only when it is at least the count of a request answered before it
    left, which reached the server first whatever the order. Only the first reset, which
    nothing bounds yet, costs a 429.
    """
    server = Server("fixed", latency=0.01)
    outcome = drive(server, rows=47, jitter=seed, trips=trips)
    assert server.accepted == 47
    assert outcome.throttled <= 1
    assert outcome.stats["window"] == pytest.approx(1.0)
