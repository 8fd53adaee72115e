"""`OwnCount`: a fixed window's quota counted from our own sends, for a server silent on 201s."""

from __future__ import annotations

import pytest

from batchcall._limiter._owncount import OwnCount, blind_reset, first_window


def armed(limit: int = 3) -> OwnCount:
    count = OwnCount()
    count.arm(limit, at=10.0)
    return count


def test_sends_before_the_pause_ends_are_not_counted() -> None:
    count = armed()
    count.sent(0, 9.9)
    assert not count.counts(0) and count.remaining(0) is None
    count.sent(1, 10.0)
    assert count.counts(1) and count.remaining(1) == 2


def test_a_window_opens_after_limit_sends_and_its_look_may_be_refused() -> None:
    """Three sends fill a window of 3; the fourth looks, and its 429 was foreseen."""
    count = armed()
    for seq in range(4):
        count.sent(seq, 10.0 + seq)
    assert [count.remaining(seq) for seq in range(3)] == [2, 1, 0]
    assert count.refused(3, issued=4)  # the look: the old window still held
    count.sent(4, 15.0)  # after the pause: the new window opens here
    assert count.remaining(4) == 2
    assert not count.failed


def test_in_flight_grow_by_one_per_acceptance_until_a_looked_window_is_full() -> None:
    count = armed(limit=2)
    count.sent(0, 10.0)
    assert count.may_send(0) and not count.may_send(1)
    count.remaining(0)
    assert count.may_send(1) and not count.may_send(2)
    count.sent(1, 10.1)
    count.remaining(1)
    assert not count.confirmed  # a window after a pause holds all, whatever its phase
    count.sent(2, 11.0)  # the look opens the next window
    count.sent(3, 11.1)
    count.remaining(2)
    count.remaining(3)
    assert count.confirmed and count.may_send(50)


def test_a_429_in_the_window_after_a_pause_ends_the_count_for_good() -> None:
    """After a pause a fixed window holds its whole quota: a 429 there is another kind."""
    count = armed()
    count.sent(0, 10.0)
    count.sent(1, 10.0)
    count.remaining(0)
    assert not count.refused(1, issued=2)
    assert count.failed and not count.active
    assert count.counts(1) and not count.refused(1, issued=2)  # its own in flight: no news
    count.arm(3, at=20.0)
    assert not count.active  # never again this run


def test_a_window_spilt_into_by_the_burst_before_is_read_as_full() -> None:
    """A 429 in a window a look opened: the burst before crossed a reset; the window is
    full, and in-flight 429s of it are no news, up to three such windows."""
    count = armed()
    for seq, at in enumerate((10.0, 10.0, 10.0, 11.0, 11.0, 11.0)):
        count.sent(seq, at)
    assert [count.remaining(seq) for seq in range(4)] == [2, 1, 0, 2]
    assert count.refused(4, issued=6)  # window 2 held only one of ours
    assert count.refused(5, issued=6)  # in flight with it
    assert not count.failed
    count.sent(6, 12.0)  # after the pause: a new window
    assert count.remaining(6) == 2


def test_a_blind_429_and_our_dense_sends_place_the_next_reset() -> None:
    """50 per second, sent at 50/s from 1.0 s: the 429 at 1.98 s comes 20 ms before the reset
    that Retry-After 1 would place anywhere in the next second."""
    counted = [0.5, 0.6, 0.7, 0.8] + [1.0 + i * 0.02 for i in range(50)]
    reading = blind_reset(counted, 50, (1.985, 1.99, 1.0), slack=0.002)
    assert reading is not None
    reset, period = reading
    assert period == 1.0 and 2.0 <= reset <= 2.01
    # A pause that ends late in a window waits for the next reset, so its burst cannot spill.
    assert first_window(reading, 2.99) == pytest.approx(reset + 1.0)
    assert first_window(reading, 2.1) == 2.1
    assert first_window(None, 2.99) == 2.99


def test_sparse_sends_place_no_reset() -> None:
    counted = [i * 0.5 for i in range(60)]
    assert blind_reset(counted, 50, (30.0, 30.01, 1.0), slack=0.002) is None


def test_counts_falling_faster_than_our_sends_say_another_client_spends_the_key() -> None:
    """Each of our answers shows two more gone than we sent: after a few, the key is shared.
    The same counts with only our own requests in them never say so."""
    from batchcall._limiter._learner import Learner

    def feed(extra: int) -> bool:
        learner = Learner(1000.0)
        learner.heard_limit(100)
        remaining = 100
        for i in range(20):
            seq = learner.sent(i * 0.01)
            remaining -= 1 + extra
            learner.answered(seq)
            learner.accepted(seq, i * 0.01, i * 0.01 + 0.001, remaining)
        return learner.quota.shared

    assert feed(extra=2)
    assert not feed(extra=0)


