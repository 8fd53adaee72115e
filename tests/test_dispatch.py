"""The retry policy and the sending pass, on httpx.MockTransport: no network, no waiting."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from batchcall._config import Settings
from batchcall._dispatch import Dispatcher, Execution, PassOutcome, Unsent, classify
from batchcall._errors import AuthError, InputError
from batchcall._journal import Job, Journal, PlannedRow
from batchcall._limiter import NO_REPLY, Reply

BODY = {
    "from_number": "+61291234567",
    "script_id": "s",
    "contact": {"phone_number": "+61429069971"},
}
CREATED = {"success": True, "call_id": "call_1", "contact_id": "contact_1", "status": "scheduled"}


class FakePermit:
    def __init__(self, gate: FakeGate) -> None:
        self._gate = gate
        self.learned = False

    def learn(self, reply: Reply) -> float | None:
        self.learned = True
        self._gate.released.append(reply.status)
        return self._gate.retry_after if reply.status == 429 else None


class FakeRowLog:
    """Remembers which rows were marked `sending`; `stopping` says whether the pass stops."""

    def __init__(self, stopping: bool = False) -> None:
        self.stopping = stopping
        self.marks: list[tuple[int, int]] = []

    def mark_sending(self, job: Job, attempts: int) -> None:
        self.marks.append((job.row, attempts))


class FakeGate:
    """Admits everything at once and remembers what it was told."""

    def __init__(self, retry_after: float = 2.0) -> None:
        self.released: list[int | None] = []
        self.retry_after = retry_after

    @contextlib.asynccontextmanager
    async def permit(self) -> AsyncIterator[FakePermit]:
        permit = FakePermit(self)
        try:
            yield permit
        finally:
            if not permit.learned:  # as the real gate does: a permit never used is freed
                permit.learn(NO_REPLY)


def _send(
    handler: Callable[[httpx.Request], httpx.Response],
    row_log: FakeRowLog | None = None,
    **kwargs: object,
):
    slept: list[float] = []
    sent: list[httpx.Request] = []
    row_log = row_log or FakeRowLog()

    def recording(request: httpx.Request) -> httpx.Response:
        # The row must be journalled as in flight before its request leaves.
        assert row_log.marks, "a request left before its row was marked sending"
        sent.append(request)
        return handler(request)

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    async def go():
        client = httpx.AsyncClient(
            base_url="https://api.test", transport=httpx.MockTransport(recording)
        )
        gate = FakeGate()
        dispatcher = Dispatcher(
            client, gate, row_log, sleep=fake_sleep, random=lambda: 0.5, **kwargs
        )
        try:
            outcome = await dispatcher.send(Job(7, BODY, "run-7", 0))
        finally:
            await client.aclose()
        return outcome, gate

    outcome, gate = asyncio.run(go())
    result, attempts = outcome if outcome is not None else (None, 0)
    return result, attempts, sent, slept, row_log.marks, gate


def _responses(*answers: httpx.Response | Exception):
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handler


def test_created_call_is_scheduled_with_its_ids_and_idempotency_key():
    """A 201 gives the row its call_id and contact_id; the request carries the row's key."""
    result, attempts, sent, _, marks, _ = _send(_responses(httpx.Response(201, json=CREATED)))
    assert (result.state, result.call_id, result.contact_id) == ("scheduled", "call_1", "contact_1")
    assert attempts == 1 and marks == [(7, 1)]
    assert sent[0].headers["Idempotency-Key"] == "run-7"
    assert sent[0].url.path == "/api/v1/create-phone-call"


def test_429_waits_for_the_gate_and_retries_the_same_row():
    """A 429 was never executed: the row waits the gate's Retry-After pause and goes again."""
    result, attempts, sent, slept, _, gate = _send(
        _responses(
            httpx.Response(
                429, headers={"Retry-After": "2"}, json={"success": False, "message": "x"}
            ),
            httpx.Response(201, json=CREATED),
        )
    )
    assert result.state == "scheduled" and attempts == 2 and len(sent) == 2
    assert slept == [2.0]
    assert gate.released == [429, 201]


def test_400_fails_with_the_servers_message_and_is_not_retried():
    """A 400 is final: the row is failed with what the server said."""
    result, _attempts, sent, _, _, _ = _send(
        _responses(httpx.Response(400, json={"success": False, "message": "phone is blocked"}))
    )
    assert (result.state, result.http_status, result.error_code) == ("failed", 400, "rejected")
    assert result.error == "phone is blocked" and len(sent) == 1


