"""`batchcall suppress ...` and `batchcall ledger ...`: a thin shell over `batchcall._ledger`.

Every command takes `--ledger PATH|URL` (else `$BATCHCALL_LEDGER`, else the default file in the
user's state directory) and `--team NAME` (else `$BATCHCALL_TEAM`, else the fingerprint of the
API key, read as `run` reads it, so these commands see the same team as the runs). Errors are
one line on stderr, `batchcall: ...`, with the error's exit code (2 for bad input).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from ._config import DEFAULT_BASE_URL, read_api_key
from ._errors import BatchCallError, UsageError
from ._ledger import Ledger, open_ledger, parse_expiry, team_fingerprint
from ._ledger._model import iso
from ._ledger._suppress import check_region, phone_or_error


def _ledger_options(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--ledger",
            "location",
            envvar="BATCHCALL_LEDGER",
            metavar="PATH|URL",
            help="The ledger: a SQLite file or postgresql://... (else $BATCHCALL_LEDGER, else "
            "the default file in your state directory).",
        ),
        click.option(
            "--team",
            envvar="BATCHCALL_TEAM",
            help="Team name (else $BATCHCALL_TEAM, else the fingerprint of your API key).",
        ),
        click.option(
            "--api-key-file",
            type=click.Path(path_type=Path),
            help="Without --team: the key whose team this is (else $VOXWORKS_API_KEY).",
        ),
        click.option(
            "--base-url",
            envvar="VOXWORKS_BASE_URL",
            default=DEFAULT_BASE_URL,
            show_default=True,
            help="Without --team: the API the key belongs to.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


_REGION = click.option("--region", help="Default region for national numbers, e.g. AU.")


@contextmanager
def shell() -> Iterator[None]:
    """Any `BatchCallError` inside becomes one line on stderr and its exit code; an option the
    settings refused, one line and exit 2."""
    try:
        yield
    except BatchCallError as exc:
        click.echo(f"batchcall: {exc}", err=True)
        sys.exit(exc.exit_code)
    except ValidationError as exc:
        message = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        click.echo(f"batchcall: {message}", err=True)
        sys.exit(UsageError.exit_code)


def _open(options: dict[str, Any]) -> Ledger:
    team = options["team"] or _key_team(options["api_key_file"], options["base_url"])
    return open_ledger(options["location"], team=team)


def _key_team(api_key_file: Path | None, base_url: str) -> str:
    try:
        key = read_api_key(api_key_file, os.environ)
    except UsageError as exc:
        raise UsageError(
            f"{exc} Or name the team with --team NAME (or $BATCHCALL_TEAM): the ledger keeps "
            "each team's calls apart, and by default a team is the fingerprint of its key."
        ) from exc
    return team_fingerprint(base_url, key)


def _when(value: str, *, option: str, end_of_day: bool) -> datetime:
    """A date option: a bare date means the end of that day everywhere (`--until`) or its
    first instant in UTC (`--before`); a time with an offset is exact; one without is UTC."""
    found = parse_expiry(value)
    if found is None:
        raise UsageError(
            f"{option} {value!r} is not a date; write 2030-06-30 or 2030-06-30T17:00+10:00."
        )
    if not end_of_day and len(value.strip()) == 10:
        found = datetime.fromisoformat(value.strip()).replace(tzinfo=UTC)
    return found


def _place(ledger: Ledger) -> str:
    return f"in the ledger {ledger.where} (team {ledger.team})"


# --- suppress -------------------------------------------------------------------------------------


@click.group()
def suppress() -> None:
    """The team's suppression list: numbers batchcall never calls.

    Every run checks the list just before each call leaves, so a number added while a run is
    sending is honoured by its very next call.
    """


@suppress.command("add")
@click.argument("numbers", nargs=-1, required=True)
@click.option("--reason", help="Why (shown in the skipped rows' message).")
@click.option("--until", metavar="DATE", help="Suppressed through this date, or until this time.")
@_REGION
@_ledger_options
def suppress_add(
    numbers: tuple[str, ...], reason: str | None, until: str | None, region: str | None,
    **options: Any,
) -> None:  # fmt: skip
    """Add NUMBER... to the team's suppression list."""
    with shell():
        expires = None if until is None else _when(until, option="--until", end_of_day=True)
        with _open(options) as opened:
            added = opened.suppress(
                numbers, now=datetime.now(UTC), reason=reason, until=expires, region=region
            )
            click.echo(f"Suppressed {added} number(s) {_place(opened)}.")