def test_a_shared_key_takes_half_of_what_the_count_shows() -> None:
    """With another client seen and no echo of our own requests to foresee returns by, each
    client takes half of what the newest count shows: both see it and spend it before either's
    next count shows the other's spending, so taking all of it would spend it twice."""
    from batchcall._limiter._model import RECHECK
    from batchcall._limiter._quota import Quota
    from batchcall._limiter._rolling import Rolling

    quota = Quota()
    quota.set_limit(100)
    quota.observe(quota.send(0.0, keep=1.0), 0.001, 0.0, 10)
    for _ in range(4):
        quota.send(0.002, keep=1.0)  # four in flight, six left by our count
    rolling = Rolling(1000.0)
    assert rolling.available(0.003, quota) == 6
    assert rolling.wait(0.003, quota) < RECHECK
    quota.shared = True
    assert rolling.available(0.003, quota) == 1  # our half (5), less the four in flight
    assert rolling.wait(0.003, quota) == RECHECK
    # A bucket is paced by its count (`Rolling.pace`), never burst: the same count gives two
    # jobs the same pace whether or not each has seen the other, so it is not halved. (One
    # that halves while the other does not hands the other two thirds of the refill.)
    rolling.echo.broken = True
    assert rolling.bucket
    assert rolling.available(0.003, quota) == 6


def test_a_job_that_finds_a_buckets_stock_spent_by_another_takes_it_back() -> None:
    """A job that starts a moment after another finds the bucket's stock spent: its first
    count shows how far the other is ahead, and it takes twice the count's share until its
    own sends have made that up (each gains half a unit on a job pacing by the same count)."""
    from batchcall._limiter._learner import Learner

    learner = Learner(1000.0)
    learner.heard_limit(100)
    seq = learner.sent(0.0)
    learner.answered(seq)
    learner.accepted(seq, 0.0, 0.001, 15)  # 85 counted: our one, and 84 of another's
    quota = learner.quota
    assert quota.shared and quota.owed == 83
    rolling = learner._rolling
    rolling.settled, rolling.echo.broken = True, True  # a bucket
    learner.model = rolling
    assert rolling.bucket and rolling.available(0.002, quota) == 2 * 15
    for i in range(166):
        learner.answered(learner.sent(0.002 + i * 1e-4))
    assert quota.owed == 0  # made up: the count's own share again
    assert rolling.available(0.02, quota) == quota.left


def test_before_the_kind_is_known_a_429_of_a_second_pauses_a_quarter_of_one() -> None:
    """Counts came, but no reset or trickle told the kind yet: a 429 that asks for a second
    may be a bucket's, whose next unit is a moment away, so the pause is short; a longer
    Retry-After is a window's, paused to its foreseen reset."""
    from batchcall._limiter._learner import UNSETTLED_LOOK, Learner

    learner = Learner(1000.0)
    learner.heard_limit(100)
    for i in range(3):
        seq = learner.sent(i * 0.01)
        learner.answered(seq)
        learner.accepted(seq, i * 0.01, i * 0.01 + 0.001, 99 - i)
    assert learner.model is learner._rolling and not learner._rolling.settled
    assert learner.pause(0.1, 1.0) == UNSETTLED_LOOK
    assert learner.pause(0.1, 2.0) > UNSETTLED_LOOK  # to the reset the bounds foresee


def test_a_shared_sliding_window_leaves_the_other_job_its_half_of_each_lump() -> None:
    """Two jobs come back to a sliding window's lump at different times (each 429 pause ends
    when its own whole-second Retry-After does). The first takes half of the window and leaves
    the rest for a second; the later one finds its half there and takes all of it; what
    nobody takes is spent once the hold is over."""
    from batchcall._limiter._lumps import LUMP_HOLD
    from batchcall._limiter._quota import Quota
    from batchcall._limiter._rolling import Rolling

    def job(remaining: int) -> tuple[Quota, Rolling]:
        quota = Quota()
        quota.set_limit(100)
        seq = quota.send(2.0, keep=1.0)
        quota.answered(seq)
        quota.observe(seq, 2.001, 2.0, remaining)
        quota.shared = True
        rolling = Rolling(1000.0)
        rolling.echo.broken = rolling.windowed = rolling.settled = True
        return quota, rolling

    first, rolling = job(99)  # back first: the whole lump is there
    assert rolling.available(2.002, first) == 50
    for _ in range(50):
        first.answered(first.send(2.003, keep=1.0))
    assert rolling.available(2.004, first) == 0  # the rest is the other job's, for now
    # The lump comes back as fast as its burst went: a count that finds it empty for a moment,
    # and the next that shows more back, are the same lump, and our half of it is taken.
    for remaining in (0, 10):
        seq = first.send(2.1, keep=1.0)
        first.answered(seq)
        first.observe(seq, 2.101, 2.1, remaining)
        assert rolling.available(2.102, first) <= 0
    assert rolling.available(2.001 + LUMP_HOLD, first) == 10  # then ours
    late, other = job(49)  # back later: the first job took its half
    assert other.available(2.002, late) == 49
    for _ in range(49):
        late.answered(late.send(2.003, keep=1.0))
    seq = late.send(2.004, keep=1.0)
    late.answered(seq)
    late.observe(seq, 2.005, 2.004, 0)  # spent: the other took the 50 we did not
    assert other.available(2.006, late) == 0 and other.lumps.expect

    # A client that takes less than about half of each lump is not held half of the next:
    # each count is halved instead.
    alone, rolling = job(99)
    assert rolling.available(2.002, alone) == 50
    for _ in range(79):
        alone.answered(alone.send(2.003, keep=1.0))  # 80 of the lump were ours
    seq = alone.send(2.6, keep=1.0)  # the hold is over, and the lump spent
    alone.answered(seq)
    alone.observe(seq, 2.601, 2.6, 0)
    assert rolling.available(2.602, alone) == 0 and not rolling.lumps.expect
    seq = alone.send(4.0, keep=1.0)
    alone.answered(seq)
    alone.observe(seq, 4.001, 4.0, 80)
    assert rolling.available(4.002, alone) == 40
