"""The ledger's two stores, SQLite and PostgreSQL, behind one small interface.

Both hold the same tables, created by ordered, named migrations (`m001_initial`, ...), and both
run the same SQL, written with `?` placeholders (PostgreSQL's are substituted once per
statement). What differs is kept here: how times are stored, how a batch of phones is matched,
and how a reservation is made atomic across processes:

- SQLite: `BEGIN IMMEDIATE` takes the database's write lock before the policy is read, so two
  processes can never both read "no call yet" and both reserve. WAL lets the plan-time checks
  of other runs read meanwhile. Times are ISO 8601 text in UTC at microsecond precision, which
  sorts as it compares. `secure_delete` zeroes what `prune` removes, so pruned personal data
  does not linger in free pages.
- PostgreSQL: `pg_advisory_xact_lock` on (team, phone) serialises the reservations of one phone
  (every policy is per phone) while other phones proceed in parallel; the lock ends with the
  transaction, so a killed client cannot leave it held. Times are `timestamptz`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Protocol

from .._errors import LedgerError, UsageError

# Placeholders per query stay well under SQLite's oldest variable limit (999).
BATCH = 900

_COMMON = """
CREATE TABLE ledger_calls (
    id {id},
    team TEXT NOT NULL,
    phone TEXT NOT NULL,
    script_id TEXT,
    ring_at {time} NOT NULL,
    asked_at {time},
    run_id TEXT NOT NULL,
    row_no INTEGER NOT NULL,
    call_id TEXT,
    outcome TEXT NOT NULL CHECK (outcome IN ('reserved', 'scheduled', 'unknown', 'failed')),
    recorded_at {time} NOT NULL,
    UNIQUE (team, run_id, row_no)
);
CREATE INDEX ledger_calls_by_phone ON ledger_calls (team, phone, ring_at);
CREATE INDEX ledger_calls_by_ring ON ledger_calls (team, ring_at);
CREATE TABLE ledger_suppressions (
    team TEXT NOT NULL,
    phone TEXT NOT NULL,
    reason TEXT,
    expires_at {time},
    source TEXT NOT NULL,
    added_at {time} NOT NULL,
    PRIMARY KEY (team, phone)
);
"""

MIGRATIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "sqlite": (("m001_initial", _COMMON.format(id="INTEGER PRIMARY KEY", time="TEXT")),),
    "postgresql": (
        ("m001_initial", _COMMON.format(id="BIGSERIAL PRIMARY KEY", time="TIMESTAMPTZ")),
    ),
}


class Store(Protocol):
    """What the ledger needs from a database."""

    kind: str
    where: str  # for messages: a path, or a URL without its password

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...
    def execute(self, sql: str, params: Sequence[Any] = ()) -> int: ...
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...
    def atomic(self, lock: str | None = None) -> Any: ...
    def time(self, instant: datetime) -> Any: ...
    def instant(self, value: Any) -> datetime: ...
    def any_of(self, column: str, values: Sequence[str]) -> tuple[str, list[Any]]: ...
    def checkpoint(self) -> None: ...
    def close(self) -> None: ...


def _statements(sql: str) -> Iterator[str]:
    return (part.strip() for part in sql.split(";") if part.strip())


def _wal(db: sqlite3.Connection) -> None:
    """Put the ledger in WAL mode, waiting out another process that is doing the same.

    Switching the journal mode takes an exclusive lock, and SQLite answers "database is
    locked" at once, without its busy handler, while another connection holds one; racing
    processes that open a new ledger together meet exactly that.
    """
    deadline = time.monotonic() + 30
    while True:
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class SqliteStore:
    kind = "sqlite"

    def __init__(self, uri: str, where: str) -> None:
        self.where = where
        try:
            # isolation_level=None: transactions are ours (BEGIN IMMEDIATE), never implicit.
            self._db = sqlite3.connect(
                uri, uri=True, isolation_level=None, check_same_thread=False, timeout=30
            )
            self._db.execute("PRAGMA busy_timeout=30000")
            _wal(self._db)
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA secure_delete=ON")
            # Every reservation is a commit; a checkpoint (two fsyncs) every 1,000 WAL pages,
            # SQLite's default, cost 70 µs of each commit's 115 µs here. Every 8,000 pages
            # (a WAL of up to 32 MB) brings a commit to about 50 µs.
            self._db.execute("PRAGMA wal_autocheckpoint=8000")
            # The plan-time check probes the phone index all over a big ledger: a larger page
            # cache than SQLite's 2 MB default keeps its inner pages in memory.
            self._db.execute("PRAGMA cache_size=-32768")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise UsageError(f"Cannot open the ledger {where}: {exc}.") from exc

    def _migrate(self) -> None:
        with self.atomic():
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS ledger_migrations (name TEXT PRIMARY KEY,"
                " applied_at TEXT NOT NULL)"
            )
            done = {name for (name,) in self._db.execute("SELECT name FROM ledger_migrations")}
            for name, sql in MIGRATIONS["sqlite"]:
                if name not in done:
                    for statement in _statements(sql):
                        self._db.execute(statement)
                    self._db.execute(
                        "INSERT INTO ledger_migrations VALUES (?, ?)",
                        (name, self.time(datetime.now(UTC))),
                    )

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            return self._db.execute(sql, params).rowcount
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            self._db.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc

    @contextmanager
    def atomic(self, lock: str | None = None) -> Iterator[None]:
        # The write lock is the whole database's: `lock` needs nothing finer here.
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc

    def _failed(self, exc: sqlite3.Error) -> LedgerError:
        return LedgerError(f"The ledger {self.where} failed: {exc}.")

    def time(self, instant: datetime) -> str:
        if instant.tzinfo is not UTC:
            instant = instant.astimezone(UTC)
        return instant.isoformat(timespec="microseconds")[:-6] + "Z"

    def instant(self, value: Any) -> datetime:
        return datetime.fromisoformat(value)

    def any_of(self, column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
        return f"{column} IN ({','.join('?' * len(values))})", list(values)

    def checkpoint(self) -> None:
        """Fold the WAL into the database and truncate it, so pruned rows leave the WAL too."""
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        self._db.close()


class PostgresStore:
    kind = "postgresql"

    def __init__(self, url: str, where: str) -> None:
        import psycopg  # deferred: only teams with a PostgreSQL ledger pay for the import

        self.where = where
        self._psycopg = psycopg
        self._sql: dict[str, str] = {}
        try:
            self._db = psycopg.connect(url, autocommit=True, options="-c timezone=UTC")
            self._migrate()
        except psycopg.Error as exc:
            raise UsageError(f"Cannot open the ledger {where}: {_first_line(exc)}") from exc

    def _migrate(self) -> None:
        with self.atomic("batchcall ledger migrations"):
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS ledger_migrations (name TEXT PRIMARY KEY,"
                " applied_at TIMESTAMPTZ NOT NULL)"
            )
            done = {row[0] for row in self._db.execute("SELECT name FROM ledger_migrations")}
            for name, sql in MIGRATIONS["postgresql"]:
                if name not in done:
                    for statement in _statements(sql):
                        self._db.execute(statement)
                    self._db.execute("INSERT INTO ledger_migrations VALUES (%s, now())", (name,))

    def _pg(self, sql: str) -> str:
        found = self._sql.get(sql)
        if found is None:
            found = self._sql[sql] = sql.replace("?", "%s")
        return found

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._db.execute(self._pg(sql), params).fetchall()  # type: ignore[arg-type]
        except self._psycopg.Error as exc:
            raise self._failed(exc) from exc

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            return self._db.execute(self._pg(sql), params).rowcount  # type: ignore[arg-type]
        except self._psycopg.Error as exc:
            raise self._failed(exc) from exc

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            with self._db.cursor() as cursor:
                cursor.executemany(self._pg(sql), rows)  # type: ignore[arg-type]
        except self._psycopg.Error as exc:
            raise self._failed(exc) from exc

    @contextmanager
    def atomic(self, lock: str | None = None) -> Iterator[None]:
        try:
            with self._db.transaction():
                if lock is not None:
                    # hashtextextended: a 64-bit key, so two phones practically never share one.
                    self._db.execute(
                        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (lock,)
                    )
                yield
        except self._psycopg.Error as exc:
            raise self._failed(exc) from exc

    def _failed(self, exc: BaseException) -> LedgerError:
        return LedgerError(f"The ledger {self.where} failed: {_first_line(exc)}")

    def time(self, instant: datetime) -> datetime:
        return instant

    def instant(self, value: Any) -> datetime:
        return value if value.tzinfo is UTC else value.astimezone(UTC)

    def any_of(self, column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
        return f"{column} = ANY(?)", [list(values)]

    def checkpoint(self) -> None:
        """Deleted rows stay on disk until VACUUM; autovacuum reclaims them."""

    def close(self) -> None:
        self._db.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
