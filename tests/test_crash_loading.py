"""A `kill -9` while the input is still being read: resume plans the rest, and calls once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

from e2e_support import FROM, SCRIPT, au_mobiles, cli, read_results, write_contacts

from batchcall._journal import Journal
from batchcall._prepare import CHUNK
from batchcall.sandbox import SandboxConfig, start_sandbox

# Runs the real runner with its planning child forced on. The child hands over two chunks, gives
# the parent a second to send some of them, then SIGKILLs the parent: the journal holds two
# chunks, some rows already called, and no `load_complete`.
KILL_WHILE_LOADING = textwrap.dedent(
    """
    import os, signal, sys, time
    import batchcall
    from batchcall import _prepare as prepare

    real = prepare.chunks

    def chunks(planned, size=prepare.CHUNK):
        for n, chunk in enumerate(real(planned, size)):
            if n == 2:
                time.sleep(1.0)
                os.kill(os.getppid(), signal.SIGKILL)
                return
            yield chunk

    prepare.chunks = chunks
    prepare.CHILD_MIN_BYTES = 0
    source, base_url, key, reports = sys.argv[1:]
    batchcall.run(source, from_number="{FROM}", script_id="{SCRIPT}", base_url=base_url,
                  api_key=key, reports_dir=reports)
    """
).format(FROM=FROM, SCRIPT=SCRIPT)


def test_kill_9_while_loading_then_resume_plans_the_rest_and_calls_each_once(tmp_path):
    """Killed after 2 of 3 chunks were journalled and some rows called: resume re-reads the
    input (unchanged, by sha256), keeps every journalled row's state, plans the rest, and
    every phone is called exactly once, or is `unknown` because it was in flight at the kill."""
    phones = au_mobiles(2500)
    source = write_contacts(tmp_path / "contacts.csv", phones)
    reports = tmp_path / "reports"
    with start_sandbox(SandboxConfig(latency=0.01)) as server:
        killed = subprocess.run(
            [sys.executable, "-c", KILL_WHILE_LOADING, str(source), server.base_url,
             server.api_key, str(reports)],
            cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert killed.returncode == -9, killed.stderr
        (run_dir,) = list(reports.iterdir())
        with Journal(run_dir / "journal.sqlite") as journal:
            assert sum(journal.counts().values()) == 2 * CHUNK
            assert not journal.meta("load_complete")
        sent_before_resume = len(server.calls())
        assert 0 < sent_before_resume < 2 * CHUNK
        done = cli("resume", str(run_dir), key=server.api_key, cwd=tmp_path)
        assert done.returncode in (0, 1), done.stderr
        calls = server.calls()

    rows = read_results(Path(run_dir) / "results.csv")
    assert [int(r["row"]) for r in rows] == list(range(1, 2501))
    assert Counter(r["outcome"] for r in rows).keys() <= {"scheduled", "unknown"}
    called = Counter(c["phone_number"] for c in calls)
    assert max(called.values()) == 1
    for row in rows:
        if row["outcome"] == "scheduled":
            assert called[row["phone_e164"]] == 1
    assert sum(r["outcome"] == "scheduled" for r in rows) >= 2400
    print(
        "calls before resume:", sent_before_resume, "outcomes:", Counter(r["outcome"] for r in rows)
    )
