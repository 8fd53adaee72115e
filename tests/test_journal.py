"""The journal's state machine and recovery rules."""

from __future__ import annotations

import pytest

from batchcall._journal import IllegalTransition, Journal, Result
from batchcall._models import Checked, Contact, CreatePhoneCallRequest
from batchcall._prepare import encode


def _checked(row: int, outcome: str = "pending") -> Checked:
    request = CreatePhoneCallRequest(
        from_number="+61291234567", script_id="s", contact=Contact(phone_number=f"+6142906997{row}")
    )
    if outcome != "pending":
        return Checked(
            row=row, cells=(str(row),), outcome=outcome, error_code="invalid_phone", error="bad"
        )  # type: ignore[arg-type]
    return Checked(
        row=row, cells=(str(row),), request=request, phone_e164=request.contact.phone_number
    )


@pytest.fixture
def journal(tmp_path):
    with Journal(tmp_path / "journal.sqlite", create=True) as j:
        j.add_rows(map(encode, [_checked(1), _checked(2), _checked(3, "invalid")]), run_id="r")
        yield j


def test_rows_go_pending_sending_scheduled(journal):
    """The normal path: pending -> sending -> scheduled, with the ids recorded."""
    journal.mark_sending(1, 1)
    journal.record(1, Result("scheduled", 201, call_id="c", contact_id="k"), attempts=1)
    row = next(r for r in journal.report_rows() if r.row == 1)
    assert (row.state, row.call_id, row.contact_id, row.attempts) == ("scheduled", "c", "k", 1)


def test_a_scheduled_row_can_never_be_sent_again(journal):
    """Once scheduled, no edge leads back to sending: a second call is impossible."""
    journal.mark_sending(1, 1)
    journal.record(1, Result("scheduled", 201, call_id="c"), attempts=1)
    with pytest.raises(IllegalTransition):
        journal.mark_sending(1, 2)
    assert journal.requeue(["scheduled"]) == 0


def test_invalid_rows_are_never_pending(journal):
    """Rows decided invalid at planning are not offered to the dispatcher."""
    assert [job.row for job in journal.pending()] == [1, 2]


def test_recover_turns_in_flight_rows_into_unknown(journal):
    """After a crash, a row caught in `sending` may exist at the server: unknown, not resent."""
    journal.mark_sending(2, 1)
    assert journal.recover() == 1
    assert journal.counts() == {"pending": 1, "unknown": 1, "invalid": 1}
    assert [job.row for job in journal.pending()] == [1]


def test_replanning_keeps_existing_rows_states(journal):
    """Planning the same input again after a crash never resets a row that was sent."""
    journal.mark_sending(1, 1)
    journal.record(1, Result("scheduled", 201, call_id="c"), attempts=1)
    journal.add_rows(map(encode, [_checked(1), _checked(2), _checked(4)]), run_id="r")
    assert journal.counts() == {"scheduled": 1, "pending": 2, "invalid": 1}


def test_requeued_failed_rows_get_a_fresh_key_and_unknown_rows_keep_theirs(journal):
    """A failed row created nothing, so it may use a new key; an unknown one must replay."""
    for row, state in ((1, "failed"), (2, "unknown")):
        journal.mark_sending(row, 1)
        journal.record(row, Result(state, 500), attempts=1)
    assert journal.requeue(["failed", "unknown"]) == 2
    keys = {job.row: job.idempotency_key for job in journal.pending()}
    assert keys == {1: "r-1-r1", 2: "r-2"}


def test_migrations_are_named_and_run_once(tmp_path):
    """Reopening a journal does not re-run its migrations."""
    path = tmp_path / "j.sqlite"
    Journal(path, create=True).close()
    with Journal(path) as again:
        names = [n for (n,) in again._db.execute("SELECT name FROM migrations")]
    assert names == ["m001_initial"]
