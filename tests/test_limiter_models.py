"""The limiter's parts alone, on explicit clock readings: the quota's books and each rate model.

`test_limiter.py` runs the whole gate against simulated servers; these tests show, one part at
a time, the decisions those runs are made of, with every instant given by hand.
"""

from __future__ import annotations

import pytest

from batchcall._limiter._blind import CUBIC_C, SLOW_START_DOUBLING, START_RATE, Blind
from batchcall._limiter._echo import Echo
from batchcall._limiter._fixed import FixedWindow, WindowReader
from batchcall._limiter._learner import Learner
from batchcall._limiter._model import CUBIC_BETA, RECHECK
from batchcall._limiter._quota import Quota
from batchcall._limiter._rolling import REFILL_SPAN, Rolling
from batchcall._limiter._slide import SlideGuess

CEILING = 1000.0


def accepted_quota(limit: int, sends: list[float], *, keep: float = 1.0) -> Quota:
    """A quota whose every request, sent at `sends`, was answered and counted."""
    quota = Quota()
    quota.set_limit(limit)
    for t in sends:
        seq = quota.send(t, keep=keep)
        quota.answered(seq)
        quota.count(seq, t)
    return quota


# --- the quota's books --------------------------------------------------------------------


def test_a_count_is_discounted_by_the_requests_sent_after_it() -> None:
    """Remaining=10 from the first request, then two more sent: only 8 are left to spend."""
    quota = accepted_quota(100, [0.0])
    assert quota.observe(0, 0.01, 0.0, 10) is None  # the first count hands nothing back
    quota.send(0.02, keep=1.0)
    quota.send(0.03, keep=1.0)
    assert quota.left == 8
    assert quota.in_flight == 2


def test_refused_requests_are_not_counted_as_spent_quota() -> None:
    """A 429 spends nothing: Remaining 10 -> 7 over four requests, one refused, is no refill."""
    quota = accepted_quota(100, [0.0, 0.1, 0.2, 0.3, 0.4])
    quota.observe(0, 0.01, 0.0, 10)
    quota.refuse(2)
    assert quota.observe(4, 0.41, 0.4, 7) == 0
    assert not quota.is_newer(3)  # an answer that overtook: stale, as the gate ignores it


# --- Blind: slow start, then CUBIC -------------------------------------------------------------


def test_blind_slow_start_doubles_every_slow_start_doubling() -> None:
    """With no count from the server, the rate starts at START_RATE and doubles every 0.4 s."""
    blind, quota = Blind(CEILING), accepted_quota(100, [0.0])
    assert blind.rate(0.0, quota) == START_RATE
    assert blind.rate(SLOW_START_DOUBLING, quota) == 2 * START_RATE
    assert blind.rate(2 * SLOW_START_DOUBLING, quota) == 4 * START_RATE
    assert Blind(10.0).rate(5.0, quota) == 10.0  # never above the user's --max-rate


def test_blind_cubic_recovers_around_the_throttled_rate() -> None:
    """After a 429, the rate drops to 70% of the throttled one, then climbs back and beyond.

    The first throttle is bounded by the average since the start (30/s: 60 accepted in 2 s),
    not by the 40/s of the last second, which overshot during the slow start.
    """
    blind = Blind(CEILING)
    quota = accepted_quota(100, [i / 20 for i in range(20)] + [1 + i / 40 for i in range(40)])
    blind.throttled(2.0, quota, paused_until=3.0)
    blind.throttled(2.5, quota, paused_until=3.5)  # within the same pause: already in flight
    plateau = (30 * (1 - CUBIC_BETA) / CUBIC_C) ** (1 / 3)
    assert blind.rate(3.0, quota) == pytest.approx(CUBIC_BETA * 30)
    assert blind.rate(3.0 + plateau, quota) == pytest.approx(30)
    assert blind.rate(3.0 + 2 * plateau, quota) > 30 + 5  # probing above it again


# --- FixedWindow: period and phase from resets ----------------------------------------------


def seen_reset(at: float, after: float) -> FixedWindow:
    window = FixedWindow.seen(CEILING, at=at, after=after, started=0.0, trusted=False)
    window.reset(at, after=after, started=0.0)
    return window


def test_fixed_window_learns_period_and_phase_from_two_sharp_resets() -> None:
    """Resets seen at 2.0 s and, after an idle window, at 6.0 s: a 2 s window from 2.0 s."""
    window = seen_reset(2.0, after=1.98)
    assert window.reset(6.0, after=5.99, started=0.0)
    assert (window.period, window.phase) == (2.0, 2.0)
    assert window.next_reset(6.5) == 8.0


