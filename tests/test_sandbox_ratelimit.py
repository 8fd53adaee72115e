"""The sandbox's rate-limit algorithms, driven by explicit clock readings: no sleeping."""

from __future__ import annotations

import pytest

from batchcall.sandbox._ratelimit import FixedWindow, Quota, SlidingWindow, TokenBucket


def test_fixed_window_refuses_past_the_limit_and_resets_at_the_window_edge():
    """A fixed window allows `limit` requests, then refuses until the next window begins."""
    gate = FixedWindow(limit=3, window=2.0)
    assert [gate.try_acquire(t) for t in (10.0, 10.5, 11.0, 11.5)] == [True, True, True, False]
    assert gate.remaining(11.5) == 0
    assert gate.retry_after(11.5) == pytest.approx(0.5)
    assert gate.try_acquire(12.0)  # a new window: the count starts again
    assert gate.remaining(12.0) == 2


def test_fixed_window_jumps_over_idle_windows():
    """After a long pause the window in force is the one containing now, with a full quota."""
    gate = FixedWindow(limit=2, window=1.0)
    gate.try_acquire(0.0)
    gate.try_acquire(0.1)
    assert gate.remaining(57.3) == 2
    assert gate.try_acquire(57.3)
    assert gate.retry_after(57.4) == 0.0


def test_sliding_window_allows_a_request_only_when_one_older_than_the_window_expires():
    """A sliding log never lets more than `limit` requests into any `window` seconds."""
    gate = SlidingWindow(limit=2, window=1.0)
    assert gate.try_acquire(0.0) and gate.try_acquire(0.4)
    assert not gate.try_acquire(0.9)
    assert gate.retry_after(0.9) == pytest.approx(0.1)
    assert gate.try_acquire(1.0)  # the request at 0.0 has left the window
    assert not gate.try_acquire(1.3)
    assert gate.retry_after(1.3) == pytest.approx(0.1)  # the one at 0.4 leaves at 1.4


def test_token_bucket_starts_full_and_refills_at_limit_per_window():
    """A bucket allows a burst of `limit`, then one request per window/limit seconds."""
    gate = TokenBucket(limit=4, window=2.0)  # refills 2 tokens a second
    assert all(gate.try_acquire(0.0) for _ in range(4))
    assert not gate.try_acquire(0.0)
    assert gate.retry_after(0.0) == pytest.approx(0.5)
    assert gate.try_acquire(0.5)
    assert gate.remaining(1.5) == 2
    assert gate.remaining(100.0) == 4  # never more than its capacity


@pytest.mark.parametrize("kind", ["fixed", "sliding", "token_bucket"])
def test_every_kind_admits_about_the_limit_over_many_windows(kind):
    """A client asking far too fast gets about limit/window per second, whatever the kind."""
    quota = Quota(kind=kind, limit=10, window=1.0)
    admitted = sum(quota.decide(i * 0.01).allowed for i in range(1000))  # 100/s for 10 s
    # 10 windows of 10, plus the token bucket's initial burst of one capacity.
    assert 100 <= admitted <= 110


def test_decision_reports_limit_remaining_and_retry_after():
    """Each decision carries the values the headers need; a refusal has remaining 0 and a wait."""
    quota = Quota(kind="fixed", limit=2, window=1.0)
    first, second, third = (quota.decide(t) for t in (5.0, 5.1, 5.2))
    assert (first.allowed, first.limit, first.remaining) == (True, 2, 1)
    assert (second.allowed, second.remaining) == (True, 0)
    assert (third.allowed, third.remaining) == (False, 0)
    assert third.retry_after == pytest.approx(0.8)


@pytest.mark.parametrize("kind", ["fixed", "sliding", "token_bucket"])
def test_other_client_spends_its_share_of_the_quota_even_against_a_greedy_client(kind):
    """With a 30% other client, a client asking far too fast still gets only about 70%."""
    quota = Quota(kind=kind, limit=100, window=2.0, other_client_share=0.3)
    ours = sum(quota.decide(i * 0.005).allowed for i in range(4000))  # 20 s of asking at 200/s
    # 15/s for 20 s is 300 requests; at most one window's worth may still be waiting.
    assert 270 <= quota.other_allowed <= 300
    assert 680 <= ours <= 730 + (100 if kind == "token_bucket" else 0)
    assert ours + quota.other_allowed <= 1000 + (100 if kind == "token_bucket" else 0)


def test_other_client_catches_up_after_idle_without_replaying_hours():
    """A long idle spell does not make the other client's backlog flood the current window."""
    quota = Quota(kind="sliding", limit=10, window=1.0, other_client_share=0.5)
    quota.decide(0.0)
    decision = quota.decide(3600.0)
    assert decision.allowed
    assert quota.other_allowed + quota.other_refused < 20


def test_limit_changes_at_the_scheduled_time_after_the_first_request():
    """`limit_change_at` seconds after the first request the limit becomes `limit_after`."""
    quota = Quota(kind="token_bucket", limit=10, window=1.0, limit_change_at=5.0, limit_after=4)
    assert quota.decide(100.0).limit == 10
    assert quota.decide(104.9).limit == 10
    after = quota.decide(105.0)
    assert after.limit == 4
    assert after.remaining <= 3
    admitted = sum(quota.decide(106.0 + i * 0.01).allowed for i in range(400))  # 4 s at 100/s
    assert 16 <= admitted <= 21
