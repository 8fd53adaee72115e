"""The ledger's policies, on SQLite and on a real PostgreSQL server: every test runs on both."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from ledger_helpers import NOW, SCRIPT, au_mobile, call

from batchcall._ledger import Call, Ledger, Policy, open_ledger, parse_cap

pytest_plugins = ["ledger_support"]

PHONE = au_mobile(1)
AT = NOW + timedelta(hours=3)


def test_repeat_of_a_scheduled_call_is_skipped_naming_the_earlier_run(ledger: Ledger) -> None:
    """A second run of the same row (same phone, script, time) is `already_scheduled`, and the
    message names the first run and its call_id."""
    first = ledger.reserve(call(PHONE, at=AT, run="run-a", row=4), Policy(), now=NOW)
    assert first.action == "send" and first.ring_at == AT
    assert ledger.settle("run-a", 4, "scheduled", "call-123")

    again = call(PHONE, at=AT, run="run-b", row=9)
    for verdict in (
        ledger.check([again], Policy(), now=NOW)[0],
        ledger.reserve(again, Policy(), now=NOW),
    ):
        assert verdict.action == "skip" and verdict.outcome == "already_scheduled"
        assert "run run-a row 4" in verdict.message and "call-123" in verdict.message


def test_repeat_guard_compares_script_and_time(ledger: Ledger) -> None:
    """Another script, or another time, is not a repeat (without caps it is sent)."""
    ledger.reserve(call(PHONE, at=AT, run="run-a"), Policy(), now=NOW)
    other_script = Call(PHONE, "another-script", AT, "run-b", 1)
    other_time = call(PHONE, at=AT + timedelta(minutes=1), run="run-b", row=2)
    verdicts = ledger.check([other_script, other_time], Policy(), now=NOW)
    assert [v.action for v in verdicts] == ["send", "send"]


def test_a_call_that_rings_now_repeats_within_the_window(ledger: Ledger) -> None:
    """With no time, the same phone and script within --repeat-window of now is a repeat;
    after the window it is not."""
    ledger.reserve(call(PHONE, run="run-a"), Policy(), now=NOW)
    soon = call(PHONE, run="run-b")
    assert (
        ledger.check([soon], Policy(), now=NOW + timedelta(hours=23))[0].outcome
        == "already_scheduled"
    )
    later = ledger.check([soon], Policy(), now=NOW + timedelta(hours=25))[0]
    assert later.action == "send" and later.ring_at is None
    short = Policy(repeat_window=timedelta(hours=1))
    assert ledger.check([soon], short, now=NOW + timedelta(hours=2))[0].action == "send"


def test_failed_calls_do_not_count_but_unknown_ones_do(ledger: Ledger) -> None:
    """A failed call (provably never created) blocks nothing; an unknown one blocks a repeat."""
    ledger.reserve(call(PHONE, at=AT, run="run-a"), Policy(), now=NOW)
    ledger.settle("run-a", 1, "failed")
    assert ledger.reserve(call(PHONE, at=AT, run="run-b"), Policy(), now=NOW).action == "send"
    ledger.settle("run-b", 1, "unknown")
    blocked = ledger.reserve(call(PHONE, at=AT, run="run-c"), Policy(), now=NOW)
    assert blocked.outcome == "already_scheduled" and "unknown" in blocked.message


def test_a_retried_row_replaces_its_own_reservation(ledger: Ledger) -> None:
    """`retry` of a row re-reserves it: its own earlier attempt does not block it, and the
    ledger keeps one record for the row."""
    ledger.reserve(call(PHONE, at=AT), Policy(), now=NOW)
    ledger.settle("run-1", 1, "unknown")
    assert ledger.reserve(call(PHONE, at=AT), Policy(), now=NOW).action == "send"
    assert [p.outcome for p in ledger.history(PHONE)] == ["reserved"]


def test_allow_repeat_lifts_the_guard(ledger: Ledger) -> None:
    """--allow-repeat sends the same call again."""
    ledger.reserve(call(PHONE, at=AT, run="run-a"), Policy(), now=NOW)
    verdict = ledger.reserve(call(PHONE, at=AT, run="run-b"), Policy(allow_repeat=True), now=NOW)
    assert verdict.action == "send"
    assert len(ledger.history(PHONE)) == 2


def test_a_deferred_call_still_matches_its_requested_time(ledger: Ledger) -> None:
    """A call the cap moved is still found by its requested time, so re-running the file
    does not call again at the moved time."""
    cap = Policy(caps=(parse_cap("1/24h"),))
    ledger.reserve(call(PHONE, at=AT - timedelta(hours=1), run="run-0"), cap, now=NOW)
    moved = ledger.reserve(call(PHONE, at=AT, run="run-a"), cap, now=NOW)
    assert moved.action == "defer"
    rerun = ledger.check([call(PHONE, at=AT, run="run-b")], cap, now=NOW)[0]
    assert rerun.outcome == "already_scheduled"


def test_cap_reject_names_the_cap_and_the_calls_that_fill_it(ledger: Ledger) -> None:
    """In reject mode a call over the cap is `frequency_capped`, naming the cap and each call
    that fills it, across runs and scripts."""
    policy = Policy(allow_repeat=True, caps=(parse_cap("2/24h"),), over_cap="reject")
    ledger.reserve(call(PHONE, at=AT, run="run-a"), policy, now=NOW)
    ledger.reserve(Call(PHONE, "other", AT + timedelta(hours=1), "run-b", 7), policy, now=NOW)
    ledger.settle("run-b", 7, "scheduled", "call-b7")
    third = call(PHONE, at=AT + timedelta(hours=5), run="run-c")
    for verdict in (
        ledger.check([third], policy, now=NOW)[0],
        ledger.reserve(third, policy, now=NOW),
    ):
        assert verdict.action == "skip" and verdict.outcome == "frequency_capped"
        assert "2/24h" in verdict.message
        assert "run run-a row 1" in verdict.message and "call-b7" in verdict.message
    # a day after the first call, the window has rolled on
    assert (
        ledger.reserve(
            call(PHONE, at=AT + timedelta(hours=24), run="run-d"), policy, now=NOW
        ).action
        == "send"
    )


def test_five_calls_with_3_per_24h_defer_to_the_first_free_instants(ledger: Ledger) -> None:
    """Five runs each call one phone an hour apart under 3/24h: the first three ring as asked,
    the 4th moves to 24 h after the 1st, the 5th to 24 h after the 2nd."""
    policy = Policy(allow_repeat=True, caps=(parse_cap("3/24h"),))
    verdicts = [
        ledger.reserve(call(PHONE, at=AT + timedelta(hours=i), run=f"run-{i}"), policy, now=NOW)
        for i in range(5)
    ]
    assert [v.action for v in verdicts] == ["send", "send", "send", "defer", "defer"]
    assert verdicts[3].ring_at == AT + timedelta(hours=24)
    assert verdicts[4].ring_at == AT + timedelta(hours=25)
    assert "3/24h" in verdicts[3].message
    rings = sorted(p.ring_at for p in ledger.history(PHONE))
    assert rings[3:] == [AT + timedelta(hours=24), AT + timedelta(hours=25)]


def test_deferral_walks_past_future_calls_that_fill_a_later_slot(ledger: Ledger) -> None:
    """Calls already scheduled days ahead count too: a deferral that would land among them
    moves on to the first instant that is free of them as well."""
    policy = Policy(allow_repeat=True, caps=(parse_cap("1/24h"),))
    for day in (0, 1, 2):  # one call on each of the next three days
        ledger.reserve(call(PHONE, at=AT + timedelta(days=day), run=f"run-{day}"), policy, now=NOW)
    verdict = ledger.reserve(call(PHONE, at=AT + timedelta(hours=1), run="run-x"), policy, now=NOW)
    assert verdict.action == "defer" and verdict.ring_at == AT + timedelta(days=3)


def test_deferral_agrees_with_the_calling_window(ledger: Ledger) -> None:
    """With a calling window, a capped call goes to the first instant both allow: here the
    cap frees the phone at 12:00 UTC, the window opens only at 22:00 UTC; and when 22:00 is
    full the next window's opening is taken."""
    opens = 22

    def window(c: Call, t: datetime) -> datetime | None:
        if t.hour >= opens:
            return t
        return t.replace(hour=opens, minute=0, second=0, microsecond=0)

    start = NOW.replace(hour=12)  # 12:00 UTC on day 0
    policy = Policy(allow_repeat=True, caps=(parse_cap("1/24h"),))
    ledger.reserve(call(PHONE, at=start, run="run-a"), policy, now=NOW)
    v = ledger.reserve(
        call(PHONE, at=start + timedelta(hours=1), run="run-b"), policy, now=NOW, allowed=window
    )
    # cap frees at 12:00 the next day; the window then says 22:00 that day
    assert v.action == "defer" and v.ring_at == start + timedelta(days=1, hours=10)
    v2 = ledger.reserve(
        call(PHONE, at=start + timedelta(hours=2), run="run-c"), policy, now=NOW, allowed=window
    )
    # 22:00 day 1 is taken: the cap frees 22:00 day 2, inside the window
    assert v2.ring_at == start + timedelta(days=2, hours=10)


