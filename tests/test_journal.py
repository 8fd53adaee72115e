"""The journal's state machine and recovery rules: one named method per edge, and no other."""

from __future__ import annotations

import sqlite3

import pytest

from batchcall._journal import (
    FAILED_STATES,
    FINAL,
    MIGRATIONS,
    MOVED_BY_CAP,
    RETRYABLE,
    STATES,
    TRANSITIONS,
    UNFINISHED,
    IllegalTransition,
    Journal,
    PlannedRow,
    Result,
)
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


def _row(journal: Journal, n: int):
    return next(r for r in journal.report_rows() if r.row == n)


def test_rows_go_pending_sending_scheduled(journal):
    """The normal path: pending -> sending -> scheduled, with the ids recorded."""
    journal.mark_sending(1, 1)
    journal.record_result(1, Result("scheduled", 201, call_id="c", contact_id="k"), attempts=1)
    row = _row(journal, 1)
    assert (row.state, row.call_id, row.contact_id, row.attempts) == ("scheduled", "c", "k", 1)


def test_a_scheduled_row_can_never_be_sent_again(journal):
    """Once scheduled, no edge leads back to sending or pending: a second call is impossible."""
    journal.mark_sending(1, 1)
    journal.record_result(1, Result("scheduled", 201, call_id="c"), attempts=1)
    with pytest.raises(IllegalTransition):
        journal.mark_sending(1, 2)
    with pytest.raises(IllegalTransition):
        journal.back_to_pending(1)
    with pytest.raises(IllegalTransition):
        journal.requeue(["scheduled"])
    assert _row(journal, 1).state == "scheduled"


def test_a_row_is_marked_sending_once(journal):
    """A row already in flight cannot be marked again: one `sending` per request that left."""
    journal.mark_sending(1, 1)
    with pytest.raises(IllegalTransition):
        journal.mark_sending(1, 2)
    assert _row(journal, 1).attempts == 1


def test_a_result_needs_a_request_in_flight(journal):
    """A row that never left (pending) or was never to be sent (invalid) cannot get an answer."""
    with pytest.raises(IllegalTransition):
        journal.record_result(1, Result("scheduled", 201, call_id="c"), attempts=1)
    with pytest.raises(IllegalTransition):
        journal.record_result(3, Result("failed", 400), attempts=1)
    assert (_row(journal, 1).state, _row(journal, 3).state) == ("pending", "invalid")


def test_an_aborted_request_goes_back_to_pending_for_resume(journal):
    """A 401 or a TLS failure executed nothing: the row in flight is pending again."""
    journal.mark_sending(2, 1)
    journal.back_to_pending(2)
    assert [job.row for job in journal.pending()] == [1, 2]


def test_only_a_row_in_flight_can_go_back_to_pending(journal):
    """back_to_pending is the abort's edge; a pending or invalid row has no such edge."""
    with pytest.raises(IllegalTransition):
        journal.back_to_pending(1)
    with pytest.raises(IllegalTransition):
        journal.back_to_pending(3)


def test_a_row_refused_before_sending_fails_with_its_reason(journal):
    """A row whose calling window closed for good fails with the code and sentence given."""
    journal.refuse_before_send(1, "outside_calling_window", "the window has closed")
    row = _row(journal, 1)
    assert (row.state, row.error_code, row.error) == (
        "failed",
        "outside_calling_window",
        "the window has closed",
    )
    assert row.http_status is None and row.attempts == 0


def test_only_a_row_not_yet_sent_can_be_refused(journal):
    """Once a request is in flight it is too late to refuse it; an invalid row stays invalid."""
    journal.mark_sending(1, 1)
    with pytest.raises(IllegalTransition):
        journal.refuse_before_send(1, "outside_calling_window", "closed")
    with pytest.raises(IllegalTransition):
        journal.refuse_before_send(3, "outside_calling_window", "closed")


