"""A cap that depends on the call (a state's law) counts every run's calls like --max-calls,
and its verdicts name the law (unit level; the end-to-end runs are in test_states_caps_e2e)."""

from __future__ import annotations

from datetime import timedelta

from ledger_helpers import NOW, call

from batchcall._ledger import Call, Cap, Ledger, Policy
from batchcall._ledger._model import iso

pytest_plugins = ["ledger_support"]

FLORIDA = "+13052345601"
CALIFORNIA = "+14152345604"
FL_CAP = Cap(3, timedelta(hours=24), rule="FL: at most 3 calls in any 24 h (Fla. Stat. 501.616(6))")


def _florida_only(c: Call) -> tuple[Cap, ...]:
    return (FL_CAP,) if c.phone == FLORIDA else ()


def test_a_call_dependent_cap_defers_the_fourth_call_and_names_its_law(ledger: Ledger) -> None:
    policy = Policy(caps_for=_florida_only, caps_for_period=timedelta(hours=24))
    times = [NOW + timedelta(hours=h) for h in (1, 2, 3)]
    for row, (phone, at) in enumerate(
        [(p, t) for p in (FLORIDA, CALIFORNIA) for t in times], start=1
    ):
        assert (
            ledger.reserve(call(phone, at=at, run="a", row=row), policy, now=NOW).action == "send"
        )
    fourth = NOW + timedelta(hours=4)
    fl = ledger.reserve(call(FLORIDA, at=fourth, run="b", row=1), policy, now=NOW)
    assert fl.action == "defer"
    assert fl.ring_at == times[0] + timedelta(hours=24)
    assert fl.rule == f"cap 3/24h: 3 calls since {iso(times[0])} ({FL_CAP.rule})"
    assert "Fla. Stat. 501.616(6)" in fl.message
    assert ledger.reserve(call(CALIFORNIA, at=fourth, run="b", row=2), policy, now=NOW).action == (
        "send"
    )
    rejecting = Policy(
        caps_for=_florida_only, caps_for_period=timedelta(hours=24), over_cap="reject"
    )
    later = call(FLORIDA, at=fourth + timedelta(hours=1), run="c", row=1)
    skipped = ledger.check([later], rejecting, now=NOW)[0]
    assert (skipped.action, skipped.outcome) == ("skip", "frequency_capped")
    assert skipped.rule is not None and skipped.rule.startswith("cap 3/24h: 3 calls since")
