"""The ledger's SQL, for one team: every statement names the team, so teams never mix."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ._model import Placed, Suppression
from ._store import Store

_POLICY_COLUMNS = "phone, script_id, ring_at, asked_at, run_id, row_no, call_id, outcome"
_CALL_COLUMNS = f"{_POLICY_COLUMNS}, recorded_at"
_PLACED = (
    f"SELECT {_POLICY_COLUMNS} FROM ledger_calls WHERE team = ? AND {{phones}} AND ring_at >= ?"
    " AND outcome != 'failed'"
)
_HISTORY = (
    f"SELECT {_CALL_COLUMNS} FROM ledger_calls WHERE team = ? AND phone = ? ORDER BY ring_at, id"
)
_KNOWN_CALL = (
    "SELECT 1 FROM ledger_calls WHERE team = ? AND {phones} AND outcome != 'failed' LIMIT 1"
)
_KNOWN_SUPPRESSION = "SELECT 1 FROM ledger_suppressions WHERE team = ? AND {phones} LIMIT 1"
# Whether the team has anything on record at all: one step down an index, where a look for a
# chunk's 1,000 phones costs a millisecond (a first run, or a new ledger, has nothing).
_ANYTHING = (
    "SELECT 1 FROM ledger_calls WHERE team = ? UNION ALL"
    " SELECT 1 FROM ledger_suppressions WHERE team = ? LIMIT 1"
)
_SUPPRESSION_COLUMNS = "phone, reason, expires_at, source, added_at"
_SUPPRESSED = (
    f"SELECT {_SUPPRESSION_COLUMNS} FROM ledger_suppressions WHERE team = ? AND {{phones}}"
)
_RECORD = (
    "INSERT INTO ledger_calls (team, phone, script_id, ring_at, asked_at, run_id, row_no,"
    " call_id, outcome, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (team, run_id, row_no) DO UPDATE SET phone = excluded.phone,"
    " script_id = excluded.script_id, ring_at = excluded.ring_at, asked_at = excluded.asked_at,"
    " call_id = excluded.call_id, outcome = excluded.outcome, recorded_at = excluded.recorded_at"
)
SUPPRESS = (
    "INSERT INTO ledger_suppressions (team, phone, reason, expires_at, source, added_at)"
    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (team, phone) DO UPDATE SET"
    " reason = excluded.reason, expires_at = excluded.expires_at, source = excluded.source,"
    " added_at = excluded.added_at"
)
# An import never shortens a suppression already in the list: it fails closed, too.
SUPPRESS_LONGER = (
    SUPPRESS + " WHERE ledger_suppressions.expires_at IS NOT NULL AND"
    " (excluded.expires_at IS NULL OR excluded.expires_at > ledger_suppressions.expires_at)"
)


class Tables:
    """Reads and writes of one team's rows; the caller decides what runs in a transaction."""

    def __init__(self, store: Store, team: str) -> None:
        self.store = store
        self.team = team

    def placed(self, phones: Sequence[str], since: datetime) -> dict[str, list[Placed]]:
        """The calls that count as placed to each of `phones`, ringing at or after `since`."""
        match, values = self.store.any_of("phone", phones)
        rows = self.store.query(
            _PLACED.format(phones=match), (self.team, *values, self.store.time(since))
        )
        instant = self.store.instant
        found: dict[str, list[Placed]] = {}
        for phone, script, ring, asked, run_id, row_no, call_id, outcome in rows:
            at = instant(ring)
            # Most calls ring when they asked to: one parse instead of two.
            asked_at = at if asked == ring else None if asked is None else instant(asked)
            placed = Placed(phone, script, at, asked_at, run_id, row_no, call_id, outcome)
            found.setdefault(phone, []).append(placed)
        return found

    def knows(self, phones: Sequence[str]) -> bool:
        """Whether any of `phones` has a call that counts (any time) or a suppression (in
        force or not): what `placed` and `blocked` could find for them, and more."""
        if not self.store.query(_ANYTHING, (self.team, self.team)):
            return False
        match, values = self.store.any_of("phone", phones)
        for sql in (_KNOWN_CALL, _KNOWN_SUPPRESSION):
            if self.store.query(sql.format(phones=match), (self.team, *values)):
                return True
        return False

    def history(self, phone: str) -> list[Placed]:
        return [self._history_row(row) for row in self.store.query(_HISTORY, (self.team, phone))]

    def blocked(self, phones: Sequence[str], now: datetime) -> dict[str, Suppression]:
        """The team's suppressions in force at `now` among `phones`."""
        match, values = self.store.any_of("phone", phones)
        rows = self.store.query(_SUPPRESSED.format(phones=match), (self.team, *values))
        entries = (self._suppression_row(row) for row in rows)
        return {entry.phone: entry for entry in entries if entry.active(now)}

    def suppressions(self) -> list[Suppression]:
        rows = self.store.query(
            f"SELECT {_SUPPRESSION_COLUMNS} FROM ledger_suppressions WHERE team = ? ORDER BY phone",
            (self.team,),
        )
        return [self._suppression_row(row) for row in rows]

    def record(self, calls: Sequence[Placed], now: datetime) -> None:
        """Insert calls, or replace the call of the same run and row (a retried row)."""
        t = self.store.time
        rows = [
            (self.team, c.phone, c.script_id, t(c.ring_at), c.asked_at and t(c.asked_at),
             c.run_id, c.row, c.call_id, c.outcome, t(now))
            for c in calls
        ]  # fmt: skip
        self.store.executemany(_RECORD, rows)

    def add_suppressions(self, entries: Sequence[Suppression], now: datetime, sql: str) -> int:
        t = self.store.time
        rows = [
            (self.team, e.phone, e.reason, e.expires_at and t(e.expires_at), e.source, t(now))
            for e in entries
        ]
        self.store.executemany(sql, rows)
        return len(rows)

    def execute(self, sql: str, *params: object) -> int:
        """Run `sql`, whose first placeholder is the team."""
        return self.store.execute(sql, (self.team, *params))

    def _history_row(self, row: Sequence[object]) -> Placed:
        phone, script, ring, asked, run_id, row_no, call_id, outcome, recorded = row
        instant = self.store.instant
        return Placed(
            phone,  # type: ignore[arg-type]
            script,  # type: ignore[arg-type]
            instant(ring),
            None if asked is None else instant(asked),
            run_id,  # type: ignore[arg-type]
            row_no,  # type: ignore[arg-type]
            call_id,  # type: ignore[arg-type]
            outcome,  # type: ignore[arg-type]
            None if recorded is None else instant(recorded),
        )

    def _suppression_row(self, row: Sequence[object]) -> Suppression:
        phone, reason, expires, source, added = row
        instant = self.store.instant
        return Suppression(
            phone,  # type: ignore[arg-type]
            reason,  # type: ignore[arg-type]
            None if expires is None else instant(expires),
            source,  # type: ignore[arg-type]
            instant(added),
        )
