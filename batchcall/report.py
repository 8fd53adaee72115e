"""Reports, always rebuilt from the journal: results.csv, failed.csv and summary.json.

Each file is written to a temporary name in the run directory and renamed over the old one, so
a reader (or a crash) never sees half a report.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from .csvsafe import neutralise, neutralise_all
from .journal import Journal, ReportRow
from .models import RESULT_COLUMNS

FAILED_STATES = frozenset({"invalid", "failed", "unknown"})


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


# In a dry run nothing is sent, so a row the journal holds as `pending` is simply valid.
DRY_RUN_NAMES = {"pending": "valid"}


def _line(header_width: int, r: ReportRow, names: dict[str, str]) -> list[str]:
    # Rows shorter than the header (ragged CSV) are padded so columns stay aligned.
    cells = list(r.cells) + [""] * (header_width - len(r.cells))
    outcome = [
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
    ]
    return neutralise_all(cells[:header_width] + outcome)


def write_results(
    run_dir: Path,
    header: Sequence[str],
    rows: Iterable[ReportRow],
    *,
    failed_states: frozenset[str] = FAILED_STATES,
    dry_run: bool = False,
) -> tuple[Path, Path]:
    """Write results.csv (every row) and failed.csv (the rows to fix and run again)."""
    results, failed = run_dir / "results.csv", run_dir / "failed.csv"
    columns = [neutralise(h) for h in header] + list(RESULT_COLUMNS)
    # utf-8-sig: Excel opens a BOM-less UTF-8 CSV as cp1252 and garbles non-ASCII names.
    with (
        atomic_writer(results, newline="") as out_all,
        atomic_writer(failed, newline="") as out_bad,
    ):
        _bom(out_all)
        _bom(out_bad)
        all_writer, bad_writer = csv.writer(out_all), csv.writer(out_bad)
        all_writer.writerow(columns)
        bad_writer.writerow(columns)
        width = len(header)
        names = DRY_RUN_NAMES if dry_run else {}
        for r in rows:
            line = _line(width, r, names)
            all_writer.writerow(line)
            if r.state in failed_states:
                bad_writer.writerow(line)
    return results, failed


def _bom(handle: IO[str]) -> None:
    handle.write("\ufeff")


def write_summary(run_dir: Path, summary: dict[str, Any]) -> Path:
    path = run_dir / "summary.json"
    with atomic_writer(path) as out:
        json.dump(summary, out, indent=2, sort_keys=True)
        out.write("\n")
    return path


def write_reports(run_dir: Path, journal: Journal, summary: Callable[[], dict[str, Any]]) -> None:
    header = journal.meta("header", [])
    write_results(run_dir, header, journal.report_rows(), dry_run=bool(journal.meta("dry_run")))
    write_summary(run_dir, summary())
