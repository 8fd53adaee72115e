"""The `Ledger`: a team's record of every call placed, and the policies checked against it.

A call's life in the ledger:

    (none) ──reserve──> reserved ──settle──> scheduled | unknown | failed
                            │  └──release──> (none)      the request never left
                            └──resolve_reserved──> unknown   after a crash (resume)

`reserve` reads the policy's inputs and writes `reserved` in one transaction, so two processes
sharing a ledger never both reserve a phone that the policy allows only once. `check` reads the
same inputs without writing, in batches (one indexed query per ~900 phones for the calls, one
for the team's suppressions), for the plan's early answer. Calls earlier in the same `check`
count against later ones; calls of an earlier `check` do not, since nothing was reserved for
them: the reservation is what decides, and may still defer or skip a call the plan passed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

from ._imports import import_run_id, read_calls
from ._model import SETTLED, Call, Placed, Policy, Pruned, Suppression, Verdict, Window, utc
from ._policy import SEND_NOW, decide
from ._store import BATCH, Store
from ._suppress import check_region, phone_or_error, read_list
from ._tables import SUPPRESS, SUPPRESS_LONGER, Tables


class Ledger:
    """One team's view of a ledger store. Not thread-safe: use one per thread or process."""

    def __init__(self, store: Store, team: str) -> None:
        self._store = store
        self._tables = Tables(store, team)
        self.team = team
        self.where = store.where

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- policies -------------------------------------------------------------------------------

    def check(
        self, calls: Iterable[Call], policy: Policy, *, now: datetime, allowed: Window | None = None
    ) -> list[Verdict]:
        """The verdict for each call, in order, from a read-only look at the ledger: the plan's
        early answer. Nothing is written. Pass a chunk of the plan (about 1,000 calls) at a
        time: what is read for the chunk is held until the call returns."""
        now = utc(now, "now")
        calls = list(calls)
        since = _since(calls, policy, now)
        # Only a phone that comes back later in the chunk needs its approved calls kept in
        # `placed`: building a record for every call would cost more than the check itself.
        seen: set[str] = set()
        again: set[str] = set()
        for call in calls:
            (again if call.phone in seen else seen).add(call.phone)
        placed: dict[str, list[Placed]] = {}
        blocked: dict[str, Suppression] = {}
        out: list[Verdict] = []
        for start in range(0, len(calls), BATCH):
            batch = calls[start : start + BATCH]
            phones = list({call.phone for call in batch} - placed.keys() - blocked.keys())
            placed.update(self._tables.placed(phones, since))
            blocked.update(self._tables.blocked(phones, now))
            out.extend(_judge(batch, placed, blocked, again, policy, now, allowed))
        return out

    def knows_any(self, phones: Sequence[str]) -> bool:
        """Whether any of `phones` has a call that counts (at any time) or a suppression (in
        force or not): if none, `check` lets all go as asked (no phone twice, no lists)."""
        batches = (phones[start : start + BATCH] for start in range(0, len(phones), BATCH))
        return any(self._tables.knows(batch) for batch in batches)

    def reserve(
        self, call: Call, policy: Policy, *, now: datetime, allowed: Window | None = None
    ) -> Verdict:
        """Check `call` and, when it may go, record it as `reserved` (at its final ring time),
        in one transaction. Call it just before the request leaves."""
        now = utc(now, "now")
        since = _since([call], policy, now)
        with self._store.atomic(f"{self.team}|{call.phone}"):
            mine = self._tables.placed([call.phone], since).get(call.phone)
            hit = self._tables.blocked([call.phone], now).get(call.phone)
            if hit is None and policy.suppress is not None:
                hit = policy.suppress.get(call.phone, now)
            verdict = decide(call, _others(call, mine), hit, policy, now, allowed)
            if verdict.action != "skip":
                self._tables.record([_as_placed(call, verdict, now)], now)
        return verdict

    def settle(self, run_id: str, row: int, outcome: str, call_id: str | None = None) -> bool:
        """Record the answer to a reserved call: `scheduled`, `unknown` or `failed` (which then
        no longer counts as placed). False when the row has no call in the ledger."""
        _check_settled(outcome)
        return bool(self._store.execute(_SETTLE, (outcome, call_id, self.team, run_id, row)))

    def settle_all(self, run_id: str, answers: Sequence[tuple[int, str, str | None]]) -> None:
        """`settle` for many rows of a run, given as (row, outcome, call_id), in one
        transaction: a commit costs far more than the update it makes durable."""
        for _, outcome, _ in answers:
            _check_settled(outcome)
        rows = [(outcome, call_id, self.team, run_id, row) for row, outcome, call_id in answers]
        with self._store.atomic():
            self._store.executemany(_SETTLE, rows)

    def release(self, run_id: str, row: int) -> bool:
        """Forget a reservation whose request provably never left (the row is pending again)."""
        return bool(
            self._tables.execute(
                "DELETE FROM ledger_calls WHERE team = ? AND run_id = ? AND row_no = ?"
                " AND outcome = 'reserved'",
                run_id,
                row,
            )
        )

    def reserved(self, run_id: str) -> list[int]:
        """The rows of `run_id` whose calls are still `reserved`: in flight, or caught in
        flight when the run stopped."""
        rows = self._store.query(
            "SELECT row_no FROM ledger_calls WHERE team = ? AND run_id = ?"
            " AND outcome = 'reserved' ORDER BY row_no",
            (self.team, run_id),
        )
        return [row for (row,) in rows]

    def resolve_reserved(self, run_id: str) -> int:
        """After a crash: a call still `reserved` may have been created, so it is `unknown`
        (and keeps counting as placed). Returns how many there were."""
        return self._tables.execute(
            "UPDATE ledger_calls SET outcome = 'unknown' WHERE team = ? AND run_id = ?"
            " AND outcome = 'reserved'",
            run_id,
        )

    # --- records --------------------------------------------------------------------------------

    def history(self, phone: str) -> list[Placed]:
        """Every call to `phone` (E.164) on record for this team, failed ones too, by time."""
        return self._tables.history(phone)

    def import_calls(
        self, path: Path, *, now: datetime, region: str | None = None, timezone: str | None = None
    ) -> int:
        """Record calls made outside batchcall (see `_imports`); they count toward the caps.
        Importing the same file again updates its calls. Returns how many were read."""
        path = Path(path)
        read = list(read_calls(path, region=region, timezone=timezone))
        run_id = import_run_id(path)
        calls = [
            Placed(
                c.phone, c.script_id, c.ring_at, c.ring_at, run_id, c.row, c.call_id, "scheduled"
            )
            for c in read
        ]
        with self._store.atomic():
            self._tables.record(calls, utc(now, "now"))
        return len(calls)

    def prune(self, before: datetime) -> Pruned:
        """Delete the calls that rang before `before`, and suppressions that expired before it
        (retention of personal data). A call within a cap's period of now still counts
        toward the cap; prune it and the cap forgets it."""
        before_t = self._store.time(utc(before, "before"))
        with self._store.atomic():
            calls = self._tables.execute(
                "DELETE FROM ledger_calls WHERE team = ? AND ring_at < ?", before_t
            )
            suppressions = self._tables.execute(
                "DELETE FROM ledger_suppressions WHERE team = ? AND expires_at < ?", before_t
            )
        self._store.checkpoint()
        return Pruned(calls, suppressions)

    # --- the team's suppression list ------------------------------------------------------------

    def suppress(
        self,
        phones: Iterable[str],
        *,
        now: datetime,
        reason: str | None = None,
        until: datetime | None = None,
        region: str | None = None,
    ) -> int:
        """Add numbers to the team's list, or replace their reason and expiry. Every later
        reservation honours them, in this process or any other sharing the ledger."""
        region = check_region(region)
        until = None if until is None else utc(until, "until")
        entries = [
            Suppression(phone_or_error(p, region, "Number"), reason, until, "added by hand")
            for p in phones
        ]
        with self._store.atomic():
            return self._tables.add_suppressions(entries, utc(now, "now"), SUPPRESS)

    def import_suppressions(self, path: Path, *, now: datetime, region: str | None = None) -> int:
        """Add every number of a list file to the team's list, never shortening an entry
        already there. Fails closed like `--suppress`: nothing is written unless it all reads."""
        entries = [
            Suppression(e.phone, e.reason, e.expires_at, f"imported from {e.source}")
            for e in read_list(Path(path), region=check_region(region))
        ]
        with self._store.atomic():
            return self._tables.add_suppressions(entries, utc(now, "now"), SUPPRESS_LONGER)

    def unsuppress(self, phones: Iterable[str], *, region: str | None = None) -> int:
        """Remove numbers from the team's list; returns how many were on it."""
        region = check_region(region)
        numbers = [phone_or_error(p, region, "Number") for p in phones]
        with self._store.atomic():
            return sum(
                self._tables.execute(
                    "DELETE FROM ledger_suppressions WHERE team = ? AND phone = ?", phone
                )
                for phone in numbers
            )

    def suppressions(self) -> list[Suppression]:
        """The team's list, expired entries included (`Suppression.active` tells them apart)."""
        return self._tables.suppressions()


