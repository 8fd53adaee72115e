"""Bad disks: a full one mid-run, a damaged journal, a read-only run directory. Each gives a
clear exit (never a traceback), loses nothing, and calls nobody twice.

The disks are real: a small tmpfs mounted as the run directory's disk, a read-only bind mount.
CI runs as root, which both need.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import FROM, SCRIPT, au_mobiles, cli, read_results, write_contacts

import batchcall
from batchcall._journal import Journal
from batchcall.sandbox import SandboxConfig, start_sandbox

KEY = "sk_test_disk_0123456789"


@contextlib.contextmanager
def mounted(target: Path, *options: str) -> Iterator[Path]:
    """`mount ... target` for the block, always unmounted after it."""
    assert os.geteuid() == 0, "these tests mount file systems: run them as root (CI does)"
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", *options, str(target)], check=True)
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


def _states(run_dir: Path) -> dict[str, str]:
    """Each row's journal state by phone, read without writing."""
    uri = (run_dir / "journal.sqlite").as_uri() + "?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        return dict(db.execute("SELECT phone_e164, state FROM rows"))


def _run(source: Path, out: Path, server, cwd: Path):  # type: ignore[no-untyped-def]
    return cli(
        "run", str(source), "--from-number", FROM, "--script-id", SCRIPT,
        "--base-url", server.base_url, "--out", str(out), key=server.api_key, cwd=cwd,
    )  # fmt: skip


def test_a_full_disk_mid_run_exits_3_and_resume_with_space_calls_nobody_twice(tmp_path):
    """The run directory is on a 200 KB disk that fills after a few rows. The run stops at
    once with exit 3, names the disk and the run directory, prints no traceback, and leaves
    the unsent rows pending; no request left for a row not journalled as sending. With space
    again, `resume` finishes: every phone called once at most, none left pending."""
    phones = au_mobiles(60)
    source = write_contacts(tmp_path / "contacts.csv", phones)
    disk = tmp_path / "disk"
    with (
        mounted(disk, "-t", "tmpfs", "-o", "size=200k,mode=0700", "tmpfs"),
        start_sandbox(SandboxConfig(api_key=KEY)) as server,
    ):
        out = disk / "run"
        first = _run(source, out, server, tmp_path)
        assert first.returncode == 3, first.stderr
        assert "Traceback" not in first.stderr + first.stdout
        assert f"The disk holding {out} is full" in first.stderr
        assert f"mounted on {disk}" in first.stderr
        assert f"batchcall resume {out}" in first.stderr

        states = _states(out)
        called = Counter(c["phone_number"] for c in server.calls())
        assert 0 < len(called) < len(phones), "the disk should fill midway"
        for phone in called:
            assert states[phone] != "pending", "a request left before its row was marked sending"
        assert Counter(states.values())["pending"] > 0

        subprocess.run(["mount", "-o", "remount,size=20m", str(disk)], check=True)
        resumed = cli("resume", str(out), key=KEY, cwd=tmp_path)
        assert resumed.returncode in (0, 1), resumed.stderr
        calls = server.calls()
        rows = {r["phone_e164"]: r for r in read_results(out / "results.csv")}
    once = Counter(c["phone_number"] for c in calls)
    assert max(once.values()) == 1, "a phone was called twice"
    assert {r["outcome"] for r in rows.values()} <= {"scheduled", "unknown"}
    by_id = {c["call_id"]: c["phone_number"] for c in calls}
    for phone, row in rows.items():
        if row["outcome"] == "scheduled":
            assert by_id[row["call_id"]] == phone
        else:  # caught in flight as the disk filled: it was called, and is not called again
            assert row["error_code"] == "interrupted" and once[phone] == 1


def test_a_disk_full_before_the_run_is_recorded_says_nothing_was_sent(tmp_path):
    """On a disk too small for even the journal's first pages the run exits 3, says nothing
    was sent and to start again; `resume` on what is left refuses it (exit 2) without
    touching it. Neither prints a traceback."""
    source = write_contacts(tmp_path / "contacts.csv", au_mobiles(5))
    disk = tmp_path / "tiny"
    with (
        mounted(disk, "-t", "tmpfs", "-o", "size=12k,mode=0700", "tmpfs"),
        start_sandbox(SandboxConfig(api_key=KEY)) as server,
    ):
        out = disk / "run"
        first = _run(source, out, server, tmp_path)
        assert first.returncode == 3, first.stderr
        assert "nothing was sent" in first.stderr and "Traceback" not in first.stderr
        journal = out / "journal.sqlite"
        before = journal.read_bytes()
        again = cli("resume", str(out), key=KEY, cwd=tmp_path)
        assert again.returncode == 2, again.stderr
        assert str(journal) in again.stderr and "Traceback" not in again.stderr
        assert journal.read_bytes() == before
        assert server.calls() == []