def test_a_missing_row_is_an_illegal_transition(journal):
    """Moving a row the journal does not hold is a bug, not a silent no-op."""
    with pytest.raises(IllegalTransition):
        journal.mark_sending(99, 1)


def test_invalid_rows_are_never_pending(journal):
    """Rows decided invalid at planning are not offered to the dispatcher."""
    assert [job.row for job in journal.pending()] == [1, 2]


def test_recover_turns_in_flight_rows_into_unknown(journal):
    """After a crash, a row caught in `sending` may exist at the server: unknown, not resent."""
    journal.mark_sending(2, 1)
    assert journal.recover() == 1
    assert journal.counts() == {"pending": 1, "unknown": 1, "invalid": 1}
    assert [job.row for job in journal.pending()] == [1]
    assert _row(journal, 2).error_code == "interrupted"


def test_recover_leaves_every_row_not_in_flight_alone(journal):
    """Recovering a journal with nothing in flight changes nothing."""
    journal.mark_sending(1, 1)
    journal.record_result(1, Result("scheduled", 201, call_id="c"), attempts=1)
    assert journal.recover() == 0
    assert journal.counts() == {"scheduled": 1, "pending": 1, "invalid": 1}


def test_replanning_keeps_existing_rows_states(journal):
    """Planning the same input again after a crash never resets a row that was sent."""
    journal.mark_sending(1, 1)
    journal.record_result(1, Result("scheduled", 201, call_id="c"), attempts=1)
    journal.add_rows(map(encode, [_checked(1), _checked(2), _checked(4)]), run_id="r")
    assert journal.counts() == {"scheduled": 1, "pending": 2, "invalid": 1}


def test_planned_rows_are_stored_column_by_column(journal):
    """Each PlannedRow field lands in its own column, and the key is the run's and the row's."""
    journal.add_rows(
        [PlannedRow(7, '["x"]', None, "+61429069977", "duplicate", "duplicate", "same", None, 0)],
        run_id="r",
    )
    row = _row(journal, 7)
    assert (row.cells, row.state, row.error_code, row.error, row.phone_e164) == (
        ["x"],
        "duplicate",
        "duplicate",
        "same",
        "+61429069977",
    )
    key = journal._db.execute("SELECT idempotency_key FROM rows WHERE row = 7").fetchone()
    assert key == ("r-7",)


def test_requeued_failed_rows_get_a_fresh_key_and_unknown_rows_keep_theirs(journal):
    """A failed row created nothing, so it may use a new key; an unknown one must replay."""
    for row, state in ((1, "failed"), (2, "unknown")):
        journal.mark_sending(row, 1)
        journal.record_result(row, Result(state, 500), attempts=1)
    assert journal.requeue(["failed", "unknown"]) == 2
    keys = {job.row: job.idempotency_key for job in journal.pending()}
    assert keys == {1: "r-1-r1", 2: "r-2"}


def test_requeue_refuses_rows_in_flight_or_done_for_good(journal):
    """Only failed and unknown rows can be queued again; a row in flight stays in flight."""
    journal.mark_sending(1, 1)
    for states in (["sending"], ["failed", "invalid"], ["bogus"]):
        with pytest.raises(IllegalTransition):
            journal.requeue(states)
    assert _row(journal, 1).state == "sending"
    assert journal.requeue([]) == 0


def test_the_state_sets_follow_the_state_machine():
    """The named sets are derived from one vocabulary and agree with the transitions."""
    assert set(TRANSITIONS) == set(STATES)
    assert {
        "scheduled",
        "invalid",
        "duplicate",
        "suppressed",
        "already_scheduled",
        "frequency_capped",
    } == FINAL
    assert {"failed", "unknown"} == RETRYABLE
    assert set(STATES) == UNFINISHED | FAILED_STATES | FINAL
    assert all(to in STATES for edges in TRANSITIONS.values() for to in edges)


def test_the_journal_refuses_a_state_outside_the_vocabulary(journal):
    """The table's CHECK is generated from the same states: a stray one cannot be stored."""
    with pytest.raises(sqlite3.IntegrityError):
        journal._db.execute("UPDATE rows SET state = 'bogus' WHERE row = 1")


