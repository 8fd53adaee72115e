"""The run's journal: one SQLite file (WAL) that is the single source of truth for every row.

A row's life is the state machine below, written once here (`State`, `TRANSITIONS`, and one
method per edge) and nowhere re-derived:

    pending ──> sending ──> scheduled | failed | unknown      mark_sending, record_result
       ^  │        │
       │  ├──> failed  (refuse_before_send: its calling window closed meanwhile)
       │  ├──> suppressed | already_scheduled | frequency_capped
       │  │            (skip_by_policy: the contact ledger refused it just before it left)
       └───────────┘   (back_to_pending: a 401 / TLS failure, the request provably did nothing)
    sending ──> unknown            (recover: the run stopped while it was in flight)
    failed | unknown ──> pending   (requeue: retry, only when the user asks)
    invalid, duplicate, and the ledger's skips: decided at planning, never sent

What is promised, and how:
- `sending` is committed before a request leaves, and that commit is on the disk (fsync'd)
  when `mark_sending` returns: WAL with `synchronous=FULL` syncs the log at every commit. A
  pass writes the marks of the rows the gate admits together with `write_sending` and makes
  them durable with one `commit()` (group commit: one fsync for many rows), and lets none of
  those requests leave before that commit returned and `durable` says it carried the mark. So
  neither a `kill -9` nor a power cut at any instant can turn a row whose request left back
  into `pending`: each row is either provably unsent (`pending`) or possibly sent (`sending`,
  which `resume` turns into `unknown`). Measured in `benchmarks/overhead.py`: the syncs cost
  about 0.1 ms of CPU a commit.
- An answer (`record_result`) is written at once but committed with the next `sending` mark,
  or by `commit()`, which a pass calls within `ANSWER_DELAY` of the first answer waiting and at
  its end: one fsync carries many answers, and a row costs one sync, not two. A `kill -9`
  before that commit leaves the row `sending`, which `resume` turns into `unknown`, as for a
  row caught in flight: never a row lost or sent twice, only a call_id to look up.
- Every other transition is committed when its method returns, by the same rule. A commit lost
  anyway (a disk that lies about its cache) falls back to an earlier, still-safe state.
- A journal is checked before anything touches it: an empty, truncated or corrupt file, or one
  that is not a batchcall journal, is refused (`DamagedJournalError`) and left exactly as it
  is, never migrated or rewritten. `readonly=True` (for `status`) never writes at all, and
  reads a journal in a read-only directory too.
- A write that fails (a full disk) raises `sqlite3.OperationalError`, and SQLite rolls back
  the statement: the journal stays as it was before it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple, get_args

from ._errors import DamagedJournalError, UsageError

# What the contact ledger's policies skip a row as (the same names as `_ledger.SkipOutcome`):
# at planning, or just before the row would have left.
PolicySkip = Literal["suppressed", "already_scheduled", "frequency_capped"]
# What planning decides for a row, and what a send (or a refusal just before it) ends in.
PlannedState = Literal["pending", "invalid", "duplicate", PolicySkip]
ResultState = Literal["scheduled", "failed", "unknown"]
State = Literal[PlannedState, "sending", ResultState]

STATES: tuple[State, ...] = get_args(State)
POLICY_SKIPS: frozenset[PolicySkip] = frozenset(get_args(PolicySkip))

TRANSITIONS: dict[State, frozenset[State]] = {
    # pending -> failed: refused before sending (its calling window closed for good meanwhile)
    "pending": frozenset({"sending", "failed", *POLICY_SKIPS}),
    "sending": frozenset({"scheduled", "failed", "unknown", "pending"}),
    "failed": frozenset({"pending"}),
    "unknown": frozenset({"pending"}),
    "scheduled": frozenset(),
    "invalid": frozenset(),
    "duplicate": frozenset(),
    "suppressed": frozenset(),
    "already_scheduled": frozenset(),
    "frequency_capped": frozenset(),
}

# A row in one of these is done for good: nothing will ever send it.
FINAL: frozenset[State] = frozenset(s for s, edges in TRANSITIONS.items() if not edges)
# Rows the run has not finished: `resume` sends them (after turning `sending` into `unknown`).
UNFINISHED: frozenset[State] = frozenset({"pending", "sending"})
# Rows a user may send again (`retry`): finished, but not for good.
RETRYABLE: frozenset[State] = frozenset(
    s for s, edges in TRANSITIONS.items() if "pending" in edges and s not in UNFINISHED
)
# Rows the user has to look at: they go to failed.csv and make the exit code 1.
FAILED_STATES: frozenset[State] = frozenset({"invalid", "failed", "unknown"})
# Rows skipped by a policy, never sent: they go to skipped.csv and leave the exit code alone.
SKIPPED_STATES: frozenset[State] = frozenset({"duplicate", *POLICY_SKIPS})

# `time_moved` bits: what moved the time a row is sent with away from the time it asked for.
MOVED_BY_WINDOW = 1
MOVED_BY_CAP = 2


def _rows_table(name: str, states: Iterable[str], *, check: str = "in", extra: str = "") -> str:
    if check == "in":
        check_sql = "state IN ({})".format(", ".join(f"'{state}'" for state in states))
    else:
        # SQLite builds an ephemeral table for a CHECK's `IN (...)` each time a statement
        # runs, so every row of an executemany built it again: 3.6 of 8.4 µs an insert. A
        # chain of `=` tests is evaluated in place.
        check_sql = " OR ".join(f"state = '{state}'" for state in states)
    return f"""
        CREATE TABLE {name} (
            row INTEGER PRIMARY KEY,
            cells TEXT NOT NULL,
            request TEXT,
            phone_e164 TEXT,
            idempotency_key TEXT,
            state TEXT NOT NULL CHECK ({check_sql}),
            call_id TEXT,
            contact_id TEXT,
            http_status INTEGER,
            error_code TEXT,
            error TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            scheduled_time_sent TEXT,
            time_moved INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL{extra}
        )"""


_ROW_COLUMNS = (
    "row, cells, request, phone_e164, idempotency_key, state, call_id, contact_id, http_status,"
    " error_code, error, attempts, scheduled_time_sent, time_moved, created_at, updated_at"
)
# The states of the first journals, before the contact ledger's skips.
_M001_STATES = ("pending", "invalid", "duplicate", "sending", "scheduled", "failed", "unknown")

# Ordered, named migrations; each runs once, in order, inside its own transaction. SQLite cannot
# change a CHECK, so a migration that adds a state rebuilds `rows` (copied into a new table,
# which takes the old one's name); each earlier migration keeps the states of its day, and the
# latest rebuild's CHECK is generated from `State`, so a stray state can never be stored.
MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "m001_initial",
        f"""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        {_rows_table("rows", _M001_STATES)};
        CREATE INDEX rows_by_state ON rows (state, row);
        """,
    ),
    (
        "m002_policy_skips",
        f"""
        {_rows_table("rows_m002", STATES)};
        INSERT INTO rows_m002 ({_ROW_COLUMNS}) SELECT {_ROW_COLUMNS} FROM rows;
        DROP TABLE rows;
        ALTER TABLE rows_m002 RENAME TO rows;
        CREATE INDEX rows_by_state ON rows (state, row);
        """,
    ),
    # The rule that moved or refused a row (results.csv's `window_rule`). A later rebuild of
    # `rows` must copy this column too: _ROW_COLUMNS names the columns of m001 only.
    ("m003_window_rule", "ALTER TABLE rows ADD COLUMN window_rule TEXT"),
    # The same states, checked by `=` tests rather than `IN`, which made planning's inserts
    # twice as slow (see `_rows_table`).
    (
        "m004_cheap_state_check",
        f"""
        {_rows_table("rows_m004", STATES, check="or", extra=", window_rule TEXT")};
        INSERT INTO rows_m004 ({_ROW_COLUMNS}, window_rule)
            SELECT {_ROW_COLUMNS}, window_rule FROM rows;
        DROP TABLE rows;
        ALTER TABLE rows_m004 RENAME TO rows;
        CREATE INDEX rows_by_state ON rows (state, row);
        """,
    ),
)


# What MIGRATIONS make of an empty journal, in one step (test_journal holds the two equal).
LATEST_SCHEMA = f"""
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    {_rows_table("rows", STATES, check="or", extra=", window_rule TEXT")};
    CREATE INDEX rows_by_state ON rows (state, row);
    """


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    found = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
    return found.fetchone() is not None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class PlannedRow(NamedTuple):
    """One planned row, as `prepare.encode` builds it and `Journal.add_rows` stores it.

    Each field is the `rows` column of the same name. A NamedTuple, because one is built for
    each row of a million-row file: it must cost little more than a tuple (and the planning
    child sends plain tuples, see `prepare`).
    """

    row: int  # 1-based record number, header excluded
    cells: str  # the input's cells, as a JSON list
    request: str | None  # the request body as JSON; None for a row that will never be sent
    phone_e164: str | None
    state: PlannedState
    error_code: str | None
    error: str | None
    scheduled_time_sent: str | None  # the time as sent (UTC "...Z"), or None for "now"
    time_moved: int  # MOVED_BY_WINDOW | MOVED_BY_CAP: what moved the time, if anything
    window_rule: str | None = None  # the rule that moved or refused the row, and its source


# The columns every row of one `add_rows` shares go into the statement as literals, so each
# row is bound as the PlannedRow it is: building a longer tuple for every row cost 0.5 µs.
_INSERT_PLANNED = (
    f"INSERT OR IGNORE INTO rows ({', '.join(PlannedRow._fields)},"
    " idempotency_key, created_at, updated_at)"
    f" VALUES ({', '.join(f'?{i}' for i in range(1, len(PlannedRow._fields) + 1))},"
    " {run_id} || '-' || ?1, {now}, {now})"
)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True, slots=True)
class Job:
    """A row ready to send."""

    row: int
    body: dict[str, Any]
    idempotency_key: str
    attempts: int


@dataclass(frozen=True, slots=True)
class Result:
    """What the dispatcher learned about a row; `state` is the row's next state."""

    state: ResultState
    http_status: int | None = None
    call_id: str | None = None
    contact_id: str | None = None
    error_code: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ReportRow:
    row: int
    cells: list[str]
    state: State
    call_id: str | None
    contact_id: str | None
    http_status: int | None
    error_code: str | None
    error: str | None
    attempts: int
    phone_e164: str | None
    scheduled_time_sent: str | None
    time_moved: int  # MOVED_BY_WINDOW | MOVED_BY_CAP, as stored
    window_rule: str | None = None


