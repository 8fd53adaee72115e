"""results.csv, failed.csv and skipped.csv of a big run, written by a forked child while this
process gathers report.html's digest from the same journal: two cores for the reports' pass.

The child is forked before the input is loaded, while this process is still small (a fork
copies the resident memory of its parent, which grows as a million rows are loaded), and waits
until `write` hands it the run's directory and journal. It opens the journal itself, read-only
(no SQLite connection crosses a fork), writes the three files as `report.write_lines` always
does (each to a temporary name, renamed into place when whole), and says it is done. `wait`
returns then, or raises what stopped it: the child's own error (a full disk stays an `OSError`,
for the runner to report as such), or `ReportsError` when the child ended without a word; its
temporary files are then removed, so a half-written report is never left behind.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import traceback
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ._errors import BatchCallError
from ._journal import JournalReader
from ._report import FAILED_XLSX, REPORT_FILES, write_lines

# Inputs at least this big get a writer child (a smaller run's reports take a moment).
WRITER_MIN_BYTES = 4 * 1024 * 1024


class ReportsError(BatchCallError):
    """The child writing the CSV reports ended without writing them."""


def _serve(conn: Connection, parent_end: Connection) -> None:
    # The parent decides how a run stops: Ctrl-C in the terminal must not end the writer.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent_end.close()  # this copy would keep the pipe open when the parent closes its own
    try:
        job = conn.recv()
    except (EOFError, OSError):
        return  # the parent went away, or never needed the reports written here
    try:
        if job is not None:
            _write(**job)
            conn.send(("done", None))
    except BaseException as exc:
        with contextlib.suppress(Exception):
            conn.send(("error", _portable(exc)))
    finally:
        conn.close()


def _write(run_dir: Path, journal: Path, header: list[str], dry_run: bool, workbook: bool) -> None:
    with JournalReader(journal) as reader:
        lines = reader.result_lines(len(header), dry_run=dry_run)
        write_lines(run_dir, header, lines, workbook=workbook)


def _portable(exc: BaseException) -> tuple[BaseException | None, str]:
    """The exception, when it survives pickling (an OSError does, errno and all), and its
    traceback as text either way."""
    text = traceback.format_exc()
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return None, text
    return exc, text


class ReportWriter:
    """A forked child that writes a run's CSV reports when asked. `close()` it in any case."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("fork")
        self._conn, child_end = context.Pipe()
        self._process: Any = context.Process(
            target=_serve, args=(child_end, self._conn), name="batchcall-reports", daemon=True
        )
        self._process.start()
        child_end.close()
        self._run_dir: Path | None = None

    @classmethod
    def start(cls, size_hint: int) -> ReportWriter | None:
        """A writer for an input of `size_hint` bytes; None for a small one, or where
        processes cannot be forked (the reports are then written in this process)."""
        if size_hint < WRITER_MIN_BYTES or "fork" not in multiprocessing.get_all_start_methods():
            return None
        return cls()

    def write(
        self, run_dir: Path, journal: Path, header: list[str], *, dry_run: bool, workbook: bool
    ) -> None:
        """Start writing the reports of `journal` (committed: the child reads it from disk)."""
        self._run_dir = run_dir
        job = {"run_dir": run_dir, "journal": journal, "header": header}
        with contextlib.suppress(OSError):  # the child is gone: `wait` says so
            self._conn.send({**job, "dry_run": dry_run, "workbook": workbook})

    def wait(self) -> None:
        """Until the reports are written; raises what stopped them."""
        try:
            kind, payload = self._conn.recv()
        except (EOFError, OSError):
            kind, payload = "died", None
        if kind == "done":
            return
        self._process.join(5)
        self._remove_partial()
        if kind == "error":
            exc, text = payload
            if isinstance(exc, OSError | BatchCallError):
                raise exc
            raise RuntimeError(f"writing the CSV reports failed in the child process:\n{text}")
        raise ReportsError(
            f"results.csv, failed.csv and skipped.csv could not be written: the process "
            f"writing them ended unexpectedly ({_how(self._process.exitcode)}). The journal is "
            "intact; the files beside it are as last written."
        )

    def _remove_partial(self) -> None:
        if self._run_dir is None:
            return
        # `report.atomic_writer`'s temporary names, and `_FailedBook`'s.
        for pattern in (*(f".{name}.*.tmp" for name in REPORT_FILES), f".{FAILED_XLSX}.*"):
            for tmp in self._run_dir.glob(pattern):
                tmp.unlink(missing_ok=True)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self._run_dir is None:
                self._conn.send(None)  # never asked: it has nothing to do
            self._conn.close()
        self._process.join(5)
        if self._process.is_alive():
            # Stopped while it wrote (the parent was interrupted): what it began goes too.
            os.kill(self._process.pid, signal.SIGKILL)
            self._process.join()
            self._remove_partial()


@contextlib.contextmanager
def report_writer(size_hint: int) -> Iterator[ReportWriter | None]:
    """`ReportWriter.start`, closed on the way out. Enter it before the journal is opened: a
    child forked while this process has the journal open could share SQLite's record of its
    locks, even through a connection of its own."""
    writer = ReportWriter.start(size_hint)
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