def test_no_slot_within_max_defer_days_is_frequency_capped(ledger: Ledger) -> None:
    """When neither the cap nor the window allow any instant within --max-defer-days, the
    call is skipped as `frequency_capped` and says so."""
    policy = Policy(allow_repeat=True, caps=(parse_cap("1/7d"),), max_defer_days=3)
    ledger.reserve(call(PHONE, at=AT, run="run-a"), policy, now=NOW)
    verdict = ledger.reserve(call(PHONE, at=AT + timedelta(hours=1), run="run-b"), policy, now=NOW)
    assert verdict.outcome == "frequency_capped" and "within 3 days" in verdict.message

    def never(c: Call, t: datetime) -> datetime | None:
        return None

    wide = Policy(allow_repeat=True, caps=(parse_cap("1/7d"),))
    late = ledger.reserve(
        call(PHONE, at=AT + timedelta(hours=2), run="run-c"), wide, now=NOW, allowed=never
    )
    assert late.outcome == "frequency_capped" and "calling window" in late.message


def test_two_caps_apply_together(ledger: Ledger) -> None:
    """--max-calls 2/24h and 3/7d together: the weekly cap defers past the daily one."""
    policy = Policy(allow_repeat=True, caps=(parse_cap("2/24h"), parse_cap("3/7d")))
    rings = []
    for i in range(4):
        v = ledger.reserve(call(PHONE, at=AT + timedelta(days=i), run=f"run-{i}"), policy, now=NOW)
        rings.append(v.ring_at)
    assert rings[:3] == [AT, AT + timedelta(days=1), AT + timedelta(days=2)]
    assert rings[3] == AT + timedelta(days=7)