# A row's `window_rule` without a cap's part: a cap's rule starts with "cap ", alone or after
# the calling window's as "...; then cap ...".
_THEN_CAP = "'; then cap '"
_WINDOW_PART = (
    "CASE WHEN window_rule LIKE 'cap %' THEN NULL"
    f" WHEN instr(window_rule, {_THEN_CAP}) > 0"
    f" THEN substr(window_rule, 1, instr(window_rule, {_THEN_CAP}) - 1) ELSE window_rule END"
)


def _rule_update(bit: int, moved: bool, rule: str | None) -> tuple[str, tuple[str | None, ...]]:
    """The SET clause for `window_rule` of a retime, and its parameters."""
    if bit == MOVED_BY_WINDOW:
        return "window_rule = coalesce(?, window_rule)", (rule,)
    if not moved:
        return f"window_rule = ({_WINDOW_PART})", ()
    window = f"({_WINDOW_PART})"
    return (
        f"window_rule = CASE WHEN {window} IS NULL THEN ? ELSE {window} || '; then ' || ? END",
        (rule, rule),
    )


_SCANNER = json.JSONDecoder()
# results.csv's outcome columns (`models.RESULT_COLUMNS`) as text, after the row's state and
# cells; ?1 is a dry run, where `pending` reads "valid" (`report.DRY_RUN_NAMES`).
_RESULT_LINES = (
    "SELECT state, time_moved, cells, CAST(row AS TEXT),"
    " CASE WHEN ?1 AND state = 'pending' THEN 'valid' ELSE state END,"
    " coalesce(call_id, ''), coalesce(contact_id, ''), coalesce(CAST(http_status AS TEXT), ''),"
    " coalesce(error_code, ''), coalesce(error, ''), CAST(attempts AS TEXT),"
    " coalesce(phone_e164, ''), coalesce(scheduled_time_sent, ''),"
    " CASE WHEN time_moved THEN 'yes' ELSE '' END, coalesce(window_rule, '') FROM rows"
    " WHERE row BETWEEN ?2 AND ?3 ORDER BY row"
)


