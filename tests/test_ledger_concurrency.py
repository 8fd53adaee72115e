"""Runs racing for the same people through one ledger: separate `batchcall` processes, started
at the same moment, each with its own file and run directory, sharing a SQLite ledger (as
cron jobs on one machine would) or a PostgreSQL one (as jobs on several machines would).

Each shared phone is called exactly once, whichever process reaches it first; the others skip
it as `already_scheduled`. A PostgreSQL ledger that goes away mid-run stops the run (exit 3)
instead of letting a row leave unchecked."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from e2e_support import FROM, SCRIPT, au_mobiles, cli, popen, read_results, write_contacts

from batchcall.sandbox import RunningSandbox, SandboxConfig, start_sandbox

pytest_plugins = ["ledger_support"]


@pytest.fixture(autouse=True)
def _private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No child can reach the user's own default ledger, even by mistake."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def _fresh_database(pg_url: str) -> str:
    """A new database on the session's PostgreSQL server, so this test's ledger starts empty."""
    import psycopg

    name = f"runs_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return pg_url.rsplit("/", 1)[0] + f"/{name}"


def _files(tmp_path: Path, parts: int) -> tuple[list[Path], list[str], list[str]]:
    """Two campaigns of 400 rows that share 100 phones (same script, calls now), each split
    into `parts` files. Every file starts with its share of the shared phones, so the
    processes reach them at the same time."""
    shared = au_mobiles(100)
    only_a = au_mobiles(300, start=100_000)
    only_b = au_mobiles(300, start=200_000)
    files = []
    for name, own in (("a", only_a), ("b", only_b)):
        for part in range(parts):
            phones = shared[part::parts] + own[part::parts]
            files.append(write_contacts(tmp_path / f"{name}{part}.csv", phones))
    return files, shared, only_a + only_b


def _race(server: RunningSandbox, files: list[Path], ledger: str, tmp_path: Path) -> list[dict]:
    """Start one `batchcall run` per file at once; their summaries."""
    procs = []
    for source in files:
        out = str(tmp_path / f"run-{source.stem}")
        proc = popen(
            "run", str(source), "--from-number", FROM, "--script-id", SCRIPT,
            "--base-url", server.base_url, "--ledger", ledger, "--out", out, "--json",
            key=server.api_key, cwd=tmp_path,
        )  # fmt: skip
        procs.append(proc)
    summaries = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        summaries.append(json.loads(out))
    return summaries


def _each_shared_phone_called_once(
    server: RunningSandbox, summaries: list[dict], shared: list[str], own: list[str]
) -> None:
    called = Counter(c["phone_number"] for c in server.calls())
    assert called == Counter(shared + own), "a phone was called twice, or not at all"
    skipped = sum(s["counts"].get("already_scheduled", 0) for s in summaries)
    scheduled = sum(s["counts"].get("scheduled", 0) for s in summaries)
    assert (scheduled, skipped) == (700, 100)


def test_two_runs_sharing_a_sqlite_ledger_call_each_shared_phone_once(tmp_path: Path) -> None:
    """Two files of 400 rows sharing 100 phones, run at the same moment by two processes with
    one SQLite ledger: 700 calls, each shared phone once, the other row `already_scheduled`
    naming the run that called it."""
    files, shared, own = _files(tmp_path, parts=1)
    ledger = str(tmp_path / "ledger.sqlite")
    with start_sandbox(SandboxConfig(latency=0.005)) as server:
        summaries = _race(server, files, ledger, tmp_path)
        _each_shared_phone_called_once(server, summaries, shared, own)
    for source in files:
        for row in read_results(tmp_path / f"run-{source.stem}/results.csv"):
            if row["outcome"] == "already_scheduled":
                assert "run run-" in row["error"] and "call_id" in row["error"], row


def test_four_runs_sharing_a_postgresql_ledger_call_each_shared_phone_once(
    tmp_path: Path, pg_url: str
) -> None:
    """The same two campaigns split into four files of 200 rows, run at the same moment by four
    processes with one PostgreSQL ledger (as four machines would): each shared phone is called
    exactly once."""
    files, shared, own = _files(tmp_path, parts=2)
    ledger = _fresh_database(pg_url)
    with start_sandbox(SandboxConfig(latency=0.005)) as server:
        summaries = _race(server, files, ledger, tmp_path)
        _each_shared_phone_called_once(server, summaries, shared, own)


def test_a_postgresql_ledger_that_goes_away_mid_run_stops_it_with_rows_pending(
    tmp_path: Path, pg_url: str
) -> None:
    """PostgreSQL drops the run's connection while it is sending: no row leaves unchecked, the
    run stops with exit 3 naming the ledger, the rest stay pending, and `resume` (with the
    ledger back) sends them, each phone once."""
    import psycopg

    phones = au_mobiles(300)
    source = write_contacts(tmp_path / "contacts.csv", phones)
    ledger = _fresh_database(pg_url)
    with start_sandbox(SandboxConfig(latency=0.02)) as server:
        proc = popen(
            "run", str(source), "--from-number", FROM, "--script-id", SCRIPT,
            "--base-url", server.base_url, "--ledger", ledger, "--concurrency", "2",
            "--out", str(tmp_path / "run"), "--quiet", key=server.api_key, cwd=tmp_path,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while server.stats()["created"] < 30 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.02)
        with psycopg.connect(ledger, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE pid != pg_backend_pid() AND datname = current_database()"
            )
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 3, err
        assert "ledger" in err and "127.0.0.1" in err and "batchcall resume" in err, err
        stopped_at = len(server.calls())
        assert stopped_at < 300
        summary = json.loads((tmp_path / "run/summary.json").read_text())
        assert summary["counts"].get("pending", 0) > 0

        done = cli("resume", str(tmp_path / "run"), "--json", key=server.api_key, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        called = Counter(c["phone_number"] for c in server.calls())
    assert called == Counter(phones)
