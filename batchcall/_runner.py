"""The Python API: wires load -> validate -> plan -> dispatch -> journal -> report.

`run`, `validate`, `resume`, `retry` and `status` each return a `Summary`. They never print;
they raise `BatchCallError` subclasses, which the CLI turns into messages and exit codes.

Loading and sending overlap (`dispatch.Execution`): planned chunks are committed to the journal
while workers send the `pending` rows already there, and a big input is planned in a forked
child (`prepare`). So the first request leaves long before a big file is fully read, and memory
does not grow with the file. A pass hands back one `PassOutcome`, from which the run's `Summary`
is built once.

The contact ledger is opened once per run, before the run directory is made (a bad location,
like an unreadable `--suppress` list, stops the run with exit 2 and nothing written), and
closed when the run ends. `guard.Guard` is how the run uses it: an early answer for each
planned chunk, and a reservation just before each request leaves. `resume` and `retry` make it
agree with the journal again (`Guard.reconcile`) before they send anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import json
import logging
import os
import shutil
import sqlite3
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from ._config import CHANGEABLE, SETTING_KEYS, Options, Settings, argument, read_api_key, resolve
from ._dispatch import DEFAULT_WORKERS, Execution, PassOutcome, Progress, SendStats
from ._errors import (
    AbortedError,
    BatchCallError,
    DamagedJournalError,
    DiskFullError,
    InputError,
    InterruptedRun,
    LedgerError,
    SameInputError,
    UsageError,
    interruption,
)
from ._guard import Guard, list_region, load_lists, policy_for
from ._journal import Journal, nothing_to_send
from ._ledger import Ledger, SuppressionList, open_ledger, team_fingerprint
from ._load import SHEET_SUFFIXES, Table, file_sha256, missing_outcome_columns, open_table
from ._logs import run_logging
from ._plan import plan
from ._prepare import Plan, Prepared, Stages, striped_work
from ._report import Summary, summarise, write_reports, write_summary
from ._rundir import RunLock, private_dir
from ._transport import SpreadTransport
from ._validate import Validator
from ._version import __version__
from ._windows import WindowPolicy
from ._writer import ReportWriter, report_writer

log = logging.getLogger("batchcall")

SANDBOX_FROM_NUMBER = "+61291234567"
SANDBOX_SCRIPT_ID = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"


# --- run directories -------------------------------------------------------------------------


def _new_run_dir(settings: Settings, stem: str) -> Path:
    if settings.out is not None:
        if (settings.out / "journal.sqlite").exists():
            raise UsageError(
                f"{settings.out} already holds a run. Use `batchcall resume {settings.out}`, "
                "or choose another --out."
            )
        return private_dir(settings.out)
    private_dir(settings.reports_dir, strict=False)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    candidate = settings.reports_dir / f"{stem}-{stamp}"
    n = 1
    while candidate.exists():
        n += 1
        candidate = settings.reports_dir / f"{stem}-{stamp}-{n}"
    return private_dir(candidate)


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
                f"{table.path.name} lacks its outcome columns ({missing_outcome_columns(table)})."
            )
        wanted = {"failed"} | ({"unknown"} if settings.include_unknown else set())
        rows = (r for r in rows if r.prior is not None and r.prior.get("outcome") in wanted)
    return rows


def _planned(table: Table, settings: Settings) -> Plan:
    validator = Validator(table, settings, now=datetime.now(UTC))
    rows = plan(
        (validator.check(r) for r in _source(table, settings)),
        allow_duplicates=settings.allow_duplicates,
    )
    # A text file is cheap to read twice: two children may share its checking.
    stages = None
    if table.path.suffix.lower() not in SHEET_SUFFIXES:
        stages = Stages(
            lambda: _source(table, settings),
            validator.check,
            settings.allow_duplicates,
            # --only-failed picks rows by their cells: every row is made to be looked at.
            None if settings.only_failed else table.stripes,
        )
    # The validator's calling-window policy travels with its rows: the sending pass
    # re-checks timeless rows against the very same one.
    return Plan(rows, validator.policy, stages)


def _client(
    settings: Settings, api_key: str, transport: httpx.AsyncBaseTransport | None, workers: int
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=settings.base_url,
        headers={"Authorization": f"Bearer {api_key}", "User-Agent": f"batchcall/{__version__}"},
        # httpx's timeouts are per phase and per read; the dispatcher bounds each request as a
        # whole by `settings.timeout`. A connect timeout shorter than that whole still says
        # "nothing was sent", so that request can be retried safely.
        timeout=httpx.Timeout(settings.timeout, connect=min(10.0, settings.timeout)),
        limits=httpx.Limits(max_connections=workers, max_keepalive_connections=workers),
        transport=transport or _spread(workers),
        verify=True,
    )


def _spread(workers: int) -> httpx.AsyncBaseTransport | None:
    """A pool of one connection per worker: one pool of many cost more CPU than the rest of a
    row (see `_transport`). Not behind a proxy: httpx reads HTTP(S)_PROXY only for a client
    that keeps its own transport."""
    if set(urllib.request.getproxies()) & {"http", "https", "all"}:
        return None
    return SpreadTransport(workers, verify=True)


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
    guard: Guard,
    writer: ReportWriter | None = None,
) -> Summary:
    workers = settings.concurrency or DEFAULT_WORKERS
    client = None if api_key is None else _client(settings, api_key, transport, workers)
    execution = Execution(
        journal, settings, client=client, planned=planned, progress=progress,
        policy=guard.window, guard=guard,
    )  # fmt: skip
    try:
        outcome = await execution.run()
    finally:
        if planned is not None:
            planned.close()
        if client is not None:
            await client.aclose()
    _settle_leftovers(guard)
    stop = _stop(command, run_dir, journal, outcome)
    summary = _summary(command, run_dir, journal, outcome, stop)
    plan = _write_reports(run_dir, journal, summary, writer)
    if plan is not None:
        summary = dataclasses.replace(summary, plan=plan)
    if progress:
        progress.close()
    if stop is not None:
        raise stop
    return summary


def _settle_leftovers(guard: Guard) -> None:
    """After a pass nothing is in flight: the last answers are written, and a call still
    reserved was caught mid-flight by a hard stop (its row is now `unknown`)."""
    try:
        guard.reconcile()
    except LedgerError as exc:
        log.warning("the ledger could not be brought up to date (resume will): %s", exc)


def _stop(
    command: str, run_dir: Path, journal: Journal, outcome: PassOutcome
) -> BaseException | None:
    """What the pass's end raises once the reports are written: None when it ran to the end."""
    if outcome.error is not None:
        if disk_full(outcome.error, run_dir):
            return _disk_full_error(run_dir, outcome.error)
        if isinstance(outcome.error, AbortedError):
            # The ledger failing while a chunk was checked: the rest is planned by `resume`.
            message = _then_resume(str(outcome.error), run_dir)
            return type(outcome.error)(message, run_dir=str(run_dir))
        return outcome.error
    if outcome.abort is not None:
        return type(outcome.abort)(_then_resume(str(outcome.abort), run_dir), run_dir=str(run_dir))
    if outcome.signal is None:
        return None
    kind = interruption(outcome.signal)
    if command == "validate":
        # A dry run cannot be resumed (`resume` refuses it), so the message must not offer it.
        rows = sum(journal.counts().values())
        return kind(
            f"Interrupted ({outcome.signal}): validation stopped after {rows} rows and nothing "
            f"was sent. The partial report is in {run_dir}; run `batchcall validate` again to "
            "check the whole file."
        )
    return kind(
        f"Interrupted ({outcome.signal}). The journal is intact; continue with: "
        f"batchcall resume {run_dir}",
        run_dir=str(run_dir),
    )