def _retime(
    db: sqlite3.Connection,
    row: int,
    sent: str | None,
    bit: int,
    moved: bool,
    request: str = "",
    rule: str | None = None,
) -> None:
    """Set the time a pending row is sent with, and set or clear what moved it (a `time_moved`
    bit, and for a cap its part of `window_rule`); `request`, when given, replaces the row's
    request; `rule` is what moved it (a window's rule replaces the row's, a cap's follows it)."""
    # Clearing a bit touches only the rows that have it: most rows have nothing to undo.
    op, only = (f"| {bit}", "") if moved else (f"& ~{bit}", f" AND time_moved & {bit}")
    set_rule, params = _rule_update(bit, moved, rule)
    db.execute(
        f"UPDATE rows SET scheduled_time_sent = ?, time_moved = time_moved {op}, {set_rule},"
        " request = CASE WHEN ? = '' THEN request ELSE ? END, updated_at = ?"
        f" WHERE row = ? AND state = 'pending'{only}",
        (sent, *params, request, request, _now(), row),
    )


# How long an answer may wait, uncommitted, for a `sending` commit to carry it to the disk.
ANSWER_DELAY = 0.05


class IllegalTransition(RuntimeError):
    """A bug guard: the code tried to move a row along an edge the state machine lacks."""


