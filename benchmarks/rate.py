"""Rate benchmark: the runner against the physical limit of each rate-limit scenario.

    python benchmarks/rate.py                  # every scenario, the runner twice, the worse quoted
    python benchmarks/rate.py --quick          # the 2 s and 1 s scenarios only (CI-sized)
    python benchmarks/rate.py --only fixed_60s two_sliding --runs 1

The **physical limit** is the least time the server's rule allows for the rows, from the
first request to the last call created: for a fixed or sliding window of L per W, the rows
need ceil(N / L) windows, so (ceil(N / L) - 1) × W; a token bucket that starts full needs
(N - L) / (L / W). Scenarios the client cannot know in full (another client on the key, a
limit that changes) take as their limit the time at the average rate allowed.

Each client gets a fresh sandbox (a child process on 127.0.0.1) that times it by its own
clock, and checks that every row was created exactly once:

- **batchcall**: the real CLI end to end (`batchcall run ... --json`, stderr a pipe), on a
  contacts CSV of distinct AU mobiles. Two processes on one key are two such runs started
  together, each with half the rows; their figure is for both together, and their finish
  times are compared.
- **oracle**: told the rule: it replays the server's own algorithm on its own clock (a few
  milliseconds behind the server's, so it never runs ahead of a reset) and sends each row as
  soon as that says it may, burst and all; told only the average rate where the rule is not
  knowable, it paces at that rate. It honours Retry-After if refused anyway.

The table shows runner ÷ limit beside oracle ÷ limit, and the share of 429s. In the 60 s
fixed-window scenario it also checks what the runner reported: the window and limit in its
summary, and a rate-limit wait line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiolimiter import AsyncLimiter

from batchcall._limiter import parse_retry_after
from batchcall.sandbox import TEAM_FROM_NUMBERS, TEAM_SCRIPT_IDS, SandboxConfig, start_sandbox
from batchcall.sandbox._ratelimit import ALGORITHMS

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from e2e_support import BATCHCALL, TEAM, au_mobiles, scrubbed_env, write_contacts

ENDPOINT = "/api/v1/create-phone-call"
WORKERS = 64  # tasks of the oracle
# Seconds the oracle's clock runs behind the server's: a fixed window's resets are timed from
# the first answer, but a sliding log times each request by its arrival, later than our send
# by a trip through a loaded loopback.
ORACLE_LAG = {"fixed": 0.002, "sliding": 0.03, "token_bucket": 0.002}


@dataclass(frozen=True)
class Scenario:
    name: str
    config: dict[str, Any]
    rows: int
    max_ratio: float | None  # runner ÷ limit
    max_429: float
    processes: int = 1
    average: float | None = None  # requests/s, where the rule is not knowable in full
    quick: bool = False

    @property
    def limit(self) -> int:
        return int(self.config["limit"])

    @property
    def window(self) -> float:
        return float(self.config["window"])

    def physical(self) -> float:
        """The least time from the first request to the last creation the rule allows."""
        if self.average is not None:
            return (self.rows - 1) / self.average
        if self.config.get("kind") == "token_bucket":
            return max(0, self.rows - self.limit) * self.window / self.limit
        return (math.ceil(self.rows / self.limit) - 1) * self.window


def _s(name: str, kind: str, limit: int, window: float, rows: int, **more: Any) -> Scenario:
    config = {"kind": kind, "limit": limit, "window": window, **more.pop("config", {})}
    return Scenario(name, config, rows, **more)


SCENARIOS = (
    _s("fixed_60s", "fixed", 300, 60.0, 900, max_ratio=1.05, max_429=0.01),
    _s("sliding_60s", "sliding", 300, 60.0, 900, max_ratio=1.05, max_429=0.01),
    _s("fixed_2s", "fixed", 100, 2.0, 600, max_ratio=1.05, max_429=0.01, quick=True),
    _s("sliding_2s", "sliding", 100, 2.0, 600, max_ratio=1.05, max_429=0.01, quick=True),
    _s("bucket", "token_bucket", 100, 2.0, 600, max_ratio=1.05, max_429=0.01, quick=True),
    _s(
        "on_429_60s", "fixed", 300, 60.0, 900, max_ratio=1.15, max_429=0.02,
        config={"headers": "on_429"},
    ),
    _s(
        "on_429_1s", "fixed", 50, 1.0, 600, max_ratio=1.15, max_429=0.02,
        config={"headers": "on_429"}, quick=True,
    ),
    _s("two_fixed", "fixed", 100, 2.0, 600, max_ratio=1.15, max_429=0.02, processes=2, quick=True),
    _s("two_sliding", "sliding", 100, 2.0, 600, max_ratio=1.15, max_429=0.02, processes=2),
    _s("two_bucket", "token_bucket", 100, 2.0, 600, max_ratio=1.15, max_429=0.02, processes=2),
    _s(
        "other_client_30%", "fixed", 100, 2.0, 600, max_ratio=1.15, max_429=0.03,
        config={"other_client_share": 0.3}, average=35.0,
    ),
    _s(
        "latency_300ms", "fixed", 100, 2.0, 600, max_ratio=1.10, max_429=0.02,
        config={"latency": 0.3},
    ),
    _s(
        "limit_halved", "fixed", 100, 2.0, 600, max_ratio=None, max_429=0.03,
        config={"limit_change_at": 4.0, "limit_after": 50}, average=600 / 18,
    ),
    _s("rate_200", "fixed", 400, 2.0, 2000, max_ratio=None, max_429=0.01),
)  # fmt: skip


@dataclass
class Measured:
    elapsed: float  # first request to last creation, by the sandbox's clock
    requests: int
    throttled: int
    finish_spread: float | None = None  # two processes: gap between their last creations
    notes: list[str] = field(default_factory=list)

    @property
    def share(self) -> float:
        return self.throttled / max(1, self.requests)


# --- the runner ----------------------------------------------------------------------------


def _start_runner(base_url: str, key: str, phones: list[str], tmp: Path) -> subprocess.Popen[str]:
    contacts = write_contacts(tmp / "contacts.csv", phones)
    args = [BATCHCALL, "run", str(contacts), *TEAM, "--base-url", base_url]
    args += ["--out", str(tmp / "run"), "--json", "--quiet"]
    return subprocess.Popen(
        args, env=scrubbed_env(key), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def runner(base_url: str, key: str, scenario: Scenario, tmp: Path) -> list[dict[str, Any]]:
    """Run the CLI (in `processes` processes together); each one's summary and stderr."""
    share = scenario.rows // scenario.processes
    children = []
    for index in range(scenario.processes):
        phones = au_mobiles(share, start=index * 100_000)
        folder = tmp / f"p{index}"
        folder.mkdir()
        children.append((phones, _start_runner(base_url, key, phones, folder)))
    results = []
    for phones, child in children:
        stdout, stderr = child.communicate(timeout=1800)
        if child.returncode != 0:
            raise SystemExit(
                f"{scenario.name}: batchcall exited {child.returncode}: {stderr}\n{stdout[-4000:]}"
            )
        results.append({"summary": json.loads(stdout), "stderr": stderr, "phones": phones})
    return results