def test_fixed_window_ignores_a_reset_seen_only_after_a_pause() -> None:
    """A reset noticed 1.3 s late (the gate was paused) does not stretch the window."""
    window = seen_reset(2.0, after=1.98)
    assert not window.reset(7.3, after=6.0, started=0.0)
    assert (window.period, window.phase) == (2.0, 2.0)


def test_fixed_window_spreads_what_is_left_until_the_reset() -> None:
    """81 left one second before the reset: 80 go at 80/s, one is held back as the margin."""
    window = seen_reset(2.0, after=1.98)
    quota = accepted_quota(100, [3.0])
    quota.observe(0, 3.0, 3.0, 81)
    assert window.rate(3.0, quota) == 80.0


def test_fixed_window_with_only_the_margin_left_looks_again_at_the_reset() -> None:
    """With the window spent and a request in flight, the gate holds, never past the reset."""
    window = seen_reset(2.0, after=1.98)
    quota = accepted_quota(100, [3.9])
    quota.observe(0, 3.91, 3.9, 1)
    quota.send(3.95, keep=1.0)
    assert window.wait(3.95, quota) == pytest.approx(RECHECK)
    assert window.wait(3.97, quota) == pytest.approx(0.03)


def test_a_blind_429_reads_a_fixed_window_when_retry_after_agrees() -> None:
    """A 429 one second into the second 4 s window, Retry-After 3: a 4 s window reset at 4.0."""
    sends = [i * 0.04 for i in range(100)] + [4.0 + i * 0.01 for i in range(100)]
    quota = accepted_quota(100, sends)
    seq = quota.send(5.0, keep=1.0)
    quota.answered(seq)
    quota.refuse(seq)
    reader = WindowReader()
    reader.refused(seq, 5.0, 3.0)
    reading = reader.read(5.01, quota)
    assert reading is not None
    assert reading.period == pytest.approx(4.0)
    assert reading.reset == pytest.approx(4.0)

    short = WindowReader()
    short.refused(seq, 5.0, 1.0)  # a bucket's next token, or a sliding window's next expiry
    assert short.read(5.01, quota) is None


# --- Rolling: refill rate and echo ---------------------------------------------------------


def test_rolling_measures_the_refill_over_the_refill_span() -> None:
    """5 requests spent and Remaining unchanged over 0.25 s: 20/s come back, and it paces there
    once only the margin is left; quota beyond the margin goes at full speed."""
    rolling = Rolling(CEILING)
    quota = accepted_quota(100, [i / 20 for i in range(6)])
    rolling.measure(0.0, 0, 50, quota)
    rolling.measure(REFILL_SPAN / 2, 5, 50, quota)
    assert rolling.refill == 20.0
    quota.observe(5, REFILL_SPAN / 2, 0.25, 2)
    assert rolling.pace(0.25, quota, 2) == CEILING  # 2 left, 1 held back: spent at once
    assert rolling.pace(0.25, quota, 1) == 20.0  # only the margin: at the refill


def test_a_bucket_is_paced_by_its_count_alone_so_that_jobs_sharing_it_converge() -> None:
    """With no echo, a bucket's pace follows the count, not the refill measured net of the
    other job's spending: two jobs that see the same count go at the same pace, whatever split
    they fell into. A lump or a window-long Retry-After says it is a window after all, and
    the run's last rows go at once."""
    quota = accepted_quota(100, [0.0])
    quota.observe(0, 0.001, 0.0, 50)
    jobs = [Rolling(CEILING), Rolling(CEILING)]
    for job, refill in zip(jobs, (5.0, 45.0), strict=True):
        job.echo.broken = True
        job.refill = refill
        job.measure(0.0, 0, 50, quota)
    assert jobs[0].pace(0.1, quota, 11) == jobs[1].pace(0.1, quota, 11) == pytest.approx(20.0)
    assert jobs[0].pace(0.1, quota, 21) == pytest.approx(40.0)  # twice the count, twice the pace
    # A refill of half the limit per second, measured a little off either way, and margins
    # that differ: still the same pace from the same count.
    jobs[0].peak, jobs[1].peak = 45.0, 60.0
    quota.margin = 3
    assert jobs[0].pace(0.1, quota, 11) == jobs[1].pace(0.1, quota, 11) == pytest.approx(20.0)
    quota.margin = 1
    quota.backlog = 5
    assert jobs[0].pace(0.1, quota, 11) == CEILING  # the last rows fit: no reason to keep any
    quota.backlog = None
    jobs[0].measure(0.05, 1, 80, quota)  # 31 back within 0.05 s: a burst's replay
    assert jobs[0].windowed and jobs[0].pace(0.1, quota, 11) == CEILING
    jobs[1].measure(0.05, 1, 52, quota)  # 3 back: a refill
    assert not jobs[1].windowed
    jobs[1].refused(retry_after=2.0)
    assert jobs[1].windowed and jobs[1].pace(0.1, quota, 11) == CEILING