# --- damaged journals ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of 30 rows, all scheduled, its journal checkpointed into one file."""
    work = tmp_path_factory.mktemp("finished")
    source = write_contacts(work / "contacts.csv", au_mobiles(30))
    with start_sandbox(SandboxConfig(api_key=KEY)) as server:
        summary = batchcall.run(
            source, from_number=FROM, script_id=SCRIPT, base_url=server.base_url,
            api_key=KEY, out=work / "run",
        )  # fmt: skip
    assert summary.counts == {"scheduled": 30}
    return work / "run"


def _damage(journal: Path, how: str) -> None:
    size = journal.stat().st_size
    if how == "empty":
        os.truncate(journal, 0)
    elif how == "truncated":
        os.truncate(journal, size // 2)
    else:  # overwritten in its middle, as a bad copy or a failing disk might
        with journal.open("r+b") as f:
            f.seek(4096)
            f.write(os.urandom(size - 8192))


def _digest(path: Path) -> tuple[int, str]:
    return path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("how", ["empty", "truncated", "corrupt"])
def test_a_damaged_journal_is_refused_by_status_resume_and_retry_and_left_as_it_is(
    tmp_path, finished_run, how
):
    """A zero-byte, truncated or corrupt journal: status, resume and retry each exit 2 with
    a message naming the file and what to do, and none of them writes to it (a zero-byte
    file stays zero bytes)."""
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    journal = run_dir / "journal.sqlite"
    _damage(journal, how)
    before = _digest(journal)
    for command in ("status", "resume", "retry"):
        result = cli(command, str(run_dir), key=KEY, cwd=tmp_path)
        assert result.returncode == 2, (command, result.stderr)
        message = result.stderr
        assert f"{journal} cannot be used" in message and "Traceback" not in message
        assert "left as it is" in message and ("backup" in message or "remove" in message)
        assert _digest(journal) == before, f"{command} wrote to the damaged journal"
    if how == "empty":
        assert journal.stat().st_size == 0


def test_a_journal_that_is_not_ours_is_refused_not_migrated(tmp_path):
    """A SQLite file of another program where the journal should be is refused (exit 2) and
    left untouched: no batchcall table is added to it."""
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    journal = run_dir / "journal.sqlite"
    with contextlib.closing(sqlite3.connect(journal)) as db:
        db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
        db.commit()
    before = _digest(journal)
    result = cli("status", str(run_dir), key=None, cwd=tmp_path)
    assert result.returncode == 2 and "not a batchcall journal" in result.stderr
    assert _digest(journal) == before


# --- read-only run directories and durability ----------------------------------------------


def test_status_reads_a_run_directory_on_a_read_only_mount(tmp_path, finished_run):
    """`batchcall status` on a run directory it may not write to (a read-only mount, as an
    archive or a colleague's share would be) shows the same counts as anywhere else; `resume`
    there exits 2 saying the directory must be writable, without a traceback."""
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    writable = cli("status", str(run_dir), "--json", key=None, cwd=tmp_path)
    assert writable.returncode == 0, writable.stderr
    before = _digest(run_dir / "journal.sqlite")
    view = tmp_path / "view"
    with mounted(view, "--bind", str(run_dir)):
        subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], check=True)
        with pytest.raises(OSError):
            (view / "probe").touch()  # it really is read-only
        shown = cli("status", str(view), "--json", key=None, cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        resumed = cli("resume", str(view), key=KEY, cwd=tmp_path)
        assert resumed.returncode == 2 and "must be writable" in resumed.stderr
        assert "Traceback" not in resumed.stderr
    assert json.loads(shown.stdout)["counts"] == json.loads(writable.stdout)["counts"]
    assert json.loads(shown.stdout)["counts"] == {"scheduled": 30}
    assert _digest(run_dir / "journal.sqlite") == before


def test_status_does_not_write_to_the_journal_it_reads(tmp_path, finished_run):
    """`status` opens the journal read-only: the file's bytes are the same afterwards."""
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    before = _digest(run_dir / "journal.sqlite")
    assert cli("status", str(run_dir), key=None, cwd=tmp_path).returncode == 0
    assert _digest(run_dir / "journal.sqlite") == before


def test_the_journal_syncs_every_commit_to_disk(tmp_path):
    """A run's journal is in WAL mode with synchronous=FULL: each commit, the `sending` mark
    before a request leaves included, is fsync'd before it returns, so a power cut cannot
    undo it."""
    with Journal(tmp_path / "journal.sqlite", create=True) as journal:
        db = journal._db
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    with Journal(tmp_path / "journal.sqlite") as reopened:
        assert reopened._db.execute("PRAGMA synchronous").fetchone() == (2,)