# --- the oracle ----------------------------------------------------------------------------


def body(row: int) -> dict[str, Any]:
    return {
        "from_number": TEAM_FROM_NUMBERS[0],
        "script_id": TEAM_SCRIPT_IDS[0],
        "contact": {"phone_number": f"+614{row:08d}"},
    }


class RuleClock:
    """The server's own algorithm on our clock, a little behind: when the next row may go.

    The server's clock starts at its first request, somewhere between our sending it and its
    answer: the first request goes alone, and our clock starts at its answer, so our windows
    never open before the server's.
    """

    def __init__(self, scenario: Scenario) -> None:
        kind = scenario.config["kind"]
        self._rule = ALGORITHMS[kind](limit=scenario.limit, window=scenario.window)
        self._lag = ORACLE_LAG[kind]
        self._start: float | None = None
        self._first_sent = False
        self._anchored = asyncio.Event()
        self._lock = asyncio.Lock()

    def answered(self) -> None:
        if self._start is None:
            self._start = time.perf_counter()
            self._anchored.set()

    async def acquire(self) -> None:
        if self._first_sent:
            await self._anchored.wait()
        async with self._lock:
            if not self._first_sent:
                self._first_sent = True
                self._rule.try_acquire(0.0)
                return
            while True:
                assert self._start is not None
                at = time.perf_counter() - self._start - self._lag
                if self._rule.try_acquire(max(0.0, at)):
                    return
                await asyncio.sleep(max(self._rule.retry_after(max(0.0, at)), 0.001))


async def oracle_client(base_url: str, key: str, scenario: Scenario) -> None:
    rule = RuleClock(scenario) if scenario.average is None else None
    paced = AsyncLimiter(1, 1 / scenario.average) if scenario.average else None
    queue: asyncio.Queue[int] = asyncio.Queue()
    for row in range(scenario.rows):
        queue.put_nowait(row)
    limits = httpx.Limits(max_connections=WORKERS, max_keepalive_connections=WORKERS)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, limits=limits, timeout=30.0
    ) as client:

        async def worker() -> None:
            while not queue.empty():
                row = queue.get_nowait()
                while True:
                    await (rule.acquire() if rule else paced.acquire())  # type: ignore[union-attr]
                    response = await client.post(
                        ENDPOINT, json=body(row), headers={"Idempotency-Key": f"r{row}"}
                    )
                    if rule:
                        rule.answered()
                    if response.status_code != 429:
                        response.raise_for_status()
                        break
                    wait = parse_retry_after(response.headers.get("Retry-After"), now=time.time())
                    await asyncio.sleep(wait or 1.0)

        await asyncio.gather(*(worker() for _ in range(WORKERS)))


