"""The progress bar is drawn for a person at a terminal, and for nobody else."""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import re
import select
import struct
import subprocess
import termios
from pathlib import Path

import pytest
import tqdm
import tqdm.std
from e2e_support import BATCHCALL, TEAM, scrubbed_env

from batchcall._progress import Bar

COLUMNS = 100
# A frame of the bar as the operator reads it: rows done of the total, elapsed<time left, the
# rate and the 429s so far.
FRAME = re.compile(
    r"batchcall: +(?P<percent>\d+)%\|[^|]*\| +(?P<done>\d+)/(?P<total>\d+) "
    r"\[(?P<elapsed>\d\d:\d\d)<(?P<left>\d\d:\d\d|\?), +(?P<rate>[\d.]+|\?) calls/s, "
    r"429s=(?P<throttled>\d+)\]"
)


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def frames(drawn: str) -> list[str]:
    """The frames of a bar, each drawn over the last after a carriage return."""
    return [f.rstrip("\n") for f in drawn.split("\r") if f.strip()]


def test_bar_on_a_terminal_shows_rows_of_total_rate_429s_and_eta(monkeypatch):
    """4 of 10 rows done in 2 s with two 429s: the bar reads 40%, 4/10, 2 s gone and 3 s left
    at 2 calls/s, and 429s=2, on tqdm's clock held still between the steps."""
    now = [1_000.0]
    monkeypatch.setattr(tqdm.std, "time", lambda: now[0])
    monkeypatch.setattr(tqdm.tqdm, "monitor_interval", 0)  # no monitor thread on this clock
    terminal = FakeTerminal()
    bar = Bar.for_stderr("calls", terminal)
    assert bar is not None
    bar.set_total(10)
    now[0] += 2.0
    bar.advance(4, throttled=2)
    bar.close()
    assert frames(terminal.getvalue())[-1] == (
        "batchcall:  40%|####      | 4/10 [00:02<00:03,  2.00 calls/s, 429s=2]"
    )


def test_no_bar_at_all_when_stderr_is_not_a_terminal():
    """A pipe or a log file gets no bar object, so not a byte of bar output."""
    assert Bar.for_stderr("calls", io.StringIO()) is None


def _run_on_a_terminal(args: list[str], key: str, cwd: Path) -> tuple[str, str, int]:
    """Run batchcall with stderr on a pseudo-terminal of COLUMNS columns; return stdout, the
    terminal's bytes and the exit code."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, COLUMNS, 0, 0))
    child = subprocess.Popen(
        [BATCHCALL, *args], cwd=cwd, env=scrubbed_env(key), stdout=subprocess.PIPE,
        stderr=slave, stdin=subprocess.DEVNULL,
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
def test_a_terminal_gets_the_bar_while_stdout_keeps_only_json(
    make_sandbox, sample, tmp_path, quiet
):
    """With stderr on a terminal the operator sees the bar (unless --quiet): frames that fit
    the terminal's width, rows done of all 50 never going back, a time left once calls have
    gone, and a last frame at 50/50 with nothing left and no 429s; --json still leaves
    exactly one JSON object on stdout."""
    server = make_sandbox(latency=0.02)
    args = ["run", str(sample), "--base-url", server.base_url, *TEAM, "--json"]
    stdout, terminal, code = _run_on_a_terminal(
        args + (["-q"] if quiet else []), server.api_key, tmp_path
    )
    assert code == 1
    assert json.loads(stdout)["counts"] == {"scheduled": 47, "invalid": 3}
    if quiet:
        assert terminal == ""
        return
    drawn = frames(terminal)
    assert all(len(frame) <= COLUMNS for frame in drawn), drawn
    shown = [m.groupdict() for m in map(FRAME.fullmatch, drawn) if m]
    assert len(shown) == len(drawn), drawn
    done = [int(s["done"]) for s in shown]
    assert done == sorted(done)
    assert {s["total"] for s in shown if s["done"] != "0"} == {"50"}
    assert any(s["left"] != "?" and int(s["done"]) < 50 for s in shown), drawn
    last = shown[-1]
    assert (last["percent"], last["done"], last["total"]) == ("100", "50", "50")
    assert (last["left"], last["throttled"]) == ("00:00", "0")
