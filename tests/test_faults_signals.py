"""Signals a job scheduler or a closing terminal sends: SIGTERM exits 143 and SIGHUP 129, each
after a clean stop (reports written, the resume command printed), as Ctrl-C does with 130."""

from __future__ import annotations

import signal
import time
from collections import Counter

import pytest
from e2e_support import (
    FROM,
    SCRIPT,
    au_mobiles,
    cli,
    popen,
    read_line,
    read_results,
    write_contacts,
)

from batchcall.sandbox import SandboxConfig, start_sandbox

ROWS = 200


@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)], ids=["SIGTERM", "SIGHUP"]
)
def test_a_signal_stops_the_run_cleanly_and_resume_calls_everyone_once(tmp_path, sig, code):
    """The signal arrives mid-run against a slow API: the run stops starting rows, lets those
    in flight finish, writes results.csv, and exits 128 + the signal's number with the exact
    resume command on stderr. `resume` then sends the rest: each phone called exactly once."""
    phones = au_mobiles(ROWS)
    source = write_contacts(tmp_path / "contacts.csv", phones)
    out = tmp_path / "run"
    with start_sandbox(SandboxConfig(latency=0.2)) as server:
        child = popen(
            "run", str(source), "--from-number", FROM, "--script-id", SCRIPT,
            "--base-url", server.base_url, "--out", str(out), "--concurrency", "4",
            key=server.api_key, cwd=tmp_path,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while server.stats()["created"] < 8 and time.monotonic() < deadline:
            time.sleep(0.05)  # polling a real child process, not timing a unit
        assert child.poll() is None, child.communicate()
        child.send_signal(sig)
        _, stderr = child.communicate(timeout=60)
        assert child.returncode == code, stderr
        assert f"batchcall resume {out}" in stderr
        assert sig.name in stderr and "Traceback" not in stderr

        rows = read_results(out / "results.csv")
        outcomes = Counter(r["outcome"] for r in rows)
        sent = len(server.calls())
        assert outcomes == {"scheduled": sent, "pending": ROWS - sent}

        server.configure(latency=0.0)
        resumed = cli("resume", str(out), key=server.api_key, cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr
        called = Counter(call["phone_number"] for call in server.calls())
    assert called == Counter(phones)
    assert Counter(r["outcome"] for r in read_results(out / "results.csv")) == {"scheduled": ROWS}


def test_ctrl_c_during_a_long_429_pause_stops_at_once_and_loses_no_row(tmp_path):
    """5 calls per 40 s: the run waits out a Retry-After of about 40 s. Ctrl-C then exits
    130 within seconds, not at the pause's end; the throttled rows are `pending` (a 429 was
    never executed), and `resume` calls everyone exactly once."""
    rows = 30
    phones = au_mobiles(rows)
    source = write_contacts(tmp_path / "contacts.csv", phones)
    out = tmp_path / "run"
    with start_sandbox(SandboxConfig(limit=5, window=40.0)) as server:
        child = popen(
            "run", str(source), "--from-number", FROM, "--script-id", SCRIPT,
            "--base-url", server.base_url, "--out", str(out),
            key=server.api_key, cwd=tmp_path,
        )  # fmt: skip
        assert child.stderr is not None
        seen = []
        while not any("waiting" in line and "rate limit" in line for line in seen):
            line = read_line(child.stderr, timeout=60)
            assert line, "".join(seen)
            seen.append(line)
        child.send_signal(signal.SIGINT)
        stopped = time.monotonic()
        _, stderr = child.communicate(timeout=30)
        assert time.monotonic() - stopped < 10  # the pause had some 35 s left
        assert child.returncode == 130, stderr
        assert f"batchcall resume {out}" in stderr

        outcomes = Counter(r["outcome"] for r in read_results(out / "results.csv"))
        assert outcomes == {"scheduled": 5, "pending": rows - 5}

        server.configure(limit=None)
        resumed = cli("resume", str(out), key=server.api_key, cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr
        called = Counter(call["phone_number"] for call in server.calls())
    assert called == Counter(phones)
