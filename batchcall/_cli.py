"""The command line: a thin shell over `batchcall.runner`.

It parses options, shows progress and the summary, and turns `BatchCallError`s into messages
and exit codes. No business logic lives here.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import click

from ._config import CHANGEABLE, Options, Output, resolve
from ._errors import AbortedError, BatchCallError, InterruptedRun
from ._journal import FAILED_STATES, SKIPPED_STATES
from ._report import COUNT_ORDER
from ._version import __version__

if TYPE_CHECKING:
    from ._progress import Bar

EXAMPLE_RUN = """
\b
Examples:
  batchcall run sample_data/contacts.csv --sandbox
  VOXWORKS_API_KEY=... batchcall run contacts.xlsx --from-number +61291234567 \\
      --script-id a1b2c3d4-e5f6-7890-abcd-ef1234567890 --timezone Australia/Sydney
  batchcall run reports/contacts-20261126T090000Z/results.csv --only-failed
  batchcall run contacts.csv --config nightly.toml --api-key-file ~/.voxworks-key --json

\b
Every option can also be set in batchcall.toml or as BATCHCALL_<OPTION> in the
environment; the command line wins over the environment, which wins over the file.
"""


def _columns(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> Any:
    mapping = {}
    for value in values:
        field, sep, column = value.partition("=")
        if not sep or not field.strip() or not column.strip():
            raise click.BadParameter(f"{value!r} is not FIELD=COLUMN, e.g. phone_number=Mobile")
        mapping[field.strip()] = column.strip()
    return mapping or None


def _listed(ctx: click.Context, param: click.Parameter, values: tuple[Any, ...]) -> Any:
    # A repeatable option given no times is "not given", so batchcall.toml or the environment
    # can still set it.
    return list(values) or None


def _refuse_key(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    # Hidden, so it is never advertised; it exists to explain, without echoing the value.
    if value is not None:
        raise click.UsageError(
            "The API key is never taken from the command line (it would show in `ps` and in "
            "shell history). Set VOXWORKS_API_KEY or pass --api-key-file PATH.",
            ctx=ctx,
        )


def _flag(name: str, help: str, *short: str) -> Callable[[Any], Any]:
    # default=None keeps "not given" apart from False, so batchcall.toml or the environment
    # can set it and --no-<name> can still override them.
    return click.option(f"--{name}/--no-{name}", *short, default=None, help=help)


CONFIG_OPTION = click.option(
    "--config",
    type=click.Path(path_type=Path),
    help="Settings file (default: ./batchcall.toml, or $BATCHCALL_CONFIG).",
)

KEY_OPTIONS = [
    click.option(
        "--api-key-file",
        type=click.Path(path_type=Path),
        help="File holding the key (else $VOXWORKS_API_KEY; never a command-line value).",
    ),
    click.option("--api-key", hidden=True, expose_value=False, callback=_refuse_key),
]

OUTPUT_OPTIONS = [
    click.option(
        "--json/--no-json", "as_json", default=None, help="Print the summary as JSON on stdout."
    ),
    _flag("quiet", "No progress bar and no summary table.", "-q"),
    _flag("verbose", "Log every request and answer to run.log.", "-v"),
    CONFIG_OPTION,
]
# Only where a run starts: resume and retry keep the run's choice.
UNMASKED_OPTION = _flag("report-unmasked", "Show whole phone numbers in report.html.")

INPUT_OPTIONS = [
    click.option("--from-number", help="Caller ID in E.164, one of your team's numbers."),
    click.option("--script-id", help="The Voxworks script to run on every call."),
    click.option("--region", help="Default country (ISO code) for numbers without +CC."),
    click.option("--timezone", help="IANA zone for times written without an offset."),
    click.option("--date-format", help="strftime format for non-ISO times, e.g. %d/%m/%Y %H:%M."),
    click.option("--sheet", help="Worksheet name (spreadsheets; default: the first sheet)."),
    click.option("--encoding", help="Text encoding of a CSV (default: detected, or stop)."),
    click.option(
        "--column",
        "columns",
        multiple=True,
        callback=_columns,
        metavar="FIELD=COLUMN",
        help="Map a field to an input column, e.g. --column phone_number=Mobile.",
    ),
    _flag("allow-duplicates", "Send rows repeating an earlier phone, script and time."),
    click.option(
        "--multi-phone",
        type=click.Choice(["reject", "first"]),
        help="A phone cell with several numbers: reject the row (default) or call the first.",
    ),
    click.option(
        "--calling-window",
        help="us-tcpa (federal + state rules), us-federal, au-telemarketing, au-research, "
        "ca-crtc or a spec.",
    ),
    click.option("--holidays", help="Holiday calendar for a custom window, e.g. AU-NSW."),
    click.option("--contact-timezone", help="Zone for numbers whose zone is ambiguous."),
    click.option(
        "--outside-window",
        type=click.Choice(["defer", "reject"]),
        help="Out-of-window rows: defer to the next allowed time (default) or reject.",
    ),
    click.option("--max-defer-days", type=int, help="How far a call may be deferred (default 14)."),
    click.option(
        "--window-margin",
        metavar="DURATION",
        help="No call within this of its window's close, e.g. 30m (the default) or 0.",
    ),
    click.option("--reports-dir", type=click.Path(path_type=Path), help="Default: ./reports."),
    click.option("--out", type=click.Path(path_type=Path), help="Exact run directory to create."),
]

BREAKER_HELP = (
    "Stop starting rows after N requests in a row time out, fail with 5xx or drop "
    "(default 10; 0 never stops); the rest stay pending for resume."
)

LEDGER_OPTIONS = [
    click.option(
        "--ledger",
        metavar="PATH|URL",
        help="The contact ledger: a SQLite file or postgresql://... (default: ledger.sqlite in "
        "your user state directory).",
    ),
    click.option("--team", help="The team's name in the ledger (default: a key fingerprint)."),
    _flag("allow-repeat", "Call again a phone, script and time already in the ledger."),
    click.option(
        "--repeat-window",
        metavar="PERIOD",
        help="A row with no time repeats a call within this of now (default 24h).",
    ),
    click.option(
        "--max-calls",
        multiple=True,
        callback=_listed,
        metavar="N/PERIOD",
        help="At most N calls to a phone in any PERIOD, e.g. 3/24h (repeatable).",
    ),
    click.option(
        "--suppress",
        multiple=True,
        callback=_listed,
        type=click.Path(path_type=Path),
        metavar="FILE",
        help="Never call the numbers in FILE (repeatable; an unreadable list stops the run).",
    ),
]

BASE_URL_OPTION = click.option("--base-url", help="API base URL (default https://api.voxworks.ai).")

SEND_OPTIONS = [
    BASE_URL_OPTION,
    *KEY_OPTIONS,
    click.option("--concurrency", type=int, help="Most requests in flight (default: adaptive)."),
    click.option("--max-rate", type=float, help="Hard ceiling in requests/second."),
    _flag("retry-ambiguous", "Re-send 500/502/504/timeouts with the same Idempotency-Key."),
    click.option("--timeout", type=float, help="Seconds one request may take in all (default 30)."),
    click.option("--breaker", type=int, metavar="N", help=BREAKER_HELP),
]


def _apply(options: list[Callable[[Any], Any]]) -> Callable[[Any], Any]:
    def decorate(func: Any) -> Any:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


# --- output ------------------------------------------------------------------------------


def format_learned(limiter: dict[str, Any]) -> str:
    """What the gate learned of the rate limit, each part marked observed or inferred as
    summary.json's `sources` says; what the gate did not measure is not there to print."""
    sources = limiter.get("sources", {})

    def part(name: str, text: str) -> str:
        return f"{text} ({sources[name]})" if name in sources else text

    parts = []
    if "kind" in limiter:
        parts.append(part("kind", str(limiter["kind"])))
    window = part("window", f"{limiter['window']:g} s") if "window" in limiter else None
    if "limit" in limiter:
        per = f" per {window}" if window else ""
        parts.append(part("limit", f"{limiter['limit']} requests") + per)
    elif window:  # a window timed by its resets, its limit not heard
        parts.append(f"window {window}")
    if "refill" in limiter:
        parts.append(part("refill", f"refill {limiter['refill']:g}/s"))
    if "achieved_rate" in limiter:
        parts.append(part("achieved_rate", f"achieved {limiter['achieved_rate']:g}/s"))
    return ", ".join(parts)