def test_migrations_are_named_and_run_once(tmp_path):
    """Reopening a journal does not re-run its migrations."""
    path = tmp_path / "j.sqlite"
    Journal(path, create=True).close()
    with Journal(path) as again:
        names = [n for (n,) in again._db.execute("SELECT name FROM migrations")]
    assert names == [
        "m001_initial",
        "m002_policy_skips",
        "m003_window_rule",
        "m004_cheap_state_check",
    ]


def _schema(db: sqlite3.Connection) -> dict[str, object]:
    return {
        "columns": db.execute("PRAGMA table_info(rows)").fetchall(),
        "indexes": [
            (name, db.execute(f"PRAGMA index_info({name})").fetchall())
            for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        ],
        "meta": db.execute("PRAGMA table_info(meta)").fetchall(),
        "check": db.execute("SELECT sql FROM sqlite_master WHERE name = 'rows'")
        .fetchone()[0]
        .split("CHECK", 1)[1]
        .split(")", 1)[0],
    }


def test_a_new_journal_is_made_at_the_schema_the_migrations_reach(tmp_path):
    """A new journal gets the latest schema in one step; a journal migrated one step at a
    time from the first schema ends with the same columns, index and CHECK."""
    with Journal(tmp_path / "new.sqlite", create=True) as new:
        fresh = _schema(new._db)
    db = sqlite3.connect(tmp_path / "old.sqlite", isolation_level=None)
    db.execute("CREATE TABLE migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
    for statement in MIGRATIONS[0][1].split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("INSERT INTO migrations VALUES ('m001_initial', 'then')")
    db.close()
    with Journal(tmp_path / "old.sqlite") as old:
        assert _schema(old._db) == fresh


def test_the_rebuilt_check_still_refuses_a_stray_state_and_keeps_every_column(tmp_path):
    """m004 rebuilds `rows` with a cheaper CHECK: every state is still accepted, anything else
    is refused, and a journal from before it keeps its rows' window rules."""
    path = tmp_path / "j.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
    for name, sql in MIGRATIONS[:3]:
        for statement in sql.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute("INSERT INTO migrations VALUES (?, 'then')", (name,))
    db.execute(
        "INSERT INTO rows (row, cells, state, idempotency_key, created_at, updated_at,"
        " window_rule) VALUES (1, '[]', 'pending', 'k', 'then', 'then', 'au-weekday')"
    )
    db.close()
    with Journal(path) as journal:
        assert _row(journal, 1).state == "pending"
        (rule,) = journal._db.execute("SELECT window_rule FROM rows WHERE row = 1").fetchone()
        assert rule == "au-weekday"
        for row, state in enumerate(STATES, start=10):
            journal._db.execute(
                "INSERT INTO rows (row, cells, state, created_at, updated_at)"
                " VALUES (?, '[]', ?, 'now', 'now')",
                (row, state),
            )
        for stray in ("bogus", "Pending", "pending ", ""):
            with pytest.raises(sqlite3.IntegrityError):
                journal._db.execute(
                    "INSERT INTO rows (row, cells, state, created_at, updated_at)"
                    " VALUES (99, '[]', ?, 'now', 'now')",
                    (stray,),
                )


def test_a_journal_from_before_the_ledger_is_migrated_and_keeps_its_rows(tmp_path):
    """A run directory written before the ledger's skips existed opens with every row intact
    (and resumable), and can then hold the new states; its old CHECK is rebuilt, since SQLite
    cannot alter one."""
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
    db.execute("BEGIN")
    for statement in MIGRATIONS[0][1].split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("INSERT INTO migrations VALUES ('m001_initial', 'then')")
    db.execute("COMMIT")
    # The first journals' columns: a planned row less its later window_rule.
    rows = [encode(_checked(1))[:9], encode(_checked(2))[:9], encode(_checked(3, "invalid"))[:9]]
    db.executemany(
        "INSERT INTO rows (row, cells, request, phone_e164, state, error_code, error,"
        " scheduled_time_sent, time_moved, idempotency_key, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'k', 'then', 'then')",
        rows,
    )
    with pytest.raises(sqlite3.IntegrityError):  # the old table refuses the new states
        db.execute("UPDATE rows SET state = 'suppressed' WHERE row = 1")
    db.close()
    with Journal(path) as journal:
        assert journal.counts() == {"pending": 2, "invalid": 1}
        journal.skip_by_policy(1, "suppressed", "on the list")
        assert _row(journal, 1).state == "suppressed"
        assert _row(journal, 1).error == "on the list"
        assert [job.row for job in journal.pending()] == [2]


def test_the_ledger_skips_a_pending_row_before_it_leaves(journal):
    """`skip_by_policy` ends a pending row as the ledger's outcome, with its message, and only
    a pending one: a row in flight has already left."""
    journal.skip_by_policy(1, "already_scheduled", "run r row 9 (call_id c9)")
    row = _row(journal, 1)
    assert (row.state, row.error_code, row.error) == (
        "already_scheduled",
        "already_scheduled",
        "run r row 9 (call_id c9)",
    )
    journal.mark_sending(2, 1)
    with pytest.raises(IllegalTransition):
        journal.skip_by_policy(2, "suppressed", "too late")


def test_a_cap_moves_the_time_sent_and_keeps_the_time_asked(journal):
    """A cap's deferral changes the time the row is sent with (and `time_moved`), never its
    request, which keeps the time the row asked for; undoing it restores the time."""
    request = journal.pending()[0].body
    journal.retime_by_cap(1, "2031-03-05T09:00:00Z", deferred=True)
    row = _row(journal, 1)
    assert (row.scheduled_time_sent, row.time_moved) == ("2031-03-05T09:00:00Z", MOVED_BY_CAP)
    assert journal.pending()[0].body == request
    journal.retime_by_cap(1, None, deferred=False)
    assert (_row(journal, 1).scheduled_time_sent, _row(journal, 1).time_moved) == (None, 0)
    journal.retime_by_cap(2, "ignored", deferred=False)  # nothing deferred: nothing touched
    assert _row(journal, 2).scheduled_time_sent is None


def _state_on_disk(path, row: int) -> str:
    """The row's state as another process (a `kill -9` survivor, `status`) would read it."""
    with sqlite3.connect(path) as other:
        return other.execute("SELECT state FROM rows WHERE row = ?", (row,)).fetchone()[0]


def test_an_answer_reaches_the_disk_with_the_next_sending_mark(journal):
    """One sync per row: an answer is written at once but committed by the next row's
    `sending` mark (which must be on the disk before its request leaves) or by `commit()`.
    Until then, anyone else reading the file sees the row still in flight, never pending."""
    journal.mark_sending(1, 1)
    journal.record_result(1, Result("scheduled", 201, call_id="c"), attempts=1)
    assert journal.uncommitted and _row(journal, 1).state == "scheduled"
    assert _state_on_disk(journal.path, 1) == "sending"
    journal.mark_sending(2, 1)
    assert not journal.uncommitted
    assert (_state_on_disk(journal.path, 1), _state_on_disk(journal.path, 2)) == (
        "scheduled",
        "sending",
    )
    journal.record_result(2, Result("failed", 400, error_code="invalid_phone"), attempts=1)
    journal.commit()
    assert _state_on_disk(journal.path, 2) == "failed"


def test_closing_the_journal_commits_the_last_answers(tmp_path):
    path = tmp_path / "journal.sqlite"
    with Journal(path, create=True) as journal:
        journal.add_rows(map(encode, [_checked(1)]), run_id="r")
        journal.mark_sending(1, 1)
        journal.record_result(1, Result("scheduled", 201, call_id="c"), attempts=1)
    assert _state_on_disk(path, 1) == "scheduled"
