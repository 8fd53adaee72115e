"""The ledger as a run's sending pass uses it (`batchcall._guard`), on a real SQLite ledger and
journal with a fixed clock: the plan's early answer, the reservation just before a row leaves,
the answers, and a crash's leftovers made to agree with the journal."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from batchcall._config import Settings, resolve
from batchcall._errors import UsageError
from batchcall._guard import Guard, Skipped, _script_of, _Scripts, policy_for
from batchcall._journal import MOVED_BY_CAP, Journal, PlannedRow, Result
from batchcall._ledger import Call, Ledger, Policy, open_ledger, parse_cap

NOW = datetime(2031, 3, 4, 9, 0, tzinfo=UTC)
SCRIPT = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"


def _row(n: int, *, at: datetime | None = None, state: str = "pending") -> PlannedRow:
    body = {
        "from_number": "+61291234567",
        "script_id": SCRIPT,
        "contact": {"phone_number": f"+6141200{n:04d}"},
    }
    sent = None
    if at is not None:
        sent = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        body["scheduled_time"] = sent
    return PlannedRow(
        n, json.dumps([str(n)]), json.dumps(body), f"+6141200{n:04d}", state, None, None, sent, 0
    )  # type: ignore[arg-type]


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    with open_ledger(tmp_path / "ledger.sqlite", team="t") as opened:
        yield opened


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    with Journal(tmp_path / "journal.sqlite", create=True) as opened:
        opened.set_meta(timezone_column=None)
        yield opened


def _guard(ledger: Ledger, journal: Journal, policy: Policy, run: str = "now/1") -> Guard:
    return Guard(ledger, policy, journal, run_id=run, window=None, clock=lambda: NOW)


def _placed(ledger: Ledger, n: int, at: datetime | None, run: str = "before/0") -> None:
    call = Call(f"+6141200{n:04d}", SCRIPT, at, run, n)
    assert ledger.reserve(call, Policy(allow_repeat=True), now=NOW).action != "skip"
    ledger.settle(run, n, "scheduled", f"call-{n}")


def test_the_plan_shows_the_ledgers_early_answer_row_by_row(ledger, journal) -> None:
    """A planned chunk comes back with a row already placed as `already_scheduled` (naming the
    earlier run and call), a row over the cap with its deferred time (its request still asks
    for its own), and the other rows untouched."""
    at = NOW + timedelta(hours=2)
    _placed(ledger, 1, at)
    for hour in (3, 4, 5):
        _placed(ledger, 2, NOW + timedelta(hours=hour), run=f"before/{hour}")
    policy = Policy(caps=(parse_cap("3/24h"),))
    rows = [_row(1, at=at), _row(2, at=at), _row(3, at=at), _row(4, state="invalid")]
    checked = _guard(ledger, journal, policy).check(rows)
    assert checked[0].state == "already_scheduled"
    assert "run before/0" in (checked[0].error or "") and "call-1" in (checked[0].error or "")
    assert checked[1].state == "pending" and checked[1].time_moved == MOVED_BY_CAP
    assert checked[1].scheduled_time_sent == "2031-03-05T12:00:00Z"
    assert checked[1].request == rows[1].request
    assert checked[2:] == rows[2:]


def test_a_reservation_skips_defers_or_lets_a_row_go(ledger, journal) -> None:
    """Just before a row leaves: a suppressed number raises `Skipped` and the journal says
    why; a call over the cap gets its deferred time in the body it is sent with, and in the
    journal's time sent, while the request kept there still asks for its own time."""
    at = NOW + timedelta(hours=2)
    for hour in (3, 4, 5):
        _placed(ledger, 2, NOW + timedelta(hours=hour), run=f"before/{hour}")
    ledger.suppress(["+61412000001"], now=NOW, reason="asked")
    journal.add_rows([_row(1, at=at), _row(2, at=at), _row(3, at=at)], run_id="r")
    guard = _guard(ledger, journal, Policy(caps=(parse_cap("3/24h"),)))
    first, second, third = journal.pending()
    with pytest.raises(Skipped):
        guard.reserve(first)
    assert next(r.state for r in journal.report_rows()) == "suppressed"
    guard.reserve(second)
    assert second.body["scheduled_time"] == "2031-03-05T12:00:00Z"
    (kept,) = [job for job in journal.pending() if job.row == 2]
    assert kept.body["scheduled_time"] == at.strftime("%Y-%m-%dT%H:%M:%SZ")
    guard.reserve(third)
    assert third.body["scheduled_time"] == at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert [p.outcome for p in ledger.history("+61412000003")] == ["reserved"]