_DAMAGED = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


def _read_only(path: Path) -> sqlite3.Connection:
    """A connection that cannot write. In a read-only directory SQLite cannot make the WAL's
    shared-memory file, so the journal is read as immutable, which is exact only when no WAL
    holds commits the main file lacks."""
    uri = path.resolve().as_uri()
    try:
        db = sqlite3.connect(f"{uri}?mode=ro", uri=True, check_same_thread=False, timeout=10)
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_CANTOPEN:
            raise
        wal = path.with_name(path.name + "-wal")
        if wal.exists() and wal.stat().st_size:
            raise UsageError(
                f"Cannot read {path} where it is: its directory is read-only and its last "
                f"writes are still in {wal.name}. Copy the run directory somewhere writable "
                "and run `batchcall status` on the copy."
            ) from exc
    return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, check_same_thread=False)


def _damaged(path: Path, what: str, *, unfinished: bool = False) -> DamagedJournalError:
    advice = (
        "restore it from a backup if you have one (with its -wal file). Otherwise results.csv "
        "beside it, if there is one, shows each row's outcome as last written: send again only "
        "the rows it shows failed or pending, never those scheduled, sending or unknown."
    )
    if unfinished:
        # What a run leaves when its disk fills before its first commit: no row was journalled,
        # so none can have been sent (`sending` is committed before a request leaves).
        advice = (
            "If its run stopped as it started (a full disk), nothing was sent from it: remove "
            f"{path.parent} and start the run again. If it was emptied later, {advice}"
        )
    else:
        advice = advice[0].upper() + advice[1:]
    return DamagedJournalError(f"{path} cannot be used: {what}. It was left as it is. {advice}")