def sliding_echo(sends: list[float], window: float) -> Echo:
    """An echo fed, at each of our sends, what a sliding log of `window` seconds hands back."""
    echo, counted, expired = Echo(), [], 0
    for at in sends:
        counted.append(at)
        now_expired = sum(1 for t in counted if t <= at - window)
        echo.observe(at, now_expired - expired, counted)
        expired = now_expired
    return echo


def test_the_units_a_count_had_not_seen_expire_are_told_by_the_total_handed_back() -> None:
    """Mid-run, with nothing in flight, a unit that the last count may or may not have seen
    come back would wait for the next return, most of a window. The total handed back says
    which: the first `expired` of our counted requests have come back, and no more."""
    echo = Echo()
    echo.low, echo.high, echo.expired = 1.99, 2.0, 50
    counted = [i * 0.01 for i in range(100)]
    assert echo.window == pytest.approx(2.0 + echo.guard)
    since = 2.495  # surely saw the first 49 expire (sent by 0.485), maybe up to 52 (by 0.515)
    assert echo.doubted(since, counted) == (3, pytest.approx(0.51 + echo.window))
    assert echo.unseen(since, counted) == (2, pytest.approx(0.51 + echo.window))
    echo.expired = 52  # all three were in the count
    assert echo.unseen(since, counted)[0] == 0


def test_rolling_echo_recognises_a_sliding_window_from_our_own_sends() -> None:
    """Quota coming back exactly 2 s after each of our sends gives a 2 s window."""
    echo = sliding_echo([i / 8 for i in range(40)], window=2.0)
    assert echo.window == pytest.approx(2.0, abs=0.05)
    # At 3.05 s our send of 1.125 s is the next to come back, one window after it left.
    assert echo.next_return(3.05, [i / 8 for i in range(40)]) == pytest.approx(3.125, abs=0.05)


def test_rolling_echo_breaks_for_good_on_a_token_bucket() -> None:
    """A bucket refills at 5/s whenever we sent (two bursts, at 0 s and 1 s): the bounds cross."""
    echo = Echo()
    counted = [0.0] * 5 + [1.0] * 5
    echo.observe(0.5, 2, counted)
    echo.observe(1.5, 5, counted)
    assert not echo.broken
    echo.observe(1.9, 2, counted)
    assert echo.broken and echo.window is None
    echo.observe(2.5, 1, counted)
    assert echo.broken


# --- the learner: which model is in use ------------------------------------------------------


def test_the_learner_switches_from_blind_to_fixed_to_rolling_as_the_counts_say() -> None:
    """Blind until a count, then a fixed window at a jump, then rolling for good at a trickle.

    Remaining jumps from 40 to 99 at 2.0 s: a reset. Then one request's worth comes back with
    each request, five times: no fixed window does that, a bucket or a sliding window does.
    """
    learner = Learner(CEILING)
    remaining = iter([99, 70, 40, 99, 99, 99, 99, 99, 99, 99, 99])
    times = [0.0, 0.5, 1.0, 2.0, 2.2, 2.4, 2.6, 2.8, 3.0, 3.2, 3.4]
    kinds = []
    for at in times:
        seq = learner.sent(at)
        learner.answered(seq)
        learner.heard_limit(100)
        kinds.append(type(learner.model).__name__)
        learner.accepted(seq, at, at + 0.001, next(remaining))
    kinds.append(type(learner.model).__name__)
    assert kinds[:4] == ["Blind", "Rolling", "Rolling", "Rolling"]
    assert kinds[4:9] == ["CountedWindow"] * 5
    assert kinds[9:] == ["Rolling"] * 3