def format_summary(data: dict[str, Any]) -> str:
    """The table printed at the end: counts, errors by code, rate, and where the reports are."""
    lines = [f"batchcall {data['command']}: {data['total']} rows in {data['seconds']:.1f}s"]
    for state in COUNT_ORDER:
        if data["counts"].get(state):
            lines.append(f"  {state:<18} {data['counts'][state]:>8}")
    if data["errors"]:
        lines.append("  errors by code:")
        lines += [f"    {code:<22} {n:>6}" for code, n in sorted(data["errors"].items())]
    if data.get("plan"):
        lines += format_plan(data["plan"])
    if data.get("requests"):
        rate = f", {data['rate']}/s" if data.get("rate") else ""
        lines.append(f"  requests {data['requests']}, 429s {data['throttled']}{rate}")
        learned = format_learned(data.get("limiter") or {})
        if learned:
            lines.append(f"  rate limit: {learned}")
    run_dir = Path(data["run_dir"])
    lines.append(f"  run directory: {run_dir}")
    lines.append(f"    results.csv   {data['results_csv']}")
    if any(data["counts"].get(s) for s in FAILED_STATES):
        lines.append(f"    to fix:       {data['failed_csv']}")
    if data.get("skipped_csv") and any(data["counts"].get(s) for s in SKIPPED_STATES):
        lines.append(f"    skipped:      {data['skipped_csv']}")
    lines.append(f"    summary.json  {run_dir / 'summary.json'}")
    lines.append(f"    run.log       {run_dir / 'run.log'}")
    if data.get("message"):
        lines.append(f"  {data['message']}")
    if data.get("report_html") and Path(data["report_html"]).is_file():
        # Last, so the page to open is the line a user's eye lands on.
        lines.append(f"  report: {data['report_html']}")
    return "\n".join(lines)