def _then_resume(message: str, run_dir: Path) -> str:
    """The message, ending with the exact command that continues the run."""
    command = f"batchcall resume {run_dir}"
    return message if command in message else f"{message} Then continue with: {command}"


def _summary(
    command: str,
    run_dir: Path,
    journal: Journal,
    outcome: PassOutcome,
    stop: BaseException | None,
) -> Summary:
    """The pass's summary; a stopped pass takes the exit code and message of its stop."""
    summary = summarise(
        command,
        run_dir,
        journal,
        outcome.stats,
        requests=outcome.requests,
        throttled=outcome.throttled,
        limiter=outcome.limiter,
    )
    if isinstance(stop, AbortedError):
        return dataclasses.replace(summary, exit_code=stop.exit_code, message=str(stop))
    if isinstance(stop, InterruptedRun):
        said = "interrupted" if outcome.signal == "SIGINT" else f"interrupted ({outcome.signal})"
        return dataclasses.replace(summary, exit_code=stop.exit_code, message=said)
    return summary


def _write_reports(
    run_dir: Path, journal: Journal, summary: Summary, writer: ReportWriter | None = None
) -> dict[str, Any] | None:
    """The run's reports (and a dry run's plan); on a full disk, what fits (summary.json is
    small), then the error."""
    try:
        return write_reports(run_dir, journal, summary.to_dict, writer)
    except Exception as exc:
        if not disk_full(exc, run_dir):
            raise
        with contextlib.suppress(Exception):
            write_summary(run_dir, summary.to_dict())
        unwritten = (
            "results.csv and failed.csv could not be rewritten (they show the run as "
            "last written; `batchcall status` reads the journal)."
        )
        raise _disk_full_error(run_dir, exc, also=unwritten) from exc


