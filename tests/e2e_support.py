"""Plain helpers shared by the tests and the benchmarks: the team, contact files, the command line.

benchmarks/ imports this module too, so it holds no pytest fixtures; those are in conftest.py.
Everything here is what a user would touch: the installed `batchcall` script run in a child
process with a clean environment, contact files as an operator exports them, and results.csv
read back as values.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import httpx
import phonenumbers

import batchcall.sandbox
from batchcall._csvsafe import restore

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SAMPLE = ROOT / "sample_data" / "contacts.csv"
# The vendor's OpenAPI document, as the sandbox ships it.
SPEC = Path(batchcall.sandbox.__file__).with_name("openapi.yaml")
# The console script installed beside this interpreter: what a user's shell would run.
BATCHCALL = str(Path(sys.executable).with_name("batchcall"))
FROM = "+61291234567"
SCRIPT = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"
TEAM = ["--from-number", FROM, "--script-id", SCRIPT]

# The year the committed sample and fixture files schedule their calls in.
FILES_YEAR = 2030
# A year whose March is always more than a year after the clock the tests run on, whatever
# the real date: files are copied with their dates moved into it (see `with_future_dates`).
FUTURE_YEAR = datetime.now(UTC).year + 2

# `.ci/run` sets this to the real date for its second pass, run under `faketime -f +365d`;
# read once here because each test's own environment is scrubbed of BATCHCALL_* (conftest.py).
_CLOCK_AHEAD = os.environ.get("BATCHCALL_TEST_CLOCK_AHEAD")
CLOCK_AHEAD_OF: date | None = date.fromisoformat(_CLOCK_AHEAD) if _CLOCK_AHEAD else None
AHEAD = timedelta(days=365)

# Settings a developer's shell or a CI job may carry; none of them may reach a test's child.
SCRUBBED_PREFIXES = ("BATCHCALL_", "VOXWORKS_")


def scrubbed_env(key: str | None = None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without any BATCHCALL_* or VOXWORKS_* variable, plus the key and `extra`.

    Everything else passes through, faketime's LD_PRELOAD included, so a child shares the
    suite's clock.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES)}
    if key is not None:
        env["VOXWORKS_API_KEY"] = key
    env.update(extra or {})
    return env


def cli(
    *args: str | Path,
    cwd: Path,
    key: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
    umask: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the installed `batchcall` script in a child process, as a user's shell would."""
    return subprocess.run(
        [BATCHCALL, *map(str, args)],
        cwd=cwd,
        env=scrubbed_env(key, env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        preexec_fn=None if umask is None else (lambda: os.umask(umask)),
    )


def popen(
    *args: str | Path, cwd: Path, key: str | None = None, env: Mapping[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start the installed `batchcall` script and return at once, its output on pipes."""
    return subprocess.Popen(
        [BATCHCALL, *map(str, args)],
        cwd=cwd,
        env=scrubbed_env(key, env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def python(
    code: str, *args: str | Path, cwd: Path, key: str | None = None
) -> subprocess.Popen[str]:
    """Start `python -c CODE ARGS` in the same clean environment as `popen`."""
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        cwd=cwd,
        env=scrubbed_env(key),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(
    condition: Callable[[], object],
    *,
    what: str,
    timeout: float = 60.0,
    process: subprocess.Popen[str] | None = None,
) -> None:
    """Poll `condition` until it holds; fail, naming `what`, after `timeout` seconds or as soon
    as `process` ends (with its output, which says why)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            _out, err = process.communicate()
            raise AssertionError(f"the child exited {process.returncode} before {what}:\n{err}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout:.0f} s")
        time.sleep(0.02)  # the poll interval: a child process's pace, not a unit's


def read_line(stream: IO[str], *, timeout: float = 60.0) -> str:
    """The next line a child writes on `stream`, waiting at most `timeout` seconds for it.

    A thread does the reading, since a line may already sit in the stream's buffer, where
    select() on the pipe cannot see it.
    """
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert line, f"no line on the pipe within {timeout:.0f} s"
    return line[0]


def the_run_dir(reports: Path) -> Path:
    """The one run directory under `reports`."""
    (run_dir,) = [p for p in reports.iterdir() if p.is_dir()]
    return run_dir


def au_mobiles(count: int, *, start: int = 0) -> list[str]:
    """`count` distinct valid Australian mobiles in E.164."""
    out: list[str] = []
    n = start
    while len(out) < count:
        candidate = f"+6141{n:07d}"
        n += 1
        if phonenumbers.is_valid_number(phonenumbers.parse(candidate)):
            out.append(candidate)
    return out


def write_contacts(path: Path, phones: list[str], *, national: bool = True) -> Path:
    """A contacts CSV as an operator would export it: national numbers, names, an object."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["First Name", "Last Name", "Mobile", "policy.number"])
        for i, phone in enumerate(phones, 1):
            shown = "0" + phone[3:] if national else phone
            writer.writerow([f"Name{i}", f"Surname{i}", shown, f"POL-{i:05d}"])
    return path


def with_future_dates(source: Path, directory: Path) -> Path:
    """A copy of a committed sample or fixture file in `directory`, under the same name, with
    its FILES_YEAR dates moved to FUTURE_YEAR, so its calls stay in the future on any clock.

    Only the year changes. Every call the files schedule is in early March, when Sydney is on
    daylight time in any year, so each time still gives the same UTC time of day in its new
    year. Dates in other years (the rows meant to be in the past) stay as they are.
    """
    target = directory / source.name
    if source.suffix == ".xlsx":
        import openpyxl

        book = openpyxl.load_workbook(source)
        for sheet in book.worksheets:
            for row in sheet.iter_rows():
                for cell in row:
                    if isinstance(cell.value, datetime) and cell.value.year == FILES_YEAR:
                        cell.value = cell.value.replace(year=FUTURE_YEAR)
                    elif isinstance(cell.value, str):
                        cell.value = cell.value.replace(str(FILES_YEAR), str(FUTURE_YEAR))
        book.save(target)
    else:
        # Byte for byte otherwise: the encoding, BOM and line ends are what is under test.
        data = source.read_bytes()
        target.write_bytes(data.replace(str(FILES_YEAR).encode(), str(FUTURE_YEAR).encode()))
    return target


def in_future_year(text: str) -> str:
    """`text` (an expected time) with FILES_YEAR moved to FUTURE_YEAR, as `with_future_dates`."""
    return text.replace(str(FILES_YEAR), str(FUTURE_YEAR))


def read_results(path: Path) -> list[dict[str, str]]:
    """A results.csv as values: the formula guard's apostrophes taken off again."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        return [{k: restore(v) for k, v in row.items()} for row in csv.DictReader(f)]


class RecordingTransport(httpx.AsyncHTTPTransport):
    """The real transport, keeping a copy of every request body that left."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[httpx.Headers] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(json.loads(request.content))
        self.headers.append(request.headers)
        return await super().handle_async_request(request)


def us_fall_back(after: date) -> date:
    """The first Sunday of November (US clocks go back an hour) at least a week after `after`."""
    year = after.year
    while True:
        first = date(year, 11, 1)
        sunday = first + timedelta(days=(6 - first.weekday()) % 7)
        if sunday >= after + timedelta(days=7):
            return sunday
        year += 1
