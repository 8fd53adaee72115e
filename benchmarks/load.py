"""Load benchmark: a 1M-row CSV and the same rows as an xlsx, beside pandas reading each.

    python benchmarks/load.py [--rows 1000000] [--repeat 3] [--input csv|xlsx]

It writes benchmarks/_data/contacts_<rows>.csv once (phone, names, one object column, times with
offsets; a few invalid rows and duplicates, as in real files), and contacts_<rows>.xlsx from it
(as Excel saves a sheet: shared strings, a zero-padded number format on digit-only phones), then
runs each measured thing in its own subprocess, `--repeat` times, and prints the medians: wall
time, the peak memory of that subprocess and all its children summed (sampled from /proc every
100 ms: RSS, which counts the pages a fork shares once in each process, and PSS, which splits
them, so that it adds up to what the tree holds) and, for batchcall, the time
from process start until the first row is planned (load+validate+plan) or until the first
request leaves (`run`, against a transport that answers 401, so the run stops there; `run vs a
sandbox`, the CLI against a sandbox in another process). The baseline is
`pandas.read_csv(dtype=str)` of the same file, which only reads it: no header mapping, no phone
parsing, no times; for the xlsx, `pandas.read_excel(engine="calamine", dtype=str)`. The runs of
each input are interleaved, and the ratio is a median over the baseline's median from the same
invocation.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data"
FROM = "+61291234567"
SCRIPT = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"

# Each measured thing is a snippet run by a fresh interpreter; it prints one JSON line.
_PRELUDE = """
import json, sys, time
started = float(sys.argv[2])
path = sys.argv[1]
"""
_EPILOGUE = """
# The memory is measured from outside, over the whole process tree (`_tree_peaks`).
print(json.dumps({"seconds": time.time() - started, "first": first,
                  "rows": rows}))
"""
SNIPPETS = {
    "batchcall load+validate+plan": f"""
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from batchcall._config import Settings
from batchcall._load import open_table
from batchcall._plan import plan
from batchcall._validate import Validator
settings = Settings(from_number="{FROM}", script_id="{SCRIPT}", timezone="Australia/Sydney")
table = open_table(Path(path), settings)
validator = Validator(table, settings, now=datetime.now(UTC))
first, outcomes = None, Counter()
for checked in plan(map(validator.check, table), allow_duplicates=False):
    if first is None and checked.request is not None:
        first = time.time() - started
    outcomes[checked.error_code or checked.outcome] += 1
rows = dict(outcomes)
""",
    "batchcall validate (runner, journal + report)": f"""
import tempfile
from batchcall import _runner as runner
with tempfile.TemporaryDirectory() as reports:
    summary = runner.validate(path, from_number="{FROM}", script_id="{SCRIPT}",
                              timezone="Australia/Sydney", reports_dir=reports)
first = None
rows = summary if isinstance(summary, dict) else getattr(summary, "__dict__", str(summary))
rows = {{k: v for k, v in dict(rows).items() if k in ("rows", "counts", "total")}}
""",
    "batchcall run, to its first request": f"""
import tempfile
import httpx
from batchcall import _runner as runner
from batchcall._errors import BatchCallError
first = None
class FirstRequest(httpx.AsyncBaseTransport):
    # Notes when the first request leaves, then answers 401 so the run stops right there.
    async def handle_async_request(self, request):
        global first
        if first is None:
            first = time.time() - started
        return httpx.Response(401, json={{"success": False, "message": "Invalid API key"}})
with tempfile.TemporaryDirectory() as reports:
    try:
        runner.run(path, api_key="benchmark", transport=FirstRequest(), from_number="{FROM}",
                   script_id="{SCRIPT}", timezone="Australia/Sydney", reports_dir=reports)
    except BatchCallError as exc:
        rows = type(exc).__name__
""",
    "batchcall run vs a sandbox, to its first call": f"""