# --- disk faults -----------------------------------------------------------------------------


# Less free space than this, and an I/O error on the run directory's disk is the disk being full.
NEARLY_FULL = 1 << 20


def disk_full(exc: BaseException, where: Path) -> bool:
    """Whether `exc` says the disk holding `where` is full: SQLite's SQLITE_FULL, ENOSPC or
    EDQUOT, or an SQLite I/O error on a disk with almost no space left."""
    if isinstance(exc, sqlite3.Error):
        code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
        # SQLite reports a WAL index it cannot grow as a disk I/O error, not as SQLITE_FULL.
        return code == sqlite3.SQLITE_FULL or (
            code == sqlite3.SQLITE_IOERR and _free(where) < NEARLY_FULL
        )
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def _free(where: Path) -> int:
    try:
        return shutil.disk_usage(where).free
    except OSError:
        return NEARLY_FULL


def _disk_of(path: Path) -> str:
    """The file system holding `path`, as `df` names it: its device, mount point and space."""
    mount = path.resolve()
    while not os.path.ismount(mount):
        mount = mount.parent
    device = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text(encoding="utf-8").splitlines():
            fields = line.split()
            if len(fields) > 1 and fields[1].replace("\\040", " ") == str(mount):
                device = f"{fields[0]} "  # the last mount there is the one in use
    return f"{device}mounted on {mount}, {_free(mount) // 1024} KiB free"


def _disk_full_error(run_dir: Path, exc: BaseException, *, also: str = "") -> DiskFullError:
    full = f"The disk holding {run_dir} is full ({_disk_of(run_dir)}; {exc})."
    if not _recorded(run_dir):
        return DiskFullError(
            f"{full} The run stopped before it was recorded, so nothing was sent. Free some "
            f"space, remove {run_dir}, and start the run again."
        )
    return DiskFullError(
        f"{full} Sending stopped at once; no request left without its row journalled as "
        f"sending first, and every row not sent stays pending. {also + ' ' if also else ''}"
        "Free some space (or move the whole run directory, journal.sqlite-wal included, to a "
        f"bigger disk), then continue with: batchcall resume {run_dir}",
        run_dir=str(run_dir),
    )


def _recorded(run_dir: Path) -> bool:
    """Whether the run's journal holds the run: what `resume` needs to continue it."""
    try:
        with Journal(run_dir / "journal.sqlite", readonly=True) as journal:
            return journal.meta("run_id") is not None and journal.meta("settings") is not None
    except (BatchCallError, sqlite3.Error, OSError):
        return False


@contextlib.contextmanager
def _disk_faults(run_dir: Path) -> Iterator[None]:
    """A full disk anywhere in a run (journal, run.log, reports) ends it with DiskFullError,
    exit 3, never a traceback."""
    try:
        yield
    except DiskFullError:
        raise
    except Exception as exc:
        if not disk_full(exc, run_dir):
            raise
        raise _disk_full_error(run_dir, exc) from exc


# --- public API ------------------------------------------------------------------------------


