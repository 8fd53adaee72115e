"""Suppression lists: numbers that must never be called, read from files that fail closed.

A list is any file batchcall's loader reads (CSV, TSV, TXT, XLSX, XLSM, XLS, ODS) with a phone
column and optional `reason` and `expires` columns, or plain text with one number per line
(blank lines and `#` comments skipped). A text file is plain when its first line is a number.

Numbers are normalised to E.164 with phonenumbers as input phones are, with a default region for
national numbers, and must be valid numbers: a number the validator would refuse can never be
called, and a line that is not one is far more often a list read with the wrong region or a
damaged cell. Either way the run stops with a `UsageError` naming the file and line, before
anything is sent: a list that is only partly read would suppress only part of what it should.

Expiry: a datetime with an offset is exact; one without is UTC. A bare date (or an Excel date
cell, which reads as midnight) suppresses the number through that day everywhere on Earth:
until 12:00 UTC the next day, when the day has ended at UTC-12 too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import phonenumbers

from .._config import Settings
from .._errors import UsageError
from .._load import SHEET_SUFFIXES, TEXT_SUFFIXES, normalise_header, open_table
from ._model import Suppression

_E164 = phonenumbers.PhoneNumberFormat.E164
# As the validator reads phone cells: Excel damage (4.29E+08, 429069971.5) is never guessed,
# and letters (1-800-FLOWERS, ext.) are never read as digits.
_DAMAGED = re.compile(r"[+-]?\d+(?:[.,]\d+)?[eE][+-]?\d+|\+?\d+[.,]\d+")
_PHONE_CHARS = re.compile(r"[0-9+()\-./\s]+")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
REASON_HEADERS = frozenset({"reason", "note", "notes", "comment"})
EXPIRES_HEADERS = frozenset({"expires", "expires at", "expires on", "expiry", "until"})
FAIL_CLOSED = "Suppression lists fail closed: nothing was sent."


def check_region(region: str | None) -> str | None:
    if region is None:
        return None
    code = region.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise UsageError(f"Region {region!r} is not one phonenumbers knows; use e.g. AU or US.")
    return code


def normalise_phone(raw: str, region: str | None) -> str | None:
    """`raw` in E.164, or None when it is not a valid phone number."""
    text = raw.strip()
    if not text or _DAMAGED.fullmatch(text) or not _PHONE_CHARS.fullmatch(text):
        return None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, _E164)


def phone_or_error(raw: str, region: str | None, where: str) -> str:
    phone = normalise_phone(raw, region)
    if phone is None:
        hint = (
            "write it with its country code (+CC ...) or pass --region"
            if region is None and not raw.strip().startswith("+")
            else f"check its digits (read with default region {region})"
        )
        raise UsageError(f"{where}: {raw.strip()!r} is not a valid phone number; {hint}.")
    return phone


def parse_expiry(text: str) -> datetime | None:
    """When a suppression written as `text` ends (see the module docstring), or None when
    `text` is not a date or datetime."""
    text = text.strip()
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is not None:
        return value.astimezone(UTC)
    if _DATE.fullmatch(text) or value.time() == time(0):
        return datetime.combine(value.date() + timedelta(days=1), time(12), UTC)
    return value.replace(tzinfo=UTC)


def read_list(path: Path, *, region: str | None) -> Iterator[Suppression]:
    """Every entry of the list file `path`, in order; a `UsageError` on anything unreadable."""
    if not path.is_file():
        raise UsageError(f"Cannot read the suppression list {path}: no such file. {FAIL_CLOSED}")
    if path.suffix.lower() in SHEET_SUFFIXES:
        return _closed(_table_entries(path, region, "row"))
    lines = _text_lines(path)
    first = next(_plain_lines(lines), None)
    if (
        path.suffix.lower() in TEXT_SUFFIXES
        and first is not None
        and not _looks_like_number(first[1])
    ):
        return _closed(_table_entries(path, region, "line"))
    return _closed(_plain_entries(path, lines, region))


def _looks_like_number(text: str) -> bool:
    """A first line that is a number (even a bad one) starts a plain list, not a header."""
    digits = sum(ch.isdigit() for ch in text)
    return digits >= 3 and bool(_PHONE_CHARS.fullmatch(text) or _DAMAGED.fullmatch(text))


def _closed(entries: Iterator[Suppression]) -> Iterator[Suppression]:
    try:
        yield from entries
    except UsageError as exc:
        raise UsageError(f"{exc} {FAIL_CLOSED}") from exc


def _text_lines(path: Path) -> list[str]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(
            f"Cannot read the suppression list {path}: {exc.strerror or exc}. {FAIL_CLOSED}"
        ) from exc
    if b"\x00" in data[:65536]:
        raise UsageError(
            f"The suppression list {path} looks binary, not text (a spreadsheet saved with a "
            f"{path.suffix or 'missing'} name?). {FAIL_CLOSED}"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    return text.splitlines()


def _plain_lines(lines: list[str]) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if text:
            yield number, text


def _plain_entries(path: Path, lines: list[str], region: str | None) -> Iterator[Suppression]:
    for number, text in _plain_lines(lines):
        where = f"{path} line {number}"
        yield Suppression(
            phone_or_error(text, region, f"Suppression list {where}"), None, None, where
        )


def _table_entries(path: Path, region: str | None, unit: str) -> Iterator[Suppression]:
    try:
        table = open_table(path, Settings())
    except UsageError as exc:
        raise UsageError(f"Cannot use the suppression list: {exc}") from exc
    columns = [normalise_header(name) for name in table.header]
    phone_at = table.fields["phone_number"]
    reason_at = next((i for i, c in enumerate(columns) if c in REASON_HEADERS), None)
    expires_at = next((i for i, c in enumerate(columns) if c in EXPIRES_HEADERS), None)
    for src in table:
        # Row N under the header is line (or spreadsheet row) N + 1.
        where = f"{path} {unit} {src.row + 1}"
        phone = phone_or_error(src.cells[phone_at], region, f"Suppression list {where}")
        reason = src.cells[reason_at] if reason_at is not None else ""
        written = src.cells[expires_at] if expires_at is not None else ""
        until = parse_expiry(written) if written else None
        if written and until is None:
            raise UsageError(
                f"Suppression list {where}: expires {written!r} is not a date (write "
                "2030-06-30, or 2030-06-30T17:00+10:00)."
            )
        yield Suppression(phone, reason or None, until, where)


class SuppressionList:
    """The `--suppress FILE` lists of a run, loaded once: each number with the entry that keeps
    it suppressed longest."""

    __slots__ = ("_entries", "sources")

    def __init__(self, entries: Iterable[Suppression] = (), sources: tuple[str, ...] = ()):
        self._entries: dict[str, Suppression] = {}
        self.sources = sources
        for entry in entries:
            kept = self._entries.get(entry.phone)
            if kept is None or _outlasts(entry, kept):
                self._entries[entry.phone] = entry

    @classmethod
    def load(cls, paths: Iterable[Path], *, region: str | None) -> SuppressionList:
        """Read every list in `paths`; raises `UsageError` naming the file and line of the
        first thing that is not a number."""
        region = check_region(region)
        paths = [Path(p) for p in paths]
        entries = [entry for path in paths for entry in read_list(path, region=region)]
        return cls(entries, tuple(str(p) for p in paths))

    def get(self, phone: str, now: datetime) -> Suppression | None:
        entry = self._entries.get(phone)
        return entry if entry is not None and entry.active(now) else None

    def __len__(self) -> int:
        return len(self._entries)


def _outlasts(new: Suppression, old: Suppression) -> bool:
    if old.expires_at is None:
        return False
    return new.expires_at is None or new.expires_at > old.expires_at
