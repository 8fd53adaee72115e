"""A `kill -9` while the input is still being read: resume plans the rest, and calls once."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import textwrap
from collections import Counter
from pathlib import Path

from e2e_support import (
    FROM,
    SCRIPT,
    au_mobiles,
    cli,
    python,
    read_results,
    the_run_dir,
    wait_until,
    write_contacts,
)

from batchcall._journal import Journal

CHUNK = 200  # small chunks keep the file small: three of them are all the test needs
ROWS = 3 * CHUNK + 100

# Runs the real runner with its (one) planning child forced on, in chunks of CHUNK rows. The child
# hands over two chunks, then holds the third until the runner is gone: the test kills the
# runner once the journal holds those two chunks and the server has created calls, so the
# journal has rows called, rows not yet sent, and no `load_complete`.
KILL_WHILE_LOADING = textwrap.dedent(
    """
    import os, sys, time
    import batchcall
    from batchcall import _prepare as prepare

    real = prepare.chunks
    runner = os.getpid()

    def chunks(planned, size=prepare.CHUNK):
        for n, chunk in enumerate(real(planned, {CHUNK})):
            if n == 2:
                deadline = time.monotonic() + 120
                while os.getppid() == runner and time.monotonic() < deadline:
                    time.sleep(0.01)  # polls for the runner's end; the test kills it
                return
            yield chunk

    prepare.chunks = chunks
    prepare.CHILD_MIN_BYTES = 0
    prepare.PARTS = 1  # the one planning child, which `chunks` plans for
    source, base_url, key, reports = sys.argv[1:]
    batchcall.run(source, from_number="{FROM}", script_id="{SCRIPT}", base_url=base_url,
                  api_key=key, reports_dir=reports)
    """
).format(FROM=FROM, SCRIPT=SCRIPT, CHUNK=CHUNK)


def journalled_rows(reports: Path) -> int:
    """Rows the runner has committed to its journal so far (0 before it exists)."""
    paths = list(reports.glob("*/journal.sqlite"))
    if not paths:
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{paths[0]}?mode=ro", uri=True)) as db:
            return db.execute("SELECT count(*) FROM rows").fetchone()[0]
    except sqlite3.OperationalError:  # still being created: no schema, or no WAL files yet
        return 0


def test_kill_9_while_loading_then_resume_plans_the_rest_and_calls_each_once(
    make_sandbox, tmp_path
):
    """Killed after 2 of 3 chunks were journalled and some rows called: resume re-reads the
    input (unchanged, by sha256), keeps every journalled row's state, plans the rest, and
    every phone is called exactly once, except the rows in flight at the kill, which end
    `unknown` (their call may exist)."""
    phones = au_mobiles(ROWS)
    source = write_contacts(tmp_path / "contacts.csv", phones)
    reports = tmp_path / "reports"
    server = make_sandbox(latency=0.01)
    runner = python(KILL_WHILE_LOADING, source, server.base_url, server.api_key, reports,
                    cwd=tmp_path)  # fmt: skip
    wait_until(
        lambda: journalled_rows(reports) == 2 * CHUNK and server.stats()["created"] >= 10,
        what="two chunks journalled and ten calls created",
        process=runner,
    )
    os.kill(runner.pid, signal.SIGKILL)
    assert runner.wait(10) == -signal.SIGKILL
    run_dir = the_run_dir(reports)
    with Journal(run_dir / "journal.sqlite") as journal:
        at_kill = journal.counts()
        assert sum(at_kill.values()) == 2 * CHUNK
        assert not journal.meta("load_complete")
    in_flight = at_kill.get("sending", 0)
    sent_before_resume = len(server.calls())
    assert 0 < sent_before_resume < 2 * CHUNK

    done = cli("resume", run_dir, key=server.api_key, cwd=tmp_path)
    assert done.returncode in (0, 1), done.stderr
    calls = server.calls()

    rows = read_results(run_dir / "results.csv")
    assert [int(r["row"]) for r in rows] == list(range(1, ROWS + 1))
    outcomes = Counter(r["outcome"] for r in rows)
    assert outcomes["scheduled"] == ROWS - in_flight
    assert outcomes["unknown"] == in_flight
    called = Counter(c["phone_number"] for c in calls)
    assert max(called.values()) == 1
    for row in rows:
        if row["outcome"] == "scheduled":
            assert called[row["phone_e164"]] == 1
