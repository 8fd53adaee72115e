"""A row with no time is re-checked against its calling window just before it leaves."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from batchcall._config import Settings
from batchcall._dispatch import Execution
from batchcall._journal import Journal
from batchcall._models import Checked, Contact, CreatePhoneCallRequest
from batchcall._prepare import encode


def test_a_row_validated_while_its_window_was_open_is_moved_if_it_closed_before_sending(tmp_path):
    """Validation left the row "send now", but by send time the window is shut: the runner
    gives it the next opening instead of ringing outside the allowed hours."""
    opens = (datetime.now(UTC) + timedelta(hours=2)).replace(second=0, microsecond=0)
    closes = opens + timedelta(hours=1)
    spec = f"daily {opens:%H:%M}-{closes:%H:%M}"
    settings = Settings(calling_window=spec, from_number="+61291234567", script_id="s")
    request = CreatePhoneCallRequest(
        from_number="+61291234567", script_id="s", contact=Contact(phone_number="+61412000005")
    )

    async def go() -> dict:
        with Journal(tmp_path / "j.sqlite", create=True) as journal:
            journal.set_meta(run_id="r", timezone_column=0)
            journal.add_rows([encode(Checked(row=1, cells=("UTC",), request=request))], run_id="r")
            execution = Execution(journal, settings, client=None, planned=None, progress=None)
            (job,) = journal.pending()
            placed = execution._place_now(job)
            assert placed is not None
            (again,) = journal.pending()
            assert again.body == placed.body
            return placed.body

    body = asyncio.run(go())
    assert body["scheduled_time"] == opens.strftime("%Y-%m-%dT%H:%M:%SZ")