import os, signal, subprocess, tempfile
from pathlib import Path
from batchcall.sandbox import SandboxConfig, start_sandbox
# A real run, as a user starts it: the CLI in its own process, against the sandbox (another
# process). `first` is when the sandbox has seen the first request, from the CLI's launch.
first = None
cli = str(Path(sys.executable).with_name("batchcall"))
with start_sandbox(SandboxConfig(limit=50, window=1.0), subprocess=True) as server, \
        tempfile.TemporaryDirectory() as reports:
    env = dict(os.environ, VOXWORKS_API_KEY=server.api_key)
    started = time.time()
    proc = subprocess.Popen([cli, "run", path, "--from-number", "{FROM}", "--script-id",
                             "{SCRIPT}", "--base-url", server.base_url, "--reports-dir", reports,
                             "--quiet"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    while first is None and time.time() - started < 30:
        if server.stats()["requests"]:
            first = time.time() - started
        else:
            time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    proc.wait(60)
rows = {{"exit_code": proc.returncode}}
""",
    "pandas.read_csv(dtype=str)": """
import pandas as pd
frame = pd.read_csv(path, dtype=str, keep_default_na=False)
first, rows = None, len(frame)
""",
    "pandas.read_excel(engine='calamine')": """
import pandas as pd
frame = pd.read_excel(path, engine="calamine", dtype=str, keep_default_na=False)
first, rows = None, len(frame)
""",
}
# What is measured on which input; the last of each is the baseline its ratios are over.
PLAN = {
    "csv": (
        "batchcall load+validate+plan",
        "batchcall validate (runner, journal + report)",
        "batchcall run, to its first request",
        "batchcall run vs a sandbox, to its first call",
        "pandas.read_csv(dtype=str)",
    ),
    "xlsx": (
        "batchcall validate (runner, journal + report)",
        "batchcall run vs a sandbox, to its first call",
        "pandas.read_excel(engine='calamine')",
    ),
}


def generate(path: Path, rows: int) -> None:
    """A realistic campaign file: AU mobiles in mixed formats, times with offsets, some junk."""
    rng = random.Random(20260301)
    first_names = ["Zoë", "José", "Ann", "Bob", "Li", "Ngaio", "Priya", "Tom", "Émile", "Kate"]
    last_names = ["O'Brien", "Müller", "Nguyen", "Smith", "Singh", "Brown", "Wilson", "Lee"]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["phone", "first_name", "last_name", "policy.number", "scheduled_time"])
        for n in range(rows):
            digits = f"4{n % 100_000_000:08d}"
            style = n % 4
            if style == 0:
                phone = f"+61{digits}"
            elif style == 1:
                phone = f"0{digits[:3]} {digits[3:6]} {digits[6:]}"
            elif style == 2:
                phone = f"+61 {digits[:3]} {digits[3:6]} {digits[6:]}"
            else:
                phone = f"0{digits}"
            if n % 1000 == 7:
                phone = "4.29E+08"  # Excel damage
            elif n % 1000 == 13:
                phone = "12345"
            day, minute = 1 + n % 28, (n * 7) % 600
            offset = "+11:00" if n % 3 else "+10:00"
            when = f"2030-03-{day:02d}T{9 + minute // 60:02d}:{minute % 60:02d}:00{offset}"
            writer.writerow(
                [
                    phone,
                    rng.choice(first_names),
                    rng.choice(last_names),
                    f"P-{n:07d}",
                    when,
                ]
            )
    tmp.replace(path)


def generate_xlsx(source: Path, path: Path) -> None:
    """The CSV as Excel saves it: every text in the shared-string table (in order of first use),
    and the phones typed as digits with a leading zero kept by a `0000000000` number format, as
    a sheet whose phone column was formatted that way stores them. Written by hand, streamed:
    openpyxl's write-only mode writes inline strings, which Excel itself never does."""
    strings: dict[str, int] = {}
    sheet = path.with_suffix(".sheet.tmp")

    def shared(text: str) -> str:
        index = strings.setdefault(text, len(strings))
        return f"<v>{index}</v>"

    with source.open(encoding="utf-8", newline="") as fh, sheet.open("w", encoding="utf-8") as out:
        out.write(
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns='
            '"http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
        )
        for number, record in enumerate(csv.reader(fh), 1):
            cells = []
            for column, text in enumerate(record):
                ref = f"{'ABCDE'[column]}{number}"
                if column == 0 and len(text) == 10 and text.isdigit() and text[0] == "0":
                    cells.append(f'<c r="{ref}" s="1"><v>{int(text)}</v></c>')
                else:
                    cells.append(f'<c r="{ref}" t="s">{shared(escape(text))}</c>')
            out.write(f'<row r="{number}">{"".join(cells)}</row>')
        out.write("</sheetData></worksheet>")
    with zipfile.ZipFile(path.with_suffix(".tmp"), "w", zipfile.ZIP_DEFLATED) as book:
        for name, text in _XLSX_PARTS.items():
            book.writestr(name, text)
        book.write(sheet, "xl/worksheets/sheet1.xml")
        with book.open("xl/sharedStrings.xml", "w", force_zip64=True) as table:
            table.write(
                f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<sst xmlns='
                f'"http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
                f'uniqueCount="{len(strings)}">'.encode()
            )
            for text in strings:
                table.write(f"<si><t>{text}</t></si>".encode())
            table.write(b"</sst>")
    sheet.unlink()
    path.with_suffix(".tmp").replace(path)


_NS = "http://schemas.openxmlformats.org"
_XLSX_PARTS = {
    "[Content_Types].xml": (
        f'<Types xmlns="{_NS}/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
        'officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/'
        'sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.'
        'worksheet+xml"/><Override PartName="/xl/sharedStrings.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/><Override '
        'PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.'
        'spreadsheetml.styles+xml"/></Types>'
    ),
    "_rels/.rels": (
        f'<Relationships xmlns="{_NS}/package/2006/relationships"><Relationship Id="rId1" '
        f'Type="{_NS}/officeDocument/2006/relationships/officeDocument" '
        'Target="xl/workbook.xml"/></Relationships>'
    ),
    "xl/workbook.xml": (
        f'<workbook xmlns="{_NS}/spreadsheetml/2006/main" xmlns:r="{_NS}/officeDocument/2006/'
        'relationships"><sheets><sheet name="Contacts" sheetId="1" r:id="rId1"/></sheets>'
        "</workbook>"
    ),
    "xl/_rels/workbook.xml.rels": (
        f'<Relationships xmlns="{_NS}/package/2006/relationships">'
        f'<Relationship Id="rId1" Type="{_NS}/officeDocument/2006/relationships/worksheet" '
        'Target="worksheets/sheet1.xml"/>'
        f'<Relationship Id="rId2" Type="{_NS}/officeDocument/2006/relationships/sharedStrings" '
        'Target="sharedStrings.xml"/>'
        f'<Relationship Id="rId3" Type="{_NS}/officeDocument/2006/relationships/styles" '
        'Target="styles.xml"/></Relationships>'
    ),
    "xl/styles.xml": (
        f'<styleSheet xmlns="{_NS}/spreadsheetml/2006/main"><numFmts count="1"><numFmt '
        'numFmtId="164" formatCode="0000000000"/></numFmts><cellXfs count="2"><xf numFmtId="0"/>'
        '<xf numFmtId="164" applyNumberFormat="1"/></cellXfs></styleSheet>'
    ),
}


def measure(name: str, path: Path) -> dict[str, object]:
    code = _PRELUDE + SNIPPETS[name] + _EPILOGUE
    started = time.time()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(
            [sys.executable, "-c", code, str(path), repr(started)],
            stdout=out,
            stderr=err,
            text=True,
            cwd=tempfile.gettempdir(),
        )
        peaks = _tree_peaks(process)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode != 0:
        raise SystemExit(f"{name} failed:\n{stderr[-2000:]}")
    found = json.loads(stdout.strip().splitlines()[-1])
    found["tree_rss_mb"], found["tree_pss_mb"] = peaks
    return dict(found)


def _tree_peaks(process: subprocess.Popen[str]) -> tuple[float, float]:
    """Until `process` ends, every 100 ms: the resident memory of it and all its descendants,
    summed, as RSS (each process's whole resident set: pages a fork shares are counted in
    each) and as PSS (a shared page split between the processes sharing it: what the tree
    holds). The peak of each, in MB."""
    rss = pss = 0
    while process.poll() is None:
        pids = _tree(process.pid)
        rss = max(rss, sum(_kb(pid, "status", "VmRSS:") for pid in pids))
        pss = max(pss, sum(_kb(pid, "smaps_rollup", "Pss:") for pid in pids))
        time.sleep(0.1)  # reading smaps_rollup walks the page tables: not too often
    return rss / 1024, pss / 1024


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    parent = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
            children.setdefault(parent, []).append(int(entry))
    found = [root]
    for pid in found:
        found.extend(children.get(pid, ()))
    return found


def _kb(pid: int, name: str, key: str) -> int:
    try:
        with open(f"/proc/{pid}/{name}") as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass  # ended meanwhile
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=sorted(SNIPPETS), action="append")
    parser.add_argument("--input", choices=sorted(PLAN), action="append")
    args = parser.parse_args()
    # The runs call the same phones again and again: give them a throwaway contact ledger, never
    # the user's own (children inherit it).
    os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="batchcall-bench-state-")
    source = DATA / f"contacts_{args.rows}.csv"
    if not source.exists():
        print(f"generating {source} ...", file=sys.stderr)
        generate(source, args.rows)
    print(f"{args.rows:,} rows; medians of {args.repeat} runs; ratio: seconds over the baseline's")
    print(
        f"{'input':<10} {'what':<46} {'seconds':>8} {'ratio':>6} {'sum RSS MB':>11}"
        f" {'sum PSS MB':>11} {'first s':>8}"
    )
    for kind in args.input or PLAN:
        path = source if kind == "csv" else source.with_suffix(".xlsx")
        if not path.exists():
            print(f"generating {path} ...", file=sys.stderr)
            generate_xlsx(source, path)
        names = [n for n in PLAN[kind] if not args.only or n in args.only or n == PLAN[kind][-1]]
        # Interleaved, so that load from other users of the machine falls on both alike.
        runs: dict[str, list[dict[str, object]]] = {name: [] for name in names}
        for _ in range(args.repeat):
            for name in names:
                runs[name].append(measure(name, path))
        base = statistics.median(float(r["seconds"]) for r in runs[names[-1]])  # type: ignore[arg-type]
        size = f"{path.suffix[1:]} {path.stat().st_size / 1e6:.0f}MB"
        for name in names:
            print(_line(size, name, runs[name], base))
            print(f"  rows: {runs[name][-1]['rows']}", file=sys.stderr)


def _line(size: str, name: str, runs: list[dict[str, object]], base: float) -> str:
    def median(key: str) -> float:
        return statistics.median(float(r[key]) for r in runs)  # type: ignore[arg-type]

    seconds, rss, pss = median("seconds"), median("tree_rss_mb"), median("tree_pss_mb")
    firsts = [float(r["first"]) for r in runs if r["first"] is not None]  # type: ignore[arg-type]
    first = f"{statistics.median(firsts):.2f}" if firsts else "-"
    return (
        f"{size:<10} {name:<46} {seconds:>8.1f} {seconds / base:>6.2f} {rss:>11.0f} {pss:>11.0f}"
        f" {first:>8}"
    )


if __name__ == "__main__":
    main()