def test_check_counts_earlier_calls_of_the_same_batch(ledger: Ledger) -> None:
    """At plan time, the rows of one chunk count against each other as if reserved, so the
    early answer already shows the cap's deferral; and nothing is written."""
    policy = Policy(allow_repeat=True, caps=(parse_cap("1/24h"),))
    calls = [call(PHONE, at=AT + timedelta(hours=i), run="run-a", row=i) for i in range(3)]
    calls.append(call(au_mobile(2), at=AT, run="run-a", row=9))
    verdicts = ledger.check(calls, policy, now=NOW)
    assert [v.action for v in verdicts] == ["send", "defer", "defer", "send"]
    assert [v.ring_at for v in verdicts[1:3]] == [
        AT + timedelta(hours=24),
        AT + timedelta(hours=48),
    ]
    assert ledger.history(PHONE) == []


def test_check_handles_batches_larger_than_one_query(ledger: Ledger) -> None:
    """A chunk of 2,000 calls (more than one query's worth of phones) gets one verdict per
    call, in order, matching what is on record."""
    taken = [call(au_mobile(n), at=AT, run="run-a", row=n) for n in range(0, 2000, 7)]
    for c in taken:
        ledger.reserve(c, Policy(), now=NOW)
    planned = [call(au_mobile(n), at=AT, run="run-b", row=n) for n in range(2000)]
    verdicts = ledger.check(planned, Policy(), now=NOW)
    skipped = {n for n, v in enumerate(verdicts) if v.action == "skip"}
    assert skipped == set(range(0, 2000, 7))


