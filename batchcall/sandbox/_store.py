"""What the sandbox remembers: its team, contacts, calls and Idempotency-Key records.

One SQLite connection, in memory unless a file is given, so a restarted sandbox with the same
`db_path` still knows every call it created and still replays every key it answered. The
server uses it from its single event-loop thread, with no await between a check and the write
that follows it, so a check-then-create cannot race.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The seeded team. The first of each is the spec example's.
TEAM_FROM_NUMBERS: tuple[str, ...] = ("+61291234567", "+61391234567", "+61731234567")
TEAM_SCRIPT_IDS: tuple[str, ...] = (
    "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
    "5f0c3c1e-2b7a-4d0e-9a61-3c8f2d9b7e10",
    "9d2e7f44-0c1b-4a8e-b6f3-71c5a2e8d903",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS contacts (
    contact_id TEXT PRIMARY KEY,
    phone_number TEXT NOT NULL UNIQUE,
    first_name TEXT,
    last_name TEXT
);
CREATE TABLE IF NOT EXISTS calls (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id TEXT NOT NULL UNIQUE,
    contact_id TEXT NOT NULL,
    phone_number TEXT NOT NULL,
    from_number TEXT NOT NULL,
    script_id TEXT NOT NULL,
    scheduled_time TEXT,
    objects TEXT,
    first_name TEXT,
    last_name TEXT,
    idempotency_key TEXT,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    response TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class NewCall:
    """A validated request, normalised: phones in E.164, the time as sent."""

    phone_number: str
    from_number: str
    script_id: str
    first_name: str | None
    last_name: str | None
    objects: dict[str, Any] | None
    scheduled_time: str | None


class Store:
    """Contacts upserted by phone, calls, and Idempotency-Key records."""

    def __init__(self, *, db_path: Path | None = None) -> None:
        self._db = sqlite3.connect(
            str(db_path) if db_path else ":memory:", check_same_thread=False, isolation_level=None
        )
        self._db.row_factory = sqlite3.Row
        if db_path:
            # Survives a killed sandbox process, which is what restart tests need; skipping the
            # fsync per commit keeps a file-backed sandbox as fast as an in-memory one.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def replay(self, key: str) -> tuple[str, dict[str, Any]] | None:
        """The (fingerprint, 201 body) stored for an Idempotency-Key, if any."""
        row = self._db.execute(
            "SELECT fingerprint, response FROM idempotency WHERE key = ?", (key,)
        ).fetchone()
        return None if row is None else (row["fingerprint"], json.loads(row["response"]))

    def create(
        self, call: NewCall, *, idempotency_key: str | None, fingerprint: str
    ) -> dict[str, Any]:
        """Upsert the contact, create the call, remember the key; return the 201 body."""
        with self._db:  # one transaction: a call never exists without its key record
            self._db.execute("BEGIN")
            contact = self._db.execute(
                "SELECT contact_id FROM contacts WHERE phone_number = ?", (call.phone_number,)
            ).fetchone()
            if contact is None:
                contact_id = str(uuid.uuid4())
                self._db.execute(
                    "INSERT INTO contacts VALUES (?, ?, ?, ?)",
                    (contact_id, call.phone_number, call.first_name, call.last_name),
                )
            else:
                contact_id = contact["contact_id"]
                # Upsert: a name sent now replaces the stored one; an omitted name is kept.
                self._db.execute(
                    "UPDATE contacts SET first_name = coalesce(?, first_name),"
                    " last_name = coalesce(?, last_name) WHERE contact_id = ?",
                    (call.first_name, call.last_name, contact_id),
                )
            call_id = str(uuid.uuid4())
            self._db.execute(
                "INSERT INTO calls (call_id, contact_id, phone_number, from_number, script_id,"
                " scheduled_time, objects, first_name, last_name, idempotency_key, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    call_id,
                    contact_id,
                    call.phone_number,
                    call.from_number,
                    call.script_id,
                    call.scheduled_time,
                    None if call.objects is None else json.dumps(call.objects),
                    call.first_name,
                    call.last_name,
                    idempotency_key,
                    time.time(),
                ),
            )
            response = {
                "success": True,
                "call_id": call_id,
                "contact_id": contact_id,
                "status": "scheduled",
            }
            if idempotency_key is not None:
                self._db.execute(
                    "INSERT INTO idempotency VALUES (?, ?, ?)",
                    (idempotency_key, fingerprint, json.dumps(response)),
                )
        return response

    def calls(self) -> list[dict[str, Any]]:
        """Every call created, oldest first."""
        rows = self._db.execute("SELECT * FROM calls ORDER BY seq").fetchall()
        result = []
        for row in rows:
            call = dict(row)
            del call["seq"]
            call["objects"] = None if call["objects"] is None else json.loads(call["objects"])
            result.append(call)
        return result

    def contacts(self) -> list[dict[str, Any]]:
        """Every contact, as last upserted."""
        rows = self._db.execute("SELECT * FROM contacts ORDER BY rowid").fetchall()
        return [dict(row) for row in rows]

    def reset(self) -> None:
        with self._db:
            self._db.execute("BEGIN")
            for table in ("calls", "contacts", "idempotency"):
                self._db.execute(f"DELETE FROM {table}")
