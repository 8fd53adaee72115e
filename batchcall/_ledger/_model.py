"""The ledger's records and settings: a call to check, a policy, a verdict, a call on record.

Every instant is a timezone-aware datetime, stored and returned in UTC. A naive one is refused
where it enters (`check`, `reserve`), because reading it in the machine's local zone would move
a call by hours.

The records made once per row (`Call`, `Verdict`, `Placed`) are NamedTuples: immutable like the
frozen dataclasses elsewhere, but a frozen dataclass costs about 4 µs to build against 0.9 µs,
which over a million planned rows is seconds of the plan-time check.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal, NamedTuple, get_args

from .._errors import UsageError

if TYPE_CHECKING:
    from ._suppress import SuppressionList

Action = Literal["send", "skip", "defer"]
SkipOutcome = Literal["already_scheduled", "suppressed", "frequency_capped"]
# A call's life in the ledger. `reserved` is written in the same transaction as the policy
# check, just before the request leaves; the answer settles it.
Outcome = Literal["reserved", "scheduled", "unknown", "failed"]
OUTCOMES: frozenset[str] = frozenset(get_args(Outcome))
# What counts as placed: everything but `failed`, which the server provably did not create.
PLACED: frozenset[str] = OUTCOMES - {"failed"}
SETTLED: frozenset[str] = OUTCOMES - {"reserved"}


def utc(instant: datetime, what: str = "time") -> datetime:
    """`instant` in UTC; a naive datetime is a bug in the caller, so it raises."""
    if instant.tzinfo is None:
        raise ValueError(f"{what} {instant.isoformat()} has no time zone; pass an aware datetime")
    return instant if instant.tzinfo is UTC else instant.astimezone(UTC)


class Call(NamedTuple):
    """A call about to be placed. `ring_at` is the time the row asked for (after its calling
    window placed it), or None to ring at once; pass that same requested time to `reserve`,
    never a time an earlier verdict deferred it to, so a re-run matches it in the ledger.
    It must be timezone-aware; `check` and `reserve` refuse a naive one."""

    phone: str  # E.164
    script_id: str
    ring_at: datetime | None
    run_id: str
    row: int


@dataclass(frozen=True, slots=True)
class Cap:
    """At most `n` calls to one phone in any rolling `period` (two calls share a period when
    they are less than `period` apart), counting every run and every script."""

    n: int
    period: timedelta
    # Where a cap comes from, when a law sets it ("FL: ... (Fla. Stat. 501.616(6))"); None
    # for the run's own --max-calls.
    rule: str | None = None

    def __str__(self) -> str:
        return f"{self.n}/{_period_text(self.period)}"


_CAP = re.compile(r"\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*", re.IGNORECASE)
_PERIOD = re.compile(r"\s*(\d*)\s*([a-z]+)\s*", re.IGNORECASE)
_UNITS = {
    "m": timedelta(minutes=1),
    "min": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}


def parse_cap(text: str) -> Cap:
    """`3/24h` → Cap(3, 24 hours). Units: m (minutes), h, d, w; `3/d` means 3 a day."""
    example = "Write it as N/PERIOD, e.g. 3/24h or 7/7d (units m, h, d, w)."
    found = _CAP.fullmatch(text)
    if found is None or found.group(3).lower() not in _UNITS:
        raise UsageError(f"Frequency cap {text!r} is not N/PERIOD. {example}")
    n, count = int(found.group(1)), int(found.group(2) or 1)
    if n < 1:
        raise UsageError(f"Frequency cap {text!r} allows no call at all; N must be 1 or more.")
    if count < 1:
        raise UsageError(f"Frequency cap {text!r} has an empty period. {example}")
    period = count * _UNITS[found.group(3).lower()]
    if period > timedelta(days=366):
        raise UsageError(f"Frequency cap {text!r}: the period may be at most a year (366d).")
    return Cap(n, period)


def parse_period(text: str) -> timedelta:
    """`24h` → 24 hours, as a cap's period is written (units m, h, d, w; `d` is one day)."""
    found = _PERIOD.fullmatch(text)
    if found is None or found.group(2).lower() not in _UNITS:
        raise UsageError(
            f"Period {text!r} is not COUNT UNIT; write e.g. 24h, 90m or 7d (units m, h, d, w)."
        )
    period = int(found.group(1) or 1) * _UNITS[found.group(2).lower()]
    if not period:
        raise UsageError(f"Period {text!r} is empty; write e.g. 24h, 90m or 7d.")
    if period > timedelta(days=366):
        raise UsageError(f"Period {text!r} may be at most a year (366d).")
    return period