def test_answers_reach_the_ledger_in_batches_and_all_at_the_end(
    ledger, journal, monkeypatch
) -> None:
    """Settled answers are written together; until then a call stays `reserved`, which counts
    as placed, and `reconcile` (the pass's end) writes what is left."""
    monkeypatch.setattr("batchcall._guard.SETTLE_EVERY", 3600.0)
    journal.add_rows([_row(n) for n in range(1, 4)], run_id="r")
    guard = _guard(ledger, journal, Policy())
    for job in journal.pending():
        guard.reserve(job)
        journal.mark_sending(job.row, 1)
        journal.record_result(job.row, Result("scheduled", 201, f"c{job.row}", "k"), attempts=1)
        guard.settle(job.row, Result("scheduled", 201, f"c{job.row}", "k"))
    assert ledger.reserved("now/1") == [1, 2, 3]
    assert guard.reconcile() == 0
    assert [ledger.history(f"+6141200{n:04d}")[0].call_id for n in (1, 2, 3)] == [
        "c1",
        "c2",
        "c3",
    ]


def test_after_a_crash_the_ledger_is_made_to_agree_with_the_journal(ledger, journal) -> None:
    """Reservations a killed run left: the row answered is settled with its answer, the row
    still pending (it never left) is released, the row caught in flight becomes `unknown`."""
    journal.add_rows([_row(n) for n in range(1, 4)], run_id="r")
    crashed = _guard(ledger, journal, Policy())
    one, two, three = journal.pending()
    for job in (one, two, three):
        crashed.reserve(job)
    journal.mark_sending(1, 1)
    journal.record_result(1, Result("scheduled", 201, "c1", "k1"), attempts=1)
    journal.mark_sending(3, 1)
    assert journal.recover() == 1
    resumed = _guard(ledger, journal, Policy())
    assert resumed.reconcile() == 1
    outcomes = [
        [(p.outcome, p.call_id) for p in ledger.history(f"+6141200{n:04d}")] for n in (1, 2, 3)
    ]
    assert outcomes == [[("scheduled", "c1")], [], [("unknown", None)]]


def test_the_policy_follows_the_run_settings() -> None:
    """--force and --allow-duplicates lift the repeat guard as --allow-repeat does; the caps,
    the over-cap mode and the defer horizon are the run's."""
    assert not policy_for(Settings(), None).allow_repeat
    for lifted in ({"allow_repeat": True}, {"force": True}, {"allow_duplicates": True}):
        assert policy_for(Settings(**lifted), None).allow_repeat
    policy = policy_for(
        Settings(max_calls=["3/24h", "7/7d"], outside_window="reject", max_defer_days=3), None
    )
    assert [str(c) for c in policy.caps] == ["3/24h", "7/7d"]
    assert (policy.over_cap, policy.max_defer_days) == ("reject", 3)


def test_ledger_settings_are_checked_where_they_come_from() -> None:
    """A bad cap, period or team name is refused naming the option and how to write it."""
    with pytest.raises(UsageError, match=r"max_calls .*--max-calls.*N/PERIOD"):
        resolve({"max_calls": ["3 a day"]}, environ={})
    with pytest.raises(UsageError, match=r"BATCHCALL_REPEAT_WINDOW.*24h"):
        resolve({}, environ={"BATCHCALL_REPEAT_WINDOW": "soon"})
    with pytest.raises(UsageError, match=r"--team.*letters, digits"):
        resolve({"team": "sales team"}, environ={})
    settings = resolve({}, environ={"BATCHCALL_MAX_CALLS": "3/24h, 7/7d"}).settings
    assert settings.max_calls == ["3/24h", "7/7d"]
    assert Settings(**settings.recorded()) == settings