def test_404_fails_as_not_found():
    """A from_number or script outside the team is a final failure, not a retry."""
    result, *_ = _send(_responses(httpx.Response(404, json={"success": False, "message": "no"})))
    assert (result.state, result.error_code) == ("failed", "not_found")


@pytest.mark.parametrize("status", [500, 502, 504])
def test_ambiguous_server_errors_are_unknown_and_never_retried_by_default(status):
    """A 500/502/504 may have created the call: unknown, one attempt only."""
    result, attempts, sent, *_ = _send(_responses(httpx.Response(status, text="boom")))
    assert result.state == "unknown" and attempts == 1 and len(sent) == 1


@pytest.mark.parametrize(
    "error", [httpx.ReadTimeout("t"), httpx.ReadError("r"), httpx.RemoteProtocolError("p")]
)
def test_a_connection_lost_after_sending_is_unknown(error):
    """A dropped connection or read timeout after sending is unknown, never failed."""
    result, _attempts, sent, *_ = _send(_responses(error))
    assert result.state == "unknown" and len(sent) == 1


def test_retry_ambiguous_resends_with_the_same_idempotency_key():
    """--retry-ambiguous re-sends a 500 with the same key, so a replaying server calls once."""
    result, attempts, sent, *_ = _send(
        _responses(httpx.Response(500, text="x"), httpx.Response(201, json=CREATED)),
        retry_ambiguous=True,
    )
    assert result.state == "scheduled" and attempts == 2
    assert {r.headers["Idempotency-Key"] for r in sent} == {"run-7"}


def test_connect_errors_are_retried_then_fail():
    """Nothing was sent on a connect error: retried a few times with backoff, then failed."""
    result, attempts, sent, slept, marks, _ = _send(
        _responses(*[httpx.ConnectError("refused")] * 5), max_attempts=5
    )
    assert result.state == "failed" and result.error_code == "connect_failed"
    assert attempts == 5 and len(sent) == 5 and len(slept) == 4
    assert marks == [(7, 1)]  # one `sending` for the row, whatever its retries


def test_503_honours_retry_after_then_succeeds():
    """A 503 with Retry-After is retried after at least that long."""
    result, _, sent, slept, _, _ = _send(
        _responses(
            httpx.Response(
                503, headers={"Retry-After": "3"}, json={"success": False, "message": "m"}
            ),
            httpx.Response(201, json=CREATED),
        )
    )
    assert result.state == "scheduled" and len(sent) == 2
    assert slept[0] >= 3.0


def test_401_aborts_instead_of_failing_the_row():
    """A wrong key raises AuthError; the row is not given an outcome."""
    with pytest.raises(AuthError):
        _send(
            _responses(httpx.Response(401, json={"success": False, "message": "Invalid API key"}))
        )


def test_a_201_with_an_unreadable_body_is_unknown():
    """If the server says created but the body cannot be read, the call may exist: unknown."""
    result, *_ = _send(_responses(httpx.Response(201, text="<html>")))
    assert result.state == "unknown" and result.error_code == "unreadable_response"


def test_a_stopping_pass_starts_no_new_row():
    """After Ctrl-C, a row admitted by the gate does not leave: nothing is sent, the row is
    not marked, and the gate gets its permit back unanswered."""
    result, attempts, sent, _, marks, gate = _send(
        _responses(httpx.Response(201, json=CREATED)), FakeRowLog(stopping=True)
    )
    assert result is None and attempts == 0
    assert sent == [] and marks == [] and gate.released == [None]


def _stop_after_first(handler: Callable[[httpx.Request], httpx.Response], row_log: FakeRowLog):
    """The pass stops as the row's first answer comes: a Ctrl-C during its wait to retry."""

    def answering(request: httpx.Request) -> httpx.Response:
        row_log.stopping = True
        return handler(request)

    return answering


def test_a_stop_during_a_429s_wait_sends_nothing_more_and_hands_the_row_back():
    """A 429 was never executed: a row stopped while it waited to retry is Unsent (the
    worker puts it back to pending), and no second request leaves."""
    row_log = FakeRowLog()
    throttled = httpx.Response(429, headers={"Retry-After": "30"}, json={"message": "x"})
    with pytest.raises(Unsent):
        _send(_stop_after_first(_responses(throttled), row_log), row_log)