def _period_text(period: timedelta) -> str:
    minutes = int(period.total_seconds() // 60)
    if minutes % (24 * 60) == 0 and minutes >= 7 * 24 * 60:
        return f"{minutes // (24 * 60)}d"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


# The calling window, per call: the first allowed instant at or after `t`, or None when there
# is none within its horizon. The ledger asks it only about instants a cap moved a call to.
Window = Callable[[Call, datetime], datetime | None]


@dataclass(frozen=True, slots=True)
class Policy:
    """What the ledger enforces. `over_cap` is the run's `--outside-window` mode: `defer`
    moves a capped call to the first instant the caps (and the window) allow, within
    `max_defer_days` of its requested time; `reject` skips it as `frequency_capped`."""

    allow_repeat: bool = False
    repeat_window: timedelta = timedelta(hours=24)
    caps: tuple[Cap, ...] = ()
    over_cap: Literal["defer", "reject"] = "defer"
    max_defer_days: int = 14
    # The external `--suppress FILE` lists, loaded once at start; the team's own list is read
    # from the ledger on every check, so a number added mid-run is honoured.
    suppress: SuppressionList | None = None
    # Caps that depend on the call (the law of the callee's state), on top of `caps`, and the
    # longest period any of them can have.
    caps_for: Callable[[Call], tuple[Cap, ...]] | None = None
    caps_for_period: timedelta = timedelta(0)

    def lookback(self) -> timedelta:
        """How far before a call's time a placed call can still matter to it."""
        return max([self.repeat_window, self.caps_for_period, *(c.period for c in self.caps)])

    def caps_of(self, call: Call) -> tuple[Cap, ...]:
        """Every cap that applies to `call`."""
        if self.caps_for is None:
            return self.caps
        return self.caps + self.caps_for(call)


class Verdict(NamedTuple):
    """The ledger's answer for one call.

    - `send`: go ahead; `ring_at` is the call's own time (None: ring now).
    - `defer`: go ahead, but ring at `ring_at` (send it as the request's scheduled_time).
    - `skip`: never send; `outcome` and `message` say why (and name the earlier call or cap).
    """

    action: Action
    outcome: SkipOutcome | None = None
    message: str = ""
    ring_at: datetime | None = None
    # For a deferral or a skip by a cap: the cap and the calls that filled it, in a few words
    # (results.csv's `window_rule`).
    rule: str | None = None


class Placed(NamedTuple):
    """A call on record. `asked_at` is the time its row asked for (None: it rang at once);
    `ring_at` is when it rings, after any deferral (the send time for an immediate call)."""

    phone: str
    script_id: str | None
    ring_at: datetime
    asked_at: datetime | None
    run_id: str
    row: int
    call_id: str | None
    outcome: str
    recorded_at: datetime | None = None

    def describe(self) -> str:
        call = f"call_id {self.call_id}" if self.call_id else f"{self.outcome}, no call_id yet"
        return f"run {self.run_id} row {self.row} ({call}) at {iso(self.ring_at)}"


@dataclass(frozen=True, slots=True)
class Suppression:
    """A number that must not be called, and where that rule comes from."""

    phone: str
    reason: str | None
    expires_at: datetime | None  # None: for good
    source: str  # "the team's list", or "FILE line N"
    added_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > now


@dataclass(frozen=True, slots=True)
class Pruned:
    calls: int
    suppressions: int


def iso(instant: datetime) -> str:
    """An instant as the API writes it: UTC, seconds, `Z`."""
    text = utc(instant).isoformat(timespec="seconds")
    return text.removesuffix("+00:00") + "Z"