def open_checked(path: Path) -> sqlite3.Connection:
    """A read-only connection to a journal checked whole (SQLite's quick_check, and the tables
    a journal has), or DamagedJournalError; nothing is written to the file either way."""
    if path.stat().st_size == 0:
        raise _damaged(path, "the file is empty (0 bytes)", unfinished=True)
    try:
        db = _read_only(path)
        try:
            problems = [problem for (problem,) in db.execute("PRAGMA quick_check")]
            tables = {n for (n,) in db.execute("SELECT name FROM sqlite_master")}
        except BaseException:
            db.close()
            raise
    except sqlite3.DatabaseError as exc:
        if exc.sqlite_errorcode & 0xFF in _DAMAGED:
            raise _damaged(path, f"SQLite says {exc}: it is truncated or corrupt") from exc
        raise UsageError(f"Cannot read the journal {path}: {exc}.") from exc
    missing = {"meta", "rows"} - tables
    if problems == ["ok"] and not missing:
        return db
    db.close()
    if problems != ["ok"]:
        raise _damaged(path, f"SQLite's check found {'; '.join(problems[:3])}")
    if "migrations" in tables or not tables:
        raise _damaged(path, "it was never fully created (it has no run)", unfinished=True)
    raise _damaged(
        path, f"it is not a batchcall journal (it has no {' or '.join(sorted(missing))})"
    )


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN ... COMMIT, rolled back on any failure: a full disk can fail the COMMIT itself, and
    SQLite may or may not have rolled back by then."""
    db.execute("BEGIN")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _migrate(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
    done = {name for (name,) in db.execute("SELECT name FROM migrations")}
    if not done and not _has_table(db, "meta"):
        # A new journal: the latest schema at once. Each rebuild of `rows` would leave its
        # pages in the WAL, and on a nearly full disk, 100 KB can decide whether a run starts.
        with _transaction(db):
            for statement in LATEST_SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.executemany(
                "INSERT INTO migrations VALUES (?, ?)", [(n, _now()) for n, _ in MIGRATIONS]
            )
        return
    for name, sql in MIGRATIONS:
        if name in done:
            continue
        with _transaction(db):
            for statement in sql.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute("INSERT INTO migrations VALUES (?, ?)", (name, _now()))


def _connect(path: Path, *, create: bool, readonly: bool) -> sqlite3.Connection:
    if not create and not path.is_file():
        raise UsageError(f"No journal at {path}: is this a batchcall run directory?")
    if create:
        path.touch(mode=0o600)  # personal data: private even if the directory is not
    else:
        checked = open_checked(path)  # before anything could write to it
        if readonly:
            return checked
        checked.close()
        # SQLite would quietly open a journal it cannot write read-only, and fail later.
        if not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
            raise UsageError(
                f"Cannot write to {path}: a run records every row there, so it and its "
                "directory must be writable. Copy the run directory somewhere writable and run "
                "the command there; `batchcall status` reads it where it is."
            )
    # isolation_level=None: we issue BEGIN/COMMIT ourselves so batching is explicit.
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    # FULL: each commit is fsync'd before it returns, `sending` included (see the docstring).
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA busy_timeout=10000")
    _migrate(db)
    return db


class _Reads:
    """What a journal answers: counts, answers and the rows for the reports."""

    _db: sqlite3.Connection

    def cells(self, row: int) -> list[str]:
        found = self._db.execute("SELECT cells FROM rows WHERE row = ?", (row,)).fetchone()
        return [] if found is None else json.loads(found[0])

    def counts(self) -> dict[State, int]:
        return dict(self._db.execute("SELECT state, count(*) FROM rows GROUP BY state").fetchall())

    def error_counts(self) -> dict[str, int]:
        return dict(
            self._db.execute(
                "SELECT error_code, count(*) FROM rows WHERE error_code IS NOT NULL"
                " AND state != 'scheduled' GROUP BY error_code ORDER BY count(*) DESC"
            ).fetchall()
        )

    def answers(self, rows: Iterable[int]) -> dict[int, tuple[State, str | None]]:
        """The state and call_id of each of `rows` that the journal has."""
        sql = "SELECT row, state, call_id FROM rows WHERE row IN (SELECT value FROM json_each(?))"
        found = self._db.execute(sql, (json.dumps(list(rows)),))
        return {row: (state, call_id) for row, state, call_id in found}

    def report_rows(self) -> Iterator[ReportRow]:
        cursor = self._db.execute(
            "SELECT row, cells, state, call_id, contact_id, http_status, error_code, error,"
            " attempts, phone_e164, scheduled_time_sent, time_moved, window_rule FROM rows"
            " ORDER BY row"
        )
        # The C scanner itself: json.loads's checks and wrappers were a third of a row's decode.
        scan = _SCANNER.scan_once  # type: ignore[attr-defined]  # set by JSONDecoder.__init__
        for row, cells, *outcome in cursor:
            yield ReportRow(row, scan(cells, 0)[0], *outcome)

    def result_lines(
        self,
        width: int,
        *,
        dry_run: bool,
        rows: tuple[int, int] | None = None,
        moved: bool = False,
    ) -> Iterator[Any]:
        """Each row's state and its results.csv line before `csvsafe` (the input's cells,
        cut or padded to `width`, then the outcome columns), by row: what `report._cells`
        makes of a `ReportRow`, with the outcome columns' text made by SQLite (a million rows
        cost seconds less; test_report_writer holds the two to the same bytes). `rows`, when
        given, is the first and last row to read; with `moved`, each comes with its stored
        `time_moved` bits too (for `digest.Tally`)."""
        first, last = rows if rows is not None else (-(2**63), 2**63 - 1)
        cursor = self._db.execute(_RESULT_LINES, (int(dry_run), first, last))
        scan = _SCANNER.scan_once  # type: ignore[attr-defined]  # as in `report_rows`
        for state, bits, cells, *outcome in cursor:
            line: list[str] = scan(cells, 0)[0]
            if len(line) != width:
                line = line[:width] + [""] * (width - len(line))
            line.extend(outcome)
            yield (state, line, bits) if moved else (state, line)

    def last_row(self) -> int:
        """The highest row number held (0 for none)."""
        return int(self._db.execute("SELECT coalesce(max(row), 0) FROM rows").fetchone()[0])


class JournalReader(_Reads):
    """A journal's reads alone, on a read-only connection of this process's own, unchecked:
    for a process the journal's writer forked (`writer`), which reads the journal that writer
    just committed and checked; a connection must never cross a fork, so it makes its own."""

    def __init__(self, path: Path) -> None:
        self._db = _read_only(path)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> JournalReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Commits:
    """The commits of marks and answers: each transaction `_begin` opens is numbered, so that
    `durable` can say whether a `commit()` carried it to the disk (a group commit's check)."""

    _db: sqlite3.Connection
    _opened: int  # the transactions opened
    _committed: int  # the last of them a `commit()` made durable
    _lost: set[int]  # those rolled back (a full disk)

    def commit(self) -> None:
        """Commit the answers written but not yet committed (see the module docstring)."""
        if not self._db.in_transaction:
            return
        try:
            self._db.execute("COMMIT")
        except BaseException:
            # A full disk can fail the COMMIT itself; the answers then fall back to `sending`,
            # and the marks written with them to `pending`.
            self._lost.add(self._opened)
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        self._committed = self._opened

    def _begin(self) -> int:
        """Open a transaction for marks and answers unless one is open; its number."""
        if not self._db.in_transaction:
            if self._opened != self._committed:
                # The last one ended without a commit of ours: SQLite rolled it back itself.
                self._lost.add(self._opened)
            self._db.execute("BEGIN")
            self._opened += 1
        return self._opened

    def durable(self, transaction: int) -> bool:
        """Whether a `commit()` made `write_sending`'s transaction `transaction` durable."""
        return transaction <= self._committed and transaction not in self._lost

    @property
    def uncommitted(self) -> bool:
        """Answers are waiting for a commit."""
        return self._db.in_transaction


class Journal(_Commits, _Reads):
    """One run's journal. `create` makes a new one; otherwise the file is checked first
    (`open_checked`), and `readonly` keeps to the checked read-only connection."""

    def __init__(self, path: Path, *, create: bool = False, readonly: bool = False) -> None:
        self.path = path
        self._db = _connect(path, create=create, readonly=readonly)
        self._opened = 0
        self._committed = 0
        self._lost = set()

    def close(self) -> None:
        try:
            self.commit()
        finally:
            self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- run settings -------------------------------------------------------------------------

    def set_meta(self, **values: Any) -> None:
        """Store run settings, all or none."""
        self.commit()
        with _transaction(self._db):
            self._db.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [(k, json.dumps(v)) for k, v in values.items()],
            )

    def meta(self, key: str, default: Any = None) -> Any:
        found = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if found is None else json.loads(found[0])

    # --- planning -------------------------------------------------------------------------------

    def add_rows(self, rows: Iterable[PlannedRow], *, run_id: str) -> int:
        """Insert planned rows in one transaction. Rows already present are left untouched, so
        re-planning an input after a crash never resets a row."""
        insert = _INSERT_PLANNED.format(run_id=_literal(run_id), now=_literal(_now()))
        values = rows if isinstance(rows, list) else list(rows)
        self.commit()
        with _transaction(self._db):
            self._db.executemany(insert, values)
        return len(values)

    def replan(self, row: int, body: dict[str, Any], rule: str | None = None) -> None:
        """A pending row's request changed before it left (a calling window moved its time,
        by `rule`)."""
        request = json.dumps(body, ensure_ascii=False)
        _retime(self._db, row, body.get("scheduled_time"), MOVED_BY_WINDOW, True, request, rule)
        self.commit()

    def retime_by_cap(
        self, row: int, scheduled_time: str | None, *, deferred: bool, rule: str | None = None
    ) -> None:
        """The time a pending row's call is sent with, as the frequency caps leave it: moved
        (`deferred`, by the cap `rule`), or back at its own time (a deferral the plan expected
        did not happen). The request keeps the time the row asked for, which the ledger
        matches re-runs against."""
        # Just before the row's `sending` mark, which commits it (a row skipped instead is
        # committed by its skip).
        _retime(self._db, row, scheduled_time, MOVED_BY_CAP, deferred, rule=rule)

    # --- sending: one method per edge -----------------------------------------------------------

    def pending(self, *, after: int = 0, limit: int = 500) -> list[Job]:
        cursor = self._db.execute(
            "SELECT row, request, idempotency_key, attempts FROM rows"
            " WHERE state = 'pending' AND row > ? ORDER BY row LIMIT ?",
            (after, limit),
        )
        return [Job(row, json.loads(req), key, attempts) for row, req, key, attempts in cursor]

    def mark_sending(self, row: int, attempts: int) -> None:
        """pending -> sending: committed after the gate admits the request, before it leaves."""
        self._move(row, "pending", "sending", attempts=attempts)

    def write_sending(self, row: int, attempts: int) -> int:
        """pending -> sending, written but not committed: the number of the transaction that
        holds it. Its request may leave only once `commit()` returned and `durable` of that
        number is true; many rows' marks then cost one fsync."""
        transaction = self._begin()
        self._move(row, "pending", "sending", commit=False, attempts=attempts)
        return transaction

    def record_result(self, row: int, result: Result, *, attempts: int) -> None:
        """sending -> scheduled | failed | unknown: what the request's answer (or lack) said.
        Committed with the next `sending` mark or `commit()`, not before it returns."""
        self._begin()
        self._move(
            row,
            "sending",
            result.state,
            commit=False,
            http_status=result.http_status,
            call_id=result.call_id,
            contact_id=result.contact_id,
            error_code=result.error_code,
            error=result.error,
            attempts=attempts,
        )

    def back_to_pending(self, row: int) -> None:
        """sending -> pending: the request provably did nothing (a 401, a TLS failure)."""
        self._move(row, "sending", "pending")

    def refuse_before_send(
        self, row: int, error_code: str, error: str, rule: str | None = None
    ) -> None:
        """pending -> failed: the row may not leave (its calling window closed for good, by
        `rule`)."""
        self._move(
            row, "pending", "failed", http_status=None, error_code=error_code, error=error,
            window_rule=rule,
        )  # fmt: skip

    def skip_by_policy(
        self, row: int, outcome: PolicySkip, message: str, rule: str | None = None
    ) -> None:
        """pending -> suppressed | already_scheduled | frequency_capped: the contact ledger
        refused the row just before it would have left; `message` says why, and `rule`
        names the cap, if one refused it."""
        fields: dict[str, Any] = {"error_code": outcome, "error": message}
        if rule is not None:
            fields["window_rule"] = rule
        self._move(row, "pending", outcome, **fields)

    def _move(
        self, row: int, edge_from: State, to: State, *, commit: bool = True, **fields: Any
    ) -> None:
        """Move one row along the edge `edge_from -> to` of the state machine, and commit
        (with any answers waiting) unless told not to."""
        if to not in TRANSITIONS[edge_from]:
            raise IllegalTransition(f"row {row}: the state machine has no edge {edge_from} -> {to}")
        sets = "".join(f", {name} = ?" for name in fields)
        # One statement that checks the state as it moves it: no read, and no race with it.
        cursor = self._db.execute(
            f"UPDATE rows SET state = ?, updated_at = ?{sets} WHERE row = ? AND state = ?",
            (to, _now(), *fields.values(), row, edge_from),
        )
        if cursor.rowcount != 1:
            found = self._db.execute("SELECT state FROM rows WHERE row = ?", (row,)).fetchone()
            state = "missing" if found is None else found[0]
            raise IllegalTransition(f"row {row} is {state}, not {edge_from}: cannot go to {to}")
        if commit:
            self.commit()

    # --- recovery and re-runs -------------------------------------------------------------------

    def recover(self) -> int:
        """sending -> unknown, for every row: after a crash or a hard stop, a row caught in
        flight may have been created. Returns how many rows it moved."""
        cursor = self._db.execute(
            "UPDATE rows SET state = 'unknown', error_code = 'interrupted', error = ?,"
            " updated_at = ? WHERE state = 'sending'",
            (
                "The run stopped while this request was in flight; the call may exist. Check it, "
                "or re-send it with `batchcall retry DIR --include-unknown`.",
                _now(),
            ),
        )
        self.commit()
        return cursor.rowcount

    def requeue(self, states: Iterable[str]) -> int:
        """failed | unknown -> pending, for every row in `states`: the user asked to retry them.
        Returns how many rows it moved."""
        wanted = set(states)
        if not wanted <= RETRYABLE:
            raise IllegalTransition(f"rows in {sorted(wanted - RETRYABLE)} cannot be queued again")
        if not wanted:
            return 0
        marks = ",".join("?" for _ in wanted)
        # A failed row provably created nothing, so it gets a fresh Idempotency-Key: a server
        # that stored its error answer under the old key must not replay that error. An
        # unknown row keeps its key, so a server that did create the call replays it instead.
        cursor = self._db.execute(
            "UPDATE rows SET state = 'pending', error_code = NULL, error = NULL,"
            " http_status = NULL, updated_at = ?,"
            " idempotency_key = CASE WHEN state = 'failed'"
            "   THEN idempotency_key || '-r' || attempts ELSE idempotency_key END"
            f" WHERE state IN ({marks})",
            (_now(), *wanted),
        )
        self.commit()
        return cursor.rowcount


def nothing_to_send(journal: Journal) -> None:
    """A validate run's journal: no commit needs to reach the disk before it returns.

    `synchronous=OFF`: SQLite never waits for the disk, a checkpoint included. A killed
    process still leaves a consistent journal (the OS has every write it made); only an OS
    crash or a power cut can damage it, and then the next command that opens it says so
    (`open_checked`). That is a fair trade for a dry run: it sends nothing, `resume` refuses
    it, and running `validate` again makes it anew. Each checkpoint's two fsyncs had cost a
    million-row validate over a second of its writer's time. For this connection only: a
    `run` opens its own journal, with FULL."""
    journal._db.execute("PRAGMA synchronous=OFF")