def _settings(settings: Settings | None, options: Mapping[str, Any]) -> Options:
    """The Python API's settings: the CLI's layers (toml < environment < arguments), or a ready
    `Settings` with the arguments over it. Validated either way; a misspelt option is refused."""
    return resolve(options, base=settings, allowed=SETTING_KEYS, named=argument)


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
        target = resolve(update, base=settings, named=lambda _: "--sandbox").settings
        yield target, server.api_key


def _key(api_key: str | None, api_key_file: str | os.PathLike[str] | None) -> str:
    return api_key or read_api_key(Path(api_key_file) if api_key_file else None)


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
    report_unmasked: bool = False,
    **options: Any,
) -> Summary:
    """Schedule a call for every valid row of `input`; returns the run's summary.

    Options are the CLI's long options with `_` for `-` (`from_number`, `script_id`,
    `max_rate`, ...), over batchcall.toml and the environment, or over a ready `Settings`; an
    unknown name or a bad value raises UsageError. The key comes from `api_key`,
    `api_key_file` or `VOXWORKS_API_KEY`. `dry_run=True` is `batchcall validate`: it writes
    the report and sends nothing. `report_unmasked=True` shows whole phone numbers in this run's
    report.html (masked by default, so that it can be shared).
    """
    settings, output = _settings(settings, options)
    verbose = verbose or output.verbose
    unmasked = report_unmasked or output.report_unmasked
    api_key_file = api_key_file or output.api_key_file
    path = Path(input)
    with _sandbox_target(settings, sandbox) as (settings, sandbox_key):
        given = api_key or sandbox_key
        key = None if dry_run else _key(given, api_key_file)
        table = open_table(path, settings)
        if not table.has_rows:
            raise InputError(
                f"{path} has a header row but no data rows under it: there is nothing to call."
            )
        planned = _planned(table, settings)
        lists = load_lists(settings.suppress, list_region(settings))
        sha256 = file_sha256(path)
        if not dry_run and not sandbox and not settings.force:
            _refuse_same_input(path, settings, sha256)
        team = _team(settings, key if not dry_run else _dry_run_key(given, api_key_file))
        with open_ledger(settings.ledger, team=team, sandbox=sandbox) as ledger:
            run_dir = _new_run_dir(settings, path.stem)
            return _start_or_forget(
                run_dir, path, table, planned, settings, sha256, key, dry_run=dry_run,
                sandbox=sandbox, verbose=verbose, progress=progress, transport=transport,
                ledger=ledger, lists=lists, unmasked=unmasked,
            )  # fmt: skip


def _refuse_same_input(path: Path, settings: Settings, sha256: str) -> None:
    """The same-file guard: the fast first answer, before the ledger's row by row one."""
    previous = _previous_run(settings.reports_dir, sha256)
    if previous is not None:
        raise SameInputError(
            f"{path.name} was already run in {previous}. Nothing was sent. To re-send "
            f"its failed rows use `batchcall retry {previous}`; to run it again anyway "
            "pass --force.",
            previous_run=str(previous),
        )


def _team(settings: Settings, key: str | None) -> str:
    """The run's team in the ledger: `--team`, else the fingerprint of the key (a dry run
    without one: of the API's address alone)."""
    return settings.team or team_fingerprint(settings.base_url, key or "")


def _dry_run_key(api_key: str | None, api_key_file: str | os.PathLike[str] | None) -> str | None:
    """A dry run sends nothing, but with a key at hand it checks the ledger as that key's team."""
    if api_key or api_key_file:
        return _key(api_key, api_key_file)
    return os.environ.get("VOXWORKS_API_KEY", "").strip() or None


def _start_or_forget(
    run_dir: Path, path: Path, *args: Any, dry_run: bool, **kwargs: Any
) -> Summary:
    """`_start`, removing the run directory again on a Ctrl-C that came before any row."""
    try:
        return _start(run_dir, path, *args, dry_run=dry_run, **kwargs)
    except KeyboardInterrupt:
        # Ctrl-C before the run's own handler was in place: nothing planned, nothing sent.
        if _forget_if_empty(run_dir):
            then = f"continue with: batchcall resume {run_dir}"
        else:
            then = f"nothing was kept. Run `batchcall {'validate' if dry_run else 'run'}` again."
        raise InterruptedRun(
            f"Interrupted before any row was planned; nothing was sent, and {then}"
        ) from None


