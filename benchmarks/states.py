"""State-rules benchmark: placing a call under `us-tcpa` (federal plus state) beside `us-federal`.

    python benchmarks/states.py               # 50,000 distinct US numbers, 7 rounds
    python benchmarks/states.py --rows 200000

Both policies place the same requested instant for the same numbers (ten area codes, each with
its own state or none), in the same process, rounds alternating. `us-tcpa` adds the state
lookup (libphonenumber's geocoder, once per +1NPANXX prefix), the combined rule of the states
and the margin; `us-federal` is the federal window alone with the same margin. Each round
starts with the state cache empty. Printed: median µs per row of each, and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime

import batchcall._states as states
from batchcall._config import Settings
from batchcall._windows import WindowPolicy

AREAS = (305, 405, 410, 415, 212, 512, 312, 617, 702, 206)
NOW = datetime(2026, 1, 1, tzinfo=UTC)
ASKED = datetime(2026, 6, 3, 23, 30, tzinfo=UTC)  # 19:30 in New York: near FL's close


def _phones(rows: int) -> list[str]:
    # Spread over many exchanges, as a real file is: a prefix cache hit is not a given.
    return [f"+1{AREAS[i % len(AREAS)]}{2000000 + (i * 7919) % 7999999:07d}" for i in range(rows)]


def _round(window: str, phones: list[str]) -> float:
    policy = WindowPolicy.from_settings(Settings(calling_window=window))
    assert policy is not None
    states._by_prefix.clear()
    start = time.perf_counter()
    for phone in phones:
        policy.place(ASKED, phone_e164=phone, row_timezone=None, now=NOW)
    return (time.perf_counter() - start) / len(phones) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    phones = _phones(args.rows)
    timings: dict[str, list[float]] = {"us-federal": [], "us-tcpa": []}
    for _ in range(args.rounds):
        for window, found in timings.items():
            found.append(_round(window, phones))
    federal = statistics.median(timings["us-federal"])
    tcpa = statistics.median(timings["us-tcpa"])
    print(f"{'window':<12} {'µs/row (median)':>16}")
    print(f"{'us-federal':<12} {federal:>16.1f}")
    print(f"{'us-tcpa':<12} {tcpa:>16.1f}   x{tcpa / federal:.2f} of us-federal")


if __name__ == "__main__":
    main()