def format_plan(plan: dict[str, Any]) -> list[str]:
    """validate's pre-flight plan, in a few lines of the summary table."""
    rate = f"{plan['rate']:g}/s" + ("" if plan["rate_given"] else " (assumed; set --max-rate)")
    took = timedelta(seconds=round(plan["sending_seconds"]))
    hours = sorted(enumerate(plan["by_local_hour"]), key=lambda hn: -hn[1])
    busiest = ", ".join(f"{h:02d}:00 ({n})" for h, n in hours[:3] if n)
    lines = [
        "  plan, if sent now:",
        f"    calls              {plan['calls']}, sent in about {took} at {rate}",
        f"    last ring          {plan['last_ring'] or '-'} (UTC)",
        f"    moved              {plan['moved_by_window']} by the calling window, "
        f"{plan['moved_by_cap']} by a frequency cap",
    ]
    if busiest:
        lines.append(f"    busiest hours      {busiest}, callee-local")
    return lines


def _finish(summary: Any, output: Output) -> None:
    data = summary.to_dict()
    if output.as_json:
        click.echo(json.dumps(data, sort_keys=True))
    elif not output.quiet:
        click.echo(format_summary(data))
    sys.exit(summary.exit_code)


def _message(exc: BatchCallError) -> str:
    message = str(exc)
    run_dir = getattr(exc, "run_dir", None)
    if run_dir and f"batchcall resume {run_dir}" not in message:
        message += f" Then continue with: batchcall resume {run_dir}"
    return message


