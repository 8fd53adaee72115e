"""An answer that no `sending` mark carries to the disk is committed within ANSWER_DELAY, so a
`kill -9` during a long wait (a slow answer, a 429 pause) finds it, not a row still in flight."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import httpx
from e2e_support import FROM, SCRIPT, au_mobiles, write_contacts

import batchcall
from batchcall._journal import ANSWER_DELAY


def test_an_answer_is_on_the_disk_while_the_next_one_is_still_awaited(tmp_path):
    """Two rows in flight at once: the first is answered once the second has left (so both
    `sending` marks are committed before), the second only after many ANSWER_DELAYs. While the
    second is awaited, no mark commits anything, yet another reader of the journal already
    sees the first row scheduled."""
    source = write_contacts(tmp_path / "two.csv", au_mobiles(2))
    reports = tmp_path / "reports"
    seen: dict[str, str] = {}
    first_answered, second_left = asyncio.Event(), asyncio.Event()

    async def answer(request: httpx.Request) -> httpx.Response:
        phone = json.loads(request.content)["contact"]["phone_number"]
        if not seen:
            seen["first"] = phone
            await second_left.wait()
            first_answered.set()
            return httpx.Response(201, json={"call_id": "call_1", "contact_id": "k1"})
        second_left.set()
        await first_answered.wait()
        await asyncio.sleep(ANSWER_DELAY * 6)  # the first answer's timer has long fired
        (run_dir,) = reports.iterdir()
        with sqlite3.connect(run_dir / "journal.sqlite") as other:
            seen["on disk"] = other.execute(
                "SELECT state FROM rows WHERE phone_e164 = ?", (seen["first"],)
            ).fetchone()[0]
        return httpx.Response(201, json={"call_id": "call_2", "contact_id": "k2"})

    summary = batchcall.run(
        source, from_number=FROM, script_id=SCRIPT, reports_dir=reports, concurrency=2,
        base_url="https://api.example", api_key="sk_test", transport=httpx.MockTransport(answer),
    )  # fmt: skip
    assert seen["on disk"] == "scheduled"
    assert summary.counts["scheduled"] == 2
