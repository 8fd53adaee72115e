"""The Python API: wires load -> validate -> plan -> dispatch -> journal -> report.

`run`, `validate`, `resume`, `retry` and `status` each return a `Summary`. They never print;
they raise `BatchCallError` subclasses, which the CLI turns into messages and exit codes.

Loading and sending overlap: a loader task validates the input in chunks and commits them to
the journal, while a feeder streams `pending` rows from the journal to the workers. So the first
request leaves long before a big file is fully read, and memory does not grow with the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import sqlite3
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx

from . import __version__
from .config import Output, Settings, build_options, check_base_url, read_api_key
from .dispatch import Dispatcher
from .errors import AbortedError, InputError, InterruptedRun, SameInputError, UsageError
from .journal import Job, Journal, Result
from .limiter import Gate
from .load import Table, file_sha256, open_table
from .logs import run_logging
from .models import Checked
from .plan import plan
from .prepare import Prepared
from .report import DRY_RUN_NAMES, write_reports
from .validate import Validator
from .windows import WindowPolicy

log = logging.getLogger("batchcall")

CHUNK = 1000
DEFAULT_WORKERS = 64
SANDBOX_FROM_NUMBER = "+61291234567"
SANDBOX_SCRIPT_ID = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"


class _Stopping(Exception):
    """Raised before a new row leaves once the run is stopping (Ctrl-C or a 401)."""


class Progress(Protocol):
    """What the runner tells a progress display. The CLI's is a tqdm bar."""

    def set_total(self, total: int) -> None: ...

    def advance(self, rows: int, *, throttled: int) -> None: ...

    def close(self) -> None: ...


@dataclass
class Summary:
    """What a run did. `to_dict()` is what --json prints and summary.json holds."""

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
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Stats:
    started: float = field(default_factory=time.monotonic)
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    requests: int = 0
    first_sent: float | None = None
    last_done: float | None = None
    done: int = 0


def exit_code_for(counts: Mapping[str, int], *, dry_run: bool = False) -> int:
    # In a dry run, `pending` means "valid, would be sent".
    if not dry_run and (counts.get("pending", 0) or counts.get("sending", 0)):
        return 3
    if any(counts.get(s, 0) for s in ("invalid", "failed", "unknown")):
        return 1
    return 0


# --- run directories -------------------------------------------------------------------------


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    # mkdir's mode is masked by the umask, and an existing --out dir keeps its mode: force it.
    os.chmod(path, 0o700)
    return path


def _new_run_dir(settings: Settings, stem: str) -> Path:
    if settings.out is not None:
        if (settings.out / "journal.sqlite").exists():
            raise UsageError(
                f"{settings.out} already holds a run. Use `batchcall resume {settings.out}`, "
                "or choose another --out."
            )
        return _private_dir(settings.out)
    _private_dir(settings.reports_dir)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    candidate = settings.reports_dir / f"{stem}-{stamp}"
    n = 1
    while candidate.exists():
        n += 1
        candidate = settings.reports_dir / f"{stem}-{stamp}-{n}"
    return _private_dir(candidate)


def _previous_run(reports_dir: Path, sha256: str) -> Path | None:
    if not reports_dir.is_dir():
        return None
    for journal_path in sorted(reports_dir.glob("*/journal.sqlite")):
        try:
            db = sqlite3.connect(f"file:{journal_path}?mode=ro", uri=True)
            try:
                rows = dict(db.execute("SELECT key, value FROM meta").fetchall())
            finally:
                db.close()
        except sqlite3.Error:
            continue
        # Dry runs and runs on a throwaway embedded sandbox called nobody.
        throwaway = rows.get("dry_run") == "true" or rows.get("sandbox") == "true"
        if rows.get("input_sha256") == f'"{sha256}"' and not throwaway:
            return journal_path.parent
    return None


# --- the pipeline ----------------------------------------------------------------------------


def _source(table: Table, settings: Settings) -> Iterator[Any]:
    rows: Iterator[Any] = iter(table)
    if settings.only_failed:
        if not table.is_results:
            raise InputError(
                f"--only-failed needs a results.csv or failed.csv written by batchcall; "
                f"{table.path.name} has no outcome column."
            )
        wanted = {"failed"} | ({"unknown"} if settings.include_unknown else set())
        rows = (r for r in rows if r.prior is not None and r.prior.get("outcome") in wanted)
    return rows