def _stopped_summary(exc: AbortedError | InterruptedRun, message: str) -> dict[str, Any] | None:
    # The runner writes summary.json before it raises, so a stopped run can still show its
    # counts and report paths; the exit code and message are the error's.
    if not exc.run_dir:
        return None
    try:
        data: dict[str, Any] = json.loads((Path(exc.run_dir) / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    data.update(exit_code=exc.exit_code, message=message)
    return data


def _fail(exc: BatchCallError, output: Output) -> None:
    message = _message(exc)
    data = None
    if isinstance(exc, AbortedError | InterruptedRun):
        data = _stopped_summary(exc, message)
    if output.as_json:
        # stdout stays one JSON object, whatever happened.
        click.echo(json.dumps(data or {"error": message, "exit_code": exc.exit_code}))
    elif data is not None and not output.quiet:
        click.echo(format_summary({**data, "message": None}))
    click.echo(f"batchcall: {message}", err=True)
    sys.exit(exc.exit_code)


def _guard(action: Callable[[], Any], output: Output) -> Any:
    try:
        return action()
    except BatchCallError as exc:
        _fail(exc, output)
    except KeyboardInterrupt:
        # Ctrl-C before the runner's own handler was in place (while reading the input):
        # nothing had been sent yet.
        command = click.get_current_context().info_name
        _fail(
            InterruptedRun(
                "Interrupted before any row was planned; nothing was sent and nothing was kept. "
                f"Run `batchcall {command}` again."
            ),
            output,
        )


def _bar(output: Output, label: str) -> Bar | None:
    if output.quiet:
        return None
    from ._progress import Bar  # tqdm, only for a command that draws a bar

    return Bar.for_stderr(label)


def _options(cli: dict[str, Any]) -> Options:
    """Settings and output options, merged with batchcall.toml and the environment."""
    config = cli.pop("config", None)
    try:
        return resolve(cli, config_path=config)
    except BatchCallError as exc:
        _fail(exc, Output(json=bool(cli.get("json"))))
        raise  # unreachable: _fail exits


def _split(options: dict[str, Any]) -> dict[str, Any]:
    # click names the --json flag `as_json`; the settings layer calls it `json`.
    options["json"] = options.pop("as_json", None)
    return options


# --- commands ----------------------------------------------------------------------------


class _Command(click.Command):
    """A command whose option errors also reach stdout as JSON when `--json` was asked for,
    so a job that parses stdout never gets an empty string."""

    def make_context(
        self, info_name: str | None, args: list[str], *rest: Any, **kwargs: Any
    ) -> click.Context:
        wants_json = "--json" in args  # before parsing: click consumes `args`
        try:
            return super().make_context(info_name, args, *rest, **kwargs)
        except click.UsageError as exc:
            if wants_json:
                click.echo(json.dumps({"error": exc.format_message(), "exit_code": exc.exit_code}))
            raise


class _Group(click.Group):
    """The top-level group. Commands in `LAZY` are imported only when invoked (or listed in
    --help), so `batchcall run` never pays for the sandbox's web server stack."""

    command_class = _Command
    LAZY: ClassVar[dict[str, tuple[str, str]]] = {
        "sandbox": ("batchcall.sandbox._cli", "sandbox_command"),
        "suppress": ("batchcall._ledger_cli", "suppress"),
        "ledger": ("batchcall._ledger_cli", "ledger"),
        "windows": ("batchcall._windows_cli", "windows"),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.LAZY])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.LAZY and name not in self.commands:
            module, attribute = self.LAZY[name]
            self.add_command(getattr(importlib.import_module(module), attribute), name=name)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # The lazy commands' one-line help, without importing them for a --help.
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names))
        rows = []
        for name in names:
            if name in self.LAZY and name not in self.commands:
                rows.append((name, LAZY_HELP[name]))
            elif (command := self.commands.get(name)) is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


