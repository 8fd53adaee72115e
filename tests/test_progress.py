"""The progress bar is drawn for a person at a terminal, and for nobody else."""

from __future__ import annotations

import fcntl
import io
import itertools
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
from e2e_support import BATCHCALL, TEAM, au_mobiles, scrubbed_env, write_contacts

from batchcall._progress import Bar

COLUMNS = 100
# A frame of the bar as the operator reads it: rows done of the total, elapsed<time left, the
# rate (seconds per call under one a second) and the 429s so far, and a pause's countdown.
FRAME = re.compile(
    r"batchcall: +(?P<percent>\d+)%\|[^|]*\| +(?P<done>\d+)/(?P<total>\d+) "
    r"\[(?P<elapsed>\d\d:\d\d)<(?P<left>\d\d:\d\d|\?), "
    r"+(?:(?P<rate>[\d.]+|\?) calls/s|[\d.]+s/ calls), "
    r"429s=(?P<throttled>\d+)(?:, waiting for rate limit: (?P<wait>\d+) s)?\]"
)


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def frames(drawn: str) -> list[str]:
    """The frames of a bar, each drawn over the last after a carriage return."""
    # A frame shorter than the last is padded with spaces over it: they are not the bar's.
    return [f.rstrip() for f in drawn.split("\r") if f.strip()]


def seconds(interval: str) -> int:
    minutes, secs = interval.split(":")
    return int(minutes) * 60 + int(secs)


@pytest.fixture
def tqdm_clock(monkeypatch):
    """tqdm's clock, held still until a test moves it."""
    now = [1_000.0]
    monkeypatch.setattr(tqdm.std, "time", lambda: now[0])
    monkeypatch.setattr(tqdm.tqdm, "monitor_interval", 0)  # no monitor thread on this clock
    return now


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


def test_a_pause_shows_as_a_countdown_redrawn_though_no_row_completes(tqdm_clock):
    """A 42 s pause begins after 4 of 10 rows: the bar says "waiting for rate limit: 42 s",
    then 41 and 40 at the next redraws, with not a row done; once it is over the postfix is
    the 429 count again."""
    terminal = FakeTerminal()
    bar = Bar("calls", terminal)
    bar.set_total(10)
    bar.advance(4, throttled=1)
    bar.pacing(waiting=42.0, eta=lambda rows: None)
    shown = [frames(terminal.getvalue())[-1]]
    for _ in range(2):
        tqdm_clock[0] += 1.0
        bar.pacing(waiting=42.0 - (tqdm_clock[0] - 1_000.0), eta=lambda rows: None)
        shown.append(frames(terminal.getvalue())[-1])
    tqdm_clock[0] += 40.0
    bar.pacing(waiting=0.0, eta=lambda rows: None)
    shown.append(frames(terminal.getvalue())[-1])
    bar.close()
    waits = [re.search(r", 429s=1(?:, waiting for rate limit: (\d+) s)?\]$", f) for f in shown]
    assert [m[1] if m else "no postfix" for m in waits] == ["42", "41", "40", None], shown
    assert all(" 4/10 [" in frame for frame in shown), shown


def test_the_countdown_is_taken_at_each_draw_so_it_never_shows_a_pause_that_is_over(
    tqdm_clock,
):
    """Told of a 3 s pause, a bar drawn 1.5 s later (a row completing) says 2 s, and one
    drawn after the pause says nothing of it, with no further word from the gate."""
    terminal = FakeTerminal()
    bar = Bar("calls", terminal, mininterval=0)
    bar.set_total(10)
    bar.pacing(waiting=3.0, eta=lambda rows: None)
    tqdm_clock[0] += 1.5
    bar.advance(1, throttled=1)
    assert frames(terminal.getvalue())[-1].endswith("429s=1, waiting for rate limit: 2 s]")
    tqdm_clock[0] += 2.0
    bar.advance(2, throttled=1)  # two: tqdm's float miniters can be a hair over one
    assert frames(terminal.getvalue())[-1].endswith(", 429s=1]")
    bar.close()


def test_the_time_left_is_the_gates_not_the_recent_throughput(tqdm_clock):
    """20 of 100 rows done in 1 s is 20 rows/s as tqdm measures it (4 s left), but the gate
    learned 8 requests per 10 s: 80 rows at 0.8/s is 100 s, plus 6 s of pause, 01:46, and
    01:40 once the pause is over. Where the gate cannot tell yet, the bar says so: "?"."""
    terminal = FakeTerminal()
    bar = Bar("calls", terminal)
    bar.set_total(100)
    tqdm_clock[0] += 1.0
    bar.advance(20, throttled=0)

    def left() -> str:
        frame = FRAME.fullmatch(frames(terminal.getvalue())[-1])
        assert frame, terminal.getvalue()
        return frame["left"]

    assert left() == "00:04"
    pause = [6.0]
    bar.pacing(waiting=6.0, eta=lambda rows: rows / 0.8 + pause[0])
    assert left() == "01:46"
    tqdm_clock[0] += 6.0
    pause[0] = 0.0
    bar.pacing(waiting=0.0, eta=lambda rows: rows / 0.8 + pause[0])
    assert left() == "01:40"
    bar.pacing(waiting=0.0, eta=lambda rows: None)
    assert left() == "?"
    bar.close()


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


def test_a_terminal_shows_the_rate_limit_wait_counting_down_and_the_time_it_adds(
    make_sandbox, tmp_path
):
    """A fixed window of 8 per 6.5 s and 10 rows: after the first 8 the run waits about 6 s
    for the window (a Retry-After over 5 s, so the wait is logged). The terminal shows
    "waiting for rate limit: N s" redrawn as N counts down with no row done, a time left that
    covers the wait (tqdm's recent throughput said a second or less), and no raw line over the
    bar; run.log says the wait."""
    server = make_sandbox(subprocess=True, limit=8, window=6.5, kind="fixed")
    source = write_contacts(tmp_path / "contacts.csv", au_mobiles(10))
    out = tmp_path / "run"
    args = ["run", str(source), *TEAM, "--base-url", server.base_url, "--out", str(out)]
    _, terminal, code = _run_on_a_terminal(args, server.api_key, tmp_path)
    assert code == 0, terminal
    drawn = frames(terminal)
    bars = [f for f in drawn if f.startswith("batchcall: ")]
    shown = [m.groupdict() for m in map(FRAME.fullmatch, bars) if m]
    assert len(shown) == len(bars), [b for b in bars if not FRAME.fullmatch(b)]
    waiting = [s for s in shown if s["wait"]]
    assert waiting and max(int(s["wait"]) for s in waiting) >= 2, bars
    assert all(int(s["throttled"]) >= 1 for s in waiting), bars
    steps = list(itertools.pairwise(waiting))
    # Within one pause (the same 429 count) the wait only counts down...
    assert all(
        int(b["wait"]) <= int(a["wait"]) for a, b in steps if a["throttled"] == b["throttled"]
    )
    # ...and is redrawn as it does though no row completes, not left as one frozen frame.
    assert any(a["done"] == b["done"] and int(b["wait"]) < int(a["wait"]) for a, b in steps), bars
    # The wait is shown rounded up, the time left (as tqdm writes it) down.
    assert all(s["left"] != "?" and seconds(s["left"]) >= int(s["wait"]) - 1 for s in waiting)
    assert shown[-1]["wait"] is None and shown[-1]["done"] == "10"
    assert "for the API's rate limit" not in terminal  # the raw line is for logs only
    assert "for the API's rate limit (429, Retry-After" in (out / "run.log").read_text()
    assert server.stats()["created"] == 10
