"""A run that waits on the API's rate limit says so, and reports what it learned of the limit.

End to end against the sandbox in its own process: a fixed window of 6 s holding 8 requests,
12 rows, so the run must wait for one reset. The summary table's rate-limit line is also
checked alone, from summary.json's `limiter` blocks of each kind.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from e2e_support import TEAM, au_mobiles, cli, write_contacts

from batchcall._cli import format_learned, format_summary


def test_a_long_rate_limit_pause_is_said_on_stderr_and_in_run_log(make_sandbox, tmp_path):
    """Off a terminal, the pause shows as one line on stderr and in run.log, never a gap; the
    summary names the limit as observed and the window as inferred, and each row is made once.
    """
    server = make_sandbox(subprocess=True, limit=8, window=6.0, kind="fixed")
    source = write_contacts(tmp_path / "contacts.csv", au_mobiles(12))
    out = tmp_path / "run"
    done = cli(
        "run", source, *TEAM, "--base-url", server.base_url, "--out", out, "--json",
        cwd=tmp_path, key=server.api_key,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    waits = [line for line in done.stderr.splitlines() if "for the API's rate limit" in line]
    assert len(waits) == 1, done.stderr
    assert waits[0].startswith("batchcall: waiting ")
    assert "(429, Retry-After " in waits[0]
    assert "for the API's rate limit (429, Retry-After" in (out / "run.log").read_text()

    limiter = json.loads(done.stdout)["limiter"]
    assert (limiter["limit"], limiter["sources"]["limit"]) == (8, "observed")
    assert limiter["sources"]["achieved_rate"] == "observed"
    assert "rate" not in limiter and "concurrency" not in limiter
    assert server.stats()["created"] == 12
    phones = [call["phone_number"] for call in server.calls()]
    assert len(set(phones)) == 12


def test_the_summary_table_says_what_was_learned_and_how(make_sandbox, tmp_path: Path):
    """The table's rate-limit line marks the limit observed; nothing it did not measure shows."""
    server = make_sandbox(subprocess=True, limit=50, window=1.0, kind="fixed")
    source = write_contacts(tmp_path / "contacts.csv", au_mobiles(60))
    done = cli(
        "run", source, *TEAM, "--base-url", server.base_url, "--out", tmp_path / "run",
        cwd=tmp_path, key=server.api_key,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.strip().startswith("rate limit:"))
    assert "50 requests (observed)" in line
    assert "achieved" in line and "/s (observed)" in line
    assert "waiting" not in done.stderr  # a pause of a second or so is not announced


@pytest.mark.parametrize(
    ("limiter", "line"),
    [
        (
            {"kind": "fixed window", "limit": 8, "window": 6.0, "achieved_rate": 1.31,
             "sources": {"kind": "inferred", "limit": "observed", "window": "inferred",
                         "achieved_rate": "observed"}},
            "fixed window (inferred), 8 requests (observed) per 6 s (inferred), "
            "achieved 1.31/s (observed)",
        ),
        (
            {"kind": "token bucket", "limit": 50, "refill": 2.5,
             "sources": {"kind": "inferred", "limit": "observed", "refill": "inferred"}},
            "token bucket (inferred), 50 requests (observed), refill 2.5/s (inferred)",
        ),
        (
            {"kind": "fixed window", "window": 2.0,
             "sources": {"kind": "inferred", "window": "inferred"}},
            "fixed window (inferred), window 2 s (inferred)",
        ),
        (
            {"achieved_rate": 4.2, "latency": 0.01,
             "sources": {"achieved_rate": "observed", "latency": "observed"}},
            "achieved 4.2/s (observed)",
        ),
        ({"requests": 3, "throttled": 0, "sources": {}}, ""),
    ],
)  # fmt: skip
def test_the_rate_limit_line_says_each_learned_value_and_how_and_nothing_else(limiter, line):
    """Kind, limit, window or refill and the achieved rate, each marked as summary.json's
    `sources` marks it; blind, only the achieved rate; nothing measured, no line at all."""
    assert format_learned(limiter) == line
    table = format_summary(
        {"command": "run", "total": 3, "seconds": 1.0, "counts": {"scheduled": 3},
         "errors": {}, "requests": 3, "throttled": 0, "rate": 3.0, "limiter": limiter,
         "run_dir": "/tmp/run", "results_csv": "/tmp/run/results.csv"}
    )  # fmt: skip
    shown = [x.strip() for x in table.splitlines() if x.strip().startswith("rate limit:")]
    assert shown == ([f"rate limit: {line}"] if line else [])