def _forget_if_empty(run_dir: Path) -> bool:
    """Remove a run directory whose journal holds no row; True if it had to be kept."""
    try:
        with Journal(run_dir / "journal.sqlite") as journal:
            if journal.counts():
                return True
    except (UsageError, sqlite3.Error):
        pass
    shutil.rmtree(run_dir, ignore_errors=True)
    return False


def _start(
    run_dir: Path,
    path: Path,
    table: Table,
    planned: Plan,
    settings: Settings,
    sha256: str,
    key: str | None,
    *,
    dry_run: bool,
    sandbox: bool,
    verbose: bool,
    progress: Progress | None,
    transport: httpx.AsyncBaseTransport | None,
    ledger: Ledger,
    lists: SuppressionList | None,
    unmasked: bool = False,
) -> Summary:
    size = path.stat().st_size
    with (
        _disk_faults(run_dir),
        RunLock(run_dir, "validate" if dry_run else "run"),
        # Forked before the journal is open; for a big text input its children check it too.
        report_writer(size, striped_work(planned, size)) as writer,
        Journal(run_dir / "journal.sqlite", create=True) as journal,
        run_logging(run_dir, verbose=verbose),
    ):
        _record_run(journal, run_dir, path, table, settings, sha256, ledger.team)
        journal.set_meta(dry_run=dry_run, sandbox=sandbox, report_unmasked=unmasked)
        if dry_run:
            nothing_to_send(journal)
        for warning in table.warnings:
            log.warning("%s", warning)
        log.info("run %s of %s (sha256 %s)", run_dir.name, path.name, sha256)
        log.info("ledger %s, team %s", ledger.where, ledger.team)
        guard = _guard(ledger, journal, settings, lists, planned.policy)
        checking = writer.checking if writer is not None else None
        prepared = Prepared(planned, size_hint=size, check=guard.check, children=checking)
        return asyncio.run(
            _execute(
                "validate" if dry_run else "run",
                run_dir,
                journal,
                settings,
                api_key=key,
                planned=prepared,
                progress=progress,
                transport=transport,
                guard=guard,
                writer=writer,
            )
        )


def _record_run(
    journal: Journal,
    run_dir: Path,
    path: Path,
    table: Table,
    settings: Settings,
    sha256: str,
    team: str,
) -> None:
    """What a new run is, in its journal: its ids, input, settings and columns."""
    run_id = uuid.uuid4().hex[:16]
    journal.set_meta(
        run_id=run_id,
        # The run as the ledger names it to any later run it blocks: where to look.
        ledger_run_id=f"{run_dir.name}/{run_id}",
        ledger_team=team,
        input=str(path.resolve()),
        input_sha256=sha256,
        settings=settings.recorded(),
        header=table.header,
        timezone_column=table.fields.get("timezone"),
        state_column=table.fields.get("state"),
        zip_column=table.fields.get("zip"),
        load_complete=False,
        version=__version__,
    )


def _guard(
    ledger: Ledger,
    journal: Journal,
    settings: Settings,
    lists: SuppressionList | None,
    window: WindowPolicy | None,
    *,
    continued: bool = False,
) -> Guard:
    return Guard(
        ledger,
        policy_for(settings, lists),
        journal,
        run_id=journal.meta("ledger_run_id"),
        window=window,
        continued=continued,
    )


def validate(input: str | os.PathLike[str], **kwargs: Any) -> Summary:
    """A dry run: the same run directory and report as `run`, and nothing sent."""
    return run(input, dry_run=True, **kwargs)


def _reopen(journal: Journal, overrides: Mapping[str, Any]) -> Options:
    """A run's stored settings with the few overrides a continued run allows, validated."""
    return resolve(
        overrides,
        base=journal.meta("settings", {}),
        allowed=CHANGEABLE | {"verbose"},
        named=argument,
    )


