"""Atomic reservations: real processes racing on one ledger, and a run killed mid-flight."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import timedelta

import pytest
from ledger_helpers import NOW, SCRIPT, au_mobile, race

from batchcall._ledger import Call, LedgerError, Policy, open_ledger

pytest_plugins = ["ledger_support"]

PHONES = [au_mobile(n) for n in range(100)]


def _workers(location: str) -> int:
    return 4 if location.startswith("postgresql") else 3


def test_racing_processes_reserve_each_phone_exactly_once(fresh_location: str, team: str) -> None:
    """Several processes open a new ledger at once (racing to create its tables) and reserve
    the same 100 calls (same phone, script and time): exactly one of them has each phone."""
    location = fresh_location
    won = race(location, team, PHONES, workers=_workers(location), cap=None)
    counts = Counter(phone for each in won for phone in each)
    assert counts == Counter(PHONES)
    assert sum(1 for each in won if each) >= 2, "the processes did not really race"
    with open_ledger(location, team=team) as ledger:
        assert all(len(ledger.history(p)) == 1 for p in PHONES[:10])


def test_racing_processes_never_exceed_a_one_a_day_cap(location: str, team: str) -> None:
    """The same race with the repeat guard off, each process with its own script, and a 1/24h
    cap in reject mode: still each phone is called once."""
    workers = _workers(location)
    scripts = [f"script-{i}" for i in range(workers)]
    won = race(location, team, PHONES, workers=workers, cap="1/24h", scripts=scripts)
    counts = Counter(phone for each in won for phone in each)
    assert counts == Counter(PHONES)
    assert sum(1 for each in won if each) >= 2, "the processes did not really race"


_CRASH = """
import os, signal, sys
from datetime import datetime
from batchcall._ledger import Call, LedgerError, Policy, open_ledger
location, team, now = sys.argv[1], sys.argv[2], datetime.fromisoformat(sys.argv[3])
ledger = open_ledger(location, team=team)
for row in (1, 2):
    phone = f"+6141200000{row}"
    ledger.reserve(Call(phone, "{script}", now, "run-crashed", row), Policy(), now=now)
ledger.settle("run-crashed", 1, "scheduled", "call-1")
os.kill(os.getpid(), signal.SIGKILL)  # as a kill -9 would, with row 2's request in flight
"""


@pytest.mark.timeout(120)
def test_resume_turns_a_killed_runs_reservations_into_unknown(location: str, team: str) -> None:
    """A run killed with row 2 reserved but unanswered: resume marks it `unknown`, which keeps
    counting as placed, so no re-run calls that person again."""
    at = NOW + timedelta(hours=2)
    code = _CRASH.replace("{script}", SCRIPT)
    done = subprocess.run(
        [sys.executable, "-c", code, location, team, at.isoformat()],
        capture_output=True,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    with open_ledger(location, team=team) as ledger:
        assert [p.outcome for p in ledger.history(au_mobile(2))] == ["reserved"]
        assert ledger.resolve_reserved("run-crashed") == 1
        assert [p.outcome for p in ledger.history(au_mobile(2))] == ["unknown"]
        assert [p.outcome for p in ledger.history(au_mobile(1))] == ["scheduled"]
        again = ledger.reserve(Call(au_mobile(2), SCRIPT, at, "run-next", 2), Policy(), now=NOW)
        assert again.outcome == "already_scheduled"
    assert os.path.exists(location) or location.startswith("postgresql")


def test_a_ledger_server_that_goes_away_stops_the_run(pg_url: str, team: str) -> None:
    """If PostgreSQL drops the connection mid-run, the next reservation raises `LedgerError`
    (exit 3: stop sending, leave the rest pending) instead of sending unchecked; the message
    names the ledger."""
    import psycopg

    with open_ledger(pg_url, team=team) as ledger:
        assert ledger.reserve(Call(au_mobile(1), SCRIPT, None, "r", 1), Policy(), now=NOW)
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE pid != pg_backend_pid() AND datname = current_database()"
                " AND backend_type = 'client backend'"
            )
        with pytest.raises(LedgerError, match=r"127\.0\.0\.1") as caught:
            ledger.reserve(Call(au_mobile(2), SCRIPT, None, "r", 2), Policy(), now=NOW)
        assert caught.value.exit_code == 3
