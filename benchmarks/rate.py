"""Rate benchmark: the adaptive gate against an oracle and a naive client, per rate-limit scenario.

    python benchmarks/rate.py                      # every scenario, 600 rows each
    python benchmarks/rate.py --only fixed sliding  # a subset

Each scenario is 600 rows against a limit of 100 requests per 2 s window (50/s) that the
project's client is never told. Every client gets a fresh sandbox (a child process on
127.0.0.1) so none inherits another's spent quota:

- **batchcall**: the real runner end to end, `batchcall.run` on a 600-row contacts CSV (valid,
  distinct AU mobiles), with its journal, dispatcher and adaptive `Gate`;
- **oracle**: told the true rate, paced burst-free with aiolimiter (capacity one, so it never
  spends the initial quota as a burst), honouring Retry-After if refused anyway;
- **naive**: a fixed pool of workers that only honours Retry-After.

Every client is timed the same way, by the sandbox itself: from the first request it received to
the last call it created (the runner's start-up and report writing fall outside). Utilisation
is the ideal time at the allowed rate over the measured time; the ratio compares the time with
the oracle's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiolimiter import AsyncLimiter

import batchcall
from batchcall._limiter import parse_retry_after
from batchcall.sandbox import TEAM_FROM_NUMBERS, TEAM_SCRIPT_IDS, SandboxConfig, start_sandbox

# The contact files the end-to-end tests use: distinct valid AU mobiles, national format.
sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from e2e_support import au_mobiles, write_contacts

ROWS = 600
LIMIT = 100
WINDOW = 2.0
ENDPOINT = "/api/v1/create-phone-call"
WORKERS = 64  # tasks per baseline client
NAIVE_WORKERS = 8
HALVE_AT = 4.0
FROM = "+61291234567"
SCRIPT = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"


@dataclass(frozen=True)
class Scenario:
    name: str
    config: dict[str, Any]
    schedule: tuple[tuple[float, float], ...]  # (from second, allowed rate) as the oracle knows it
    max_ratio: float | None
    max_429: float
    note: str = ""

    def ideal_time(self, rows: int) -> float:
        """Seconds the allowed rate needs for `rows`, following the schedule."""
        elapsed, left = 0.0, float(rows)
        for index, (start, rate) in enumerate(self.schedule):
            end = self.schedule[index + 1][0] if index + 1 < len(self.schedule) else None
            span = (end - start) if end is not None else left / rate
            sent = min(left, span * rate)
            elapsed, left = start + sent / rate, left - sent
            if left <= 0:
                break
        return elapsed


FULL = ((0.0, LIMIT / WINDOW),)
SCENARIOS = (
    Scenario("fixed", {"kind": "fixed"}, FULL, 1.10, 0.02),
    Scenario("sliding", {"kind": "sliding"}, FULL, 1.10, 0.02),
    Scenario("token_bucket", {"kind": "token_bucket"}, FULL, 1.10, 0.02),
    Scenario(
        "other_client_30%",
        {"kind": "fixed", "other_client_share": 0.3},
        ((0.0, 0.7 * LIMIT / WINDOW),),
        1.15,
        0.03,
    ),
    Scenario("latency_300ms", {"kind": "fixed", "latency": 0.3}, FULL, 1.10, 0.02),
    Scenario("headers_on_429", {"kind": "fixed", "headers": "on_429"}, FULL, 1.25, 0.05),
    Scenario(
        "limit_halved",
        {"kind": "fixed", "limit_change_at": HALVE_AT, "limit_after": LIMIT // 2},
        ((0.0, LIMIT / WINDOW), (HALVE_AT, LIMIT / 2 / WINDOW)),
        None,
        0.03,
        "all rows scheduled",
    ),
)


@dataclass
class Tally:
    requests: int = 0
    throttled: int = 0
    accepted: int = 0
    first: float | None = None
    last: float = 0.0
    other: list[int] = field(default_factory=list)

    def sent(self) -> None:
        self.requests += 1
        if self.first is None:
            self.first = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return self.last - (self.first or self.last)


def body(row: int) -> dict[str, Any]:
    return {
        "from_number": TEAM_FROM_NUMBERS[0],
        "script_id": TEAM_SCRIPT_IDS[0],
        "contact": {"phone_number": f"+614{row:08d}"},
    }


Send = Callable[[httpx.AsyncClient, int, Tally], Awaitable[None]]


async def run_workers(base_url: str, api_key: str, rows: int, workers: int, send: Send) -> Tally:
    tally = Tally()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for row in range(rows):
        queue.put_nowait(row)
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    async with httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {api_key}"},
        limits=limits,
        timeout=30.0,
    ) as client:

        async def worker() -> None:
            while not queue.empty():
                await send(client, queue.get_nowait(), tally)

        await asyncio.gather(*(worker() for _ in range(workers)))
    return tally


async def post(client: httpx.AsyncClient, row: int, tally: Tally) -> httpx.Response:
    tally.sent()
    response = await client.post(ENDPOINT, json=body(row), headers={"Idempotency-Key": f"r{row}"})
    if response.status_code == 429:
        tally.throttled += 1
    else:
        response.raise_for_status()
        tally.accepted += 1
        tally.last = time.perf_counter()
    return response


def retry_after(response: httpx.Response) -> float:
    return parse_retry_after(response.headers.get("Retry-After"), now=time.time()) or 1.0


def batchcall_client(base_url: str, api_key: str, rows: int, _: Scenario) -> Tally:
    with tempfile.TemporaryDirectory(prefix="rate-bench-") as tmp:
        contacts = write_contacts(Path(tmp) / "contacts.csv", au_mobiles(rows))
        summary = batchcall.run(
            contacts,
            from_number=FROM,
            script_id=SCRIPT,
            base_url=base_url,
            api_key=api_key,
            reports_dir=Path(tmp) / "reports",
            force=True,
        )
    if summary.counts.get("scheduled", 0) != rows:
        raise SystemExit(f"the runner scheduled {summary.counts} of {rows} rows")
    return Tally(requests=summary.requests, throttled=summary.throttled, accepted=rows)


async def oracle_client(base_url: str, api_key: str, rows: int, scenario: Scenario) -> Tally:
    # aiolimiter cannot change its rate, so a schedule switches to a second limiter.
    limiters = [(start, AsyncLimiter(1, 1 / rate)) for start, rate in scenario.schedule]
    began: list[float] = []

    async def send(client: httpx.AsyncClient, row: int, tally: Tally) -> None:
        while True:
            if not began:
                began.append(time.perf_counter())
            elapsed = time.perf_counter() - began[0]
            limiter = [lim for start, lim in limiters if start <= elapsed][-1]
            await limiter.acquire()
            response = await post(client, row, tally)
            if response.status_code != 429:
                return
            await asyncio.sleep(retry_after(response))

    return await run_workers(base_url, api_key, rows, WORKERS, send)


async def naive_client(base_url: str, api_key: str, rows: int, _: Scenario) -> Tally:
    async def send(client: httpx.AsyncClient, row: int, tally: Tally) -> None:
        while True:
            response = await post(client, row, tally)
            if response.status_code != 429:
                return
            await asyncio.sleep(retry_after(response))

    return await run_workers(base_url, api_key, rows, NAIVE_WORKERS, send)


def oracle(base_url: str, api_key: str, rows: int, scenario: Scenario) -> Tally:
    return asyncio.run(oracle_client(base_url, api_key, rows, scenario))


def naive(base_url: str, api_key: str, rows: int, scenario: Scenario) -> Tally:
    return asyncio.run(naive_client(base_url, api_key, rows, scenario))


CLIENTS: dict[str, Callable[[str, str, int, Scenario], Tally]] = {
    "batchcall": batchcall_client,
    "oracle": oracle,
    "naive": naive,
}


def measure(scenario: Scenario, client: str, rows: int) -> Tally:
    config = SandboxConfig(limit=LIMIT, window=WINDOW, **scenario.config)
    with start_sandbox(config, subprocess=True) as sandbox:
        tally = CLIENTS[client](sandbox.base_url, sandbox.api_key, rows, scenario)
        stats = sandbox.stats()
    created = stats["created_at"]
    if len(created) != rows:
        raise SystemExit(f"{scenario.name}/{client}: the sandbox created {len(created)} of {rows}")
    # The server's clock times every client alike, whatever it does before its first request.
    tally.first, tally.last = stats["first_request_at"], created[-1]
    tally.requests, tally.throttled = stats["requests"], stats["rate_limited"]
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="scenario names to run")
    parser.add_argument("--rows", type=int, default=ROWS)
    args = parser.parse_args()
    # The runs call the same phones again and again: give them a throwaway contact ledger, never
    # the user's own (children inherit it).
    os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="batchcall-bench-state-")
    chosen = [s for s in SCENARIOS if not args.only or s.name in args.only]
    header = (
        f"{'scenario':<18} {'client':<10} {'time s':>7} {'util':>6} {'429s':>6} "
        f"{'× oracle':>8}  target"
    )
    print(header)
    print("-" * len(header))
    for scenario in chosen:
        ideal = scenario.ideal_time(args.rows)
        tallies = {name: measure(scenario, name, args.rows) for name in CLIENTS}
        oracle = tallies["oracle"].elapsed
        for name, tally in tallies.items():
            ratio = tally.elapsed / oracle
            share = tally.throttled / tally.requests
            target = ""
            if name == "batchcall":
                ok_time = scenario.max_ratio is None or ratio <= scenario.max_ratio
                ok = ok_time and share <= scenario.max_429
                limit = f"≤{scenario.max_ratio:.2f}× " if scenario.max_ratio else ""
                note = f"{scenario.note} " if scenario.note else ""
                target = f"{limit}{note}≤{scenario.max_429:.0%} 429s: {'met' if ok else 'MISSED'}"
            utilisation = ideal / tally.elapsed
            print(
                f"{scenario.name:<18} {name:<10} {tally.elapsed:>7.2f} {utilisation:>6.0%} "
                f"{share:>6.1%} {ratio:>8.2f}  {target}",
                flush=True,
            )


if __name__ == "__main__":
    main()