LAZY_HELP = {
    "sandbox": "Run a local server that behaves like the Voxworks API.",
    "suppress": "The team's suppression list: numbers batchcall never calls.",
    "ledger": "The team's record of every call placed, across runs and machines.",
    "windows": "Calling windows: the hours and rules each contact is called under.",
}


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="batchcall")
def main() -> None:
    """Schedule a Voxworks call for every row of a spreadsheet.

    Resumable (a journal records every row), duplicate-safe (a team-wide ledger keeps anyone
    from being called twice, or too often, across runs and machines) and rate-adaptive (the
    API's limit is learned and used in full).

    Exit codes: 0 all scheduled, 1 some rows not, 2 bad input or options (nothing sent),
    3 aborted (a wrong key, the API unavailable, a full disk; rows stay pending), 130
    interrupted by Ctrl-C, 143 by SIGTERM, 129 by SIGHUP (resume it).

    \b
    Quick start, against the embedded sandbox:
      batchcall run sample_data/contacts.csv --sandbox
    """


@main.command(epilog=EXAMPLE_RUN)
@click.argument("input", type=click.Path(path_type=Path))
@_apply(INPUT_OPTIONS + LEDGER_OPTIONS + SEND_OPTIONS + OUTPUT_OPTIONS)
@_flag(
    "force",
    "Run even though this exact file was already run in the reports directory; implies "
    "--allow-repeat.",
)
@_flag("only-failed", "Input is a results.csv: send only its failed rows.")
@_flag("include-unknown", "With --only-failed, also send rows whose outcome is unknown.")
@click.option("--sandbox", is_flag=True, help="Start an embedded sandbox API and run against it.")
@UNMASKED_OPTION
def run(input: Path, sandbox: bool, **options: Any) -> None:
    """Schedule a call for every valid row of INPUT (CSV, TSV, TXT, XLSX, XLSM, XLS or ODS).

    Every row ends with a call_id or a reason, in reports/<input>-<UTC stamp>/results.csv.
    Exit codes: 0 all scheduled, 1 some rows not, 2 bad input or options (nothing sent),
    3 aborted (a wrong key, the API unavailable, a full disk; rows stay pending), 130
    interrupted by Ctrl-C, 143 by SIGTERM, 129 by SIGHUP (resume it).
    """
    from . import _runner as runner

    settings, output = _options(_split(options))
    if sandbox and not output.quiet:
        # Said on stderr so --json's stdout stays one object.
        click.echo(
            "batchcall: --sandbox: sending to an embedded local sandbox; nobody is called.",
            err=True,
        )
    summary = _guard(
        lambda: runner.run(
            input,
            settings=settings,
            sandbox=sandbox,
            api_key_file=output.api_key_file,
            progress=_bar(output, "calls"),
            verbose=output.verbose,
            report_unmasked=output.report_unmasked,
        ),
        output,
    )
    _finish(summary, output)


@main.command(
    epilog="""
\b
Examples:
  batchcall validate contacts.csv --from-number +61291234567 --script-id a1b2c3d4-...
  batchcall validate reports/contacts-20261126T090000Z/failed.csv --region AU
"""
)
@click.argument("input", type=click.Path(path_type=Path))
# validate sends nothing, but the key and API (when given) say whose ledger team it checks.
@_apply(INPUT_OPTIONS + LEDGER_OPTIONS + [BASE_URL_OPTION, *KEY_OPTIONS] + OUTPUT_OPTIONS)
@UNMASKED_OPTION
@click.option(
    "--max-rate", type=float, help="The run's ceiling (requests/s): the plan's sending time at it."
)
def validate(input: Path, **options: Any) -> None:
    """Dry run: read and check INPUT, write the run directory and report, send nothing.

    INPUT may be a results.csv or failed.csv that batchcall wrote: its outcome columns are
    ignored and its rows are checked again. The contact ledger is read, never written: rows
    it would skip show as suppressed, already_scheduled or frequency_capped. Exit code 1 when
    any row is invalid.
    """
    from . import _runner as runner

    settings, output = _options(_split(options))
    summary = _guard(
        lambda: runner.validate(
            input,
            settings=settings,
            api_key_file=output.api_key_file,
            progress=_bar(output, "rows"),
            verbose=output.verbose,
            report_unmasked=output.report_unmasked,
        ),
        output,
    )
    _finish(summary, output)


