"""results.csv, failed.csv and skipped.csv of a big run, written by forked children, which
also gather report.html's digest of their rows: both cores for the reports' pass.

The children are forked before the input is loaded, while this process is still small (a fork
copies the resident memory of its parent, which grows as a million rows are loaded). For a big
text input they first check their shares of it (`prepare.striped_work`), sending the chunks on
the pipes of `checking` for `prepare.Prepared`: one pair of processes for both jobs, where two
pairs would each hold a copy of the interpreter. Then they wait until `write` hands them the
run's directory and journal. Each opens the journal itself,
read-only (no SQLite connection crosses a fork), and writes the lines of its own range of rows
as `report.write_part` always does, each file to a temporary name, flushed to the disk; the
first child's part carries the header. `wait` returns once every part is written and
`report.publish` has joined them in order and renamed them into place, or raises what stopped
them: a child's own error (a full disk stays an `OSError`, for the runner to report as such),
or `ReportsError` when a child ended without a word. Every temporary file is then removed, so a
half-written report is never left behind. A workbook's failed.xlsx is written in one piece, so
a workbook's reports are written by the first child alone.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import traceback
from collections.abc import Iterator
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NoReturn

from ._digest import Digest, Tally
from ._errors import BatchCallError
from ._journal import JournalReader
from ._prepare import run_child, widen
from ._report import FAILED_XLSX, REPORT_FILES, publish, write_part

# Inputs at least this big get writer children (a smaller run's reports take a moment).
WRITER_MIN_BYTES = 4 * 1024 * 1024
# Children that share the writing, each a contiguous range of rows.
PARTS = 2


class ReportsError(BatchCallError):
    """A child writing the CSV reports ended without writing them."""


def _serve(
    conn: Connection,
    parents: list[Connection],
    checks: Iterator[Any] | None = None,
    plan_conn: Connection | None = None,
) -> None:
    # The parent decides how a run stops: Ctrl-C in the terminal must not end the writer.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for end in parents:
        end.close()  # these copies would keep the pipes open when the parent closes its own
    if checks is not None and plan_conn is not None:
        run_child(checks, plan_conn)  # this child's share of the checking, first
    try:
        job = conn.recv()
    except (EOFError, OSError):
        return  # the parent went away, or never needed the reports written here
    try:
        if job is not None:
            conn.send(("done", _write(**job)))
    except BaseException as exc:
        with contextlib.suppress(Exception):
            conn.send(("error", _portable(exc)))
    finally:
        conn.close()


def _write(
    run_dir: Path,
    journal: Path,
    header: list[str],
    dry_run: bool,
    workbook: bool,
    rows: tuple[int, int],
    first: bool,
    digest: tuple[dict[str, Any], datetime] | None = None,
) -> tuple[list[str], Digest | None]:
    """This child's part of the reports, and with `digest` (the run's meta and the report's
    now), what the report's digest needs of the same rows."""
    with JournalReader(journal) as reader:
        if digest is None:
            lines = reader.result_lines(len(header), dry_run=dry_run, rows=rows)
            return write_part(run_dir, header, lines, workbook=workbook, first=first), None
        tally = Tally(len(header), *digest)
        moved = reader.result_lines(len(header), dry_run=dry_run, rows=rows, moved=True)
        parts = write_part(run_dir, header, tally.tee(moved), workbook=workbook, first=first)
        return parts, tally.digest()


def _portable(exc: BaseException) -> tuple[BaseException | None, str]:
    """The exception, when it survives pickling (an OSError does, errno and all), and its
    traceback as text either way."""
    text = traceback.format_exc()
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return None, text
    return exc, text