def _planned(table: Table, settings: Settings) -> Iterator[Checked]:
    validator = Validator(table, settings, now=datetime.now(UTC))
    return plan(
        (validator.check(r) for r in _source(table, settings)),
        allow_duplicates=settings.allow_duplicates,
    )


class _Execution:
    """One pass of sending: loader, feeder and workers sharing a journal and a gate."""

    def __init__(
        self,
        journal: Journal,
        settings: Settings,
        *,
        client: httpx.AsyncClient | None,
        planned: Prepared | None,
        progress: Progress | None,
    ) -> None:
        self.journal = journal
        self.settings = settings
        self.client = client
        self.planned = planned
        self.progress = progress
        self.run_id: str = journal.meta("run_id")
        self.stats = _Stats()
        self.gate = Gate(max_rate=settings.max_rate, concurrency=settings.concurrency)
        self.dispatcher: Dispatcher | None = None
        self.loaded = asyncio.Event()
        self.new_rows = asyncio.Event()
        self.stop = asyncio.Event()
        self.abort: AbortedError | None = None
        self.interrupted = False
        self.policy = WindowPolicy.from_settings(settings)
        self.timezone_column: int | None = journal.meta("timezone_column")

    async def load(self) -> None:
        if self.planned is not None:
            total = sum(self.journal.counts().values())
            async for chunk in self.planned:
                self.journal.add_rows(chunk, run_id=self.run_id)
                total += len(chunk)
                finished = sum(1 for record in chunk if record[4] != "pending")
                if self.progress:
                    self.progress.set_total(total)
                    self.progress.advance(finished, throttled=self._throttled())
                self.new_rows.set()
                if self.stop.is_set():
                    return
                # Let the workers send between chunks: the first request must not wait for
                # the whole file to be validated.
                await asyncio.sleep(0)
            self.journal.set_meta(load_complete=True)
        self.loaded.set()
        self.new_rows.set()

    async def feed(self, queue: asyncio.Queue[Job | None], workers: int) -> None:
        cursor = 0
        try:
            while not self.stop.is_set():
                jobs = self.journal.pending(after=cursor, limit=200)
                if not jobs:
                    if self.loaded.is_set():
                        # A last look: the loader may have committed after our query.
                        jobs = self.journal.pending(after=cursor, limit=200)
                        if not jobs:
                            break
                    else:
                        self.new_rows.clear()
                        await self.new_rows.wait()
                        continue
                for job in jobs:
                    if self.stop.is_set():
                        break
                    await queue.put(job)
                    cursor = job.row
        finally:
            for _ in range(workers):
                await queue.put(None)

    def _throttled(self) -> int:
        return self.dispatcher.throttled if self.dispatcher else 0

    def _before_send(self, job: Job, attempts: int) -> None:
        if self.stop.is_set() and attempts == job.attempts + 1:
            raise _Stopping  # do not start a new row once stopping
        if attempts == job.attempts + 1:
            self.journal.mark_sending(job.row, attempts)
        now = time.monotonic()
        self.stats.requests += 1
        if self.stats.first_sent is None:
            self.stats.first_sent = now
            log.info("first request sent after %.2fs", now - self.stats.started)

    def _place_now(self, job: Job) -> Job | None:
        """Re-check the calling window for a row with no time, just before it leaves.

        Validation placed it at "now", but a long run may reach it after its window closed;
        sending it without a time would ring the callee now, outside the legal hours.
        """
        if self.policy is None or "scheduled_time" in job.body:
            return job
        cells = self.journal.cells(job.row)
        col = self.timezone_column
        zone = cells[col].strip() or None if col is not None and col < len(cells) else None
        placement = self.policy.place(
            None,
            phone_e164=job.body["contact"]["phone_number"],
            row_timezone=zone,
            now=datetime.now(UTC),
        )
        if placement.error_code is not None:
            result = Result("failed", error_code=placement.error_code, error=placement.error)
            self.journal.record(job.row, result, attempts=job.attempts)
            return None
        if placement.moved and placement.when is not None:
            body = {**job.body, "scheduled_time": placement.when.strftime("%Y-%m-%dT%H:%M:%SZ")}
            self.journal.replan(job.row, body)
            return dataclasses.replace(job, body=body)
        return job

    async def work(self, queue: asyncio.Queue[Job | None]) -> None:
        assert self.dispatcher is not None
        while (job := await queue.get()) is not None:
            if self.stop.is_set():
                continue
            placed = self._place_now(job)
            if placed is None:
                continue
            job = placed
            try:
                result, attempts = await self.dispatcher.send(job, before_send=self._before_send)
            except _Stopping:
                continue  # stopped before this row left: it stays pending
            except AbortedError as exc:
                # A 401 or a TLS failure: nothing was executed, so the row goes back to
                # pending for `resume`, and no other row is started.
                self.journal.transition(job.row, "pending")
                self.abort = exc
                self.stop.set()
                continue
            self.journal.record(job.row, result, attempts=attempts)
            self.stats.done += 1
            self.stats.last_done = time.monotonic()
            _log_row(job.row, result)
            if self.progress:
                self.progress.advance(1, throttled=self._throttled())

    interrupted_hard = False

    def _on_signal(self) -> None:
        if self.stop.is_set():
            # Second Ctrl-C: stop waiting for in-flight requests; they become `unknown`.
            self.interrupted_hard = True
            for task in self._tasks:
                task.cancel()
        self.interrupted = True
        self.stop.set()
        self.new_rows.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        workers = self.settings.concurrency or DEFAULT_WORKERS
        queue: asyncio.Queue[Job | None] = asyncio.Queue(maxsize=workers * 2)
        if self.client is not None:
            self.dispatcher = Dispatcher(
                self.client, self.gate, retry_ambiguous=self.settings.retry_ambiguous
            )
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._on_signal)
                installed.append(sig)
        self._tasks: list[asyncio.Task[None]] = [asyncio.create_task(self.load())]
        if self.dispatcher is not None:
            self._tasks.append(asyncio.create_task(self.feed(queue, workers)))
            self._tasks += [asyncio.create_task(self.work(queue)) for _ in range(workers)]
        try:
            await asyncio.gather(*self._tasks, return_exceptions=False)
        except asyncio.CancelledError:
            if not self.interrupted_hard:
                raise
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for sig in installed:
                loop.remove_signal_handler(sig)
            # Rows caught mid-flight by a hard stop may have been created.
            if self.interrupted_hard:
                self.journal.recover()