def test_a_shared_sliding_windows_length_is_guessed_from_our_429s() -> None:
    """The shortest round length under which none of ours would have left before a 429's
    Retry-After allows; a pause then ends as our oldest request in the window leaves it."""
    guess = SlideGuess()
    counted = [0.0 + 0.001 * i for i in range(50)]  # our half of a burst at 0.0-0.05
    trip = 0.01
    # Refused at 0.3 with Retry-After 2: nothing back before 1.3, yet a 1 s window would
    # have handed back our request of 0.0 at 1.0.
    guess.refused(0.29, 0.3, 2.0, counted, trip)
    assert guess.window == 2.0
    # A 429 whose Retry-After ends sooner than the guess leaves the pause as it is.
    assert guess.back(1.5, 0.5, counted, trip) is None
    assert guess.back(0.3, 2.0, counted, trip) == pytest.approx(2.01)
    # The look at 2.01 is accepted: the guess held, and the report may say it.
    assert not guess.confirmed
    guess.accepted(2.01)
    assert guess.confirmed
    # Refused at 2.5 with Retry-After 2: our request of 2.01 is in the window, and with it
    # nothing rules 2 s out (the window is full of the other client's requests).
    counted.append(2.01)
    guess.refused(2.49, 2.5, 2.0, counted, trip)
    assert guess.back(2.5, 2.0, counted, trip) == pytest.approx(4.02)
    # The look at 4.02 finds the window full: the other client may have taken the unit, so
    # the next pause is left whole; a second refused look rules the guess out.
    guess.refused(4.02, 4.03, 1.0, counted, trip)
    assert guess.window == 2.0
    assert guess.back(4.03, 1.0, counted, trip) is None
    counted.append(4.04)  # the burst after the whole pause
    guess.refused(5.03, 5.04, 2.0, counted, trip)
    assert guess.back(5.04, 2.0, counted, trip) == pytest.approx(6.05)
    guess.refused(6.05, 6.06, 1.0, counted, trip)
    assert (guess.window, guess.confirmed) == (3.0, False)


def test_after_a_refused_look_the_pause_ends_when_our_part_of_the_lump_is_back() -> None:
    """The other job, back first, takes the units as they come back until it has its half:
    a look refused meanwhile waits for the last of ours in the window, not a whole second."""
    guess, trip = SlideGuess(), 0.01
    counted = [2.0 + 0.01 * i for i in range(10)]  # our part of the last burst
    guess.refused(2.3, 2.31, 2.0, counted, trip)  # rules 1 s out
    assert guess.back(2.31, 2.0, counted, trip) == pytest.approx(4.01)  # the first to leave
    guess.refused(4.01, 4.02, 1.0, counted, trip)  # the other job took it
    assert guess.window == 2.0
    assert guess.back(4.02, 1.0, counted, trip) == pytest.approx(4.10)  # the last to leave
    guess.accepted(4.10)
    assert guess.confirmed


def test_a_shared_sliding_window_is_reported_as_one_with_the_length_a_pause_confirmed() -> None:
    """Another client broke the echo, but lumps showed a window: the report says a sliding
    window, and gives the guessed length only once a pause it shortened was accepted."""
    from batchcall._limiter._learner import _learned

    quota = accepted_quota(100, [0.0])
    rolling = Rolling(CEILING)
    rolling.settled = rolling.windowed = rolling.echo.broken = True
    counted = [0.0 + 0.001 * i for i in range(50)]
    rolling.slide.refused(0.29, 0.3, 2.0, counted, 0.01)  # rules 1 s out
    assert _learned(rolling, rolling, quota)["kind"] == ("sliding window", "inferred")
    assert "window" not in _learned(rolling, rolling, quota)
    back = rolling.slide.back(0.3, 2.0, counted, 0.01)
    assert back is not None
    rolling.slide.accepted(back)
    assert _learned(rolling, rolling, quota)["window"] == (2.0, "inferred")
    rolling.windowed = False  # no lump, no long Retry-After: a bucket
    assert _learned(rolling, rolling, quota)["kind"] == ("token bucket", "inferred")


def test_a_shared_buckets_refill_is_reported_as_its_own_not_net_of_the_other_job() -> None:
    """Each count of a shared bucket shows the refill less the other job's spending (a
    two-job run reported 15.6/s for a bucket of 50/s): the report gives the highest measured."""
    from batchcall._limiter._learner import _learned

    quota = accepted_quota(100, [0.0])
    rolling = Rolling(CEILING)
    rolling.settled = rolling.echo.broken = True
    for i, remaining in enumerate([50, 60, 70, 80, 90]):  # alone: 50/s handed back
        rolling.measure(0.2 * i, i, remaining, quota)
    for i, remaining in enumerate([90, 90, 90, 90, 90], start=5):  # shared: 5/s net of it
        rolling.measure(0.2 * i, i, remaining, quota)
    assert rolling.refill is not None and rolling.refill < 10
    assert _learned(rolling, rolling, quota)["refill"] == (round(rolling.refill, 3), "inferred")
    quota.shared = True
    assert _learned(rolling, rolling, quota)["refill"][0] >= 50