CONTINUE_OPTIONS = [
    click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False)),
    click.option("--base-url", help="Send to this base URL instead of the run's own."),
    *KEY_OPTIONS,
    click.option("--concurrency", type=int, help="Most requests in flight."),
    click.option("--max-rate", type=float, help="Hard ceiling in requests/second."),
    click.option("--breaker", type=int, metavar="N", help=BREAKER_HELP),
    click.option(
        "--ledger",
        metavar="PATH|URL",
        help="The run's ledger, if it moved or its URL had a password (never stored).",
    ),
    *OUTPUT_OPTIONS,
]


def _continue_options(options: dict[str, Any]) -> tuple[dict[str, Any], Output]:
    # The run's own settings come from its journal, and the runner lays these few overrides
    # over them. Resolving them here too refuses a bad one by its flag before the journal is
    # opened. The output options and the key file follow the usual precedence.
    overrides = {k: options.pop(k) for k in CHANGEABLE}
    _, output = _options({**_split(options), **overrides})
    return overrides, output


def _continue(
    action: Callable[..., Any], run_dir: Path, options: dict[str, Any], **extra: Any
) -> None:
    """`resume` and `retry`: run `action` on RUN_DIR's own journal and settings."""
    overrides, output = _continue_options(options)
    summary = _guard(
        lambda: action(
            run_dir,
            api_key_file=output.api_key_file,
            verbose=output.verbose,
            progress=_bar(output, "calls"),
            **extra,
            **overrides,
        ),
        output,
    )
    _finish(summary, output)


@main.command(
    epilog="""
\b
Example:
  batchcall resume reports/contacts-20261126T090000Z
  batchcall resume reports/contacts-20261126T090000Z --api-key-file ~/.voxworks-key
"""
)
@_apply(CONTINUE_OPTIONS)
def resume(run_dir: Path, **options: Any) -> None:
    """Continue an interrupted or aborted run in RUN_DIR.

    Rows that were in flight become `unknown` (they may have been created); only rows never
    sent go out.
    """
    from . import _runner as runner

    _continue(runner.resume, run_dir, options)


@main.command(
    epilog="""
\b
Examples:
  batchcall retry reports/contacts-20261126T090000Z
  batchcall retry reports/contacts-20261126T090000Z --include-unknown
"""
)
@_apply(CONTINUE_OPTIONS)
@click.option(
    "--include-unknown",
    is_flag=True,
    help="Also re-send rows whose outcome is unknown (same Idempotency-Key).",
)
def retry(run_dir: Path, include_unknown: bool, **options: Any) -> None:
    """Re-send the failed rows of RUN_DIR inside its own journal, and rewrite its reports."""
    from . import _runner as runner

    _continue(runner.retry, run_dir, options, include_unknown=include_unknown)


@main.command(
    epilog="""
\b
Example:
  batchcall status reports/contacts-20261126T090000Z --json
"""
)
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON on stdout.")
def status(run_dir: Path, as_json: bool) -> None:
    """Show RUN_DIR's counts by outcome and by error code."""
    from . import _runner as runner

    output = Output(json=as_json)
    _finish(_guard(lambda: runner.status(run_dir), output), output)


@main.command(
    epilog="""
\b
Example:
  batchcall report reports/contacts-20261126T090000Z --open
"""
)
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--open", "open_it", is_flag=True, help="Open the page in the default browser.")
@click.option(
    "--unmasked/--masked", default=None, help="Whole phone numbers, or masked (default: the run's)."
)
def report(run_dir: Path, open_it: bool, unmasked: bool | None) -> None:
    """Write RUN_DIR's report.html again from its journal, and print where it is."""
    from ._html import rewrite

    output = Output()
    page = _guard(lambda: rewrite(run_dir, unmasked=unmasked), output)
    click.echo(page)
    if open_it:
        click.launch(str(page))
