"""Ledger benchmark: what the contact ledger adds to planning and to sending.

    python benchmarks/ledger.py [--rows 1000000] [--ledger-calls 1000000] [--suppressed 100000]
                                [--reserves 20000] [--repeat 1] [--postgres URL [--skip-sqlite]]

Planning. The baseline is load + validate + plan of the 1M-row contacts file of
`benchmarks/load.py` (generated once into benchmarks/_data), in-process. Beside it, the same loop
with the ledger's plan-time check: every planned row becomes a `Call`, and each chunk of 1,000
goes through `Ledger.check` against a ledger of 1M earlier calls (half the file's phones, two
calls each: one an exact repeat or a day earlier, one in the week after) and a team suppression
list of 100k numbers, with the repeat guard and the caps 3/24h and 7/7d. `check alone` times
only the checks, on the same calls built beforehand. The target: the ledger adds at most 50%
to the validation.

Sending. `reserve` is one transaction just before a request leaves (check + a `reserved`
row), and `settle` records the answer; both on the 1M-call ledger, for calls to fresh phones
and to phones already on record. The baseline is what the sender already writes per row: the
journal's `mark_sending` and `record`. Figures are per call, median and 99th percentile.

End to end. `batchcall validate` of the same file, as a user runs it (a fresh process, the run
directory, journal and reports written), with `--ledger` an empty ledger (the baseline) and
then a copy of the 1M-call ledger with its 100k suppressions. The target: at most 1.5x.

The SQLite ledger is built once into benchmarks/_data/ (about a minute) and copied for each
run; `--postgres URL` also measures a PostgreSQL ledger (built into that database each run).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from load import DATA, FROM, SCRIPT, generate  # noqa: E402

from batchcall._config import Settings  # noqa: E402
from batchcall._journal import Journal, PlannedRow, Result  # noqa: E402
from batchcall._ledger import Call, Ledger, Placed, Policy, open_ledger, parse_cap  # noqa: E402
from batchcall._ledger._tables import SUPPRESS  # noqa: E402
from batchcall._load import open_table  # noqa: E402
from batchcall._plan import plan  # noqa: E402
from batchcall._validate import Validator  # noqa: E402

TEAM = "bench"
RUN = "bench-run"
POLICY = Policy(caps=(parse_cap("3/24h"), parse_cap("7/7d")))
SETTINGS = Settings(from_number=FROM, script_id=SCRIPT, timezone="Australia/Sydney")
# The contacts file's times are in March 2030; planning "now" sits just before them.
NOW = datetime(2030, 2, 28, tzinfo=UTC)


def phone(n: int) -> str:
    """The E.164 phone of row n of load.py's file."""
    return f"+614{n % 100_000_000:08d}"