def resume(
    run_dir: str | os.PathLike[str],
    *,
    api_key: str | None = None,
    api_key_file: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    **overrides: Any,
) -> Summary:
    """Continue an interrupted run: `sending` rows become `unknown`; only `pending` rows go.

    The run keeps its own settings; `overrides` may change only `base_url`, `breaker`,
    `concurrency` and `max_rate` (and `verbose`), and anything else raises UsageError. So for
    `retry`.
    """
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
    with (
        _disk_faults(run_dir),
        Journal(run_dir / "journal.sqlite") as journal,
        RunLock(run_dir, command),
    ):
        if journal.meta("dry_run"):
            raise UsageError(f"{run_dir} is a dry run (validate); start a real one with `run`.")
        if journal.meta("run_id") is None or journal.meta("settings") is None:
            # The run's first commit never made it (a full disk at its very start, say): no
            # row was journalled, so none was sent.
            raise DamagedJournalError(
                f"{run_dir / 'journal.sqlite'} holds no run: it was never fully created (its "
                f"disk filled up as it started?), so nothing was sent from it. Remove {run_dir} "
                "and start the run again."
            )
        settings, output = _reopen(journal, overrides)
        key = _key(api_key, api_key_file)
        lists = load_lists(settings.suppress, list_region(settings))
        with (
            run_logging(run_dir, verbose=output.verbose),
            _run_ledger(run_dir, journal, settings, key) as ledger,
        ):
            recovered = journal.recover()
            if recovered:
                log.warning(
                    "%d rows were in flight when the run stopped; marked unknown", recovered
                )
            plan = _replan(journal, settings)
            window = plan.policy if plan is not None else WindowPolicy.from_settings(settings)
            guard = _guard(ledger, journal, settings, lists, window, continued=True)
            unknown = guard.reconcile()
            if unknown:
                log.warning("%d calls reserved in the ledger had no answer: unknown", unknown)
            if requeue:
                n = journal.requeue(requeue)
                log.info("%s: %d rows (%s) queued again", command, n, ", ".join(requeue))
            prepared = None
            if plan is not None:
                size = Path(journal.meta("input")).stat().st_size
                prepared = Prepared(plan, size_hint=size, check=guard.check)
            passing = _execute(
                command, run_dir, journal, settings, api_key=key, planned=prepared,
                progress=progress, transport=transport, guard=guard,
            )  # fmt: skip
            return asyncio.run(passing)


def _run_ledger(run_dir: Path, journal: Journal, settings: Settings, key: str) -> Ledger:
    """The ledger a continued run started with, as the team it started as."""
    if settings.ledger is not None and "***" in settings.ledger:
        raise UsageError(
            f"The run's ledger {settings.ledger} was given with a password, which batchcall "
            "never stores. Pass --ledger URL again, or put the password in ~/.pgpass or "
            "PGPASSWORD."
        )
    if journal.meta("ledger_run_id") is None:  # a run started before the ledger was wired in
        journal.set_meta(ledger_run_id=f"{run_dir.name}/{journal.meta('run_id')}")
    team = journal.meta("ledger_team") or _team(settings, key)
    return open_ledger(settings.ledger, team=team, sandbox=bool(journal.meta("sandbox")))


def _replan(journal: Journal, settings: Settings) -> Plan | None:
    """The rest of the input, when the run stopped while it was still being read."""
    if journal.meta("load_complete"):
        return None
    # Rows the journal already has keep their state (INSERT OR IGNORE).
    source = Path(journal.meta("input"))
    if not source.is_file() or file_sha256(source) != journal.meta("input_sha256"):
        raise InputError(
            f"The run stopped before reading all of {source}, and that file is gone or "
            "has changed, so the rest cannot be planned safely."
        )
    return _planned(open_table(source, settings), settings)


def status(run_dir: str | os.PathLike[str]) -> Summary:
    """A run's counts by outcome and by error code, read from its journal, with the timings
    and rates of its last pass from summary.json."""
    path = Path(run_dir)
    # Read-only: status never writes to a run, and works on one it may not write to.
    with Journal(path / "journal.sqlite", readonly=True) as journal:
        current = summarise("status", path, journal, SendStats())
    try:
        last = json.loads((path / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return current
    # The counts are the journal's, as of now; the rest describes the last pass.
    fresh = {"command", "total", "counts", "errors", "exit_code", "run_dir"}
    earlier = {
        f.name: last[f.name]
        for f in dataclasses.fields(Summary)
        if f.name in last and f.name not in fresh
    }
    return dataclasses.replace(current, **earlier)
