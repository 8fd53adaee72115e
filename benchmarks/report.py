"""Report benchmark: what report.html costs a 1M-row `validate`, and how big it is.

    python benchmarks/report.py [--rows 1000000] [--repeat 3]

It uses load.py's file (benchmarks/_data/contacts_<rows>.csv, generated once) and runs, in a
fresh interpreter, a real `batchcall validate` of it (its run directory, journal, results.csv
and report.html), timing the whole. Then, on that run's journal, it times the reports' one pass
over the rows `--repeat` times each way, alternately: the baseline writes results.csv, failed.csv
and skipped.csv only (what `validate` wrote before report.html existed), ours writes them with
the report's digest gathered in the same pass and report.html rendered. The difference of the
medians is what the report adds; it is quoted as a share of the whole validate's time.

Size: the page the validate wrote, and the page of a sending run as big as a run gets: the same
rows with a timeline of one million attempts spread over 14 hours (500s, 429s among them).
Targets (issue 14): at most 1.5 MB, and at most 5% added to the run's time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from load import DATA, FROM, SCRIPT, generate

SNIPPET = f"""
import json, statistics, sys, tempfile, time
from datetime import UTC, datetime
from pathlib import Path
from batchcall import _runner as runner
from batchcall._digest import digest_for
from batchcall._html import render, write_html
from batchcall._journal import Journal
from batchcall._report import PAGE_META, write_results
from batchcall._timeline import Timeline

path, repeat = sys.argv[1], int(sys.argv[2])
with tempfile.TemporaryDirectory() as reports:
    started = time.perf_counter()
    summary = runner.validate(path, from_number="{FROM}", script_id="{SCRIPT}",
                              timezone="Australia/Sydney", reports_dir=reports)
    validate_s = time.perf_counter() - started
    page = Path(summary.report_html).stat().st_size
    run_dir = Path(summary.run_dir)
    scratch = Path(reports) / "scratch"
    scratch.mkdir()
    plain, ours = [], []
    with Journal(run_dir / "journal.sqlite", readonly=True) as journal:
        header = journal.meta("header", [])
        meta = {{key: journal.meta(key) for key in PAGE_META}}
        for i in range(2 * repeat):
            started = time.perf_counter()
            if i % 2 == 0:
                write_results(scratch, header, journal.report_rows(), dry_run=True)
                plain.append(time.perf_counter() - started)
                continue
            digest = digest_for(meta, datetime.now(UTC))
            write_results(scratch, header, digest.tee(journal.report_rows()), dry_run=True)
            write_html(scratch / "report.html", summary.to_dict(), meta, digest, Timeline())
            ours.append(time.perf_counter() - started)
    timeline = Timeline()
    begin = time.time()
    for n in range(1_000_000):
        status = 429 if n % 50 == 0 else 500 if n % 333 == 0 else 201
        timeline.record(begin + n * 0.05, 0.04 + (n % 7) * 0.01, status)
    sending = len(render(summary.to_dict(), dict(meta, dry_run=False), digest, timeline).encode())
print(json.dumps({{"rows": summary.total, "validate_s": validate_s, "page": page,
                  "sending_page": sending, "plain": plain, "ours": ours}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    path = DATA / f"contacts_{args.rows}.csv"
    if not path.exists():
        generate(path, args.rows)
    done = subprocess.run(
        [sys.executable, "-c", SNIPPET, str(path), str(args.repeat)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    got = json.loads(done.stdout.strip().splitlines()[-1])
    plain = sorted(got["plain"])[len(got["plain"]) // 2]
    ours = sorted(got["ours"])[len(got["ours"]) // 2]
    added = ours - plain
    share = added / got["validate_s"]
    print(f"{got['rows']:,} rows; batchcall validate took {got['validate_s']:.1f} s in all")
    print(f"{'reports pass (median of ' + str(args.repeat) + ')':<44}{'seconds':>10}")
    print(f"{'  baseline: the three CSVs':<44}{plain:>10.2f}")
    print(f"{'  batchcall: the CSVs + digest + report.html':<44}{ours:>10.2f}")
    print(f"{'  added by the report':<44}{added:>10.2f}   {share:.1%} of the validate (<= 5%)")
    print(f"{'report.html of the validate':<44}{got['page'] / 1024:>9.1f} KB (<= 1.5 MB)")
    print(f"{'report.html with 1M attempts over 14 h':<44}{got['sending_page'] / 1024:>9.1f} KB")
    ok = share <= 0.05 and max(got["page"], got["sending_page"]) <= 1.5 * 1024 * 1024
    print("targets met" if ok else "TARGETS MISSED")


if __name__ == "__main__":
    main()
