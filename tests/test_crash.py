"""Exactly once under faults and `kill -9`: the journal never loses a row or calls twice."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

from e2e_support import FROM, SCRIPT, au_mobiles, cli, popen, read_results, write_contacts

from batchcall.sandbox import SandboxConfig, start_sandbox


def _kill_after(proc, server, created: int, deadline: float = 60.0) -> None:
    """SIGKILL the runner once the server has created `created` calls (bounded wait)."""
    stop = time.monotonic() + deadline
    while time.monotonic() < stop and proc.poll() is None:
        if server.stats()["created"] >= created:
            break
        time.sleep(0.02)
    assert proc.poll() is None, f"the runner ended before the kill: {proc.communicate()}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)


def _run_dir(reports: Path) -> Path:
    (run_dir,) = [p for p in reports.iterdir() if p.is_dir()]
    return run_dir


def test_kill_9_mid_run_then_resume_calls_everyone_at_most_once(tmp_path):
    """400 rows, 60/s, 15 ms latency and ~2% each of 500-before, 500-after, dropped-after and
    503; killed with SIGKILL twice and resumed. No phone is called twice, every scheduled
    call_id exists for its phone, no created call is reported failed, nothing stays pending."""
    phones = au_mobiles(400)
    source = write_contacts(tmp_path / "contacts.csv", phones)
    config = SandboxConfig(
        limit=60,
        window=1.0,
        latency=0.015,
        seed=4,
        fault_500_before=0.02,
        fault_500_after=0.02,
        fault_drop_after=0.02,
        fault_503=0.02,
        retry_after_503=0.2,
    )
    reports = tmp_path / "reports"
    with start_sandbox(config) as server:
        args = ["--reports-dir", str(reports), "--base-url", server.base_url]
        proc = popen(
            "run",
            str(source),
            "--from-number",
            FROM,
            "--script-id",
            SCRIPT,
            *args,
            key=server.api_key,
            cwd=tmp_path,
        )
        _kill_after(proc, server, 150)
        run_dir = _run_dir(reports)

        proc = popen("resume", str(run_dir), key=server.api_key, cwd=tmp_path)
        _kill_after(proc, server, 250)

        done = cli("resume", str(run_dir), key=server.api_key, cwd=tmp_path)
        assert done.returncode in (0, 1), done.stderr
        calls = server.calls()

    rows = read_results(run_dir / "results.csv")
    assert len(rows) == 400
    outcome = {r["phone_e164"]: r for r in rows}

    called = [c["phone_number"] for c in calls]
    assert len(called) == len(set(called)), "a phone was called twice"
    by_id = {c["call_id"]: c for c in calls}
    for row in rows:
        assert row["outcome"] in ("scheduled", "failed", "unknown"), row
        if row["outcome"] == "scheduled":
            assert by_id[row["call_id"]]["phone_number"] == row["phone_e164"]
    for phone in called:
        assert outcome[phone]["outcome"] in ("scheduled", "unknown"), outcome[phone]
    scheduled = sum(r["outcome"] == "scheduled" for r in rows)
    print("outcomes:", Counter(r["outcome"] for r in rows), "calls at server:", len(calls))
    assert scheduled >= 330, scheduled
