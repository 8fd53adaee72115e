"""Client CPU seconds per 1,000 rows, end to end, beside a bare httpx loop.

    python benchmarks/overhead.py [--rows 2000] [--repeat 3] [--concurrency 16] [--latency 0]

Both clients run in their own child process against the same sandbox (itself a child process,
unlimited, no latency), so `RUSAGE_CHILDREN` gives each client's CPU alone. batchcall does the
whole job (read the CSV, validate, plan, check every row against the contact ledger, journal
every state, reserve and settle every call in the ledger, send, write the reports); the baseline
only posts prebuilt bodies with the same concurrency. The ratio is the price of the journal, the
ledger and the checks. batchcall's ledger is a temporary SQLite file (`--ledger`), shared by the
repeats as a team's would be, and never the user's own.

It prints each client's sustained rows a second too: batchcall's from its summary (first request
to last answer), the loop's the same way. `--latency 0.1 --concurrency 64` puts many requests in
flight at once, which is where one httpx connection pool of many connections cost the most.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from e2e_support import FROM, SCRIPT, au_mobiles, write_contacts

from batchcall.sandbox import SandboxConfig, start_sandbox

CONCURRENCY = 16

BASELINE = r"""
import asyncio, json, sys, time, httpx
base, key, path, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
bodies = json.load(open(path))
async def main():
    queue = asyncio.Queue()
    for i, body in enumerate(bodies):
        queue.put_nowait((i, body))
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": "Bearer " + key},
                                 timeout=30, limits=limits) as c:
        async def worker():
            while not queue.empty():
                i, body = queue.get_nowait()
                r = await c.post("/api/v1/create-phone-call", json=body,
                                 headers={"Idempotency-Key": f"base-{i}"})
                assert r.status_code == 201, r.text
        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(workers)))
        print(json.dumps({"rate": len(bodies) / (time.monotonic() - started)}))
asyncio.run(main())
"""


def _cpu_of(command: list[str], env: dict[str, str], rates: list[float]) -> float:
    """The command's CPU seconds; the rows a second it printed (JSON) go to `rates`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, env=env, check=True, stdout=subprocess.PIPE, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    rates.append(float(json.loads(done.stdout)["rate"]))
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    parser.add_argument("--latency", type=float, default=0.0, help="the sandbox's, seconds")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="batchcall-overhead-"))
    ours, bare = [], []
    ours_rate: list[float] = []
    bare_rate: list[float] = []
    batchcall_bin = str(Path(sys.executable).with_name("batchcall"))
    for i in range(args.repeat):
        phones = au_mobiles(args.rows, start=i * args.rows * 2)
        source = write_contacts(work / f"contacts{i}.csv", phones)
        bodies = [
            {
                "from_number": FROM,
                "script_id": SCRIPT,
                "contact": {"phone_number": p, "first_name": f"Name{n}", "last_name": f"S{n}"},
                "objects": {"policy": {"number": f"POL-{n:05d}"}},
            }
            for n, p in enumerate(phones, 1)
        ]
        (work / "bodies.json").write_text(json.dumps(bodies))
        config = SandboxConfig(latency=args.latency)
        with start_sandbox(config, subprocess=True) as server:
            env = dict(
                os.environ, VOXWORKS_API_KEY=server.api_key, XDG_STATE_HOME=str(work / "state")
            )
            ours_command = [
                batchcall_bin, "run", str(source), "--from-number", FROM, "--script-id", SCRIPT,
                "--base-url", server.base_url, "--concurrency", str(args.concurrency),
                "--reports-dir", str(work / "reports"), "--ledger", str(work / "ledger.sqlite"),
                "--quiet", "--json",
            ]  # fmt: skip
            bare_command = [
                sys.executable, "-c", BASELINE, server.base_url, server.api_key,
                str(work / "bodies.json"), str(args.concurrency),
            ]  # fmt: skip
            # The order alternates, so a load that drifts during the run (a shared machine)
            # weighs on both clients alike.
            for first in [0, 1] if i % 2 == 0 else [1, 0]:
                if first == 0:
                    ours.append(_cpu_of(ours_command, env, ours_rate))
                    assert len(server.calls()) == args.rows, "batchcall did not schedule every row"
                else:
                    bare.append(_cpu_of(bare_command, env, bare_rate))
                server.reset()
    per_k = 1000 / args.rows
    ours_k, bare_k = statistics.median(ours) * per_k, statistics.median(bare) * per_k
    print(
        f"client CPU per 1,000 rows, median of {args.repeat} runs of {args.rows} rows "
        f"(concurrency {args.concurrency}, sandbox latency {args.latency:g} s)"
    )
    print(f"{'client':<28}{'CPU s / 1k rows':>18}{'rows/s':>10}")
    ours_r, bare_r = statistics.median(ours_rate), statistics.median(bare_rate)
    print(f"{'batchcall run (end to end)':<28}{ours_k:>18.3f}{ours_r:>10.0f}")
    print(f"{'bare httpx loop (baseline)':<28}{bare_k:>18.3f}{bare_r:>10.0f}")
    print(f"{'ratio':<28}{ours_k / bare_k:>17.2f}x")
    paired = statistics.median(o / b for o, b in zip(ours, bare, strict=True))
    print(f"{'median of paired ratios':<28}{paired:>17.2f}x")


if __name__ == "__main__":
    main()