def row_time(n: int) -> datetime:
    """The ring time of row n of load.py's file, in UTC."""
    day, minute = 1 + n % 28, (n * 7) % 600
    offset = 11 if n % 3 else 10
    local = datetime(2030, 3, day, 9 + minute // 60, minute % 60, tzinfo=UTC)
    return local - timedelta(hours=offset)


def build_ledger(ledger: Ledger, calls: int, suppressed: int, rows: int) -> None:
    """`calls` earlier calls over calls/2 of the file's phones, and `suppressed` numbers."""
    tables = ledger._tables
    store = ledger._store
    batch: list[Placed] = []
    for i in range(calls):
        n = (i // 2) * 2  # every other row's phone gets two calls
        n %= rows
        when = row_time(n)
        if i % 2 == 0:
            ring = when if n % 10 == 0 else when - timedelta(days=1)  # 10% exact repeats
        else:
            ring = when + timedelta(days=1 + n % 6)
        run_id = f"old-{i % 2}-{n % 50}"
        batch.append(Placed(phone(n), SCRIPT, ring, ring, run_id, n, f"c{i}", "scheduled"))
        if len(batch) == 50_000:
            with store.atomic():
                tables.record(batch, NOW)
            batch = []
    if batch:
        with store.atomic():
            tables.record(batch, NOW)
    t = store.time
    entries = [
        (
            ledger.team,
            phone(rows + 7 * k if k % 2 else 1 + 10 * k),
            "opted out",
            None,
            "bench",
            t(NOW),
        )
        for k in range(suppressed)
    ]
    with store.atomic():
        store.executemany(SUPPRESS, entries)


def planned(path: Path) -> Iterator[tuple[int, str, str, str | None]]:
    """load -> validate -> plan: (row, phone, script, scheduled_time) of each row to send."""
    table = open_table(path, SETTINGS)
    validator = Validator(table, SETTINGS, now=NOW)
    for checked in plan(map(validator.check, table), allow_duplicates=False):
        request = checked.request
        if request is not None and checked.outcome == "pending":
            yield checked.row, checked.phone_e164 or "", request.script_id, request.scheduled_time


def to_call(item: tuple[int, str, str, str | None]) -> Call:
    row, number, script, sent = item
    return Call(number, script, None if sent is None else datetime.fromisoformat(sent), RUN, row)


def time_validation(path: Path) -> tuple[float, int]:
    started = time.perf_counter()
    count = sum(1 for _ in planned(path))
    return time.perf_counter() - started, count


def time_validation_with_check(path: Path, ledger: Ledger) -> tuple[float, dict[str, int]]:
    started = time.perf_counter()
    outcomes: dict[str, int] = {}
    chunk: list[Call] = []

    def flush() -> None:
        for verdict in ledger.check(chunk, POLICY, now=NOW):
            key = verdict.outcome or verdict.action
            outcomes[key] = outcomes.get(key, 0) + 1
        chunk.clear()

    for item in planned(path):
        chunk.append(to_call(item))
        if len(chunk) == 1000:
            flush()
    flush()
    return time.perf_counter() - started, outcomes


def time_check_alone(calls: list[Call], ledger: Ledger) -> float:
    started = time.perf_counter()
    for start in range(0, len(calls), 1000):
        ledger.check(calls[start : start + 1000], POLICY, now=NOW)
    return time.perf_counter() - started


def per_call(action: Callable[[int], object], count: int) -> tuple[float, float]:
    """Median and p99 microseconds of `action(i)` for i in range(count)."""
    samples = []
    for i in range(count):
        started = time.perf_counter_ns()
        action(i)
        samples.append((time.perf_counter_ns() - started) / 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99)]


def time_reserves(ledger: Ledger, count: int, rows: int) -> dict[str, tuple[float, float]]:
    fresh = [
        Call(phone(10_000_000 + i), SCRIPT, NOW + timedelta(days=3), "r1", i) for i in range(count)
    ]
    # phones with calls on record (odd rows have none; even rows two), asked a day later
    known = [Call(phone(2 * i % rows), SCRIPT, row_time(2 * i % rows) + timedelta(hours=1), "r2", i)
             for i in range(count)]  # fmt: skip
    figures = {
        "reserve, new phone": per_call(lambda i: ledger.reserve(fresh[i], POLICY, now=NOW), count),
        "settle": per_call(lambda i: ledger.settle("r1", i, "scheduled", f"c{i}"), count),
        "reserve, phone on record": per_call(
            lambda i: ledger.reserve(known[i], POLICY, now=NOW), count
        ),
    }
    return figures


def time_journal(directory: Path, count: int) -> dict[str, tuple[float, float]]:
    with Journal(directory / "journal.sqlite", create=True) as journal:
        journal.add_rows(
            (
                PlannedRow(n, "[]", "{}", phone(n), "pending", None, None, None, 0)
                for n in range(1, count + 1)
            ),
            run_id=RUN,
        )
        result = Result("scheduled", 201, "call", "contact")

        def both(i: int) -> None:
            journal.mark_sending(i + 1, 1)
            journal.record_result(i + 1, result, attempts=1)

        return {"journal mark_sending + record (baseline)": per_call(both, count)}


def report(name: str, path: Path, ledger: Ledger, args: argparse.Namespace) -> None:
    print(f"\n== {name}: {args.ledger_calls:,} calls, {args.suppressed:,} suppressed numbers")
    # Alternated and repeated: on a shared machine the baseline alone can drift by 20%.
    bases, checks = [], []
    for _ in range(args.repeat):
        base, count = time_validation(path)
        with_check, outcomes = time_validation_with_check(path, ledger)
        bases.append(base)
        checks.append(with_check)
    base, with_check = statistics.median(bases), statistics.median(checks)
    calls = [to_call(item) for item in planned(path)]
    alone = statistics.median(time_check_alone(calls, ledger) for _ in range(args.repeat))
    title = f"planning {count:,} rows (median of {args.repeat})"
    print(f"{title:<46} {'seconds':>8} {'rows/s':>10} {'vs base':>8}")
    for what, seconds in (
        ("load+validate+plan (baseline)", base),
        ("load+validate+plan + ledger check", with_check),
        ("ledger check alone", alone),
    ):
        print(f"{what:<46} {seconds:8.2f} {count / seconds:10,.0f} {seconds / base:8.0%}")
    print(
        f"added by the ledger: {(with_check - base) / base:.0%} end to end, {alone / base:.0%} "
        f"by the checks alone (target <= 50%); verdicts {outcomes}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        figures = {
            **time_journal(Path(scratch), args.reserves),
            **time_reserves(ledger, args.reserves, args.rows),
        }
    title = f"sending, per call ({args.reserves:,} calls)"
    print(f"{title:<46} {'median us':>10} {'p99 us':>8}")
    for what, (median, p99) in figures.items():
        print(f"{what:<46} {median:10.0f} {p99:8.0f}")


def time_cli_validate(path: Path, ledger: Path, scratch: Path) -> float:
    """Wall seconds of `batchcall validate path --ledger ledger`, in a fresh process."""
    cli = str(Path(sys.executable).with_name("batchcall"))
    env = dict(os.environ, XDG_STATE_HOME=str(scratch / "state"))
    started = time.perf_counter()
    done = subprocess.run(
        [cli, "validate", str(path), "--from-number", FROM, "--script-id", SCRIPT,
         "--timezone", "Australia/Sydney", "--reports-dir", str(scratch / "reports"),
         "--ledger", str(ledger), "--team", TEAM, "--quiet"],
        env=env, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    # Exit 1: some rows will not be sent (invalid, or refused by the ledger), as intended here.
    if done.returncode not in (0, 1):
        raise SystemExit(f"batchcall validate exited {done.returncode}")
    return elapsed


def cli_report(path: Path, cached: Path, args: argparse.Namespace) -> None:
    """`batchcall validate` end to end, without and with the big ledger, alternated."""
    bases, withs = [], []
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        for i in range(args.repeat):
            empty, full = scratch / f"empty{i}.sqlite", scratch / f"full{i}.sqlite"
            shutil.copyfile(cached, full)
            bases.append(time_cli_validate(path, empty, scratch))
            withs.append(time_cli_validate(path, full, scratch))
            full.unlink()
    base, with_ledger = statistics.median(bases), statistics.median(withs)
    print(f"\n== batchcall validate, end to end (median of {args.repeat})")
    print(f"{'':<46} {'seconds':>8} {'vs base':>8}")
    print(f"{'empty ledger (baseline)':<46} {base:8.1f} {1:8.2f}x")
    label = f"{args.ledger_calls:,} calls + {args.suppressed:,} suppressed"
    print(f"{label:<46} {with_ledger:8.1f} {with_ledger / base:8.2f}x   (target <= 1.5x)")


def sqlite_report(path: Path, args: argparse.Namespace) -> None:
    cached = DATA / f"ledger_{args.ledger_calls}_{args.suppressed}_{args.rows}.sqlite"
    if not cached.exists():
        print(f"building {cached} ...", file=sys.stderr)
        with open_ledger(cached.with_suffix(".tmp"), team=TEAM) as ledger:
            build_ledger(ledger, args.ledger_calls, args.suppressed, args.rows)
        cached.with_suffix(".tmp").replace(cached)
    if not args.cli_only:
        with tempfile.TemporaryDirectory() as scratch:
            copy = Path(scratch) / "ledger.sqlite"
            shutil.copyfile(cached, copy)
            with open_ledger(copy, team=TEAM) as ledger:
                report("SQLite", path, ledger, args)
    cli_report(path, cached, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--ledger-calls", type=int, default=1_000_000)
    parser.add_argument("--suppressed", type=int, default=100_000)
    parser.add_argument("--reserves", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=1, help="Planning runs to take medians of.")
    parser.add_argument("--postgres", metavar="URL", help="Also measure a PostgreSQL ledger.")
    parser.add_argument("--skip-sqlite", action="store_true", help="Only the --postgres ledger.")
    parser.add_argument(
        "--cli-only", action="store_true", help="Only `batchcall validate`, end to end."
    )
    args = parser.parse_args()
    path = DATA / f"contacts_{args.rows}.csv"
    if not path.exists():
        print(f"generating {path} ...", file=sys.stderr)
        generate(path, args.rows)
    if not args.skip_sqlite:
        sqlite_report(path, args)
    if args.postgres:
        team = f"bench-{int(time.time())}"
        with open_ledger(args.postgres, team=team) as ledger:
            build_ledger(ledger, args.ledger_calls, args.suppressed, args.rows)
            report("PostgreSQL", path, ledger, args)


if __name__ == "__main__":
    main()
