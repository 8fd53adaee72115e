"""Frequency caps held to a brute-force oracle, with hypothesis: random histories, random caps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_helpers import NOW, SCRIPT, au_mobile, call

from batchcall._ledger import Call, Cap, Placed, Policy, open_ledger
from batchcall._ledger._policy import decide

PHONE = au_mobile(1)
caps = st.lists(
    st.builds(Cap, st.integers(1, 3), st.integers(1, 72).map(lambda h: timedelta(hours=h))),
    min_size=1,
    max_size=2,
)
offsets = st.lists(st.integers(0, 10 * 24 * 60), min_size=0, max_size=8)  # minutes after NOW


def fits(times: list[datetime], cap: Cap) -> bool:
    """The oracle: no window of `cap.period` holds more than `cap.n` of `times`."""
    ordered = sorted(times)
    return all(
        sum(1 for t in ordered if start <= t < start + cap.period) <= cap.n for start in ordered
    )


def placed(minutes: list[int]) -> list[Placed]:
    return [
        Placed(PHONE, "other", NOW + timedelta(minutes=m), None, f"r{i}", i, None, "scheduled")
        for i, m in enumerate(minutes)
    ]


@given(caps=caps, history=offsets, asked=st.integers(0, 10 * 24 * 60))
@settings(max_examples=300, deadline=None)
def test_a_deferral_is_the_first_instant_every_cap_allows(
    caps: list[Cap], history: list[int], asked: int
) -> None:
    """Whatever the calls on record, a call goes at its own time when the caps allow it, and
    is otherwise moved to an instant that keeps every cap, with no earlier such instant."""
    on_record = placed(history)
    times = [p.ring_at for p in on_record]
    t = NOW + timedelta(minutes=asked)
    policy = Policy(allow_repeat=True, caps=tuple(caps), max_defer_days=60)
    verdict = decide(Call(PHONE, SCRIPT, t, "new", 1), on_record, None, policy, NOW, None)
    ok_now = all(fits([*times, t], cap) for cap in caps)
    if ok_now:
        assert verdict.action == "send" and verdict.ring_at == t
        return
    if not all(fits(times, cap) for cap in caps):
        return  # history already breaks a cap (imported calls can): any answer that defers is ok
    assert verdict.action == "defer" and verdict.ring_at is not None and verdict.ring_at > t
    moved = verdict.ring_at
    assert all(fits([*times, moved], cap) for cap in caps)
    # The first allowed instant is t or just after a recorded call leaves a window.
    candidates = [t] + [e + cap.period for e in times for cap in caps]
    for c in candidates:
        if t <= c < moved:
            assert not all(fits([*times, c], cap) for cap in caps), f"{c} was free before {moved}"


@given(caps=caps, asked=st.lists(st.integers(0, 5 * 24 * 60), min_size=1, max_size=10))
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_reservations_never_break_a_cap(
    caps: list[Cap], asked: list[int], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Reserving calls one by one on a real ledger, whatever their order and times: the
    phone's calls on record keep every cap, and none rings before it asked to."""
    path: Path = tmp_path_factory.mktemp("oracle") / "ledger.sqlite"
    policy = Policy(allow_repeat=True, caps=tuple(caps), max_defer_days=60)
    with open_ledger(path, team="oracle") as ledger:
        for row, minutes in enumerate(asked):
            t = NOW + timedelta(minutes=minutes)
            verdict = ledger.reserve(call(PHONE, at=t, run="r", row=row), policy, now=NOW)
            assert verdict.action != "skip"
            assert verdict.ring_at is not None and verdict.ring_at >= t
        rings = [p.ring_at for p in ledger.history(PHONE)]
    assert len(rings) == len(asked)
    assert all(fits(rings, cap) for cap in caps)


def test_naive_times_are_refused(tmp_path: Path) -> None:
    """A time without a zone is a bug in the caller: it raises, never read as local time, and
    nothing is written."""
    naive = datetime(2031, 3, 4, 12, 0)
    with open_ledger(tmp_path / "ledger.sqlite", team="t") as ledger:
        for action in (
            lambda: ledger.check([call(PHONE, at=naive)], Policy(), now=NOW),
            lambda: ledger.reserve(call(PHONE, at=naive), Policy(), now=NOW),
            lambda: ledger.reserve(call(PHONE, at=NOW), Policy(), now=naive),
        ):
            with pytest.raises(ValueError, match="no time zone"):
                action()
        assert ledger.history(PHONE) == []


def test_times_in_any_zone_mean_the_same_instant(tmp_path: Path) -> None:
    """A call asked for 22:00 at +10:00 is the same call as one asked for 12:00Z, and the
    ledger returns its times in UTC."""
    local = datetime(2031, 3, 5, 22, 0, tzinfo=timezone(timedelta(hours=10)))
    with open_ledger(tmp_path / "ledger.sqlite", team="t") as ledger:
        assert ledger.reserve(call(PHONE, at=local, run="a"), Policy(), now=NOW).action == "send"
        same = call(PHONE, at=datetime(2031, 3, 5, 12, 0, tzinfo=UTC), run="b")
        assert ledger.check([same], Policy(), now=NOW)[0].outcome == "already_scheduled"
        (on_record,) = ledger.history(PHONE)
        assert on_record.ring_at.tzinfo is UTC and on_record.ring_at == local
