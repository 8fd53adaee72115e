"""Run directories: private, never written through a symlink, one process at a time."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from e2e_support import FROM, SCRIPT, au_mobiles, cli, write_contacts

from batchcall import UsageError
from batchcall._rundir import LOCK_NAME, RunLock, private_dir
from batchcall.sandbox import SandboxConfig, start_sandbox


@pytest.fixture(scope="module")
def server():
    with start_sandbox(SandboxConfig()) as sandbox:
        yield sandbox


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _run(tmp_path: Path, server, *extra: str) -> subprocess.CompletedProcess[str]:
    contacts = write_contacts(tmp_path / "contacts.csv", au_mobiles(2))
    return cli(
        "run", str(contacts), "--from-number", FROM, "--script-id", SCRIPT,
        "--base-url", server.base_url, *extra, key=server.api_key, cwd=tmp_path,
    )  # fmt: skip


def test_an_out_symlinked_to_a_shared_directory_is_refused_and_the_target_untouched(
    tmp_path, server
):
    """`--out` pointing (by symlink) at a 1777 shared directory is refused: nothing is sent,
    and the shared directory keeps its mode."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    (tmp_path / "out").symlink_to(shared)
    before = len(server.calls())
    result = _run(tmp_path, server, "--out", "out")
    assert result.returncode == 2, result.stderr
    assert "symbolic link" in result.stderr and "Traceback" not in result.stderr
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert list(shared.iterdir()) == [] and len(server.calls()) == before


def test_an_existing_out_others_can_open_is_refused_not_chmodded(tmp_path, server):
    """An existing `--out` with mode 0755 would expose personal data: it is refused with the
    chmod to run, and its mode is left as the user set it."""
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o755)
    result = _run(tmp_path, server, "--out", "out")
    assert result.returncode == 2
    assert "mode 0755" in result.stderr and "chmod 700" in result.stderr
    assert _mode(out) == 0o755


def test_the_reports_directory_keeps_its_mode_and_each_run_is_private(tmp_path, server):
    """A team's shared 0755 reports directory is left as it is; the run inside it is 0700."""
    reports = tmp_path / "reports"
    reports.mkdir()
    reports.chmod(0o755)
    result = _run(tmp_path, server, "--reports-dir", "reports")
    assert result.returncode == 0, result.stderr
    (run_dir,) = reports.iterdir()
    assert (_mode(reports), _mode(run_dir)) == (0o755, 0o700)


def test_another_users_directory_is_refused_for_that_reason(tmp_path):
    """A directory owned by someone else is refused as such, not as 'a file is in the way'."""
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, 65534)  # nobody; the tests run as root on CI
    with pytest.raises(UsageError, match="belongs to another user"):
        private_dir(theirs)


def test_a_planted_run_log_symlink_is_refused_not_followed(tmp_path, server):
    """A `run.log` replaced by a symlink to a file elsewhere makes `resume` stop with exit 2;
    the file it points at is not written."""
    result = _run(tmp_path, server, "--out", "run")
    assert result.returncode == 0, result.stderr
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    log = tmp_path / "run" / "run.log"
    log.unlink()
    log.symlink_to(victim)
    resumed = cli("resume", "run", "--base-url", server.base_url, key=server.api_key, cwd=tmp_path)
    assert resumed.returncode == 2 and "symbolic link" in resumed.stderr, resumed.stderr
    assert victim.read_text() == "precious\n"


HOLDER = """
import sys, time
from pathlib import Path
from batchcall._rundir import RunLock
with RunLock(Path(sys.argv[1]), "resume"):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_a_second_process_is_refused_naming_the_holder_and_kill_9_frees_the_lock(tmp_path):
    """While one process holds a run directory, another gets a UsageError naming its pid and
    command; once the holder is killed with -9, the directory can be taken at once."""
    run_dir = private_dir(tmp_path / "run")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with pytest.raises(UsageError) as refused, RunLock(run_dir, "resume"):
            pass
        assert f"process {holder.pid} (batchcall resume)" in str(refused.value)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(30)
    with RunLock(run_dir, "retry"):
        assert _mode(run_dir / ".lock") == 0o600


def test_a_second_command_on_a_run_in_progress_exits_2_naming_it(tmp_path):
    """While `batchcall run` is still sending (a slow API), `batchcall resume` on the same
    directory exits 2 and names the running process; the run then finishes, each phone called
    once."""
    with start_sandbox(SandboxConfig(latency=0.2)) as slow:
        contacts = write_contacts(tmp_path / "contacts.csv", au_mobiles(40))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VOXWORKS_", "BATCHCALL_"))}
        running = subprocess.Popen(
            [str(Path(sys.executable).with_name("batchcall")), "run", str(contacts),
             "--from-number", FROM, "--script-id", SCRIPT, "--base-url", slow.base_url,
             "--out", "run", "--concurrency", "2"],
            cwd=tmp_path, env={**env, "VOXWORKS_API_KEY": slow.api_key},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while not slow.calls() and time.monotonic() < deadline:
                time.sleep(0.05)  # poll for the first call at the server
            second = cli("resume", "run", "--base-url", slow.base_url, key=slow.api_key,
                         cwd=tmp_path)  # fmt: skip
            assert second.returncode == 2, second.stderr
            assert f"in use by process {running.pid} (batchcall run)" in second.stderr
        finally:
            running.wait(120)
        assert running.returncode == 0, running.stderr
        phones = [c["phone_number"] for c in slow.calls()]
        assert sorted(phones) == sorted(set(phones)) and len(phones) == 40


def test_a_lock_taken_a_moment_ago_names_its_new_holder_not_the_killed_one(tmp_path: Path):
    """Two commands at once on a run whose last holder was killed: the one refused waits the
    instant it takes the winner to write who it is, and names the winner, never the dead."""
    run_dir = private_dir(tmp_path / "run")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = run_dir / LOCK_NAME
    lock.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "command": "run"}))
    fd = os.open(lock, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the winner, not yet written

    def written() -> None:
        time.sleep(0.1)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "command": "resume"}
        os.pwrite(fd, json.dumps(me).encode().ljust(200), 0)

    writer = threading.Thread(target=written)
    writer.start()
    try:
        with pytest.raises(UsageError) as refused, RunLock(run_dir, "resume"):
            pass
    finally:
        writer.join()
        os.close(fd)
    assert f"in use by process {os.getpid()} (batchcall resume)" in str(refused.value)