def test_a_stop_after_an_attempt_that_may_have_run_keeps_its_outcome():
    """A 500 may have been executed: stopped before its retry, the row keeps that answer's
    outcome (unknown), never pending, and is not sent again."""
    row_log = FakeRowLog()
    handler = _stop_after_first(_responses(httpx.Response(500, text="x")), row_log)
    result, attempts, sent, *_ = _send(handler, row_log, retry_ambiguous=True)
    assert result.state == "unknown" and attempts == 1 and len(sent) == 1


def test_an_http_date_retry_after_is_read_against_the_given_clock():
    """A Retry-After given as an HTTP-date is the seconds from `now` to that date."""
    response = httpx.Response(
        503, headers={"Retry-After": "Thu, 01 Jan 1970 00:01:00 GMT"}, text="busy"
    )
    decision = classify(response, now=30.0)
    assert decision.retry and decision.retry_after == pytest.approx(30.0)
    assert decision.result.error_code == "unavailable"


# --- one sending pass ----------------------------------------------------------------------------


def _journal_with_rows(path: Path, count: int) -> Journal:
    journal = Journal(path, create=True)
    journal.set_meta(run_id="r", timezone_column=None)
    rows = [
        PlannedRow(n, "[]", json.dumps(BODY), "+61429069971", "pending", None, None, None, 0)
        for n in range(1, count + 1)
    ]
    journal.add_rows(rows, run_id="r")
    return journal


def _run_pass(journal: Journal, handler, **settings: object) -> PassOutcome:
    async def go() -> PassOutcome:
        client = httpx.AsyncClient(
            base_url="https://api.test", transport=httpx.MockTransport(handler)
        )
        execution = Execution(
            journal,
            Settings(from_number="+61291234567", script_id="s", **settings),  # type: ignore[arg-type]
            client=client,
            planned=None,
            progress=None,
            policy=None,
        )
        try:
            return await execution.run()
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_a_pass_sends_every_pending_row_and_counts_its_requests(tmp_path):
    """Each pending row is sent once and scheduled; the outcome counts the requests."""
    with _journal_with_rows(tmp_path / "j.sqlite", 2) as journal:
        outcome = _run_pass(journal, lambda _: httpx.Response(201, json=CREATED), concurrency=2)
        assert journal.counts() == {"scheduled": 2}
    assert (outcome.requests, outcome.throttled, outcome.stats.done) == (2, 0, 2)
    assert (outcome.abort, outcome.interrupted, outcome.error) == (None, False, None)
    assert outcome.limiter is not None and outcome.stats.rate() is not None


def test_a_wrong_key_stops_the_pass_and_leaves_its_rows_pending(tmp_path):
    """A 401 aborts the pass: the row it hit goes back to pending, no other row is started,
    and the outcome carries the error for the summary."""
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(401, json={"success": False, "message": "Invalid API key"})

    with _journal_with_rows(tmp_path / "j.sqlite", 3) as journal:
        outcome = _run_pass(journal, handler, concurrency=1)
        assert journal.counts() == {"pending": 3}
    assert isinstance(outcome.abort, AuthError) and outcome.error is None
    assert len(sent) == 1 and outcome.requests == 1


def test_a_planning_failure_midway_is_handed_back_not_raised(tmp_path):
    """When the input fails while rows are being sent, the pass ends and hands the error
    back, so the runner can still write the reports before raising it."""

    class Failing:
        policy = None

        async def __aiter__(self):
            yield [PlannedRow(1, "[]", json.dumps(BODY), "+61429069971", "pending", *[None] * 3, 0)]
            raise InputError("line 2 cannot be read")

    async def go(journal: Journal) -> PassOutcome:
        execution = Execution(
            journal,
            Settings(from_number="+61291234567", script_id="s"),
            client=None,
            planned=Failing(),  # type: ignore[arg-type]
            progress=None,
            policy=None,
        )
        return await execution.run()

    with Journal(tmp_path / "j.sqlite", create=True) as journal:
        journal.set_meta(run_id="r")
        outcome = asyncio.run(go(journal))
        assert journal.counts() == {"pending": 1} and not journal.meta("load_complete")
    assert isinstance(outcome.error, InputError) and outcome.limiter is None