@suppress.command("remove")
@click.argument("numbers", nargs=-1, required=True)
@_REGION
@_ledger_options
def suppress_remove(numbers: tuple[str, ...], region: str | None, **options: Any) -> None:
    """Remove NUMBER... from the team's suppression list."""
    with shell(), _open(options) as opened:
        removed = opened.unsuppress(numbers, region=region)
        click.echo(f"Removed {removed} of {len(numbers)} number(s) {_place(opened)}.")


@suppress.command("list")
@_ledger_options
def suppress_list(**options: Any) -> None:
    """Print the team's suppression list, one number a line (tab-separated)."""
    now = datetime.now(UTC)
    with shell(), _open(options) as opened:
        entries = opened.suppressions()
        click.echo("phone\treason\tuntil\tsource\tadded")
        for e in entries:
            until = "" if e.expires_at is None else iso(e.expires_at)
            if not e.active(now):
                until += " (expired)"
            added = "" if e.added_at is None else iso(e.added_at)
            click.echo(f"{e.phone}\t{e.reason or ''}\t{until}\t{e.source}\t{added}")
        click.echo(f"{len(entries)} number(s) {_place(opened)}.", err=True)


@suppress.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@_REGION
@_ledger_options
def suppress_import(file: Path, region: str | None, **options: Any) -> None:
    """Add every number of FILE to the team's list.

    FILE is a CSV, TSV, TXT, XLSX, XLSM, XLS or ODS with a phone column and optional reason
    and expires columns, or plain text with one number per line. Nothing is added unless every
    line is a number; an entry already on the list is never shortened.
    """
    with shell(), _open(options) as opened:
        added = opened.import_suppressions(file, now=datetime.now(UTC), region=region)
        click.echo(f"Imported {added} number(s) from {file} {_place(opened)}.")


# --- ledger ---------------------------------------------------------------------------------------


@click.group()
def ledger() -> None:
    """The team's record of every call placed, across runs and machines."""


@ledger.command("show")
@click.argument("phone")
@_REGION
@_ledger_options
def ledger_show(phone: str, region: str | None, **options: Any) -> None:
    """Print every call to PHONE on record, oldest first (tab-separated)."""
    with shell():
        number = phone_or_error(phone, check_region(region), "PHONE")
        with _open(options) as opened:
            calls = opened.history(number)
            click.echo("ring_at\toutcome\trun_id\trow\tcall_id\tscript_id")
            for c in calls:
                click.echo(
                    f"{iso(c.ring_at)}\t{c.outcome}\t{c.run_id}\t{c.row}\t{c.call_id or ''}\t"
                    f"{c.script_id or ''}"
                )
            click.echo(f"{len(calls)} call(s) to {number} {_place(opened)}.", err=True)


@ledger.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@_REGION
@click.option("--timezone", help="Zone of times written without an offset, e.g. Australia/Sydney.")
@_ledger_options
def ledger_import(file: Path, region: str | None, timezone: str | None, **options: Any) -> None:
    """Record calls made outside batchcall, so that they count toward the caps.

    FILE has a phone column, a time column (scheduled_time, time or called_at) and optional
    call_id and script_id columns. Importing the same file again changes nothing.
    """
    with shell(), _open(options) as opened:
        count = opened.import_calls(file, now=datetime.now(UTC), region=region, timezone=timezone)
        click.echo(f"Imported {count} call(s) from {file} {_place(opened)}.")


@ledger.command("prune")
@click.option("--before", metavar="DATE", required=True, help="Delete calls that rang before it.")
@_ledger_options
def ledger_prune(before: str, **options: Any) -> None:
    """Delete the calls that rang before DATE, and suppressions that expired before it.

    For retention of personal data. Calls within a cap's period (or the repeat window) of now
    still guard against calling someone again: keep at least that much.
    """
    with shell():
        cutoff = _when(before, option="--before", end_of_day=False)
        if cutoff > datetime.now(UTC):
            raise UsageError(
                f"--before {before!r} is in the future: pruning it would forget calls that have "
                "not rung yet, so a re-run could place them again."
            )
        with _open(options) as opened:
            pruned = opened.prune(cutoff)
            click.echo(
                f"Deleted {pruned.calls} call(s) and {pruned.suppressions} expired "
                f"suppression(s) before {iso(cutoff)} {_place(opened)}."
            )