def _log_row(row: int, result: Result) -> None:
    if result.state == "scheduled":
        log.info("row %d scheduled call_id=%s", row, result.call_id)
    else:
        log.info(
            "row %d %s http=%s %s: %s",
            row,
            result.state,
            result.http_status,
            result.error_code,
            result.error,
        )


def _client(
    settings: Settings, api_key: str, transport: httpx.AsyncBaseTransport | None, workers: int
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=settings.base_url,
        headers={"Authorization": f"Bearer {api_key}", "User-Agent": f"batchcall/{__version__}"},
        timeout=httpx.Timeout(settings.timeout, connect=10.0),
        limits=httpx.Limits(max_connections=workers, max_keepalive_connections=workers),
        transport=transport,
        verify=True,
    )


def _summarise(
    command: str,
    run_dir: Path,
    journal: Journal,
    execution: _Execution | None,
    stats: _Stats,
    message: str | None = None,
) -> Summary:
    counts = journal.counts()
    dry_run = bool(journal.meta("dry_run"))
    exit_code = exit_code_for(counts, dry_run=dry_run)
    if dry_run:
        counts = {DRY_RUN_NAMES.get(state, state): n for state, n in counts.items()}
    seconds = time.monotonic() - stats.started
    rate = None
    if stats.first_sent is not None and stats.last_done and stats.last_done > stats.first_sent:
        rate = round(stats.done / (stats.last_done - stats.first_sent), 2)
    return Summary(
        command=command,
        run_dir=str(run_dir),
        input=journal.meta("input"),
        total=sum(counts.values()),
        counts=counts,
        errors=journal.error_counts(),
        exit_code=exit_code,
        started_at=stats.started_at,
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
        seconds=round(seconds, 3),
        requests=stats.requests,
        throttled=execution._throttled() if execution else 0,
        rate=rate,
        limiter=execution.gate.stats() if execution and execution.dispatcher else {},
        results_csv=str(run_dir / "results.csv"),
        failed_csv=str(run_dir / "failed.csv"),
        message=message,
    )