_SETTLE = (
    "UPDATE ledger_calls SET outcome = ?, call_id = ? WHERE team = ? AND run_id = ? AND row_no = ?"
)


def _check_settled(outcome: str) -> None:
    if outcome not in SETTLED:
        raise ValueError(f"outcome {outcome!r} is not one of {sorted(SETTLED)}")


def _since(calls: Sequence[Call], policy: Policy, now: datetime) -> datetime:
    """The earliest ring time a placed call may have and still matter to one of `calls`; and
    the one place each call's time is checked for a zone."""
    earliest = now
    for call in calls:
        t = call.ring_at
        if t is not None:
            if t.tzinfo is None:
                utc(t, "Call.ring_at")  # raises
            earliest = min(earliest, t)
    return earliest - policy.lookback()


def _others(call: Call, placed: list[Placed] | None) -> list[Placed]:
    """The placed calls, less this row's own earlier attempt (a retry of a failed or unknown
    row replaces its reservation instead of being refused by it)."""
    if not placed:
        return []
    return [p for p in placed if p.row != call.row or p.run_id != call.run_id]


def _as_placed(call: Call, verdict: Verdict, now: datetime) -> Placed:
    ring = verdict.ring_at or call.ring_at or now
    return Placed(
        call.phone, call.script_id, ring, call.ring_at, call.run_id, call.row, None, "reserved"
    )


def _judge(
    calls: Sequence[Call],
    placed: dict[str, list[Placed]],
    blocked: dict[str, Suppression],
    again: set[str],
    policy: Policy,
    now: datetime,
    allowed: Window | None,
) -> list[Verdict]:
    lists = policy.suppress
    # A call that may go counts against the later calls of the same check, as if reserved.
    guarded = policy.caps or policy.caps_for or not policy.allow_repeat
    out = []
    for call in calls:
        phone, ring_at = call.phone, call.ring_at
        hit = blocked.get(phone) or (lists.get(phone, now) if lists else None)
        mine = placed.get(phone)
        if hit is None and not mine:
            verdict = SEND_NOW if ring_at is None else Verdict("send", None, "", ring_at)
        else:
            verdict = decide(call, _others(call, mine), hit, policy, now, allowed)
        if guarded and phone in again and verdict.action != "skip":
            placed.setdefault(phone, []).append(_as_placed(call, verdict, now))
        out.append(verdict)
    return out
