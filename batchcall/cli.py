"""The command line: a thin shell over `batchcall.runner`.

It parses options, shows progress and the summary, and turns `BatchCallError`s into messages
and exit codes. No business logic lives here.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from . import __version__
from .errors import BatchCallError
from .progress import Bar

EXAMPLE_RUN = """
\b
Examples:
  batchcall run sample_data/contacts.csv --sandbox
  VOXWORKS_API_KEY=... batchcall run contacts.xlsx --from-number +61291234567 \\
      --script-id a1b2c3d4-e5f6-7890-abcd-ef1234567890 --timezone Australia/Sydney
  batchcall run reports/contacts-20261126T090000Z/results.csv --only-failed
"""


def _columns(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> Any:
    mapping = {}
    for value in values:
        field, sep, column = value.partition("=")
        if not sep or not field.strip() or not column.strip():
            raise click.BadParameter(f"{value!r} is not FIELD=COLUMN, e.g. phone_number=Mobile")
        mapping[field.strip()] = column.strip()
    return mapping or None


def _flag(name: str, help: str) -> Callable[[Any], Any]:
    # default=None keeps "not given" apart from False, so batchcall.toml can set it.
    return click.option(f"--{name}/--no-{name}", default=None, help=help)


INPUT_OPTIONS = [
    click.option("--from-number", help="Caller ID in E.164, one of your team's numbers."),
    click.option("--script-id", help="The Voxworks script to run on every call."),
    click.option("--region", help="Default country (ISO code) for numbers without +CC."),
    click.option("--timezone", help="IANA zone for times written without an offset."),
    click.option("--date-format", help="strftime format for non-ISO times, e.g. %d/%m/%Y %H:%M."),
    click.option("--sheet", help="Worksheet name (spreadsheets; default: the first sheet)."),
    click.option("--encoding", help="Text encoding of a CSV (default: UTF-8, else cp1252)."),
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
        "--calling-window", help="au-telemarketing, au-research, us-tcpa, ca-crtc or a spec."
    ),
    click.option("--holidays", help="Holiday calendar for a custom window, e.g. AU-NSW."),
    click.option("--contact-timezone", help="Zone for numbers whose zone is ambiguous."),
    click.option(
        "--outside-window",
        type=click.Choice(["defer", "reject"]),
        help="Out-of-window rows: defer to the next allowed time (default) or reject.",
    ),
    click.option("--max-defer-days", type=int, help="How far a call may be deferred (default 14)."),
    click.option("--reports-dir", type=click.Path(path_type=Path), help="Default: ./reports."),
    click.option("--out", type=click.Path(path_type=Path), help="Exact run directory to create."),
    click.option(
        "--config", type=click.Path(path_type=Path), help="Settings file (batchcall.toml)."
    ),
]

SEND_OPTIONS = [
    click.option("--base-url", help="API base URL (default https://api.voxworks.ai)."),
    click.option("--api-key-file", type=click.Path(path_type=Path), help="File holding the key."),
    click.option("--concurrency", type=int, help="Most requests in flight (default: adaptive)."),
    click.option("--max-rate", type=float, help="Hard ceiling in requests/second."),
    _flag("retry-ambiguous", "Re-send 500/502/504/timeouts with the same Idempotency-Key."),
    click.option("--timeout", type=float, help="Seconds to wait for one answer (default 30)."),
]

OUTPUT_OPTIONS = [
    click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout."),
    click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary table."),
    click.option("--verbose", "-v", is_flag=True, help="Log every request to run.log."),
]


def _apply(options: list[Callable[[Any], Any]]) -> Callable[[Any], Any]:
    def decorate(func: Any) -> Any:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def _finish(summary: Any, *, as_json: bool, quiet: bool) -> None:
    data = summary.to_dict()
    if as_json:
        click.echo(json.dumps(data, sort_keys=True))
    elif not quiet:
        click.echo(format_summary(data))
    sys.exit(summary.exit_code)


def format_summary(data: dict[str, Any]) -> str:
    lines = [f"batchcall {data['command']}: {data['total']} rows in {data['seconds']:.1f}s"]
    for state in ("scheduled", "pending", "duplicate", "invalid", "failed", "unknown", "sending"):
        if data["counts"].get(state):
            lines.append(f"  {state:<10} {data['counts'][state]:>8}")
    if data["errors"]:
        lines.append("  errors by code:")
        lines += [f"    {code:<24} {n:>6}" for code, n in data["errors"].items()]
    if data.get("requests"):
        rate = f", {data['rate']}/s" if data.get("rate") else ""
        lines.append(f"  requests {data['requests']}, 429s {data['throttled']}{rate}")
    lines.append(f"  results: {data['results_csv']}")
    if (
        data["counts"].get("invalid")
        or data["counts"].get("failed")
        or data["counts"].get("unknown")
    ):
        lines.append(f"  to fix:  {data['failed_csv']}")
    return "\n".join(lines)


def _guard(action: Callable[[], Any], *, as_json: bool) -> Any:
    try:
        return action()
    except BatchCallError as exc:
        if as_json:
            click.echo(json.dumps({"error": str(exc), "exit_code": exc.exit_code}))
        click.echo(f"batchcall: {exc}", err=True)
        sys.exit(exc.exit_code)


def _bar(as_json: bool, quiet: bool, label: str) -> Bar | None:
    return None if quiet else Bar.for_stderr(label)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="batchcall")
def main() -> None:
    """Schedule a Voxworks call for every row of a spreadsheet.

    Resumable (a journal records every row), duplicate-safe (nobody is called twice by
    accident) and rate-adaptive (the API's limit is learned and used in full).

    \b
    Quick start, against the embedded sandbox:
      batchcall run sample_data/contacts.csv --sandbox
    """


def _settings_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    from .config import build_settings

    config = kwargs.pop("config", None)
    return {"settings": build_settings(kwargs, config_path=config)}


@main.command(epilog=EXAMPLE_RUN)
@click.argument("input", type=click.Path(path_type=Path))
@_apply(INPUT_OPTIONS + SEND_OPTIONS + OUTPUT_OPTIONS)
@_flag("force", "Run even though this exact file was already run in the reports directory.")
@_flag("only-failed", "Input is a results.csv: send only its failed rows.")
@_flag("include-unknown", "With --only-failed, also send rows whose outcome is unknown.")
@click.option("--sandbox", is_flag=True, help="Start an embedded sandbox API and run against it.")
def run(
    input: Path,
    as_json: bool,
    quiet: bool,
    verbose: bool,
    sandbox: bool,
    api_key_file: Path | None,
    **options: Any,
) -> None:
    """Schedule a call for every valid row of INPUT (CSV, TSV, TXT, XLSX, XLSM, XLS or ODS).

    Every row ends with a call_id or a reason, in reports/<input>-<UTC stamp>/results.csv.
    Exit codes: 0 all scheduled, 1 some rows not, 2 bad input or options (nothing sent),
    3 aborted (e.g. a wrong key; rows stay pending), 130 interrupted (resume it).
    """
    from . import runner

    def action() -> Any:
        kwargs = _settings_options(options)
        return runner.run(
            input,
            sandbox=sandbox,
            api_key_file=api_key_file,
            progress=_bar(as_json, quiet, "calls"),
            verbose=verbose,
            **kwargs,
        )

    _finish(_guard(action, as_json=as_json), as_json=as_json, quiet=quiet)


@main.command(
    epilog="""
\b
Examples:
  batchcall validate contacts.csv --from-number +61291234567 --script-id a1b2c3d4-...
  batchcall validate reports/contacts-20261126T090000Z/failed.csv --region AU
"""
)
@click.argument("input", type=click.Path(path_type=Path))
@_apply(INPUT_OPTIONS + OUTPUT_OPTIONS)
def validate(input: Path, as_json: bool, quiet: bool, verbose: bool, **options: Any) -> None:
    """Dry run: read and check INPUT, write the run directory and report, send nothing.

    Exit code 1 when any row is invalid.
    """
    from . import runner

    def action() -> Any:
        kwargs = _settings_options(options)
        return runner.validate(
            input, progress=_bar(as_json, quiet, "rows"), verbose=verbose, **kwargs
        )

    _finish(_guard(action, as_json=as_json), as_json=as_json, quiet=quiet)


CONTINUE_OPTIONS = [
    click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False)),
    click.option("--base-url", help="Send to this base URL instead of the run's own."),
    click.option("--api-key-file", type=click.Path(path_type=Path), help="File holding the key."),
    click.option("--concurrency", type=int, help="Most requests in flight."),
    click.option("--max-rate", type=float, help="Hard ceiling in requests/second."),
    *OUTPUT_OPTIONS,
]


@main.command(
    epilog="""
\b
Example:
  batchcall resume reports/contacts-20261126T090000Z
"""
)
@_apply(CONTINUE_OPTIONS)
def resume(
    run_dir: Path,
    as_json: bool,
    quiet: bool,
    verbose: bool,
    api_key_file: Path | None,
    **overrides: Any,
) -> None:
    """Continue an interrupted run in RUN_DIR.

    Rows that were in flight become `unknown` (they may have been created); only rows never
    sent go out.
    """
    from . import runner

    def action() -> Any:
        return runner.resume(
            run_dir,
            api_key_file=api_key_file,
            verbose=verbose,
            progress=_bar(as_json, quiet, "calls"),
            **overrides,
        )

    _finish(_guard(action, as_json=as_json), as_json=as_json, quiet=quiet)


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
def retry(
    run_dir: Path,
    as_json: bool,
    quiet: bool,
    verbose: bool,
    api_key_file: Path | None,
    include_unknown: bool,
    **overrides: Any,
) -> None:
    """Re-send the failed rows of RUN_DIR inside its own journal, and rewrite its reports."""
    from . import runner

    def action() -> Any:
        return runner.retry(
            run_dir,
            include_unknown=include_unknown,
            api_key_file=api_key_file,
            verbose=verbose,
            progress=_bar(as_json, quiet, "calls"),
            **overrides,
        )

    _finish(_guard(action, as_json=as_json), as_json=as_json, quiet=quiet)


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
    from . import runner

    summary = _guard(lambda: runner.status(run_dir), as_json=as_json)
    _finish(summary, as_json=as_json, quiet=False)


def _register_sandbox() -> None:
    from .sandbox.cli import sandbox_command

    main.add_command(sandbox_command, name="sandbox")


_register_sandbox()