async def _execute(
    command: str,
    run_dir: Path,
    journal: Journal,
    settings: Settings,
    *,
    api_key: str | None,
    planned: Prepared | None,
    progress: Progress | None,
    transport: httpx.AsyncBaseTransport | None,
) -> Summary:
    workers = settings.concurrency or DEFAULT_WORKERS
    client = None if api_key is None else _client(settings, api_key, transport, workers)
    execution = _Execution(journal, settings, client=client, planned=planned, progress=progress)
    try:
        await execution.run()
    finally:
        if planned is not None:
            planned.close()
        if client is not None:
            await client.aclose()
        summary = _summarise(command, run_dir, journal, execution, execution.stats)
        if execution.abort is not None:
            summary.exit_code = execution.abort.exit_code
            summary.message = str(execution.abort)
        elif execution.interrupted:
            summary.exit_code = InterruptedRun.exit_code
            summary.message = "interrupted"
        write_reports(run_dir, journal, summary.to_dict)
        if progress:
            progress.close()
    if execution.abort is not None:
        raise type(execution.abort)(str(execution.abort), run_dir=str(run_dir))
    if execution.interrupted:
        raise InterruptedRun(
            f"Interrupted. The journal is intact; continue with: batchcall resume {run_dir}",
            run_dir=str(run_dir),
        )
    return summary


# --- public API ------------------------------------------------------------------------------


def _settings(settings: Settings | None, options: Mapping[str, Any]) -> tuple[Settings, Output]:
    """The Python API's settings, with the CLI's precedence (toml < environment < arguments)."""
    if settings is not None:
        return (settings.model_copy(update=dict(options)) if options else settings), Output()
    return build_options(options)


@contextlib.contextmanager
def _sandbox_target(settings: Settings, sandbox: bool) -> Iterator[tuple[Settings, str | None]]:
    if not sandbox:
        yield settings, None
        return
    from .sandbox import SandboxConfig, start_sandbox

    with start_sandbox(SandboxConfig(limit=20, window=1.0)) as server:
        update: dict[str, Any] = {"base_url": server.base_url}
        if settings.from_number is None:
            update["from_number"] = SANDBOX_FROM_NUMBER
        if settings.script_id is None:
            update["script_id"] = SANDBOX_SCRIPT_ID
        yield settings.model_copy(update=update), server.api_key


def run(
    input: str | os.PathLike[str],
    *,
    settings: Settings | None = None,
    api_key: str | None = None,
    api_key_file: str | os.PathLike[str] | None = None,
    sandbox: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    verbose: bool = False,
    **options: Any,
) -> Summary:
    """Schedule a call for every valid row of `input`; returns the run's summary.

    Options are the CLI's long options with `_` for `-` (`from_number`, `script_id`,
    `max_rate`, ...), or a ready `Settings`. The key comes from `api_key`, `api_key_file` or
    `VOXWORKS_API_KEY`. `dry_run=True` is `batchcall validate`: it writes the report and sends
    nothing.
    """
    settings, output = _settings(settings, options)
    verbose = verbose or output.verbose
    api_key_file = api_key_file or output.api_key_file
    path = Path(input)
    with _sandbox_target(settings, sandbox) as (settings, sandbox_key):
        check_base_url(settings.base_url)
        key = None
        if not dry_run:
            key = (
                api_key or sandbox_key or read_api_key(Path(api_key_file) if api_key_file else None)
            )
        table = open_table(path, settings)
        planned = _planned(table, settings)
        sha256 = file_sha256(path)
        if not dry_run and not sandbox and not settings.force:
            previous = _previous_run(settings.reports_dir, sha256)
            if previous is not None:
                raise SameInputError(
                    f"{path.name} was already run in {previous}. Nothing was sent. To re-send "
                    f"its failed rows use `batchcall retry {previous}`; to run it again anyway "
                    "pass --force.",
                    previous_run=str(previous),
                )
        run_dir = _new_run_dir(settings, path.stem)
        with (
            Journal(run_dir / "journal.sqlite", create=True) as journal,
            run_logging(run_dir, verbose=verbose),
        ):
            journal.set_meta(
                run_id=uuid.uuid4().hex[:16],
                input=str(path.resolve()),
                input_sha256=sha256,
                settings=settings.recorded(),
                header=table.header,
                timezone_column=table.fields.get("timezone"),
                dry_run=dry_run,
                sandbox=sandbox,
                load_complete=False,
                version=__version__,
            )
            for warning in table.warnings:
                log.warning("%s", warning)
            log.info("run %s of %s (sha256 %s)", run_dir.name, path.name, sha256)
            return asyncio.run(
                _execute(
                    "validate" if dry_run else "run",
                    run_dir,
                    journal,
                    settings,
                    api_key=key,
                    planned=Prepared(planned, size_hint=path.stat().st_size),
                    progress=progress,
                    transport=transport,
                )
            )