def test_a_ledger_password_never_reaches_the_journal() -> None:
    """The settings stored in a run's journal mask a PostgreSQL URL's password."""
    settings = Settings(ledger="postgresql://batchcall:s3cret@db.internal/calls")
    assert settings.recorded()["ledger"] == "postgresql://batchcall:***@db.internal/calls"


def test_the_script_is_read_from_a_planned_request_as_json_would() -> None:
    """The fast reading of a request's script_id agrees with json.loads, escapes and other
    layouts included."""
    bodies = [
        {"from_number": "+61291234567", "script_id": SCRIPT, "contact": {}},
        {"from_number": "+61291234567", "script_id": 'a"b\\c'},
        {"script_id": "first", "from_number": "+61291234567"},
        {"from_number": "+61291234567", "contact": {"script_id": "no"}, "script_id": "yes"},
    ]
    for body in bodies:
        text = json.dumps(body, separators=(",", ":"))
        assert _script_of(text) == body["script_id"]
    # Remembering the last head read: requests sharing it, and requests that only look alike.
    scripts = _Scripts()
    more = [
        {"from_number": "+61291234567", "script_id": "s1", "contact": {"phone_number": "1"}},
        {"from_number": "+61291234567", "script_id": "s1", "contact": {"phone_number": "2"}},
        {"from_number": "+61291234567", "script_id": "s12", "contact": {}},
        {"from_number": "+61291234568", "script_id": "s1"},
        {"from_number": "+61291234567", "script_id": 'a"b'},
        {"from_number": "+61291234567", "script_id": "s1"},
    ]
    for body in [*bodies, *more, *bodies, *more]:
        text = json.dumps(body, separators=(",", ":"))
        assert scripts(text) == body["script_id"]


def _both_ways(guard: Guard, rows: list[PlannedRow]) -> tuple[list[PlannedRow], list[PlannedRow]]:
    """The chunk checked as a run checks it, and with the ledger always asked in full."""
    quick = guard.check(rows)
    guard._nothing_to_answer = lambda phones: False  # type: ignore[method-assign]
    return quick, guard.check(rows)


@pytest.mark.parametrize(
    "case", ["nothing known", "a call known", "a failed call", "an old suppression", "a repeat"]
)
def test_a_chunk_the_ledger_knows_nothing_of_is_answered_as_the_full_check_would(
    ledger, journal, case
) -> None:
    """The plan-time check skips the ledger's full check only for a chunk of numbers it has no
    record of, each once: any call that counts or any suppression (expired too) of one of
    them, or a number twice in the chunk, and the full check answers, as it always did."""
    at = NOW + timedelta(hours=2)
    rows = [_row(n, at=at) for n in range(1, 6)]
    if case == "a call known":
        _placed(ledger, 3, at)
    elif case == "a failed call":
        _placed(ledger, 3, NOW + timedelta(hours=1), run="failed/0")
        ledger.settle("failed/0", 3, "failed")
    elif case == "an old suppression":
        ledger.suppress(
            ["+61412000004"], now=NOW - timedelta(days=9), until=NOW - timedelta(days=1)
        )
    elif case == "a repeat":
        rows.append(_row(2, at=at + timedelta(hours=1))._replace(row=6))
    quick, full = _both_ways(_guard(ledger, journal, Policy(caps=(parse_cap("1/24h"),))), rows)
    assert quick == full
    phones = [r.phone_e164 or "" for r in rows]
    assert ledger.knows_any(phones) == (case in ("a call known", "an old suppression"))
    assert (quick != rows) == (case in ("a call known", "a repeat"))
