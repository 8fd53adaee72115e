"""Group commit of `sending` marks: rows admitted together share one commit, none of their
requests leaves before that commit, and a mark the commit did not carry stops its row."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import httpx
import pytest
from e2e_support import FROM, SCRIPT, au_mobiles, write_contacts

import batchcall
from batchcall._dispatch import _SendingCommits
from batchcall._journal import Journal, PlannedRow


def _journal(tmp_path, rows: int) -> Journal:
    journal = Journal(tmp_path / "journal.sqlite", create=True)
    planned = [
        PlannedRow(n, "[]", json.dumps({"n": n}), f"+6141234{n:04d}", "pending", None, None,
                   None, 0)
        for n in range(1, rows + 1)
    ]  # fmt: skip
    journal.add_rows(planned, run_id="r")
    return journal


def _on_disk(journal: Journal) -> dict[int, str]:
    with sqlite3.connect(journal.path) as other:
        return dict(other.execute("SELECT row, state FROM rows"))


def test_marks_written_in_one_turn_share_one_commit_and_are_on_disk_when_awaited(tmp_path):
    journal = _journal(tmp_path, 3)
    commits = _SendingCommits(journal)

    async def go() -> None:
        waits = [commits.mark(row, 1) for row in (1, 2, 3)]
        # Written, not yet committed: another reader still sees them pending.
        assert set(_on_disk(journal).values()) == {"pending"}
        await asyncio.gather(*waits)
        assert _on_disk(journal) == {1: "sending", 2: "sending", 3: "sending"}

    asyncio.run(go())
    journal.close()


def test_a_transaction_sqlite_rolled_back_fails_every_row_it_held(tmp_path):
    """SQLite itself may roll a transaction back (a full disk); a later commit of another one
    must not count for the rows whose marks were lost: they are pending and must not leave."""
    journal = _journal(tmp_path, 2)
    commits = _SendingCommits(journal)

    async def go() -> None:
        lost = commits.mark(1, 1)
        journal._db.execute("ROLLBACK")  # what SQLite does on some I/O errors
        kept = commits.mark(2, 1)
        with pytest.raises(sqlite3.OperationalError, match="not committed"):
            await lost
        await kept

    asyncio.run(go())
    assert _on_disk(journal) == {1: "pending", 2: "sending"}
    journal.close()


def test_a_commit_that_fails_fails_every_waiting_row(tmp_path):
    journal = _journal(tmp_path, 2)
    commits = _SendingCommits(journal)

    def full_disk() -> None:
        raise sqlite3.OperationalError("database or disk is full")

    async def go() -> None:
        waits = [commits.mark(row, 1) for row in (1, 2)]
        journal.commit = full_disk  # type: ignore[method-assign]
        results = await asyncio.gather(*waits, return_exceptions=True)
        assert [str(r) for r in results] == ["database or disk is full"] * 2

    asyncio.run(go())


def test_every_request_leaves_only_once_its_mark_is_on_the_disk(tmp_path):
    """Twelve rows, eight at once: when each request reaches the server, another reader of the
    journal already sees its row `sending`."""
    source = write_contacts(tmp_path / "rows.csv", au_mobiles(12))
    reports = tmp_path / "reports"
    states: list[str] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        phone = json.loads(request.content)["contact"]["phone_number"]
        (run_dir,) = reports.iterdir()
        with sqlite3.connect(run_dir / "journal.sqlite") as other:
            (state,) = other.execute(
                "SELECT state FROM rows WHERE phone_e164 = ?", (phone,)
            ).fetchone()
        states.append(state)
        await asyncio.sleep(0.001)
        return httpx.Response(201, json={"call_id": f"call_{phone}", "contact_id": "k"})

    summary = batchcall.run(
        source, from_number=FROM, script_id=SCRIPT, reports_dir=reports, concurrency=8,
        base_url="https://api.example", api_key="sk_test", transport=httpx.MockTransport(answer),
    )  # fmt: skip
    assert states == ["sending"] * 12
    assert summary.counts["scheduled"] == 12