def test_release_settle_and_resolve_reserved(ledger: Ledger) -> None:
    """A released reservation is forgotten; a crashed run's reservations become `unknown`
    on resume and keep counting as placed."""
    ledger.reserve(call(PHONE, at=AT, run="run-a", row=1), Policy(), now=NOW)
    assert ledger.release("run-a", 1)
    assert ledger.history(PHONE) == []
    for row in (1, 2, 3):
        ledger.reserve(call(au_mobile(row), at=AT, run="run-a", row=row), Policy(), now=NOW)
    ledger.settle("run-a", 3, "scheduled", "call-3")
    assert ledger.resolve_reserved("run-a") == 2
    assert [p.outcome for p in ledger.history(au_mobile(1))] == ["unknown"]
    assert (
        ledger.check([call(au_mobile(1), at=AT, run="run-b")], Policy(), now=NOW)[0].outcome
        == "already_scheduled"
    )
    assert ledger.resolve_reserved("run-a") == 0


def test_history_lists_every_call_to_a_phone_in_time_order(ledger: Ledger) -> None:
    """`ledger show PHONE` reads this: every run's calls, failed ones too, oldest first."""
    ledger.reserve(call(PHONE, at=AT + timedelta(hours=2), run="run-b"), Policy(), now=NOW)
    ledger.reserve(call(PHONE, at=AT, run="run-a"), Policy(), now=NOW)
    ledger.settle("run-a", 1, "failed")
    history = ledger.history(PHONE)
    assert [(p.run_id, p.outcome) for p in history] == [("run-a", "failed"), ("run-b", "reserved")]
    assert history[0].ring_at == AT and history[0].asked_at == AT and history[0].script_id == SCRIPT


def test_prune_deletes_calls_before_a_date(ledger: Ledger) -> None:
    """`ledger prune --before` removes older calls (and expired suppressions), keeps the rest."""
    ledger.reserve(call(PHONE, at=AT, run="run-a"), Policy(), now=NOW)
    ledger.reserve(call(PHONE, at=AT + timedelta(days=30), run="run-b"), Policy(), now=NOW)
    ledger.suppress([au_mobile(5)], now=NOW, until=NOW + timedelta(days=1))
    ledger.suppress([au_mobile(6)], now=NOW)
    pruned = ledger.prune(AT + timedelta(days=2))
    assert (pruned.calls, pruned.suppressions) == (1, 1)
    assert [p.run_id for p in ledger.history(PHONE)] == ["run-b"]
    assert [s.phone for s in ledger.suppressions()] == [au_mobile(6)]


def test_two_teams_never_see_each_others_calls(location: str) -> None:
    """The same phone and call in two teams' ledgers, in one store: neither blocks the other."""
    with open_ledger(location, team="team-a-x1") as a, open_ledger(location, team="team-b-x1") as b:
        a.reserve(call(PHONE, at=AT, run="run-a"), Policy(), now=NOW)
        a.suppress([au_mobile(7)], now=NOW)
        assert b.reserve(call(PHONE, at=AT, run="run-b"), Policy(), now=NOW).action == "send"
        assert b.check([call(au_mobile(7), at=AT)], Policy(), now=NOW)[0].action == "send"
        assert [p.run_id for p in b.history(PHONE)] == ["run-b"]
        a.prune(AT + timedelta(days=1))
        assert len(b.history(PHONE)) == 1


def test_imported_calls_count_toward_the_caps(ledger: Ledger, tmp_path: Path) -> None:
    """Calls made outside batchcall, imported from a CSV, fill the cap; re-importing the same
    file does not double them."""
    made = tmp_path / "dialer-export.csv"
    made.write_text(
        "Phone,Called At,Call ID\n"
        f"0412 000 001,{(AT - timedelta(hours=2)).isoformat()},ext-1\n"
        f"{au_mobile(3)},{AT.isoformat()},\n",
        encoding="utf-8",
    )
    assert ledger.import_calls(made, now=NOW, region="AU") == 2
    assert ledger.import_calls(made, now=NOW, region="AU") == 2
    assert [p.call_id for p in ledger.history(PHONE)] == ["ext-1"]
    policy = Policy(caps=(parse_cap("1/24h"),))
    verdict = ledger.check([call(PHONE, at=AT)], policy, now=NOW)[0]
    assert verdict.action == "defer" and verdict.ring_at == AT + timedelta(hours=22)