def validate(input: str | os.PathLike[str], **kwargs: Any) -> Summary:
    """A dry run: the same run directory and report as `run`, and nothing sent."""
    return run(input, dry_run=True, **kwargs)


def _reopen(run_dir: Path, overrides: Mapping[str, Any]) -> tuple[Journal, Settings]:
    journal = Journal(Path(run_dir) / "journal.sqlite")
    stored = Settings(**journal.meta("settings", {}))
    update = {k: v for k, v in overrides.items() if v is not None}
    return journal, stored.model_copy(update=update) if update else stored


def resume(
    run_dir: str | os.PathLike[str],
    *,
    api_key: str | None = None,
    api_key_file: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    **overrides: Any,
) -> Summary:
    """Continue an interrupted run: `sending` rows become `unknown`; only `pending` rows go."""
    return _continue(
        "resume", Path(run_dir), api_key, api_key_file, progress, transport, overrides, requeue=()
    )


def retry(
    run_dir: str | os.PathLike[str],
    *,
    include_unknown: bool = False,
    api_key: str | None = None,
    api_key_file: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    **overrides: Any,
) -> Summary:
    """Re-send a run's `failed` rows (and `unknown` ones when asked) in its own journal."""
    states = ("failed", "unknown") if include_unknown else ("failed",)
    return _continue(
        "retry",
        Path(run_dir),
        api_key,
        api_key_file,
        progress,
        transport,
        overrides,
        requeue=states,
    )


def _continue(
    command: str,
    run_dir: Path,
    api_key: str | None,
    api_key_file: str | os.PathLike[str] | None,
    progress: Progress | None,
    transport: httpx.AsyncBaseTransport | None,
    overrides: Mapping[str, Any],
    *,
    requeue: tuple[str, ...],
) -> Summary:
    overrides = dict(overrides)
    verbose = bool(overrides.pop("verbose", False))
    journal, settings = _reopen(run_dir, overrides)
    with journal, run_logging(run_dir, verbose=verbose):
        if journal.meta("dry_run"):
            raise UsageError(f"{run_dir} is a dry run (validate); start a real one with `run`.")
        check_base_url(settings.base_url)
        key = api_key or read_api_key(Path(api_key_file) if api_key_file else None)
        recovered = journal.recover()
        if recovered:
            log.warning("%d rows were in flight when the run stopped; marked unknown", recovered)
        planned = None
        if not journal.meta("load_complete"):
            # The crash came while the input was still being read: plan it again. Rows the
            # journal already has keep their state (INSERT OR IGNORE).
            source = Path(journal.meta("input"))
            if not source.is_file() or file_sha256(source) != journal.meta("input_sha256"):
                raise InputError(
                    f"The run stopped before reading all of {source}, and that file is gone or "
                    "has changed, so the rest cannot be planned safely."
                )
            planned = Prepared(
                _planned(open_table(source, settings), settings),
                size_hint=source.stat().st_size,
            )
        if requeue:
            n = journal.requeue(requeue)
            log.info("%s: %d rows (%s) queued again", command, n, ", ".join(requeue))
        return asyncio.run(
            _execute(
                command,
                run_dir,
                journal,
                settings,
                api_key=key,
                planned=planned,
                progress=progress,
                transport=transport,
            )
        )


def status(run_dir: str | os.PathLike[str]) -> Summary:
    """A run's counts by outcome and by error code, read from its journal, with the timings
    and rates of its last pass from summary.json."""
    path = Path(run_dir)
    with Journal(path / "journal.sqlite") as journal:
        current = _summarise("status", path, journal, None, _Stats())
    try:
        last = json.loads((path / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return current
    fresh = {"command", "total", "counts", "errors", "exit_code", "run_dir"}
    for name in Summary.__dataclass_fields__:
        if name not in fresh and name in last:
            setattr(current, name, last[name])
    return current
