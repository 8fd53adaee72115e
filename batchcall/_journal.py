"""The run's journal: one SQLite file (WAL) that is the single source of truth for every row.

A row's life is the state machine below, written once here and nowhere re-derived:

    pending ──> sending ──> scheduled | failed | unknown
       ^  │        │
       │  └──> failed  (refused before sending: its calling window closed meanwhile)
       └───────────┘   (401 / not executed: the request provably did nothing)
    failed | unknown ──> pending   (retry, only when the user asks)
    invalid, duplicate: decided at planning, never sent

`sending` is committed before a request leaves, so a `kill -9` at any instant leaves each row
either provably unsent (`pending`) or possibly sent (`sending`, which resume turns into
`unknown`). WAL with synchronous=NORMAL survives a killed process; only a power cut can lose the
last commits, and then the rows fall back to an earlier, still-safe state.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._errors import UsageError
from ._prepare import Record

TRANSITIONS: dict[str, frozenset[str]] = {
    # pending -> failed: refused before sending (its calling window closed for good meanwhile)
    "pending": frozenset({"sending", "failed"}),
    "sending": frozenset({"scheduled", "failed", "unknown", "pending"}),
    "failed": frozenset({"pending"}),
    "unknown": frozenset({"pending"}),
    "scheduled": frozenset(),
    "invalid": frozenset(),
    "duplicate": frozenset(),
}

# Ordered, named migrations; each runs once, in order, inside its own transaction.
MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "m001_initial",
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE rows (
            row INTEGER PRIMARY KEY,
            cells TEXT NOT NULL,
            request TEXT,
            phone_e164 TEXT,
            idempotency_key TEXT,
            state TEXT NOT NULL CHECK (state IN
                ('pending','sending','scheduled','failed','unknown','invalid','duplicate')),
            call_id TEXT,
            contact_id TEXT,
            http_status INTEGER,
            error_code TEXT,
            error TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            scheduled_time_sent TEXT,
            time_moved INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX rows_by_state ON rows (state, row);
        """,
    ),
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


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

    state: str
    http_status: int | None = None
    call_id: str | None = None
    contact_id: str | None = None
    error_code: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ReportRow:
    row: int
    cells: list[str]
    state: str
    call_id: str | None
    contact_id: str | None
    http_status: int | None
    error_code: str | None
    error: str | None
    attempts: int
    phone_e164: str | None
    scheduled_time_sent: str | None
    time_moved: bool


class IllegalTransition(RuntimeError):
    """A bug guard: the code tried to move a row along an edge the state machine lacks."""


