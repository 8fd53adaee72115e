"""The ledger's policies as pure functions: one call, the calls on record for its phone, a verdict.

Both the plan-time check and the atomic reservation call `decide`, so the early answer and the
final one cannot drift apart; only what they read differs (a snapshot, or a locked one).

Frequency caps. A cap N/P is broken by N+1 calls that fit in one rolling period, i.e. whose
first and last are less than P apart. So a new call at t is refused by N placed calls
e_i <= ... <= e_{i+N-1} that span less than P exactly when t lies in the open interval
(e_{i+N-1} - P, e_i + P). The refused instants are the union of those intervals, one per
window of N consecutive placed calls, and the first allowed instant at or after t is found by
one sweep over them sorted by their start. Calls already scheduled in the future count like any
other, so a deferral may land in a later full stretch; the sweep walks on past it. A calling
window can then move the instant again, into another full stretch: the two are alternated
until both agree, within `max_defer_days`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ._model import Call, Cap, Placed, Policy, Suppression, Verdict, Window, iso

# A call and its window cannot disagree forever, but a bug in a window callback could; the loop
# stops well before that would cost anything.
_MAX_ROUNDS = 1000
SEND_NOW = Verdict("send")


def decide(
    call: Call,
    placed: Sequence[Placed],
    blocked: Suppression | None,
    policy: Policy,
    now: datetime,
    allowed: Window | None,
) -> Verdict:
    """The verdict for `call`, given the placed calls to its phone (its own earlier attempt
    excluded) and the suppression that matches it, if any."""
    if blocked is not None:
        return Verdict("skip", "suppressed", _suppressed(call, blocked))
    if not policy.allow_repeat:
        earlier = repeat_of(call, placed, policy.repeat_window, now)
        if earlier is not None:
            return Verdict("skip", "already_scheduled", _repeated(call, earlier))
    caps = policy.caps_of(call) if placed else ()
    if caps:
        return _capped(call, placed, caps, policy, now, allowed)
    return SEND_NOW if call.ring_at is None else Verdict("send", ring_at=call.ring_at)


def repeat_of(
    call: Call, placed: Sequence[Placed], window: timedelta, now: datetime
) -> Placed | None:
    """The placed call this one repeats: same phone and script, and the same requested or ring
    time; for a call that rings now, any time within `window` of now."""
    for earlier in placed:
        if earlier.script_id != call.script_id:
            continue
        if call.ring_at is None:
            if abs(earlier.ring_at - now) <= window:
                return earlier
        elif call.ring_at == earlier.ring_at or call.ring_at == earlier.asked_at:
            return earlier
    return None


@dataclass(frozen=True, slots=True)
class _Block:
    """Instants in (lo, hi) are refused by `cap`, because of the calls in `group`."""

    lo: datetime
    hi: datetime
    cap: Cap
    group: tuple[Placed, ...]


def blocks(placed: Sequence[Placed], caps: Sequence[Cap]) -> list[_Block]:
    ordered = sorted(placed, key=lambda p: p.ring_at)
    found = []
    for cap in caps:
        for i in range(len(ordered) - cap.n + 1):
            first, last = ordered[i], ordered[i + cap.n - 1]
            if last.ring_at - first.ring_at < cap.period:
                group = tuple(ordered[i : i + cap.n])
                found.append(
                    _Block(last.ring_at - cap.period, first.ring_at + cap.period, cap, group)
                )
    found.sort(key=lambda b: b.lo)
    return found


def first_free(t: datetime, found: Sequence[_Block]) -> tuple[datetime, _Block | None]:
    """The first instant >= t (in whole seconds once moved, as the API takes them) that no
    block refuses, and the last block that moved it."""
    mover = None
    for block in found:  # sorted by lo: a block passed over can never contain a later t
        if block.lo < t < block.hi:
            t, mover = _ceil_second(block.hi), block
    return t, mover


def _capped(
    call: Call,
    placed: Sequence[Placed],
    caps: Sequence[Cap],
    policy: Policy,
    now: datetime,
    allowed: Window | None,
) -> Verdict:
    asked = call.ring_at or now
    found = blocks(placed, caps)
    t, mover = first_free(asked, found)
    if mover is None:
        return SEND_NOW if call.ring_at is None else Verdict("send", ring_at=call.ring_at)
    if policy.over_cap == "reject":
        full = _full(call, mover, asked) + " Not sent."
        return Verdict("skip", "frequency_capped", full, rule=cap_rule(mover))
    limit = asked + timedelta(days=policy.max_defer_days)
    for _ in range(_MAX_ROUNDS):
        if t > limit:
            break
        window_t = t if allowed is None else allowed(call, t)
        if window_t is None:
            break
        if window_t <= t:
            message = _deferred(call, mover, asked, t)
            return Verdict("defer", message=message, ring_at=t, rule=cap_rule(mover))
        t, moved_by = first_free(window_t, found)
        mover = moved_by or mover
    within = "the caps and the calling window allow" if allowed else "the caps allow"
    return Verdict(
        "skip",
        "frequency_capped",
        f"{_full(call, mover, asked)} No time within {policy.max_defer_days} days that "
        f"{within} (--max-defer-days); not sent.",
        rule=cap_rule(mover),
    )


def cap_rule(block: _Block) -> str:
    """ "cap 3/24h: 3 calls since 2030-01-02T09:00:00Z", and the law that sets the cap, if any."""
    cap = block.cap
    since = iso(block.group[0].ring_at)
    law = f" ({cap.rule})" if cap.rule else " (--max-calls)"
    return f"cap {cap}: {len(block.group)} calls since {since}{law}"


def _ceil_second(t: datetime) -> datetime:
    if t.microsecond == 0:
        return t
    return t.replace(microsecond=0) + timedelta(seconds=1)


def _suppressed(call: Call, hit: Suppression) -> str:
    # Only the ledger's own entries have an added_at; a file's source is its path and line.
    source = hit.source
    if hit.added_at is not None:
        source = f"the team's list in the ledger ({hit.source}, {iso(hit.added_at)})"
    reason = f": {hit.reason}" if hit.reason else ""
    until = f" (until {iso(hit.expires_at)})" if hit.expires_at else ""
    return f"Phone {call.phone} is suppressed by {source}{reason}{until}; not sent."


def _repeated(call: Call, earlier: Placed) -> str:
    when = f"at {iso(call.ring_at)}" if call.ring_at else "to ring now"
    return (
        f"A call to {call.phone} with script {call.script_id} {when} was already placed: "
        f"{earlier.describe()}. Not sent; pass --allow-repeat to call again anyway."
    )


def _full(call: Call, block: _Block, asked: datetime) -> str:
    calls = "; ".join(p.describe() for p in block.group[:5])
    more = f"; and {len(block.group) - 5} more" if len(block.group) > 5 else ""
    law = f" of {block.cap.rule}" if block.cap.rule else ""
    return (
        f"The {block.cap} cap{law} allows {block.cap.n} call(s) to {call.phone} in any "
        f"{_span(block.cap)}, and {iso(asked)} would be one too many: {calls}{more}."
    )


def _deferred(call: Call, block: _Block, asked: datetime, t: datetime) -> str:
    law = f" of {block.cap.rule}" if block.cap.rule else ""
    return f"Moved from {iso(asked)} to {iso(t)} by the {block.cap} cap{law} ({call.phone})."


def _span(cap: Cap) -> str:
    minutes = int(cap.period.total_seconds() // 60)
    if minutes % (24 * 60) == 0 and minutes >= 48 * 60:
        return f"{minutes // (24 * 60)} days"
    if minutes % 60 == 0:
        return f"{minutes // 60} hours"
    return f"{minutes} minutes"
