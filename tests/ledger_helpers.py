"""Helpers for the ledger tests: a PostgreSQL 15 server to start, calls, and race workers.

`ledger_support` (the fixtures) builds on these; test modules import them directly.
"""

from __future__ import annotations

import multiprocessing
import os
import pwd
import queue
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from batchcall._ledger import Call, Policy, open_ledger, parse_cap

PG_BIN = Path("/usr/lib/postgresql/15/bin")
# Every test's clock: a fixed instant well ahead, never today's date.
NOW = datetime(2031, 3, 4, 9, 0, tzinfo=UTC)
SCRIPT = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"


@dataclass
class PgServer:
    base: Path
    port: int
    as_user: list[str]

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        _run(
            [
                *self.as_user,
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.base / "data"),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            check=False,
        )
        shutil.rmtree(self.base, ignore_errors=True)


def _run(argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    return done


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_postgres() -> PgServer:
    """initdb + pg_ctl start in a fresh directory; the caller stops it."""
    if not (PG_BIN / "initdb").exists():
        pytest.fail(
            f"PostgreSQL 15 is not installed ({PG_BIN / 'initdb'} is missing): the ledger's "
            "PostgreSQL tests need it. Install it with `apt-get install -y postgresql` "
            "(.ci/run does this).",
            pytrace=False,
        )
    base = Path(tempfile.mkdtemp(prefix="batchcall-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        owner = pwd.getpwnam("postgres")
        os.chown(base, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    server = PgServer(base, free_port(), as_user)
    data = str(base / "data")
    _run(
        [
            *as_user,
            str(PG_BIN / "initdb"),
            "-D",
            data,
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]
    )
    options = (
        f"-p {server.port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
        " -c synchronous_commit=off -c full_page_writes=off -c max_connections=60"
    )
    try:
        _run(
            [
                *as_user,
                str(PG_BIN / "pg_ctl"),
                "-D",
                data,
                "-l",
                str(base / "server.log"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
    except RuntimeError as exc:
        log = (base / "server.log").read_text(errors="replace")[-2000:]
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"{exc}\n{log}") from exc
    return server


def call(
    phone: str,
    *,
    at: datetime | None = None,
    run: str = "run-1",
    row: int = 1,
    script: str = SCRIPT,
) -> Call:
    return Call(phone, script, at, run, row)


def au_mobile(n: int) -> str:
    return f"+614{12000000 + n:08d}"


# --- workers for the races (run in real processes, spawned) --------------------------------------


def race_worker(
    location: str,
    team: str,
    phones: list[str],
    script: str,
    ring_at: str,
    cap: str | None,
    seed: int,
    barrier: Any,
    results: Any,
) -> None:
    """Reserve each phone once, in a shuffled order, as one process of a run would; between
    reservations it waits as if its request were in flight, so the processes interleave."""
    import random
    import time

    order = list(phones)
    random.Random(seed).shuffle(order)
    caps = (parse_cap(cap),) if cap else ()
    policy = Policy(allow_repeat=cap is not None, caps=caps, over_cap="reject")
    when = datetime.fromisoformat(ring_at)
    won = []
    with open_ledger(location, team=team) as ledger:
        barrier.wait(60)
        for row, phone in enumerate(order, start=1):
            verdict = ledger.reserve(Call(phone, script, when, f"run-{seed}", row), policy, now=NOW)
            if verdict.action != "skip":
                won.append(phone)
                time.sleep(0.002)
    results.put((seed, won))


def race(
    location: str,
    team: str,
    phones: list[str],
    *,
    workers: int,
    cap: str | None,
    scripts: list[str] | None = None,
) -> list[list[str]]:
    """Start `workers` processes at once, each reserving every phone; what each reserved.

    The processes are forked: each opens its own connection to the ledger after the fork, and
    forking spares each the second it would take to import batchcall afresh."""
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(workers)
    results = ctx.Queue()
    ring_at = (NOW + timedelta(hours=2)).isoformat()
    scripts = scripts or [SCRIPT] * workers
    procs = [
        ctx.Process(
            target=race_worker,
            args=(location, team, phones, scripts[i], ring_at, cap, i, barrier, results),
        )
        for i in range(workers)
    ]
    for proc in procs:
        proc.start()
    won: dict[int, list[str]] = {}
    deadline = time.monotonic() + 180
    while len(won) < workers and time.monotonic() < deadline:
        try:
            seed, phones_won = results.get(timeout=0.5)
            won[seed] = phones_won
        except queue.Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            assert not dead, f"a race worker died with exit code {dead[0]}"
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0, f"a race worker failed with exit code {proc.exitcode}"
    assert len(won) == workers, "the race workers did not all finish in 3 minutes"
    return [won[i] for i in range(workers)]