def ranges(last_row: int, parts: int) -> list[tuple[int, int]]:
    """Rows 1..`last_row` in `parts` contiguous ranges (the first takes anything before 1),
    the last open-ended."""
    size = -(-max(last_row, 1) // parts)
    bounds = [(k * size + 1, (k + 1) * size) for k in range(parts)]
    bounds[0] = (-(2**63), bounds[0][1])
    bounds[-1] = (bounds[-1][0], 2**63 - 1)
    return bounds


class ReportWriter:
    """Forked children that write a run's CSV reports when asked. `close()` it in any case."""

    def __init__(self, parts: int = PARTS, checks: list[Iterator[Any]] | None = None) -> None:
        """With `checks` (`prepare.striped_work`), one child for each, which first checks
        its share of the input, sending on a pipe of `checking`, then writes its part of
        the reports: two processes where four would each hold a copy of the interpreter."""
        context = multiprocessing.get_context("fork")
        parts = len(checks) if checks else parts
        # Every pipe before any fork, so that each child can close every parent's end.
        pipes = [context.Pipe() for _ in range(parts)]
        plans = [context.Pipe(duplex=False) for _ in range(len(checks or ()))]
        parents = [conn for conn, _ in pipes] + [receiver for receiver, _ in plans]
        self._conns = [conn for conn, _ in pipes]
        self.checking = [receiver for receiver, _ in plans]
        self._processes: list[Any] = []
        for index, (_, child_end) in enumerate(pipes):
            work = (checks[index], plans[index][1]) if checks else ()
            # The other children's ends too: a copy here would hide a sibling's death.
            others = [end for _, end in pipes + plans if end not in (child_end, *work[1:])]
            process = context.Process(
                target=_serve, args=(child_end, parents + others, *work),
                name="batchcall-reports", daemon=True,
            )  # fmt: skip
            process.start()
            self._processes.append(process)
        for _, child_end in pipes + plans:
            child_end.close()
        for receiver in self.checking:
            widen(receiver)
        self._run_dir: Path | None = None
        self._asked = 0

    @classmethod
    def start(
        cls, size_hint: int, checks: list[Iterator[Any]] | None = None
    ) -> ReportWriter | None:
        """A writer for an input of `size_hint` bytes; None for a small one, or where
        processes cannot be forked (the reports are then written in this process)."""
        if size_hint < WRITER_MIN_BYTES or "fork" not in multiprocessing.get_all_start_methods():
            return None
        return cls(checks=checks)

    def write(
        self,
        run_dir: Path,
        journal: Path,
        header: list[str],
        *,
        dry_run: bool,
        workbook: bool,
        last_row: int = 0,
        digest: tuple[dict[str, Any], datetime] | None = None,
    ) -> None:
        """Start writing the reports of `journal` (committed: the children read it from disk),
        whose rows go up to `last_row`; with `digest` (the run's meta and the report's now),
        each child also gathers its rows' part of the report's digest, which `wait` returns."""
        self._run_dir = run_dir
        self._asked = 1 if workbook else len(self._conns)
        job = {"run_dir": run_dir, "journal": journal, "header": header}
        job |= {"dry_run": dry_run, "workbook": workbook, "digest": digest}
        for index, rows in enumerate(ranges(last_row, self._asked)):
            with contextlib.suppress(OSError):  # the child is gone: `wait` says so
                self._conns[index].send({**job, "rows": rows, "first": index == 0})

    def wait(self) -> list[Digest]:
        """Until the reports are written and in place; raises what stopped them. Returns the
        parts of the digest the children gathered, in row order (none unless asked)."""
        answers = [self._answer(index) for index in range(self._asked)]
        done = [payload for kind, payload in answers if kind == "done"]
        if len(done) == len(answers):
            assert self._run_dir is not None
            publish(self._run_dir, [parts for parts, _ in done])
            return [digest for _, digest in done if digest is not None]
        for process in self._processes:
            process.join(5)
        self._remove_partial()
        self._raise(answers)

    def _raise(self, answers: list[tuple[str, Any]]) -> NoReturn:
        """What stopped the first child that did not finish its part."""
        for kind, payload in answers:
            if kind == "error":
                exc, text = payload
                if isinstance(exc, OSError | BatchCallError):
                    raise exc
                raise RuntimeError(f"writing the CSV reports failed in the child process:\n{text}")
        index = next((i for i, (kind, _) in enumerate(answers) if kind == "died"), 0)
        raise ReportsError(
            f"results.csv, failed.csv and skipped.csv could not be written: a process "
            f"writing them ended unexpectedly ({_how(self._processes[index].exitcode)}). "
            "The journal is intact; the files beside it are as last written."
        )

    def _answer(self, index: int) -> tuple[str, Any]:
        try:
            kind, payload = self._conns[index].recv()
        except (EOFError, OSError):
            return "died", None
        return kind, payload

    def _remove_partial(self) -> None:
        if self._run_dir is None:
            return
        # `report.write_part`'s temporary names, and `_FailedBook`'s.
        for pattern in (*(f".{name}.*.tmp" for name in REPORT_FILES), f".{FAILED_XLSX}.*"):
            for tmp in self._run_dir.glob(pattern):
                tmp.unlink(missing_ok=True)

    def close(self) -> None:
        for receiver in self.checking:
            receiver.close()  # a child still checking stops at its next send, then is told
        for index, conn in enumerate(self._conns):
            with contextlib.suppress(OSError):
                if index >= self._asked:
                    conn.send(None)  # never asked: it has nothing to do
                conn.close()
        killed = False
        for process in self._processes:
            process.join(5)
            if process.is_alive():
                # Stopped while it wrote (the parent was interrupted): what it began goes too.
                os.kill(process.pid, signal.SIGKILL)
                process.join()
                killed = True
        if killed:
            self._remove_partial()


@contextlib.contextmanager
def report_writer(
    size_hint: int, checks: list[Iterator[Any]] | None = None
) -> Iterator[ReportWriter | None]:
    """`ReportWriter.start`, closed on the way out. Enter it before the journal is opened: a
    child forked while this process has the journal open could share SQLite's record of its
    locks, even through a connection of its own."""
    writer = ReportWriter.start(size_hint, checks)
    try:
        yield writer
    finally:
        if writer is not None:
            writer.close()


def _how(exitcode: int | None) -> str:
    if exitcode is None:
        return "it did not exit"
    if exitcode < 0:
        return f"killed by {signal.Signals(-exitcode).name}"
    return f"exit code {exitcode}"
