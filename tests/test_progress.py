"""The progress bar is drawn for a person at a terminal, and for nobody else."""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from batchcall._progress import Bar
from batchcall.sandbox import SandboxConfig, start_sandbox

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "contacts.csv"
TEAM = ["--from-number", "+61291234567", "--script-id", "a1b2c3d4-e5f6-7890-abcd-ef1234567890"]


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_on_a_terminal_shows_rows_of_total_rate_429s_and_eta():
    """Rows done of the total, the rate, the 429s so far and the time left are all drawn."""
    terminal = FakeTerminal()
    bar = Bar.for_stderr("calls", terminal)
    assert bar is not None
    bar.set_total(10)
    bar.advance(4, throttled=2)
    bar.close()
    last = terminal.getvalue().rstrip("\n").split("\r")[-1]
    assert "4/10" in last and "40%" in last
    assert "calls/s" in last
    assert "429s=2" in last
    assert "<" in last  # elapsed<remaining


def test_no_bar_at_all_when_stderr_is_not_a_terminal():
    """A pipe or a log file gets no bar object, so not a byte of bar output."""
    assert Bar.for_stderr("calls", io.StringIO()) is None


def _run_on_a_terminal(args: list[str], env: dict[str, str], cwd: Path) -> tuple[str, str, int]:
    """Run batchcall with stderr on a pseudo-terminal (100 columns); return stdout, the
    terminal's bytes and the exit code."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    child = subprocess.Popen(
        [sys.executable, "-m", "batchcall", *args],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(slave)
    seen = bytearray()
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            child.kill()
            pytest.fail("batchcall stalled")
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert child.stdout is not None
    stdout = child.stdout.read().decode()
    child.stdout.close()
    return stdout, seen.decode(errors="replace"), child.wait(timeout=60)


@pytest.mark.parametrize("quiet", [False, True])
def test_a_terminal_gets_the_bar_while_stdout_keeps_only_json(tmp_path, quiet):
    """With stderr on a terminal the operator sees the bar (unless --quiet), and --json still
    leaves exactly one JSON object on stdout."""
    with start_sandbox(SandboxConfig(api_key="sk_test_progress_key", latency=0.02)) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHCALL_", "VOXWORKS_"))}
        env["VOXWORKS_API_KEY"] = server.api_key
        args = ["run", str(SAMPLE), "--base-url", server.base_url, *TEAM, "--json"]
        stdout, terminal, code = _run_on_a_terminal(args + (["-q"] if quiet else []), env, tmp_path)
    assert code == 1
    assert json.loads(stdout)["counts"] == {"scheduled": 47, "invalid": 3}
    if quiet:
        assert terminal == ""
    else:
        assert "\r" in terminal
        assert "50/50" in terminal and "429s=0" in terminal and "calls/s" in terminal
