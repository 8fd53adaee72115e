"""A row with no time is re-checked against its calling window just before it leaves."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

import batchcall
from batchcall._config import Settings
from batchcall._dispatch import Execution, PassOutcome
from batchcall._journal import Journal
from batchcall._models import Checked, Contact, CreatePhoneCallRequest
from batchcall._prepare import encode
from batchcall._windows import (
    OUTSIDE_CALLING_WINDOW,
    UNKNOWN_TIMEZONE,
    Placement,
    WindowPolicy,
    recheck,
)

FROM = "+61291234567"
BODY = {"from_number": FROM, "script_id": "s", "contact": {"phone_number": "+61412000005"}}
CREATED = {"success": True, "call_id": "c1", "contact_id": "k1", "status": "scheduled"}
# A Monday, far from any date the tests run on; the policies below carry no holidays.
MONDAY_NOON = datetime(2030, 3, 4, 12, 0, tzinfo=UTC)


def _policy(spec: str, **settings: object) -> WindowPolicy:
    policy = WindowPolicy.from_settings(Settings(calling_window=spec, **settings))  # type: ignore[arg-type]
    assert policy is not None
    return policy


# --- the pure re-check ---------------------------------------------------------------------------


def test_a_row_whose_window_is_still_open_leaves_as_it_is():
    """Inside the hours, the row goes now, unchanged: the very body it was planned with."""
    body = dict(BODY)
    assert recheck(_policy("daily 09:00-17:00"), body, zone="UTC", now=MONDAY_NOON) is body


def test_a_row_whose_window_closed_meanwhile_is_moved_to_the_next_opening():
    """Validated at noon, reached at 18:00 after the window shut: it is scheduled for 09:00
    the next day instead of ringing outside the allowed hours."""
    body = dict(BODY)
    later = MONDAY_NOON.replace(hour=18)
    moved = recheck(_policy("daily 09:00-17:00"), body, zone="UTC", now=later)
    assert moved == {**BODY, "scheduled_time": "2030-03-05T09:00:00Z"}
    assert body == BODY  # the planned body itself is left alone


def test_a_row_with_its_own_time_keeps_it():
    """A time was placed for good at validation; the re-check does not move it."""
    body = {**BODY, "scheduled_time": "2030-03-04T20:00:00Z"}
    later = MONDAY_NOON.replace(hour=18)
    assert recheck(_policy("daily 09:00-17:00"), body, zone="UTC", now=later) is body


def test_in_reject_mode_a_closed_window_refuses_the_row_with_a_reason():
    """With --outside-window reject, a row reached after closing time is refused, with the
    code and a sentence saying when the window opens."""
    policy = _policy("daily 09:00-17:00", outside_window="reject")
    refused = recheck(policy, BODY, zone="UTC", now=MONDAY_NOON.replace(hour=18))
    assert isinstance(refused, Placement)
    assert refused.error_code == OUTSIDE_CALLING_WINDOW
    assert "2030-03-05T09:00:00Z" in (refused.error or "")


def test_a_row_in_a_zone_that_is_not_a_zone_is_refused():
    """A timezone cell that names no IANA zone cannot be checked, so the row may not leave."""
    refused = recheck(_policy("daily 09:00-17:00"), BODY, zone="Mars/Olympus", now=MONDAY_NOON)
    assert isinstance(refused, Placement) and refused.error_code == UNKNOWN_TIMEZONE


# --- the sending pass ----------------------------------------------------------------------------


def _pass(tmp_path: Path, settings: Settings, policy: WindowPolicy) -> tuple[PassOutcome, list]:
    """One sending pass over a journal holding one timeless row in UTC; the bodies sent."""
    sent: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(201, json=CREATED)

    request = CreatePhoneCallRequest(
        from_number=FROM, script_id="s", contact=Contact(phone_number="+61412000005")
    )

    async def go() -> PassOutcome:
        client = httpx.AsyncClient(
            base_url="https://api.test", transport=httpx.MockTransport(handler)
        )
        with Journal(tmp_path / "j.sqlite", create=True) as journal:
            journal.set_meta(run_id="r", timezone_column=0)
            journal.add_rows([encode(Checked(row=1, cells=("UTC",), request=request))], run_id="r")
            execution = Execution(
                journal, settings, client=client, planned=None, progress=None, policy=policy
            )
            try:
                return await execution.run()
            finally:
                await client.aclose()

    return asyncio.run(go()), sent


def _only_row(tmp_path: Path):
    with Journal(tmp_path / "j.sqlite") as journal:
        (row,) = journal.report_rows()
    return row


def test_the_pass_sends_a_row_whose_window_closed_at_its_next_opening(tmp_path):
    """Validation left the row "send now", but by send time the window is shut: the request
    carries the next opening, and the journal records the moved time."""
    opens = (datetime.now(UTC) + timedelta(hours=2)).replace(second=0, microsecond=0)
    closes = opens + timedelta(hours=1)
    spec = f"daily {opens:%H:%M}-{closes:%H:%M}"
    settings = Settings(calling_window=spec, from_number=FROM, script_id="s")
    outcome, sent = _pass(tmp_path, settings, _policy(spec))

    when = opens.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert [body.get("scheduled_time") for body in sent] == [when]
    row = _only_row(tmp_path)
    assert (row.state, row.scheduled_time_sent, row.time_moved) == ("scheduled", when, 1)
    assert (outcome.requests, outcome.error, outcome.abort) == (1, None, None)


def test_the_pass_refuses_a_row_whose_window_closed_in_reject_mode(tmp_path):
    """In reject mode the same row is never sent: it fails with outside_calling_window."""
    opens = (datetime.now(UTC) + timedelta(hours=2)).replace(second=0, microsecond=0)
    spec = f"daily {opens:%H:%M}-{opens + timedelta(hours=1):%H:%M}"
    settings = Settings(
        calling_window=spec, outside_window="reject", from_number=FROM, script_id="s"
    )
    outcome, sent = _pass(tmp_path, settings, _policy(spec, outside_window="reject"))

    assert sent == [] and outcome.requests == 0
    row = _only_row(tmp_path)
    assert (row.state, row.error_code, row.attempts) == ("failed", OUTSIDE_CALLING_WINDOW, 0)


def test_validation_and_sending_share_one_calling_window_policy(tmp_path, monkeypatch):
    """The calling window is worked out once per run, by the validator, and the sending pass
    re-checks rows against that same policy."""
    built: list[WindowPolicy | None] = []
    real = WindowPolicy.from_settings.__func__  # type: ignore[attr-defined]

    def counting(cls, settings):
        built.append(real(cls, settings))
        return built[-1]

    monkeypatch.setattr(WindowPolicy, "from_settings", classmethod(counting))
    used: list[WindowPolicy | None] = []
    real_init = Execution.__init__

    def spy(self, *args, policy, **kwargs):
        used.append(policy)
        real_init(self, *args, policy=policy, **kwargs)

    monkeypatch.setattr(Execution, "__init__", spy)
    source = tmp_path / "c.csv"
    source.write_text("phone,timezone\n0412000005,UTC\n", encoding="utf-8")
    summary = batchcall.run(
        source, from_number=FROM, script_id="s", calling_window="daily 00:00-24:00",
        api_key="k", reports_dir=tmp_path / "r",
        transport=httpx.MockTransport(lambda _: httpx.Response(201, json=CREATED)),
    )  # fmt: skip
    assert summary.counts == {"scheduled": 1}
    assert len(built) == 1 and used == built
