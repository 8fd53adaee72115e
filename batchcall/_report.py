"""Reports, always rebuilt from the journal: results.csv, failed.csv, skipped.csv, the run's
Summary (summary.json, and what --json prints) and report.html (`_html`), all from one pass
over the journal's rows.

Each file is written to a temporary name in the run directory and renamed over the old one, so
a reader (or a crash) never sees half a report.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from ._csvsafe import neutralise_all
from ._digest import digest_for
from ._journal import FAILED_STATES, SKIPPED_STATES, UNFINISHED, Journal, ReportRow, State
from ._load import SHEET_SUFFIXES
from ._models import RESULT_COLUMNS
from ._timeline import Timeline

if TYPE_CHECKING:
    from ._dispatch import SendStats
    from ._writer import ReportWriter

log = logging.getLogger("batchcall")


@contextmanager
def atomic_writer(path: Path, *, newline: str | None = None):  # type: ignore[no-untyped-def]
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


REPORT_FILES = ("results.csv", "failed.csv", "skipped.csv")
# In a dry run nothing is sent, so a row the journal holds as `pending` is simply valid.
DRY_RUN_NAMES: dict[State, str] = {"pending": "valid"}

# The order a summary lists its counts in: what got through, what is left, what went wrong.
COUNT_ORDER: tuple[State | Literal["valid"], ...] = (
    "scheduled",
    "valid",
    "pending",
    "duplicate",
    "already_scheduled",
    "suppressed",
    "frequency_capped",
    "invalid",
    "failed",
    "unknown",
    "sending",
)


def _cells(header_width: int, r: ReportRow, names: dict[State, str]) -> list[str]:
    # Rows shorter than the header (ragged CSV) are padded so columns stay aligned.
    cells = list(r.cells[:header_width])
    if len(cells) < header_width:
        cells.extend([""] * (header_width - len(cells)))
    cells.extend(
        (
            str(r.row),
            names.get(r.state, r.state),
            r.call_id or "",
            r.contact_id or "",
            "" if r.http_status is None else str(r.http_status),
            r.error_code or "",
            r.error or "",
            str(r.attempts),
            r.phone_e164 or "",
            r.scheduled_time_sent or "",
            "yes" if r.time_moved else "",
            r.window_rule or "",
        )
    )
    return cells


def write_results(
    run_dir: Path,
    header: Sequence[str],
    rows: Iterable[ReportRow],
    *,
    dry_run: bool = False,
    workbook: bool = False,
) -> tuple[Path, Path]:
    """Write results.csv (every row), failed.csv (the rows to fix and run again) and
    skipped.csv (the rows a policy skipped: duplicates, and the contact ledger's skips);
    returns the first two. With `workbook` (the input was one), failed.xlsx too, beside
    failed.csv (see `_FailedBook`)."""
    width = len(header)
    names = DRY_RUN_NAMES if dry_run else {}
    lines = ((r.state, _cells(width, r, names)) for r in rows)
    return write_lines(run_dir, header, lines, workbook=workbook)


def write_lines(
    run_dir: Path,
    header: Sequence[str],
    lines: Iterable[tuple[State, list[str]]],
    *,
    workbook: bool = False,
) -> tuple[Path, Path]:
    """`write_results` of rows already made lines: each row's state and its cells, the
    outcome columns included (`_cells`, or `Journal.result_lines`)."""
    parts = write_part(run_dir, header, lines, workbook=workbook, first=True)
    return publish(run_dir, [parts])


def write_part(
    run_dir: Path,
    header: Sequence[str],
    lines: Iterable[tuple[State, list[str]]],
    *,
    workbook: bool = False,
    first: bool = True,
) -> list[str]:
    """Some rows' share of results.csv, failed.csv and skipped.csv, each in a temporary file
    of the run directory, flushed to the disk: their paths, in REPORT_FILES' order, for
    `publish`. The `first` part begins with the BOM and the header; the others follow it."""
    made: list[str] = []
    try:
        handles = [_part_file(run_dir / name, made) for name in REPORT_FILES]
        with (
            handles[0] as out_all,
            handles[1] as out_bad,
            handles[2] as out_skipped,
            _FailedBook(run_dir / FAILED_XLSX) if workbook else nullcontext() as book,
        ):
            outs = (out_all, out_bad, out_skipped)
            _write_part_lines(outs, list(header) if first else None, lines, book)
            for handle in outs:
                handle.flush()
                os.fsync(handle.fileno())
    except BaseException:
        for tmp in made:
            Path(tmp).unlink(missing_ok=True)
        raise
    return made


def _part_file(path: Path, made: list[str]) -> IO[str]:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    made.append(tmp)
    return os.fdopen(fd, "w", encoding="utf-8", newline="")


def _write_part_lines(
    outs: Sequence[IO[str]],
    header: list[str] | None,
    lines: Iterable[tuple[State, list[str]]],
    book: _FailedBook | None,
) -> None:
    # Every cell quoted: no list separator (`,`, `;`, tab) can split a formula out of one.
    writers = [csv.writer(handle, quoting=csv.QUOTE_ALL) for handle in outs]
    if header is not None:
        columns = header + list(RESULT_COLUMNS)
        for handle, writer in zip(outs, writers, strict=True):
            # utf-8-sig: Excel opens a BOM-less UTF-8 CSV as cp1252 and garbles non-ASCII names.
            _bom(handle)
            writer.writerow(neutralise_all(columns))
        if book is not None:
            book.append(columns)
    write_all, write_bad, write_skipped = (writer.writerow for writer in writers)
    for state, cells in lines:
        line = neutralise_all(cells)
        write_all(line)
        if state in FAILED_STATES:
            write_bad(line)
            if book is not None:
                book.append(cells)
        elif state in SKIPPED_STATES:
            write_skipped(line)


def publish(run_dir: Path, parts: Sequence[Sequence[str]]) -> tuple[Path, Path]:
    """Put the parts `write_part` wrote, in order, in place of results.csv, failed.csv and
    skipped.csv: the later parts are appended to the first, which is flushed and renamed over
    the old file. Returns the paths of results.csv and failed.csv. The parts are removed
    whatever happens."""
    finals = [run_dir / name for name in REPORT_FILES]
    try:
        for index, final in enumerate(finals):
            head, *rest = (part[index] for part in parts)
            if rest:
                _append(head, rest)
            os.replace(head, final)
    finally:
        for part in parts:
            for tmp in part:
                Path(tmp).unlink(missing_ok=True)
    return finals[0], finals[1]


def _append(head: str, rest: Iterable[str]) -> None:
    with open(head, "ab") as out:
        for tmp in rest:
            with open(tmp, "rb") as part:
                shutil.copyfileobj(part, out, 1 << 20)
        out.flush()
        os.fsync(out.fileno())


FAILED_XLSX = "failed.xlsx"
# Characters an XLSX cannot hold (XML 1.0 forbids them), written as Excel's own _xHHHH_.
_NOT_IN_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


class _FailedBook:
    """failed.xlsx, streamed (openpyxl's write-only mode keeps one row in memory).

    Every cell is a text cell in the Text format (`@`): Excel keeps a phone's leading zero,
    shows `=1+1` as those characters and never evaluates a cell, and a cell edited later stays
    text. So, unlike the CSVs, no cell needs an apostrophe: each holds exactly what the input
    did. Written to a temporary name and renamed, like the CSVs.
    """

    def __init__(self, path: Path) -> None:
        from openpyxl import Workbook  # deferred: only a workbook's run writes failed.xlsx

        self._path = path
        self._book = Workbook(write_only=True)
        self._sheet = self._book.create_sheet("Failed")

    def __enter__(self) -> _FailedBook:
        return self

    def append(self, cells: Sequence[str]) -> None:
        from openpyxl.cell import WriteOnlyCell

        row = []
        for text in cells:
            cell = WriteOnlyCell(self._sheet, value=_NOT_IN_XML.sub(_escape_x, text))
            cell.data_type = "s"  # never "f": openpyxl reads a leading "=" as a formula
            cell.number_format = "@"
            row.append(cell)
        self._sheet.append(row)

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is not None:
            self._book.close()
            return
        fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=f".{self._path.name}.")
        os.close(fd)
        try:
            self._book.save(tmp)
            os.replace(tmp, self._path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _escape_x(match: re.Match[str]) -> str:
    return f"_x{ord(match.group()):04X}_"


def _bom(handle: IO[str]) -> None:
    handle.write("\ufeff")


def write_summary(run_dir: Path, summary: dict[str, Any]) -> Path:
    path = run_dir / "summary.json"
    with atomic_writer(path) as out:
        json.dump(summary, out, indent=2, sort_keys=True)
        out.write("\n")
    return path


# What report.html reads of the journal's meta.
PAGE_META = (
    "settings", "dry_run", "sandbox", "input", "input_sha256", "timezone_column", "report_unmasked",
)  # fmt: skip


def write_reports(
    run_dir: Path,
    journal: Journal,
    summary: Callable[[], dict[str, Any]],
    writer: ReportWriter | None = None,
) -> dict[str, Any] | None:
    """Every report, from one pass over the journal's rows (two with a `writer`: the CSVs in
    its process, the digest in this one); returns a dry run's plan (which summary.json holds
    too), else None."""
    from ._html import write_html  # the page is built on this module's writers

    header = journal.meta("header", [])
    meta = {key: journal.meta(key) for key in PAGE_META}
    digest = digest_for(meta, datetime.now(UTC))
    dry_run = bool(meta["dry_run"])
    workbook = Path(meta["input"] or "").suffix.lower() in SHEET_SUFFIXES
    if writer is None:
        rows = digest.tee(journal.report_rows())
        write_results(run_dir, header, rows, dry_run=dry_run, workbook=workbook)
    else:
        journal.commit()  # the writer reads what is on the disk
        writer.write(
            run_dir,
            journal.path,
            header,
            dry_run=dry_run,
            workbook=workbook,
            last_row=journal.last_row(),
            digest=(meta, digest.now),
        )
        for part in writer.wait():
            digest.merge(part)
    data = summary()
    plan = digest.plan((meta["settings"] or {}).get("max_rate")) if meta["dry_run"] else None
    if plan is not None:
        data["plan"] = plan
    write_summary(run_dir, data)
    timeline = Timeline.from_dict(journal.meta("timeline"))
    try:
        write_html(run_dir / "report.html", data, meta, digest, timeline)
    except OSError:
        raise  # a full disk is the runner's to report
    except Exception as exc:
        # The page is a view of the CSVs and summary.json already written: a fault in it must
        # not turn a finished run into a traceback.
        log.warning("report.html could not be written: %s", exc)
    return plan


@dataclass(frozen=True)
class Summary:
    """What a run did, built once when it ends. `to_dict()` is what --json prints and
    summary.json holds, key for key.

    command       the command that made it: run, validate, resume, retry or status
    run_dir       the run directory
    input         the input file's absolute path, as recorded when the run started
    total         rows in the journal
    counts        rows by outcome (the journal's states; a dry run says "valid" for "pending")
    errors        rows not scheduled, by error code
    exit_code     the process's exit code: 0 every row done (scheduled, or skipped by a
                  policy), 1 some rows invalid, failed or unknown, 3 rows left unsent or
                  aborted (401, TLS, the breaker, a full disk, the ledger), 130 interrupted
                  (143 by SIGTERM, 129 by SIGHUP)
    started_at    when this pass started (UTC, ISO 8601, to the second)
    finished_at   when this pass ended (UTC, ISO 8601, to the second)
    seconds       how long this pass took
    requests      HTTP requests the gate admitted in this pass, every attempt counted
    throttled     answers that were 429 (rate limited) in this pass
    rate          rows answered per second, first request to last answer; None if none were
    limiter       what the gate measured: requests, throttled, and once known kind, limit,
                  window or refill, achieved_rate and latency, with `sources` saying of each
                  whether it was observed or inferred; {} when nothing could be sent
    results_csv   the path of results.csv: every row, in input order, with its outcome
    failed_csv    the path of failed.csv: the invalid, failed and unknown rows, to fix and rerun
    skipped_csv   the path of skipped.csv: the rows skipped by a policy (duplicate, and the
                  contact ledger's suppressed, already_scheduled and frequency_capped)
    report_html   the path of report.html: the run on one page, charts included, phones masked
    plan          validate's pre-flight plan, else None: calls, sending_seconds at rate
                  (--max-rate, else an assumed 10/s; rate_given says which), last_ring (UTC),
                  moved_by_window, moved_by_cap, by_local_hour (24 counts), by_local_day
    message       why the run stopped early (an abort's message, or "interrupted"), else None
    """

    command: str
    run_dir: str
    input: str | None
    total: int
    counts: dict[str, int]
    errors: dict[str, int]
    exit_code: int
    started_at: str
    finished_at: str
    seconds: float
    requests: int = 0
    throttled: int = 0
    rate: float | None = None
    limiter: dict[str, Any] = field(default_factory=dict)
    results_csv: str | None = None
    failed_csv: str | None = None
    skipped_csv: str | None = None
    report_html: str | None = None
    plan: dict[str, Any] | None = None
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def exit_code_for(counts: Mapping[State, int], *, dry_run: bool = False) -> int:
    # In a dry run, `pending` means "valid, would be sent".
    if not dry_run and any(counts.get(s, 0) for s in UNFINISHED):
        return 3
    if any(counts.get(s, 0) for s in FAILED_STATES):
        return 1
    return 0


def summarise(
    command: str,
    run_dir: Path,
    journal: Journal,
    stats: SendStats,
    *,
    requests: int = 0,
    throttled: int = 0,
    limiter: dict[str, Any] | None = None,
) -> Summary:
    """The run's summary, counted from the journal (the source of truth) and `stats`."""
    states = journal.counts()
    dry_run = bool(journal.meta("dry_run"))
    names = DRY_RUN_NAMES if dry_run else {}
    counts = {names.get(state, state): n for state, n in states.items()}
    seconds = time.monotonic() - stats.started
    return Summary(
        command=command,
        run_dir=str(run_dir),
        input=journal.meta("input"),
        total=sum(counts.values()),
        counts=counts,
        errors=journal.error_counts(),
        exit_code=exit_code_for(states, dry_run=dry_run),
        started_at=stats.started_at,
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
        seconds=round(seconds, 3),
        requests=requests,
        throttled=throttled,
        rate=stats.rate(),
        limiter=limiter or {},
        results_csv=str(run_dir / "results.csv"),
        failed_csv=str(run_dir / "failed.csv"),
        skipped_csv=str(run_dir / "skipped.csv"),
        report_html=str(run_dir / "report.html"),
    )