# --- measuring -----------------------------------------------------------------------------


def measure(scenario: Scenario, client: str) -> Measured:
    with (
        tempfile.TemporaryDirectory(prefix="rate-bench-") as folder,
        start_sandbox(SandboxConfig(**scenario.config), subprocess=True) as sandbox,
    ):
        results: list[dict[str, Any]] = []
        if client == "oracle":
            asyncio.run(oracle_client(sandbox.base_url, sandbox.api_key, scenario))
        else:
            results = runner(sandbox.base_url, sandbox.api_key, scenario, Path(folder))
        stats, calls = sandbox.stats(), sandbox.calls()
    phones = [call["phone_number"] for call in calls]
    if len(phones) != scenario.rows or len(set(phones)) != scenario.rows:
        raise SystemExit(
            f"{scenario.name}/{client}: {len(phones)} calls for {len(set(phones))} phones, "
            f"{scenario.rows} rows: not exactly once"
        )
    created = stats["created_at"]
    measured = Measured(created[-1] - stats["first_request_at"], stats["requests"],
                        stats["rate_limited"])  # fmt: skip
    if len(results) > 1:
        measured.finish_spread = _finish_spread(results, calls, stats["first_request_at"])
    if results:
        measured.notes = _report_notes(results[0], scenario)
    return measured


def _finish_spread(
    results: list[dict[str, Any]], calls: list[dict[str, Any]], first: float
) -> float:
    """How far apart the processes finished, as a share of the later one's time."""
    finish = []
    for result in results:
        mine = set(result["phones"])
        finish.append(max(c["created_at"] for c in calls if c["phone_number"] in mine) - first)
    return (max(finish) - min(finish)) / max(finish)


def _report_notes(result: dict[str, Any], scenario: Scenario) -> list[str]:
    """What the runner said of the limit, and whether stderr named a rate-limit wait."""
    limiter = result["summary"].get("limiter", {})
    waits = sum("for the API's rate limit" in line for line in result["stderr"].splitlines())
    learned = ", ".join(
        f"{k}={limiter[k]}({limiter['sources'][k][:3]})"
        for k in ("kind", "limit", "window", "refill", "achieved_rate")
        if k in limiter
    )
    return [f"learned: {learned}", f"wait lines on stderr: {waits}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="scenario names to run")
    parser.add_argument("--quick", action="store_true", help="the short-window scenarios only")
    parser.add_argument("--runs", type=int, default=2, help="runner runs per scenario (worst kept)")
    parser.add_argument("--no-oracle", action="store_true", help="skip the oracle's runs")
    args = parser.parse_args()
    # The runs call the same phones again and again: give them a throwaway contact ledger, never
    # the user's own (children inherit it).
    os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="batchcall-bench-state-")
    chosen = [
        s
        for s in SCENARIOS
        if (not args.only or s.name in args.only) and (not args.quick or s.quick)
    ]
    header = (
        f"{'scenario':<17} {'limit s':>7} {'runs: runner ÷ limit':>22} {'429s':>11} "
        f"{'oracle ÷ limit':>14} {'spread':>6}  target"
    )
    print(header)
    print("-" * len(header), flush=True)
    for scenario in chosen:
        limit = scenario.physical()
        runs = [measure(scenario, "batchcall") for _ in range(args.runs)]
        oracle = None if args.no_oracle else measure(scenario, "oracle")
        ratios = [r.elapsed / limit for r in runs]
        shares = [r.share for r in runs]
        worst = max(ratios)
        spreads = [r.finish_spread for r in runs if r.finish_spread is not None]
        ok = (scenario.max_ratio is None or worst <= scenario.max_ratio) and max(
            shares
        ) <= scenario.max_429
        if spreads:
            ok = ok and max(spreads) <= 0.10
        target = f"≤{scenario.max_ratio:.2f}× " if scenario.max_ratio else "(no time target) "
        target += f"≤{scenario.max_429:.0%} 429s" + (" spread ≤10%" if spreads else "")
        spread = f"{max(spreads):.0%}" if spreads else "-"
        oracle_text = f"{oracle.elapsed / limit:.2f}" if oracle else "-"
        print(
            f"{scenario.name:<17} {limit:>7.1f} {' / '.join(f'{r:.3f}' for r in ratios):>22} "
            f"{' / '.join(f'{s:.1%}' for s in shares):>11} {oracle_text:>14} {spread:>6}  "
            f"{target}: {'met' if ok else 'MISSED'}",
            flush=True,
        )
        for run in runs:
            for note in run.notes:
                print(f"{'':<19}{note}", flush=True)


if __name__ == "__main__":
    main()