class Journal:
    def __init__(self, path: Path, *, create: bool = False) -> None:
        if not create and not path.is_file():
            raise UsageError(f"No journal at {path}: is this a batchcall run directory?")
        self.path = path
        if create:
            path.touch(mode=0o600)  # personal data: private even if the directory is not
        # isolation_level=None: we issue BEGIN/COMMIT ourselves so batching is explicit.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._migrate()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT)"
        )
        done = {name for (name,) in self._db.execute("SELECT name FROM migrations")}
        for name, sql in MIGRATIONS:
            if name in done:
                continue
            self._db.execute("BEGIN")
            for statement in sql.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute("INSERT INTO migrations VALUES (?, ?)", (name, _now()))
            self._db.execute("COMMIT")

    # --- run settings -------------------------------------------------------------------------

    def set_meta(self, **values: Any) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            [(k, json.dumps(v)) for k, v in values.items()],
        )

    def meta(self, key: str, default: Any = None) -> Any:
        found = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if found is None else json.loads(found[0])

    # --- planning -------------------------------------------------------------------------------

    def add_rows(self, records: Iterable[Record], *, run_id: str) -> int:
        """Insert planned rows (see `prepare.encode`) in one transaction. Rows already present
        are left untouched, so re-planning an input after a crash never resets a row."""
        now = _now()
        rows = [(*r[:4], f"{run_id}-{r[0]}", *r[4:], now, now) for r in records]
        self._db.execute("BEGIN")
        self._db.executemany(
            "INSERT OR IGNORE INTO rows (row, cells, request, phone_e164, idempotency_key, state,"
            " error_code, error, scheduled_time_sent, time_moved, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        self._db.execute("COMMIT")
        return len(rows)

    # --- sending --------------------------------------------------------------------------------

    def pending(self, *, after: int = 0, limit: int = 500) -> list[Job]:
        cursor = self._db.execute(
            "SELECT row, request, idempotency_key, attempts FROM rows"
            " WHERE state = 'pending' AND row > ? ORDER BY row LIMIT ?",
            (after, limit),
        )
        return [Job(row, json.loads(req), key, attempts) for row, req, key, attempts in cursor]

    def transition(self, row: int, to: str, **fields: Any) -> None:
        """Move one row along an edge of the state machine, and commit."""
        current = self._db.execute("SELECT state FROM rows WHERE row = ?", (row,)).fetchone()
        if current is None or to not in TRANSITIONS[current[0]]:
            raise IllegalTransition(f"row {row}: {current and current[0]} -> {to}")
        sets = ", ".join(f"{name} = ?" for name in fields)
        sql = (
            f"UPDATE rows SET state = ?, updated_at = ?{', ' + sets if sets else ''} WHERE row = ?"
        )
        self._db.execute(sql, (to, _now(), *fields.values(), row))

    def cells(self, row: int) -> list[str]:
        found = self._db.execute("SELECT cells FROM rows WHERE row = ?", (row,)).fetchone()
        return [] if found is None else json.loads(found[0])

    def replan(self, row: int, body: dict[str, Any]) -> None:
        """A pending row's request changed before it left (a calling window moved its time)."""
        self._db.execute(
            "UPDATE rows SET request = ?, scheduled_time_sent = ?, time_moved = 1, updated_at = ?"
            " WHERE row = ? AND state = 'pending'",
            (json.dumps(body, ensure_ascii=False), body.get("scheduled_time"), _now(), row),
        )

    def mark_sending(self, row: int, attempts: int) -> None:
        self.transition(row, "sending", attempts=attempts)

    def record(self, row: int, result: Result, *, attempts: int) -> None:
        self.transition(
            row,
            result.state,
            http_status=result.http_status,
            call_id=result.call_id,
            contact_id=result.contact_id,
            error_code=result.error_code,
            error=result.error,
            attempts=attempts,
        )

    # --- recovery and re-runs -------------------------------------------------------------------

    def recover(self) -> int:
        """After a crash: a row caught in `sending` may have been created, so it is `unknown`."""
        cursor = self._db.execute(
            "UPDATE rows SET state = 'unknown', error_code = 'interrupted', error = ?,"
            " updated_at = ? WHERE state = 'sending'",
            (
                "The run stopped while this request was in flight; the call may exist. Check it, "
                "or re-send it with `batchcall retry DIR --include-unknown`.",
                _now(),
            ),
        )
        return cursor.rowcount

    def requeue(self, states: Iterable[str]) -> int:
        wanted = [s for s in states if "pending" in TRANSITIONS.get(s, ())]
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
        return cursor.rowcount

    # --- reading --------------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT state, count(*) FROM rows GROUP BY state").fetchall())

    def error_counts(self) -> dict[str, int]:
        return dict(
            self._db.execute(
                "SELECT error_code, count(*) FROM rows WHERE error_code IS NOT NULL"
                " AND state != 'scheduled' GROUP BY error_code ORDER BY count(*) DESC"
            ).fetchall()
        )

    def report_rows(self) -> Iterator[ReportRow]:
        cursor = self._db.execute(
            "SELECT row, cells, state, call_id, contact_id, http_status, error_code, error,"
            " attempts, phone_e164, scheduled_time_sent, time_moved FROM rows ORDER BY row"
        )
        for (
            row,
            cells,
            state,
            call_id,
            contact_id,
            status,
            code,
            error,
            attempts,
            phone,
            sent,
            moved,
        ) in cursor:
            yield ReportRow(
                row,
                json.loads(cells),
                state,
                call_id,
                contact_id,
                status,
                code,
                error,
                attempts,
                phone,
                sent,
                bool(moved),
            )
