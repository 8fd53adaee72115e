"""Calls made outside batchcall, read from a file so that they count toward the caps.

The file is anything batchcall's loader reads, with a phone column (the loader's aliases), a
time column (`scheduled_time` and its aliases, or `time`, `called at`, `ring at`, `date`), and
optionally `call_id` and `script_id` columns. A time without an offset is read in `timezone`;
with no `timezone` it is refused, as the validator refuses one: a guess would move the call by
hours. An imported call without a script_id counts toward every cap but never matches the
repeat guard, which compares scripts.

Bad input stops the import with a `UsageError` naming the file and line; nothing is written
until the whole file has been read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .._config import Settings
from .._errors import UsageError
from .._load import SHEET_SUFFIXES, file_sha256, normalise_header, open_table
from ._suppress import check_region, phone_or_error

TIME_HEADERS = frozenset({"time", "called at", "ring at", "rang at", "date", "when"})
CALL_ID_HEADERS = frozenset({"call id", "callid"})


@dataclass(frozen=True, slots=True)
class ImportedCall:
    phone: str
    script_id: str | None
    ring_at: datetime
    call_id: str | None
    row: int


def import_run_id(path: Path) -> str:
    """The run id imported calls are recorded under: the file's name and content, so the same
    file imported twice updates its calls instead of doubling them."""
    return f"import:{path.name}@{file_sha256(path)[:12]}"


def read_calls(path: Path, *, region: str | None, timezone: str | None) -> Iterator[ImportedCall]:
    region = check_region(region)
    zone = _zone(timezone)
    try:
        table = open_table(path, Settings())
    except UsageError as exc:
        raise UsageError(f"Cannot import calls: {exc}") from exc
    columns = [normalise_header(name) for name in table.header]
    time_at = table.fields.get("scheduled_time")
    if time_at is None:
        time_at = next((i for i, c in enumerate(columns) if c in TIME_HEADERS), None)
    if time_at is None:
        raise UsageError(
            f"{path} has no time column: name it scheduled_time, time or called_at, with each "
            "call's time (2030-03-04T09:30:00+10:00)."
        )
    call_at = next((i for i, c in enumerate(columns) if c in CALL_ID_HEADERS), None)
    script_at = table.fields.get("script_id")
    unit = "row" if path.suffix.lower() in SHEET_SUFFIXES else "line"
    for src in table:
        where = f"{path} {unit} {src.row + 1}"
        phone = phone_or_error(src.cells[table.fields["phone_number"]], region, where)
        yield ImportedCall(
            phone,
            (src.cells[script_at] or None) if script_at is not None else None,
            _instant(src.cells[time_at], zone, where),
            (src.cells[call_at] or None) if call_at is not None else None,
            src.row,
        )


def _zone(name: str | None) -> ZoneInfo | None:
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise UsageError(
            f"Unknown time zone {name!r}; use an IANA name such as Australia/Sydney."
        ) from exc


def _instant(text: str, zone: ZoneInfo | None, where: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip().replace(" ", "T", 1))
    except ValueError:
        raise UsageError(
            f"{where}: time {text!r} is not ISO 8601 (write 2030-03-04T09:30:00+10:00)."
        ) from None
    if value.tzinfo is None:
        if zone is None:
            raise UsageError(
                f"{where}: time {text!r} has no UTC offset; add one, or pass --timezone."
            )
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)
